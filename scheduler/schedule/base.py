"""What every schedule is: a rule that names the next fire time after another.

A :class:`Schedule` is pure (no APScheduler, no store): the config builds one for
each job, the engine wraps it in an APScheduler trigger, and the CLI, the
dashboard and the alert rules ask it for upcoming slots directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from scheduler.errors import CronhostError

__all__ = ["Schedule", "ScheduleError", "as_utc", "next_fire_times", "shown"]

_MICROSECOND = timedelta(microseconds=1)


class ScheduleError(CronhostError, ValueError):
    """A schedule, duration or time zone is invalid.

    A ValueError too, so callers that validate generic input can catch it as one.
    """


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting input back in an error.

    A message quotes what the operator wrote so they can find it; a 5,000-character
    value pasted whole would bury the one paragraph the error must be.
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class Schedule(Protocol):
    def next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """First fire time >= now if previous_fire_time is None, else the first after it.

        The contract of APScheduler 3's ``BaseTrigger.get_next_fire_time``, so the
        engine's triggers only delegate.
        """
        ...


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime has no instant; guessing a zone would shift slots by hours.
        raise ValueError(f"naive datetime {moment!r}: cronhost needs aware datetimes")
    return moment.astimezone(UTC)


def next_fire_times(schedule: Schedule, n: int, after: datetime | None = None) -> list[datetime]:
    """The next `n` fire times strictly after `after` (default: now), as aware UTC datetimes."""
    start = datetime.now(UTC) if after is None else as_utc(after)
    times: list[datetime] = []
    fire = schedule.next_fire_time(None, start + _MICROSECOND) if n > 0 else None
    while fire is not None and len(times) < n:
        fire = fire.astimezone(UTC)
        if times and fire <= times[-1]:
            break  # a schedule that does not move forward would loop forever
        times.append(fire)
        fire = schedule.next_fire_time(fire, fire)
    return times
