"""Webhook alerts: a JSON POST with Slack's ``text`` plus structured fields."""

from __future__ import annotations

import httpx

from scheduler.observe.alerts.delivery import DeliveryError
from scheduler.observe.alerts.rules import Alert


class WebhookChannel:
    def __init__(self, name: str, url: str, *, timeout: float, user_agent: str) -> None:
        self.name = name
        self._url = url
        # Its own client: alerts must get through even while job requests fill the
        # jobs' connection pool. TLS is verified; redirects are not followed (a webhook
        # that redirects is misconfigured, and the body must not be re-sent elsewhere).
        self._client = httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": user_agent}, follow_redirects=False
        )

    async def send(self, alert: Alert) -> None:
        try:
            response = await self._client.post(self._url, json=alert.payload())
        except httpx.HTTPError as exc:
            # str(exc) of a transport error carries no URL (which may hold a token).
            raise DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if response.is_success:
            return
        retry = response.status_code == 429 or response.status_code >= 500
        raise DeliveryError(
            f"the webhook answered HTTP {response.status_code}", permanent=not retry
        )

    async def aclose(self) -> None:
        await self._client.aclose()
