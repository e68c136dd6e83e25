"""APScheduler's scheduler as cronhost uses it: it says WHEN; one wake-up hands over all that is due.

APScheduler 3's own wake-up (``_process_jobs``) submits each due job to an
executor and then writes that job's next fire time, one job-store transaction
per job, on the event loop. With 1,000 jobs due at once that serialises
dispatch behind 1,000 transactions and leaves a crash window between a job's
claim and its advance. :class:`CronhostScheduler` replaces that wake-up:

1. in the store thread, read the due jobs, work out each one's due fire times
   and its next fire time (APScheduler's own trigger and Job logic);
2. hand them all to ``on_wake`` (the runner), which claims every slot and
   advances every job in ONE store transaction, then dispatches;
3. sleep until the next fire time, waking a second early to be on time
   (Linux wakes a long epoll timeout up to 0.1 % late).

If step 2 fails (the store is down), nothing was written: the jobs are still
due, and the next wake-up, ``jobstore_retry_interval`` later, tries again.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED

from scheduler.errors import first_line
from scheduler.logs import get_logger
from scheduler.store.rows import JobAdvance
from scheduler.store.worker import StoreThread

__all__ = ["CronhostScheduler", "OnWake", "SlotExecutor", "fire_slot"]

log = get_logger("engine")

OnWake = Callable[[list[JobAdvance]], Awaitable[None]]

# Linux lets a long epoll timeout wake up to 0.1% late: a 60 s sleep fires ~60 ms late.
# Waking a second early and sleeping the rest brings that to ~1 ms.
EARLY_WAKE_SECONDS = 1.0
# Sleeping at most this long means a wall-clock jump is noticed within a minute.
MAX_SLEEP_SECONDS = 60.0


class SlotExecutor(BaseExecutor):  # type: ignore[misc]
    """APScheduler wants an executor for every job; cronhost's wake-up never submits to it."""

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("cronhost's wake-up hands due slots to the runner")


class CronhostScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose wake-up is one batch, off the event loop (module docstring)."""

    def __init__(self, *, on_wake: OnWake, store_thread: StoreThread, **options: Any) -> None:
        super().__init__(**options)
        self._on_wake = on_wake
        self._store_thread = store_thread
        self._waking: asyncio.Task[None] | None = None
        self._wake_again = False

    # -- the timer ----------------------------------------------------------------------

    def _start_timer(self, wait_seconds: float | None) -> None:
        if wait_seconds is not None:
            wait_seconds = min(wait_seconds, MAX_SLEEP_SECONDS)
            if wait_seconds > EARLY_WAKE_SECONDS:
                wait_seconds -= EARLY_WAKE_SECONDS
        super()._start_timer(wait_seconds)

    def wakeup(self) -> None:
        """Look for due jobs now (APScheduler calls this after add_job, resume, ...).

        Safe from any thread: the work happens in a task on the scheduler's loop, one
        wake-up at a time; a wake-up asked for during one runs right after it.
        """
        loop = self._eventloop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._wakeup_in_loop)

    def _wakeup_in_loop(self) -> None:
        self._stop_timer()
        if self._waking is not None and not self._waking.done():
            self._wake_again = True
            return
        self._waking = self._eventloop.create_task(self._wake(), name="scheduler-wakeup")

    async def _wake(self) -> None:
        wait: float | None = None
        while True:
            self._wake_again = False
            try:
                wait = await self._process_due()
            except Exception as exc:  # noqa: BLE001 - a store fault must not stop the timer
                log.error(
                    "the store failed while claiming due slots; nothing was claimed, retrying",
                    extra={"action": "store.error", "error": first_line(exc)},
                )
                wait = float(self.jobstore_retry_interval)
            if not self._wake_again or self.state == STATE_STOPPED:
                break
        if self.state != STATE_STOPPED:
            self._start_timer(wait)

    async def wait_idle(self) -> None:
        """Wait for a wake-up in progress to finish (shutdown: its claims are being written)."""
        if self._waking is not None:
            await asyncio.gather(self._waking, return_exceptions=True)

    # -- one wake-up --------------------------------------------------------------------

    async def _process_due(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        now = datetime.now(UTC)
        advances, next_run = await self._store_thread.call(self._collect_due, now)
        if advances and self.state != STATE_STOPPED:
            await self._on_wake(advances)
            next_run = await self._store_thread.call(self._next_run_time)
        if next_run is None:
            return None
        return max(0.0, (next_run - datetime.now(UTC)).total_seconds())

    def _collect_due(self, now: datetime) -> tuple[list[JobAdvance], datetime | None]:
        """Every due job's fire times and its state once advanced, and, when nothing is due,
        the next fire time (runs in the store thread; one round trip for an idle wake-up)."""
        advances: list[JobAdvance] = []
        with self._jobstores_lock:
            for jobstore in self._jobstores.values():
                for job in jobstore.get_due_jobs(now):
                    run_times = job._get_run_times(now)
                    if not run_times:
                        continue
                    next_run = job.trigger.get_next_fire_time(run_times[-1], now)
                    state: bytes | None = None
                    if next_run is not None:
                        job._modify(next_run_time=next_run)
                        state = pickle.dumps(job.__getstate__(), jobstore.pickle_protocol)
                    advances.append(JobAdvance(job.id, run_times, next_run, state))
        return advances, (None if advances else self._next_run_time())

    def _next_run_time(self) -> datetime | None:
        with self._jobstores_lock:
            times = [t for t in (store.get_next_run_time() for store in self._jobstores.values())
                     if t is not None]
        return min(times) if times else None


def fire_slot(job_id: str) -> None:
    """The callable APScheduler stores for every cronhost job.

    APScheduler's persistent job store needs an importable function; cronhost's
    wake-up never calls it, because the runner needs the slot times too.
    """
    raise RuntimeError(f"job {job_id} must run through cronhost's wake-up")
