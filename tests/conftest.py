"""Shared fixtures: a clean environment, real stores (SQLite file, PostgreSQL), a loopback endpoint."""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.store import Store
from tests.daemon_harness import DaemonProcess
from tests.endpoint_server import endpoint  # noqa: F401  (fixture re-export)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the operator's CRON_*/CRONHOST_* variables or systemd's."""
    for name in list(os.environ):
        if name.startswith(("CRON", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_", "STATE_DIRECTORY")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemon subprocesses a test starts; any still running at the end are killed."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.kill()


# -- PostgreSQL outages ----------------------------------------------------------------------

# Lock files per user and machine, so that they also hold across pytest-xdist's workers and
# across two suites started at once (e.g. two checkouts).
_LOCK_DIR = Path(tempfile.gettempdir())
_POSTGRES_IN_USE = _LOCK_DIR / f"cronhost-tests-postgres-{os.getuid()}.lock"
_OUTAGE_WAITING = _LOCK_DIR / f"cronhost-tests-postgres-{os.getuid()}.gate"
_POSTGRES_FIXTURES = ("postgres_url", "fresh_postgres_url")


@pytest.fixture(autouse=True)
def postgres_outage_lock(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that stops or restarts PostgreSQL runs while no other test uses it.

    Tests that use PostgreSQL share one lock for their whole run; a test marked
    `postgres_outage` holds it alone. Without this, the suite run in parallel
    (pytest-xdist) would fail other workers' PostgreSQL tests during a restart. flock
    prefers no one, so an outage test first closes a gate that new users pass through:
    the users already in finish, and the outage test cannot be starved by a stream of them.
    """
    exclusive = request.node.get_closest_marker("postgres_outage") is not None
    uses_postgres = (exclusive or request.node.get_closest_marker("postgres") is not None
                     or any(name in request.fixturenames for name in _POSTGRES_FIXTURES))
    if not uses_postgres:
        yield
        return
    with open(_OUTAGE_WAITING, "a") as gate, open(_POSTGRES_IN_USE, "a") as in_use:
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(in_use, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(in_use, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


# -- stores ---------------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
_pg_state: dict[str, str | None] = {}


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it answers (checked once)."""
    if "reason" not in _pg_state:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not here"
            _pg_state["reason"] = f"PostgreSQL not answering at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    return _pg_state["reason"]


def require_postgres() -> None:
    reason = postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_postgres()
    import uuid

    import sqlalchemy

    name = f"cronhost_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    base = sqlalchemy.engine.make_url(PG_ADMIN_URL)
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cronhost.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The contract suites run once on a SQLite file and once on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cronhost.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store(store_url)
    opened.migrate()
    try:
        yield opened
    finally:
        opened.dispose()
