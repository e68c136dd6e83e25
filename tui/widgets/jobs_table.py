"""The jobs table: one row per job, keyed by job id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.console import RenderableType
from rich.text import Text

from tui import format as fmt
from tui.data import JobView
from tui.widgets.keyed_table import KeyedTable, Row


class JobsTable(KeyedTable):
    # What an operator scans first comes first: at 80 columns a row still shows the
    # job, its state, when it fires next and how its last run went; at 100, the HTTP
    # status, the 24 h success rate and the schedule. The rest is a scroll away.
    COLUMNS = (
        ("job", "job"),
        ("state", "state"),
        ("next", "next in"),
        ("last", "last"),
        ("ago", "ago"),
        ("took", "took"),
        ("http", "http"),
        ("rate", "ok 24h"),
        ("schedule", "schedule"),
        ("trend", "took, last 20"),
        ("words", "in words"),
    )

    # Room for "paused ⧗resume" from the start: a pending command must not make
    # every column to its right jump sideways for the second it is pending.
    WIDTHS = {"state": 14}

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
    for command in job.pending:
        # Shown until the daemon has acted on it: pending, then taken, then gone.
        text.append(f" ⧗{command.kind}", style="bold cyan")
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
    job_cell = Text(status.job_id, style="bold red" if job.failing else "")
    return (status.job_id, [
        job_cell,
        _state(job),
        next_cell,
        fmt.status(status.last_status),
        fmt.ago(status.last_run_at, now),
        fmt.took(status.last_duration_ms),
        str(status.last_http_status or "-"),
        fmt.rate(status.ok_24h, status.runs_24h),
        status.schedule,
        fmt.sparkline(job.trend),
        status.schedule_words,
    ])
