"""Schema versions and the ordered migrations between them.

A fresh store is created at the latest version. An older store is upgraded in
order, one version at a time, each in its own transaction. A store written by
a NEWER cronhost is refused: guessing at a schema we do not know would damage
its history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, select, text

from scheduler import __version__
from scheduler.errors import SchemaError
from scheduler.store.schema import attempts, events, metadata, schema_version

Migration = Callable[[Connection], None]


def _v2_missed_slot_ranges(conn: Connection) -> None:
    # v2: one `missed` row can stand for many slots of one outage.
    conn.execute(text("ALTER TABLE runs ADD COLUMN slot_count INTEGER NOT NULL DEFAULT 1"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN slot_until TIMESTAMP"))


def _v3_daemon_status_line(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE daemons ADD COLUMN status_line TEXT"))


def _v4_command_slot(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE commands ADD COLUMN slot TIMESTAMP"))


def _v5_claimed_at(conn: Connection) -> None:
    # v5: a claimed slot waits `queued` for a free place before it starts.
    conn.execute(text("ALTER TABLE runs ADD COLUMN claimed_at TIMESTAMP"))


def _v6_paused_reason(conn: Connection) -> None:
    # v6: auto_disable_after pauses a job itself and says why.
    conn.execute(text("ALTER TABLE job_state ADD COLUMN paused_reason TEXT"))


def _v7_node_roles(conn: Connection) -> None:
    # v7: two or more daemons on one PostgreSQL, one leading; each says which it is.
    conn.execute(text("ALTER TABLE daemons ADD COLUMN role VARCHAR(16)"))
    conn.execute(text("ALTER TABLE daemons ADD COLUMN role_since TIMESTAMP"))


def _v8_attempts_and_audit(conn: Connection) -> None:
    # v8: every attempt on record as it happens, and an audit log of who did what.
    conn.execute(text("ALTER TABLE commands ADD COLUMN requested_user VARCHAR(64)"))
    conn.execute(text("ALTER TABLE commands ADD COLUMN requested_host VARCHAR(255)"))
    # Created from today's Table objects: a later version that changes these tables must
    # write its own DDL here instead (else v8 would already create v9's shape).
    attempts.create(conn)
    events.create(conn)


# MIGRATIONS[n] upgrades a store from version n + 1 to n + 2 (version 1 is the first release).
MIGRATIONS: list[Migration] = [
    _v2_missed_slot_ranges, _v3_daemon_status_line, _v4_command_slot, _v5_claimed_at,
    _v6_paused_reason, _v7_node_roles, _v8_attempts_and_audit,
]
LATEST_VERSION = len(MIGRATIONS) + 1


def current_version(engine: Engine) -> int | None:
    """The store's schema version; None for an empty database."""
    tables = set(inspect(engine).get_table_names())
    if schema_version.name not in tables:
        if "runs" in tables:
            raise SchemaError(
                "this database has a `runs` table but no cronhost schema version; "
                "it was not written by cronhost, so cronhost will not touch it"
            )
        return None
    with engine.connect() as conn:
        version = conn.execute(select(schema_version.c.version).order_by(
            schema_version.c.version.desc()).limit(1)).scalar()
    return int(version) if version is not None else None


def check_not_newer(version: int | None, url_for_humans: str) -> None:
    if version is not None and version > LATEST_VERSION:
        raise SchemaError(
            f"the store {url_for_humans} has schema version {version}, written by a newer "
            f"cronhost; this cronhost ({__version__}) knows versions up to {LATEST_VERSION}. "
            "Upgrade cronhost; the store was not changed."
        )


def migrate(engine: Engine, url_for_humans: str) -> int:
    """Create or upgrade the store to LATEST_VERSION; returns the version it was at (0 = new)."""
    version = current_version(engine)
    check_not_newer(version, url_for_humans)
    if version is None:
        with engine.begin() as conn:
            metadata.create_all(conn)
            _stamp(conn, LATEST_VERSION)
        return 0
    for target in range(version + 1, LATEST_VERSION + 1):
        with engine.begin() as conn:
            MIGRATIONS[target - 2](conn)
            _stamp(conn, target)
    # Tables added since (none yet) would be created here without touching existing ones.
    metadata.create_all(engine, checkfirst=True)
    return version


def _stamp(conn: Connection, version: int) -> None:
    conn.execute(
        schema_version.insert().values(
            version=version, applied_at=datetime.now(UTC), cronhost_version=__version__
        )
    )
