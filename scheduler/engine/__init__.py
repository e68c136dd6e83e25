"""The only place that knows APScheduler: triggers, the scheduler, and syncing jobs into it.

    triggers.py   APScheduler triggers wrapping scheduler.schedule's schedules
    scheduler.py  CronhostScheduler (precise wake-ups, survives store errors) and
                  SlotExecutor (hands every due slot to the runner)
    sync.py       Engine: reconciles the configured jobs with APScheduler's job store
    legacy.py     moves stored jobs written under older import paths

APScheduler decides WHEN a slot is due; ``scheduler.run`` decides what happens to it.
"""

from __future__ import annotations

from scheduler.engine.sync import Changes, Engine
from scheduler.engine.triggers import CrontabTrigger, EveryTrigger, trigger_for

__all__ = ["Changes", "CrontabTrigger", "Engine", "EveryTrigger", "trigger_for"]
