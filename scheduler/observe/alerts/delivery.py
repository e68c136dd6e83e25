"""What a channel is, and how a failed delivery is told apart (retry it or not)."""

from __future__ import annotations

from typing import Protocol

from scheduler.errors import CronhostError
from scheduler.observe.alerts.rules import Alert


class DeliveryError(CronhostError):
    """An alert could not be delivered.

    ``permanent`` failures (a 4xx from the webhook, an SMTP 5xx, a refused login)
    are not retried: the same request would fail the same way.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver one alert or raise DeliveryError."""

    async def aclose(self) -> None:
        """Release connections."""
