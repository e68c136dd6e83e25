"""Does pruning a million history rows stall firing? Measured, not assumed.

    .venv/bin/python benchmarks/prune.py [--runs 1000000]

Fills a SQLite store (WAL, as the daemon leaves it) with --runs finished runs older
than the retention window, then runs Store.prune in a worker thread (as the built-in
cronhost-prune-history job does) while the main thread claims a new slot every 100 ms
(what the daemon does on its event loop when a job fires). Prints how long pruning
took and how long each claim waited: pruning deletes in batches of 5,000 rows, each
its own short transaction, so a claim waits at most for one batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scheduler.store import Store  # noqa: E402
from scheduler.store.schema import runs  # noqa: E402

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def fill(store: Store, total: int) -> None:
    start = NOW - timedelta(days=200)
    batch = []
    with store.engine.begin() as conn:
        for i in range(total):
            slot = start + timedelta(seconds=i)
            batch.append({
                "job_id": f"job-{i % 14:02d}", "trigger": "schedule", "scheduled_at": slot,
                "status": "ok", "attempts": 1, "http_status": 200, "started_at": slot,
                "finished_at": slot, "duration_ms": 40, "lateness_ms": 3,
                "idempotency_key": f"job@{i}", "slot_count": 1,
            })
            if len(batch) == 50_000:
                conn.execute(runs.insert(), batch)
                batch.clear()
        if batch:
            conn.execute(runs.insert(), batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'cronhost.db'}")
        store.migrate()
        started = time.perf_counter()
        fill(store, args.runs)
        print(f"filled {args.runs:,} runs in {time.perf_counter() - started:.1f} s")

        result: dict[str, float] = {}

        def prune() -> None:
            began = time.perf_counter()
            result["deleted"] = store.prune(NOW - timedelta(days=90))
            result["seconds"] = time.perf_counter() - began

        worker = threading.Thread(target=prune)
        worker.start()
        waits = []
        slot = NOW
        while worker.is_alive():
            slot += timedelta(seconds=1)
            began = time.perf_counter()
            store.claim(job_id="tick", trigger="schedule", scheduled_at=slot,
                        idempotency_key=f"tick@{slot.isoformat()}", daemon_id="bench",
                        started_at=slot)
            waits.append((time.perf_counter() - began) * 1000)
            time.sleep(0.1)
        worker.join()
        store.dispose()
    print(f"pruned {int(result['deleted']):,} runs in {result['seconds']:.1f} s")
    print(f"{len(waits)} claims meanwhile: median {statistics.median(waits):.1f} ms, "
          f"max {max(waits):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
