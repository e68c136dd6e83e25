"""Schedules in plain words ("every 5 minutes", "at 03:00, Monday through Friday")."""

from __future__ import annotations

import functools

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options

from scheduler.schedule.crontab import CrontabSchedule, cron_form, validate_expression
from scheduler.schedule.durations import interval_words
from scheduler.schedule.every import EverySchedule

__all__ = ["describe", "schedule_words"]


def describe(schedule: str | CrontabSchedule | EverySchedule) -> str:
    """Plain words for a schedule or a crontab line; never raises."""
    try:
        if isinstance(schedule, EverySchedule):
            return interval_words(schedule.interval)
        if isinstance(schedule, CrontabSchedule):
            return _cron_words(schedule.expression)
        if isinstance(schedule, str):
            return _cron_words(schedule)
        return str(schedule)
    except Exception:  # noqa: BLE001  (a description is decoration; the schedule still works)
        return str(getattr(schedule, "expression", schedule))


@functools.lru_cache(maxsize=256)  # cron-descriptor reloads its locale on every call
def schedule_words(schedule: str) -> str:
    """Plain words for a stored schedule: a crontab line, or `every 30s` (already words)."""
    return schedule if schedule.startswith("every ") else describe(schedule)


def _cron_words(expression: str) -> str:
    normalized = validate_expression(expression)
    cron = cron_form(normalized, expression)
    # locale_code is explicit: autodetection warns when the daemon runs without a locale.
    options = Options(casing_type=CasingTypeEnum.Sentence, day_of_week_start_index_zero=True,
                      use_24hour_time_format=True, locale_code="en_US")
    words = ExpressionDescriptor(cron, options).get_description()
    dom, dow = cron.split()[2], cron.split()[4]
    if dom != "*" and dow != "*" and (dom.startswith("*") or dow.startswith("*")):
        # cron-descriptor says "or" for any restricted pair; Debian's star rule makes it AND.
        words = words.replace(", or on ", ", and only on ")
    return words[:1].lower() + words[1:]
