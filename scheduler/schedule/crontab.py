"""Crontab schedules: what a 5-field line means, checked and evaluated with Debian's rules.

Schedules mean what they mean in Debian's cron, because that is what operators
(and Vercel / cron-job.org users) write:

- 5 fields, names (jan, mon), ranges, steps and lists; day-of-week 0 and 7 are Sunday;
- day-of-month and day-of-week both restricted: a day matches if EITHER matches,
  unless one of the two fields starts with ``*`` (``*/2``), which makes it AND;
- per-job IANA time zone; on DST transition days a fixed-time job (minute and
  hour fields not starting with ``*``) runs exactly once (in a spring-forward gap
  at the first instant after the gap), while frequent jobs follow real time.

cronsim implements exactly this, so it is the evaluator; this module only wraps
it. APScheduler's own CronTrigger is deliberately not used: its day-of-week 0 is
Monday, it rejects 7, ANDs the day fields and fires an hour late in DST gaps.
The engine's trigger (``scheduler.engine.triggers``) wraps :class:`CrontabSchedule`.

Every fire time is an aware UTC datetime with whole seconds, so a slot has one
key however the job's zone labels it.
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from scheduler.schedule.base import ScheduleError, as_utc, shown

__all__ = ["CrontabSchedule", "cron_form", "validate_expression", "zone"]

_SECOND = timedelta(seconds=1)

# Debian cron's macros (crontab(5)); @reboot has no clock time, so it is refused.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (name, low, high, symbolic names in order of their number) for each of the 5 fields.
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day-of-month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _DAYS),
)

# Zones with no offset ever: cronsim skips its DST machinery only for
# datetime.timezone.utc, which makes UTC jobs about twice as fast to evaluate.
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu",
                        "Etc/Zulu", "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0",
                        "Etc/Greenwich", "Greenwich", "GMT0", "GMT+0", "GMT-0"})


# --- validation -------------------------------------------------------------------------------


def validate_expression(expression: str) -> str:
    """Return `expression` with whitespace collapsed, or raise ScheduleError saying what is wrong."""
    normalized = " ".join(expression.split())
    cron_form(normalized, expression)
    return normalized


# Every config load (start, each reload, each `cronhost` command) checks every job's line,
# and each check runs cronsim; the lines rarely change. Errors are not cached: they raise.
@functools.lru_cache(maxsize=1024)
def cron_form(normalized: str, original: str) -> str:
    """The 5-field form cronsim evaluates (macros expanded); raises ScheduleError."""

    def bad(reason: str) -> ScheduleError:
        return ScheduleError(f"{shown(original)} is not a valid cron expression: {reason}")

    if not normalized:
        raise bad("it is empty")
    if not original.isascii() or not normalized.isprintable():
        # str.isdigit() and int() accept digits such as "¹" or "٣" that no cron reads;
        # control characters could not be shown in an error or a dashboard cell.
        raise bad("it may only hold ASCII letters, digits, spaces and * , - /")
    if normalized.startswith("@"):
        if normalized.lower() == "@reboot":
            raise bad("cronhost runs jobs on a clock, so @reboot is not supported")
        if normalized.lower() not in _MACROS:
            raise bad(f"unknown macro {normalized[:40]}; use one of {', '.join(_MACROS)}")
        return _MACROS[normalized.lower()]
    fields = normalized.split(" ")
    if len(fields) != 5:
        seconds = " (cronhost has no seconds field)" if len(fields) == 6 else ""
        raise bad(f"it has {len(fields)} fields, expected 5: "
                  f"minute hour day-of-month month day-of-week{seconds}")
    for text, spec in zip(fields, _FIELDS, strict=True):
        reason = _field_problem(text, *spec)
        if reason:
            raise bad(reason)
    try:
        # cronsim has the last word; its own checks catch what the syntax allows but the
        # calendar does not, such as "0 0 30 2 *".
        next(CronSim(normalized, datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, ValueError) as exc:
        # ValueError too: cronsim's int() is its own last check, and a message beats a trace.
        if "day-of-month" in str(exc):
            raise bad(f"day-of-month {fields[2]} never occurs in month {fields[3]}") from None
        raise bad(str(exc).lower()) from None
    except StopIteration:
        raise bad("it never fires") from None
    return normalized


def _field_problem(text: str, name: str, low: int, high: int, names: list[str]) -> str | None:
    """Why one field is invalid in Debian's syntax, or None if it is fine."""
    if not text:
        return f"{name} is empty"
    for char, what in (("L", "L (last)"), ("W", "W (weekday)"), ("#", "# (nth weekday)"),
                       ("?", "?")):
        if char in text.upper() and not (names and _mentions_name(text, names)):
            return f"{name} {shown(text)} uses {what}, which Debian cron does not support"
    for term in text.split(","):
        base, slash, step = term.partition("/")
        if slash:
            if not _is_number(step):
                return f"{name} step {shown(step)} in {shown(term)} is not a number"
            if int(step) == 0:
                return f"{name} step in {shown(term)} must be at least 1"
        if base == "*":
            continue
        start_text, dash, end_text = base.partition("-")
        start = _field_value(start_text, name, low, high, names)
        if isinstance(start, str):
            return start
        if dash:
            end = _field_value(end_text, name, low, high, names)
            if isinstance(end, str):
                return end
            if end < start:
                return f"{name} range {base} runs backwards"
    return None


def _mentions_name(text: str, names: list[str]) -> bool:
    """Whether the letters in `text` all belong to symbolic names ("jul" has an L in it)."""
    stripped = text.lower()
    for candidate in names:
        stripped = stripped.replace(candidate, "")
    return not any(char.isalpha() or char in "#?" for char in stripped)


def _field_value(text: str, name: str, low: int, high: int, names: list[str]) -> int | str:
    """The number `text` stands for, or a string saying why it is not valid."""
    if _is_number(text):
        value = int(text)
        if not low <= value <= high:
            return f"{name} {value} is out of range {low}-{high}"
        return value
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    if not text:
        return f"{name} has an empty value"
    if names:
        return f"{name} {shown(text)} is neither a number nor a name ({names[0]}-{names[-1]})"
    return f"{name} {shown(text)} is not a number"


def _is_number(text: str) -> bool:
    # ASCII digits only ("¹".isdigit() is true, and int() reads "٣"), and few of them:
    # int() refuses strings past 4300 digits, and more than 9 are out of range anyway.
    return text.isascii() and text.isdigit() and len(text) <= 9


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raises ScheduleError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        # ValueError/TypeError: names such as "" or "../x" that are not even zone keys;
        # OSError: a name longer than a file name may be (zoneinfo opens it as a file).
        raise ScheduleError(f"unknown time zone {shown(name)}") from None


def _evaluation_zone(name: str) -> tzinfo:
    return UTC if name in _UTC_NAMES else zone(name)


class CrontabSchedule:
    """Fires on a 5-field crontab schedule in an IANA time zone, with Debian cron's semantics."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self._expression = " ".join(expression.split())
        self._cron = cron_form(self._expression, expression)
        self._timezone = timezone
        self._tz = _evaluation_zone(timezone)
        # APScheduler asks for the next time right after the last one it got (catch-up
        # after downtime asks thousands of times in a row), so the live cronsim iterator is
        # kept and advanced instead of re-parsing. The lock guards it: add_job may
        # evaluate from a caller's thread while the scheduler thread does too.
        self._lock = threading.Lock()
        self._cursor: tuple[datetime, CronSim] | None = None

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def timezone(self) -> str:
        return self._timezone

    def next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """First fire time >= now if previous_fire_time is None, else first one after it."""
        if previous_fire_time is None:
            now = as_utc(now)
            # cronsim yields strictly after its start second, so start one second early
            # when `now` is a whole second (a slot exactly at `now` counts).
            after = now.replace(microsecond=0) if now.microsecond else now - _SECOND
        else:
            after = as_utc(previous_fire_time).replace(microsecond=0)
        with self._lock:
            if self._cursor is not None and self._cursor[0] == after:
                iterator = self._cursor[1]
            else:
                iterator = CronSim(self._cron, after.astimezone(self._tz))
            try:
                while True:
                    fire = next(iterator).astimezone(UTC)
                    # Fixed-time jobs are evaluated on the local wall clock, which repeats
                    # on fall-back days; a start in the repeated hour can yield the first
                    # occurrence, which is in the past. Debian ran that slot already.
                    if fire > after:
                        break
            except StopIteration:
                # cronsim gives up after 50 years without a match.
                self._cursor = None
                return None
            self._cursor = (fire, iterator)
        return fire

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrontabSchedule):
            return NotImplemented
        return (self._expression, self._timezone) == (other._expression, other._timezone)

    def __hash__(self) -> int:
        return hash((CrontabSchedule, self._expression, self._timezone))

    def __str__(self) -> str:
        return f"cron[{self._expression}, {self._timezone}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self._expression!r}, timezone={self._timezone!r})>"
