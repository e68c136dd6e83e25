"""cron-job.org REST API exports -> [[jobs]], with credentials turned into named secrets.

Accepted input (``PATH``): what ``GET /jobs`` answers (``{"jobs": [...]}``), what
``GET /jobs/<id>`` answers (``{"jobDetails": {...}}``), or a JSON list of job
objects (either kind, e.g. several ``jobDetails`` collected with jq).

Field by field (a job is refused, or imported with a warning, whenever cronhost
would not send the same request at the same instants):

- ``schedule``: see cronjob_schedule.py; fire times are exact or the job is refused
  (DST-change differences can be accepted with --accept-dst-difference).
  ``expiresAt`` in the past: refused (cron-job.org no longer runs it); in the
  future: imported with a warning, since cronhost has no expiry.
- ``requestMethod``: 0 GET, 1 POST, 3 HEAD, 4 PUT, 5 DELETE, 8 PATCH map one to one;
  2 OPTIONS, 6 TRACE and 7 CONNECT are refused (cronhost's config has no such method).
- ``url``: a user:password in it is basic auth: refused. A credential in the query
  (a key such as ``token``/``key``, or a token-like value) becomes the job's secret
  and is taken out of the URL, with a warning: cronhost sends it as ``Authorization:
  Bearer`` instead. A token-like path segment is refused (it cannot move).
  ``http://`` to a non-loopback host: refused with a credential (it would travel in
  clear text), else imported with ``allow_http = true`` and a warning.
- ``auth`` (HTTP basic) enabled: refused. cronhost sends one secret per job, always as
  ``Authorization: Bearer <value>``; a basic-auth credential cannot be reproduced.
- ``extendedData.headers``: ``Authorization: Bearer <token>`` becomes the secret; any
  other Authorization scheme and other credential headers (Cookie, X-Api-Key) are
  refused; a header value cronhost's config would refuse as a literal token is
  refused here first, job by job. ``extendedData.body``: cron-job.org sends a body
  only with POST, PUT, PATCH and DELETE. A JSON body (by Content-Type, or parsing as
  JSON) becomes a TOML table, which cronhost sends as JSON with that Content-Type
  (the same JSON, re-serialized). Credentials in a body are refused.
- ``requestTimeout`` > 0 -> ``timeout`` (and ``deadline`` when longer than cronhost's
  2 minute default). ``redirectSuccess`` and ``notification``: no per-job equivalent
  in cronhost (it does not follow redirects; alerts are [[alerts]] tables): warnings.
- ``title`` -> ``description``; ``enabled`` -> ``enabled``; ``jobId`` -> the id only
  when the title gives none or two titles collide.

cronhost retries failed attempts (``retries``, 2 by default) under one
Idempotency-Key, where cron-job.org makes one attempt; that is cronhost's design,
said once per import rather than per job.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit, urlunsplit

from scheduler.config.jobs import CREDENTIAL_HEADERS
from scheduler.config.secrets import looks_like_a_token
from scheduler.config.urls import CREDENTIAL_QUERY_KEYS
from scheduler.errors import UsageError
from scheduler.migrate.cronjob_schedule import (
    ScheduleSets,
    dst_differences,
    parse_schedule,
    to_crontab,
)
from scheduler.migrate.model import (
    Finding,
    ImportedJob,
    ImportResult,
    Refused,
    fit_id,
    read_json,
    slug,
    tokenish,
)
from scheduler.migrate.secrets_out import SecretNamer

METHODS = {0: "GET", 1: "POST", 2: "OPTIONS", 3: "HEAD", 4: "PUT", 5: "DELETE", 6: "TRACE",
           7: "CONNECT", 8: "PATCH"}
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}  # chronos HTTPRequest: POSTFIELDS only for these
DEFAULT_DEADLINE_S = 120  # cronhost's default deadline ("2m")
SECRET_BODY_KEYS = CREDENTIAL_QUERY_KEYS | {"password", "secret", "token", "client_secret"}
RETRY_NOTE = ("cronhost retries a failed attempt (defaults.retries, 2 unless set) under the same "
              "Idempotency-Key; cron-job.org made one attempt per run")


@dataclass
class Options:
    secret_name: str = "CRON_SECRET"
    accept_dst_difference: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


def load_export(path: Path) -> list[dict[str, Any]]:
    """The job objects in a cron-job.org export; UsageError if it is not one."""
    raw = read_json(path, "; expected what cron-job.org's API answers to GET /jobs or "
                          "GET /jobs/<id>")
    if isinstance(raw, dict) and isinstance(raw.get("jobs"), list):
        jobs = raw["jobs"]
    elif isinstance(raw, dict) and isinstance(raw.get("jobDetails"), dict):
        jobs = [raw["jobDetails"]]
    elif isinstance(raw, list):
        jobs = [item.get("jobDetails", item) if isinstance(item, dict) else item for item in raw]
    else:
        raise UsageError(f"{path}: not a cron-job.org export: expected {{\"jobs\": [...]}} "
                         "(GET /jobs), {\"jobDetails\": {...}} (GET /jobs/<id>) or a list of jobs")
    for index, job in enumerate(jobs):
        if not isinstance(job, dict) or "url" not in job:
            raise UsageError(f"{path}: job number {index + 1} is not a cron-job.org job object "
                             "(it has no `url`)")
    return jobs


def import_jobs(jobs: list[dict[str, Any]], options: Options) -> ImportResult:
    result = ImportResult(notes=[RETRY_NOTE])
    namer = SecretNamer(options.secret_name)
    for job, job_id in zip(jobs, assign_ids(jobs), strict=True):
        origin = _origin(job)
        warnings: list[str] = []
        try:
            imported = _map_job(job, job_id, origin, options, namer, warnings)
        except Refused as exc:
            namer.forget_job(job_id)
            result.findings.append(Finding(origin, str(exc), refused=True, job_id=job_id))
            continue
        result.jobs.append(imported)
        result.findings.extend(Finding(origin, w, job_id=job_id) for w in warnings)
    result.secrets = namer.secrets()
    return result


def assign_ids(jobs: list[dict[str, Any]]) -> list[str]:
    """Ids from titles (else the URL), stable for one export; a collision adds the jobId.

    Every job gets its id before any is refused, so fixing one job and importing again
    does not rename the others.
    """
    bases = []
    for job in jobs:
        title = job.get("title")
        title = title if isinstance(title, str) else ""
        path_part = "-".join(seg for seg in urlsplit(str(job.get("url", ""))).path.split("/")
                             if seg and seg not in ("api", "cron"))
        bases.append(fit_id(slug(title) or slug(path_part), f"cronjob-org-{job.get('jobId', '')}"))
    ids: list[str] = []
    for base, job in zip(bases, jobs, strict=True):
        job_id = base
        if bases.count(base) > 1 or job_id in ids:
            job_id = fit_id(f"{base}-{job.get('jobId', len(ids) + 1)}", base)
        ids.append(job_id)
    return ids


def _origin(job: dict[str, Any]) -> str:
    title = job.get("title")
    name = f" {title!r}" if isinstance(title, str) and title else ""
    return f"cron-job.org job {job.get('jobId', '?')}{name}"


def _map_job(
    job: dict[str, Any], job_id: str, origin: str, options: Options, namer: SecretNamer,
    warnings: list[str],
) -> ImportedJob:
    credentials: list[tuple[str, str]] = []  # (where, value)
    url, from_query = _url(job.get("url"), credentials)
    method = _method(job.get("requestMethod", 0))
    auth = job.get("auth")
    if isinstance(auth, dict) and auth.get("enable"):
        raise Refused("it uses HTTP basic auth; cronhost sends one secret per job, always as "
                      "`Authorization: Bearer <value>`, so it cannot reproduce a basic-auth "
                      "login. Make the endpoint accept a Bearer token, then import it again "
                      "without `auth`")
    extended = job.get("extendedData")
    if extended is None and "auth" not in job:
        warnings.append("exported without its details (GET /jobs leaves out headers, body and "
                        "basic auth): export it with GET /jobs/<id> to be sure nothing is missed")
    extended = extended if isinstance(extended, dict) else {}
    headers, content_type = _headers(extended.get("headers") or {}, credentials)
    body = _body(extended.get("body"), method, content_type, headers, warnings)

    sets = parse_schedule(job.get("schedule"))
    crontab = to_crontab(sets)
    notes = [f"imported from {origin}"]
    _check_expiry(sets, options.now, warnings, notes)
    _check_dst(sets, crontab, options, warnings, notes)

    secret = None
    values = {value for _, value in credentials}
    if len(values) > 1:
        raise Refused("it carries two different credentials (" +
                      ", ".join(where for where, _ in credentials) +
                      "); cronhost sends exactly one secret per job, as Authorization: Bearer")
    parts = urlsplit(url)
    loopback = _is_loopback(parts.hostname or "")
    if values:
        if parts.scheme == "http" and not loopback:
            raise Refused("it sends a credential over http://, which cronhost refuses (the "
                          "secret would travel in clear text); switch the job to https:// first")
        secret = namer.name_for(values.pop(), job_id)
        if from_query:
            warnings.append(f"its URL carried a credential in the query ({', '.join(from_query)}); "
                            f"it is now the secret {secret} and cronhost sends it as "
                            "`Authorization: Bearer`, not in the URL: the endpoint must accept "
                            "that (`cronhost verify` checks it)")
    allow_http = parts.scheme == "http" and not loopback
    if allow_http:
        warnings.append("its URL is http://; imported with allow_http = true, as it ran at "
                        "cron-job.org; prefer https://")

    timeout = deadline = None
    request_timeout = job.get("requestTimeout")
    if isinstance(request_timeout, int) and not isinstance(request_timeout, bool) \
            and request_timeout > 0:
        timeout = f"{request_timeout}s"
        if request_timeout > DEFAULT_DEADLINE_S:
            deadline = timeout
    if job.get("redirectSuccess"):
        warnings.append("cron-job.org counted a 301/302/303/307/308 answer as success; cronhost "
                        "does not follow redirects and counts them as failures: point the URL at "
                        "the final address")
    notification = job.get("notification")
    if isinstance(notification, dict) and any(notification.get(k) for k in
                                              ("onFailure", "onSuccess", "onDisable")):
        warnings.append("cron-job.org sent it e-mail notifications; cronhost's alerts are "
                        f"[[alerts]] tables: add one (jobs = [\"{job_id}\"], or all jobs)")
    title = job.get("title")
    enabled = job.get("enabled", True)
    return ImportedJob(
        id=job_id, origin=origin, schedule=crontab, timezone=sets.timezone, method=method,
        url=url, description=title if isinstance(title, str) else "", secret=secret,
        headers=headers, body=body, timeout=timeout, deadline=deadline,
        enabled=enabled if isinstance(enabled, bool) else True, allow_http=allow_http,
        notes=notes,
    )


def _url(value: Any, credentials: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """The URL without query credentials (those go to ``credentials``)."""
    if not isinstance(value, str) or not value.strip():
        raise Refused("has no URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("its URL is not an http(s) URL")
    if parts.username or parts.password:
        raise Refused("its URL carries a user name and password (HTTP basic auth); cronhost "
                      "sends only `Authorization: Bearer <secret>`, so it cannot reproduce it")
    for number, segment in enumerate(parts.path.split("/")):
        if tokenish(unquote(segment)):
            raise Refused(f"path segment {number} of its URL looks like a credential; a token in "
                          "the path cannot become a secret (cronhost sends secrets as "
                          "Authorization: Bearer): change the endpoint, then import it again")
    kept, taken = [], []
    for piece in parts.query.split("&") if parts.query else []:
        key, _, raw = piece.partition("=")
        name, val = unquote_plus(key), unquote_plus(raw)
        if val and (name.lower() in CREDENTIAL_QUERY_KEYS or tokenish(val)):
            credentials.append((f"the URL query parameter {name!r}", val))
            taken.append(repr(name))
        else:
            kept.append(piece)
    return urlunsplit(parts._replace(query="&".join(kept))), taken


def _method(code: Any) -> str:
    method = METHODS.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
    if method is None:
        raise Refused(f"requestMethod {code!r} is not one cron-job.org defines (0-8)")
    if method in ("OPTIONS", "TRACE", "CONNECT"):
        raise Refused(f"it uses {method}; cronhost sends GET, POST, PUT, PATCH, DELETE or HEAD")
    return method


def _headers(raw: Any, credentials: list[tuple[str, str]]) -> tuple[dict[str, str], str | None]:
    if isinstance(raw, list):  # some clients export [{"key": ..., "value": ...}]
        raw = {item.get("key"): item.get("value") for item in raw if isinstance(item, dict)}
    if not isinstance(raw, dict):
        raise Refused("extendedData.headers is not a table of header names to values")
    headers: dict[str, str] = {}
    content_type = None
    for name, value in raw.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise Refused("extendedData.headers has a name or value that is not a string")
        lower = name.lower()
        if lower == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                shown = scheme if scheme.isalpha() and len(scheme) < 16 else "non-Bearer"
                raise Refused(f"its Authorization header uses the {shown} scheme; cronhost sends "
                              "`Authorization: Bearer <secret>` only")
            credentials.append(("the Authorization header", token.strip()))
        elif lower in CREDENTIAL_HEADERS:
            raise Refused(f"its header {name!r} carries a credential; cronhost sends exactly one "
                          "secret, as Authorization: Bearer, and no credential headers")
        elif lower == "content-type":
            content_type = value.strip()
        elif lower == "idempotency-key":
            raise Refused("it sets its own Idempotency-Key header; cronhost sets that header "
                          "itself (one key per slot)")
        elif looks_like_a_token(value) or tokenish(value):
            raise Refused(f"the value of its header {name!r} looks like a literal credential to "
                          "cronhost's config check, which refuses those in headers")
        else:
            headers[name] = value
    return headers, content_type


def _body(
    raw: Any, method: str, content_type: str | None, headers: dict[str, str], warnings: list[str]
) -> str | dict[str, Any] | list[Any] | None:
    text = raw if isinstance(raw, str) else ""
    if method not in BODY_METHODS:
        if text:
            warnings.append(f"its body is not imported: cron-job.org sends no body with {method}")
        return None
    if not text:
        return None
    parsed: Any = None
    is_json_type = content_type is not None and "json" in content_type.split(";")[0].lower()
    if content_type is None or is_json_type:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict | list):
        _no_credentials_in(parsed)
        if not is_json_type:
            warnings.append("its JSON body went out as application/x-www-form-urlencoded (curl's "
                            "default); cronhost sends it as application/json")
        return parsed
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.lower() in SECRET_BODY_KEYS and value:
            raise Refused(f"its body has the field {key!r}, which holds a credential")
    if any(tokenish(word) for word in text.replace("&", " ").replace("=", " ").split()):
        raise Refused("its body holds what looks like a credential")
    if content_type is None:
        warnings.append("its body went out as application/x-www-form-urlencoded (curl's default); "
                        "cronhost sends it with no Content-Type")
    elif looks_like_a_token(content_type):
        raise Refused(f"its Content-Type {content_type!r} is refused by cronhost's config check "
                      "for literal credentials in headers, so the body cannot be sent as it was")
    else:
        headers["Content-Type"] = content_type
    return text


def _no_credentials_in(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() in SECRET_BODY_KEYS and isinstance(item, str) and item:
                raise Refused(f"its JSON body has the field {key!r}, which holds a credential")
            _no_credentials_in(item)
    elif isinstance(value, list):
        for item in value:
            _no_credentials_in(item)
    elif isinstance(value, str) and tokenish(value):
        raise Refused("its JSON body holds what looks like a credential")
    elif value is None:
        raise Refused("its JSON body has a null, which a TOML table cannot hold, and cronhost's "
                      "config refuses the Content-Type header a string body would need")


def _check_expiry(sets: ScheduleSets, now: datetime, warnings: list[str], notes: list[str]) -> None:
    if sets.expires_at is None:
        return
    when = sets.expires_at.strftime("%Y-%m-%d %H:%M:%S") + f" {sets.timezone}"
    if sets.expires_at <= now:
        raise Refused(f"it expired at {when}; cron-job.org no longer runs it")
    warnings.append(f"cron-job.org stops running it after {when} (expiresAt); cronhost has no "
                    "expiry: remove or disable the job by then")
    notes.append(f"cron-job.org expiresAt {when}: cronhost keeps running it after that")


def _check_dst(
    sets: ScheduleSets, crontab: str, options: Options, warnings: list[str], notes: list[str]
) -> None:
    differences = dst_differences(sets, crontab, options.now)
    if not differences:
        return
    shown = ", ".join(d.strftime("%Y-%m-%d %H:%MZ") for d in differences)
    message = (f"on DST-change days in {sets.timezone} cronhost's fire times would differ "
               f"from cron-job.org's (first at {shown}): cron-job.org skips a wall-clock time "
               "that a spring-forward gap removes and runs twice in a fall-back overlap, while "
               "cronhost follows Debian cron's DST rules (a fixed-time job runs once on both "
               "days)")
    if not options.accept_dst_difference:
        raise Refused(message + "; pass --accept-dst-difference to import it anyway")
    warnings.append(message)
    notes.append("fires once on DST-change days, unlike cron-job.org (--accept-dst-difference)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
