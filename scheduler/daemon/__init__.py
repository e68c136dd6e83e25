"""The daemon: assembled in one place, run as a loop of small steps, one per store.

    assemble.py  build_daemon: the composition root that wires every part
    loop.py      Daemon: start-up, the main loop, drained shutdown, standby
    control.py   reloads and commands (trigger, pause, resume)
    lock.py      one daemon per store (flock, or a PostgreSQL advisory lock)
    notify.py    systemd's notify protocol
"""

from __future__ import annotations

from scheduler.daemon.assemble import build_daemon
from scheduler.daemon.loop import Daemon

__all__ = ["Daemon", "build_daemon"]
