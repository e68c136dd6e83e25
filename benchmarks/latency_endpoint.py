"""A loopback cron endpoint for benchmarks: answers every request after 20-80 ms.

    python benchmarks/latency_endpoint.py --out requests.tsv [--min-ms 20 --max-ms 80]

Runs in its own process (so its CPU is neither the daemon's nor the benchmark's) on
one asyncio event loop with a minimal HTTP/1.1 keep-alive parser: thousands of
requests can be in flight at once, each only a sleep. It binds 127.0.0.1 on an
ephemeral port (or --port) and prints ``listening 127.0.0.1 PORT`` when it accepts.

Every request is answered ``200 {"success": true}`` after a uniformly random delay and
recorded as (receive wall-clock time, Idempotency-Key, method, path), the receive time
taken as soon as the request's header block has been read. On SIGTERM or SIGINT (or
when its parent dies, or after --max-seconds) it stops, writes the records to --out
as tab-separated lines after one JSON summary line, and exits 0.

Only the standard library: the benchmark must not depend on what the venv happens to hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

MAX_HEAD_BYTES = 64 * 1024
BODY = b'{"success": true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
RESPONSE_CLOSE = RESPONSE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
RESPONSE_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Endpoint:
    def __init__(self, min_s: float, max_s: float, seed: int | None) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.rng = random.Random(seed)
        # (receive wall time, idempotency key, method, path)
        self.records: list[tuple[float, str, str, str]] = []
        self.connections = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bad_requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.max_open_connections = max(self.max_open_connections, self.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                received = time.time()
                if not await self._one_request(head, received, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.open_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(self, head: bytes, received: float, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must be closed."""
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            self.bad_requests += 1
            writer.write(RESPONSE_BAD)
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while True:
                size = int(((await reader.readline()).split(b";")[0].strip() or b"0"), 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                await reader.readexactly(size + 2)
        else:
            length = int(headers.get(b"content-length", b"0") or b"0")
            if length:
                await reader.readexactly(length)
        path = target.split(b"?", 1)[0].decode("latin-1")
        key = headers.get(b"idempotency-key", b"").decode("latin-1")
        self.records.append((received, key, method.decode("latin-1"), path))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.rng.uniform(self.min_s, self.max_s))
        finally:
            self.in_flight -= 1
        close = (headers.get(b"connection", b"").lower() == b"close"
                 or version.strip() == b"HTTP/1.0")
        writer.write(RESPONSE_CLOSE if close else RESPONSE)
        await writer.drain()
        return not close

    def write(self, out: Path, started: float) -> None:
        summary = {
            "started": started, "stopped": time.time(), "requests": len(self.records),
            "connections": self.connections, "max_open_connections": self.max_open_connections,
            "max_in_flight": self.max_in_flight, "bad_requests": self.bad_requests,
            "pid": os.getpid(),
        }
        tmp = out.with_suffix(out.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as file:
            file.write(json.dumps(summary) + "\n")
            for received, key, method, path in self.records:
                file.write(f"{received:.6f}\t{key}\t{method}\t{path}\n")
        tmp.replace(out)


async def serve(args: argparse.Namespace) -> None:
    endpoint = Endpoint(args.min_ms / 1000, args.max_ms / 1000, args.seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        endpoint.handle, "127.0.0.1", args.port, backlog=4096, limit=MAX_HEAD_BYTES,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    started = time.time()
    print(f"listening 127.0.0.1 {port}", flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + args.max_seconds
    # Bounded: stops on a signal, when the parent is gone, or at --max-seconds.
    while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    server.close()
    endpoint.write(Path(args.out), started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the records at exit")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--min-ms", type=float, default=20.0)
    parser.add_argument("--max-ms", type=float, default=80.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    if not 0 <= args.min_ms <= args.max_ms:
        parser.error("need 0 <= --min-ms <= --max-ms")
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
