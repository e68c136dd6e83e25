"""The doorbell: whoever writes a command row rings it, so an idle daemon wakes at once.

The command row in the store stays the durable request; the ring only says "look
now", so a daemon that missed a ring (it was restarting, the socket was not
writable for this user) still finds the row at its next wake-up.

- SQLite: a Unix datagram socket beside the database file (``cronhost.db.wake``);
  ringing sends one empty datagram to it.
- PostgreSQL: ``NOTIFY cronhost_commands``, sent in the transaction that inserts
  the row (delivered on commit); the daemon LISTENs on a connection of its own,
  so a CLI on another host wakes it too.

Ringing never raises: a bell that nobody hears is not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from scheduler.logs import get_logger

__all__ = ["CHANNEL", "Doorbell", "notify_in", "ring_socket", "socket_path"]

log = get_logger("store")

CHANNEL = "cronhost_commands"
RECONNECT_MAX = 30.0


def socket_path(engine: Engine) -> Path | None:
    """Where a SQLite store's doorbell socket lives (None for other stores or :memory:)."""
    if engine.url.get_backend_name() != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.wake")


def ring_socket(engine: Engine) -> None:
    """Ring a SQLite store's doorbell (after the command row was committed)."""
    path = socket_path(engine)
    if path is None:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(b"", str(path))


def notify_in(conn: Connection) -> None:
    """Ring a PostgreSQL store's doorbell from inside the transaction that wrote the row."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"NOTIFY {CHANNEL}"))


class Doorbell:
    """The daemon's side: calls ``on_ring`` on the event loop whenever someone rings."""

    def __init__(self, engine: Engine, on_ring: Callable[[], None]) -> None:
        self._engine = engine
        self._on_ring = on_ring
        self._socket: socket.socket | None = None
        self._path: Path | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        backend = self._engine.url.get_backend_name()
        if backend == "sqlite":
            self._listen_on_socket()
        elif backend == "postgresql":
            self._thread = threading.Thread(target=self._listen_on_postgres, daemon=True,
                                            name="cronhost-doorbell")
            self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._socket is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
            if self._path is not None:
                with contextlib.suppress(OSError):
                    self._path.unlink()

    # -- SQLite ---------------------------------------------------------------------------

    def _listen_on_socket(self) -> None:
        path = socket_path(self._engine)
        if path is None or self._loop is None:
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by a daemon that was killed; the store lock says we own it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            sock.bind(str(path))
            # Operators in the state directory's group may ring it too (their CLI, the
            # dashboard); others fall back to the daemon's next wake-up.
            os.chmod(path, 0o660)
        except OSError as exc:
            sock.close()
            log.warning("no doorbell: commands wait for the daemon's next wake-up",
                        extra={"action": "doorbell.unavailable", "error": str(exc)})
            return
        self._socket, self._path = sock, path
        self._loop.add_reader(sock.fileno(), self._drain_socket)

    def _drain_socket(self) -> None:
        assert self._socket is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._socket.recv(64) is not None:
                pass
        self._on_ring()

    # -- PostgreSQL -----------------------------------------------------------------------

    def _listen_on_postgres(self) -> None:
        import psycopg

        conninfo = self._engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        wait = 1.0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    wait = 1.0
                    # A ring may have come while we were not listening: look once.
                    self._ring_from_thread()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=60.0, stop_after=1):
                            self._ring_from_thread()
            except psycopg.Error:
                if self._stopping.wait(wait):
                    return
                wait = min(wait * 2, RECONNECT_MAX)

    def _ring_from_thread(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_ring)
