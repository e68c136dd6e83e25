"""Soak: kill and restart the daemon at random moments, then account for every slot.

    .venv/bin/python benchmarks/soak.py --minutes 10

Runs a real daemon subprocess (SQLite store in a temp dir) against a loopback
endpoint, with three jobs (HTTP every 1 s, HTTP every 2 s answering slowly, Python
every 3 s). Each cycle lets the daemon run 1-15 s, stops it with SIGKILL (60 %) or
SIGTERM, and leaves it down 0-6 s (misfire_grace is 3 s, so both catch-up runs and
missed slots happen). Then it prints, per job and in total:

    slots due        grid slots from the first recorded slot to the last
    run once         slots with one ok/failed/timeout/skipped row
    missed/abandoned slots recorded as not run, or cut short by a kill
    duplicates       slots with two rows, plus idempotency keys the endpoint saw twice (must be 0)
    lost             slots due without any row (must be 0)

Exit status 1 if duplicates or lost are not 0.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scheduler.store import Store  # noqa: E402
from tests.daemon_harness import DaemonProcess, write_config  # noqa: E402
from tests.endpoint_server import EndpointServer, Fault  # noqa: E402

JOBS = {"tick": 1, "tock": 2, "py": 3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="cronhost-soak-"))
    print(f"soak: {args.minutes:g} min, seed {seed}, workdir {workdir}", flush=True)

    with EndpointServer() as endpoint:
        endpoint.set_default("/tock", Fault.slow(0.3))
        config = write_config(workdir, """
[[jobs]]
id = "tick"
path = "/tick"
every = "1s"
misfire_grace = "3s"

[[jobs]]
id = "tock"
path = "/tock"
every = "2s"
misfire_grace = "3s"

[[jobs]]
id = "py"
call = "jobs.builtin:noop"
every = "3s"
misfire_grace = "3s"
""", base_url=endpoint.url)
        deadline = time.monotonic() + args.minutes * 60
        cycles = Counter[str]()
        while time.monotonic() < deadline:
            daemon = DaemonProcess(config, workdir / "daemon.log")
            daemon.wait_started()
            time.sleep(rng.uniform(1, 15))
            if rng.random() < 0.6:
                daemon.kill()
                cycles["SIGKILL"] += 1
            else:
                daemon.stop()
                cycles["SIGTERM"] += 1
            time.sleep(rng.uniform(0, 6))
        # One clean run at the end records what the last outage missed and any abandoned run.
        daemon = DaemonProcess(config, workdir / "daemon.log")
        daemon.wait_started()
        time.sleep(4)
        daemon.stop()
        keys = Counter(r.headers["idempotency-key"] for r in endpoint.requests())

    store = Store(f"sqlite:///{workdir / 'cronhost.db'}")
    print(f"cycles: {dict(cycles)}")
    print(f"{'job':<6}{'due':>7}{'run once':>10}{'missed':>8}{'abandoned':>10}{'dupl.':>7}{'lost':>6}")
    totals = Counter[str]()
    for job_id, step in JOBS.items():
        rows = [r for r in store.runs_for_slots(job_id, datetime(2000, 1, 1, tzinfo=UTC),
                                                datetime(2100, 1, 1, tzinfo=UTC)) if r.trigger == "schedule"]
        slots = Counter(r.scheduled_at for r in rows)
        first, last = min(slots), max(slots)
        due = int((last - first) / timedelta(seconds=step)) + 1
        status = Counter[str]()
        for row in rows:
            status[row.status] += row.slot_count
        duplicates = sum(n - 1 for n in slots.values() if n > 1)
        duplicates += sum(n - 1 for key, n in keys.items() if key.startswith(f"{job_id}@") and n > 1)
        covered = sum(row.slot_count for row in rows)
        lost = due - covered
        figures = {
            "due": due,
            "run once": status["ok"] + status["failed"] + status["timeout"] + status["skipped"],
            "missed": status["missed"],
            "abandoned": status["abandoned"],
            "duplicates": duplicates,
            "lost": lost,
            "running": status["running"],
        }
        totals.update(figures)
        print(f"{job_id:<6}{figures['due']:>7}{figures['run once']:>10}{figures['missed']:>8}"
              f"{figures['abandoned']:>10}{figures['duplicates']:>7}{figures['lost']:>6}")
    print(f"{'all':<6}{totals['due']:>7}{totals['run once']:>10}{totals['missed']:>8}"
          f"{totals['abandoned']:>10}{totals['duplicates']:>7}{totals['lost']:>6}")
    store.dispose()
    if totals["running"]:
        print(f"rows still running after the final clean stop: {totals['running']}")
    ok = totals["duplicates"] == 0 and totals["lost"] == 0 and totals["running"] == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
