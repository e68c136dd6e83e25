"""The store's contract, run on a SQLite file and on the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from jobs.outcome import Outcome, RunStatus
from scheduler.errors import SchemaError
from scheduler.store import Store, migrations

SLOT = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def claim(store: Store, job_id: str = "job-a", slot: datetime = SLOT, **kwargs: object) -> int | None:
    return store.claim(
        job_id=job_id, trigger=str(kwargs.pop("trigger", "schedule")), scheduled_at=slot,
        idempotency_key=f"{job_id}@{slot.isoformat()}", daemon_id=str(kwargs.pop("daemon_id", "d1")),
        started_at=slot + timedelta(milliseconds=5), **kwargs,  # type: ignore[arg-type]
    )


def test_a_slot_can_be_claimed_only_once(store: Store) -> None:
    first = claim(store)
    second = claim(store, daemon_id="d2")
    assert first is not None
    assert second is None
    assert [row.status for row in store.history("job-a")] == ["running"]


def test_manual_trigger_at_the_same_instant_does_not_collide_with_the_scheduled_slot(store: Store) -> None:
    assert claim(store) is not None
    assert claim(store, trigger="manual") is not None


def test_finish_records_outcome_and_failure_streak(store: Store) -> None:
    store.sync_jobs([_job_row("job-a")])
    for minute, status in enumerate([RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.OK, RunStatus.FAILED]):
        run_id = claim(store, slot=SLOT + timedelta(minutes=minute))
        assert run_id is not None
        store.finish(run_id, Outcome(status, attempts=3, http_status=503, error="HTTP 503",
                                     message="m", data={"sent": 4}), SLOT + timedelta(minutes=minute, seconds=2))
    rows = store.history("job-a")
    assert [row.status for row in rows] == ["failed", "ok", "timeout", "failed"]
    newest = rows[0]
    assert (newest.attempts, newest.http_status, newest.error, newest.message) == (3, 503, "HTTP 503", "m")
    assert newest.data == '{"sent": 4}'
    assert newest.duration_ms == 1995
    assert newest.lateness_ms == 5
    (job,) = store.jobs()
    assert job.consecutive_failures == 1
    assert job.last_success_at == SLOT + timedelta(minutes=2, seconds=2)


def test_missed_slots_are_recorded_once_each_and_never_twice(store: Store) -> None:
    slots = [SLOT + timedelta(minutes=i) for i in range(5)]
    assert store.record_missed("job-a", slots[:3], "down") == 3
    # A retry after an outage overlaps what was written: only the new slots are added.
    assert store.record_missed("job-a", slots, "down") == 2
    assert len(store.history("job-a")) == 5


def test_past_the_cap_one_summary_row_carries_count_and_range(store: Store) -> None:
    store.sync_jobs([_job_row("job-a")])
    slots = [SLOT + timedelta(seconds=i) for i in range(Store.MISSED_ROWS_CAP + 1)]
    store.record_missed("job-a", slots, "down")
    (row,) = store.history("job-a")
    assert (row.status, row.slot_count, row.scheduled_at, row.slot_until) == (
        "missed", len(slots), slots[0], slots[-1])
    assert store.counts_since(SLOT - timedelta(days=1)) == {"job-a": {"missed": len(slots)}}


def test_abandon_marks_runs_of_other_daemons_only(store: Store) -> None:
    mine = claim(store, daemon_id="me")
    theirs = claim(store, slot=SLOT + timedelta(minutes=1), daemon_id="dead")
    abandoned = store.abandon_running("the daemon died", except_daemon="me")
    assert [row.id for row in abandoned] == [theirs]
    assert store.run(theirs).status == "abandoned"  # type: ignore[union-attr]
    assert "the daemon died (found at" in store.run(theirs).error  # type: ignore[union-attr, operator]
    assert store.run(mine).status == "running"  # type: ignore[union-attr]


def test_history_is_newest_first_and_filtered(store: Store) -> None:
    for minute in range(3):
        claim(store, "job-a", SLOT + timedelta(minutes=minute))
        claim(store, "job-b", SLOT + timedelta(minutes=minute))
    rows = store.history("job-b", limit=2)
    assert [row.scheduled_at for row in rows] == [SLOT + timedelta(minutes=2), SLOT + timedelta(minutes=1)]
    assert {row.job_id for row in rows} == {"job-b"}
    assert len(store.history(limit=100)) == 6


def test_a_command_is_taken_by_exactly_one_daemon(store: Store) -> None:
    command_id = store.add_command("trigger", "job-a")
    assert [c.id for c in store.pending_commands()] == [command_id]
    assert store.take_command(command_id) is True
    assert store.take_command(command_id) is False
    store.finish_command(command_id, "done", "started", run_id=7)
    command = store.command(command_id)
    assert command is not None and (command.state, command.run_id) == ("done", 7)
    assert store.pending_commands() == []


def test_paused_state_persists_and_removed_jobs_keep_history(store: Store) -> None:
    store.sync_jobs([_job_row("job-a"), _job_row("job-b")])
    assert store.set_paused("job-a", True)
    claim(store, "job-b")
    store.sync_jobs([_job_row("job-a")])
    assert store.paused_jobs() == {"job-a"}
    assert [job.job_id for job in store.jobs()] == ["job-a"]
    assert [job.job_id for job in store.jobs(include_removed=True)] == ["job-a", "job-b"]
    assert len(store.history("job-b")) == 1


def test_daemon_heartbeat_tells_up_from_down(store: Store) -> None:
    store.register_daemon("d1", "/etc/cronhost/config.toml", "0.1.0")
    info = store.latest_daemon()
    assert info is not None and info.is_up()
    assert not info.is_up(now=info.last_beat_at + timedelta(seconds=31))
    store.record_config_error("d1", "bad schedule")
    store.daemon_stopped("d1")
    info = store.latest_daemon()
    assert info is not None and not info.is_up() and info.config_error == "bad schedule"


def test_prune_deletes_only_finished_runs_older_than_the_cutoff(store: Store) -> None:
    old = claim(store, slot=SLOT - timedelta(days=100))
    store.finish(old, Outcome(RunStatus.OK), SLOT - timedelta(days=100))  # type: ignore[arg-type]
    still_running_old = claim(store, slot=SLOT - timedelta(days=99))
    recent = claim(store, slot=SLOT)
    assert store.prune(SLOT - timedelta(days=90), batch=1) == 1
    assert {row.id for row in store.history(limit=10)} == {still_running_old, recent}


# -- schema versions --------------------------------------------------------------------------

# The schema as cronhost 0.1 (schema version 1) wrote it, before missed-slot ranges and the
# daemon status line existed. Kept verbatim so that upgrades are tested against real old stores.
V1_SCHEMA = [
    """CREATE TABLE cronhost_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL,
       cronhost_version VARCHAR(32) NOT NULL)""",
    """CREATE TABLE runs (id INTEGER PRIMARY KEY, job_id VARCHAR(64) NOT NULL,
       trigger VARCHAR(16) NOT NULL, scheduled_at TIMESTAMP NOT NULL, status VARCHAR(16) NOT NULL,
       attempts INTEGER NOT NULL, http_status INTEGER, started_at TIMESTAMP, finished_at TIMESTAMP,
       duration_ms INTEGER, lateness_ms INTEGER, error TEXT, message TEXT, data TEXT,
       response_excerpt TEXT, idempotency_key VARCHAR(160) NOT NULL, daemon_id VARCHAR(64),
       CONSTRAINT uq_runs_slot UNIQUE (job_id, trigger, scheduled_at))""",
    """CREATE TABLE job_state (job_id VARCHAR(64) PRIMARY KEY, kind VARCHAR(16) NOT NULL,
       schedule VARCHAR(128) NOT NULL, timezone VARCHAR(64) NOT NULL, target TEXT NOT NULL,
       description TEXT NOT NULL, enabled BOOLEAN NOT NULL, removed BOOLEAN NOT NULL,
       paused BOOLEAN NOT NULL, consecutive_failures INTEGER NOT NULL, last_success_at TIMESTAMP,
       updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE commands (id INTEGER PRIMARY KEY, kind VARCHAR(16) NOT NULL, job_id VARCHAR(64),
       requested_at TIMESTAMP NOT NULL, requested_by VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL,
       handled_at TIMESTAMP, result TEXT, run_id INTEGER)""",
    """CREATE TABLE daemons (id VARCHAR(64) PRIMARY KEY, hostname VARCHAR(255) NOT NULL,
       pid INTEGER NOT NULL, version VARCHAR(32) NOT NULL, started_at TIMESTAMP NOT NULL,
       last_beat_at TIMESTAMP NOT NULL, stopped_at TIMESTAMP, config_path TEXT NOT NULL,
       config_loaded_at TIMESTAMP, config_error TEXT, config_error_at TIMESTAMP)""",
    "INSERT INTO cronhost_schema VALUES (1, '2026-01-01 00:00:00', '0.1.0')",
    """INSERT INTO runs (job_id, trigger, scheduled_at, status, attempts, http_status,
       idempotency_key) VALUES ('calendar-sync', 'schedule', '2026-01-01 03:00:00', 'ok', 1, 200,
       'calendar-sync@2026-01-01T03:00:00Z')""",
    """INSERT INTO job_state VALUES ('calendar-sync', 'http', '*/15 * * * *', 'UTC', 'https://x/y',
       '', true, false, true, 0, NULL, '2026-01-01 00:00:00')""",
]


def _write_v1_store(url: str) -> None:
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        for statement in V1_SCHEMA:
            if url.startswith("postgresql"):
                statement = statement.replace("id INTEGER PRIMARY KEY, job_id", "id SERIAL PRIMARY KEY, job_id")
                statement = statement.replace("id INTEGER PRIMARY KEY, kind", "id SERIAL PRIMARY KEY, kind")
            conn.execute(sqlalchemy.text(statement))
    engine.dispose()


def test_an_old_store_is_upgraded_with_history_and_job_state_intact(store_url: str) -> None:
    _write_v1_store(store_url)
    store = Store(store_url)
    with pytest.raises(SchemaError, match="Start the daemon"):
        store.check_readable()  # readers say what to do instead of failing on missing columns
    assert store.migrate() == 1
    assert migrations.current_version(store.engine) == migrations.LATEST_VERSION
    (row,) = store.history()
    assert (row.job_id, row.status, row.http_status, row.slot_count) == ("calendar-sync", "ok", 200, 1)
    assert store.paused_jobs() == {"calendar-sync"}
    # and the upgraded store takes new writes
    assert claim(store, "calendar-sync") is not None
    store.dispose()


def test_a_store_from_a_newer_cronhost_is_refused_untouched(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(sqlalchemy.text(
            "INSERT INTO cronhost_schema VALUES (99, '2030-01-01 00:00:00', '9.0.0')"))
    with pytest.raises(SchemaError, match="schema version 99, written by a newer cronhost"):
        store.migrate()
    assert migrations.current_version(store.engine) == 99
    store.dispose()


def _job_row(job_id: str) -> dict[str, object]:
    return {"job_id": job_id, "kind": "http", "schedule": "* * * * *", "timezone": "UTC",
            "target": "https://example.invalid/x", "description": "", "enabled": True}


def test_a_daemon_whose_process_is_gone_on_this_host_is_down_at_once(store: Store) -> None:
    store.register_daemon("d1", "/etc/cronhost/config.toml", "0.1.0")
    with store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE daemons SET pid = :pid"), {"pid": _dead_pid()})
    info = store.latest_daemon()
    assert info is not None and not info.is_up()  # heartbeat fresh, process gone


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("error", [None, "HTTP 500"])
def test_an_outcome_that_comes_after_its_run_was_marked_abandoned_is_kept_and_says_so(
    store: Store, error: str | None
) -> None:
    from scheduler.store.batch import FinishedRun

    slot = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    abandoned = store.claim(job_id="late", trigger="schedule", scheduled_at=slot,
                            idempotency_key="late@slot", daemon_id="frozen-node",
                            started_at=slot)
    on_time = store.claim(job_id="late", trigger="schedule", scheduled_at=slot.replace(minute=1),
                          idempotency_key="late@slot2", daemon_id="frozen-node",
                          started_at=slot)
    assert abandoned is not None and on_time is not None
    # The node that took the lead gave up on the first (its deadline had passed)...
    store.abandon_running("abandoned: past its deadline", except_daemon="new-leader",
                          only=[abandoned])
    # ...then the frozen node came back with both answers.
    status = RunStatus.OK if error is None else RunStatus.FAILED
    store.write_runs([], [FinishedRun(run_id, "late", Outcome(status, attempts=1,
                                                              http_status=200, error=error),
                                      slot + timedelta(seconds=2), 2000)
                          for run_id in (abandoned, on_time)])
    late, kept = store.run(abandoned), store.run(on_time)
    assert late is not None and kept is not None
    assert late.status == kept.status == status.value  # the answer stands
    assert late.error is not None and "recorded late" in late.error
    assert (late.error.startswith(f"{error} · ") if error else late.error.startswith("recorded"))
    assert kept.error == error
