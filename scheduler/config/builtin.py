"""Jobs cronhost declares itself, appended to the operator's ``[[jobs]]``.

History pruning (``cronhost-prune-history``) is a job like any other: validated,
scheduled, claimed, recorded and shown like the rest, and an operator can
replace it by declaring a job with the same id (another schedule, or
``enabled = false``). Its callable is ``scheduler.store.retention``'s; the daemon
hands it the store (see ``scheduler.daemon.assemble``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRUNE_CALL", "PRUNE_JOB", "PRUNE_JOB_ID", "builtin_jobs"]

PRUNE_JOB_ID = "cronhost-prune-history"
PRUNE_CALL = "scheduler.store.retention:prune_history"

# Every key is explicit so that an operator's [defaults] (a short deadline, retries,
# another time zone) cannot change how the built-in job behaves.
PRUNE_JOB: dict[str, Any] = {
    "id": PRUNE_JOB_ID,
    "call": PRUNE_CALL,
    # 04:17 UTC: off the hour, when the 14 LeadMap jobs are least busy.
    "schedule": "17 4 * * *",
    "timezone": "UTC",
    "description": "Built-in: delete run history older than [store] keep",
    # Batched deletes of a million rows take a while on a slow disk; never cut one short.
    "timeout": "1h",
    "deadline": "1h",
    "retries": 0,
    "misfire_grace": "6h",
    "catch_up": True,
    "allow_overlap": False,
    "enabled": True,
}


def builtin_jobs(configured: list[Any]) -> list[dict[str, Any]]:
    """The built-in job tables to append to ``configured`` (none that it already declares)."""
    # Only string ids: anything else is refused when the job itself is read.
    declared = {job.get("id") for job in configured
                if isinstance(job, dict) and isinstance(job.get("id"), str)}
    return [] if PRUNE_JOB_ID in declared else [dict(PRUNE_JOB)]
