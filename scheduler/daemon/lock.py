"""One daemon per store: an exclusive lock that dies with its holder.

- SQLite: ``flock`` on ``<database>.lock`` next to the file. The kernel releases it
  when the process dies, however it dies, so a restart after kill -9 is never refused.
- PostgreSQL: a session advisory lock held on a connection of its own. It is released
  when that connection ends (the daemon dies, or PostgreSQL restarts); the daemon
  checks it on every heartbeat and takes it again.

Two daemons on one store would each enforce `allow_overlap` and reloads on their own,
and each would take the other's runs in flight for abandoned ones. The UNIQUE slot
claim still keeps every slot single in the moments when two believe they hold it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from scheduler.errors import StoreError

# pg_try_advisory_lock takes a bigint; this one spells "cronhost" in ASCII.
ADVISORY_LOCK_KEY = 0x63726F6E686F7374 & 0x7FFFFFFFFFFFFFFF

TAKEN_MESSAGE = (
    "another cronhost daemon is running on {store}{holder}; one daemon per store "
    "(stop the other one, or give this one its own [store] url)"
)


class DaemonLock:
    def __init__(self, engine: Engine, url_for_humans: str) -> None:
        self.engine = engine
        self.url_for_humans = url_for_humans
        self._file: IO[str] | None = None
        self._connection: Connection | None = None
        # Not from the pool: a pooled connection "closed" back into the pool would keep
        # holding the session lock.
        self._lock_engine = create_engine(engine.url, poolclass=NullPool)

    def acquire(self) -> None:
        """Take the lock or raise StoreError saying who holds it."""
        holder = self.try_acquire()
        if holder is not None:
            raise StoreError(TAKEN_MESSAGE.format(store=self.url_for_humans, holder=holder))

    def try_acquire(self) -> str | None:
        """Take the lock if it is free: None when held now, else who holds it ("" if unknown)."""
        if self._file is not None or self._connection is not None:
            return None
        backend = self.engine.url.get_backend_name()
        if backend == "sqlite":
            return self._lock_file()
        if backend == "postgresql" and not self._lock_postgres():
            return ""
        return None

    def still_held(self) -> bool:
        """False when the lock was lost and another daemon has taken it since."""
        if self._connection is None:
            return True
        try:
            self._connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            self._close_connection()
        try:
            return self._lock_postgres()
        except StoreError:
            return True  # PostgreSQL is still down: nobody else can hold the lock either

    def release(self) -> None:
        self._close_connection()
        self._lock_engine.dispose()
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    def _lock_file(self) -> str | None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return None
        path = Path(f"{database}.lock")
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the daemon's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            return f" (pid {holder})" if holder else ""
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return None

    def _lock_postgres(self) -> bool:
        try:
            connection = self._lock_engine.connect()
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
            connection.commit()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot reach the store to take the daemon lock: {exc}") from None
        if taken:
            self._connection = connection
            return True
        connection.close()
        return False

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.close()
            self._connection = None
