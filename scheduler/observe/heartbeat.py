"""Dead-man's switch: ``[heartbeat] url = ...`` is fetched (GET) every minute while healthy.

A monitor such as healthchecks.io raises the alarm when the pings stop: that
catches what no alert from inside can, a daemon that is dead, hung, or cut off
from its store. So a ping is sent only after the store has answered, and from
the daemon's own event loop (a stuck loop sends nothing).

    [heartbeat]
    url_secret = "HEARTBEAT_URL"   # or url = "https://..." when it holds no token
    interval = "1m"
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from scheduler.config.observers import HeartbeatSettings
from scheduler.logs import get_logger

log = get_logger("heartbeat")

class HeartbeatPinger:
    """Pings while ``healthy()`` says so. ``target()`` gives (url, settings), or None to stop."""

    def __init__(
        self,
        target: Callable[[], tuple[str, HeartbeatSettings] | None],
        healthy: Callable[[], Awaitable[bool]],
        *,
        user_agent: str,
    ) -> None:
        self._target = target
        self._healthy = healthy
        self._client = httpx.AsyncClient(headers={"User-Agent": user_agent},
                                          follow_redirects=True)
        self.sent = 0
        self._failing = False

    async def run(self) -> None:
        try:
            while (target := self._target()) is not None:
                url, settings = target
                await self.ping_once(url, settings.timeout)
                await asyncio.sleep(settings.interval)
        finally:
            await self._client.aclose()

    async def ping_once(self, url: str, timeout: float) -> bool:
        if not await self._healthy():
            log.warning("heartbeat not sent: the store does not answer",
                        extra={"action": "heartbeat.skipped"})
            return False
        try:
            response = await self._client.get(url, timeout=timeout)
            ok = response.is_success
            problem = None if ok else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, problem = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
        if ok:
            self.sent += 1
            if self._failing:
                log.info("heartbeat delivered again", extra={"action": "heartbeat.recovered"})
        else:
            # Never log the URL: a ping URL is as good as a password for the monitor.
            log.warning("heartbeat ping failed", extra={"action": "heartbeat.failed",
                                                        "error": problem})
        self._failing = not ok
        return ok
