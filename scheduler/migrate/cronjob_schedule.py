"""cron-job.org's schedule sets -> a crontab line that fires at exactly the same instants.

What cron-job.org does (its scheduler, chronos, ``App::processJobsForTimeZone``):
once a minute, for each time zone, it takes the wall-clock time of that UTC minute
in the zone and runs every job whose sets contain its minute, hour, month, and day,
where ``[-1]`` means every value and the day matches when

- both ``mdays`` and ``wdays`` are ``[-1]``, or
- one is ``[-1]`` and the other contains the day, or
- both are restricted and EITHER contains the day (as in cron),

and ``expiresAt`` (``YYYYMMDDhhmmss`` in the job's zone, 0 = never) is not passed.
So it follows the wall clock minute by minute: a time inside a spring-forward gap
never runs, a time inside a fall-back overlap runs twice.

cronhost evaluates crontabs with cronsim, Debian cron's rules: a line whose minute
or hour field starts with ``*`` follows real time (the same as above), but a
"fixed-time" line (neither starts with ``*``) runs once on DST days: at the end of
a gap, and once in an overlap. The conversion therefore

1. renders each set as compactly as is exact: every value -> ``*``; for minutes and
   hours, ``{0, k, 2k, ...}`` -> ``*/k`` (which also makes the line follow real
   time); other sets as lists and ``a-b`` ranges. The day fields never use ``*/k``:
   a leading ``*`` would turn cron's OR of the two day fields into an AND;
2. folds what only looks restricted: an explicit full list is ``*``, and with both
   day fields restricted a full ``wdays`` (or ``mdays``) means every day;
3. replays both rules around every DST change of the next :data:`HORIZON_YEARS`
   years and reports each instant where they disagree (the caller refuses the job,
   or warns with --accept-dst-difference). Changes that replay identically (same
   offsets, same wall-clock time, days the schedule cannot tell apart) are checked
   once, which keeps an every-minute job cheap. This is done for every line, not
   only fixed-time ones: cronsim's real-time handling is not exact everywhere
   (Australia/Lord_Howe's 30-minute change: ``30 * * * *`` loses the 02:30 that
   exists after the spring change), and the replay finds such cases without
   knowing why.

``expiresAt`` has no cronhost equivalent; it is parsed here and judged by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from scheduler.migrate.model import Refused

# (key, low, high) in crontab order.
FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minutes", 0, 59),
    ("hours", 0, 23),
    ("mdays", 1, 31),
    ("months", 1, 12),
    ("wdays", 0, 6),
)
HORIZON_YEARS = 100
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class ScheduleSets:
    """A cron-job.org schedule; ``None`` for a field means every value."""

    timezone: str
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    mdays: frozenset[int] | None
    months: frozenset[int] | None
    wdays: frozenset[int] | None
    expires_at: datetime | None = None  # aware, in the job's zone

    def matches(self, local: datetime) -> bool:
        """cron-job.org's rule for one wall-clock minute (see the module docstring)."""

        def has(values: frozenset[int] | None, value: int) -> bool:
            return values is None or value in values

        if not (has(self.minutes, local.minute) and has(self.hours, local.hour)
                and has(self.months, local.month)):
            return False
        wday = local.isoweekday() % 7  # 0 = Sunday
        if self.mdays is None or self.wdays is None:
            return has(self.mdays, local.day) and has(self.wdays, wday)
        return local.day in self.mdays or wday in self.wdays


def parse_schedule(raw: Any) -> ScheduleSets:
    """The sets of a cron-job.org ``schedule`` object; Refused says what is wrong."""
    if not isinstance(raw, dict):
        raise Refused("has no `schedule` object")
    tz_name = raw.get("timezone") or "UTC"
    if not isinstance(tz_name, str):
        raise Refused(f"schedule.timezone {tz_name!r} is not a time zone name")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"schedule.timezone {tz_name!r} is not a time zone this system knows") from None
    sets: dict[str, frozenset[int] | None] = {}
    for key, low, high in FIELDS:
        sets[key] = _field(raw.get(key), key, low, high)
    return ScheduleSets(
        timezone=tz_name,
        expires_at=_expiry(raw.get("expiresAt", 0), tz_name),
        **sets,  # type: ignore[arg-type]
    )


def _field(value: Any, key: str, low: int, high: int) -> frozenset[int] | None:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise Refused(f"schedule.{key} must be a list of whole numbers (got {value!r})")
    if not value:
        raise Refused(f"schedule.{key} is empty: cron-job.org never runs this job")
    if -1 in value:
        return None
    bad = [v for v in value if not low <= v <= high]
    if bad:
        raise Refused(f"schedule.{key} has {bad[0]}, outside {low}-{high}")
    values = frozenset(value)
    # An explicit full list means every value; for the day fields see to_crontab.
    return None if key not in ("mdays", "wdays") and len(values) == high - low + 1 else values


def _expiry(value: Any, tz_name: str) -> datetime | None:
    if value in (0, None, "0"):
        return None
    text = str(value)
    try:
        naive = datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise Refused(f"schedule.expiresAt {value!r} is not YYYYMMDDhhmmss") from None
    return naive.replace(tzinfo=ZoneInfo(tz_name))


def to_crontab(sets: ScheduleSets) -> str:
    """The 5-field crontab (in ``sets.timezone``) with cron-job.org's instants."""
    mdays, wdays = sets.mdays, sets.wdays
    full_mdays = mdays is not None and len(mdays) == 31
    full_wdays = wdays is not None and len(wdays) == 7
    if mdays is not None and wdays is not None:
        if full_mdays or full_wdays:  # OR with every day is every day
            mdays = wdays = None
    else:  # AND with "every": a full list is just every value
        mdays = None if full_mdays else mdays
        wdays = None if full_wdays else wdays
    return " ".join((
        _render(sets.minutes, 0, 59, steps=True),
        _render(sets.hours, 0, 23, steps=True),
        _render(mdays, 1, 31, steps=False),
        _render(sets.months, 1, 12, steps=False),
        _render(wdays, 0, 6, steps=False),
    ))


def _render(values: frozenset[int] | None, low: int, high: int, *, steps: bool) -> str:
    if values is None:
        return "*"
    ordered = sorted(values)
    if steps and len(ordered) > 1 and low == 0:
        step = ordered[1] - ordered[0]
        if ordered[0] == 0 and ordered == list(range(0, high + 1, step)):
            return f"*/{step}"
    parts: list[str] = []
    run: list[int] = []
    for value in [*ordered, None]:
        if value is not None and run and value == run[-1] + 1:
            run.append(value)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)))
        run = [value] if value is not None else []
    return ",".join(parts)


def follows_real_time(crontab: str) -> bool:
    """cronsim's rule: a line whose minute or hour field starts with ``*`` is not fixed-time."""
    minute, hour = crontab.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def dst_differences(
    sets: ScheduleSets, crontab: str, start: datetime, years: int = HORIZON_YEARS, limit: int = 3
) -> list[datetime]:
    """UTC instants (up to ``limit``) where cronhost's crontab and cron-job.org disagree.

    Away from DST changes both follow the same wall clock; so only the minutes around
    each change from ``start`` on are replayed, by both rules (cronsim for cronhost).
    """
    zone = ZoneInfo(sets.timezone)
    every_day = sets.mdays is None and sets.wdays is None and sets.months is None
    checked: set[tuple[object, ...]] = set()
    found: list[datetime] = []
    for instant, before, after in transitions(sets.timezone, start.year, start.year + years):
        if instant < start:
            continue
        margin = abs(after - before) + timedelta(hours=1)
        low, high = instant - margin, instant + margin
        # Two changes with the same offsets at the same wall-clock time on days the
        # schedule cannot tell apart replay identically: check one of them.
        local_low, local_high = low.astimezone(zone), high.astimezone(zone)
        days: tuple[object, ...] = () if every_day else tuple(
            (d.month, d.day, d.isoweekday()) for d in (local_low, local_high))
        key = (before, after, instant.astimezone(zone).timetz(), days)
        if key in checked:
            continue
        checked.add(key)
        expected = set(_wall_clock_matches(sets, zone, low, high))
        try:
            actual = set(_cronsim_between(crontab, zone, low, high))
        except CronSimError as exc:
            raise Refused(f"its schedule cannot be evaluated: {exc}") from None
        found.extend(sorted(expected ^ actual))
        if len(found) >= limit:
            break
    return found[:limit]


def _wall_clock_matches(
    sets: ScheduleSets, zone: ZoneInfo, low: datetime, high: datetime
) -> Iterable[datetime]:
    moment = low
    while moment < high:
        if sets.matches(moment.astimezone(zone)):
            yield moment
        moment += _MINUTE


def _cronsim_between(crontab: str, zone: ZoneInfo, low: datetime, high: datetime) -> Iterable[datetime]:
    # CronSim yields fire times strictly after its start.
    for fire in CronSim(crontab, (low - timedelta(seconds=1)).astimezone(zone)):
        fire_utc = fire.astimezone(UTC)
        if fire_utc >= high:
            return
        yield fire_utc


@lru_cache(maxsize=64)
def transitions(tz_name: str, first_year: int, last_year: int) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """(UTC instant, offset before, offset after) for each offset change in the years given.

    zoneinfo has no public list of transitions: probe each day, then halve the day
    that changed down to the minute. No zone changes its offset twice in one day.
    """
    zone = ZoneInfo(tz_name)
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(min(last_year, 9998), 12, 31, tzinfo=UTC)
    found: list[tuple[datetime, timedelta, timedelta]] = []
    offset = moment.astimezone(zone).utcoffset()
    day = timedelta(days=1)
    while moment < end:
        following = moment + day
        next_offset = following.astimezone(zone).utcoffset()
        if next_offset != offset:
            low, high = moment, following  # offset(low) = offset, offset(high) = next
            while high - low > _MINUTE:
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            assert offset is not None and next_offset is not None
            found.append((high, offset, next_offset))
            offset = next_offset
        moment = following
    return tuple(found)
