"""Durations as operators write them ("30s", "5m", "1h30m") and as cronhost shows them."""

from __future__ import annotations

import functools
import re
from datetime import timedelta

from scheduler.schedule.base import ScheduleError, shown

__all__ = ["format_duration", "interval_words", "parse_duration"]

_DURATION_UNITS = {"d": 86400_000_000, "h": 3600_000_000, "m": 60_000_000, "s": 1_000_000,
                   "ms": 1000}
# Units in descending order, each at most once: "1h30m" but not "30m1h" or "1m1m".
# [0-9], not \d: \d matches any Unicode digit ("٣", "¹"), which int() may not read. At most
# 15 digits a unit: longer counts overflow timedelta anyway, and int() refuses 4300+ digits.
_DURATION_RE = re.compile(r"(?:([0-9]{1,15})d)?(?:([0-9]{1,15})h)?(?:([0-9]{1,15})m(?!s))?"
                          r"(?:([0-9]{1,15})s)?(?:([0-9]{1,15})ms)?", re.ASCII)


@functools.lru_cache(maxsize=1024)  # every job repeats the same few: "30s", "2m", "5m"
def parse_duration(text: str) -> timedelta:
    """Parse "30s", "5m", "2h", "1d", "1h30m", "500ms"; raises ScheduleError."""
    stripped = text.strip()
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None or not any(match.groups()):
        raise ScheduleError(f"{shown(text)} is not a valid duration: use a number and a unit, "
                            "e.g. 30s, 5m, 2h, 1d, 1h30m or 500ms")
    micros = sum(int(count) * _DURATION_UNITS[unit]
                 for count, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if count)
    if micros <= 0:
        raise ScheduleError(f"{shown(text)} is not a valid duration: it must be longer than zero")
    try:
        return timedelta(microseconds=micros)
    except OverflowError:  # "99999999999d": more days than timedelta holds
        raise ScheduleError(f"{shown(text)} is not a valid duration: it is far too long") from None


def format_duration(value: timedelta) -> str:
    """The shortest whole unit that states ``value``: 90s -> "90s", 300s -> "5m"."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def interval_words(interval: timedelta) -> str:
    """"every 5 minutes", "every second": an interval schedule in plain words."""
    seconds = int(interval.total_seconds())
    if seconds != interval.total_seconds() or seconds <= 0:
        return f"every {interval}"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
