"""Shared by the tests/test_migrate_*.py files: the real `cronhost` command, run in-process."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from scheduler.cli import main


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The real `cronhost` entry point, in process (exit code, stdout, stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
