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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from scheduler.alerts.settings import url_holds_token, url_problem
from scheduler.cron import ScheduleError, parse_duration
from scheduler.errors import ConfigError, SecretError
from scheduler.logs import get_logger
from scheduler.secrets import SECRET_NAME, looks_like_a_token, require_secret

log = get_logger("heartbeat")

KEYS = ("url", "url_secret", "interval", "timeout")


@dataclass(frozen=True)
class HeartbeatSettings:
    url: str | None
    url_secret: str | None
    interval: float = 60.0
    timeout: float = 10.0

    def resolve_url(self, file: str) -> str:
        if self.url is not None:
            return self.url
        assert self.url_secret is not None
        value = require_secret(self.url_secret, file=file, field="heartbeat.url_secret")
        problem = url_problem(value)
        if problem:
            raise SecretError(f"the URL in the secret {self.url_secret!r} {problem}", file=file,
                              field="heartbeat.url_secret")
        return value


def parse_heartbeat(raw: Any, file: str) -> HeartbeatSettings | None:
    if raw is None:
        return None

    def error(message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, file=file, field="heartbeat" + (f".{key}" if key else ""))

    if not isinstance(raw, dict):
        raise error("`heartbeat` must be a table ([heartbeat])")
    for key in raw:
        if key not in KEYS:
            raise error(f"unknown key; expected one of: {', '.join(sorted(KEYS))}", key)
    if ("url" in raw) == ("url_secret" in raw):
        raise error("needs exactly one of `url` or `url_secret`", "url")
    url, name = raw.get("url"), raw.get("url_secret")
    if url is not None:
        if not isinstance(url, str):
            raise error("must be a string", "url")
        problem = url_problem(url) or (
            "carries a token (ping URLs usually do): put it in a secret and set url_secret"
            if url_holds_token(url) else None
        )
        if problem:
            raise error(f"the URL {problem}", "url")
    if name is not None and (
        not isinstance(name, str) or looks_like_a_token(name) or not SECRET_NAME.match(name)
    ):
        raise error("must be the NAME of a secret, never the URL itself", "url_secret")
    return HeartbeatSettings(
        url=url, url_secret=name,
        interval=_seconds(raw.get("interval", "1m"), error, "interval"),
        timeout=_seconds(raw.get("timeout", "10s"), error, "timeout"),
    )


def _seconds(value: Any, error: Callable[[str, str], ConfigError], key: str) -> float:
    if not isinstance(value, str):
        raise error('must be a duration such as "1m"', key)
    try:
        duration = parse_duration(value)
    except ScheduleError as exc:
        raise error(str(exc), key) from None
    if duration < timedelta(seconds=1):
        raise error("must be at least 1s", key)
    return duration.total_seconds()


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
