"""Interval schedules (``every = "30s"``): a grid of multiples of the interval since the epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.schedule.base import ScheduleError, as_utc
from scheduler.schedule.durations import interval_words

__all__ = ["EverySchedule"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)


class EverySchedule:
    """Fires every `interval`, on a grid of multiples of it counted from the Unix epoch (UTC).

    The grid depends on nothing but the interval, so slots stay put across reloads and
    restarts: every 1m fires at :00 of each minute, every 10s at :00, :10, ...
    """

    def __init__(self, interval: timedelta) -> None:
        # Whole seconds only: fire times carry no microseconds, and a slot key must be exact.
        if interval < _SECOND or interval % _SECOND:
            raise ScheduleError(f"interval {interval} must be a whole number of seconds, "
                                "at least 1s")
        self._interval = interval
        self._step = interval // _MICROSECOND

    @property
    def interval(self) -> timedelta:
        return self._interval

    def next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """First grid point >= now if previous_fire_time is None, else first one after it."""
        if previous_fire_time is None:
            micros = (as_utc(now) - _EPOCH) // _MICROSECOND
        else:
            micros = (as_utc(previous_fire_time) - _EPOCH) // _MICROSECOND + 1
        slot = -(-micros // self._step)  # ceiling division: the first grid point >= micros
        return _EPOCH + timedelta(microseconds=slot * self._step)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EverySchedule):
            return NotImplemented
        return self._interval == other._interval

    def __hash__(self) -> int:
        return hash((EverySchedule, self._interval))

    def __str__(self) -> str:
        return f"every[{interval_words(self._interval).removeprefix('every ')}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (interval={self._interval!r})>"
