"""What the trends screen shows of one job: its numbers over 1 h, 24 h and 7 days, and the
last day's runs; read in one go by a thread worker, like the dashboard's snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import CronhostError
from scheduler.store import Store
from scheduler.store.report import RunPoint, run_points
from scheduler.views.report import JobReport, job_reports

WINDOWS = (("1 h", timedelta(hours=1)), ("24 h", timedelta(hours=24)),
           ("7 d", timedelta(days=7)))
CHART_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class TrendsSnapshot:
    job_id: str
    taken_at: datetime
    windows: tuple[tuple[str, JobReport], ...] = ()
    points: tuple[RunPoint, ...] = ()  # the last day's runs that have a duration
    problem: str | None = None


def fetch_trends(store: Store, job_id: str, now: datetime) -> TrendsSnapshot:
    """All reads of one trends refresh. Store problems come back as ``problem``."""
    try:
        if not store.check_readable():
            return TrendsSnapshot(job_id, now, problem="no store yet")
        windows = tuple((label, job_reports(store, now - span, now, [job_id])[0])
                        for label, span in WINDOWS)
        points = tuple(run_points(store, job_id, now - CHART_WINDOW, now))
    except (CronhostError, SQLAlchemyError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
        return TrendsSnapshot(job_id, now, problem=first[0] if first else type(exc).__name__)
    return TrendsSnapshot(job_id, now, windows, points)
