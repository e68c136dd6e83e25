"""Read models shared by `cronhost status` and the dashboard: one row per job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.config import Config
from scheduler.schedule import describe, next_fire_times, schedule_words
from scheduler.store import Store
from scheduler.store.rows import iso


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    kind: str
    schedule: str
    timezone: str
    description: str
    target: str
    schedule_words: str
    next_run_at: datetime | None
    enabled: bool
    paused: bool
    last_status: str | None
    last_run_at: datetime | None
    last_duration_ms: int | None
    last_http_status: int | None
    consecutive_failures: int
    runs_24h: int
    ok_24h: int
    # Why cronhost paused the job itself ("auto-disabled after 25 failures"); None otherwise.
    paused_reason: str | None = None

    @property
    def auto_disabled(self) -> bool:
        return self.paused and self.paused_reason is not None

    @property
    def state(self) -> str:
        """disabled (in config), auto-disabled (by auto_disable_after), paused or active."""
        if not self.enabled:
            return "disabled"
        if self.paused:
            return "auto-disabled" if self.auto_disabled else "paused"
        return "active"

    @property
    def success_rate_24h(self) -> float | None:
        return self.ok_24h / self.runs_24h if self.runs_24h else None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "description": self.description,
            "schedule_words": self.schedule_words,
            "target": self.target,
            "next_run_at": iso(self.next_run_at),
            "enabled": self.enabled,
            "paused": self.paused,
            "paused_reason": self.paused_reason,
            "last_status": self.last_status,
            "last_run_at": iso(self.last_run_at),
            "last_duration_ms": self.last_duration_ms,
            "last_http_status": self.last_http_status,
            "consecutive_failures": self.consecutive_failures,
            "runs_24h": self.runs_24h,
            "success_rate_24h": self.success_rate_24h,
        }


# Statuses that count as a run in success rates; missed and skipped slots did not run.
RAN = ("ok", "failed", "timeout", "abandoned")


def job_statuses(
    store: Store,
    config: Config | None = None,
    now: datetime | None = None,
    counts_24h: dict[str, dict[str, int]] | None = None,
) -> list[JobStatus]:
    """Every job the daemon runs (from the store), or, before it first ran, from config.

    ``counts_24h`` (Store.counts_since 24 h before ``now``) may be passed by a caller that
    needs it too, so that the window is read once.
    """
    now = now or datetime.now(UTC)
    has_store = not store.missing() and store.check_readable()
    stored = {row.job_id: row for row in store.jobs()} if has_store else {}
    daemon = store.latest_daemon() if stored else None
    # A stopped daemon fires nothing: a countdown would promise a run that will not happen.
    will_fire = daemon is not None and daemon.is_up(now)
    latest = store.latest_runs(stored or [job.id for job in (config.jobs if config else ())]) if has_store else {}
    if counts_24h is None:
        counts_24h = store.counts_since(now - timedelta(hours=24)) if has_store else {}
    counts = counts_24h
    statuses: list[JobStatus] = []
    if stored:
        for job_id, job in stored.items():
            last = latest.get(job_id)
            ran = counts.get(job_id, {})
            statuses.append(JobStatus(
                job_id=job_id, kind=job.kind, schedule=job.schedule, timezone=job.timezone,
                description=job.description, target=job.target,
                schedule_words=schedule_words(job.schedule),
                next_run_at=job.next_run_at if job.enabled and not job.paused and will_fire else None,
                enabled=job.enabled, paused=job.paused,
                last_status=last.status if last else None,
                last_run_at=(last.started_at or last.scheduled_at) if last else None,
                last_duration_ms=last.duration_ms if last else None,
                last_http_status=last.http_status if last else None,
                consecutive_failures=job.consecutive_failures,
                runs_24h=sum(ran.get(status, 0) for status in RAN), ok_24h=ran.get("ok", 0),
                paused_reason=job.paused_reason,
            ))
        return statuses
    for spec in config.jobs if config else ():
        timetable = spec.timetable()
        statuses.append(JobStatus(
            job_id=spec.id, kind=spec.kind, schedule=spec.schedule_text, timezone=spec.timezone,
            description=spec.description, target=spec.target,
            schedule_words=describe(timetable),
            next_run_at=next_fire_times(timetable, 1, now)[0] if spec.enabled else None,
            enabled=spec.enabled, paused=False, last_status=None, last_run_at=None,
            last_duration_ms=None, last_http_status=None, consecutive_failures=0,
            runs_24h=0, ok_24h=0,
        ))
    return statuses
