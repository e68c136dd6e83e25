"""History retention: a built-in job prunes runs older than ``[store] keep``.

The job is declared once, as a config table (:data:`PRUNE_JOB`) that the config
loader appends to the operator's ``[[jobs]]``. So it is validated, scheduled,
claimed, recorded and shown (status, history, dashboard, metrics) like any other
job, and an operator can replace it by declaring a job with the same id (another
schedule, or ``enabled = false``).

The callable needs the daemon's store, which a config file cannot name: the
daemon binds it at start (:func:`bind`) and unbinds it at shutdown. Outside a
daemon the job fails with a clear message instead of guessing a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.python import CallContext
    from scheduler.store import Store

PRUNE_JOB_ID = "cronhost-prune-history"

# Every key is explicit so that an operator's [defaults] (a short deadline, retries,
# another time zone) cannot change how the built-in job behaves.
PRUNE_JOB: dict[str, Any] = {
    "id": PRUNE_JOB_ID,
    "call": "scheduler.retention:prune_history",
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
    declared = {job.get("id") for job in configured if isinstance(job, dict)}
    return [] if PRUNE_JOB_ID in declared else [dict(PRUNE_JOB)]


@dataclass(frozen=True)
class _Binding:
    store: Store
    keep: Callable[[], timedelta]  # read at each run, so a reloaded `keep` applies


_binding: _Binding | None = None


def bind(store: Store, keep: Callable[[], timedelta]) -> None:
    """Give the built-in job the daemon's store and retention (called at daemon start)."""
    global _binding
    _binding = _Binding(store, keep)


def unbind() -> None:
    global _binding
    _binding = None


async def prune_history(context: CallContext) -> dict[str, Any]:
    """The built-in job: delete finished runs scheduled more than ``keep`` before this slot."""
    binding = _binding
    if binding is None:
        return {
            "success": False,
            "error": "history pruning runs only inside the cronhost daemon (no store is bound)",
        }
    keep = binding.keep()
    before = context.scheduled_at - keep
    # Store.prune deletes in short batched transactions; in a thread, so the event loop
    # keeps firing other jobs while a large history is pruned.
    deleted = await asyncio.to_thread(binding.store.prune, before)
    context.logger.info(
        "history pruned",
        extra={"action": "store.pruned", "job": context.job_id, "deleted": deleted,
               "before": before.isoformat()},
    )
    return {
        "success": True,
        "message": f"deleted {deleted} runs scheduled before {before.isoformat(timespec='seconds')}"
                   f" (keep {_days(keep)})",
        "data": {"deleted": deleted, "before": before.isoformat()},
    }


def _days(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds}s"
