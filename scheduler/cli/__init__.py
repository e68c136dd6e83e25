"""The `cronhost` command.

    main.py    the parser and entry point (and the `tui` command's door to the dashboard)
    show.py    check, next, status, history
    act.py     run, trigger, pause, resume, reload
    report.py  report: success rate, times, errors and missed runs over a window
    common.py  config and store lookup, JSON and text output shared by the commands
"""

from __future__ import annotations

from scheduler.cli.main import main

__all__ = ["main"]
