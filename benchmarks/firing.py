"""How late, how costly: the real daemon firing many HTTP jobs at a loopback endpoint.

    .venv/bin/python benchmarks/firing.py --jobs 14 --seconds 20
    .venv/bin/python benchmarks/firing.py --jobs 500 --seconds 20

Starts `cronhost run` as a subprocess with N jobs `every = "1s"` (all due on the same
second, the worst case for a burst), lets it run, stops it with SIGTERM and prints, from
the store: slots run, lateness (start minus slot) p50/p95/p99/max, runs that were
skipped or missed, and the daemon's CPU seconds per 1,000 runs and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scheduler.store import Store  # noqa: E402
from tests.daemon_harness import DaemonProcess, write_config  # noqa: E402
from tests.endpoint_server import EndpointServer  # noqa: E402


def percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=14)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cronhost-bench-"))
    with EndpointServer() as endpoint:
        jobs = "".join(
            f'\n[[jobs]]\nid = "job-{i:04d}"\npath = "/api/cron/job-{i:04d}"\nevery = "1s"\n'
            for i in range(args.jobs)
        )
        config = write_config(workdir, jobs, base_url=endpoint.url,
                              extra='[daemon]\nmax_in_flight = 64\n')
        daemon = DaemonProcess(config, workdir / "daemon.log")
        daemon.wait_started()
        time.sleep(args.seconds)
        daemon.stop()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    store = Store(f"sqlite:///{workdir / 'cronhost.db'}")
    rows = store.history(limit=10_000_000)
    store.dispose()
    statuses = Counter(row.status for row in rows)
    lateness = [row.lateness_ms for row in rows if row.status == "ok" and row.lateness_ms is not None]
    print(f"jobs {args.jobs} every 1s for {args.seconds:g}s: rows {len(rows)} {dict(statuses)}")
    if lateness:
        print(f"lateness ms: p50 {statistics.median(lateness):.0f}  p95 {percentile(lateness, 0.95)}  "
              f"p99 {percentile(lateness, 0.99)}  max {max(lateness)}")
    runs = max(1, statuses["ok"] + statuses["failed"] + statuses["timeout"])
    print(f"daemon CPU {cpu:.2f} s in all ({1000 * cpu / runs:.2f} CPU-s per 1,000 runs, "
          f"start-up included); peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
