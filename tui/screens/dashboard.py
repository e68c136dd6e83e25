"""The live overview: header, summary, jobs, the selected job's history; and the keys.

Focus: the jobs table has it at start and whenever a screen on top closes. Enter
on a job opens its runs (`RunsScreen`), Enter on a run its details, Esc goes back
one step. The history below the jobs is a preview of the selected job's newest
runs, shown when the screen has room for it after every job; Tab moves into it
and says so in the footer, Esc or Shift-Tab move back.

Polling is "worker fetches, on success render, re-arm a one-shot timer": a slow
store delays the next picture instead of piling up reads, and the UI thread
never waits on the database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from scheduler.store import Store
from tui.commands import CommandReceipt, send_command
from tui.data import DashboardSnapshot, JobView, fetch_snapshot
from tui.messages import CommandSent, SnapshotFailed, SnapshotReady
from tui.screens.audit_log import AuditLogScreen
from tui.screens.run_details import RunDetailsScreen
from tui.screens.runs import RunsScreen
from tui.screens.trends import TrendsScreen
from tui.widgets.header import DaemonHeader
from tui.widgets.history_table import HistoryTable
from tui.widgets.jobs_table import JobsTable, matches
from tui.widgets.summary import SummaryLine

REFRESH_SECONDS = 1.0
SELECTION_SETTLE_SECONDS = 0.1
NO_JOBS = "no jobs yet: start the daemon (cronhost run); it records here the jobs it runs"
JOB_ACTIONS = ("trigger", "pause", "resume", "trends")
# The history preview is shown only with this many lines left under every job
# (its border, header and four runs); else the jobs take the screen.
PREVIEW_LINES = 7
# Below this width the footer drops its padding (Textual's compact footer), so that
# every key still shows at 80 columns.
COMPACT_FOOTER_BELOW = 100


class DashboardScreen(Screen[None]):
    # Short words: at 80 columns every key of the footer must show.
    BINDINGS = [
        Binding("t", "trigger", "Trigger"),
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("f", "next_failing", "Failing",
                tooltip="Next job whose last run failed or whose 24 h success is below 100%"),
        Binding("g", "trends", "Trends"),
        Binding("slash", "filter", "Filter"),
        Binding("l", "audit_log", "Log", tooltip="Who did what: commands, reloads, the daemon"),
        Binding("tab", "focus_history", "History"),
        Binding("shift+tab", "focus_jobs", "Jobs"),
        Binding("escape", "back", "Back", show=False),
        Binding("ctrl+r,f5", "refresh", "Refresh", show=False),
    ]

    def __init__(self, store: Store, config_path: Path, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.store = store
        self.config_path = config_path
        self.clock = clock
        self.snapshot: DashboardSnapshot | None = None
        self.selected_job: str | None = None
        # Commands this dashboard sent and still waits on, by command id.
        self.watched: dict[int, CommandReceipt] = {}
        self._timer: Timer | None = None
        self._soon: Timer | None = None
        self._last_failure: str | None = None

    def compose(self) -> ComposeResult:
        yield DaemonHeader(id="header")
        yield SummaryLine(id="summary")
        yield Static(id="notice")
        yield Input(id="filter", placeholder="filter jobs (enter: keep, escape: clear)")
        yield JobsTable(id="jobs")
        yield HistoryTable(id="history")
        yield Footer()

    def on_mount(self) -> None:
        self.jobs.border_title = "jobs"
        self.history.border_title = "history"
        self.jobs.focus()
        self.refresh_now()

    def on_screen_resume(self) -> None:
        # Back from runs, details or trends: the arrows move in the jobs again.
        self.jobs.focus()

    def on_resize(self, event: events.Resize) -> None:
        self.query_one(Footer).compact = event.size.width < COMPACT_FOOTER_BELOW
        self.call_after_refresh(self._fit_preview)

    def _fit_preview(self) -> None:
        """Show the history preview only where every job fits above it."""
        above = sum(widget.outer_size.height for widget in (
            self.query_one(DaemonHeader), self.query_one(SummaryLine),
            self.query_one("#notice"), self.filter_input) if widget.display)
        room = self.size.height - above - 1  # the footer
        needed = self.jobs.row_count + 3  # the border and the header
        roomy = room - needed >= PREVIEW_LINES
        if roomy == self.has_class("-preview"):
            return
        self.set_class(roomy, "-preview")
        if not roomy and self.history.has_focus:
            self.jobs.focus()
        self.refresh_bindings()

    @property
    def jobs(self) -> JobsTable:
        return self.query_one(JobsTable)

    @property
    def history(self) -> HistoryTable:
        return self.query_one(HistoryTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter", Input)

    # -- polling ------------------------------------------------------------------------

    def refresh_now(self) -> None:
        self.fetch(self.selected_job, tuple(self.watched), self.clock())

    @work(thread=True, exit_on_error=False, exclusive=True, group="refresh")
    def fetch(self, selected: str | None, watched: tuple[int, ...], now: datetime) -> None:
        try:
            snapshot = fetch_snapshot(self.store, now=now, config_path=str(self.config_path),
                                      selected_job=selected, watched=watched)
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the polling
            message: SnapshotReady | SnapshotFailed = SnapshotFailed(
                f"{type(exc).__name__}: {exc}")
        else:
            message = SnapshotReady(snapshot)
        # A newer fetch (the selection moved, ctrl+r) replaced this one: drop its result.
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REFRESH_SECONDS, self.refresh_now)

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        self._last_failure = None
        fresh = message.snapshot
        if fresh.transient and self.snapshot is not None and self.snapshot.problem is None:
            # Keep the last good tables on screen; only say why they are not moving.
            self._show_notice(fresh)
            self._arm()
            return
        self.snapshot = fresh
        self.render_snapshot()
        self._report_finished_commands(message.snapshot)
        self._arm()

    def on_snapshot_failed(self, message: SnapshotFailed) -> None:
        if message.error != self._last_failure:
            self._last_failure = message.error
            self.notify(f"refresh failed: {message.error}", severity="error", timeout=10)
        self._arm()

    # -- rendering ----------------------------------------------------------------------

    def render_snapshot(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self.query_one(DaemonHeader).show(snapshot)
        self.query_one(SummaryLine).show(snapshot.summary)
        self._show_notice(snapshot)
        self._show_jobs(snapshot)
        if snapshot.history_job is not None and snapshot.history_job == self.selected_job:
            self.history.border_title = f"history of {snapshot.history_job}"
            self.history.show(snapshot.history)
        elif not snapshot.jobs:
            self.history.border_title = "history"
            self.history.show([])
        self._fit_preview()
        self.refresh_bindings()

    def _show_notice(self, snapshot: DashboardSnapshot) -> None:
        notice = self.query_one("#notice", Static)
        if snapshot.problem and snapshot.transient and self.snapshot is not None:
            notice.update(Text(f"{snapshot.problem} (retrying; showing the last good read, "
                               f"from {self.snapshot.taken_at:%H:%M:%S}Z)"))
        elif snapshot.problem:
            notice.update(Text(f"cannot read the store: {snapshot.problem}"))
        elif not snapshot.jobs:
            notice.update(NO_JOBS)
        notice.set_class(bool(snapshot.problem or not snapshot.jobs), "shown")
        notice.set_class(bool(snapshot.problem), "error")

    def _show_jobs(self, snapshot: DashboardSnapshot) -> None:
        text = self.filter_input.value
        visible = [job for job in snapshot.jobs if matches(job, text)]
        self.jobs.show(visible, snapshot.taken_at)
        title = "jobs"
        if text.strip():
            title += f" matching {text.strip()!r} ({len(visible)} of {len(snapshot.jobs)})"
        self.jobs.border_title = title
        self._follow_cursor()

    def _follow_cursor(self) -> None:
        """The selected job is whatever the cursor is on; a change fetches its history."""
        key = self.jobs.cursor_key
        if key == self.selected_job:
            return
        # None when the filter hides every job: then no action may touch a hidden one.
        self.selected_job = key
        self.history.border_title = f"history of {key}" if key else "history"
        self.refresh_bindings()
        if key is not None and (self.snapshot is None or self.snapshot.history_job != key):
            self._refresh_soon()

    def _refresh_soon(self) -> None:
        """A refresh shortly after the cursor stops: holding an arrow key down through
        the jobs must not start one store read per row passed."""
        if self._soon is not None:
            self._soon.stop()
        self._soon = self.set_timer(SELECTION_SETTLE_SECONDS, self.refresh_now)

    def _report_finished_commands(self, snapshot: DashboardSnapshot) -> None:
        for command in snapshot.watched:
            if command.state not in ("done", "failed"):
                continue
            receipt = self.watched.pop(command.id, None)
            if receipt is None:
                continue
            what = f"{command.kind} of {command.job_id}"
            if command.state == "done":
                run = f" (run {command.run_id})" if command.run_id else ""
                self.notify(f"{what}: done by the daemon, {command.result or 'ok'}{run}")
            else:
                self.notify(f"{what}: the daemon refused: {command.result or 'no reason given'}",
                            severity="error", timeout=10)

    # -- events -------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table is self.jobs:
            self._follow_cursor()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.jobs:
            self.open_runs(str(event.row_key.value))
            return
        run = next((run for run in self.snapshot.history if str(run.id) == event.row_key.value),
                   None) if self.snapshot is not None else None
        if run is not None:
            self.app.push_screen(RunDetailsScreen(run, self.store, self.clock))

    def open_runs(self, job_id: str) -> None:
        job = self.snapshot.job(job_id) if self.snapshot is not None else None
        subtitle = ""
        if job is not None:
            status = job.status
            subtitle = f"{status.schedule_words} ({status.schedule})"
            if status.description:
                subtitle += f" · {status.description}"
        self.app.push_screen(RunsScreen(job_id, self.store, self.clock, subtitle))

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.snapshot is not None:
            self._show_jobs(self.snapshot)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.action_clear_filter()
        else:
            self.jobs.focus()

    # -- actions ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in JOB_ACTIONS:
            job = self.selected()
            if job is None or (self.snapshot is not None and self.snapshot.problem):
                return None
            # Dim what would change nothing; a trigger with the daemon down stays
            # enabled so that pressing it says why it cannot run.
            if action == "pause" and job.status.paused:
                return None
            if action == "resume" and not job.status.paused:
                return None
        if action == "focus_history":
            # Hidden (False) where there is no preview: Tab then does what it always does.
            return self.has_class("-preview") and self.jobs.has_focus
        if action == "focus_jobs":
            return self.history.has_focus
        return True

    def selected(self) -> JobView | None:
        return self.snapshot.job(self.selected_job) if self.snapshot is not None else None

    def _visible(self) -> list[JobView]:
        if self.snapshot is None:
            return []
        return [job for job in self.snapshot.jobs if matches(job, self.filter_input.value)]

    def action_trigger(self) -> None:
        self._request("trigger")

    def action_pause(self) -> None:
        self._request("pause")

    def action_resume(self) -> None:
        self._request("resume")

    def _request(self, kind: str) -> None:
        if self.selected_job is None:
            self.notify("no job selected", severity="warning")
            return
        self.send(kind, self.selected_job, self.clock())

    @work(thread=True, exit_on_error=False, group="commands")
    def send(self, kind: str, job_id: str, now: datetime) -> None:
        self.post_message(CommandSent(send_command(self.store, kind, job_id, now)))

    def on_command_sent(self, message: CommandSent) -> None:
        receipt = message.receipt
        timeout = 10 if receipt.severity != "information" else 4
        self.notify(receipt.message, severity=receipt.severity, timeout=timeout)
        if receipt.command_id is not None:
            self.watched[receipt.command_id] = receipt
        self.refresh_now()

    def action_filter(self) -> None:
        self.filter_input.display = True
        self.filter_input.focus()

    def action_focus_history(self) -> None:
        self.history.focus()

    def action_focus_jobs(self) -> None:
        self.jobs.focus()

    def action_back(self) -> None:
        """Esc: out of the history preview first, then the filter goes."""
        if self.history.has_focus:
            self.jobs.focus()
        elif self.filter_input.display:
            self.action_clear_filter()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.refresh_bindings()  # Tab / Shift-Tab in the footer follow the focus

    def action_clear_filter(self) -> None:
        self.filter_input.value = ""
        self.filter_input.display = False
        self.jobs.focus()
        if self.snapshot is not None:
            self._show_jobs(self.snapshot)

    def action_next_failing(self) -> None:
        visible = self._visible()
        ids = [job.job_id for job in visible]
        start = ids.index(self.selected_job) + 1 if self.selected_job in ids else 0
        for job in visible[start:] + visible[:start]:
            if job.needs_a_look:
                self.jobs.move_to_key(job.job_id)
                self.jobs.focus()
                return
        # Always enabled: pressed with nothing to find, it says so rather than nothing.
        self.notify("no job failed lately: every last run went well and every 24 h success "
                    "rate is 100 %")

    def action_refresh(self) -> None:
        self.refresh_now()

    def action_audit_log(self) -> None:
        self.app.push_screen(AuditLogScreen(self.store, self.clock))

    def action_trends(self) -> None:
        job = self.selected()
        if job is None:
            self.notify("no job selected", severity="warning")
            return
        reason = job.status.paused_reason if job.status.auto_disabled else None
        self.app.push_screen(TrendsScreen(job.job_id, self.store, self.clock, reason))
