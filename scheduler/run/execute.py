"""Running one claimed slot: a JobSpec becomes a job kind's plain request, and an Outcome.

This is the only place in ``scheduler`` that calls ``jobs/``: the kinds know
nothing of config files, stores or APScheduler, so everything they need (the
secret's value, timeouts, the idempotency key) is handed over here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobs.attempts import AttemptRecord, OnAttempt, OnSend
from jobs.http import HttpJobRunner, HttpRequest
from jobs.outcome import Outcome
from jobs.python import CallContext, resolve_callable, run_callable
from scheduler.config import Config, JobSpec
from scheduler.config.placeholders import fill, fill_json
from scheduler.logs import get_logger

__all__ = ["BuiltinCall", "JobExecutor"]

log = get_logger("run")

BuiltinCall = Callable[[CallContext], Awaitable[Any]]


class JobExecutor:
    """Runs a slot of any kind. ``builtins`` stand in for callables that need the daemon's
    own parts (history pruning needs its store), by the ``call`` path they replace."""

    def __init__(
        self, http: HttpJobRunner, config: Callable[[], Config],
        builtins: Mapping[str, BuiltinCall] | None = None,
    ) -> None:
        self._http = http
        self._config = config
        self._builtins = dict(builtins or {})

    async def run(
        self, spec: JobSpec, scheduled_at: datetime, key: str, *,
        on_start: Callable[[], None] | None = None, start_by: datetime | None = None,
        on_send: OnSend | None = None, on_attempt: OnAttempt | None = None,
    ) -> Outcome:
        """One slot of ``spec``. ``on_start`` is called when it really starts (its first
        request is sent, its callable called); an HTTP slot that cannot get a place under
        the in-flight limit before ``start_by`` ends ``missed``. ``on_send`` and
        ``on_attempt`` hear of each attempt as it is sent and as it ends."""
        if spec.kind == "python":
            assert spec.call is not None
            context = CallContext(
                job_id=spec.id, scheduled_at=scheduled_at, idempotency_key=key,
                logger=get_logger(f"job.{spec.id}"),
            )
            function = self._builtins.get(spec.call) or resolve_callable(spec.call)
            if on_start is not None:
                on_start()
            return await run_callable(function, context, spec.deadline, on_send=on_send,
                                      on_attempt=on_attempt)
        assert spec.url is not None
        secrets = self._config().secrets
        body, json_body = spec.body, _json(spec.json_body_text)
        if "${" in (spec.body or spec.json_body_text or ""):
            # ${NAME} in the body: the value goes out with this request and nowhere else
            # (the spec, the store and the logs keep the name); $${ becomes a literal ${.
            body = fill(body, secrets) if body is not None else None
            json_body = fill_json(json_body, secrets)
        request = HttpRequest(
            job_id=spec.id,
            url=spec.url,
            idempotency_key=key,
            method=spec.method,
            headers=dict(spec.headers),
            body=body,
            json_body=json_body,
            secret=secrets.get(spec.secret) if spec.secret else None,
            redact_also=tuple(secrets.values_for_redaction()),
            timeout=spec.timeout,
            deadline=spec.deadline,
            retries=spec.retries,
            start_within=(
                max(0.0, (start_by - datetime.now(UTC)).total_seconds()) if start_by else None
            ),
        )
        return await self._http.run(
            request,
            on_attempt=functools.partial(_log_attempt, spec.id, scheduled_at, key, on_attempt),
            on_start=on_start, on_send=on_send,
        )


def _log_attempt(job_id: str, scheduled_at: datetime, key: str, then: OnAttempt | None,
                 report: AttemptRecord) -> None:
    if then is not None:
        then(report)
    log.log(
        20 if report.error is None else 30,
        "attempt",
        extra={"action": "run.attempt", "job": job_id, "slot": scheduled_at.isoformat(),
               "idempotency_key": key, "attempt": report.attempt,
               "request_id": report.request_id, "http_status": report.http_status,
               "duration_ms": int(report.duration * 1000), "error": report.error,
               "error_kind": report.error_kind,
               "will_retry": report.will_retry, "retry_in_ms": int(report.wait * 1000)},
    )


def _json(text: str | None) -> object:
    return json.loads(text) if text else None
