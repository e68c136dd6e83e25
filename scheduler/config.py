"""config.toml → immutable, validated job specs.

Parsing is strict: an unknown key, a wrong type or a bad value becomes one
:class:`~scheduler.errors.ConfigError` naming the file, the job and the field.
Nothing invalid ever reaches the engine.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from apscheduler.triggers.base import BaseTrigger

from jobs.python import resolve_callable
from scheduler.cron import (
    CrontabTrigger,
    EveryTrigger,
    ScheduleError,
    parse_duration,
    validate_expression,
    zone,
)
from scheduler.errors import ConfigError, StoreError
from scheduler.hosts import is_loopback
from scheduler.retention import builtin_jobs
from scheduler.secrets import (
    SECRET_NAME,
    SecretValues,
    looks_like_a_token,
    require_secret,
)
from scheduler.store.store import BAD_URL, parse_store_url

JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
# Header names whose value is a credential: those must come from `secret`.
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
CREDENTIAL_QUERY_KEYS = {"token", "secret", "key", "api_key", "apikey", "access_token", "password"}

DEFAULT_CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class JobSpec:
    """One job as the engine sees it. Holds a secret's NAME, never its value."""

    id: str
    kind: str  # "http" | "python"
    schedule: str | None  # 5-field crontab, or None for `every` jobs
    every: timedelta | None
    timezone: str
    enabled: bool
    timeout: float  # seconds, one attempt
    deadline: float  # seconds, all attempts of a slot
    retries: int
    misfire_grace: timedelta
    catch_up: bool
    allow_overlap: bool
    description: str = ""
    url: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    json_body_text: str | None = None  # canonical JSON; kept as text so the spec stays hashable
    secret: str | None = None
    call: str | None = None

    def trigger(self) -> BaseTrigger:
        if self.every is not None:
            return EveryTrigger(self.every)
        assert self.schedule is not None
        return CrontabTrigger(self.schedule, self.timezone)

    @property
    def schedule_text(self) -> str:
        """The schedule as an operator wrote it: a crontab line or ``every 30s``."""
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        return self.schedule or ""

    @property
    def target(self) -> str:
        """Where the job goes: the URL or the callable (never a secret)."""
        return (self.url if self.kind == "http" else self.call) or ""


@dataclass(frozen=True)
class StoreSettings:
    url: str
    keep: timedelta


@dataclass(frozen=True)
class DaemonSettings:
    shutdown_timeout: float = 30.0
    max_in_flight: int = 32
    watch_config: bool = False
    heartbeat_interval: float = 5.0


@dataclass(frozen=True)
class Config:
    path: Path
    jobs: tuple[JobSpec, ...]
    store: StoreSettings
    daemon: DaemonSettings
    secrets: SecretValues = field(default_factory=SecretValues, compare=False)
    # Tables that other parts of cronhost read (metrics, alerts, heartbeat); kept raw here
    # and validated by the module that owns them.
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def job(self, job_id: str) -> JobSpec | None:
        return next((job for job in self.jobs if job.id == job_id), None)


def default_config_path() -> Path:
    return Path(os.environ.get("CRONHOST_CONFIG") or DEFAULT_CONFIG_NAME)


def default_store_url(config_path: Path) -> str:
    """SQLite in systemd's StateDirectory when there is one, else next to the config."""
    state_dir = os.environ.get("STATE_DIRECTORY")
    base = Path(state_dir.split(":")[0]) if state_dir else config_path.resolve().parent
    return f"sqlite:///{base / 'cronhost.db'}"


def resolve_store_url(url: str | None, config_path: Path) -> str:
    """The store URL a config means: the default, or a relative SQLite path made absolute.

    A relative SQLite path means "next to the config file", never the working directory
    of whoever runs the command (systemd, cron, an operator's shell).
    """
    if not url:
        return default_store_url(config_path)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{config_path.resolve().parent / relative}"
    return url


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_config(path: Path, *, resolve_secrets: bool = True) -> Config:
    """Read and validate ``path``. Raises ConfigError (never anything else)."""
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "no such file; pass --config PATH or set CRONHOST_CONFIG", file=file
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    return _Parser(path).parse(raw, resolve_secrets=resolve_secrets)


DEFAULT_KEYS = {
    "base_url", "method", "timezone", "timeout", "deadline", "retries", "secret",
    "misfire_grace", "catch_up", "allow_overlap", "allow_http", "headers", "enabled",
}
JOB_KEYS = DEFAULT_KEYS - {"base_url"} | {
    "id", "schedule", "every", "url", "path", "body", "call", "description",
}
TOP_KEYS = {"defaults", "jobs", "store", "daemon", "metrics", "alerts", "heartbeat", "logging"}

BUILTIN_DEFAULTS: dict[str, Any] = {
    "method": "POST",
    "timezone": "UTC",
    "timeout": "30s",
    "deadline": "2m",
    "retries": 2,
    "misfire_grace": "5m",
    "catch_up": True,
    "allow_overlap": False,
    "allow_http": False,
    "enabled": True,
    "headers": {},
}


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)
        self._own_secret: set[str] = set()  # jobs with a `secret` of their own, not [defaults]

    def error(self, message: str, job: str | None = None, field: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, job=job, field=field)

    def parse(self, raw: dict[str, Any], *, resolve_secrets: bool) -> Config:
        self._no_unknown_keys(raw, TOP_KEYS, None, "")
        defaults = dict(BUILTIN_DEFAULTS)
        given_defaults = self._table(raw, "defaults", None)
        self._no_unknown_keys(given_defaults, DEFAULT_KEYS, None, "defaults.")
        defaults.update(given_defaults)

        jobs_raw = raw.get("jobs", [])
        if not isinstance(jobs_raw, list) or not all(isinstance(j, dict) for j in jobs_raw):
            raise self.error("`jobs` must be a list of [[jobs]] tables", field="jobs")
        jobs_raw = [*jobs_raw, *builtin_jobs(jobs_raw)]  # history pruning: see scheduler.retention
        jobs: list[JobSpec] = []
        seen: set[str] = set()
        for index, job_raw in enumerate(jobs_raw):
            job = self._job(job_raw, defaults, index)
            if job.id in seen:
                raise self.error("duplicate job id; every [[jobs]] id must be unique", job.id, "id")
            seen.add(job.id)
            jobs.append(job)

        secrets = self._resolve_secrets(jobs) if resolve_secrets else SecretValues()
        extra: dict[str, Any] = {
            key: raw[key] for key in ("metrics", "alerts", "heartbeat", "logging") if key in raw
        }
        # Imported here, so that reading a config (CLI, dashboard) does not load httpx and
        # prometheus_client; the tables' owners check them (metrics, alerts, heartbeat, logging).
        from scheduler.observability import validate_tables

        validate_tables(extra, jobs, file=self.file, resolve_secrets=resolve_secrets)
        return Config(
            path=self.path,
            jobs=tuple(jobs),
            store=self._store(self._table(raw, "store", None)),
            daemon=self._daemon(self._table(raw, "daemon", None)),
            secrets=secrets,
            extra=extra,
        )

    # -- tables -------------------------------------------------------------------------

    def _store(self, raw: dict[str, Any]) -> StoreSettings:
        self._no_unknown_keys(raw, {"url", "keep"}, None, "store.")
        url = raw.get("url")
        if url is not None and not isinstance(url, str):
            raise self.error("must be a SQLAlchemy URL string", field="store.url")
        url = resolve_store_url(url, self.path)
        try:
            parse_store_url(url)
        except StoreError:
            raise self.error(BAD_URL, field="store.url") from None
        keep = self._duration(raw.get("keep", "90d"), None, "store.keep")
        return StoreSettings(url=url, keep=keep)

    def _daemon(self, raw: dict[str, Any]) -> DaemonSettings:
        keys = {"shutdown_timeout", "max_in_flight", "watch_config", "heartbeat_interval"}
        self._no_unknown_keys(raw, keys, None, "daemon.")
        return DaemonSettings(
            shutdown_timeout=self._duration(
                raw.get("shutdown_timeout", "30s"), None, "daemon.shutdown_timeout"
            ).total_seconds(),
            max_in_flight=self._int(raw.get("max_in_flight", 32), None, "daemon.max_in_flight", 1),
            watch_config=self._bool(raw.get("watch_config", False), None, "daemon.watch_config"),
            heartbeat_interval=self._heartbeat_interval(raw.get("heartbeat_interval", "5s")),
        )

    def _heartbeat_interval(self, value: Any) -> float:
        seconds = self._duration(value, None, "daemon.heartbeat_interval").total_seconds()
        # Readers call a daemon down when its heartbeat is older than 30 s: beat well inside.
        if not 1 <= seconds <= 10:
            raise self.error("must be from 1s to 10s", field="daemon.heartbeat_interval")
        return seconds

    def _job(self, raw: dict[str, Any], defaults: dict[str, Any], index: int) -> JobSpec:
        job_id = raw.get("id")
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            where = f"[[jobs]] number {index + 1}"
            raise self.error(
                f"{where}: `id` must be lower-case letters, digits and dashes (got {job_id!r})",
                None,
                "id",
            )
        self._no_unknown_keys(raw, JOB_KEYS, job_id, "")
        merged = {**defaults, **raw}
        if "headers" in raw:
            merged["headers"] = {**defaults.get("headers", {}), **raw["headers"]}

        schedule, every = self._schedule(raw, job_id)
        timezone = merged["timezone"]
        if not isinstance(timezone, str):
            raise self.error("must be an IANA time zone name such as 'Europe/Paris'", job_id, "timezone")
        try:
            zone(timezone)
        except ScheduleError as exc:
            raise self.error(str(exc), job_id, "timezone") from None

        common = dict(
            id=job_id,
            schedule=schedule,
            every=every,
            timezone=timezone,
            enabled=self._bool(merged["enabled"], job_id, "enabled"),
            timeout=self._duration(merged["timeout"], job_id, "timeout").total_seconds(),
            deadline=self._duration(merged["deadline"], job_id, "deadline").total_seconds(),
            retries=self._int(merged["retries"], job_id, "retries", 0, 100),
            misfire_grace=self._misfire_grace(merged["misfire_grace"], job_id),
            catch_up=self._bool(merged["catch_up"], job_id, "catch_up"),
            allow_overlap=self._bool(merged["allow_overlap"], job_id, "allow_overlap"),
            description=self._str(raw.get("description", ""), job_id, "description"),
        )
        if common["deadline"] < common["timeout"]:  # type: ignore[operator]
            raise self.error(
                f"deadline ({merged['deadline']}) must be at least the timeout ({merged['timeout']})",
                job_id,
                "deadline",
            )

        if "call" in raw:
            for key in ("url", "path", "body"):
                if key in raw:
                    raise self.error(
                        f"a job has either `call` (a Python callable) or `{key}` (HTTP), not both",
                        job_id,
                        key,
                    )
            call = self._str(raw["call"], job_id, "call")
            try:
                resolve_callable(call)
            except ValueError as exc:
                raise self.error(str(exc), job_id, "call") from None
            return JobSpec(kind="python", call=call, **common)  # type: ignore[arg-type]

        url = self._url(raw, defaults, job_id, self._bool(merged["allow_http"], job_id, "allow_http"))
        method = self._str(merged["method"], job_id, "method").upper()
        if method not in METHODS:
            raise self.error(f"must be one of {', '.join(sorted(METHODS))}", job_id, "method")
        headers = self._headers(merged["headers"], job_id)
        body, json_body_text = self._body(raw.get("body"), job_id)
        secret = merged.get("secret")
        if "secret" in raw:
            self._own_secret.add(job_id)
        if secret is not None:
            secret = self._secret_name(secret, job_id)
        return JobSpec(
            kind="http",
            url=url,
            method=method,
            headers=headers,
            body=body,
            json_body_text=json_body_text,
            secret=secret,
            **common,  # type: ignore[arg-type]
        )

    # -- fields -------------------------------------------------------------------------

    def _schedule(self, raw: dict[str, Any], job_id: str) -> tuple[str | None, timedelta | None]:
        if ("schedule" in raw) == ("every" in raw):
            raise self.error(
                "a job needs exactly one of `schedule` (a 5-field crontab line) or "
                "`every` (an interval such as \"30s\")",
                job_id,
                "schedule",
            )
        if "schedule" in raw:
            expression = self._str(raw["schedule"], job_id, "schedule")
            try:
                return validate_expression(expression), None
            except ScheduleError as exc:
                raise self.error(str(exc), job_id, "schedule") from None
        every = self._duration(raw["every"], job_id, "every")
        if every < timedelta(seconds=1) or every.total_seconds() != int(every.total_seconds()):
            raise self.error("must be a whole number of seconds, at least 1s", job_id, "every")
        return None, every

    def _url(self, raw: dict[str, Any], defaults: dict[str, Any], job_id: str, allow_http: bool) -> str:
        if ("url" in raw) == ("path" in raw):
            raise self.error(
                "an HTTP job needs exactly one of `url` or `path` (joined to defaults.base_url); "
                "an in-process job has `call` instead",
                job_id,
                "url",
            )
        if "url" in raw:
            field_name, url = "url", self._str(raw["url"], job_id, "url")
        else:
            field_name, path = "path", self._str(raw["path"], job_id, "path")
            base = defaults.get("base_url")
            if not isinstance(base, str) or not base:
                raise self.error("`path` needs defaults.base_url to be set", job_id, "path")
            url = urljoin(base.rstrip("/") + "/", path.lstrip("/"))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(f"{url!r} is not an http(s) URL", job_id, field_name)
        if parts.password or parts.username:
            raise self.error(
                "credentials in the URL are refused; name a secret with `secret = \"NAME\"`",
                job_id,
                field_name,
            )
        for key, _ in parse_qsl(parts.query):
            if key.lower() in CREDENTIAL_QUERY_KEYS:
                raise self.error(
                    f"the query parameter {key!r} looks like a credential; send it as the "
                    "Bearer secret (`secret = \"NAME\"`) instead",
                    job_id,
                    field_name,
                )
        if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_http:
            raise self.error(
                f"http:// to {parts.hostname} would send the Bearer secret in clear text; "
                "use https://, or set allow_http = true if you really mean it",
                job_id,
                field_name,
            )
        return url

    def _headers(self, value: Any, job_id: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise self.error("must be a table of header names to strings", job_id, "headers")
        headers = []
        for name, header_value in value.items():
            if not isinstance(header_value, str):
                raise self.error(f"header {name!r} must be a string", job_id, "headers")
            if name.lower() in CREDENTIAL_HEADERS or looks_like_a_token(header_value):
                raise self.error(
                    f"header {name!r} holds a literal credential; config names secrets and never "
                    "holds them: put the token in the environment and set "
                    "`secret = \"CRON_SECRET\"` (sent as Authorization: Bearer)",
                    job_id,
                    "headers",
                )
            headers.append((name, header_value))
        return tuple(sorted(headers))

    def _body(self, value: Any, job_id: str) -> tuple[str | None, str | None]:
        if value is None:
            return None, None
        if isinstance(value, str):
            return value, None
        if isinstance(value, dict | list):
            return None, json.dumps(value, sort_keys=True, default=str)
        raise self.error("must be a string or a table (sent as JSON)", job_id, "body")

    def _secret_name(self, value: Any, job_id: str) -> str:
        if not isinstance(value, str) or looks_like_a_token(value):
            raise self.error(
                "this looks like a literal token; `secret` holds the NAME of an environment "
                "variable or systemd credential (e.g. \"CRON_SECRET\"), never the token itself",
                job_id,
                "secret",
            )
        if not SECRET_NAME.match(value):
            raise self.error(
                f"{value!r} is not a valid secret name (letters, digits and _)", job_id, "secret"
            )
        return value

    def _resolve_secrets(self, jobs: list[JobSpec]) -> SecretValues:
        values: dict[str, str] = {}
        for job in jobs:
            # A disabled job needs no secret: it cannot run until a reload enables it.
            if job.secret is None or job.secret in values or not job.enabled:
                continue
            field = "secret" if job.id in self._own_secret else "defaults.secret"
            values[job.secret] = require_secret(
                job.secret, file=self.file, job=job.id, field=field
            )
        return SecretValues(values)

    # -- scalar helpers -----------------------------------------------------------------

    def _no_unknown_keys(
        self, raw: dict[str, Any], allowed: set[str], job_id: str | None, prefix: str
    ) -> None:
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else (
                    "expected one of: " + ", ".join(sorted(allowed)))
                raise self.error(f"unknown key; {hint}", job_id, prefix + key)

    def _table(self, raw: dict[str, Any], key: str, job_id: str | None) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"`{key}` must be a table ([{key}])", job_id, key)
        return value

    def _duration(self, value: Any, job_id: str | None, field_name: str) -> timedelta:
        if isinstance(value, bool):
            raise self.error("must be a duration such as \"30s\" or \"5m\"", job_id, field_name)
        if isinstance(value, int | float):
            if value <= 0:
                raise self.error("must be positive", job_id, field_name)
            return timedelta(seconds=value)
        if not isinstance(value, str):
            raise self.error("must be a duration such as \"30s\" or \"5m\"", job_id, field_name)
        try:
            return parse_duration(value)
        except ScheduleError as exc:
            raise self.error(str(exc), job_id, field_name) from None

    def _misfire_grace(self, value: Any, job_id: str) -> timedelta:
        grace = self._duration(value, job_id, "misfire_grace")
        # Under a second, ordinary scheduling jitter would turn slots into `missed`.
        if grace < timedelta(seconds=1):
            raise self.error("must be at least 1s", job_id, "misfire_grace")
        return grace

    def _int(
        self, value: Any, job_id: str | None, field_name: str, low: int = 0, high: int = 10**6
    ) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(f"must be a whole number from {low} to {high}", job_id, field_name)
        return value

    def _bool(self, value: Any, job_id: str | None, field_name: str) -> bool:
        if not isinstance(value, bool):
            raise self.error("must be true or false", job_id, field_name)
        return value

    def _str(self, value: Any, job_id: str | None, field_name: str) -> str:
        if not isinstance(value, str):
            raise self.error("must be a string", job_id, field_name)
        return value
