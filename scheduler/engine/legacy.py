"""Stored jobs written under older import paths, moved to today's before APScheduler reads them.

APScheduler's job store pickles each job: its trigger object and the import path
of its callable. Until the layout of 2026-12 those were ``scheduler.cron``
(CrontabTrigger, EveryTrigger) and ``scheduler.executor:fire_slot``. APScheduler
drops a job whose pickle no longer loads, and with it the next fire time that
catch-up after downtime depends on; so on start, before the scheduler loads a
single job, every row that names an old path is rewritten to the new one.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from sqlalchemy import Engine, LargeBinary, Unicode, column, inspect, select, table, update

from scheduler.logs import get_logger
from scheduler.store.schema import APSCHEDULER_TABLE

__all__ = ["FIRE_SLOT", "upgrade_stored_jobs"]

log = get_logger("engine")

FIRE_SLOT = "scheduler.engine.scheduler:fire_slot"
_MOVED_MODULES = {"scheduler.cron": "scheduler.engine.triggers"}
_MOVED_FUNCS = {"scheduler.executor:fire_slot": FIRE_SLOT}

_jobs = table(APSCHEDULER_TABLE, column("id", Unicode), column("job_state", LargeBinary))


class _MovedPathsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(_MOVED_MODULES.get(module, module), name)


def _names_old_path(blob: bytes) -> bool:
    return any(old.encode() in blob for old in (*_MOVED_MODULES, *_MOVED_FUNCS))


def upgrade_stored_jobs(engine: Engine) -> int:
    """Rewrite stored jobs that name pre-2026-12 import paths; returns how many were."""
    if APSCHEDULER_TABLE not in inspect(engine).get_table_names():
        return 0
    upgraded = 0
    with engine.begin() as conn:
        rows = conn.execute(select(_jobs.c.id, _jobs.c.job_state)).all()
        for job_id, blob in rows:
            if not _names_old_path(bytes(blob)):
                continue
            state = _MovedPathsUnpickler(io.BytesIO(bytes(blob))).load()
            state["func"] = _MOVED_FUNCS.get(state.get("func"), state.get("func"))
            conn.execute(
                update(_jobs).where(_jobs.c.id == job_id)
                .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            )
            upgraded += 1
    if upgraded:
        log.info("stored jobs moved to the current import paths",
                 extra={"action": "engine.jobs_upgraded", "jobs": upgraded})
    return upgraded
