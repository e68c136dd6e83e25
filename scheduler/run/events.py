"""Facts about slots, published by the runner to whoever listens (logs, metrics, alerts).

Listeners are called on the event loop and must return quickly; anything slow
(sending an alert) belongs in a task of the listener's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from scheduler.logs import get_logger

log = get_logger("events")


@dataclass(frozen=True)
class SlotEvent:
    """A slot reached a final status: ok, failed, timeout, skipped, missed or abandoned."""

    job_id: str
    status: str
    scheduled_at: datetime
    run_id: int | None = None
    trigger: str = "schedule"
    attempts: int = 0
    http_status: int | None = None
    duration_ms: int | None = None
    lateness_ms: int | None = None
    error: str | None = None  # cronhost's reason
    message: str | None = None  # the endpoint's words, when it said any
    slot_count: int = 1  # > 1 for one event standing for many missed slots


Listener = Callable[[SlotEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, event: SlotEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception(
                    "event listener failed", extra={"action": "events.listener_failed",
                                                    "listener": repr(listener)}
                )
