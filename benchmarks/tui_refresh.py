"""How long one dashboard refresh spends reading a store with a million runs.

    .venv/bin/python benchmarks/tui_refresh.py [--runs 1000000] [--keep PATH]

Fills a fresh SQLite store (WAL, as the daemon leaves it) with ``--runs`` rows over
the jobs of config.toml (LeadMap's 14, plus any built-in job config adds) in two
shapes, then times the reads of one refresh (`tui.data.fetch_snapshot`) piece by
piece:

- "leadmap": each job at its real schedule, so a million rows are ~5 months of
  history and the last 24 h hold ~6,500 slots (what a real store looks like);
- "dense": every job every 10 s, so the last 24 h hold ~120,000 slots (the worst
  case for the 24 h aggregates, which must read every slot in the window).

It prints the query plans of the reads that touch `runs`, so an index that stops
being used shows up here before it shows up as a slow dashboard.

Measured on the 2-CPU dev VM (median of 20, ms): leadmap 18.8, dense 69.8 (a single
grouped query over the window instead of one per job, read twice, cost 107 / 218).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.config import load_config  # noqa: E402
from scheduler.daemon.control import job_state_rows  # noqa: E402
from scheduler.schedule import next_fire_times  # noqa: E402
from scheduler.store import Store  # noqa: E402
from scheduler.store.schema import APSCHEDULER_TABLE, runs  # noqa: E402
from scheduler.views import job_statuses  # noqa: E402
from tui.data import TREND_LENGTH, fetch_snapshot  # noqa: E402

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
CHUNK = 50_000
# (status, weight): mostly fine, as a healthy deployment is.
STATUSES = [("ok", 970), ("failed", 15), ("timeout", 5), ("missed", 5), ("skipped", 3),
            ("abandoned", 2)]


def job_periods(shape: str) -> dict[str, float]:
    """Seconds between two slots of each job."""
    config = load_config(ROOT / "config.toml", resolve_secrets=False)
    if shape == "dense":
        return {spec.id: 10.0 for spec in config.jobs}
    periods: dict[str, float] = {}
    for spec in config.jobs:
        first, second = next_fire_times(spec.timetable(), 2, NOW)
        periods[spec.id] = (second - first).total_seconds()
    return periods


def run_rows(periods: dict[str, float], total: int, seed: int = 4) -> Iterator[dict[str, Any]]:
    """``total`` rows, each job's share in proportion to how often it fires, ending at NOW."""
    rng = random.Random(seed)
    rate = {job: 1 / period for job, period in periods.items()}
    per_second = sum(rate.values())
    statuses, weights = zip(*STATUSES, strict=True)
    left = total
    for index, (job, job_rate) in enumerate(sorted(rate.items())):
        count = left if index == len(rate) - 1 else int(total * job_rate / per_second)
        left -= count
        period = timedelta(seconds=periods[job])
        for n in range(count, 0, -1):
            slot = NOW - n * period
            status = rng.choices(statuses, weights)[0]
            ran = status in ("ok", "failed", "timeout")
            late = rng.randint(1, 40)
            took = rng.randint(80, 900) if ran else None
            started = slot + timedelta(milliseconds=late) if status != "missed" else None
            yield {
                "job_id": job, "trigger": "schedule", "scheduled_at": slot, "status": status,
                "attempts": 1 if ran else 0, "http_status": (200 if status == "ok" else 503)
                if ran else None,
                "started_at": started,
                "finished_at": started + timedelta(milliseconds=took) if started and took else None,
                "duration_ms": took, "lateness_ms": late if started else None,
                "error": None if status == "ok" else f"{status}: synthetic",
                "message": "done" if status == "ok" else None,
                "idempotency_key": f"{job}@{slot.isoformat()}", "daemon_id": "bench",
                "slot_count": 1,
            }


def fill(store: Store, shape: str, total: int) -> float:
    started = time.perf_counter()
    store.migrate()
    config = load_config(ROOT / "config.toml", resolve_secrets=False)
    store.sync_jobs(job_state_rows(config.jobs))
    store.register_daemon("bench", str(ROOT / "config.toml"), "bench")
    with store.engine.begin() as conn:
        # The columns of APScheduler's job table the store reads (next fire times).
        conn.execute(text(f"CREATE TABLE {APSCHEDULER_TABLE} (id VARCHAR(191) PRIMARY KEY, "
                          "next_run_time FLOAT, job_state BLOB NOT NULL)"))
        for spec in config.jobs:
            conn.execute(text(f"INSERT INTO {APSCHEDULER_TABLE} VALUES (:id, :t, x'00')"),
                         {"id": spec.id, "t": NOW.timestamp() + 30})
    batch: list[dict[str, Any]] = []
    with store.engine.begin() as conn:
        for row in run_rows(job_periods(shape), total):
            batch.append(row)
            if len(batch) == CHUNK:
                conn.execute(runs.insert(), batch)
                batch = []
        if batch:
            conn.execute(runs.insert(), batch)
    with store.engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return time.perf_counter() - started


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(first call, median, max) in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples[0], statistics.median(samples[1:] or samples), max(samples)


def plans(store: Store, job: str) -> list[tuple[str, str]]:
    since = (NOW - timedelta(hours=24)).replace(tzinfo=None).isoformat(sep=" ")
    queries = {
        "latest/history (per job)": "SELECT * FROM runs WHERE job_id = :job "
                                    "ORDER BY scheduled_at DESC, id DESC LIMIT 50",
        "counts_since 24h (per job)": "SELECT status, sum(slot_count) FROM runs "
                                      "WHERE job_id = :job AND scheduled_at >= :since "
                                      "GROUP BY status",
        "trend (per job)": "SELECT duration_ms FROM runs WHERE job_id = :job AND status IN "
                           "('ok','failed','timeout') AND duration_ms IS NOT NULL "
                           "ORDER BY scheduled_at DESC LIMIT 20",
    }
    found = []
    with store.engine.connect() as conn:
        for name, sql in queries.items():
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql), {"job": job, "since": since})
            found.append((name, "; ".join(str(row[3]) for row in rows)))
    return found


def bench(shape: str, total: int, repeat: int, keep: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / f"{shape}.db"
        if path.exists():
            path.unlink()
        url = f"sqlite:///{path}"
        filler = Store(url)
        seconds = fill(filler, shape, total)
        filler.dispose()
        size_mb = path.stat().st_size / 1e6
        store = Store(url)  # a fresh engine: the first refresh pays for opening the file
        ids = [job.job_id for job in store.jobs()]
        busiest = max(ids, key=lambda job: store.counts_since(NOW - timedelta(hours=24))
                      .get(job, {}).get("ok", 0))
        day = sum(sum(v.values()) for v in store.counts_since(NOW - timedelta(hours=24)).values())
        print(f"\n== {shape}: {total:,} runs, {len(ids)} jobs, {day:,} slots in the last 24 h; "
              f"filled in {seconds:.1f} s, {size_mb:.0f} MB")
        print(f"{'read':44} {'first':>8} {'median':>8} {'max':>8}  (ms, {repeat} calls)")
        parts: list[tuple[str, Callable[[], object]]] = [
            ("full refresh (fetch_snapshot)",
             lambda: fetch_snapshot(store, now=NOW, config_path="config.toml",
                                    selected_job=busiest, watched=[1, 2])),
            ("  job_statuses (jobs+latest+counts 24h)", lambda: job_statuses(store, None, NOW)),
            (f"  history of {busiest} (50 rows)", lambda: store.history(busiest, limit=50)),
            ("  summary: counts_since 1 h",
             lambda: store.counts_since(NOW - timedelta(hours=1))),
            ("  summary: counts_since 24 h",
             lambda: store.counts_since(NOW - timedelta(hours=24))),
            (f"  trends ({TREND_LENGTH} durations x {len(ids)} jobs)",
             lambda: store.recent_durations(ids, TREND_LENGTH)),
            ("  daemon + pending commands",
             lambda: (store.latest_daemon(), store.pending_commands())),
        ]
        for name, fn in parts:
            first, median, worst = timed(fn, repeat)
            print(f"{name:44} {first:8.1f} {median:8.1f} {worst:8.1f}")
        for name, plan in plans(store, busiest):
            print(f"plan {name}: {plan}")
        store.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--shape", choices=("leadmap", "dense", "both"), default="both")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the store here instead of a temporary file (one shape)")
    args = parser.parse_args()
    for shape in ("leadmap", "dense") if args.shape == "both" else (args.shape,):
        bench(shape, args.runs, args.repeat, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
