"""Connecting to the store: SQLite (WAL) by default, PostgreSQL by URL; URLs never echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from scheduler.errors import StoreError

__all__ = ["BAD_URL", "create_store_engine", "describe_url", "parse_store_url"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the daemon writes, and makes writes cheaper.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


BAD_URL = (
    "is not a SQLAlchemy database URL such as sqlite:////var/lib/cronhost/cronhost.db or "
    "postgresql+psycopg://user@host/db (not repeated here: it may hold a password)"
)


def parse_store_url(url: str) -> URL:
    """The URL as cronhost uses it; StoreError (never echoing the URL) if it is unusable."""
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):
            # The URL forms operators copy from elsewhere; psycopg 3 is the driver cronhost ships.
            parsed = parsed.set(drivername="postgresql+psycopg")
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError):
        raise StoreError(f"[store] url {BAD_URL}") from None
    return parsed


def create_store_engine(url: str) -> Engine:
    """An engine for the store URL. Error messages never repeat the URL: it may hold a password."""
    parsed = parse_store_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A short busy timeout: a locked file must not freeze the event loop for long;
        # writes that fail are retried by the caller with backoff.
        engine = create_engine(parsed, connect_args={"timeout": 2.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # Store calls run on the event loop: a half-open connection or a stuck statement
        # must fail within seconds, not hang the scheduler.
        connect_args = {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            # A daemon frozen (SIGSTOP, a VM pause) inside a transaction would hold its row
            # locks, and another node's claims would wait behind them: end it after 10 s.
            "options": "-c statement_timeout=10000 -c idle_in_transaction_session_timeout=10000",
        }
    try:
        # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced
        # instead of failing the next write.
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use the [store] url: {type(exc).__name__}: {exc}") from None


def describe_url(url: str) -> str:
    """The URL with any password hidden, fit for logs and the dashboard."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"
