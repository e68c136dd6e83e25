"""The run store: one object for every read and write the daemon, the CLI and the dashboard make.

Its methods live with their tables (``runs.py``, ``job_state.py``, ``control.py``);
this class adds the connection and the schema's life cycle.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import SchemaError, StoreError, first_line
from scheduler.store import migrations
from scheduler.store.attempts import AttemptsTable
from scheduler.store.audit import AuditTable
from scheduler.store.batch import BatchWrites
from scheduler.store.control import ControlTables
from scheduler.store.database import create_store_engine, describe_url
from scheduler.store.job_state import JobStateTable
from scheduler.store.runs import RunsTable

__all__ = ["Store"]


class Store(RunsTable, AttemptsTable, BatchWrites, JobStateTable, ControlTables, AuditTable):
    """One database holding runs and their attempts, job state, commands, daemon heartbeats
    and the audit log."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self.url_for_humans = self.describe_url(url)

    def missing(self) -> bool:
        """True for a SQLite store whose file does not exist yet (readers must not create it)."""
        if self.engine.url.get_backend_name() != "sqlite":
            return False
        database = self.engine.url.database
        return bool(database) and database != ":memory:" and not Path(str(database)).exists()

    @staticmethod
    def describe_url(url: str) -> str:
        """The URL with any password hidden, fit for logs and the dashboard."""
        return describe_url(url)

    def migrate(self) -> int:
        """Create or upgrade the schema (the daemon does this on start)."""
        try:
            return migrations.migrate(self.engine, self.url_for_humans)
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url_for_humans}: {first_line(exc)}") from None

    def check_readable(self) -> bool:
        """For readers: False on an empty database; raises SchemaError on a foreign schema."""
        try:
            version = migrations.current_version(self.engine)
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url_for_humans}: {first_line(exc)}") from None
        migrations.check_not_newer(version, self.url_for_humans)
        if version is not None and version < migrations.LATEST_VERSION:
            raise SchemaError(
                f"the store {self.url_for_humans} has schema version {version}; this cronhost "
                f"needs {migrations.LATEST_VERSION}. Start the daemon (`cronhost run`) once "
                "to upgrade it; history is kept."
            )
        return version is not None

    def dispose(self) -> None:
        self.engine.dispose()
