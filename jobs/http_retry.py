"""Which HTTP failures are worth another attempt, and how long to wait first.

:func:`classify` is the one place that splits failures::

    AttemptFailed(transient=True)     worth another attempt
      connection refused / reset, DNS failure, timeouts, 5xx, 429
    AttemptFailed(transient=False)    another attempt would fail the same way
      other 4xx, redirects, TLS certificate errors, ``"success": false``

:class:`RetryPolicy` gives tenacity its wait (backoff with jitter, or the
server's Retry-After) and its stop (out of retries, or out of deadline).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from tenacity import RetryCallState, wait_exponential, wait_random

from jobs.attempts import http_status_kind
from jobs.http_reply import Reply

# Statuses whose Retry-After means "come back later" (RFC 9110 section 10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})
# The error of a 2xx whose JSON said it failed; the endpoint's own words are its message.
SUCCESS_FALSE = 'the endpoint answered "success": false'


def seconds(value: float) -> str:
    """A duration for an error message: "120" rather than "120.0", "2.5" rather than "2.4999"."""
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


class AttemptFailed(Exception):
    """One attempt did not succeed."""

    def __init__(
        self,
        head: str,
        *,
        transient: bool,
        detail: str | None = None,
        timed_out: bool = False,
        retry_after: float | None = None,
        kind: str = "other",
    ) -> None:
        super().__init__(f"{head}: {detail}" if detail else head)
        self.head = head
        self.detail = detail
        self.transient = transient
        self.timed_out = timed_out
        self.retry_after = retry_after
        # The error kind in plain words (jobs.attempts.ERROR_KINDS), for the attempt's record.
        self.kind = kind

    def final_error(self, attempts: int, max_attempts: int, stop_reason: str | None) -> str:
        """The error of the whole run, when this was its last attempt."""
        if self.timed_out:
            text = f"{self.head} (attempt {attempts} of {max_attempts})"
        elif attempts > 1:
            text = f"{self.head} after {attempts} attempts"
        else:
            text = self.head
        if self.detail:
            text += f": {self.detail}"
        if stop_reason:
            text += f"; {stop_reason}"
        return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _causes(exc: BaseException) -> Iterator[BaseException]:
    # httpx wraps httpcore's error, which wraps anyio's, which wraps the OSError
    # that says what really happened: walk the whole chain.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _first(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((cause for cause in _causes(exc) if isinstance(cause, kind)), None)


def _classify_reply(reply: Reply) -> AttemptFailed | None:
    # The error is cronhost's own reason only; what the endpoint said about it (its
    # "message" or "error") is the run's message, kept apart (Outcome.message).
    fields = reply.fields
    kind = http_status_kind(reply.status)
    if kind is None:
        if fields is not None and fields.failed:
            # The endpoint ran and said it failed: running it again right away
            # is the endpoint's business (it has its own retries), not ours.
            return AttemptFailed(SUCCESS_FALSE, transient=False, kind="success_false")
        return None
    if 300 <= reply.status < 400:
        location = reply.headers.get("location", "(no Location header)")
        return AttemptFailed(
            reply.status_line,
            detail=f"redirect to {location} not followed; point the job at the final URL",
            transient=False, kind=kind,
        )
    if reply.status == 429 or reply.status >= 500:
        retry_after = None
        if reply.status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(reply.headers.get("retry-after"))
        return AttemptFailed(reply.status_line, transient=True, retry_after=retry_after, kind=kind)
    return AttemptFailed(reply.status_line, transient=False, kind=kind)


def _classify_error(
    exc: httpx.HTTPError | TimeoutError, url: httpx.URL, budget: float
) -> AttemptFailed:
    host = url.host
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        phase = f" connecting to {host}" if isinstance(exc, httpx.ConnectTimeout) else ""
        return AttemptFailed(
            f"timed out after {budget:.1f} s{phase}", transient=True, timed_out=True,
            kind="timeout",
        )
    cert = _first(exc, ssl.SSLCertVerificationError)
    if isinstance(cert, ssl.SSLCertVerificationError):
        reason = cert.verify_message or str(cert)
        return AttemptFailed(
            f"TLS certificate verify failed for host {host}", detail=reason, transient=False,
            kind="connection",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError | httpx.DecodingError):
        # The URL or the request itself is wrong, or the body cannot be decoded:
        # the same bytes would fail the same way again.
        return AttemptFailed(f"{type(exc).__name__}: {exc}", transient=False)
    if _first(exc, socket.gaierror) is not None:
        return AttemptFailed(f"DNS lookup failed for host {host}", transient=True,
                             kind="connection")
    if _first(exc, ConnectionRefusedError) is not None:
        return AttemptFailed(f"connection refused by {where}", transient=True, kind="connection")
    if _first(exc, ConnectionResetError) is not None:
        return AttemptFailed(f"connection reset by peer ({where})", transient=True,
                             kind="connection")
    if isinstance(exc, httpx.RemoteProtocolError):
        return AttemptFailed(
            f"{where} closed the connection without a complete response",
            detail=str(exc),
            transient=True,
            kind="connection",
        )
    ssl_error = _first(exc, ssl.SSLError)
    if ssl_error is not None:
        return AttemptFailed(f"TLS error with host {host}", detail=str(ssl_error), transient=True,
                             kind="connection")
    return AttemptFailed(
        f"network error with {where}", detail=f"{type(exc).__name__}: {exc}", transient=True,
        kind="connection",
    )


def classify(
    result: Reply | httpx.HTTPError | TimeoutError, *, url: httpx.URL, budget: float
) -> AttemptFailed | None:
    """None when the attempt succeeded, else the failure, transient or permanent.

    ``budget`` is the attempt's timeout, for the message when it ran out.
    """
    if isinstance(result, Reply):
        return _classify_reply(result)
    return _classify_error(result, url, budget)


class RetryPolicy:
    """tenacity's ``wait`` and ``stop`` for one run (all attempts of one slot)."""

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff_initial: float,
        backoff_max: float,
        timeout: float,
        deadline: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_attempts = max_attempts
        self.deadline = deadline
        self._clock = clock
        # The deadline counts from the first send (start()); until then it is all left.
        self._deadline_at: float | None = None
        # Starting an attempt with a sliver of time left only turns a clear
        # failure into a vague timeout: ask for a second, or the whole timeout
        # when that is shorter.
        self._min_attempt = min(1.0, timeout)
        # initial * 2**n plus up to `initial` of jitter, so jobs that failed
        # together do not all come back in the same instant. Built from the two
        # plain waits because wait_exponential_jitter's arguments changed within 9.x.
        self._backoff = wait_exponential(multiplier=backoff_initial, max=backoff_max) + wait_random(
            0, backoff_initial
        )
        self._backoff_max = backoff_max
        # Why the last stop came early, for the run's error; None when retries ran out.
        self.stop_reason: str | None = None

    def start(self) -> None:
        """The first request is being sent: the deadline starts counting now."""
        if self._deadline_at is None:
            self._deadline_at = self._clock() + self.deadline

    def time_left(self) -> float:
        if self._deadline_at is None:
            return self.deadline
        return self._deadline_at - self._clock()

    @staticmethod
    def _failure(state: RetryCallState) -> AttemptFailed | None:
        exc = state.outcome.exception() if state.outcome is not None else None
        return exc if isinstance(exc, AttemptFailed) else None

    def wait(self, state: RetryCallState) -> float:
        failure = self._failure(state)
        if failure is not None and failure.retry_after is not None:
            # The server said when; coming back sooner only earns another 429.
            return failure.retry_after
        return min(float(self._backoff(state)), self._backoff_max)

    def stop(self, state: RetryCallState) -> bool:
        # tenacity computes the wait before asking stop, so upcoming_sleep is the real one.
        self.stop_reason = None
        if state.attempt_number >= self.max_attempts:
            return True
        left = self.time_left()
        if state.upcoming_sleep + self._min_attempt <= left:
            return False
        failure = self._failure(state)
        deadline = seconds(self.deadline)
        if failure is not None and failure.retry_after is not None:
            self.stop_reason = (
                f"Retry-After {seconds(failure.retry_after)} s is past the {deadline} s deadline"
            )
        else:
            self.stop_reason = f"no time left in the {deadline} s deadline for another attempt"
        return True
