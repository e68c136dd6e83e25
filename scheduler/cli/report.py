"""`cronhost report [JOB...] [--since 24h] [--json]`: each job's numbers over a window."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from scheduler.cli.common import EXIT_OK, emit_json, known_job, open_store
from scheduler.errors import UsageError
from scheduler.schedule import ScheduleError, parse_duration
from scheduler.views.report import job_reports, report_table
from scheduler.views.text import when

# Further back than any store keeps, and short of datetime's year 1.
MAX_WINDOW = timedelta(days=3660)

__all__ = ["add_report_command", "cmd_report"]


def add_report_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help = "each job's success rate, run times, errors and missed runs over a window"
    p = sub.add_parser("report", help=help, description=help)
    p.set_defaults(handler=cmd_report)
    p.add_argument("jobs", nargs="*", metavar="JOB", help="these jobs only (default: all)")
    p.add_argument("--since", default="24h", metavar="DURATION",
                   help="how far back, e.g. 1h, 24h, 7d (default 24h)")
    p.add_argument("--json", action="store_true")


def cmd_report(args: argparse.Namespace) -> int:
    try:
        window = parse_duration(args.since)
    except ScheduleError as exc:
        raise UsageError(f"--since {args.since!r}: {exc}") from None
    if window > MAX_WINDOW:
        raise UsageError(f"--since {args.since!r}: at most {MAX_WINDOW.days:,} days back")
    store = open_store(args)
    for job_id in args.jobs:
        known_job(store, args, job_id)
    until = datetime.now(UTC)
    since = until - window
    reports = (job_reports(store, since, until, args.jobs or None)
               if store.check_readable() else [])
    if args.json:
        emit_json([report.to_json() for report in reports])
        return EXIT_OK
    print(f"from {when(since)} to {when(until)} ({args.since})")
    print(report_table(reports) if reports else "no jobs recorded yet")
    return EXIT_OK
