"""One job's trends: success rate and run times over 1 h, 24 h and 7 days, and a chart of
the last day's runs. Polls like the dashboard: a worker fetches, the screen renders,
a one-shot timer re-arms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from scheduler.store import Store
from scheduler.views.report import ERROR_LABELS, JobReport, percent
from scheduler.views.text import duration_ms
from tui.trends import CHART_WINDOW, TrendsSnapshot, fetch_trends
from tui.widgets.run_chart import RunChart

REFRESH_SECONDS = 5.0


class TrendsReady(Message):
    def __init__(self, snapshot: TrendsSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class TrendsScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace,g", "app.pop_screen", "Back"),
        Binding("ctrl+r,f5", "refresh", "Refresh"),
    ]

    def __init__(self, job_id: str, store: Store, clock: Callable[[], datetime],
                 auto_disabled: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.store = store
        self.clock = clock
        self.auto_disabled = auto_disabled
        self.snapshot: TrendsSnapshot | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="trends-title")
        yield Static(id="trends-table")
        yield RunChart(id="trends-chart")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#trends-title", Static).update(self._title(None))
        self.action_refresh()

    def action_refresh(self) -> None:
        self.fetch(self.clock())

    @work(thread=True, exit_on_error=False, exclusive=True, group="trends")
    def fetch(self, now: datetime) -> None:
        snapshot = fetch_trends(self.store, self.job_id, now)
        if not get_current_worker().is_cancelled:
            self.post_message(TrendsReady(snapshot))

    def on_trends_ready(self, message: TrendsReady) -> None:
        self.snapshot = snapshot = message.snapshot
        self.query_one("#trends-title", Static).update(self._title(snapshot))
        self.query_one("#trends-table", Static).update(windows_table(snapshot))
        self.query_one(RunChart).show(snapshot.points, snapshot.taken_at - CHART_WINDOW,
                                      snapshot.taken_at)
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REFRESH_SECONDS, self.action_refresh)

    def _title(self, snapshot: TrendsSnapshot | None) -> Text:
        text = Text(f"trends of {self.job_id}", style="bold")
        if self.auto_disabled:
            text.append(f"  {self.auto_disabled}", style="bold red")
        if snapshot is not None and snapshot.problem:
            text.append(f"  cannot read the store: {snapshot.problem}", style="red")
        elif snapshot is not None:
            text.append(f"  at {snapshot.taken_at:%H:%M:%S}Z; last day's runs below",
                        style="dim")
        return text


def windows_table(snapshot: TrendsSnapshot) -> Table:
    table = Table(box=None, padding=(0, 1), header_style="bold", expand=False)
    for name, justify in (("window", "left"), ("runs", "right"), ("success", "right"),
                          ("p50", "right"), ("p95", "right"), ("missed", "right"),
                          ("top error", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for label, report in snapshot.windows:
        table.add_row(label, f"{report.runs:,}", _rate(report),
                      duration_ms(report.duration_ms.get("p50")),
                      duration_ms(report.duration_ms.get("p95")), f"{report.missed:,}",
                      _top_error(report))
    return table


def _rate(report: JobReport) -> Text:
    rate = report.success_rate
    if rate is None:
        return Text("-", style="dim")
    style = "green" if rate >= 0.99 else "yellow" if rate >= 0.9 else "bold red"
    return Text(percent(rate), style=style)


def _top_error(report: JobReport) -> str:
    if not report.errors:
        return "-"
    kind, count = next(iter(report.errors.items()))
    return f"{ERROR_LABELS.get(kind, kind)} x{count}"
