"""APScheduler triggers that follow cronhost's schedules (and pickle into its job store).

APScheduler's SQLAlchemy job store pickles each job's trigger. The pickled state
is the schedule as written (expression and zone, or the interval) under a
version number, never the live cronsim iterator, so a stored job survives an
upgrade of cronsim, and one of cronhost as long as these classes keep their
import path (``scheduler.engine.legacy`` moves rows written under older paths).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from scheduler.config import JobSpec
from scheduler.schedule import CrontabSchedule, EverySchedule

__all__ = ["CrontabTrigger", "EveryTrigger", "trigger_for"]


class _ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
    """A trigger that only delegates to its pure schedule (scheduler.schedule)."""

    _STATE_VERSION = 1
    schedule: CrontabSchedule | EverySchedule

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        return self.schedule.next_fire_time(previous_fire_time, now)

    next_fire_time = get_next_fire_time  # a trigger is a Schedule too (next_fire_times)

    @classmethod
    def _check_version(cls, state: dict[str, Any]) -> None:
        version = state.get("version", 1)
        if version > cls._STATE_VERSION:
            raise ValueError(
                f"Got serialized data for version {version} of {cls.__name__}, "
                f"but only versions up to {cls._STATE_VERSION} can be handled"
            )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.schedule == other.schedule  # type: ignore[attr-defined, no-any-return]

    def __hash__(self) -> int:
        return hash((type(self), self.schedule))

    def __str__(self) -> str:
        return str(self.schedule)


class CrontabTrigger(_ScheduleTrigger):
    """Fires on a 5-field crontab schedule in an IANA zone (see scheduler.schedule.crontab)."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.schedule = CrontabSchedule(expression, timezone)

    @property
    def expression(self) -> str:
        return self.schedule.expression  # type: ignore[union-attr]

    @property
    def timezone(self) -> str:
        return self.schedule.timezone  # type: ignore[union-attr]

    def __getstate__(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "expression": self.expression,
                "timezone": self.timezone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._check_version(state)
        self.schedule = CrontabSchedule(state["expression"], state["timezone"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self.expression!r}, timezone={self.timezone!r})>"


class EveryTrigger(_ScheduleTrigger):
    """Fires every `interval` on the epoch grid (see scheduler.schedule.every)."""

    def __init__(self, interval: timedelta) -> None:
        self.schedule = EverySchedule(interval)

    @property
    def interval(self) -> timedelta:
        return self.schedule.interval  # type: ignore[union-attr]

    def __getstate__(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "interval": self.interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._check_version(state)
        self.schedule = EverySchedule(state["interval"])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (interval={self.interval!r})>"


def trigger_for(spec: JobSpec) -> CrontabTrigger | EveryTrigger:
    """The trigger that fires ``spec``'s slots."""
    if spec.every is not None:
        return EveryTrigger(spec.every)
    assert spec.schedule is not None
    return CrontabTrigger(spec.schedule, spec.timezone)
