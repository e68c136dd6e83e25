"""What a job kind tells its caller about each attempt, as it happens.

A kind calls ``on_send(attempt, request_id, sent_at)`` when an attempt's request is
handed to the connection (or its callable is called), and ``on_attempt(record)``
when that attempt has ended, with what came back. The caller (the daemon's runner)
writes both down, so a run cut short by a crash still shows what was sent.

Error kinds, in plain words (the same words as ``cronhost report``)::

    http_5xx  http_429  http_4xx  http_3xx    the endpoint answered with that status
    timeout                                   no complete answer within the timeout
    deadline                                  cut short by what was left of the deadline
    connection                                refused, reset, DNS, TLS, closed early
    success_false                             a 2xx whose JSON said "success": false
    python_exception                          the callable raised
    other                                     the request itself was wrong
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ERROR_KINDS", "AttemptRecord", "OnAttempt", "OnSend", "http_status_kind"]

ERROR_KINDS = (
    "http_5xx", "http_429", "http_4xx", "http_3xx", "timeout", "deadline", "connection",
    "success_false", "python_exception", "other",
)


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt, ended. ``error`` is already redacted of the secrets the kind knows."""

    attempt: int  # 1, 2, ...
    request_id: str | None  # the X-Request-Id sent; None for a python callable
    sent_at: datetime
    finished_at: datetime
    http_status: int | None
    duration: float  # seconds, from the send to the end of the answer
    error: str | None  # None: this attempt succeeded
    error_kind: str | None = None
    # The Retry-After the endpoint sent, when cronhost waited that long before the next
    # attempt (not when it was past the deadline and the run stopped instead).
    retry_after: float | None = None
    will_retry: bool = False
    wait: float = 0.0  # seconds until the next attempt, when there is one


OnSend = Callable[[int, str | None, datetime], None]
OnAttempt = Callable[[AttemptRecord], None]


def http_status_kind(status: int) -> str | None:
    """The error kind of a reply's status; None for a 2xx."""
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return "http_4xx"
    if status >= 300:
        return "http_3xx"
    return None
