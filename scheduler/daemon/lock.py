"""Who leads a store: an exclusive lock that dies with its holder.

- SQLite: ``flock`` on ``<database>.lock`` next to the file. The kernel releases it
  when the process dies, however it dies, so a restart after kill -9 is never refused;
  it is never lost while its holder lives.
- PostgreSQL: a session advisory lock held as a lease the server enforces
  (``scheduler.daemon.lease``): a frozen or cut-off leader loses it within seconds,
  and stops claiming slots before another node can take it.

Two daemons on one store would each enforce `allow_overlap` and reloads on their own,
and each would take the other's runs in flight for abandoned ones. The UNIQUE slot
claim still keeps every slot single in the moments when two believe they hold it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy import Engine

from scheduler.daemon.lease import PostgresLease
from scheduler.errors import StoreError

TAKEN_MESSAGE = (
    "another cronhost daemon is running on {store}{holder}; one daemon per store "
    "(stop the other one, run this one with --standby, or give it its own [store] url)"
)

# How often a standby tries to take the lead: PostgreSQL's lock frees within a second
# of a kill -9; SQLite's standby daemons are on the same host and can take it easy.
STANDBY_POLL_SECONDS = {"postgresql": 1.0, "sqlite": 2.0}


class DaemonLock:
    def __init__(self, engine: Engine, url_for_humans: str, daemon_id: str = "") -> None:
        self.engine = engine
        self.url_for_humans = url_for_humans
        self.backend = engine.url.get_backend_name()
        self._file: IO[str] | None = None
        self._memory_held = False
        self._lease = PostgresLease(engine, daemon_id) if self.backend == "postgresql" else None

    @property
    def poll_seconds(self) -> float:
        return STANDBY_POLL_SECONDS.get(self.backend, 2.0)

    @property
    def can_be_lost(self) -> bool:
        """Only a lease can be lost by a holder that lives on."""
        return self._lease is not None

    def set_on_lost(self, callback: Callable[[str], None]) -> None:
        """``callback(reason)`` runs (in the lease's thread) when a held lease ends."""
        if self._lease is not None:
            self._lease.on_lost = callback

    @property
    def held(self) -> bool:
        if self._lease is not None:
            return self._lease.held
        return self._file is not None or self._memory_held

    def fence_pid(self) -> int | None:
        """The lease session's server pid, for the claim transaction's own check (PostgreSQL
        only: on SQLite the flock is held for the process's life)."""
        return self._lease.backend_pid if self._lease is not None and self.held else None

    def may_claim(self) -> bool:
        """Whether this node may claim slots now (any thread): it holds the store, surely."""
        if self._lease is not None:
            return self._lease.may_claim()
        return self.held

    def acquire(self) -> None:
        """Take the lock or raise StoreError saying who holds it."""
        holder = self.try_acquire()
        if holder is not None:
            raise StoreError(TAKEN_MESSAGE.format(store=self.url_for_humans, holder=holder))

    def try_acquire(self) -> str | None:
        """Take the lock if it is free: None when held now, else who holds it ("" if unknown).

        Raises StoreError when the store cannot be reached (PostgreSQL).
        """
        if self.held:
            return None
        if self._lease is not None:
            return self._lease.try_acquire()
        if self.backend == "sqlite":
            return self._lock_file()
        self._memory_held = True
        return None

    def release(self) -> None:
        if self._lease is not None:
            self._lease.release()
        self._memory_held = False
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None

    def _lock_file(self) -> str | None:
        database = self.engine.url.database
        if not database or database == ":memory:":
            self._memory_held = True
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
