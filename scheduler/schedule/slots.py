"""How a slot is named: the Idempotency-Key the endpoint sees and the history keeps.

``<job>@<UTC instant>``; the same on every attempt of one slot, so an endpoint
can tell a retry (or a re-run of a recorded slot) from new work.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["replayed_slot", "slot_key"]


def slot_key(job_id: str, scheduled_at: datetime, trigger: str = "schedule") -> str:
    """``job@2026-11-29T03:00:00Z``: identical on every attempt of one slot.

    A manual run (``cronhost trigger``) is a slot of its own, ``job@manual:<instant>``
    to the microsecond, so it never collides with a scheduled slot.
    """
    precision = "microseconds" if trigger == "manual" else "seconds"
    stamp = scheduled_at.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")
    return f"{job_id}@{stamp}" if trigger == "schedule" else f"{job_id}@{trigger}:{stamp}"


def replayed_slot(idempotency_key: str) -> str | None:
    """For a manual run's key: the recorded slot it re-ran, or None for a plain manual run.

    ``cronhost trigger --slot`` re-sends a recorded slot's own key, so a manual row whose
    key does not say ``manual:`` repeated the slot the key names.
    """
    stamp = idempotency_key.split("@", 1)[-1]
    return None if stamp.startswith("manual:") else stamp
