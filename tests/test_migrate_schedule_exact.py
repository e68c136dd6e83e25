"""Imported cron-job.org schedules fire at exactly the instants cron-job.org would.

The source's instants are computed here from the raw sets, independently of the
import: cron-job.org runs a job in every UTC minute whose wall-clock time in the
job's zone is in its sets (its scheduler, chronos, works minute by minute, see
cronjob_schedule.py). Two oracles: ``wall_clock_instants`` enumerates the matching
local times and keeps every UTC instant that shows that wall-clock time (both sides
of a fall-back, none in a spring-forward gap); ``minute_by_minute`` iterates every
UTC minute and asks zoneinfo. The second checks the first around each DST change.

The import's output is written to a file, loaded with cronhost's load_config, and
its trigger's next 1,000 fire times (the daemon's own evaluator) must equal the
oracle's. Jobs the import refuses must really differ (no needless refusal).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from scheduler.config import load_config
from scheduler.migrate import cronjob_org, toml_out
from scheduler.migrate.cronjob_schedule import parse_schedule, to_crontab
from scheduler.schedule import next_fire_times

EVERY = [-1]
COUNT = 1000


def sets(tz: str, minutes: list[int], hours: list[int], mdays: list[int] = EVERY,
         months: list[int] = EVERY, wdays: list[int] = EVERY) -> dict[str, Any]:
    return {"timezone": tz, "minutes": minutes, "hours": hours, "mdays": mdays,
            "months": months, "wdays": wdays, "expiresAt": 0}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (name, schedule sets, start): starts put a DST change among the first fire times.
EXACT = [
    ("every-minute-new-york", sets("America/New_York", EVERY, EVERY), at("2027-03-14T00:00")),
    ("every-minute-ny-fall", sets("America/New_York", EVERY, EVERY), at("2027-11-07T00:00")),
    ("quarter-hours-berlin", sets("Europe/Berlin", [0, 15, 30, 45], EVERY), at("2027-10-25T00:00")),
    ("odd-minutes-berlin", sets("Europe/Berlin", [5, 6, 7, 50], EVERY), at("2027-03-22T00:00")),
    ("two-am-hour-berlin", sets("Europe/Berlin", EVERY, [2]), at("2027-03-01T00:00")),
    ("every-6h-berlin", sets("Europe/Berlin", [0], [0, 6, 12, 18]), at("2027-01-01T00:00")),
    ("four-am-berlin", sets("Europe/Berlin", [0], [4]), at("2027-01-01T00:00")),
    ("or-days-new-york", sets("America/New_York", [0], [9], mdays=[1, 15], wdays=[1]),
     at("2027-01-01T00:00")),
    ("weekdays-new-york", sets("America/New_York", [5, 35], [8], wdays=[1, 2, 3, 4, 5]),
     at("2027-01-01T00:00")),
    ("full-wdays-means-daily", sets("America/New_York", [0], [3], mdays=[10],
                                    wdays=[0, 1, 2, 3, 4, 5, 6]), at("2027-01-01T00:00")),
    ("full-mdays-list", sets("Europe/Berlin", [0], [5], mdays=list(range(1, 32)), wdays=EVERY),
     at("2027-01-01T00:00")),
    ("month-ends-berlin", sets("Europe/Berlin", [59], [23], mdays=[31]), at("2027-01-01T00:00")),
    ("sunday-2am-london", sets("Europe/London", [0], [2], wdays=[0]), at("2027-01-01T00:00")),
    ("kolkata-half-hours", sets("Asia/Kolkata", [0, 30], EVERY), at("2027-01-01T00:00")),
    ("santiago-hourly-1st", sets("America/Santiago", [0], EVERY, mdays=[1, 2, 3, 4, 5, 6, 7]),
     at("2027-03-01T00:00")),
    ("utc-lists", sets("UTC", [1, 2, 3, 10], [0, 12, 13, 14], months=[1, 2, 3, 6, 7]),
     at("2027-01-01T00:00")),
]

# Fixed-time jobs whose wall-clock time a DST change removes or repeats.
REFUSED = [
    ("half-past-two-berlin", sets("Europe/Berlin", [30], [2]), at("2027-01-01T00:00")),
    ("one-thirty-new-york", sets("America/New_York", [30], [1]), at("2027-01-01T00:00")),
    ("midnight-santiago", sets("America/Santiago", [0], [0]), at("2027-01-01T00:00")),
    ("sunday-1am-london", sets("Europe/London", [15], [1], wdays=[0]), at("2027-01-01T00:00")),
    # Not fixed-time, but cronsim drops the 02:30 that Lord Howe's 30-minute change keeps.
    ("half-past-lord-howe", sets("Australia/Lord_Howe", [30], EVERY), at("2027-09-25T00:00")),
]


# -- the oracles ------------------------------------------------------------------------


def day_matches(raw: dict[str, Any], day: date) -> bool:
    """cron-job.org's day rule, from the raw lists."""
    mdays, wdays, months = raw["mdays"], raw["wdays"], raw["months"]
    if -1 not in months and day.month not in months:
        return False
    wday = day.isoweekday() % 7
    if -1 in mdays and -1 in wdays:
        return True
    if -1 in mdays:
        return wday in wdays
    if -1 in wdays:
        return day.day in mdays
    return day.day in mdays or wday in wdays


def values(raw: dict[str, Any], key: str, high: int) -> list[int]:
    return list(range(high + 1)) if -1 in raw[key] else sorted(raw[key])


def wall_clock_instants(raw: dict[str, Any], start: datetime, count: int) -> list[datetime]:
    zone = ZoneInfo(raw["timezone"])
    day = start.astimezone(zone).date() - timedelta(days=1)
    found: set[datetime] = set()
    while len(found) < count + 100:
        if day_matches(raw, day):
            for hour in values(raw, "hours", 23):
                for minute in values(raw, "minutes", 59):
                    naive = datetime(day.year, day.month, day.day, hour, minute)
                    for fold in (0, 1):
                        instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                        # Only real wall-clock times: a gap's times do not round-trip.
                        if instant.astimezone(zone).replace(tzinfo=None) == naive \
                                and instant > start:
                            found.add(instant)
        day += timedelta(days=1)
    return sorted(found)[:count]


def minute_by_minute(raw: dict[str, Any], low: datetime, high: datetime) -> list[datetime]:
    zone = ZoneInfo(raw["timezone"])
    out, moment = [], low
    while moment < high:
        local = moment.astimezone(zone)
        if (local.minute in values(raw, "minutes", 59) and local.hour in values(raw, "hours", 23)
                and day_matches(raw, local.date())):
            out.append(moment)
        moment += timedelta(minutes=1)
    return out


def offset_changes(tz: str, low: datetime, high: datetime, limit: int) -> list[datetime]:
    zone, out, moment = ZoneInfo(tz), [], low
    while moment < high and len(out) < limit:
        if moment.astimezone(zone).utcoffset() != (moment + timedelta(hours=1)).astimezone(
                zone).utcoffset():
            out.append(moment)
        moment += timedelta(hours=1)
    return out


# -- the tests --------------------------------------------------------------------------


def import_one(name: str, raw: dict[str, Any], start: datetime, tmp_path: Path) -> Any:
    export = [{"jobId": 1, "title": name, "url": "https://app.example.com/api/cron/x",
               "requestMethod": 0, "schedule": raw, "extendedData": {"headers": {}}}]
    result = cronjob_org.import_jobs(export, cronjob_org.Options(now=start))
    return result


@pytest.mark.parametrize(("name", "raw", "start"), EXACT, ids=[case[0] for case in EXACT])
def test_imported_job_fires_at_cron_job_orgs_next_1000_instants(
    name: str, raw: dict[str, Any], start: datetime, tmp_path: Path
) -> None:
    result = import_one(name, raw, start, tmp_path)
    assert not result.refused, result.refused
    config_file = tmp_path / "config.toml"
    config_file.write_text(toml_out.render(result.jobs), encoding="utf-8")
    spec = load_config(config_file, resolve_secrets=False).job(name)
    assert spec is not None and spec.timezone == raw["timezone"]

    expected = wall_clock_instants(raw, start, COUNT)
    assert next_fire_times(spec.timetable(), COUNT, after=start) == expected
    assert [t.astimezone(UTC) for t in _cronsim(spec.schedule, spec.timezone, start, COUNT)] \
        == expected

    # The enumeration agrees with plain minute-by-minute iteration around DST changes.
    for change in offset_changes(raw["timezone"], start, expected[-1], limit=4):
        low, high = change - timedelta(hours=6), change + timedelta(hours=6)
        assert [t for t in expected if low <= t < high] == [
            t for t in minute_by_minute(raw, low, high) if t > start]


def _cronsim(expr: str, tz: str, start: datetime, count: int) -> list[datetime]:
    iterator = CronSim(expr, start.astimezone(ZoneInfo(tz)))
    return [next(iterator) for _ in range(count)]


@pytest.mark.parametrize(("name", "raw", "start"), REFUSED, ids=[case[0] for case in REFUSED])
def test_fixed_time_job_on_a_dst_wall_clock_time_is_refused_and_really_differs(
    name: str, raw: dict[str, Any], start: datetime, tmp_path: Path
) -> None:
    result = import_one(name, raw, start, tmp_path)
    assert [f.job_id for f in result.refused] == [name]
    assert "--accept-dst-difference" in result.refused[0].message
    crontab = to_crontab(parse_schedule(raw))
    fires = [t.astimezone(UTC) for t in _cronsim(crontab, raw["timezone"], start, COUNT)]
    assert fires != wall_clock_instants(raw, start, COUNT)


def test_accept_dst_difference_imports_with_a_warning() -> None:
    raw = REFUSED[0][1]
    export = [{"jobId": 7, "title": "nightly", "url": "https://app.example.com/x",
               "requestMethod": 0, "schedule": raw}]
    result = cronjob_org.import_jobs(
        export, cronjob_org.Options(accept_dst_difference=True, now=at("2027-01-01T00:00")))
    assert not result.refused and [j.schedule for j in result.jobs] == ["30 2 * * *"]
    assert any("DST" in w.message for w in result.warnings)


@pytest.mark.parametrize(("minutes", "hours", "expected"), [
    ([0, 15, 30, 45], EVERY, "*/15 * * * *"),
    (list(range(60)), list(range(24)), "* * * * *"),
    ([0], [0, 6, 12, 18], "0 */6 * * *"),
    ([1, 2, 3, 10], [9], "1-3,10 9 * * *"),
])
def test_sets_render_as_compact_crontab_fields(
    minutes: list[int], hours: list[int], expected: str
) -> None:
    assert to_crontab(parse_schedule(sets("UTC", minutes, hours))) == expected


def test_day_fields_never_render_with_a_leading_star_step() -> None:
    # */7 in day-of-month would turn cron's OR of the day fields into an AND.
    raw = sets("UTC", [0], [9], mdays=[1, 8, 15, 22, 29], wdays=[1])
    assert to_crontab(parse_schedule(raw)) == "0 9 1,8,15,22,29 * 1"
