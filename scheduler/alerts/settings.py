"""The ``[[alerts]]`` tables: one alert channel each, with its rules.

    [[alerts]]
    type = "webhook"                 # or "email"
    url_secret = "SLACK_WEBHOOK_URL" # or url = "https://..." (a Slack URL holds a token: name it)
    jobs = ["sync-mailboxes"]        # optional filter; default all jobs
    after_failures = 3               # default 3 for jobs firing more often than hourly, else 1
    on_recovery = true
    on_missed = true
    on_abandoned = true
    min_interval = "15m"             # at most one alert per job per channel this often

    [[alerts]]
    type = "email"
    host = "smtp.example.com"
    port = 587
    starttls = true                  # default true, except for a loopback relay
    from = "cronhost@example.com"
    to = ["ops@example.com"]
    username = "cronhost"
    password_secret = "SMTP_PASSWORD"
    ca_file = "/etc/cronhost/smtp-ca.pem"  # optional: trust these CAs (PEM) instead of the
                                           # system's, for a relay with a private CA; the
                                           # server certificate is always verified

Parsing is strict (unknown keys, wrong types, non-loopback http:// are errors
naming the file and the field, e.g. ``alerts[2].url``); secret values are
looked up only when asked (the daemon, or a config check that resolves secrets).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from scheduler.cron import ScheduleError, parse_duration
from scheduler.errors import ConfigError, SecretError
from scheduler.hosts import is_loopback
from scheduler.secrets import SECRET_NAME, looks_like_a_token, require_secret

RULE_KEYS = {"jobs", "after_failures", "on_recovery", "on_missed", "on_abandoned",
             "min_interval", "retries"}
CHANNEL_KEYS = {
    "webhook": {"url", "url_secret", "timeout"},
    "email": {"host", "port", "starttls", "ssl", "from", "to", "username", "password_secret",
              "timeout", "ca_file"},
}
CREDENTIAL_QUERY_KEYS = {"token", "secret", "key", "api_key", "apikey", "access_token", "password"}
DEFAULT_MIN_INTERVAL = timedelta(minutes=15)
DEFAULT_RETRIES = 4  # with backoff 1, 2, 4, 8 s: a minute of outage at the receiver is covered


@dataclass(frozen=True)
class Rules:
    jobs: frozenset[str] | None = None  # None: every job
    after_failures: int | None = None  # None: derived from the job's schedule
    on_recovery: bool = True
    on_missed: bool = True
    on_abandoned: bool = True
    min_interval: timedelta = DEFAULT_MIN_INTERVAL

    def covers(self, job_id: str) -> bool:
        return self.jobs is None or job_id in self.jobs


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None
    url_secret: str | None
    timeout: float = 10.0


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    starttls: bool
    ssl: bool
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password_secret: str | None = None
    timeout: float = 10.0
    ca_file: str | None = None  # PEM CA certificates to trust, for a relay with a private CA


@dataclass(frozen=True)
class ChannelSettings:
    index: int  # 1-based position among the [[alerts]] tables, for messages
    type: str
    rules: Rules
    retries: int
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None

    @property
    def name(self) -> str:
        if self.webhook is not None:
            where = _host(self.webhook.url) if self.webhook.url else f"${self.webhook.url_secret}"
            return f"alerts[{self.index}] webhook {where}"
        assert self.email is not None
        return f"alerts[{self.index}] email via {self.email.host}"


def parse_alerts(raw: Any, job_ids: Collection[str], file: str) -> tuple[ChannelSettings, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError("`alerts` must be a list of [[alerts]] tables", file=file, field="alerts")
    return tuple(_Table(file, index + 1, table).channel(job_ids) for index, table in enumerate(raw))


def resolve_secrets(channels: tuple[ChannelSettings, ...], file: str) -> dict[str, str]:
    """Secret values the channels name, by name; SecretError when one is missing or unfit."""
    values: dict[str, str] = {}
    for channel in channels:
        prefix = f"alerts[{channel.index}]."
        if channel.webhook is not None and channel.webhook.url_secret is not None:
            name = channel.webhook.url_secret
            url = _find(name, file, prefix + "url_secret")
            # The value is only known now: check it as strictly as a literal url.
            problem = url_problem(url)
            if problem:
                raise SecretError(f"the URL in the secret {name!r} {problem}", file=file,
                                  field=prefix + "url_secret")
            values[name] = url
        if channel.email is not None and channel.email.password_secret is not None:
            name = channel.email.password_secret
            values[name] = _find(name, file, prefix + "password_secret")
    return values


def _find(name: str, file: str, field: str) -> str:
    return require_secret(name, file=file, field=field)


class _Table:
    """One [[alerts]] table being parsed; errors name ``alerts[N].key``."""

    def __init__(self, file: str, index: int, raw: dict[str, Any]) -> None:
        self.file, self.index, self.raw = file, index, raw

    def error(self, message: str, key: str | None = None) -> ConfigError:
        field = f"alerts[{self.index}]" + (f".{key}" if key else "")
        return ConfigError(message, file=self.file, field=field)

    def channel(self, job_ids: Collection[str]) -> ChannelSettings:
        kind = self.raw.get("type")
        if kind not in CHANNEL_KEYS:
            raise self.error('`type` must be "webhook" or "email"', "type")
        allowed = {"type"} | RULE_KEYS | CHANNEL_KEYS[kind]
        for key in self.raw:
            if key not in allowed:
                raise self.error(f"unknown key for a {kind} alert; expected one of: "
                                 f"{', '.join(sorted(allowed))}", key)
        return ChannelSettings(
            index=self.index, type=kind, rules=self.rules(job_ids),
            retries=self.integer("retries", DEFAULT_RETRIES, 0, 10),
            webhook=self.webhook() if kind == "webhook" else None,
            email=self.email() if kind == "email" else None,
        )

    def rules(self, job_ids: Collection[str]) -> Rules:
        jobs = self.raw.get("jobs")
        if jobs is not None:
            if not isinstance(jobs, list) or not all(isinstance(job, str) for job in jobs):
                raise self.error("must be a list of job ids", "jobs")
            unknown = sorted(set(jobs) - set(job_ids))
            if unknown:
                raise self.error(f"no such job: {', '.join(unknown)}", "jobs")
        after = self.raw.get("after_failures")
        return Rules(
            jobs=frozenset(jobs) if jobs is not None else None,
            after_failures=None if after is None else self.integer("after_failures", 1, 1, 10_000),
            on_recovery=self.boolean("on_recovery", True),
            on_missed=self.boolean("on_missed", True),
            on_abandoned=self.boolean("on_abandoned", True),
            min_interval=self.duration("min_interval", DEFAULT_MIN_INTERVAL),
        )

    def webhook(self) -> WebhookSettings:
        if ("url" in self.raw) == ("url_secret" in self.raw):
            raise self.error("a webhook needs exactly one of `url` or `url_secret` (the name of "
                             "a secret holding the URL, for URLs that carry a token)", "url")
        url = self.raw.get("url")
        if url is not None:
            url = self.string("url")
            problem = url_problem(url)
            if problem:
                raise self.error(f"the URL {problem}", "url")
            if url_holds_token(url):
                raise self.error("this URL carries a token (Slack, Discord and ping URLs do); "
                                 "config names secrets and never holds them: put the URL in a "
                                 "secret and set url_secret = \"NAME\"", "url")
        return WebhookSettings(
            url=url, url_secret=self.secret_name("url_secret"),
            timeout=self.duration("timeout", timedelta(seconds=10)).total_seconds(),
        )

    def email(self) -> EmailSettings:
        for key in ("host", "from", "to"):
            if key not in self.raw:
                raise self.error(f"an email alert needs `{key}`", key)
        host = self.string("host")
        to = self.raw["to"]
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise self.error("must be a list of email addresses", "to")
        sender = self.string("from")
        if "@" not in sender:
            raise self.error("must be an email address", "from")
        ssl = self.boolean("ssl", False)
        starttls = self.boolean("starttls", not ssl and not is_loopback(host))
        if ssl and starttls:
            raise self.error("use either ssl (port 465) or starttls (port 587), not both",
                             "starttls")
        username = self.raw.get("username")
        if username is not None:
            username = self.string("username")
        password_secret = self.secret_name("password_secret")
        if (username is None) != (password_secret is None):
            raise self.error("`username` and `password_secret` go together", "password_secret")
        if password_secret is not None and not (ssl or starttls) and not is_loopback(host):
            raise self.error(f"the SMTP password would cross the network to {host} in clear "
                             "text; set starttls = true (or ssl = true)", "starttls")
        ca_file = self.raw.get("ca_file")
        if ca_file is not None:
            ca_file = self.string("ca_file")
            if not os.path.isabs(ca_file):
                raise self.error("must be the absolute path of a PEM file of CA certificates",
                                 "ca_file")
            if not (ssl or starttls):
                raise self.error("is only used with starttls = true or ssl = true", "ca_file")
        return EmailSettings(
            host=host, port=self.integer("port", 465 if ssl else 587 if starttls else 25, 1, 65535),
            starttls=starttls, ssl=ssl, sender=sender, to=tuple(to),
            username=username, password_secret=password_secret,
            timeout=self.duration("timeout", timedelta(seconds=10)).total_seconds(),
            ca_file=ca_file,
        )

    # -- scalars ------------------------------------------------------------------------

    def string(self, key: str) -> str:
        value = self.raw[key]
        if not isinstance(value, str) or not value:
            raise self.error("must be a non-empty string", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error("must be true or false", key)
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(f"must be a whole number from {low} to {high}", key)
        return value

    def duration(self, key: str, default: timedelta) -> timedelta:
        value = self.raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error('must be a duration such as "15m"', key)
        try:
            return parse_duration(value)
        except ScheduleError as exc:
            raise self.error(str(exc), key) from None

    def secret_name(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or looks_like_a_token(value) or not SECRET_NAME.match(value):
            raise self.error("must be the NAME of a secret (an environment variable or systemd "
                             "credential such as \"SMTP_PASSWORD\"), never the value itself", key)
        return value


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used (a phrase that follows "the URL"), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (f"uses http:// to {parts.hostname}, which is refused: alerts carry job errors "
                "and such URLs often carry a token; use https:// (only loopback may use http)")
    return None


def url_holds_token(url: str) -> bool:
    """True when a path segment or query value looks like a credential (a Slack hook's key)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return True
    query = parse_qsl(parts.query)
    if any(key.lower() in CREDENTIAL_QUERY_KEYS for key, _ in query):
        return True
    pieces = [piece for piece in parts.path.split("/") if piece] + [value for _, value in query]
    return any(_token_like(piece) for piece in pieces)


def _token_like(piece: str) -> bool:
    # Random keys mix many letters and digits (Slack's 24-char key, a UUID); readable
    # paths such as /api/alerts/cronhost-failures do not.
    chars = piece.replace("-", "").replace("_", "")
    digits = sum(c.isdigit() for c in chars)
    letters = sum(c.isalpha() for c in chars)
    return looks_like_a_token(piece) and len(chars) >= 16 and digits >= 4 and letters >= 4


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"
