"""A real HTTP server on 127.0.0.1 standing in for LeadMap's cron endpoints.

It listens on an ephemeral port in a background thread (one daemon thread per
connection, HTTP/1.1 keep-alive), records every request, and answers each path
with a programmable fault. Any method and any path is accepted.

In a test (the ``endpoint`` fixture is re-exported by ``tests/conftest.py``)::

    def test_retries_503(endpoint: EndpointServer) -> None:
        endpoint.program("/api/cron/x", Fault.status(503), Fault.ok())
        url = endpoint.url + "/api/cron/x"          # "http://127.0.0.1:PORT/api/cron/x"
        ...                                          # call it twice
        first, second = endpoint.requests("/api/cron/x")
        assert first.headers["authorization"] == "Bearer s3cret"   # case-insensitive

Outside pytest (e.g. to point a daemon subprocess at it)::

    with EndpointServer() as server:
        server.set_default("/api/cron/x", Fault.status(500))
        ...

Answers:
    - ``program(path, *faults)`` queues faults for ``path``, consumed one per request.
    - When the queue is empty the path's default applies: ``set_default(path, fault)``,
      else ``Fault.ok()``: 200 ``{"success": true, "message": "ok",
      "data": {"path": ..., "count": <requests to this path so far>}, "duration": "1ms"}``.

Faults (all class-method constructors of :class:`Fault`):
    ok(json=None)                    200 with the given JSON (or the default body)
    status(code, body=None, headers=None)
                                     any status; body str/bytes/JSON-able; default
                                     ``{"success": false, "error": "<reason>"}``
    rate_limited(retry_after)        429 with ``Retry-After`` (seconds or an HTTP-date)
    hang(seconds)                    wait, then answer 200 (a client with a shorter
                                     timeout gives up first); close() cuts it short
    slow(seconds)                    the same, named for "slower but fine" (overlap tests)
    held(limit=120)                  hold each request until ``fault.release()`` (or
                                     ``limit`` s), then answer 200: the test decides when
                                     a run ends; close() cuts it short
    reset()                          read the request, then close with SO_LINGER 0:
                                     the client sees ECONNRESET, no response
    success_false(message)           200 ``{"success": false, "message": message}``
    bad_json()                       200, application/json, a body that is not JSON
    huge(nbytes)                     200 streaming ``nbytes`` bytes; see ``bytes_sent(path)``
    non_utf8()                       200 text/plain with bytes that are not UTF-8
    echo_secret(how="json", code=200)
                                     repeat the request's Authorization header back:
                                     "json" in message and data (and error, for a code
                                     >= 400); "php" the same with ``\\/`` escaping;
                                     "lower" lower-cased; "base64" base64-encoded
                                     (so ``base64("Bearer " + secret)``); "html" a
                                     text/html page, HTML-escaped; "entities" a page
                                     with every character a ``&#x..;`` reference

Looking at what arrived:
    requests(path=None) -> list[RecordedRequest]   (method, path, query, headers,
                                                    body, received_at, received_wall)
    wait_for_requests(path, count, timeout=5.0)    blocks until ``count`` arrived
                                                   (AssertionError after timeout)
    max_concurrent    most requests being worked on at once (receipt to first
                      response byte), since start or reset()
    bytes_sent(path)  body bytes actually written for ``path`` (huge bodies)
    wait_idle(timeout=5.0)  blocks until no request is being handled
    reset()           forget requests, queues, defaults and counters
    close()           stop; hung handlers are woken and dropped, never waited for
"""

from __future__ import annotations

import base64
import contextlib
import html
import json as jsonlib
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest

_CHUNK = 64 * 1024


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup; repeated names are joined with ", "."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in items:
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
            self._items[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: Headers
    body: bytes
    received_at: float  # time.monotonic()
    received_wall: float  # time.time()

    def json(self) -> Any:
        return jsonlib.loads(self.body)


def _json_bytes(value: Any) -> bytes:
    return jsonlib.dumps(value).encode()


@dataclass(frozen=True)
class Fault:
    """How the server answers one request. Build with the class methods, not directly."""

    kind: str = "reply"  # "reply", "reset" or "huge"
    code: int = 200  # the HTTP status
    # None means the default OK body, made per request.
    body: bytes | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    nbytes: int = 0
    # How to echo the Authorization header back; "" for no echo.
    echo_auth: str = ""
    # Fault.held: requests wait for this event (at most ``delay`` s) before the answer.
    gate: threading.Event | None = None

    @classmethod
    def ok(cls, json: Any = None) -> Fault:
        return cls(body=None if json is None else _json_bytes(json))

    @classmethod
    def status(
        cls,
        code: int,
        body: str | bytes | Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        content_type = "application/json"
        if body is None:
            reason = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ""
            raw = _json_bytes({"success": False, "error": reason or f"status {code}"})
        elif isinstance(body, bytes):
            raw, content_type = body, "application/octet-stream"
        elif isinstance(body, str):
            raw, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            raw = _json_bytes(body)
        return cls(
            code=code,
            body=raw,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def rate_limited(cls, retry_after: str | int) -> Fault:
        return cls.status(
            429,
            {"success": False, "error": "rate limited"},
            headers={"Retry-After": str(retry_after)},
        )

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def held(cls, limit: float = 120.0) -> Fault:
        """Requests wait until :meth:`release` (or ``limit`` s), then get the default 200."""
        return cls(delay=limit, gate=threading.Event())

    def release(self) -> None:
        """Let every request held by this fault, now or later, have its answer."""
        assert self.gate is not None, "release() is for Fault.held()"
        self.gate.set()

    @classmethod
    def reset(cls) -> Fault:
        return cls(kind="reset")

    @classmethod
    def success_false(cls, message: str) -> Fault:
        return cls.ok({"success": False, "message": message})

    @classmethod
    def bad_json(cls) -> Fault:
        return cls(body=b'{"success": true, "message": "cut off')

    @classmethod
    def huge(cls, nbytes: int) -> Fault:
        return cls(kind="huge", nbytes=nbytes, content_type="text/plain")

    @classmethod
    def non_utf8(cls) -> Fault:
        return cls(body=b"caf\xe9 \xff\xfe\x80 done", content_type="text/plain")

    @classmethod
    def echo_secret(cls, how: str = "json", code: int = 200) -> Fault:
        if how not in _ECHOES:
            raise ValueError(f"echo_secret: how must be one of {sorted(_ECHOES)}, not {how!r}")
        content_type = (
            "text/html; charset=utf-8" if how in ("html", "entities") else "application/json"
        )
        return cls(code=code, echo_auth=how, content_type=content_type)


def _echo_json(code: int, value: str, dumps: Callable[[Any], bytes] = _json_bytes) -> bytes:
    reply: dict[str, Any] = {
        "success": code < 400,
        "message": f"you sent {value}",
        "data": {"authorization": value},
    }
    if code >= 400:
        reply["error"] = f"token {value} rejected"
    return dumps(reply)


def _echo_page(code: int, escaped: str) -> bytes:
    title = f"{code} {HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ''}"
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>Request header Authorization: <code>{escaped}</code></p>"
        "<p>Please try again later.</p></body></html>"
    ).encode()


def _echo_body(how: str, code: int, auth: str) -> bytes:
    if how == "php":  # PHP's json_encode escapes every "/" as "\/"
        return _echo_json(code, auth, lambda v: _json_bytes(v).replace(b"/", b"\\/"))
    if how == "lower":
        return _echo_json(code, auth.lower())
    if how == "base64":
        return _echo_json(code, base64.b64encode(auth.encode()).decode())
    if how == "html":
        return _echo_page(code, html.escape(auth))
    if how == "entities":
        return _echo_page(code, "".join(f"&#x{ord(c):x};" for c in auth))
    return _echo_json(code, auth)


_ECHOES = frozenset({"json", "php", "lower", "base64", "html", "entities"})


@dataclass
class _State:
    """Everything the handler threads share, guarded by ``cond``."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    closing: threading.Event = field(default_factory=threading.Event)
    queues: dict[str, deque[Fault]] = field(default_factory=dict)
    defaults: dict[str, Fault] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_concurrent: int = 0
    active: int = 0
    connections: set[socket.socket] = field(default_factory=set)
    gates: set[threading.Event] = field(default_factory=set)  # of Fault.held, in use


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent connects must not hit a tiny backlog
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, closed early) is what most faults are
        # for; only a real bug in the handler deserves a traceback.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test output is no place for an access log

    def setup(self) -> None:
        super().setup()
        with self.server.state.cond:
            self.server.state.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.state.cond:
                self.server.state.connections.discard(self.connection)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _take(self, path: str, record: RecordedRequest) -> tuple[Fault, int]:
        state = self.server.state
        with state.cond:
            state.requests.append(record)
            count = sum(1 for r in state.requests if r.path == path)
            queue = state.queues.get(path)
            fault = queue.popleft() if queue else state.defaults.get(path, Fault.ok())
            state.in_flight += 1
            state.active += 1
            state.max_concurrent = max(state.max_concurrent, state.in_flight)
            state.cond.notify_all()
        return fault, count

    def _answering(self) -> None:
        # Leave the in-flight count before the first response byte goes out: a
        # client may read it and send its next request before this thread runs
        # again, and that request must not be counted as overlapping this one.
        with self.server.state.cond:
            self.server.state.in_flight -= 1

    def _done(self) -> None:
        with self.server.state.cond:
            self.server.state.active -= 1
            self.server.state.cond.notify_all()

    def _handle(self) -> None:
        body = self._read_body()
        path, _, query = self.path.partition("?")
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=Headers(list(self.headers.items())),
            body=body,
            received_at=time.monotonic(),
            received_wall=time.time(),
        )
        fault, count = self._take(path, record)
        answered = False
        try:
            if fault.gate is not None:
                with self.server.state.cond:
                    self.server.state.gates.add(fault.gate)  # close() opens it
                fault.gate.wait(fault.delay)
                if self.server.state.closing.is_set():
                    self.close_connection = True
                    return
            elif fault.delay and self.server.state.closing.wait(fault.delay):
                self.close_connection = True  # shutting down: drop the request unanswered
                return
            self._answering()
            answered = True
            if fault.kind == "reset":
                self._reset()
            elif fault.kind == "huge":
                self._stream(path, fault.nbytes)
            else:
                self._reply(fault, record, path, count)
        finally:
            if not answered:
                self._answering()
            self._done()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST instead of FIN: the client's read
        # fails with "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _reply(self, fault: Fault, record: RecordedRequest, path: str, count: int) -> None:
        if fault.echo_auth:
            auth = record.headers.get("authorization", "")
            body = _echo_body(fault.echo_auth, fault.code, auth)
        elif fault.body is None:
            default = {
                "success": True,
                "message": "ok",
                "data": {"path": path, "count": count},
                "duration": "1ms",
            }
            body = _json_bytes(default)
        else:
            body = fault.body
        self.send_response(fault.code)
        self.send_header("Content-Type", fault.content_type)
        for name, value in fault.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, path: str, nbytes: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(nbytes))
        self.end_headers()
        chunk = b"0123456789abcdef" * (_CHUNK // 16)
        left = nbytes
        try:
            while left > 0:
                piece = chunk[: min(left, _CHUNK)]
                self.wfile.write(piece)
                left -= len(piece)
                with self.server.state.cond:
                    self.server.state.sent[path] = self.server.state.sent.get(path, 0) + len(piece)
        except OSError:
            self.close_connection = True  # the client stopped reading, as it should


class EndpointServer:
    """See the module docstring. Starts listening as soon as it is made."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State()
        self._state = self._server.state
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"endpoint-server-{self.url}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def program(self, path: str, *faults: Fault) -> None:
        with self._state.cond:
            self._state.queues.setdefault(path, deque()).extend(faults)

    def set_default(self, path: str, fault: Fault) -> None:
        with self._state.cond:
            self._state.defaults[path] = fault

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        with self._state.cond:
            return [r for r in self._state.requests if path is None or r.path == path]

    def wait_for_requests(
        self, path: str | None, count: int, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        def arrived() -> list[RecordedRequest]:
            return [r for r in self._state.requests if path is None or r.path == path]

        with self._state.cond:
            if not self._state.cond.wait_for(lambda: len(arrived()) >= count, timeout):
                raise AssertionError(
                    f"expected {count} requests to {path or 'any path'} within {timeout} s,"
                    f" got {len(arrived())}"
                )
            return arrived()

    @property
    def max_concurrent(self) -> int:
        with self._state.cond:
            return self._state.max_concurrent

    def bytes_sent(self, path: str) -> int:
        with self._state.cond:
            return self._state.sent.get(path, 0)

    def wait_idle(self, timeout: float = 5.0) -> None:
        with self._state.cond:
            if not self._state.cond.wait_for(lambda: self._state.active == 0, timeout):
                raise AssertionError(f"{self._state.active} requests still being handled")

    def reset(self) -> None:
        with self._state.cond:
            self._state.queues.clear()
            self._state.defaults.clear()
            self._state.requests.clear()
            self._state.sent.clear()
            self._state.max_concurrent = self._state.in_flight

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._state.closing.set()  # wakes hung handlers
        with self._state.cond:
            for gate in self._state.gates:
                gate.set()  # and held ones
        self._server.shutdown()
        self._server.server_close()
        # Handler threads blocked reading an idle keep-alive connection would
        # otherwise hold it open until the client hangs up.
        with self._state.cond:
            connections = list(self._state.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


@pytest.fixture
def endpoint() -> Iterator[EndpointServer]:
    """A started :class:`EndpointServer`, closed after the test."""
    server = EndpointServer()
    try:
        yield server
    finally:
        server.close()


__all__ = ["EndpointServer", "Fault", "Headers", "RecordedRequest", "endpoint"]
