"""The report read model: each job's numbers over a window (`cronhost report`, the trends).

What counts as what (README lists it for `--json`):

    due           slots of the job's schedule in the window (missed ones too)
    runs          runs that called the job: ok + failed + timeout + abandoned
                  (manual triggers count; skipped and missed slots did not run)
    success_rate  ok / runs, 0..1; None when nothing ran
    error_rate    (failed + timeout) / runs; abandoned runs are neither (their end is unknown)
    duration_ms   p50, p95, max over ok, failed and timed-out runs
    lateness_ms   p50, p99 of start - slot over those runs, scheduled ones only
    errors        failed and timed-out runs by kind, most frequent first

The numbers are computed in the database (``scheduler.store.report``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scheduler.store import Store
from scheduler.store.report import JobFigures, job_figures
from scheduler.store.rows import iso
from scheduler.views.text import duration_ms, table

__all__ = ["ERROR_LABELS", "JobReport", "job_reports", "report_table"]

# How the kinds read for people (the JSON keeps the short names).
ERROR_LABELS = {
    "http_5xx": "HTTP 5xx", "http_4xx": "HTTP 4xx", "http_3xx": "HTTP 3xx (redirect)",
    "timeout": "timeout", "connection": "connection", "success_false": "success: false",
    "python_exception": "python exception", "other": "other",
}


@dataclass(frozen=True)
class JobReport:
    job_id: str
    since: datetime
    until: datetime
    due: int = 0
    ok: int = 0
    failed: int = 0
    timeout: int = 0
    missed: int = 0
    skipped: int = 0
    abandoned: int = 0
    running: int = 0
    manual: int = 0
    duration_ms: dict[str, int | None] = field(default_factory=dict)
    lateness_ms: dict[str, int | None] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return self.ok + self.failed + self.timeout + self.abandoned

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.runs if self.runs else None

    @property
    def error_rate(self) -> float | None:
        return (self.failed + self.timeout) / self.runs if self.runs else None

    @classmethod
    def from_figures(cls, figures: JobFigures, since: datetime, until: datetime) -> JobReport:
        counts = figures.statuses
        return cls(
            job_id=figures.job_id, since=since, until=until, due=figures.due,
            ok=counts.get("ok", 0), failed=counts.get("failed", 0),
            timeout=counts.get("timeout", 0), missed=counts.get("missed", 0),
            skipped=counts.get("skipped", 0), abandoned=counts.get("abandoned", 0),
            running=counts.get("running", 0), manual=figures.manual,
            duration_ms=dict(figures.duration), lateness_ms=dict(figures.lateness),
            errors=dict(figures.errors),
        )

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` form: scripts parse these names (README lists them)."""
        return {
            "job_id": self.job_id,
            "since": iso(self.since),
            "until": iso(self.until),
            "due": self.due,
            "runs": self.runs,
            "ok": self.ok,
            "failed": self.failed,
            "timeout": self.timeout,
            "missed": self.missed,
            "skipped": self.skipped,
            "abandoned": self.abandoned,
            "running": self.running,
            "manual": self.manual,
            "success_rate": self.success_rate,
            "error_rate": self.error_rate,
            "duration_ms": {key: self.duration_ms.get(key) for key in ("p50", "p95", "max")},
            "lateness_ms": {key: self.lateness_ms.get(key) for key in ("p50", "p99")},
            "errors": dict(self.errors),
        }


def job_reports(
    store: Store, since: datetime, until: datetime, job_ids: Iterable[str] | None = None
) -> list[JobReport]:
    return [JobReport.from_figures(figures, since, until)
            for figures in job_figures(store, since, until, job_ids)]


def percent(rate: float | None) -> str:
    """'97.5%'; a failure never rounds away to 100%."""
    if rate is None:
        return "-"
    shown = f"{rate * 100:.1f}"
    if shown == "100.0" and rate < 1:
        shown = "99.9"
    return f"{shown}%"


def report_table(reports: Sequence[JobReport]) -> str:
    """The text form: the counts, then the times and errors (two tables, so each fits a
    terminal)."""
    counts = table(
        ("job", "due", "runs", "ok", "failed", "timeout", "missed", "skipped", "abandoned",
         "success"),
        [(r.job_id, r.due, r.runs, r.ok, r.failed, r.timeout, r.missed, r.skipped, r.abandoned,
          percent(r.success_rate)) for r in reports],
    )
    times = table(
        ("job", "p50", "p95", "max", "late p50", "late p99", "errors"),
        [(r.job_id, duration_ms(r.duration_ms.get("p50")), duration_ms(r.duration_ms.get("p95")),
          duration_ms(r.duration_ms.get("max")), duration_ms(r.lateness_ms.get("p50")),
          duration_ms(r.lateness_ms.get("p99")), error_words(r)) for r in reports],
    )
    return f"{counts}\n\n{times}"


def error_words(report: JobReport) -> str:
    """'4.2%: HTTP 5xx 3, timeout 1', or '-' when nothing failed."""
    if not report.errors:
        return "-"
    kinds = ", ".join(f"{ERROR_LABELS.get(kind, kind)} {count}"
                      for kind, count in report.errors.items())
    return f"{percent(report.error_rate)}: {kinds}"
