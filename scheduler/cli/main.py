"""The `cronhost` command line: the parser, and the one entry that reaches the dashboard.

Every command reads the same store; `--json` prints the stable machine form.
Operator mistakes (bad config, unknown job, bad time) end as one paragraph on
stderr and exit status 2, never a traceback.

This is the only module of ``scheduler`` that knows ``tui``: `cronhost tui`
imports the dashboard here, lazily, so no other command loads Textual
(import-linter holds the rule, with this one import as its exception).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from scheduler import __version__
from scheduler.cli.act import cmd_pause_resume, cmd_reload, cmd_run, cmd_trigger
from scheduler.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, config_path, open_store
from scheduler.cli.log import add_log_command
from scheduler.cli.report import add_report_command
from scheduler.cli.show import cmd_check, cmd_history, cmd_next, cmd_status
from scheduler.errors import ConfigError, CronhostError, UsageError, first_line
from scheduler.migrate.commands import add_commands

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, UsageError) as exc:
        print(f"cronhost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CronhostError as exc:  # the store is down, the daemon is not running
        print(f"cronhost: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cronhost history --json | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    # What no command foresaw still gets one paragraph, not a traceback.
    except (RecursionError, OverflowError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else f"out of range ({exc})"
        print(f"cronhost: {args.command}: an input is {why}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"cronhost: {args.command}: the store failed: {first_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # a full disk under stdout, a lock file it may not create
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        where = f": {exc.filename}" if exc.filename else ""
        print(f"cronhost: {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronhost", description="Self-hosted cron: fires HTTP endpoints and Python callables."
    )
    parser.add_argument("--version", action="version", version=f"cronhost {__version__}")
    parser.add_argument(
        "--config", "-c", type=Path, default=None,
        help="config file (default: $CRONHOST_CONFIG, else ./config.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("run", cmd_run, "run the daemon in the foreground")
    p.add_argument("--log-format", choices=("json", "text"), default=None,
                   help="json (default; for journald) or text (for a terminal)")
    p.add_argument("--standby", action="store_true",
                   help="if another daemon holds the store, wait and take over when it dies "
                        "(instead of refusing to start)")

    p = command("check", cmd_check, "validate the config and show what would run")
    p.add_argument("--json", action="store_true")

    p = command("next", cmd_next, "print the next fire times of a job or a cron expression")
    p.add_argument("target", metavar="JOB_ID_OR_EXPRESSION")
    p.add_argument("-n", type=int, default=5, help="how many (default 5)")
    p.add_argument("--tz", default=None, help="time zone for an expression (default UTC)")
    p.add_argument("--after", default=None, help="ISO 8601 start (default now)")
    p.add_argument("--json", action="store_true")

    p = command("status", cmd_status, "every job: schedule, next run, last run, paused")
    p.add_argument("--json", action="store_true")

    p = command("history", cmd_history, "recent runs, newest first")
    p.add_argument("job", nargs="?", default=None)
    p.add_argument("-n", type=int, default=20, help="how many rows (default 20)")
    p.add_argument("--json", action="store_true")

    p = command("trigger", cmd_trigger, "ask the running daemon to run a job now")
    p.add_argument("job")
    p.add_argument("--wait", action="store_true", help="wait for the run and print its result")
    p.add_argument("--slot", default=None, metavar="ISO8601",
                   help="re-run this recorded slot (e.g. an abandoned one) under its own "
                        "Idempotency-Key, so the endpoint can tell it is a repeat")
    p.add_argument("--force", action="store_true",
                   help="with --slot: re-run the slot even though it already ran ok")
    p.add_argument("--timeout", type=float, default=300.0, help="how long --wait waits (s)")
    p.add_argument("--json", action="store_true")

    for name, verb in (("pause", "pause"), ("resume", "resume")):
        p = command(name, cmd_pause_resume, f"{verb} a job (persisted across restarts)")
        p.add_argument("job")
        p.add_argument("--json", action="store_true")
        p.set_defaults(verb=verb)

    add_report_command(sub)
    add_log_command(sub)

    p = command("reload", cmd_reload, "ask the running daemon to re-read its config")

    p = command("tui", cmd_tui, "open the live dashboard")

    # Moving in from Vercel and cron-job.org: import, verify, compare.
    add_commands(sub)
    return parser


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_dashboard

    return run_dashboard(open_store(args), config_path(args))
