"""The http job kind against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobs.attempts import AttemptRecord
from jobs.http import HttpJobRunner, HttpRequest
from jobs.http_retry import parse_retry_after
from jobs.outcome import Outcome, RunStatus
from jobs.redact import redact
from tests.endpoint_server import EndpointServer, Fault

SECRET = "s3cr3t-cron-token-0123456789"
USER_AGENT = "cronhost/0.1.0"
PATH = "/api/cron/sync-leads"


def make_request(url: str, **overrides: Any) -> HttpRequest:
    # Tiny backoff and short timeouts keep the whole file to a few seconds.
    fields: dict[str, Any] = {
        "job_id": "sync-leads",
        "url": url,
        "idempotency_key": "sync-leads@2024-03-01T02:00:00+00:00",
        "secret": SECRET,
        "timeout": 2.0,
        "deadline": 10.0,
        "retries": 2,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    fields.update(overrides)
    return HttpRequest(**fields)


def run_job(
    request: HttpRequest, **runner_options: Any
) -> tuple[Outcome, list[AttemptRecord], float]:
    """Run one slot; return its outcome, the attempt reports and the elapsed seconds."""

    async def main() -> tuple[Outcome, list[AttemptRecord], float]:
        reports: list[AttemptRecord] = []
        async with HttpJobRunner(user_agent=USER_AGENT, **runner_options) as runner:
            started = time.monotonic()
            outcome = await runner.run(request, reports.append)
            return outcome, reports, time.monotonic() - started

    return asyncio.run(main())


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{PATH}"


# -- what every attempt sends ------------------------------------------------


def test_every_attempt_sends_bearer_same_idempotency_key_fresh_request_id_and_user_agent(
    endpoint: EndpointServer,
) -> None:
    endpoint.program(PATH, Fault.status(503), Fault.status(502))
    request = make_request(endpoint.url + PATH, headers={"X-Team": "leadmap"})

    outcome, reports, _ = run_job(request)

    assert outcome.status is RunStatus.OK
    assert outcome.attempts == 3
    received = endpoint.requests(PATH)
    assert len(received) == 3
    assert {r.headers["authorization"] for r in received} == {f"Bearer {SECRET}"}
    assert {r.headers["Idempotency-Key"] for r in received} == {request.idempotency_key}
    assert {r.headers["user-agent"] for r in received} == {USER_AGENT}
    assert {r.headers["x-team"] for r in received} == {"leadmap"}
    request_ids = [r.headers["x-request-id"] for r in received]
    assert len(set(request_ids)) == 3
    assert all(uuid.UUID(rid).version == 4 for rid in request_ids)
    # The engine's log of each attempt names the same request id the endpoint saw.
    assert [report.request_id for report in reports] == request_ids


def test_json_body_is_sent_as_json_and_plain_body_as_is(endpoint: EndpointServer) -> None:
    run_job(make_request(endpoint.url + "/json", json_body={"batch": 50}))
    run_job(make_request(endpoint.url + "/raw", body="limit=10", headers={"Content-Type": "x"}))
    run_job(make_request(endpoint.url + "/get", method="GET", secret=None))

    [as_json] = endpoint.requests("/json")
    assert as_json.json() == {"batch": 50}
    assert as_json.headers["content-type"] == "application/json"
    [raw] = endpoint.requests("/raw")
    assert raw.body == b"limit=10"
    [get] = endpoint.requests("/get")
    assert get.method == "GET"
    assert "authorization" not in get.headers


def test_ok_keeps_the_endpoints_message_data_and_duration(endpoint: EndpointServer) -> None:
    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert (outcome.attempts, outcome.http_status, outcome.error) == (1, 200, None)
    assert outcome.message == "ok"
    assert outcome.data == {"path": PATH, "count": 1}
    assert outcome.endpoint_duration == "1ms"
    assert outcome.response_excerpt is not None and '"success": true' in outcome.response_excerpt
    [report] = reports
    assert (report.attempt, report.http_status, report.will_retry) == (1, 200, False)


def test_an_echo_of_another_secret_is_redacted_as_well_as_the_jobs_own(
    endpoint: EndpointServer,
) -> None:
    """A body's named secret (or another job's token) echoed back never stays in the run."""
    other = "body-secret-Kq7vW2xP9mLz"
    endpoint.program(PATH, Fault.status(
        500, {"success": False, "message": f"bad token {other}", "data": {"echo": other}}))
    outcome, _, _ = run_job(make_request(endpoint.url + PATH, retries=0, redact_also=(other,)))

    kept = f"{outcome.error} {outcome.message} {outcome.data} {outcome.response_excerpt}"
    assert other not in kept and other.lower() not in kept.lower()
    assert "[REDACTED]" in kept


# -- retry or not ------------------------------------------------------------


def test_retries_503_then_succeeds(endpoint: EndpointServer) -> None:
    endpoint.program(PATH, Fault.status(503))

    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert outcome.attempts == 2
    assert outcome.http_status == 200
    first, second = reports
    assert (first.http_status, first.will_retry) == (503, True)
    assert first.error == "HTTP 503 Service Unavailable"
    assert 0 < first.wait <= 0.05
    assert (second.http_status, second.will_retry, second.error) == (200, False, None)


def test_5xx_every_time_fails_after_all_attempts(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.status(503, {"success": False, "error": "db down"}))

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 3
    assert outcome.http_status == 503
    # cronhost's reason is the error; the endpoint's words are the message.
    assert outcome.error == "HTTP 503 Service Unavailable after 3 attempts"
    assert outcome.message == "db down"
    assert len(endpoint.requests(PATH)) == 3


@pytest.mark.parametrize(("code", "reason"), [(401, "Unauthorized"), (404, "Not Found")])
def test_does_not_retry_other_4xx(endpoint: EndpointServer, code: int, reason: str) -> None:
    endpoint.set_default(PATH, Fault.status(code))

    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.http_status == code
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {code} {reason}")
    assert [r.will_retry for r in reports] == [False]
    assert len(endpoint.requests(PATH)) == 1


def test_redirect_is_not_followed_and_fails_naming_the_location(endpoint: EndpointServer) -> None:
    endpoint.set_default(
        PATH, Fault.status(308, b"", headers={"Location": "https://leadmap.example/new"})
    )

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 308 Permanent Redirect")
    assert "https://leadmap.example/new" in outcome.error


def test_success_false_is_failed_with_the_endpoints_message(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.success_false("no leads source configured"))

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1  # the endpoint ran and said no: not ours to retry
    assert outcome.http_status == 200
    assert outcome.error == 'the endpoint answered "success": false'
    assert outcome.message == "no leads source configured"


def test_429_waits_as_long_as_retry_after_says(endpoint: EndpointServer) -> None:
    endpoint.program(PATH, Fault.rate_limited(1))

    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert outcome.attempts == 2
    assert reports[0].wait == 1.0
    first, second = endpoint.requests(PATH)
    assert 0.95 <= second.received_at - first.received_at < 1.5


def test_429_with_retry_after_past_the_deadline_fails_at_once(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.rate_limited(120))

    outcome, reports, elapsed = run_job(make_request(endpoint.url + PATH, deadline=30))

    assert elapsed < 1.0
    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.http_status == 429
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 429 Too Many Requests")
    assert outcome.error.endswith("Retry-After 120 s is past the 30 s deadline")
    assert [r.will_retry for r in reports] == [False]


def test_waits_go_through_the_injected_sleep(endpoint: EndpointServer) -> None:
    endpoint.program(PATH, Fault.rate_limited(120), Fault.status(500))
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    request = make_request(endpoint.url + PATH, deadline=300, backoff_initial=2, backoff_max=3)
    outcome, _, elapsed = run_job(request, sleep=fake_sleep)

    assert outcome.status is RunStatus.OK
    assert outcome.attempts == 3
    assert slept[0] == 120.0
    assert 2.0 <= slept[1] <= 3.0  # backoff 2 * 2**(n-1) plus jitter, capped at backoff_max
    assert elapsed < 1.0


def test_retry_after_is_read_as_seconds_or_http_date() -> None:
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Fri, 01 Mar 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Fri, 01 Mar 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


# -- time: timeouts and the deadline ------------------------------------------


def test_hang_past_the_timeout_is_timeout(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.hang(10))

    outcome, reports, elapsed = run_job(make_request(endpoint.url + PATH, timeout=0.3, retries=1))

    assert outcome.status is RunStatus.TIMEOUT
    assert outcome.attempts == 2
    assert outcome.http_status is None
    assert outcome.error == "timed out after 0.3 s (attempt 2 of 2)"
    assert [r.will_retry for r in reports] == [True, False]
    assert elapsed < 1.5


def test_deadline_bounds_the_total_time_of_all_attempts(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.hang(10))
    request = make_request(endpoint.url + PATH, timeout=0.4, deadline=1.0, retries=10)

    outcome, _, elapsed = run_job(request)

    assert elapsed < 1.25
    assert outcome.status is RunStatus.TIMEOUT
    assert 2 <= outcome.attempts < 11
    assert outcome.error is not None
    assert outcome.error.startswith("timed out after")
    assert "1 s deadline" in outcome.error


def run_job_frozen_while_in_flight(
    endpoint: EndpointServer, request: HttpRequest, freeze: float
) -> Outcome:
    """Run one slot and stop the whole event loop for ``freeze`` s once the request is out.

    A synchronous sleep on the loop's thread is what SIGSTOP looks like from inside:
    no callback runs, while the endpoint goes on answering into the socket.
    """

    async def main() -> Outcome:
        async with HttpJobRunner(user_agent=USER_AGENT) as runner:
            run = asyncio.create_task(runner.run(request))
            while not endpoint.requests(PATH):
                await asyncio.sleep(0.01)
            time.sleep(freeze)  # noqa: ASYNC251  (the point: nothing runs on the loop)
            return await run

    return asyncio.run(main())


def test_a_reply_that_arrived_while_the_process_was_frozen_is_recorded_as_that_reply(
    endpoint: EndpointServer,
) -> None:
    # The 200 comes 0.3 s after the request, while the loop is stopped.
    endpoint.set_default(PATH, dataclasses.replace(Fault.ok({"message": "synced"}), delay=0.3))
    request = make_request(endpoint.url + PATH, timeout=1.0, retries=0)

    # Frozen for longer than the timeout: the overdue timer and the 200 are ready at once.
    outcome = run_job_frozen_while_in_flight(endpoint, request, freeze=2.5)

    assert outcome.status is RunStatus.OK, outcome.error
    assert outcome.http_status == 200
    assert outcome.message == "synced"
    assert len(endpoint.requests(PATH)) == 1


def test_a_hang_is_still_a_timeout_when_the_process_was_frozen_meanwhile(
    endpoint: EndpointServer,
) -> None:
    endpoint.set_default(PATH, Fault.hang(30))
    request = make_request(endpoint.url + PATH, timeout=1.0, retries=0)

    outcome = run_job_frozen_while_in_flight(endpoint, request, freeze=2.5)

    assert outcome.status is RunStatus.TIMEOUT
    assert outcome.error == "timed out after 1.0 s (attempt 1 of 1)"


# -- the network --------------------------------------------------------------


def test_connection_reset_is_retried_then_fails(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.reset())

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 3
    assert outcome.http_status is None
    assert outcome.error is not None and "reset" in outcome.error
    assert len(endpoint.requests(PATH)) == 3


def test_connection_refused_fails_with_a_clear_error() -> None:
    outcome, _, _ = run_job(make_request(closed_port_url(), retries=1))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 2
    assert outcome.http_status is None
    assert outcome.error is not None
    assert outcome.error.startswith("connection refused by 127.0.0.1:")


def test_dns_failure_names_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # The one patch at the edge: a lookup that fails, without asking this machine's
    # resolver (a real lookup would leave the machine).
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    outcome, _, _ = run_job(make_request("http://no-such-host.invalid/api/cron/x", retries=0))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.error == "DNS lookup failed for host no-such-host.invalid"


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[str]:
    """An HTTPS listener with a self-signed certificate (which no client should trust)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    with context.wrap_socket(conn, server_side=True):
                        pass
                except (ssl.SSLError, OSError):
                    pass  # the client refusing our certificate is the point

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}{PATH}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_tls_certificate_error_is_permanent(tls_endpoint: str) -> None:
    outcome, _, _ = run_job(make_request(tls_endpoint))

    assert outcome.status is RunStatus.FAILED
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.startswith("TLS certificate verify failed for host 127.0.0.1")


# -- bodies --------------------------------------------------------------------


def test_bad_json_on_200_is_ok_with_the_excerpt(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.bad_json())

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert outcome.message is None and outcome.data is None
    assert outcome.response_excerpt == '{"success": true, "message": "cut off'


def test_non_utf8_body_does_not_crash(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.non_utf8())

    outcome, _, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert outcome.response_excerpt is not None
    assert "\ufffd" in outcome.response_excerpt and outcome.response_excerpt.endswith("done")


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, counter: CountingTransport) -> None:
        self._inner, self._counter = inner, counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._counter.bytes_read += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport, counting the body bytes the client pulls off the network."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.bytes_read = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountingStream(response.stream, self)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_huge_body_is_read_only_up_to_max_response_bytes(endpoint: EndpointServer) -> None:
    body_size = 64 * 1024 * 1024
    endpoint.set_default(PATH, Fault.huge(body_size))
    transport = CountingTransport()
    request = make_request(endpoint.url + PATH, max_response_bytes=100_000, excerpt_bytes=500)

    tracemalloc.start()
    try:
        outcome, _, _ = run_job(request, transport=transport)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert outcome.status is RunStatus.OK
    assert outcome.response_excerpt is not None and len(outcome.response_excerpt) == 500
    # At most one network read past the cap, never the 64 MB.
    assert transport.bytes_read <= 100_000 + 64 * 1024
    assert peak < 8 * 1024 * 1024
    endpoint.wait_idle()
    assert endpoint.bytes_sent(PATH) < body_size  # the server was cut off mid-body


# -- secrets -------------------------------------------------------------------


def test_secret_never_appears_in_the_outcome_when_the_endpoint_echoes_it(
    endpoint: EndpointServer,
) -> None:
    endpoint.set_default(PATH, Fault.echo_secret())

    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.OK
    assert SECRET not in repr(outcome) and SECRET not in repr(reports)
    assert outcome.message == "you sent Bearer [REDACTED]"
    assert outcome.data == {"authorization": "Bearer [REDACTED]"}
    assert outcome.response_excerpt is not None and "[REDACTED]" in outcome.response_excerpt


def test_secret_never_appears_in_error_messages(endpoint: EndpointServer) -> None:
    echo = {"success": False, "error": f"token {SECRET} expired", "data": [SECRET]}
    endpoint.set_default(PATH, Fault.status(500, echo))

    outcome, reports, _ = run_job(make_request(endpoint.url + PATH))

    assert outcome.status is RunStatus.FAILED
    assert SECRET not in repr(outcome) and SECRET not in repr(reports)
    assert outcome.error == "HTTP 500 Internal Server Error after 3 attempts"
    assert outcome.message == "token [REDACTED] expired"
    assert SECRET not in repr(make_request(endpoint.url))  # nor in the request's repr


def test_redact_hides_secrets_in_any_form_and_any_bearer_token() -> None:
    text = f'a {SECRET} b "{SECRET}" Bearer other.token-value= c abc'
    assert redact(text, [SECRET, "abc", ""]) == (
        'a [REDACTED] b "[REDACTED]" Bearer [REDACTED] c abc'
    )
    assert redact('{"t": "ab/cd\\"ef"}', ['ab/cd"ef']) == '{"t": "[REDACTED]"}'


# -- the runner ------------------------------------------------------------------


def test_semaphore_caps_requests_in_flight(endpoint: EndpointServer) -> None:
    endpoint.set_default(PATH, Fault.slow(0.2))

    async def main() -> list[Outcome]:
        async with HttpJobRunner(user_agent=USER_AGENT, max_in_flight=2) as runner:
            requests = [make_request(endpoint.url + PATH, job_id=f"job{i}") for i in range(5)]
            return await asyncio.gather(*(runner.run(request) for request in requests))

    outcomes = asyncio.run(main())

    assert [o.status for o in outcomes] == [RunStatus.OK] * 5
    assert len(endpoint.requests(PATH)) == 5
    assert endpoint.max_concurrent == 2


def test_an_unexpected_error_becomes_a_failed_outcome() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")

    outcome, _, _ = run_job(
        make_request("http://127.0.0.1/x"), transport=httpx.MockTransport(explode)
    )

    assert outcome.status is RunStatus.FAILED
    assert outcome.error == "RuntimeError: transport bug"


def test_a_broken_on_attempt_callback_does_not_fail_the_run(endpoint: EndpointServer) -> None:
    def broken(report: AttemptRecord) -> None:
        raise RuntimeError("log sink down")

    async def main() -> Outcome:
        async with HttpJobRunner(user_agent=USER_AGENT) as runner:
            return await runner.run(make_request(endpoint.url + PATH), broken)

    assert asyncio.run(main()).status is RunStatus.OK
