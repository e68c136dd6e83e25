"""A DataTable whose rows are keyed (job id, run id) and updated in place.

Every refresh hands the table the rows it should show, in order. Cells that
changed are updated with `update_cell`; rows that went away are removed; new
rows are added and the table is sorted into place. It is never cleared, so the
scroll position stays where the operator left it, and the cursor is put back on
the same key after any change: it follows the job or the run, not the row
number (both `sort()` and `remove_row()` keep the index, not the row).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.widgets import DataTable

Row = tuple[str, Sequence[RenderableType]]


class KeyedTable(DataTable[RenderableType]):
    COLUMNS: tuple[tuple[str, str], ...] = ()  # (key, label)
    WIDTHS: dict[str, int] = {}  # fixed widths; the other columns fit their content

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        for key, label in self.COLUMNS:
            self.add_column(label, key=key, width=self.WIDTHS.get(key))
        self._widths_may_change = False

    async def _on_idle(self, event: events.Idle) -> None:
        # DataTable measures new or wider cells on idle, but a frame painted before that
        # keeps its cells cached (keyed by the table's update count, not by width): a
        # new "220ms" stayed "220m" until something else changed. Once measured, touch
        # one cell with its own value, which bumps the count and repaints at full width.
        # (Textual then also calls DataTable._on_idle itself: nothing is left to measure.)
        await super()._on_idle(event)
        if self._widths_may_change and self.row_count:
            self._widths_may_change = False
            key, column = self.keys[0], self.COLUMNS[0][0]
            self.update_cell(key, column, self.get_cell(key, column))

    @property
    def keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count or not self.is_valid_row_index(self.cursor_row):
            return None
        return str(self.ordered_rows[self.cursor_row].key.value)

    def show_rows(self, rows: Sequence[Row]) -> None:
        # The first cell of every row must be an object of its own (see _sort_like);
        # equal short strings can be one interned object, a new Text never is.
        rows = [(key, [_own(cells[0]), *cells[1:]]) for key, cells in rows]
        wanted = [key for key, _ in rows]
        if wanted == self.keys:
            self._update_cells(rows)
            return
        cursor = self.cursor_key
        with self.app.batch_update():
            keep = set(wanted)
            for key in self.keys:
                if key not in keep:
                    self.remove_row(key)
            present = set(self.keys)
            self._update_cells([row for row in rows if row[0] in present])
            for key, cells in rows:
                if key not in present:
                    self.add_row(*cells, key=key)
            self._widths_may_change = True
            if self.keys != wanted:
                self._sort_like(wanted)
            if cursor in keep:
                self.move_cursor(row=wanted.index(cursor), scroll=False)

    def _update_cells(self, rows: Sequence[Row]) -> None:
        columns = [key for key, _ in self.COLUMNS]
        with self.app.batch_update():
            for key, cells in rows:
                for column, cell in zip(columns, cells, strict=True):
                    if self.get_cell(key, column) != cell:
                        self.update_cell(key, column, cell, update_width=True)
                        self._widths_may_change = True

    def _sort_like(self, wanted: list[str]) -> None:
        # sort() hands the key function a row's cells, not its key. Each row's first
        # cell is its own object, so its id() tells the rows apart.
        first = self.COLUMNS[0][0]
        rank = {id(self.get_cell(key, first)): index for index, key in enumerate(wanted)}
        self.sort(first, key=lambda cell: rank[id(cell)])

    def move_to_key(self, key: str) -> bool:
        keys = self.keys
        if key not in keys:
            return False
        self.move_cursor(row=keys.index(key))
        return True


def _own(cell: RenderableType) -> RenderableType:
    return Text(cell) if isinstance(cell, str) else cell
