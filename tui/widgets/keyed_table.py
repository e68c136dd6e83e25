"""A DataTable whose rows are keyed (job id, run id) and updated in place, and whose
columns fit its width.

Every refresh hands the table the rows it should show, in order. Cells that
changed are updated with `update_cell`; rows that went away are removed; new
rows are added and the table is sorted into place. The cursor is put back on
the same key after any change: it follows the job or the run, not the row
number (both `sort()` and `remove_row()` keep the index, not the row).

Columns carry a rank: rank 0 is always shown; the others join, lowest rank
first, while they fit the width, so a narrow terminal loses the least important
columns instead of scrolling sideways (`fit_columns`, a pure function). Only when
the chosen columns or their widths change (a resize, a longer value) is the table
rebuilt; the cursor then stays on its key and in view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.widgets import DataTable

Row = tuple[str, Sequence[RenderableType]]
PADDING = 2  # DataTable's cell_padding, 1 each side


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    rank: int = 0  # 0: always shown; higher ranks drop out first as the table narrows
    # A floor for the width: room for values that come and go ("due 5m00s") so that
    # the columns do not jump for the second such a value is on screen. For a flex
    # column it is the least width worth showing.
    width: int = 0
    flex: bool = False  # takes the room left over; its cells end in "…" when cut
    # A flex column's width when ``width`` does not fit: it is then shown with what is
    # left (at least this), and no column of a higher rank joins. 0: not shown then.
    least: int = 0


def cell_width(cell: RenderableType) -> int:
    if isinstance(cell, Text):
        return cell.cell_len
    return cell_len(str(cell))


def fit_columns(columns: Sequence[Column], rows: Sequence[Row], width: int) -> dict[str, int]:
    """The columns to show in ``width`` cells and the width of each, in display order.

    Rank 0 columns are always shown (a sideways scroll only if even they do not fit);
    the others join by rank, then by position, while they fit; a flex column takes what
    is left, up to its longest cell.
    """
    natural = {}
    for index, column in enumerate(columns):
        longest = max((cell_width(cells[index]) for _, cells in rows), default=0)
        natural[column.key] = max(cell_len(column.label), column.width, longest)
    chosen = {column.key for column in columns if column.rank == 0}
    floors: dict[str, int] = {}  # flex columns shown: the least width each was given
    used = sum(natural[key] + PADDING for key in chosen)
    ordered = sorted((column for column in columns if column.rank > 0),
                     key=lambda column: column.rank)
    for column in ordered:
        floor = max(column.width, cell_len(column.label)) if column.flex else natural[column.key]
        if used + floor + PADDING > width and column.flex and column.least:
            floor = column.least  # squeezed in with what is left, if that is enough
            if used + floor + PADDING <= width:
                chosen.add(column.key)
                floors[column.key] = floor
                used += floor + PADDING
                break  # the room is its own: nothing of a higher rank joins
        if used + floor + PADDING <= width:
            chosen.add(column.key)
            used += floor + PADDING
            if column.flex:
                floors[column.key] = floor
    widths = {column.key: natural[column.key] for column in columns if column.key in chosen}
    for key, floor in floors.items():
        room = width - (used - floor - PADDING) - PADDING
        widths[key] = max(floor, min(natural[key], room))
    return widths


class KeyedTable(DataTable[RenderableType]):
    COLUMNS: tuple[Column, ...] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._rows: list[Row] = []
        self._widths: dict[str, int] = {}
        self._build({column.key: 0 for column in self.COLUMNS})

    @property
    def keys(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def shown_columns(self) -> list[str]:
        return list(self._widths)

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count or not self.is_valid_row_index(self.cursor_row):
            return None
        return str(self.ordered_rows[self.cursor_row].key.value)

    def value(self, key: str, column: str) -> RenderableType:
        """A cell as last handed in, whether or not its column is shown at this width."""
        index = [column.key for column in self.COLUMNS].index(column)
        return next(cells[index] for row_key, cells in self._rows if row_key == key)

    def on_resize(self, event: events.Resize) -> None:
        self._refit()

    def show_rows(self, rows: Sequence[Row]) -> None:
        # The first cell of every row must be an object of its own (see _sort_like);
        # equal short strings can be one interned object, a new Text never is.
        self._rows = [(key, [_own(cells[0]), *cells[1:]]) for key, cells in rows]
        if self._refit():
            return
        rows = [self._shown(row) for row in self._rows]
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
            if self.keys != wanted:
                self._sort_like(wanted)
            if cursor in keep:
                self.move_cursor(row=wanted.index(cursor), scroll=False)

    def _refit(self) -> bool:
        """Rebuild the table if its columns no longer fit its width; True if it did."""
        # Beside the vertical scrollbar whether or not it shows: a table that grows
        # past its height must not start scrolling sideways.
        width = self.size.width - self.styles.scrollbar_size_vertical
        if width <= 0:
            return False  # not laid out yet: on_resize fits it
        widths = fit_columns(self.COLUMNS, self._rows, width)
        if widths == self._widths:
            return False
        cursor, scroll_y = self.cursor_key, self.scroll_y
        with self.app.batch_update():
            self._build(widths)
            for key, cells in (self._shown(row) for row in self._rows):
                self.add_row(*cells, key=key)
            keys = self.keys
            if cursor in keys:
                self.scroll_y = scroll_y
                self.move_cursor(row=keys.index(cursor))  # and keep it in view
        return True

    def _build(self, widths: dict[str, int]) -> None:
        self.clear(columns=True)
        self._widths = widths
        for column in self.COLUMNS:
            if column.key in widths:
                self.add_column(column.label, key=column.key, width=widths[column.key] or None)

    def _shown(self, row: Row) -> Row:
        key, cells = row
        return key, [cell for column, cell in zip(self.COLUMNS, cells, strict=True)
                     if column.key in self._widths]

    def _update_cells(self, rows: Sequence[Row]) -> None:
        columns = self.shown_columns
        with self.app.batch_update():
            for key, cells in rows:
                for column, cell in zip(columns, cells, strict=True):
                    if self.get_cell(key, column) != cell:
                        self.update_cell(key, column, cell)

    def _sort_like(self, wanted: list[str]) -> None:
        # sort() hands the key function a row's cells, not its key. Each row's first
        # cell is its own object, so its id() tells the rows apart.
        first = self.COLUMNS[0].key
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
