"""The selected job's runs, newest first, keyed by run id."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding

from scheduler.store import RunRow
from tui import format as fmt
from tui.widgets.keyed_table import KeyedTable, Row


class HistoryTable(KeyedTable):
    BINDINGS = [Binding("enter", "select_cursor", "Run details")]
    COLUMNS = (
        ("slot", "slot (UTC)"),
        ("started", "started"),
        ("status", "status"),
        ("attempts", "tries"),
        ("http", "http"),
        ("took", "took"),
        ("late", "late"),
        ("note", "message / error"),
    )

    def show(self, runs: Sequence[RunRow]) -> None:
        self.show_rows([_row(run) for run in runs])


def _row(run: RunRow) -> Row:
    slot = Text(fmt.stamp(run.scheduled_at))
    if run.trigger == "manual":
        slot.append(" manual", style="cyan")
    note = Text(fmt.one_line(run.error), style="red") if run.error else Text(
        fmt.one_line(run.message))
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
