"""The audit log's events, newest first, keyed by event id.

At 80 columns a row keeps the time, the kind and as much of the summary as fits
(the whole event is on its own screen); the job and who asked join as the width
allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding

from scheduler.store.audit import EventRow
from scheduler.views.text import one_line
from tui import format as fmt
from tui.widgets.keyed_table import Column, KeyedTable, Row


class EventsTable(KeyedTable):
    BINDINGS = [Binding("enter", "select_cursor", "Details")]
    COLUMNS = (
        Column("at", "time (UTC)"),
        Column("who", "who", rank=2),
        Column("kind", "kind"),
        Column("job", "job", rank=3),
        Column("summary", "summary", rank=1, width=30, flex=True),
    )

    def show(self, rows: Sequence[EventRow]) -> None:
        self.show_rows([_row(row) for row in rows])


def _row(event: EventRow) -> Row:
    summary = Text(one_line(event.summary),
                   style="red" if event.kind.endswith("failed") else "")
    summary.no_wrap, summary.overflow = True, "ellipsis"
    return (str(event.id), [
        Text(fmt.stamp(event.at)),
        event.who,
        Text(event.kind, style="yellow" if event.kind.startswith("config.") else ""),
        event.job_id or "-",
        summary,
    ])
