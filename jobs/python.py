"""The python job kind: call an importable function inside the daemon.

The target is ``"package.module:function"`` (or ``"package.module:Class.method"``).
It is called with one argument, a :class:`CallContext`. An ``async def`` is
awaited on the daemon's loop; a plain function runs in a worker thread so a
slow one never stalls the scheduler. What it returns becomes the outcome:

    str                         -> message
    {"success": False, ...}     -> FAILED; its "message" (else "error") is the message
    {"message": ..., "data": ...} (any of success/message/data/duration/error)
                                -> those fields, as for an http endpoint's reply
    other JSON-serializable     -> data
    anything else               -> ignored
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from jobs.attempts import AttemptRecord, OnAttempt, OnSend
from jobs.outcome import Outcome, RunStatus
from jobs.patient_timeout import patient_timeout
from jobs.reply import REPLY_KEYS, reply_fields


@dataclass(frozen=True)
class CallContext:
    """What a python job is told about the run it is part of."""

    job_id: str
    scheduled_at: datetime
    # Same meaning as the http kind's Idempotency-Key: "<job>@<scheduled_at>".
    idempotency_key: str
    logger: logging.Logger


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def resolve_callable(target: str) -> Callable[..., Any]:
    """Import ``target`` and return the callable it names; ValueError with one clear line if not."""
    module_name, colon, attr_path = target.partition(":")
    names = module_name.split(".") + attr_path.split(".")
    if not colon or not all(name.isidentifier() for name in names):
        raise ValueError(f"{target!r} is not of the form package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r}: {_one_line(exc)}") from exc
    except Exception as exc:  # the module itself raised while importing
        raise ValueError(
            f"cannot import module {module_name!r}: {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    obj: Any = module
    owner = f"module {module_name!r}"
    walked: list[str] = []
    for name in attr_path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise ValueError(f"{owner} has no attribute {name!r}") from None
        walked.append(name)
        owner = repr(f"{module_name}:{'.'.join(walked)}")
    if not callable(obj):
        # ValueError, not TypeError: the config value is wrong, and callers catch one kind.
        raise ValueError(f"{target!r} is not callable")  # noqa: TRY004
    return cast("Callable[..., Any]", obj)


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004  (an object with async def __call__)
    )


# The error of a callable that returned {"success": False}; its own words are the message.
SUCCESS_FALSE = 'the job answered "success": false'


async def run_callable(
    func: Callable[..., Any], context: CallContext, timeout: float, *,
    on_send: OnSend | None = None, on_attempt: OnAttempt | None = None,
) -> Outcome:
    """Call ``func(context)`` within ``timeout`` seconds; never raises for what the job does.

    The call is the run's one attempt: ``on_send`` is told as it is made, ``on_attempt``
    when it has ended (see :mod:`jobs.attempts`).
    """
    sent_at = datetime.now(UTC)
    started = time.monotonic()
    if on_send is not None:
        on_send(1, None, sent_at)
    outcome, kind = await _call(func, context, timeout)
    if on_attempt is not None:
        on_attempt(AttemptRecord(
            attempt=1, request_id=None, sent_at=sent_at, finished_at=datetime.now(UTC),
            http_status=None, duration=time.monotonic() - started, error=outcome.error,
            error_kind=kind,
        ))
    return outcome


async def _call(
    func: Callable[..., Any], context: CallContext, timeout: float
) -> tuple[Outcome, str | None]:
    # Patient: a timer that fires late (the daemon was frozen) lets a function that
    # has already returned be recorded with what it returned.
    limit = patient_timeout(timeout)
    threaded = not _is_async(func)
    try:
        async with limit:
            if threaded:
                result = await asyncio.to_thread(func, context)
            else:
                result = func(context)
            if inspect.isawaitable(result):  # e.g. a plain function returning a coroutine
                result = await result
    except TimeoutError as exc:
        if not limit.expired():  # the job's own TimeoutError, not our limit
            return Outcome(RunStatus.FAILED, error=f"TimeoutError: {exc}"), "python_exception"
        error = f"timed out after {timeout:g} s"
        if threaded:
            # A Python thread cannot be killed: the function goes on running in
            # the background until it returns on its own. Say so, since its
            # side effects may still land after this run is recorded.
            error += "; the function runs in a thread that cannot be stopped and was left to finish"
        return Outcome(RunStatus.TIMEOUT, error=error), "timeout"
    except (Exception, SystemExit) as exc:  # the job's failure is its outcome, not the daemon's
        context.logger.debug("python job %s raised", context.job_id, exc_info=True)
        return Outcome(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}"), "python_exception"
    outcome = _outcome_of(result)
    return outcome, "success_false" if outcome.status is RunStatus.FAILED else None


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _outcome_of(result: Any) -> Outcome:
    if isinstance(result, str):
        return Outcome(RunStatus.OK, message=result)
    if isinstance(result, dict) and REPLY_KEYS & result.keys():
        fields = reply_fields(result)
        return Outcome(
            RunStatus.FAILED if fields.failed else RunStatus.OK,
            error=SUCCESS_FALSE if fields.failed else None,
            message=fields.words,
            data=_json_or_none(fields.data),
            endpoint_duration=fields.duration,
        )
    return Outcome(RunStatus.OK, data=_json_or_none(result))
