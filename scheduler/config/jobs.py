"""``[[jobs]]`` tables (merged over ``[defaults]``) → :class:`~scheduler.config.model.JobSpec`.

A job is HTTP (``url`` or ``path`` joined to ``defaults.base_url``) or Python
(``call = "package.module:function"``), on a crontab ``schedule`` or an interval
``every``. Credentials are never written here: ``secret`` names one, and a literal
token in a header, the URL or the secret's place is refused with advice.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from jobs.python import resolve_callable
from scheduler.config.model import JobSpec
from scheduler.config.reader import TableReader
from scheduler.config.secrets import SECRET_NAME, looks_like_a_token
from scheduler.config.urls import CREDENTIAL_QUERY_KEYS, is_loopback
from scheduler.errors import ConfigError
from scheduler.schedule import ScheduleError, validate_expression, zone

__all__ = ["DEFAULT_KEYS", "JOB_KEYS", "parse_job"]

JOB_ID = re.compile(r"\A[a-z0-9][a-z0-9-]{0,62}\Z")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
# Header names whose value is a credential: those must come from `secret`.
CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}

DEFAULT_KEYS = {
    "base_url", "method", "timezone", "timeout", "deadline", "retries", "secret",
    "misfire_grace", "catch_up", "allow_overlap", "allow_http", "headers", "enabled",
}
JOB_KEYS = DEFAULT_KEYS - {"base_url"} | {
    "id", "schedule", "every", "url", "path", "body", "call", "description",
}
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
_SECOND = timedelta(seconds=1)


def job_id_of(raw: dict[str, Any], index: int, file: str) -> str:
    job_id = raw.get("id")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise ConfigError(
            f"[[jobs]] number {index + 1}: `id` must be lower-case letters, digits and dashes "
            f"(got {job_id!r})", file=file, field="id")
    return job_id


def parse_job(raw: dict[str, Any], defaults: dict[str, Any], index: int, file: str) -> JobSpec:
    """One ``[[jobs]]`` table, its missing keys taken from ``defaults``."""
    job_id = job_id_of(raw, index, file)
    TableReader(raw, file=file, job=job_id).only(JOB_KEYS)
    merged = {**defaults, **raw}
    if isinstance(raw.get("headers"), dict) and isinstance(defaults.get("headers"), dict):
        merged["headers"] = {**defaults["headers"], **raw["headers"]}
    job = TableReader(merged, file=file, job=job_id)
    own = TableReader(raw, file=file, job=job_id)

    schedule, every = _schedule(own)
    timezone = job.value("timezone")
    if not isinstance(timezone, str):
        raise job.error("must be an IANA time zone name such as 'Europe/Paris'", "timezone")
    try:
        zone(timezone)
    except ScheduleError as exc:
        raise job.error(str(exc), "timezone") from None
    timeout = job.duration("timeout")
    deadline = job.duration("deadline")
    if deadline < timeout:
        raise job.error(f"deadline ({merged['deadline']}) must be at least the timeout "
                        f"({merged['timeout']})", "deadline")
    common: dict[str, Any] = dict(
        id=job_id, schedule=schedule, every=every, timezone=timezone,
        enabled=job.boolean("enabled"),
        timeout=timeout.total_seconds(), deadline=deadline.total_seconds(),
        retries=job.integer("retries", low=0, high=100),
        # Under a second, ordinary scheduling jitter would turn slots into `missed`.
        misfire_grace=job.duration("misfire_grace", at_least=_SECOND, at_least_text="1s"),
        catch_up=job.boolean("catch_up"),
        allow_overlap=job.boolean("allow_overlap"),
        description=own.string("description", ""),
    )
    if own.has("call"):
        for key in ("url", "path", "body"):
            if own.has(key):
                raise job.error(
                    f"a job has either `call` (a Python callable) or `{key}` (HTTP), not both", key)
        call = own.string("call")
        try:
            resolve_callable(call)
        except ValueError as exc:
            raise job.error(str(exc), "call") from None
        return JobSpec(kind="python", call=call, **common)

    url = _url(own, defaults, job.boolean("allow_http"))
    method = job.string("method").upper()
    if method not in METHODS:
        raise job.error(f"must be one of {', '.join(sorted(METHODS))}", "method")
    body, json_body_text = _body(own)
    secret = job.value("secret")
    if secret is not None:
        secret = _secret_name(secret, job, "secret" if own.has("secret") else "defaults.secret")
    return JobSpec(
        kind="http", url=url, method=method, headers=_headers(job), body=body,
        json_body_text=json_body_text, secret=secret, **common,
    )


def _schedule(job: TableReader) -> tuple[str | None, timedelta | None]:
    if job.has("schedule") == job.has("every"):
        raise job.error(
            "a job needs exactly one of `schedule` (a 5-field crontab line) or "
            "`every` (an interval such as \"30s\")", "schedule")
    if job.has("schedule"):
        expression = job.string("schedule")
        try:
            return validate_expression(expression), None
        except ScheduleError as exc:
            raise job.error(str(exc), "schedule") from None
    every = job.duration("every")
    if every < _SECOND or every.total_seconds() != int(every.total_seconds()):
        raise job.error("must be a whole number of seconds, at least 1s", "every")
    return None, every


def _url(job: TableReader, defaults: dict[str, Any], allow_http: bool) -> str:
    if job.has("url") == job.has("path"):
        raise job.error(
            "an HTTP job needs exactly one of `url` or `path` (joined to defaults.base_url); "
            "an in-process job has `call` instead", "url")
    if job.has("url"):
        field_name, url = "url", job.string("url")
    else:
        field_name, path = "path", job.string("path")
        base = defaults.get("base_url")
        if not isinstance(base, str) or not base:
            raise job.error("`path` needs defaults.base_url to be set", "path")
        url = urljoin(base.rstrip("/") + "/", path.lstrip("/"))
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise job.error(f"{url!r} is not a valid URL", field_name) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise job.error(f"{url!r} is not an http(s) URL", field_name)
    if parts.password or parts.username:
        raise job.error(
            "credentials in the URL are refused; name a secret with `secret = \"NAME\"`",
            field_name)
    for key, _ in parse_qsl(parts.query):
        if key.lower() in CREDENTIAL_QUERY_KEYS:
            raise job.error(
                f"the query parameter {key!r} looks like a credential; send it as the "
                "Bearer secret (`secret = \"NAME\"`) instead", field_name)
    if parts.scheme == "http" and not is_loopback(hostname) and not allow_http:
        raise job.error(
            f"http:// to {hostname} would send the Bearer secret in clear text; "
            "use https://, or set allow_http = true if you really mean it", field_name)
    return url


def _headers(job: TableReader) -> tuple[tuple[str, str], ...]:
    value = job.value("headers")
    if not isinstance(value, dict):
        raise job.error("must be a table of header names to strings", "headers")
    headers = []
    for name, header_value in value.items():
        if not isinstance(header_value, str):
            raise job.error(f"header {name!r} must be a string", "headers")
        if name.lower() in CREDENTIAL_HEADERS or looks_like_a_token(header_value):
            raise job.error(
                f"header {name!r} holds a literal credential; config names secrets and never "
                "holds them: put the token in the environment and set "
                "`secret = \"CRON_SECRET\"` (sent as Authorization: Bearer)", "headers")
        headers.append((name, header_value))
    return tuple(sorted(headers))


def _body(job: TableReader) -> tuple[str | None, str | None]:
    value = job.value("body")
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict | list):
        return None, json.dumps(value, sort_keys=True, default=str)
    raise job.error("must be a string or a table (sent as JSON)", "body")


def _secret_name(value: Any, job: TableReader, field_name: str) -> str:
    if not isinstance(value, str) or looks_like_a_token(value):
        raise job.error(
            "this looks like a literal token; `secret` holds the NAME of an environment "
            "variable or systemd credential (e.g. \"CRON_SECRET\"), never the token itself",
            field_name)
    if not SECRET_NAME.match(value):
        raise job.error(f"{value!r} is not a valid secret name (letters, digits and _)",
                        field_name)
    return value
