"""Shared by the tests/test_migrate_*.py files: the real CLI glue, run in-process.

The top-level parser lives in scheduler/cli.py, which another branch is moving;
this builds the same shape (``--config`` on top, sub-commands below) around
``scheduler.migrate.commands.add_commands`` and handles errors as ``cli.main`` does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from scheduler.errors import ConfigError, CronhostError, UsageError
from scheduler.migrate.commands import add_commands


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="cronhost")
    parser.add_argument("--config", "-c", type=Path, default=None)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    try:
        code = int(args.handler(args))
    except (ConfigError, UsageError) as exc:
        print(f"cronhost: {exc}", file=sys.stderr)
        code = 2
    except CronhostError as exc:
        print(f"cronhost: {exc}", file=sys.stderr)
        code = 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
