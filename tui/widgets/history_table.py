"""One job's runs, newest first, keyed by run id.

At 80 columns a row keeps the slot, how it ended, how long it took and as much of
the message as fits (the whole of it is on the run's own screen); tries, HTTP
status, lateness and the start time join as the width allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding

from scheduler.store import RunRow
from scheduler.views.text import one_line
from tui import format as fmt
from tui.widgets.keyed_table import Column, KeyedTable, Row


class HistoryTable(KeyedTable):
    BINDINGS = [Binding("enter", "select_cursor", "Run details")]
    COLUMNS = (
        Column("slot", "slot (UTC)"),
        Column("started", "started", rank=5),
        Column("status", "status", width=6),
        Column("attempts", "tries", rank=2),
        Column("http", "http", rank=3),
        Column("took", "took", width=6),
        Column("late", "late", rank=4, width=5),
        # 40 cells before tries, http and late join; at 80 columns a "manual" slot leaves
        # less, and 16 are still worth showing.
        Column("note", "error · message", rank=1, width=40, flex=True, least=16),
    )

    def show(self, runs: Sequence[RunRow]) -> None:
        self.show_rows([_row(run) for run in runs])


def _row(run: RunRow) -> Row:
    slot = Text(fmt.stamp(run.scheduled_at))
    if run.trigger == "manual":
        slot.append(" manual", style="cyan")
    # cronhost's reason first, then what the endpoint said about it.
    note = Text(one_line(run.error), style="red") if run.error else Text()
    if run.message:
        note.append((" · " if run.error else "") + one_line(run.message))
    note.no_wrap, note.overflow = True, "ellipsis"  # cut to the room left, visibly
    return (str(run.id), [
        slot,
        fmt.clock(run.started_at),
        fmt.status(run.status, run.slot_count),
        str(run.attempts),
        str(run.http_status or "-"),
        fmt.took(run.duration_ms),
        fmt.took(run.lateness_ms),
        note,
    ])
