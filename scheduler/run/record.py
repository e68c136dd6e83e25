"""Writing what became of slots: missed slots, and finished runs, through store outages.

A slot that could not be claimed because the store was down is not run (another
daemon, or a later retry, might), and is recorded ``missed`` once the store is
back. A finished run's outcome is only in memory until its row is written, so
that write is retried with backoff until it lands or the daemon stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from jobs.outcome import Outcome, RunStatus
from scheduler.errors import first_line
from scheduler.logs import get_logger
from scheduler.run.events import EventBus, SlotEvent
from scheduler.store import Store

__all__ = ["MissedSlots", "finish_with_retry"]

log = get_logger("run")

STORE_RETRY_INITIAL = 0.5
STORE_RETRY_MAX = 15.0


@dataclass
class UnrecordedSlots:
    """Slots the store could not take (it was down); written once it is back."""

    job_id: str
    slots: list[datetime]
    reason: str


class MissedSlots:
    """Records slots that did not run, and keeps those the store could not take."""

    def __init__(self, store: Store, daemon_id: str, events: EventBus) -> None:
        self._store = store
        self._daemon_id = daemon_id
        self._events = events
        self.unrecorded: list[UnrecordedSlots] = []

    def record(self, job_id: str, slots: list[datetime], reason: str) -> None:
        if not slots:
            return
        try:
            recorded = self._store.record_missed(job_id, slots, reason, self._daemon_id)
        except SQLAlchemyError as exc:
            self.store_down(exc, job_id, slots, reason)
            return
        self._announce(job_id, slots, reason, recorded)

    def store_down(self, exc: Exception, job_id: str, slots: list[datetime], reason: str) -> None:
        # We could not claim, so we must not run (another daemon or a later retry might):
        # keep the slots and record them as missed once the store answers again.
        self.unrecorded.append(UnrecordedSlots(job_id, slots, f"{reason}; store unavailable"))
        log.error(
            "store unavailable: slot not run, will be recorded as missed",
            extra={"action": "store.error", "job": job_id, "slots": len(slots),
                   "error": first_line(exc)},
        )

    def flush(self) -> None:
        """Write what the store could not take earlier (the daemon loop calls this)."""
        while self.unrecorded:
            pending = self.unrecorded[0]
            try:
                recorded = self._store.record_missed(
                    pending.job_id, pending.slots, pending.reason, self._daemon_id
                )
            except SQLAlchemyError:
                return
            self.unrecorded.pop(0)
            self._announce(pending.job_id, pending.slots, pending.reason, recorded)

    def _announce(self, job_id: str, slots: list[datetime], reason: str, recorded: int) -> None:
        # Only what was really recorded: a slot that got a row meanwhile (it ran after
        # all, or was recorded before) must not raise a second alert.
        if not recorded:
            return
        self._events.publish(SlotEvent(
            job_id=job_id, status=RunStatus.MISSED.value, scheduled_at=slots[-1],
            error=reason, slot_count=recorded,
        ))
        log.warning(
            "slots recorded as missed",
            extra={"action": "run.missed", "job": job_id, "count": recorded,
                   "first_slot": slots[0].isoformat(), "last_slot": slots[-1].isoformat(),
                   "reason": reason},
        )


async def finish_with_retry(
    store: Store, run_id: int, outcome: Outcome, now: Callable[[], datetime], duration_ms: int
) -> None:
    """Write a finished run's row, retrying through a store outage.

    If the daemon dies meanwhile, the row stays `running` and is marked `abandoned`
    on the next start (the outcome was logged before this write).
    """
    wait = STORE_RETRY_INITIAL
    while True:
        try:
            await asyncio.to_thread(store.finish, run_id, outcome, now(), duration_ms)
            return
        except SQLAlchemyError as exc:
            log.error(
                "could not record a finished run; retrying",
                extra={"action": "store.error", "run_id": run_id, "error": first_line(exc),
                       "retry_in_s": wait},
            )
            await asyncio.sleep(wait)
            wait = min(wait * 2, STORE_RETRY_MAX)
