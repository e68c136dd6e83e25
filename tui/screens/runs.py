"""One job's runs, the whole screen: what Enter on a job opens.

Enter on a run opens its details; Esc goes back to the jobs. Polls like the
dashboard: a thread worker reads, the screen renders, a one-shot timer re-arms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from scheduler.store import Store
from tui.data import RunsSnapshot, fetch_runs
from tui.screens.run_details import RunDetailsScreen
from tui.widgets.history_table import HistoryTable

REFRESH_SECONDS = 2.0


class RunsReady(Message):
    def __init__(self, snapshot: RunsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "app.pop_screen", "Back to jobs"),
        Binding("ctrl+r,f5", "refresh", "Refresh"),
    ]

    def __init__(self, job_id: str, store: Store, clock: Callable[[], datetime],
                 subtitle: str = "") -> None:
        super().__init__()
        self.job_id = job_id
        self.store = store
        self.clock = clock
        self.subtitle = subtitle
        self.snapshot: RunsSnapshot | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title")
        yield HistoryTable(id="runs")
        yield Footer()

    @property
    def table(self) -> HistoryTable:
        return self.query_one(HistoryTable)

    def on_mount(self) -> None:
        self.table.border_title = "runs, newest first"
        self.query_one("#runs-title", Static).update(self._title())
        self.table.focus()
        self.action_refresh()

    def on_screen_resume(self) -> None:
        self.table.focus()  # back from a run's details: the arrows move in the runs

    def action_refresh(self) -> None:
        self.fetch(self.clock())

    @work(thread=True, exit_on_error=False, exclusive=True, group="runs")
    def fetch(self, now: datetime) -> None:
        snapshot = fetch_runs(self.store, self.job_id, now)
        if not get_current_worker().is_cancelled:
            self.post_message(RunsReady(snapshot))

    def on_runs_ready(self, message: RunsReady) -> None:
        self.snapshot = message.snapshot
        if message.snapshot.problem is None:
            self.table.show(message.snapshot.runs)
            count = len(message.snapshot.runs)
            self.table.border_title = f"{count:,} run{'s' if count != 1 else ''}, newest first"
        self.query_one("#runs-title", Static).update(self._title())
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REFRESH_SECONDS, self.action_refresh)

    def _title(self) -> Text:
        text = Text(f"runs of {self.job_id}", style="bold")
        if self.subtitle:
            text.append(f"  {self.subtitle}", style="dim")
        snapshot = self.snapshot
        if snapshot is not None and snapshot.problem:
            text.append(f"  cannot read the store: {snapshot.problem}", style="red")
        elif snapshot is not None and not snapshot.runs:
            text.append("  no runs yet", style="dim")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        runs = self.snapshot.runs if self.snapshot is not None else ()
        run = next((run for run in runs if str(run.id) == event.row_key.value), None)
        if run is not None:
            self.app.push_screen(RunDetailsScreen(run, self.store, self.clock))
