"""History retention: the built-in prune job deletes runs older than `[store] keep`."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.outcome import RunStatus
from jobs.python import CallContext, resolve_callable
from scheduler.config import PRUNE_JOB_ID, load_config
from scheduler.config.builtin import PRUNE_JOB, builtin_jobs
from scheduler.store import Store
from scheduler.store.retention import PruneHistory, prune_history
from tests.daemon_harness import DaemonProcess, write_config

NOW = datetime(2026, 6, 1, 4, 17, tzinfo=UTC)
# JSON strings and booleans are valid TOML.
PRUNE_JOB_TOML = "\n".join(f"{key} = {json.dumps(value)}" for key, value in PRUNE_JOB.items())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()


def context(slot: datetime = NOW) -> CallContext:
    return CallContext(job_id=PRUNE_JOB_ID, scheduled_at=slot,
                       idempotency_key=f"{PRUNE_JOB_ID}@{slot.isoformat()}",
                       logger=logging.getLogger("test"))


def seed(store: Store, job_id: str, slots: list[datetime]) -> None:
    store.record_missed(job_id, slots, "seeded by the test")


def remaining(store: Store) -> list[datetime]:
    return sorted(row.scheduled_at for row in store.history(limit=10_000))


def test_prune_deletes_runs_older_than_keep_and_keeps_newer_ones(store: Store) -> None:
    old = [NOW - timedelta(days=days) for days in (91, 120, 400)]
    new = [NOW - timedelta(days=days) for days in (89, 1)] + [NOW - timedelta(days=90, seconds=-1)]
    seed(store, "sync", old + new)
    # A run still in flight is never deleted, however old its slot.
    running = store.claim(job_id="sync", trigger="schedule", scheduled_at=NOW - timedelta(days=200),
                          idempotency_key="k", daemon_id="d", started_at=NOW,
                          status=RunStatus.RUNNING)
    prune = PruneHistory(store, lambda: timedelta(days=90))

    result = asyncio.run(prune(context()))

    assert result["success"] is True and result["data"]["deleted"] == 3
    assert "deleted 3 runs scheduled before 2026-03-03T04:17:00+00:00 (keep 90d)" in result["message"]
    assert remaining(store) == sorted([*new, NOW - timedelta(days=200)])
    assert store.run(running or 0) is not None


def test_prune_reads_keep_at_each_run(store: Store) -> None:
    seed(store, "sync", [NOW - timedelta(days=10), NOW - timedelta(days=40)])
    keep = {"value": timedelta(days=90)}
    prune = PruneHistory(store, lambda: keep["value"])
    assert asyncio.run(prune(context()))["data"]["deleted"] == 0
    keep["value"] = timedelta(days=30)  # a reload changed [store] keep
    assert asyncio.run(prune(context()))["data"]["deleted"] == 1


def test_prune_deletes_in_batches(store: Store) -> None:
    seed(store, "sync", [NOW - timedelta(days=100, minutes=m) for m in range(12)])
    assert store.prune(NOW - timedelta(days=90), batch=5) == 12
    assert remaining(store) == []


def test_prune_outside_a_daemon_fails_clearly() -> None:
    result = asyncio.run(prune_history(context()))
    assert result["success"] is False and "inside the cronhost daemon" in result["error"]


def test_the_builtin_job_is_added_unless_the_operator_declares_it() -> None:
    (job,) = builtin_jobs([{"id": "sync"}])
    assert job["id"] == "cronhost-prune-history" and job["schedule"] == "17 4 * * *"
    assert builtin_jobs([{"id": "cronhost-prune-history", "enabled": False}]) == []
    assert resolve_callable(job["call"]) is prune_history


def test_the_builtin_job_table_is_a_valid_job(tmp_path: Path) -> None:
    # Operator [defaults] (a short deadline, retries) must not change the built-in job.
    config = write_config(tmp_path, f"[[jobs]]\n{PRUNE_JOB_TOML}\n")
    job = load_config(config, resolve_secrets=False).job(PRUNE_JOB_ID)
    assert job is not None and job.kind == "python" and job.schedule == "17 4 * * *"
    assert job.deadline == 3600 and job.retries == 0 and job.timezone == "UTC"


def test_the_daemon_runs_the_prune_job_against_its_own_store(tmp_path: Path) -> None:
    db = tmp_path / "cronhost.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    now = datetime.now(UTC)
    seed(store, "sync", [now - timedelta(days=3), now - timedelta(days=2, hours=1),
                         now - timedelta(hours=1)])
    store.dispose()
    # Declared by the operator with a 1-second schedule, as an override of the built-in.
    table = PRUNE_JOB_TOML.replace('schedule = "17 4 * * *"', 'every = "1s"')
    config = write_config(tmp_path, f"[[jobs]]\n{table}\n", extra='[store]\nkeep = "2d"\n')
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        finish = daemon.wait_action("run.finish", job=PRUNE_JOB_ID, status="ok")[0]
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    with sqlite3.connect(db) as conn:
        jobs = [row[0] for row in conn.execute("SELECT job_id FROM runs ORDER BY scheduled_at")]
        message = conn.execute("SELECT message FROM runs WHERE id = ?", (finish["run_id"],)).fetchone()
    conn.close()
    # The two runs older than 2 days went; the recent one and the prune runs stay.
    assert jobs[0] == "sync" and jobs.count("sync") == 1
    assert message[0].startswith("deleted 2 runs scheduled before")
