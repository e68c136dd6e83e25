"""``[[jobs]]`` tables (merged over ``[defaults]``) → :class:`~scheduler.config.model.JobSpec`.

A job is HTTP (``url`` or ``path`` joined to ``defaults.base_url``) or Python
(``call = "package.module:function"``), on a crontab ``schedule`` or an interval
``every``. Credentials are never written here: ``secret`` names one, and a literal
token in the URL, a header, the body (see :mod:`scheduler.config.requests`), the
description or the secret's place is refused with advice.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from jobs.python import resolve_callable
from scheduler.config.credentials import credential_in
from scheduler.config.model import JobSpec
from scheduler.config.reader import TableReader
from scheduler.config.requests import parse_body, parse_headers, parse_url
from scheduler.config.secrets import SECRET_NAME, looks_like_a_token
from scheduler.errors import ConfigError
from scheduler.schedule import ScheduleError, shown, validate_expression, zone

__all__ = ["DEFAULT_KEYS", "JOB_KEYS", "parse_job"]

# The whole string (\A...\Z: "$" would let "abc\n" through): it is a header value
# (Idempotency-Key), a store key and a CLI argument, so no leading dash either.
JOB_ID = re.compile(r"\A[a-z0-9][a-z0-9-]{0,63}\Z")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
# Headers whose value is always a credential. Jobs are checked by the wider rule in
# scheduler.config.credentials; `cronhost import` reads this set to word its refusals.
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
            f"[[jobs]] number {index + 1}: `id` must be 1 to 64 lower-case letters, digits and "
            f"dashes, not starting with a dash (got {shown(job_id)})", file=file, field="id")
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
        description=_description(own),
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

    url = parse_url(own, defaults, job.boolean("allow_http"))
    method = job.string("method").upper()
    if method not in METHODS:
        raise job.error(f"must be one of {', '.join(sorted(METHODS))}", "method")
    body, json_body_text, body_secrets = parse_body(own)
    secret = job.value("secret")
    if secret is not None:
        secret = _secret_name(secret, job, "secret" if own.has("secret") else "defaults.secret")
    return JobSpec(
        kind="http", url=url, method=method, headers=parse_headers(job, own), body=body,
        json_body_text=json_body_text, body_secrets=body_secrets, secret=secret, **common,
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


def _description(own: TableReader) -> str:
    # Shown in `cronhost status`, the dashboard and the store: no place for a token.
    text = own.string("description", "")
    found = credential_in(text)
    if found:
        raise own.error(f"holds what looks like a credential ({found}); a description is "
                        "shown everywhere, so leave secrets out of it", "description")
    return text


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
