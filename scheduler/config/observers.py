"""The tables of what watches the daemon: ``[metrics]``, ``[heartbeat]`` and ``[logging]``.

    [metrics]
    listen = "127.0.0.1:9464"        # Prometheus text format at /metrics; loopback only
    allow_remote = false             # unless a firewall protects a wider address

    [heartbeat]                      # dead-man's switch: GET this URL while healthy
    url_secret = "HEARTBEAT_URL"     # or url = "https://..." when it holds no token
    interval = "1m"

    [logging]
    level = "info"                   # debug, info, warning, error

Parsed once, with the rest of config.toml, into the frozen settings below
(``[[alerts]]`` are in ``scheduler.config.alerts``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from scheduler.config.reader import TableReader
from scheduler.config.secrets import require_secret
from scheduler.config.urls import is_loopback, url_holds_token, url_problem
from scheduler.errors import SecretError

__all__ = [
    "HeartbeatSettings", "MetricsSettings", "parse_heartbeat", "parse_log_level", "parse_metrics",
]

DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}


@dataclass(frozen=True)
class MetricsSettings:
    host: str
    port: int


@dataclass(frozen=True)
class HeartbeatSettings:
    url: str | None
    url_secret: str | None
    interval: float = 60.0
    timeout: float = 10.0

    def resolve_url(self, file: str) -> str:
        """The URL to ping: the literal one, or the value of the secret that holds it."""
        if self.url is not None:
            return self.url
        assert self.url_secret is not None
        value = require_secret(self.url_secret, file=file, field="heartbeat.url_secret")
        problem = url_problem(value)
        if problem:
            raise SecretError(f"the URL in the secret {self.url_secret!r} {problem}", file=file,
                              field="heartbeat.url_secret")
        return value


def parse_metrics(table: TableReader | None) -> MetricsSettings | None:
    """``[metrics]``; None when metrics are off (no table, or enabled = false)."""
    if table is None:
        return None
    table.only({"listen", "enabled", "allow_remote"})
    allow_remote = table.boolean("allow_remote", False)
    if not table.boolean("enabled", True):
        return None
    host, port = _host_port(table)
    if not allow_remote and not is_loopback(host):
        # The endpoint has no authentication: job names and failure rates are for the
        # operator's Prometheus, reached through loopback or a proxy they secure.
        raise table.error(
            f"{host} is not a loopback address and the metrics endpoint has no "
            "authentication; listen on 127.0.0.1 (scrape through a proxy or SSH tunnel), "
            "or set allow_remote = true if a firewall protects it", "listen")
    return MetricsSettings(host=host, port=port)


def _host_port(table: TableReader) -> tuple[str, int]:
    value = table.value("listen", DEFAULT_METRICS_LISTEN)
    problem = table.error('must be "HOST:PORT", e.g. "127.0.0.1:9464" or "[::1]:9464"', "listen")
    if not isinstance(value, str):
        raise problem
    host, colon, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    # isascii: "٩٤٦٤".isdigit() is true; len: int() refuses 4300+ digits with a ValueError.
    if (not colon or not host or not port_text.isascii() or not port_text.isdigit()
            or len(port_text) > 5 or not 0 <= int(port_text) <= 65535):
        raise problem
    return host, int(port_text)


def parse_heartbeat(table: TableReader | None) -> HeartbeatSettings | None:
    """``[heartbeat]``; None when there is no such table."""
    if table is None:
        return None
    table.only({"url", "url_secret", "interval", "timeout"})
    if table.has("url") == table.has("url_secret"):
        raise table.error("needs exactly one of `url` or `url_secret`", "url")
    url = table.optional_string("url", non_empty=True)
    if url is not None:
        problem = url_problem(url) or (
            "carries a token (ping URLs usually do): put it in a secret and set url_secret"
            if url_holds_token(url) else None
        )
        if problem:
            raise table.error(f"the URL {problem}", "url")
    second = timedelta(seconds=1)
    return HeartbeatSettings(
        url=url,
        url_secret=table.secret_name("url_secret",
                                     "must be the NAME of a secret, never the URL itself"),
        interval=table.duration("interval", "1m", at_least=second, at_least_text="1s")
        .total_seconds(),
        timeout=table.duration("timeout", "10s", at_least=second, at_least_text="1s")
        .total_seconds(),
    )


def parse_log_level(table: TableReader | None) -> int | None:
    """``[logging] level = "info"``; the format is chosen on the command line (--log-format)."""
    if table is None:
        return None
    table.only({"level"})
    level = table.value("level", "info")
    if not isinstance(level, str) or level not in LOG_LEVELS:  # a list is not hashable
        raise table.error(f"must be one of {', '.join(LOG_LEVELS)}", "level")
    return LOG_LEVELS[level]
