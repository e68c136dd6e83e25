"""Cron semantics: the triggers follow cronsim (Debian cron's rules) exactly, traps included."""

from __future__ import annotations

import functools
import itertools
import pickle
import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from cronsim import CronSim, CronSimError

from scheduler.engine.triggers import CrontabTrigger, EveryTrigger
from scheduler.schedule import (
    CrontabSchedule,
    EverySchedule,
    ScheduleError,
    describe,
    next_fire_times,
    parse_duration,
    validate_expression,
    zone,
)

NY = "America/New_York"
ZONES = ["UTC", NY, "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(expression: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Fire times in [start, end) through the trigger interface, as APScheduler asks for them."""
    trigger = CrontabTrigger(expression, tz)
    result: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire < end:
        result.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return result


def local(moments: list[datetime], tz: str) -> list[str]:
    return [m.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z") for m in moments]


# --- the trigger against cronsim, over random expressions ------------------------------------

# Each case runs at most one year or MAX_FIRES fire times, whichever ends first: enough to
# cross month ends, leap rules and both DST transitions for sparse schedules, while a
# `* * * * *` case stays short (400 minutes). Half the cases start in the hours before a
# DST transition of their zone so that frequent schedules cross one too; half start on a
# whole minute, where a slot exactly at the start must be the first fire time.
CASES = 300
MAX_FIRES = 400
SEED = 20260308


@functools.cache
def transitions(tz: str) -> list[datetime]:
    """The instants in 2026 when `tz` changes its UTC offset (15-minute resolution)."""
    zone_info, found = ZoneInfo(tz), []
    moment = utc(2026, 1, 1)
    offset = moment.astimezone(zone_info).utcoffset()
    while moment.year == 2026:
        moment += timedelta(minutes=15)
        new_offset = moment.astimezone(zone_info).utcoffset()
        if new_offset != offset:
            found.append(moment)
        offset = new_offset
    return found


def random_field(rng: random.Random, low: int, high: int, names: list[str], star: float) -> str:
    def value(v: int) -> str:
        return names[v - low] if names and v - low < len(names) and rng.random() < 0.4 else str(v)

    def term() -> str:
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        return rng.choice([
            value(rng.randint(low, high)),
            f"{value(a)}-{value(b)}",
            f"{value(a)}-{value(b)}/{rng.randint(1, 4)}",
            f"{value(a)}/{rng.randint(1, 9)}",
        ])

    roll = rng.random()
    if roll < star:
        return "*"
    if roll < star + 0.15:
        return f"*/{rng.randint(1, high - low + 1)}"
    return ",".join(term() for _ in range(rng.choice([1, 1, 2, 3])))


def random_expression(rng: random.Random) -> str:
    return " ".join([
        random_field(rng, 0, 59, [], star=0.1),
        random_field(rng, 0, 23, [], star=0.35),
        random_field(rng, 1, 31, [], star=0.55),
        random_field(rng, 1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                  "sep", "oct", "nov", "dec"], star=0.6),
        # high=7: Sunday as 7 appears in values and ranges.
        random_field(rng, 0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], star=0.5),
    ])


def cronsim_accepts(expression: str) -> bool:
    try:
        next(CronSim(expression, utc(2000, 1, 1)))
    except (CronSimError, StopIteration):
        return False
    return True


@functools.cache
def random_cases() -> list[tuple[str, str, datetime]]:
    rng = random.Random(SEED)
    cases: list[tuple[str, str, datetime]] = []
    while len(cases) < CASES:
        expression = random_expression(rng)
        if not cronsim_accepts(expression):
            continue  # e.g. "0 0 31 feb *"; test_validation_agrees_with_cronsim covers these
        tz = ZONES[len(cases) % len(ZONES)]
        if tz != "UTC" and rng.random() < 0.5:
            start = rng.choice(transitions(tz)) - timedelta(seconds=rng.randint(0, 6 * 3600))
        else:
            start = utc(2026, 1, 1) + timedelta(seconds=rng.randint(0, 365 * 86400))
        if rng.random() < 0.5:
            start = start.replace(second=0)  # often exactly on a slot: "now" must count
        cases.append((expression, tz, start))
    return cases


def reference(expression: str, tz: str, start: datetime) -> list[datetime]:
    """cronsim's own iteration, begun a day early (its start point must not matter)."""
    result: list[datetime] = []
    end = start + timedelta(days=366)
    for fire in CronSim(expression, (start - timedelta(days=1)).astimezone(ZoneInfo(tz))):
        fire = fire.astimezone(UTC)
        if fire >= end or len(result) == MAX_FIRES:
            break
        if fire >= start and (not result or fire > result[-1]):
            result.append(fire)
    return result


# CPU-bound: 12 s on a quiet machine, past a minute on a loaded one.
@pytest.mark.timeout(300)
def test_random_expressions_fire_exactly_when_cronsim_says() -> None:
    mismatches = []
    for expression, tz, start in random_cases():
        expected = reference(expression, tz, start)
        trigger = CrontabTrigger(expression, tz)
        got: list[datetime] = []
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and len(got) < len(expected):
            got.append(fire)
            fire = trigger.get_next_fire_time(fire, fire)
        # Same times when every call starts afresh (after a restart nothing is cached):
        # asking in reverse order makes each call miss the trigger's cursor.
        fresh = pickle.loads(pickle.dumps(trigger))
        afresh = [fresh.get_next_fire_time(previous, previous) for previous in expected[-2::-1]]
        if got != expected or afresh[::-1] != expected[1:]:
            mismatches.append((expression, tz, start.isoformat()))
    assert mismatches == [], f"{len(mismatches)} of {CASES} cases differ, e.g. {mismatches[:5]}"


def test_fire_times_are_utc_whole_seconds_and_increasing() -> None:
    for expression, tz, start in random_cases()[:30]:
        got = fires(expression, tz, start, start + timedelta(days=10))
        assert all(f.tzinfo is UTC and f.microsecond == 0 and f.second == 0 for f in got)
        assert got == sorted(set(got))


def test_validation_agrees_with_cronsim() -> None:
    rng = random.Random(SEED + 1)
    for _ in range(1000):
        expression = random_expression(rng)
        try:
            validate_expression(expression)
            ours = True
        except ScheduleError:
            ours = False
        assert ours == cronsim_accepts(expression), expression


# --- hand-picked traps -------------------------------------------------------------------------


def test_day_of_week_1_is_monday() -> None:
    got = fires("0 9 * * 1", "UTC", utc(2026, 1, 1), utc(2026, 2, 1))
    assert got[0] == utc(2026, 1, 5, 9)  # Monday 5 January 2026
    assert {f.date().weekday() for f in got} == {0}
    assert len(got) == 4


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_day_of_week_0_and_7_are_both_sunday(sunday: str) -> None:
    got = fires(f"0 9 * * {sunday}", "UTC", utc(2026, 1, 1), utc(2026, 2, 1))
    assert got[0] == utc(2026, 1, 4, 9)  # Sunday 4 January 2026
    assert {f.date().weekday() for f in got} == {6}


def test_sunday_to_sunday_range_with_7_covers_the_weekend() -> None:
    got = fires("0 9 * * 6-7", "UTC", utc(2026, 1, 1), utc(2026, 1, 12))
    assert [f.day for f in got] == [3, 4, 10, 11]


def test_restricted_day_of_month_and_day_of_week_fire_on_either() -> None:
    got = fires("0 0 13 * 5", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert [f.date() for f in got] == [d for d in days if d.day == 13 or d.weekday() == 4]
    assert utc(2026, 2, 13) in got  # Friday the 13th fires once, not twice
    assert utc(2026, 1, 13) in got  # a Tuesday: fires for the 13th alone


def test_star_step_day_of_month_makes_the_day_fields_and() -> None:
    got = fires("0 0 */2 * 5", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert [f.date() for f in got] == [d for d in days if d.day % 2 == 1 and d.weekday() == 4]


def test_star_step_day_of_week_makes_the_day_fields_and() -> None:
    got = fires("0 0 1 * */3", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))
    # Day 1 of a month that falls on Sun, Wed or Sat (0, 3, 6).
    assert [f.date() for f in got] == [
        date(2026, m, 1) for m in range(1, 13) if date(2026, m, 1).isoweekday() % 7 in (0, 3, 6)
    ]


def test_fixed_time_job_in_spring_forward_gap_runs_once_right_after_the_gap() -> None:
    got = fires("0 2 * * *", NY, utc(2026, 3, 7), utc(2026, 3, 10))
    assert got == [utc(2026, 3, 7, 7), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)]
    assert local(got, NY)[1] == "2026-03-08 03:00 EDT"


def test_fixed_time_job_on_fall_back_day_runs_exactly_once() -> None:
    got = fires("30 1 * * *", NY, utc(2026, 10, 31), utc(2026, 11, 3))
    assert got == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    assert local(got, NY)[1] == "2026-11-01 01:30 EDT"  # the first of the two 01:30s


def test_fixed_time_job_asked_during_the_repeated_hour_waits_for_the_next_day() -> None:
    # 01:40 EST, the second 01:40 of the day: the 01:45 slot ran in the first pass.
    trigger = CrontabTrigger("45 1 * * *", NY)
    assert trigger.get_next_fire_time(None, utc(2026, 11, 1, 6, 40)) == utc(2026, 11, 2, 6, 45)


def test_frequent_job_on_fall_back_day_follows_real_time() -> None:
    got = fires("*/30 * * * *", NY, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    assert got == [utc(2026, 11, 1, 4) + timedelta(minutes=30 * i) for i in range(8)]
    assert local(got, NY)[2:6] == [
        "2026-11-01 01:00 EDT", "2026-11-01 01:30 EDT",
        "2026-11-01 01:00 EST", "2026-11-01 01:30 EST",
    ]


def test_frequent_job_on_spring_forward_day_skips_the_missing_hour() -> None:
    got = fires("*/30 * * * *", NY, utc(2026, 3, 8, 6), utc(2026, 3, 8, 8))
    assert got == [utc(2026, 3, 8, 6) + timedelta(minutes=30 * i) for i in range(4)]
    assert local(got, NY) == ["2026-03-08 01:00 EST", "2026-03-08 01:30 EST",
                              "2026-03-08 03:00 EDT", "2026-03-08 03:30 EDT"]


def test_half_hour_dst_gap_in_lord_howe_runs_fixed_job_at_the_end_of_the_gap() -> None:
    # Lord Howe springs forward from 02:00 to 02:30 on 4 October 2026.
    got = fires("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 2), utc(2026, 10, 5))
    assert local(got, "Australia/Lord_Howe") == [
        "2026-10-03 02:15 +1030", "2026-10-04 02:30 +11", "2026-10-05 02:15 +11",
    ]


def test_apscheduler_from_crontab_would_fire_on_the_wrong_day() -> None:
    # The reason cronhost does not use CronTrigger: its day-of-week 0 is Monday.
    theirs = CronTrigger.from_crontab("0 9 * * 0", timezone=UTC)
    ours = CrontabTrigger("0 9 * * 0")
    start = utc(2026, 1, 1)
    assert theirs.get_next_fire_time(None, start) == utc(2026, 1, 5, 9)  # a Monday
    assert ours.get_next_fire_time(None, start) == utc(2026, 1, 4, 9)  # a Sunday
    with pytest.raises(ValueError):
        CronTrigger.from_crontab("0 9 * * 7")


def test_macros_mean_their_debian_expansion() -> None:
    assert validate_expression("@daily") == "@daily"
    assert fires("@weekly", "UTC", utc(2026, 1, 1), utc(2026, 1, 12)) == [
        utc(2026, 1, 4), utc(2026, 1, 11)
    ]


# --- the APScheduler trigger contract ----------------------------------------------------------


def test_slot_exactly_at_now_counts_when_there_is_no_previous_fire() -> None:
    trigger = CrontabTrigger("0 3 * * *")
    assert trigger.get_next_fire_time(None, utc(2026, 5, 1, 3)) == utc(2026, 5, 1, 3)
    just_after = utc(2026, 5, 1, 3) + timedelta(microseconds=1)
    assert trigger.get_next_fire_time(None, just_after) == utc(2026, 5, 2, 3)


def test_previous_fire_time_is_exclusive_and_now_is_ignored() -> None:
    trigger = CrontabTrigger("0 3 * * *")
    previous = utc(2026, 5, 1, 3)
    assert trigger.get_next_fire_time(previous, utc(2026, 5, 9)) == utc(2026, 5, 2, 3)


def test_inputs_in_other_zones_give_utc_output() -> None:
    trigger = CrontabTrigger("0 3 * * *", NY)
    now = datetime(2026, 5, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))  # 03:00 UTC
    fire = trigger.get_next_fire_time(None, now)
    assert fire == utc(2026, 5, 1, 7) and fire is not None and fire.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CrontabTrigger("* * * * *").get_next_fire_time(None, datetime(2026, 1, 1))


def test_catching_up_a_week_of_minutes_is_fast() -> None:
    trigger = CrontabTrigger("* * * * *", NY)
    started = time.perf_counter()
    fire = trigger.get_next_fire_time(None, utc(2026, 3, 5))
    for _ in range(10_080):
        fire = trigger.get_next_fire_time(fire, utc(2026, 3, 12))
    assert fire == utc(2026, 3, 12, 0, 0)
    assert time.perf_counter() - started < 1.0


def test_next_fire_times_are_strictly_after() -> None:
    trigger = CrontabTrigger("*/15 * * * *")
    assert next_fire_times(trigger, 3, utc(2026, 1, 1, 0, 15)) == [
        utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 0, 45), utc(2026, 1, 1, 1, 0)
    ]
    assert next_fire_times(trigger, 0, utc(2026, 1, 1)) == []


def test_next_fire_times_default_to_now() -> None:
    got = next_fire_times(CrontabTrigger("* * * * *"), 2)
    now = datetime.now(UTC)
    assert now < got[0] <= now + timedelta(minutes=1) and got[1] - got[0] == timedelta(minutes=1)


# --- pickling, equality, errors ----------------------------------------------------------------


def test_crontab_trigger_pickles_by_expression_and_zone_only() -> None:
    trigger = CrontabTrigger("0  3 * * *", NY)
    trigger.get_next_fire_time(None, utc(2026, 1, 1))  # warm the cursor; it must not travel
    assert trigger.__getstate__() == {"version": 1, "expression": "0 3 * * *", "timezone": NY}
    copy = pickle.loads(pickle.dumps(trigger))
    assert copy == trigger and hash(copy) == hash(trigger)
    assert (copy.expression, copy.timezone) == ("0 3 * * *", NY)
    assert copy.get_next_fire_time(None, utc(2026, 1, 1)) == utc(2026, 1, 1, 8)


def test_crontab_trigger_equality_tells_changed_triggers() -> None:
    assert CrontabTrigger("0 3 * * *") == CrontabTrigger(" 0 3  * * * ")
    assert CrontabTrigger("0 3 * * *") != CrontabTrigger("0 3 * * *", NY)
    assert CrontabTrigger("0 3 * * *") != CrontabTrigger("0 4 * * *")
    assert len({CrontabTrigger("0 3 * * *"), CrontabTrigger("0 3 * * *")}) == 1


def test_crontab_trigger_text_forms() -> None:
    assert str(CrontabTrigger("0 3 * * *")) == "cron[0 3 * * *, UTC]"
    assert "0 3 * * *" in repr(CrontabTrigger("0 3 * * *", NY)) and NY in repr(
        CrontabTrigger("0 3 * * *", NY)
    )


def test_state_from_a_newer_version_is_refused() -> None:
    trigger = CrontabTrigger.__new__(CrontabTrigger)
    with pytest.raises(ValueError, match="version 2"):
        trigger.__setstate__({"version": 2, "expression": "* * * * *", "timezone": "UTC"})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *",
         "'61 * * * *' is not a valid cron expression: minute 61 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * * * *", "it has 6 fields, expected 5"),
        ("0 0 * *", "it has 4 fields, expected 5"),
        ("", "it is empty"),
        ("   ", "it is empty"),
        ("@reboot", "@reboot is not supported"),
        ("@often", "unknown macro @often"),
        ("5-1 * * * *", "minute range 5-1 runs backwards"),
        ("*/0 * * * *", "step in '*/0' must be at least 1"),
        ("0 0 * foo *", "month 'foo' is neither a number nor a name (jan-dec)"),
        ("0 0 L * *", "uses L (last), which Debian cron does not support"),
        ("0 0 * * 1#2", "uses # (nth weekday)"),
        ("0 0 30 feb *", "day-of-month 30 never occurs in month feb"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match="^" + re.escape(repr(expression))) as info:
        CrontabTrigger(expression)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_names_with_letters_l_and_w_are_not_mistaken_for_extensions() -> None:
    assert validate_expression("0 0 * jul,apr wed") == "0 0 * jul,apr wed"


def test_unknown_time_zone_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match=r"^unknown time zone 'Mars/Base'$"):
        CrontabTrigger("* * * * *", "Mars/Base")
    with pytest.raises(ScheduleError):
        zone("")
    assert zone(NY).key == NY


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


# --- EveryTrigger ------------------------------------------------------------------------------


def test_every_minute_fires_at_the_top_of_each_minute() -> None:
    trigger = EveryTrigger(timedelta(minutes=1))
    assert next_fire_times(trigger, 3, utc(2026, 1, 1, 12, 0, 30)) == [
        utc(2026, 1, 1, 12, 1), utc(2026, 1, 1, 12, 2), utc(2026, 1, 1, 12, 3)
    ]


def test_every_grid_is_counted_from_the_unix_epoch() -> None:
    trigger = EveryTrigger(timedelta(seconds=7))
    got = next_fire_times(trigger, 50, utc(2026, 6, 1, 13, 14, 15))
    epoch = utc(1970, 1, 1)
    assert all((f - epoch) % timedelta(seconds=7) == timedelta(0) for f in got)
    assert all(b - a == timedelta(seconds=7) for a, b in itertools.pairwise(got))
    assert next_fire_times(EveryTrigger(timedelta(seconds=10)), 2, utc(2026, 1, 1, 0, 0, 3)) == [
        utc(2026, 1, 1, 0, 0, 10), utc(2026, 1, 1, 0, 0, 20)
    ]


def test_every_on_a_grid_boundary_returns_now() -> None:
    trigger = EveryTrigger(timedelta(seconds=10))
    now = utc(2026, 1, 1, 0, 0, 20)
    assert trigger.get_next_fire_time(None, now) == now
    assert trigger.get_next_fire_time(now, now) == utc(2026, 1, 1, 0, 0, 30)
    later = now + timedelta(microseconds=1)
    assert trigger.get_next_fire_time(None, later) == utc(2026, 1, 1, 0, 0, 30)


def test_every_trigger_survives_pickling() -> None:
    trigger = EveryTrigger(timedelta(hours=1, minutes=30))
    copy = pickle.loads(pickle.dumps(trigger))
    assert copy == trigger and hash(copy) == hash(trigger)
    assert copy.interval == timedelta(minutes=90)
    now = utc(2026, 2, 3, 4, 5, 6)
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)
    assert trigger != EveryTrigger(timedelta(hours=1))
    assert str(trigger) == "every[90 minutes]"


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(milliseconds=500),
                                      timedelta(seconds=1.5), timedelta(seconds=-5)])
def test_every_needs_whole_seconds(interval: timedelta) -> None:
    with pytest.raises(ScheduleError):
        EveryTrigger(interval)


# --- describe ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 3 * * *", "at 03:00"),
        ("0 * * * *", "every hour"),
        ("0 9 * * 1", "at 09:00, only on Monday"),
        ("0 9 * * 7", "at 09:00, only on Sunday"),
        ("0 9 * * 0", "at 09:00, only on Sunday"),
        ("0 0 13 * 5", "at 00:00, on day 13 of the month, or on Friday"),
        ("0 0 */2 * 5", "at 00:00, every 2 days, and only on Friday"),
        ("0 22 * * 1-5", "at 22:00, Monday through Friday"),
        ("@daily", "at 00:00"),
        ("not cron", "not cron"),
        (CrontabSchedule("30 1 * * *", NY), "at 01:30"),
        (EverySchedule(timedelta(seconds=30)), "every 30 seconds"),
        (EverySchedule(timedelta(minutes=1)), "every minute"),
        (EverySchedule(timedelta(hours=2)), "every 2 hours"),
        (EverySchedule(timedelta(days=1)), "every day"),
    ],
)
def test_describe_in_plain_words(schedule: str | CrontabSchedule | EverySchedule,
                                 words: str) -> None:
    assert describe(schedule) == words


# --- parse_duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("90d", timedelta(days=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1m500ms", timedelta(minutes=1, milliseconds=500)),
        (" 5m ", timedelta(minutes=5)),
    ],
)
def test_parse_duration(text: str, duration: timedelta) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize("text", ["", "30", "abc", "5 m", "-5m", "0s", "0h0m", "1.5h", "30m1h",
                                  "1m1m", "5M", "2w"])
def test_parse_duration_rejects_junk_and_zero(text: str) -> None:
    with pytest.raises(ScheduleError, match="is not a valid duration"):
        parse_duration(text)
