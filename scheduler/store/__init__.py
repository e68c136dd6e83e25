"""The run store: SQLAlchemy 2 Core, SQLite by default, PostgreSQL by URL.

    store.py       Store: the connection and the schema's life cycle
    runs.py        claiming slots, recording outcomes, history
    attempts.py    every attempt of a run, written as it happens
    job_state.py   what the daemon runs, paused flags, failure streaks
    control.py     commands (CLI/dashboard → daemon) and daemon heartbeats
    audit.py       the audit log: who asked, what each reload changed
    retention.py   the built-in history pruning job
    report.py      per-job figures over a window, in SQL: counts, percentiles, error kinds
    rows.py        the frozen rows handed out
    database.py    engines and URLs
    schema.py      the tables; migrations.py: versions and upgrades

The daemon and the dashboard are separate processes that meet only here.
"""

from __future__ import annotations

from scheduler.store.rows import Command, DaemonInfo, JobRow, RunRow
from scheduler.store.store import Store

__all__ = ["Command", "DaemonInfo", "JobRow", "RunRow", "Store"]
