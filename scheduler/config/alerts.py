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
    min_success_rate = 0.9           # optional: alert when the success rate of the last
    rate_runs = 20                   #   rate_runs runs (default 20) falls below this
    auto_disable_after = 25          # optional: pause a job after this many failures in a
                                     #   row (cron-job.org: 25), and say so; resume clears it

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

from scheduler.config.reader import TableReader
from scheduler.config.secrets import require_secret
from scheduler.config.urls import host_of, is_loopback, url_holds_token, url_problem
from scheduler.errors import ConfigError, SecretError

RULE_KEYS = {"jobs", "after_failures", "on_recovery", "on_missed", "on_abandoned",
             "min_interval", "retries", "min_success_rate", "rate_runs", "auto_disable_after"}
DEFAULT_RATE_RUNS = 20
CHANNEL_KEYS = {
    "webhook": {"url", "url_secret", "timeout"},
    "email": {"host", "port", "starttls", "ssl", "from", "to", "username", "password_secret",
              "timeout", "ca_file"},
}
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
    # The rate rule: alert while fewer than this share of the last `rate_runs` runs were ok.
    min_success_rate: float | None = None
    rate_runs: int = DEFAULT_RATE_RUNS
    # Pause a job (and tell) after every this many consecutive failures; None: never.
    auto_disable_after: int | None = None

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
            where = host_of(self.webhook.url) if self.webhook.url else f"${self.webhook.url_secret}"
            return f"alerts[{self.index}] webhook {where}"
        assert self.email is not None
        return f"alerts[{self.index}] email via {self.email.host}"


def parse_alerts(raw: Any, job_ids: Collection[str], file: str) -> tuple[ChannelSettings, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError("`alerts` must be a list of [[alerts]] tables", file=file, field="alerts")
    return tuple(_channel(TableReader(table, file=file, prefix=f"alerts[{index + 1}]."), index + 1,
                          job_ids) for index, table in enumerate(raw))


def resolve_secrets(channels: tuple[ChannelSettings, ...], file: str) -> dict[str, str]:
    """Secret values the channels name, by name; SecretError when one is missing or unfit."""
    values: dict[str, str] = {}
    for channel in channels:
        prefix = f"alerts[{channel.index}]."
        if channel.webhook is not None and channel.webhook.url_secret is not None:
            name = channel.webhook.url_secret
            url = require_secret(name, file=file, field=prefix + "url_secret")
            # The value is only known now: check it as strictly as a literal url.
            problem = url_problem(url)
            if problem:
                raise SecretError(f"the URL in the secret {name!r} {problem}", file=file,
                                  field=prefix + "url_secret")
            values[name] = url
        if channel.email is not None and channel.email.password_secret is not None:
            name = channel.email.password_secret
            values[name] = require_secret(name, file=file, field=prefix + "password_secret")
    return values


def _channel(table: TableReader, index: int, job_ids: Collection[str]) -> ChannelSettings:
    kind = table.value("type")
    if not isinstance(kind, str) or kind not in CHANNEL_KEYS:  # a list is not even hashable
        raise table.error('`type` must be "webhook" or "email"', "type")
    table.only({"type"} | RULE_KEYS | CHANNEL_KEYS[kind], f" for a {kind} alert")
    return ChannelSettings(
        index=index, type=kind, rules=_rules(table, job_ids),
        retries=table.integer("retries", DEFAULT_RETRIES, 0, 10),
        webhook=_webhook(table) if kind == "webhook" else None,
        email=_email(table) if kind == "email" else None,
    )


def _rules(table: TableReader, job_ids: Collection[str]) -> Rules:
    jobs = table.value("jobs")
    if table.has("rate_runs") and not table.has("min_success_rate"):
        raise table.error("only counts with min_success_rate (the rate to alert below)",
                          "rate_runs")
    if jobs is not None:
        if not isinstance(jobs, list) or not all(isinstance(job, str) for job in jobs):
            raise table.error("must be a list of job ids", "jobs")
        unknown = sorted(set(jobs) - set(job_ids))
        if unknown:
            raise table.error(f"no such job: {', '.join(unknown)}", "jobs")
    return Rules(
        jobs=frozenset(jobs) if jobs is not None else None,
        after_failures=(table.integer("after_failures", 1, 1, 10_000)
                        if table.has("after_failures") else None),
        on_recovery=table.boolean("on_recovery", True),
        on_missed=table.boolean("on_missed", True),
        on_abandoned=table.boolean("on_abandoned", True),
        min_interval=table.duration("min_interval", DEFAULT_MIN_INTERVAL),
        min_success_rate=_fraction(table, "min_success_rate"),
        rate_runs=table.integer("rate_runs", DEFAULT_RATE_RUNS, 2, 10_000),
        auto_disable_after=(table.integer("auto_disable_after", 1, 1, 10_000)
                            if table.has("auto_disable_after") else None),
    )


def _fraction(table: TableReader, key: str) -> float | None:
    if not table.has(key):
        return None
    value = table.value(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise table.error("must be a fraction above 0 and at most 1, e.g. 0.9 for 90%", key)
    return float(value)


def _webhook(table: TableReader) -> WebhookSettings:
    if table.has("url") == table.has("url_secret"):
        raise table.error("a webhook needs exactly one of `url` or `url_secret` (the name of "
                          "a secret holding the URL, for URLs that carry a token)", "url")
    url = table.optional_string("url", non_empty=True)
    if url is not None:
        problem = url_problem(url)
        if problem:
            raise table.error(f"the URL {problem}", "url")
        if url_holds_token(url):
            raise table.error("this URL carries a token (Slack, Discord and ping URLs do); "
                              "config names secrets and never holds them: put the URL in a "
                              "secret and set url_secret = \"NAME\"", "url")
    return WebhookSettings(
        url=url, url_secret=table.secret_name("url_secret"),
        timeout=table.duration("timeout", timedelta(seconds=10)).total_seconds(),
    )


def _email(table: TableReader) -> EmailSettings:
    for key in ("host", "from", "to"):
        if not table.has(key):
            raise table.error(f"an email alert needs `{key}`", key)
    host = table.string("host", non_empty=True)
    to = table.value("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise table.error("must be a list of email addresses", "to")
    sender = table.string("from", non_empty=True)
    if "@" not in sender:
        raise table.error("must be an email address", "from")
    ssl = table.boolean("ssl", False)
    starttls = table.boolean("starttls", not ssl and not is_loopback(host))
    if ssl and starttls:
        raise table.error("use either ssl (port 465) or starttls (port 587), not both",
                          "starttls")
    username = table.optional_string("username", non_empty=True)
    password_secret = table.secret_name("password_secret")
    if (username is None) != (password_secret is None):
        raise table.error("`username` and `password_secret` go together", "password_secret")
    if password_secret is not None and not (ssl or starttls) and not is_loopback(host):
        raise table.error(f"the SMTP password would cross the network to {host} in clear "
                          "text; set starttls = true (or ssl = true)", "starttls")
    ca_file = table.optional_string("ca_file", non_empty=True)
    if ca_file is not None:
        if not os.path.isabs(ca_file):
            raise table.error("must be the absolute path of a PEM file of CA certificates",
                              "ca_file")
        if not (ssl or starttls):
            raise table.error("is only used with starttls = true or ssl = true", "ca_file")
    return EmailSettings(
        host=host, port=table.integer("port", 465 if ssl else 587 if starttls else 25, 1, 65535),
        starttls=starttls, ssl=ssl, sender=sender, to=tuple(to),
        username=username, password_secret=password_secret,
        timeout=table.duration("timeout", timedelta(seconds=10)).total_seconds(),
        ca_file=ca_file,
    )
