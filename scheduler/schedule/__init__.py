"""What a schedule means: crontab lines (Debian cron semantics), intervals, slot keys.

    base.py       the Schedule protocol, ScheduleError, next_fire_times
    crontab.py    5-field crontab lines, checked and evaluated with cronsim
    every.py      ``every = "30s"``: a grid counted from the Unix epoch
    durations.py  "30s", "1h30m": parsing and showing durations
    words.py      a schedule in plain words
    slots.py      the Idempotency-Key of a slot

Nothing here knows APScheduler: the engine wraps these schedules in its triggers.
"""

from __future__ import annotations

from scheduler.schedule.base import Schedule, ScheduleError, as_utc, next_fire_times, shown
from scheduler.schedule.crontab import CrontabSchedule, validate_expression, zone
from scheduler.schedule.durations import format_duration, interval_words, parse_duration
from scheduler.schedule.every import EverySchedule
from scheduler.schedule.slots import replayed_slot, slot_key
from scheduler.schedule.words import describe, schedule_words

__all__ = [
    "CrontabSchedule",
    "EverySchedule",
    "Schedule",
    "ScheduleError",
    "as_utc",
    "describe",
    "format_duration",
    "interval_words",
    "next_fire_times",
    "parse_duration",
    "replayed_slot",
    "schedule_words",
    "shown",
    "slot_key",
    "validate_expression",
    "zone",
]
