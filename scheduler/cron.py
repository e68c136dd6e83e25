"""Cron semantics: what a schedule means, and the APScheduler triggers that follow it.

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

Every fire time is an aware UTC datetime with whole seconds, so a slot has one
key however the job's zone labels it.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options
from cronsim import CronSim, CronSimError

from scheduler.errors import CronhostError

__all__ = [
    "CrontabTrigger",
    "EveryTrigger",
    "ScheduleError",
    "describe",
    "next_fire_times",
    "parse_duration",
    "validate_expression",
    "zone",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)

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

_DURATION_UNITS = {"d": 86400_000_000, "h": 3600_000_000, "m": 60_000_000, "s": 1_000_000,
                   "ms": 1000}
# Units in descending order, each at most once: "1h30m" but not "30m1h" or "1m1m".
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


class ScheduleError(CronhostError, ValueError):
    """A schedule, duration or time zone is invalid.

    A ValueError too, so callers that validate generic input can catch it as one.
    """


# --- validation -------------------------------------------------------------------------------


def validate_expression(expression: str) -> str:
    """Return `expression` with whitespace collapsed, or raise ScheduleError saying what is wrong."""
    normalized = " ".join(expression.split())
    _cron_form(normalized, expression)
    return normalized


def _cron_form(normalized: str, original: str) -> str:
    """The 5-field form cronsim evaluates (macros expanded); raises ScheduleError."""

    def bad(reason: str) -> ScheduleError:
        return ScheduleError(f"{original!r} is not a valid cron expression: {reason}")

    if not normalized:
        raise bad("it is empty")
    if normalized.startswith("@"):
        if normalized.lower() == "@reboot":
            raise bad("cronhost runs jobs on a clock, so @reboot is not supported")
        if normalized.lower() not in _MACROS:
            raise bad(f"unknown macro {normalized}; use one of {', '.join(_MACROS)}")
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
    except CronSimError as exc:
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
            return f"{name} {text!r} uses {what}, which Debian cron does not support"
    for term in text.split(","):
        base, slash, step = term.partition("/")
        if slash:
            if not step.isdigit():
                return f"{name} step {step!r} in {term!r} is not a number"
            if int(step) == 0:
                return f"{name} step in {term!r} must be at least 1"
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
    if text.isdigit():
        value = int(text)
        if not low <= value <= high:
            return f"{name} {value} is out of range {low}-{high}"
        return value
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    if not text:
        return f"{name} has an empty value"
    if names:
        return f"{name} {text!r} is neither a number nor a name ({names[0]}-{names[-1]})"
    return f"{name} {text!r} is not a number"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raises ScheduleError if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        # ValueError/TypeError: names such as "" or "../x" that are not even zone keys.
        raise ScheduleError(f"unknown time zone {name!r}") from None


def _evaluation_zone(name: str) -> tzinfo:
    return UTC if name in _UTC_NAMES else zone(name)


def parse_duration(text: str) -> timedelta:
    """Parse "30s", "5m", "2h", "1d", "1h30m", "500ms"; raises ScheduleError."""
    stripped = text.strip()
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None or not any(match.groups()):
        raise ScheduleError(f"{text!r} is not a valid duration: use a number and a unit, "
                            "e.g. 30s, 5m, 2h, 1d, 1h30m or 500ms")
    micros = sum(int(count) * _DURATION_UNITS[unit]
                 for count, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if count)
    if micros <= 0:
        raise ScheduleError(f"{text!r} is not a valid duration: it must be longer than zero")
    return timedelta(microseconds=micros)


# --- triggers ---------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime has no instant; guessing a zone would shift slots by hours.
        raise ValueError(f"naive datetime {moment!r}: cronhost needs aware datetimes")
    return moment.astimezone(UTC)


class CrontabTrigger(BaseTrigger):
    """Fires on a 5-field crontab schedule in an IANA time zone, with Debian cron's semantics."""

    _STATE_VERSION = 1

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self._setup(expression, timezone)

    def _setup(self, expression: str, timezone_name: str) -> None:
        self._expression = " ".join(expression.split())
        self._cron = _cron_form(self._expression, expression)
        self._timezone = timezone_name
        self._tz = _evaluation_zone(timezone_name)
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

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """First fire time >= now if previous_fire_time is None, else first one after it."""
        if previous_fire_time is None:
            now = _as_utc(now)
            # cronsim yields strictly after its start second, so start one second early
            # when `now` is a whole second (a slot exactly at `now` counts).
            after = now.replace(microsecond=0) if now.microsecond else now - _SECOND
        else:
            after = _as_utc(previous_fire_time).replace(microsecond=0)
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

    def __getstate__(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "expression": self._expression,
                "timezone": self._timezone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state.get("version", 1)
        if version > self._STATE_VERSION:
            raise ValueError(
                f"Got serialized data for version {version} of {type(self).__name__}, "
                f"but only versions up to {self._STATE_VERSION} can be handled"
            )
        self._setup(state["expression"], state["timezone"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CrontabTrigger):
            return NotImplemented
        return (self._expression, self._timezone) == (other._expression, other._timezone)

    def __hash__(self) -> int:
        return hash((CrontabTrigger, self._expression, self._timezone))

    def __str__(self) -> str:
        return f"cron[{self._expression}, {self._timezone}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ({self._expression!r}, timezone={self._timezone!r})>"


class EveryTrigger(BaseTrigger):
    """Fires every `interval`, on a grid of multiples of it counted from the Unix epoch (UTC).

    The grid depends on nothing but the interval, so slots stay put across reloads and
    restarts: every 1m fires at :00 of each minute, every 10s at :00, :10, ...
    """

    _STATE_VERSION = 1

    def __init__(self, interval: timedelta) -> None:
        self._setup(interval)

    def _setup(self, interval: timedelta) -> None:
        # Whole seconds only: fire times carry no microseconds, and a slot key must be exact.
        if interval < _SECOND or interval % _SECOND:
            raise ScheduleError(f"interval {interval} must be a whole number of seconds, "
                                "at least 1s")
        self._interval = interval
        self._step = interval // _MICROSECOND

    @property
    def interval(self) -> timedelta:
        return self._interval

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """First grid point >= now if previous_fire_time is None, else first one after it."""
        if previous_fire_time is None:
            micros = (_as_utc(now) - _EPOCH) // _MICROSECOND
        else:
            micros = (_as_utc(previous_fire_time) - _EPOCH) // _MICROSECOND + 1
        slot = -(-micros // self._step)  # ceiling division: the first grid point >= micros
        return _EPOCH + timedelta(microseconds=slot * self._step)

    def __getstate__(self) -> dict[str, Any]:
        return {"version": self._STATE_VERSION, "interval": self._interval}

    def __setstate__(self, state: dict[str, Any]) -> None:
        version = state.get("version", 1)
        if version > self._STATE_VERSION:
            raise ValueError(
                f"Got serialized data for version {version} of {type(self).__name__}, "
                f"but only versions up to {self._STATE_VERSION} can be handled"
            )
        self._setup(state["interval"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EveryTrigger):
            return NotImplemented
        return self._interval == other._interval

    def __hash__(self) -> int:
        return hash((EveryTrigger, self._interval))

    def __str__(self) -> str:
        return f"every[{_interval_words(self._interval).removeprefix('every ')}]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (interval={self._interval!r})>"


def next_fire_times(
    trigger: BaseTrigger, n: int, after: datetime | None = None
) -> list[datetime]:
    """The next `n` fire times strictly after `after` (default: now), as aware UTC datetimes."""
    start = datetime.now(UTC) if after is None else _as_utc(after)
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start + _MICROSECOND) if n > 0 else None
    while fire is not None and len(times) < n:
        fire = fire.astimezone(UTC)
        if times and fire <= times[-1]:
            break  # a trigger that does not move forward would loop forever
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


# --- plain words ------------------------------------------------------------------------------


def describe(expression_or_trigger: str | BaseTrigger) -> str:
    """Plain words for a schedule ("every 5 minutes", "at 03:00"); never raises."""
    try:
        if isinstance(expression_or_trigger, EveryTrigger):
            return _interval_words(expression_or_trigger.interval)
        if isinstance(expression_or_trigger, CrontabTrigger):
            return _cron_words(expression_or_trigger.expression)
        if isinstance(expression_or_trigger, str):
            return _cron_words(expression_or_trigger)
        return str(expression_or_trigger)
    except Exception:  # noqa: BLE001  (a description is decoration; the schedule still works)
        return str(getattr(expression_or_trigger, "expression", expression_or_trigger))


def _cron_words(expression: str) -> str:
    normalized = validate_expression(expression)
    cron = _cron_form(normalized, expression)
    # locale_code is explicit: autodetection warns when the daemon runs without a locale.
    options = Options(casing_type=CasingTypeEnum.Sentence, day_of_week_start_index_zero=True,
                      use_24hour_time_format=True, locale_code="en_US")
    words = ExpressionDescriptor(cron, options).get_description()
    dom, dow = cron.split()[2], cron.split()[4]
    if dom != "*" and dow != "*" and (dom.startswith("*") or dow.startswith("*")):
        # cron-descriptor says "or" for any restricted pair; Debian's star rule makes it AND.
        words = words.replace(", or on ", ", and only on ")
    return words[:1].lower() + words[1:]


def _interval_words(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    if seconds != interval.total_seconds() or seconds <= 0:
        return f"every {interval}"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
