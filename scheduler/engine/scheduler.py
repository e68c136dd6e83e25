"""APScheduler's scheduler and executor as cronhost uses them: the bridge to the slot runner.

APScheduler decides WHEN slots are due (trigger, job store, next fire times);
cronhost decides WHAT happens to each due slot: claim and run it, skip it,
or record it as missed. APScheduler's own executors silently drop a slot that
starts past ``misfire_grace_time``; ours hands every due slot over instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.errors import first_line
from scheduler.logs import get_logger

SlotsDue = Callable[[str, list[datetime]], None]

log = get_logger("engine")


class SlotExecutor(BaseExecutor):  # type: ignore[misc]
    """Passes every due slot of a job to ``on_due(job_id, run_times)``.

    Overlap, grace and coalescing are the runner's decisions, so APScheduler's
    instance counting is bypassed entirely.
    """

    def __init__(self, on_due: SlotsDue) -> None:
        super().__init__()
        self._on_due = on_due

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._on_due(job.id, list(run_times))

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("SlotExecutor.submit_job does the work")


# Linux lets a long epoll timeout wake up to 0.1% late: a 60 s sleep fires ~60 ms late.
# Waking a second early and sleeping the rest brings that to ~1 ms.
EARLY_WAKE_SECONDS = 1.0
# Sleeping at most this long means a wall-clock jump is noticed promptly.
MAX_SLEEP_SECONDS = 30.0


class CronhostScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler that wakes precisely and survives store errors."""

    def _start_timer(self, wait_seconds: float | None) -> None:
        if wait_seconds is not None:
            wait_seconds = min(wait_seconds, MAX_SLEEP_SECONDS)
            if wait_seconds > EARLY_WAKE_SECONDS:
                wait_seconds -= EARLY_WAKE_SECONDS
        super()._start_timer(wait_seconds)

    def _process_jobs(self) -> float | None:
        # APScheduler lets an error from jobstore.update_job escape the wakeup, which
        # leaves no timer armed: the scheduler would never fire again. Retry instead.
        try:
            return super()._process_jobs()  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - anything here is a store fault
            log.error(
                "the job store failed while firing jobs; retrying",
                extra={"action": "store.error", "error": first_line(exc)},
            )
            return float(self.jobstore_retry_interval)


def fire_slot(job_id: str) -> None:
    """The callable APScheduler stores for every cronhost job.

    APScheduler's persistent job store needs an importable function; cronhost's
    SlotExecutor never calls it, because the runner needs the slot times too.
    """
    raise RuntimeError(f"job {job_id} must run through SlotExecutor")


__all__ = ["CronhostScheduler", "SlotExecutor", "fire_slot"]
