"""The run store: SQLAlchemy 2, SQLite by default, PostgreSQL by URL.

The daemon and the dashboard are separate processes that meet only here.
"""

from __future__ import annotations

from scheduler.store.store import DaemonInfo, JobRow, RunRow, Store

__all__ = ["DaemonInfo", "JobRow", "RunRow", "Store"]
