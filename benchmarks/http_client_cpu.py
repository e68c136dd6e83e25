"""CPU per request of the HTTP stacks the daemon could send with: where the floor is.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/http_client_cpu.py [--requests 1000]

Issue 9 asks for at most 1.0 CPU-s per 1,000 fires for the whole daemon. This script
measures what the HTTP client alone costs, outside the daemon: N POSTs (the daemon's
headers) through `--places` connections at once against benchmarks/latency_endpoint.py
(started here in its own process, answering after 1-2 ms, so the figures are CPU, not
waiting), for each stack:

  httpx      one httpx.AsyncClient of one connection per place (what jobs/http.py does)
  httpcore   one httpcore.AsyncConnectionPool of one connection per place (httpx's layer
             below: no URL/header models, no event hooks)
  h11        h11 over asyncio streams (the HTTP/1.1 parser httpcore uses, nothing else)

Each is run in a fresh interpreter, warmed with one round, then measured over three;
CPU is this process's utime+stime (the endpoint's CPU is not counted). The machine and
its load average are printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
STACKS = ("httpx", "httpcore", "h11")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def headers(n: int) -> list[tuple[str, str]]:
    return [("Host", "127.0.0.1"), ("Authorization", "Bearer benchmark"),
            ("Idempotency-Key", f"bench@{n}"), ("X-Request-Id", uuid.uuid4().hex),
            ("User-Agent", "cronhost-benchmark"), ("Content-Length", "0")]


async def measure(stack: str, port: int, requests: int, places: int) -> list[float]:
    url = f"http://127.0.0.1:{port}/api/cron/bench"
    if stack == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [httpx.AsyncClient(limits=limits) for _ in range(places)]

        async def send(client: httpx.AsyncClient, n: int) -> int:
            reply = await client.post(url, headers=headers(n)[1:-1], content=b"")
            await reply.aread()
            return reply.status_code
        pool: list = clients
    elif stack == "httpcore":
        import httpcore

        pool = [httpcore.AsyncConnectionPool(max_connections=1) for _ in range(places)]

        async def send(connection: httpcore.AsyncConnectionPool, n: int) -> int:  # type: ignore[misc]
            reply = await connection.request(
                "POST", url, content=b"",
                headers=[(k.encode(), v.encode()) for k, v in headers(n)])
            return reply.status
    else:
        import h11

        class Connection:
            async def open(self) -> None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
                self.h11 = h11.Connection(h11.CLIENT)

            async def post(self, n: int) -> int:
                if self.h11.our_state is h11.DONE:
                    self.h11.start_next_cycle()
                self.writer.write(self.h11.send(h11.Request(
                    method="POST", target="/api/cron/bench", headers=headers(n)))
                    + self.h11.send(h11.EndOfMessage()))
                status = 0
                while True:
                    event = self.h11.next_event()
                    if event is h11.NEED_DATA:
                        self.h11.receive_data(await self.reader.read(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.EndOfMessage):
                        return status

        pool = [Connection() for _ in range(places)]
        for connection in pool:
            await connection.open()

        async def send(connection: Connection, n: int) -> int:  # type: ignore[misc]
            return await connection.post(n)

    free: asyncio.Queue = asyncio.Queue()
    for place in pool:
        free.put_nowait(place)

    async def one(n: int) -> int:
        place = await free.get()
        try:
            return await send(place, n)
        finally:
            free.put_nowait(place)

    figures = []
    for round_ in range(4):  # round 0 warms up (connections, imports)
        before = cpu_seconds()
        statuses = await asyncio.gather(*(one(n) for n in range(requests)))
        if set(statuses) != {200}:
            raise SystemExit(f"{stack}: the endpoint answered {sorted(set(statuses))}")
        if round_:
            figures.append(cpu_seconds() - before)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--places", type=int, default=100)
    parser.add_argument("--stack", choices=STACKS, help="(internal) measure one stack")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.stack:
        figures = asyncio.run(measure(args.stack, args.port, args.requests, args.places))
        per_1000 = [f"{figure * 1000 / args.requests:.2f}" for figure in figures]
        print(f"{args.stack:9} CPU-s per 1,000 requests: {' / '.join(per_1000)}")
        return
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = subprocess.Popen(
            [sys.executable, str(HERE / "latency_endpoint.py"), "--out", f"{tmp}/requests.tsv",
             "--min-ms", "1", "--max-ms", "2"], stdout=subprocess.PIPE, text=True)
        try:
            assert endpoint.stdout is not None
            port = int(endpoint.stdout.readline().split()[-1])
            for stack in STACKS:
                subprocess.run([sys.executable, __file__, "--stack", stack, "--port", str(port),
                                "--requests", str(args.requests),
                                "--places", str(args.places)], check=True)
        finally:
            endpoint.terminate()
            endpoint.wait(timeout=30)
    print(f"after: load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
