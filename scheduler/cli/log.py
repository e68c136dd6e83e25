"""`cronhost log`: the audit log, newest first: who asked for what, what each reload changed."""

from __future__ import annotations

import argparse

from scheduler.cli.common import EXIT_OK, MAX_ROWS, count_option, emit_json, open_store
from scheduler.views.text import one_line, table, when

__all__ = ["add_log_command", "cmd_log"]

SUMMARY_WIDTH = 120


def add_log_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help = "the audit log, newest first: commands and who asked, reloads and their diff"
    p = sub.add_parser("log", help=help, description=help)
    p.set_defaults(handler=cmd_log)
    p.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    p.add_argument("--job", default=None, metavar="JOB", help="only events about this job")
    p.add_argument("--json", action="store_true")


def cmd_log(args: argparse.Namespace) -> int:
    count_option(args.n, MAX_ROWS)
    store = open_store(args)
    # A job removed long ago may still have events: --job is not checked against the config.
    rows = store.events(limit=args.n, job_id=args.job) if store.check_readable() else []
    if args.json:
        emit_json([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        print(f"no events recorded for job {args.job!r}" if args.job else "no events recorded yet")
        return EXIT_OK
    print(table(("time", "who", "kind", "job", "summary"),
                [(when(row.at), row.who, row.kind, row.job_id or "-", one_line(row.summary, SUMMARY_WIDTH))
                 for row in rows]))
    return EXIT_OK
