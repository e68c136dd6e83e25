"""The audit log in the store: who asked (user, host), the event a finished command writes
in the same transaction, and retention."""

from __future__ import annotations

import asyncio
import logging
import pwd
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, update

from jobs.python import CallContext
from scheduler.config import PRUNE_JOB_ID
from scheduler.store import Store
from scheduler.store.audit import resolve_user, who_asks
from scheduler.store.retention import PruneHistory
from scheduler.store.schema import events

ROOT = pwd.getpwuid(0).pw_name


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite file (the transaction test plants a SQLite trigger)."""
    opened = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    opened.migrate()
    try:
        yield opened
    finally:
        opened.dispose()


def test_add_command_records_the_asking_user_and_host(store: Store) -> None:
    command_id = store.add_command("pause", "sync", requested_by="tui")
    command = store.command(command_id)
    assert command is not None
    assert command.requested_by == "tui"
    assert command.requested_user == who_asks().user
    assert command.requested_host == socket.gethostname()


def test_the_login_uid_wins_over_sudo_and_the_effective_user() -> None:
    # `sudo -u cronhost cronhost pause` by root's session: the person is the login uid's.
    assert resolve_user("0\n", {"SUDO_USER": "someone"}, euid=12345) == ROOT
    # No login session (4294967295, a service or a container): $SUDO_USER, then the euid.
    assert resolve_user("4294967295", {"SUDO_USER": "alice"}, euid=0) == "alice"
    assert resolve_user(None, {}, euid=0) == ROOT
    assert resolve_user("garbage", {}, euid=0) == ROOT
    # A uid that has no name is shown as its number, not dropped.
    assert resolve_user("4000000", {}, euid=0) == "4000000"


def test_finishing_a_command_writes_its_event_in_the_same_transaction(store: Store) -> None:
    store.sync_jobs([{"job_id": "sync", "kind": "http", "schedule": "* * * * *",
                      "timezone": "UTC", "target": "https://x/sync", "description": "",
                      "enabled": True}])
    command_id = store.add_command("pause", "sync")
    statements: list[tuple[int, str]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append((id(conn), statement.split()[0] + " " + statement.split()[1]))

    @event.listens_for(store.engine, "commit")
    def committed(conn: object) -> None:
        statements.append((id(conn), "COMMIT"))

    store.finish_command(command_id, "done", "paused", daemon_id="d1")
    event.remove(store.engine, "before_cursor_execute", seen)
    event.remove(store.engine, "commit", committed)

    assert [what for _, what in statements].count("COMMIT") == 1
    writes = [what for _, what in statements if what.startswith(("UPDATE", "INSERT"))]
    assert writes == ["UPDATE commands", "INSERT INTO"]
    assert len({conn for conn, _ in statements}) == 1
    [row] = store.events()
    me = who_asks()
    assert (row.kind, row.job_id, row.actor_user, row.actor_host, row.daemon_id) == (
        "command.pause", "sync", me.user, me.host, "d1")
    assert row.summary == f"paused by {me.user}@{me.host} (cli)"
    assert row.detail is not None and row.detail["command_id"] == command_id


def test_a_command_that_fails_in_the_event_write_is_not_finished(store: Store) -> None:
    """Same transaction: no command is done without its line in the log."""
    command_id = store.add_command("resume", "sync")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TRIGGER no_events BEFORE INSERT ON events "
                             "BEGIN SELECT RAISE(ABORT, 'no events today'); END")
    with pytest.raises(Exception, match="no events today"):
        store.finish_command(command_id, "done", "resumed")
    command = store.command(command_id)
    assert command is not None and command.state == "pending"


def test_an_auto_disable_says_why_in_the_log(store: Store) -> None:
    store.sync_jobs([{"job_id": "flaky", "kind": "http", "schedule": "* * * * *",
                      "timezone": "UTC", "target": "https://x/f", "description": "",
                      "enabled": True}])
    store.set_paused("flaky", True, "auto-disabled after 25 failures in a row")
    command_id = store.add_command("pause", "flaky", requested_by="auto-disable")
    store.finish_command(command_id, "done", "paused")
    [row] = store.events(job_id="flaky")
    assert "(auto-disable)" in row.summary
    assert row.summary.endswith("auto-disabled after 25 failures in a row")


def test_events_come_newest_first_and_by_job(store: Store) -> None:
    for job in ("a", "b", "a"):
        store.add_event("command.trigger", f"triggered {job}", job_id=job)
    assert [row.summary for row in store.events()] == ["triggered a", "triggered b",
                                                        "triggered a"]
    assert [row.id for row in store.events()] == sorted(
        (row.id for row in store.events()), reverse=True)
    assert {row.job_id for row in store.events(job_id="a")} == {"a"}
    assert len(store.events(limit=2)) == 2


def test_retention_prunes_events_older_than_keep(store: Store) -> None:
    now = datetime(2026, 6, 1, 4, 17, tzinfo=UTC)
    for days in (400, 91, 89, 1):
        store.add_event("config.reloaded", f"{days} days ago")
    with store.engine.begin() as conn:
        for row in conn.execute(select(events.c.id, events.c.summary)).all():
            days = int(row.summary.split()[0])
            conn.execute(update(events).where(events.c.id == row.id)
                         .values(at=now - timedelta(days=days)))
    prune = PruneHistory(store, lambda: timedelta(days=90))
    result = asyncio.run(prune(CallContext(
        job_id=PRUNE_JOB_ID, scheduled_at=now, idempotency_key="k",
        logger=logging.getLogger("test"))))
    assert result["data"]["events_deleted"] == 2
    assert "2 older audit events" in result["message"]
    assert sorted(row.summary for row in store.events()) == ["1 days ago", "89 days ago"]
