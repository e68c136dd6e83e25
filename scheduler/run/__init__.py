"""A due slot's path: decide, claim, execute (through ``jobs/``), record, publish.

    runner.py   SlotRunner: claims due slots and runs them as tasks on the event loop
    decide.py   which due slot runs and why the others are missed (pure)
    execute.py  a JobSpec → a job kind's request → an Outcome (the one caller of jobs/)
    record.py   missed slots and finished runs written through store outages
    events.py   SlotEvent and the bus that metrics, alerts and logs listen on
    turns.py    a job's runs in flight in claim order; a trigger waits for its turn
"""

from __future__ import annotations

from scheduler.run.events import EventBus, SlotEvent
from scheduler.run.execute import JobExecutor
from scheduler.run.runner import SlotRunner

__all__ = ["EventBus", "JobExecutor", "SlotEvent", "SlotRunner"]
