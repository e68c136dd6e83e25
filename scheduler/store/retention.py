"""History retention: the built-in job that prunes runs (and audit events) older than ``[store] keep``.

The job is declared in ``scheduler.config.builtin`` and scheduled like any other.
Its callable needs the daemon's store, which a config file cannot name, so the
daemon's composition root builds a :class:`PruneHistory` over its store and the
runner calls that in place of :func:`prune_history` (``scheduler.run.execute``).
Called anywhere else, the stand-in fails with a clear message instead of
guessing a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.python import CallContext
    from scheduler.store.store import Store

__all__ = ["PruneHistory", "prune_history"]


class PruneHistory:
    """Delete finished runs scheduled, and audit events written, more than ``keep`` before
    the slot being run."""

    def __init__(self, store: Store, keep: Callable[[], timedelta]) -> None:
        self._store = store
        self._keep = keep  # read at each run, so a reloaded `keep` applies

    async def __call__(self, context: CallContext) -> dict[str, Any]:
        keep = self._keep()
        before = context.scheduled_at - keep
        # Store.prune deletes in short batched transactions; in a thread, so the event loop
        # keeps firing other jobs while a large history is pruned.
        deleted = await asyncio.to_thread(self._store.prune, before)
        events = await asyncio.to_thread(self._store.prune_events, before)
        context.logger.info(
            "history pruned",
            extra={"action": "store.pruned", "job": context.job_id, "deleted": deleted,
                   "events_deleted": events, "before": before.isoformat()},
        )
        return {
            "success": True,
            "message": f"deleted {deleted} runs scheduled before "
                       f"{before.isoformat(timespec='seconds')} (keep {_days(keep)}), "
                       f"and {events} older audit events",
            "data": {"deleted": deleted, "events_deleted": events, "before": before.isoformat()},
        }


async def prune_history(context: CallContext) -> dict[str, Any]:
    """The importable name the built-in job's ``call`` points at (see the module docstring)."""
    return {
        "success": False,
        "error": "history pruning runs only inside the cronhost daemon (no store is bound)",
    }


def _days(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds}s"
