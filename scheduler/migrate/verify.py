"""The seed's endpoint checklist, against each HTTP job's live endpoint.

For every job, three real calls, in this order:

1. ``unauthenticated``: the job's request without ``Authorization``. Passes on 401
   or 403. A 2xx means anyone who knows the URL can run the job (a finding); a job
   with no ``secret`` fails it without a call, for the same reason.
2. ``authenticated``: the request as cronhost sends it (Bearer secret, the job's
   headers and body, an ``Idempotency-Key``). Passes on a 2xx whose JSON body has
   a boolean ``success`` that is true. HTML (a login page, a proxy's error page)
   and other non-JSON answers fail, saying so. HEAD has no body: a 2xx passes.
3. ``repeat``: the same request again, same Idempotency-Key. Passes on a 2xx, and
   reports what the endpoint's JSON says about the repeat, if it says anything.

The calls do the job's real work, so the caller requires ``--yes``. Jobs whose
method is not idempotent (POST, PATCH; RFC 9110 section 9.2.2) are listed, every
check failing as "not called", unless ``--include-unsafe``: an unchecked job is
not a passed one. The Idempotency-Key is ``slot_key(job, now, "verify")``
(``job@verify:<instant>``), so the endpoint's records tell a check from a slot.

The secret's value is never printed: every detail is built from the status, the
content type and the endpoint's ``message``, redacted of the secret in the forms
an endpoint may echo it (raw, other case, URL-encoded, base64, JSON-escaped).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from scheduler.config import Config, JobSpec
from scheduler.errors import UsageError
from scheduler.schedule import slot_key

SAFE_METHODS = {"GET", "HEAD", "PUT", "DELETE"}
USER_AGENT = "cronhost-verify"
_REPEAT_KEYS = ("duplicate", "idempotent", "replayed", "replay", "repeat", "repeated",
                "already_processed", "alreadyProcessed", "cached", "deduplicated")
_DETAIL_MAX = 200


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    http_status: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "http_status": self.http_status,
                "detail": self.detail}


@dataclass(frozen=True)
class JobReport:
    job_id: str
    method: str
    url: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "ok": self.ok,
                "checks": [check.to_json() for check in self.checks]}


def select_jobs(config: Config, job_ids: list[str]) -> list[JobSpec]:
    """The named HTTP jobs, or every enabled HTTP job; UsageError for an unknown id."""
    if not job_ids:
        return [job for job in config.jobs if job.kind == "http" and job.enabled]
    selected = []
    for job_id in job_ids:
        job = config.job(job_id)
        if job is None:
            known = ", ".join(j.id for j in config.jobs if j.kind == "http") or "none"
            raise UsageError(f"no job {job_id!r} in {config.path} (HTTP jobs: {known})")
        if job.kind != "http":
            raise UsageError(f"job {job_id!r} in {config.path} runs a Python callable; verify "
                             "checks HTTP endpoints")
        selected.append(job)
    return selected


def verify(
    config: Config, jobs: list[JobSpec], *, include_unsafe: bool,
    client: httpx.Client | None = None, now: datetime | None = None,
) -> list[JobReport]:
    owned = client is None
    client = client or httpx.Client(follow_redirects=False)
    try:
        return [_verify_job(client, config, job, include_unsafe, now or datetime.now(UTC))
                for job in jobs]
    finally:
        if owned:
            client.close()


def _verify_job(
    client: httpx.Client, config: Config, job: JobSpec, include_unsafe: bool, now: datetime
) -> JobReport:
    assert job.url is not None
    report = JobReport(job.id, job.method, job.url)
    names = ("unauthenticated", "authenticated", "repeat")
    if job.method not in SAFE_METHODS and not include_unsafe:
        reason = (f"not called: {job.method} is not safe to repeat; pass --include-unsafe to run "
                  "this job's real work three times")
        report.checks.extend(Check(name, False, None, reason) for name in names)
        return report
    secret = config.secrets.get(job.secret) if job.secret else None
    key = slot_key(job.id, now, "verify")

    if job.secret is None:
        report.checks.append(Check("unauthenticated", False, None,
                                   "the job has no secret: cronhost calls it without credentials, "
                                   "so anyone who knows the URL can run it"))
    else:
        report.checks.append(_unauthenticated(_send(client, job, None, key), secret))
    if job.secret is not None and secret is None:
        missing = (f"not called: the secret {job.secret} was not looked up (the job is "
                   "disabled); set it and enable the job, or check it by hand")
        report.checks.extend(Check(n, False, None, missing) for n in names[1:])
        return report
    first = _authenticated(_send(client, job, secret, key), job, secret)
    report.checks.append(first)
    if not first.ok:
        report.checks.append(Check("repeat", False, None,
                                   "not called: the authenticated call did not pass"))
        return report
    report.checks.append(_repeat(_send(client, job, secret, key), secret))
    return report


def _send(client: httpx.Client, job: JobSpec, secret: str | None, key: str) -> httpx.Response | str:
    """The response, or a one-line reason when there is none."""
    headers = {"User-Agent": USER_AGENT, **dict(job.headers), "Idempotency-Key": key}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    json_body = json.loads(job.json_body_text) if job.json_body_text else None
    try:
        return client.request(job.method, job.url or "", headers=headers, json=json_body,
                              content=job.body if json_body is None else None,
                              timeout=httpx.Timeout(job.timeout))
    except httpx.TimeoutException:
        return f"no answer within {job.timeout:g} s (the job's timeout)"
    except httpx.HTTPError as exc:
        return f"the request failed: {type(exc).__name__}: {exc}"


def _unauthenticated(response: httpx.Response | str, secret: str | None) -> Check:
    name = "unauthenticated"
    if isinstance(response, str):
        return Check(name, False, None, _redact(response, secret))
    status = response.status_code
    if status in (401, 403):
        return Check(name, True, status, f"refused without credentials ({status})")
    if 200 <= status < 300:
        return Check(name, False, status, f"answered {status} without credentials: anyone who "
                                          "knows the URL can run this job")
    return Check(name, False, status, _redact(f"expected 401 or 403 without credentials, got "
                                              f"{status}{_said(response)}", secret))


def _authenticated(response: httpx.Response | str, job: JobSpec, secret: str | None) -> Check:
    name = "authenticated"
    if isinstance(response, str):
        return Check(name, False, None, _redact(response, secret))
    status = response.status_code
    if not 200 <= status < 300:
        return Check(name, False, status,
                     _redact(f"expected 2xx, got {status}{_said(response)}", secret))
    if job.method == "HEAD":
        return Check(name, True, status, f"answered {status} (HEAD has no body to check)")
    body, problem = _json_body(response)
    if problem:
        return Check(name, False, status, problem)
    success = body.get("success") if isinstance(body, dict) else None
    if not isinstance(success, bool):
        return Check(name, False, status, f"answered {status} with JSON that has no boolean "
                                          "`success`")
    if not success:
        return Check(name, False, status,
                     _redact(f"answered {status} with success: false{_said(response)}", secret))
    return Check(name, True, status, _redact(f"success: true{_said(response)}", secret))


def _repeat(response: httpx.Response | str, secret: str | None) -> Check:
    name = "repeat"
    if isinstance(response, str):
        return Check(name, False, None, _redact(response, secret))
    status = response.status_code
    body, _ = _json_body(response)
    said = []
    if isinstance(body, dict):
        said = [f"{key}={json.dumps(body[key])}" for key in _REPEAT_KEYS if key in body]
        data = body.get("data")
        if isinstance(data, dict):
            said += [f"data.{key}={json.dumps(data[key])}" for key in _REPEAT_KEYS if key in data]
    about = ("; the endpoint says " + ", ".join(said)) if said else \
        "; the answer says nothing about it being a repeat"
    if not 200 <= status < 300:
        return Check(name, False, status, _redact(f"the same Idempotency-Key again got {status}"
                                                  f"{_said(response)}{about}", secret))
    return Check(name, True, status, _redact(f"answered {status}{_said(response)}{about}", secret))


def _json_body(response: httpx.Response) -> tuple[Any, str | None]:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = response.text.lstrip()
    if "html" in content_type or text[:15].lower().startswith(("<!doctype html", "<html")):
        return None, (f"answered HTML ({content_type or 'no Content-Type'}), not JSON: a login "
                      "page, an error page or the wrong URL?")
    try:
        return response.json(), None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, f"answered something that is not JSON ({content_type or 'no Content-Type'})"


def _said(response: httpx.Response) -> str:
    """``: "<message>"`` from the endpoint's JSON, shortened; empty when there is none."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message") or body.get("error")
    if not isinstance(message, str) or not message:
        return ""
    return f": {message[:_DETAIL_MAX]!r}"


def _redact(text: str, secret: str | None) -> str:
    if not secret:
        return text
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    for raw in (secret, f"Bearer {secret}", f":{secret}"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms |= {encoded, encoded.rstrip("="), base64.urlsafe_b64encode(raw.encode()).decode()}
    for form in sorted(forms, key=len, reverse=True):
        text = re.sub(re.escape(form), "[secret]", text, flags=re.IGNORECASE)
    return text
