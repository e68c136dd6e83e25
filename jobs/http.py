"""The http job kind: call an endpoint with its Bearer secret, retry what is worth it.

One :class:`HttpJobRunner` serves every http job of the daemon through a fixed
set of places (``max_in_flight`` clients of one connection each, see ``_Places``).
Each :meth:`HttpJobRunner.run` makes all the attempts of one slot, inside the
request's deadline (counted from the first send), and always comes back with an :class:`~jobs.outcome.Outcome`: nothing the endpoint or the
network does makes it raise. Which failures are retried is decided in
:mod:`jobs.http_retry`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from jobs.attempts import AttemptRecord, OnAttempt, OnSend
from jobs.http_reply import Reply, excerpt, read_reply
from jobs.http_retry import AttemptFailed, RetryPolicy, classify, seconds
from jobs.outcome import Outcome, RunStatus
from jobs.patient_timeout import patient_timeout
from jobs.redact import redact, redact_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpRequest:
    """Everything one run of an http job needs; plain values, no config objects."""

    job_id: str
    url: str
    # The same for every attempt of one slot, so the endpoint can tell a retry
    # from a new run ("<job>@<scheduled_at>").
    idempotency_key: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    json_body: Any = None
    # The Bearer token itself: kept out of repr so it cannot reach a log line.
    secret: str | None = field(default=None, repr=False)
    # Other secret values that must never come back out (the body's named secrets, other
    # jobs' tokens an endpoint might echo): redacted from everything kept of the reply.
    redact_also: tuple[str, ...] = field(default=(), repr=False)
    timeout: float = 30.0
    deadline: float = 120.0
    retries: int = 2
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    max_response_bytes: int = 1_048_576
    excerpt_bytes: int = 4096
    # How long the first attempt may wait for a free place under the in-flight limit
    # (None: as long as the deadline). Waiting is not running: the timeout and the
    # deadline count from the first send.
    start_within: float | None = None

    def __post_init__(self) -> None:
        if self.body is not None and self.json_body is not None:
            raise ValueError(f"job {self.job_id!r}: give body or json_body, not both")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ValueError(f"job {self.job_id!r}: timeout and deadline must be positive")
        if self.retries < 0 or self.backoff_initial < 0 or self.backoff_max < 0:
            raise ValueError(f"job {self.job_id!r}: retries and backoff cannot be negative")
        if self.max_response_bytes < 0 or self.excerpt_bytes < 0:
            raise ValueError(f"job {self.job_id!r}: byte limits cannot be negative")


class HttpJobRunner:
    """Runs http jobs over one shared client; use ``async with`` or call :meth:`aclose`."""

    def __init__(
        self,
        *,
        user_agent: str,
        max_in_flight: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._user_agent = user_agent
        self._sleep = sleep
        self._max_in_flight = max_in_flight
        self._places = _Places(max_in_flight, transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._places.aclose()

    async def run(
        self,
        request: HttpRequest,
        on_attempt: OnAttempt | None = None,
        on_start: Callable[[], None] | None = None,
        on_send: OnSend | None = None,
    ) -> Outcome:
        """All attempts of one slot; never raises for anything the endpoint or network does.

        ``on_start`` is called once, when the first request has its place and is about to
        be sent; a run that never gets a place within ``start_within`` ends ``missed``.
        ``on_send`` is called as each attempt's request is handed to its connection,
        ``on_attempt`` when that attempt has ended (see :mod:`jobs.attempts`); an attempt
        that never got a place was not sent, and is reported by neither.
        """
        slot_run = _SlotRun(self, request, on_attempt, on_start, on_send)
        try:
            return await slot_run.execute()
        except Exception as exc:  # noqa: BLE001  (the last net: a run ends as an Outcome)
            # The traceback is for whoever fixes the bug, but its last line is the
            # exception's message, which could quote the secret.
            trace = "".join(traceback.format_exception(exc))
            log.error(
                "http job %s: unexpected error\n%s", request.job_id,
                redact(trace, [request.secret, *request.redact_also]),
            )
            return slot_run.outcome(
                RunStatus.FAILED, f"{type(exc).__name__}: {exc}", max(slot_run.attempts, 1)
            )


class _SlotRun:
    """The state of one :meth:`HttpJobRunner.run`: attempts so far and the last reply."""

    def __init__(
        self,
        runner: HttpJobRunner,
        request: HttpRequest,
        on_attempt: OnAttempt | None,
        on_start: Callable[[], None] | None = None,
        on_send: OnSend | None = None,
    ) -> None:
        self.runner = runner
        self.request = request
        self.on_attempt = on_attempt
        self.on_start = on_start
        self.on_send = on_send
        self.started = False
        self.policy = RetryPolicy(
            max_attempts=request.retries + 1,
            backoff_initial=request.backoff_initial,
            backoff_max=request.backoff_max,
            timeout=request.timeout,
            deadline=request.deadline,
        )
        self.url = httpx.URL()
        self._client: httpx.AsyncClient | None = None  # the place of the attempt under way
        self.attempts = 0
        self.last_reply: Reply | None = None
        self._pending: AttemptRecord | None = None

    async def execute(self) -> Outcome:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, AttemptFailed) and e.transient),
            wait=self.policy.wait,
            stop=self.policy.stop,
            sleep=self.runner._sleep,
            before_sleep=self._report_retry,
            reraise=True,
        )
        try:
            self.url = httpx.URL(self.request.url)
        except httpx.InvalidURL as exc:
            return self.outcome(RunStatus.FAILED, f"invalid URL {self.request.url!r}: {exc}", 1)
        reply: Reply | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    reply = await self._attempt()
        except AttemptFailed as failure:
            self._report(will_retry=False, wait=0.0)
            if not self.started:
                # Never sent: the slot passed without a run, like any other missed slot.
                return self.outcome(RunStatus.MISSED, str(failure), 0)
            status = RunStatus.TIMEOUT if failure.timed_out else RunStatus.FAILED
            error = failure.final_error(
                self.attempts, self.policy.max_attempts, self.policy.stop_reason
            )
            return self.outcome(status, error, self.attempts)
        self._report(will_retry=False, wait=0.0)
        assert reply is not None  # tenacity only leaves the loop with a result or a raise
        return self.outcome(RunStatus.OK, None, self.attempts)

    def outcome(self, status: RunStatus, error: str | None, attempts: int) -> Outcome:
        secrets = [self.request.secret, *self.request.redact_also]
        reply = self.last_reply
        fields = reply.fields if reply is not None else None
        duration = fields.duration if fields else None
        return Outcome(
            status=status,
            attempts=attempts,
            http_status=reply.status if reply else None,
            error=redact(error, secrets) if error else None,
            message=redact(fields.words, secrets) if fields and fields.words else None,
            data=redact_json(fields.data, secrets) if fields else None,
            endpoint_duration=redact(duration, secrets) if isinstance(duration, str) else duration,
            response_excerpt=(
                excerpt(reply.body, self.request.excerpt_bytes, secrets)
                if reply
                else None
            ),
        )

    async def _attempt(self) -> Reply:
        self.attempts += 1
        request_id = str(uuid.uuid4())
        await self._take_slot(request_id)
        budget = max(0.0, min(self.request.timeout, self.policy.time_left()))
        started = time.monotonic()
        result: Reply | httpx.HTTPError | TimeoutError
        client, self._client = self._client, None
        assert client is not None  # _take_slot gave this attempt its place
        sent_at = datetime.now(UTC)
        self._tell("on_send", self.on_send, self.attempts, request_id, sent_at)
        try:
            result = await self._exchange(client, request_id, budget)
        except (httpx.HTTPError, TimeoutError) as exc:
            result = exc
        finally:
            self.runner._places.release(client)
        duration = time.monotonic() - started
        if isinstance(result, Reply):
            self.last_reply = result
        failure = classify(result, url=self.url, budget=budget)
        if failure is not None and failure.timed_out and budget < self.request.timeout:
            failure.kind = "deadline"  # cut short by what the deadline had left, not the timeout
        self._pending = AttemptRecord(
            attempt=self.attempts,
            request_id=request_id,
            sent_at=sent_at,
            finished_at=datetime.now(UTC),
            http_status=result.status if isinstance(result, Reply) else None,
            duration=duration,
            error=redact(str(failure), [self.request.secret, *self.request.redact_also])
            if failure else None,
            error_kind=failure.kind if failure else None,
            retry_after=failure.retry_after if failure else None,
        )
        if failure is not None:
            raise failure
        assert isinstance(result, Reply)
        return result

    async def _take_slot(self, request_id: str) -> None:
        # The first attempt waits for its place before the run starts (that wait is
        # bounded by start_within, not by the deadline, which has not begun); a retry's
        # wait counts against the deadline, but not against the attempt's own timeout.
        first = not self.started
        limit = self.request.start_within if first else None
        wait = limit if limit is not None else self.policy.time_left()
        try:
            async with patient_timeout(max(0.0, wait)):
                self._client = await self.runner._places.take()
        except TimeoutError:
            in_flight = self.runner._max_in_flight
            failure = AttemptFailed(
                f"not started: no free place within {seconds(wait)} s "
                f"({in_flight} requests in flight, [daemon] max_in_flight)" if first else
                f"timed out after {seconds(self.request.deadline)} s waiting for a free"
                f" connection slot ({in_flight} requests in flight)",
                transient=False,
                timed_out=True,
            )
            raise failure from None  # never sent: no attempt to report
        if first:
            self.started = True
            self.policy.start()
            if self.on_start is not None:
                self.on_start()

    async def _exchange(self, client: httpx.AsyncClient, request_id: str, budget: float) -> Reply:
        request = self.request
        headers = httpx.Headers(
            {
                "User-Agent": self.runner._user_agent,
                # Bodies are capped by bytes read; asking for no compression keeps
                # the cap honest (a small gzip body can inflate a thousandfold).
                "Accept-Encoding": "identity",
            }
        )
        headers.update(request.headers)
        headers["Idempotency-Key"] = request.idempotency_key
        headers["X-Request-Id"] = request_id
        if request.secret:
            headers["Authorization"] = f"Bearer {request.secret}"
        http_request = client.build_request(
            request.method,
            self.url,
            headers=headers,
            content=request.body if request.json_body is None else None,
            json=request.json_body,
            # Only the connect wait is httpx's: its read and write timers, like
            # asyncio.timeout, would win the race against a reply that arrived while
            # the process was frozen. The whole exchange is bounded below.
            timeout=httpx.Timeout(None, connect=budget),
        )
        # One bound for the whole exchange (httpx's bound each network wait, so a body
        # trickling in a byte at a time would never trip them), and a patient one: a
        # timer that fires late, after a freeze, lets a reply already here be read.
        async with patient_timeout(budget):
            response = await client.send(http_request, stream=True)
            try:
                return await read_reply(response, request.max_response_bytes)
            finally:
                await response.aclose()

    def _report_retry(self, state: RetryCallState) -> None:
        self._report(will_retry=True, wait=state.upcoming_sleep)

    def _report(self, *, will_retry: bool, wait: float) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        # A Retry-After is on record as honoured only when the next attempt waited for it.
        honoured = pending.retry_after if will_retry and pending.retry_after == wait else None
        record = replace(pending, will_retry=will_retry, wait=wait, retry_after=honoured)
        self._tell("on_attempt", self.on_attempt, record)

    def _tell(self, name: str, callback: Callable[..., None] | None, *args: object) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # a broken log callback must not turn a good run into a failed one
            log.exception("http job %s: %s callback failed", self.request.job_id, name)


class _Places:
    """The in-flight limit: ``size`` places, each an ``httpx.AsyncClient`` of one connection.

    One client with a pool of N connections would be simpler, but httpcore's pool does
    O(N**2) bookkeeping on every request it starts or finishes (it re-counts all its
    connections for each one, in ``_assign_requests_to_connections``). Measured here
    with 1,000 requests to a loopback endpoint: one pool of 32 connections cost 5.3 ms of
    CPU a request, one of 100 cost 11 ms; 100 clients of one connection each, 1.0 ms.
    A request takes a free client (waiting here, never inside httpx, when all are busy),
    and each client keeps its connection alive for the next request it carries.
    """

    def __init__(self, size: int, transport: httpx.AsyncBaseTransport | None) -> None:
        # One TLS context for every client: each would otherwise load the CA store.
        context = httpx.create_ssl_context()
        self._free: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        self._all: list[httpx.AsyncClient] = []
        for _ in range(size):
            client = httpx.AsyncClient(
                transport=transport,
                verify=context,
                # A cron endpoint that redirects has moved: following it would send the
                # Bearer secret wherever the Location points, so it is a failure instead.
                follow_redirects=False,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                    keepalive_expiry=30.0),
            )
            self._all.append(client)
            # LIFO: a burst reuses the clients whose connections are warm.
            self._free.put_nowait(client)

    async def take(self) -> httpx.AsyncClient:
        return await self._free.get()

    def release(self, client: httpx.AsyncClient | None) -> None:
        if client is not None:
            self._free.put_nowait(client)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all))
