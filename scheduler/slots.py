"""How a slot is named: the Idempotency-Key the endpoint sees and the history keeps."""

from __future__ import annotations

from datetime import UTC, datetime


def slot_key(job_id: str, scheduled_at: datetime, trigger: str = "schedule") -> str:
    """``job@2026-11-29T03:00:00Z``: identical on every attempt of one slot.

    A manual run (``cronhost trigger``) is a slot of its own, ``job@manual:<instant>``
    to the microsecond, so it never collides with a scheduled slot.
    """
    precision = "microseconds" if trigger == "manual" else "seconds"
    stamp = scheduled_at.astimezone(UTC).isoformat(timespec=precision).replace("+00:00", "Z")
    return f"{job_id}@{stamp}" if trigger == "schedule" else f"{job_id}@{trigger}:{stamp}"
