"""Leadership on PostgreSQL: a session advisory lock, held as a lease the server enforces.

The lock lives on a connection of its own (psycopg, autocommit: no transaction is
ever open on it), owned by a thread of its own: the store thread's queue may hold
long writes, and the lease must not wait behind them. That thread touches the
session every TOUCH_SECONDS, and the session is opened with limits that make the
server end it, and so free the lock, when the leader goes silent:

    idle_session_timeout     a frozen leader (SIGSTOP, a paused VM) sends nothing
    idle_in_transaction_session_timeout
                             the same, should a transaction ever be left open on it
                             (idle_session_timeout does not count that state)
    tcp_keepalives_*         a host or a network gone: the kernel stops answering
    tcp_user_timeout         data sent and never acknowledged

With these the server frees the lock at most LEASE_SECONDS after the last touch
reached it. The leader fences itself by its own monotonic clock: it may claim
slots only while its last confirmed touch was SENT less than FENCE_SECONDS ago
(the lease less a margin), so it stops claiming before the server could let
another node lead. A touch that fails ends the lease; the daemon is told
(``on_lost``), drops to standby and competes again.

The same limits are set on the client (libpq keepalives, tcp_user_timeout), so a
leader cut off from the server finds out within seconds too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from scheduler.errors import StoreError, first_line
from scheduler.logs import get_logger
from scheduler.store.control import LEADER_LOCK_KEY, leader_application_name, parse_holder

__all__ = ["FENCE_SECONDS", "LEASE_SECONDS", "SESSION_LIMITS", "TOUCH_SECONDS", "PostgresLease"]

log = get_logger("daemon")

TOUCH_SECONDS = 1.0
# The server ends a silent session after this long: idle_session_timeout, and the
# keepalive path (2 s idle, then 3 probes 1 s apart) and tcp_user_timeout add up to it.
LEASE_SECONDS = 5.0
# Claims stop this long before the lease could run out (clock rates, scheduling delays).
FENCE_MARGIN_SECONDS = 1.5
FENCE_SECONDS = LEASE_SECONDS - FENCE_MARGIN_SECONDS
CONNECT_TIMEOUT_SECONDS = 3

SESSION_LIMITS = (
    f"SET idle_session_timeout = '{int(LEASE_SECONDS * 1000)}ms'",  # PostgreSQL 14+
    f"SET idle_in_transaction_session_timeout = '{int(LEASE_SECONDS * 1000)}ms'",
    "SET tcp_keepalives_idle = 2",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 3",
    f"SET tcp_user_timeout = {int(LEASE_SECONDS * 1000)}",
)


class PostgresLease:
    """One node's claim to lead a PostgreSQL store; see the module docstring."""

    def __init__(self, engine: Engine, daemon_id: str) -> None:
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self.application_name = leader_application_name(
            daemon_id, os.getpid(), socket.gethostname())
        self.on_lost: Callable[[str], None] | None = None
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._confirmed_at = float("-inf")  # monotonic time the last confirmed touch was sent
        self._held = False
        self._warned_no_idle_timeout = False
        # The lock session's server process: a claim transaction checks, on the server, that
        # this process still holds the lock (``Store.commit_wakeup``'s fence).
        self.backend_pid: int | None = None

    @property
    def held(self) -> bool:
        return self._held

    def may_claim(self) -> bool:
        """True while the lease is surely ours: held, and confirmed within FENCE_SECONDS."""
        return self._held and time.monotonic() - self._confirmed_at < FENCE_SECONDS

    def try_acquire(self) -> str | None:
        """Take the lock if it is free: None when held now, else who holds it ("" if unknown).

        Blocking (a connection, a query): call it from a worker thread. Raises StoreError
        when the server cannot be reached.
        """
        import psycopg

        with self._guard:
            if self._held:
                return None
            try:
                conn = psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    application_name=self.application_name, keepalives=1, keepalives_idle=2,
                    keepalives_interval=1, keepalives_count=3,
                    tcp_user_timeout=int(LEASE_SECONDS * 1000),
                )
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot reach the store to take the daemon lock: {first_line(exc)}"
                ) from None
            try:
                self._set_limits(conn)
                sent = time.monotonic()
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_KEY,)).fetchone()
                if not (row and row[0]):
                    holder = self._holder(conn)
                    conn.close()
                    return holder
            except psycopg.Error as exc:
                conn.close()
                raise StoreError(
                    f"cannot reach the store to take the daemon lock: {first_line(exc)}"
                ) from None
            self._confirmed_at = sent
            self._held = True
            self.backend_pid = conn.info.backend_pid
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._keep, args=(conn, self._stop), daemon=True, name="cronhost-lease")
            self._thread.start()
            return None

    def release(self, wait: float = 2.0) -> None:
        """Give the lease up: the session ends, and with it the lock (if it was still ours)."""
        with self._guard:
            self._held = False
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(wait)

    # -- the keeper thread --------------------------------------------------------------

    def _keep(self, conn: object, stop: threading.Event) -> None:
        import psycopg

        assert isinstance(conn, psycopg.Connection)
        reason = None
        try:
            while not stop.wait(TOUCH_SECONDS):
                sent = time.monotonic()
                try:
                    conn.execute("SELECT 1")
                except psycopg.Error as exc:
                    reason = f"the lock's session ended: {first_line(exc)}"
                    break
                if stop.is_set():
                    break
                self._confirmed_at = sent
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        if reason is not None and not stop.is_set():
            self._held = False
            if self.on_lost is not None:
                self.on_lost(reason)

    def _set_limits(self, conn: object) -> None:
        import psycopg

        assert isinstance(conn, psycopg.Connection)
        for statement in SESSION_LIMITS:
            try:
                conn.execute(statement)
            except psycopg.errors.UndefinedObject:  # idle_session_timeout before PostgreSQL 14
                if not self._warned_no_idle_timeout:
                    self._warned_no_idle_timeout = True
                    log.warning(
                        "this PostgreSQL has no idle_session_timeout (14+): a frozen leader "
                        "keeps the lock until its TCP connection dies",
                        extra={"action": "daemon.lease_limits", "statement": statement},
                    )

    @staticmethod
    def _holder(conn: object) -> str:
        """Who holds the lock, as " (pid N on HOST)", from the holder's application_name."""
        import psycopg

        assert isinstance(conn, psycopg.Connection)
        hi, lo = LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF
        try:
            row = conn.execute(
                "SELECT a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "JOIN pg_database d ON d.oid = l.database AND d.datname = current_database() "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s "
                "AND l.objid = %s AND l.objsubid = 1",
                (hi, lo),
            ).fetchone()
        except psycopg.Error:
            return ""
        holder = parse_holder(row[0] if row else None)
        if holder is None:
            return ""
        _, pid, host = holder
        return f" (pid {pid} on {host})"
