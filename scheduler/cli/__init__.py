"""The `cronhost` command.

    main.py    the parser and entry point (and the `tui` command's door to the dashboard)
    show.py    check, next, status, history
    act.py     run, trigger, pause, resume, reload
    report.py  report: success rate, times, errors and missed runs over a window
    common.py  config and store lookup, JSON and text output shared by the commands
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. The commands' imports take a second or so: a Ctrl-C during
    them is an interrupt (exit 130), not an import traceback."""
    try:
        from scheduler.cli.main import main as run_command
    except KeyboardInterrupt:
        return 130
    return run_command(argv)
