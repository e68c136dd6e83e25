"""The jobs table: one row per job, keyed by job id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import RenderableType
from rich.text import Text
from textual.binding import Binding

from tui import format as fmt
from tui.data import JobView
from tui.widgets.keyed_table import Column, KeyedTable, Row


class JobsTable(KeyedTable):
    BINDINGS = [Binding("enter", "select_cursor", "Runs")]
    # What an operator scans first comes first and never drops out: the job, its
    # state, when it fires next and how its last run went (about 70 cells with the
    # longest LeadMap id). Then, as the width allows, lowest rank first: how long
    # ago (80 columns), the schedule in words, the 24 h success rate, the last
    # duration and HTTP status (120), the cron expression and the durations trend.
    COLUMNS = (
        Column("job", "job"),
        # Room for "paused ⧗resume" and "active ⧗trigger" from the start: a pending
        # command must not make every column to its right jump sideways.
        Column("state", "state", width=15),
        Column("next", "next in", width=9),  # "due 5m00s"
        Column("last", "last", width=6),
        Column("ago", "ago", rank=1, width=6),
        Column("took", "took", rank=4, width=6),
        Column("http", "http", rank=5),
        Column("rate", "ok 24h", rank=3),
        Column("words", "in words", rank=2),
        Column("schedule", "schedule", rank=6),
        Column("trend", "took, last 20", rank=7, width=13),
    )

    def show(self, jobs: Sequence[JobView], now: datetime) -> None:
        self.show_rows([_row(job, now) for job in jobs])


def matches(job: JobView, text: str) -> bool:
    """The filter: any word of the job the operator can see (id, schedule, target, description)."""
    needle = text.strip().lower()
    if not needle:
        return True
    status = job.status
    haystack = " ".join((status.job_id, status.schedule, status.schedule_words, status.target,
                         status.description, status.last_status or "", state_word(job)))
    return needle in haystack.lower()


def state_word(job: JobView) -> str:
    """disabled, auto-disabled (cronhost paused it after N failures), paused or active."""
    return job.status.state


STATE_STYLES = {"disabled": "dim", "paused": "yellow", "auto-disabled": "bold red"}


def _state(job: JobView) -> Text:
    word = state_word(job)
    text = Text(word, style=STATE_STYLES.get(word, "green"))
    if job.pending:
        # Shown until the daemon has acted on it: pending, then taken, then gone. The
        # newest only, and how many more, so that the cell stays narrow.
        text.append(f" ⧗{job.pending[-1].kind}", style="bold cyan")
        if len(job.pending) > 1:
            text.append(f"+{len(job.pending) - 1}", style="cyan")
    return text


def _row(job: JobView, now: datetime) -> Row:
    status = job.status
    if not status.enabled:
        next_cell: RenderableType = Text("disabled", style="dim")
    elif status.paused:
        next_cell = Text("auto-off" if status.auto_disabled else "paused",
                         style="bold red" if status.auto_disabled else "yellow")
    else:
        next_cell = fmt.countdown(status.next_run_at, now)
    # Red: the last run failed; yellow: it went well, but not every run of the last
    # 24 h did. Both are what `f` stops at.
    style = "bold red" if job.failing else "yellow" if job.flaky else ""
    return (status.job_id, [
        Text(status.job_id, style=style),
        _state(job),
        next_cell,
        fmt.status(status.last_status),
        fmt.ago(status.last_run_at, now),
        fmt.took(status.last_duration_ms),
        str(status.last_http_status or "-"),
        fmt.rate(status.ok_24h, status.runs_24h),
        status.schedule_words,
        status.schedule,
        fmt.sparkline(job.trend),
    ])
