"""Never lose or duplicate a slot: downtime, reloads, pause, faults, shutdown.

Every test runs the real daemon as a subprocess against the loopback endpoint and
asserts on the `runs` table: each slot in the window has exactly one row.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from scheduler.config import PRUNE_JOB_ID
from scheduler.store import Store
from tests.daemon_harness import DaemonProcess, cli, cli_json, hanging_job_config, write_config
from tests.endpoint_server import EndpointServer, Fault

pytestmark = pytest.mark.slow

TICK_EVERY_SECOND = '[[jobs]]\nid = "tick"\npath = "/tick"\nevery = "1s"\n'


def start(daemons: list[DaemonProcess], config: Path, name: str) -> DaemonProcess:
    daemon = DaemonProcess(config, config.parent / f"{name}.log")
    daemons.append(daemon)
    daemon.wait_started()
    return daemon


def slot_rows(tmp_path: Path, job_id: str) -> list[tuple[datetime, str, int]]:
    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    try:
        rows = store.runs_for_slots(job_id, datetime(2000, 1, 1).astimezone(), datetime(2100, 1, 1).astimezone())
        return [(row.scheduled_at, row.status, row.slot_count) for row in rows if row.trigger == "schedule"]
    finally:
        store.dispose()


def assert_every_slot_once(rows: list[tuple[datetime, str, int]], step: timedelta) -> Counter[str]:
    """Every grid slot from the first to the last row has exactly one row."""
    slots = [slot for slot, _, _ in rows]
    assert len(slots) == len(set(slots)), "a slot has two rows"
    expected = int((slots[-1] - slots[0]) / step) + 1
    assert sum(count for _, _, count in rows) == expected, f"slots lost: {rows}"
    return Counter(status for _, status, _ in rows)


def test_downtime_slots_within_grace_run_once_and_every_other_slot_is_recorded_missed(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    # allow_overlap: on a loaded machine one run of a 1-second job can take over a second;
    # the slot after it would be `skipped`, which is overlap's business, not downtime's.
    config = write_config(tmp_path, """
[[jobs]]
id = "tick"
path = "/tick"
every = "1s"
misfire_grace = "3s"
allow_overlap = true
""", base_url=endpoint.url)
    first = start(daemons, config, "first")
    first.wait_action("run.finish", count=2)
    assert first.stop() == 0
    # Six or more slots pass while the daemon is down: three fall within the 3 s grace at
    # the restart (one runs, the others are coalesced into it) whatever the fraction of a
    # second the restart lands on; with a 2 s grace that was sometimes one slot, nothing
    # to coalesce. The rest are past the grace.
    time.sleep(6)
    second = start(daemons, config, "second")
    second.wait_action("run.finish", count=2)
    assert second.stop() == 0

    statuses = assert_every_slot_once(slot_rows(tmp_path, "tick"), timedelta(seconds=1))
    assert statuses["missed"] >= 3
    assert set(statuses) == {"ok", "missed"}
    errors = [row["error"] for row in cli_json(config, "history", "-n", "50") if row["status"] == "missed"]
    assert any("coalesced into the run of slot" in e for e in errors)
    assert any("past misfire_grace 3s" in e for e in errors)
    # the endpoint saw each idempotency key once: nothing ran twice
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys)) == statuses["ok"]


def test_catch_up_false_records_downtime_slots_missed_and_runs_nothing_late(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, """
[[jobs]]
id = "tick"
path = "/tick"
every = "1s"
catch_up = false
""", base_url=endpoint.url)
    first = start(daemons, config, "first")
    first.wait_action("run.finish", count=1)
    assert first.stop() == 0
    time.sleep(3)
    second = start(daemons, config, "second")
    second.wait_action("run.missed")
    second.wait_action("run.finish", count=1)
    assert second.stop() == 0
    rows = slot_rows(tmp_path, "tick")
    statuses = assert_every_slot_once(rows, timedelta(seconds=1))
    assert statuses["missed"] >= 2
    run_lateness = [row["lateness_ms"] for row in cli_json(config, "history", "-n", "50") if row["status"] == "ok"]
    assert max(run_lateness) < 900  # no run started late for a downtime slot


def test_valid_reload_adds_reschedules_removes_and_keeps_unchanged_next_fire_time(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    jobs = {
        "keep": '[[jobs]]\nid = "keep"\npath = "/keep"\nschedule = "0 0 1 1 *"\n',
        "change": '[[jobs]]\nid = "change"\npath = "/change"\nschedule = "0 0 1 1 *"\n',
        "drop": '[[jobs]]\nid = "drop"\npath = "/drop"\nevery = "1s"\n',
    }
    config = write_config(tmp_path, "".join(jobs.values()), base_url=endpoint.url)
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", job="drop")
    before = {row["job_id"]: row for row in cli_json(config, "status")["jobs"]}

    write_config(tmp_path, jobs["keep"]
                 + '[[jobs]]\nid = "change"\npath = "/change"\nevery = "1s"\n'
                 + '[[jobs]]\nid = "new"\ncall = "tests.sample_callables:greet"\nevery = "1s"\n',
                 base_url=endpoint.url)
    daemon.signal(signal.SIGHUP)
    (reloaded,) = daemon.wait_action("config.reloaded")
    assert (reloaded["added"], reloaded["rescheduled"], reloaded["removed"]) == (["new"], ["change"], ["drop"])
    # the schedule edit takes effect without a restart
    daemon.wait_action("run.finish", job="change")
    daemon.wait_action("run.finish", job="new")
    after = {row["job_id"]: row for row in cli_json(config, "status")["jobs"]}
    assert daemon.stop() == 0

    assert after["keep"]["next_run_at"] == before["keep"]["next_run_at"]
    assert set(after) == {"keep", "change", "new", PRUNE_JOB_ID}
    assert cli_json(config, "history", "drop")  # a removed job keeps its history


def test_invalid_reload_changes_nothing_and_is_shown_in_status(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    good = TICK_EVERY_SECOND
    config = write_config(tmp_path, good, base_url=endpoint.url,
                          extra='[daemon]\nwatch_config = true\n')
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", count=1)
    write_config(tmp_path, good.replace('every = "1s"', 'schedule = "99 * * * *"'), base_url=endpoint.url,
                 extra='[daemon]\nwatch_config = true\n')
    (failure,) = daemon.wait_action("config.reload_failed")  # the file watch noticed, no SIGHUP
    assert "job 'tick'" in failure["error"] and "field 'schedule'" in failure["error"]
    finished = len(daemon.wait_action("run.finish"))
    daemon.wait_action("run.finish", count=finished + 2)  # the old jobs keep running
    status = cli(config, "status")
    assert "config reload failed at" in status.stdout and "field 'schedule'" in status.stdout
    assert cli_json(config, "status")["daemon"]["config_error"]
    refused = cli(config, "reload")  # the operator asks again: told why, exit 2
    assert refused.returncode == 2 and "field 'schedule'" in refused.stderr
    write_config(tmp_path, good, base_url=endpoint.url, extra='[daemon]\nwatch_config = true\n')
    accepted = cli(config, "reload")
    assert accepted.returncode == 0 and accepted.stdout.startswith("reloaded:")
    assert cli_json(config, "status")["daemon"]["config_error"] is None
    assert daemon.stop() == 0


def test_pause_persists_across_restart_and_paused_slots_are_neither_run_nor_missed(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url)
    daemon = start(daemons, config, "first")
    daemon.wait_action("run.finish", count=1)
    assert cli(config, "pause", "tick").returncode == 0
    daemon.wait_action("job.pause")
    assert daemon.stop() == 0
    rows_when_paused = len(slot_rows(tmp_path, "tick"))

    daemon = start(daemons, config, "second")
    time.sleep(2.5)
    assert len(slot_rows(tmp_path, "tick")) == rows_when_paused
    paused = {row["job_id"]: row["paused"] for row in cli_json(config, "status")["jobs"]}
    assert paused == {"tick": True, PRUNE_JOB_ID: False}
    assert cli(config, "resume", "tick").returncode == 0
    daemon.wait_action("run.finish", count=1)
    assert daemon.stop() == 0
    statuses = Counter(status for _, status, _ in slot_rows(tmp_path, "tick"))
    assert statuses["missed"] == 0


def test_one_hanging_job_never_delays_another_jobs_fire_time(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.set_default("/hang", Fault.hang(10))
    endpoint.set_default("/storm", Fault.status(503))
    config = write_config(tmp_path, """
[[jobs]]
id = "hang"
path = "/hang"
every = "1s"
timeout = "1500ms"
deadline = "3s"

[[jobs]]
id = "storm"
path = "/storm"
every = "1s"
retries = 3

[[jobs]]
id = "tick"
path = "/tick"
every = "1s"
""", base_url=endpoint.url)
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", count=2, job="hang", timeout=20)
    assert daemon.stop() == 0
    history = cli_json(config, "history", "-n", "100")
    by_job: dict[str, list[dict[str, object]]] = {}
    for row in history:
        by_job.setdefault(str(row["job_id"]), []).append(row)
    assert {row["status"] for row in by_job["hang"]} <= {"timeout", "skipped"}
    assert any(row["status"] == "timeout" for row in by_job["hang"])
    assert {row["status"] for row in by_job["storm"]} <= {"failed", "skipped"}
    ticks = [row for row in by_job["tick"] if row["status"] == "ok"]
    assert len(ticks) >= 3
    assert max(int(row["lateness_ms"]) for row in ticks) < 250  # type: ignore[call-overload]
    for job_id in ("hang", "storm", "tick"):
        assert_every_slot_once(slot_rows(tmp_path, job_id), timedelta(seconds=1))


# DNS and TLS failures are proved at the job-kind level (tests/test_http_job.py): a failing
# lookup here would query the machine's resolver, which is not on loopback.
def test_every_kind_of_endpoint_fault_ends_as_a_recorded_run_and_the_daemon_keeps_going(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.set_default("/reset", Fault.reset())
    endpoint.set_default("/busy", Fault.rate_limited(120))
    endpoint.set_default("/huge", Fault.huge(8 * 1024 * 1024))
    endpoint.set_default("/latin1", Fault.non_utf8())
    endpoint.set_default("/soft-fail", Fault.success_false("quota exceeded"))
    endpoint.set_default("/not-json", Fault.bad_json())
    jobs = "".join(
        f'[[jobs]]\nid = "{name}"\npath = "/{name}"\nevery = "2s"\n'
        for name in ("reset", "busy", "huge", "latin1", "soft-fail", "not-json")
    )
    config = write_config(tmp_path, jobs, base_url=endpoint.url)
    daemon = start(daemons, config, "daemon")
    for job_id in ("reset", "busy", "huge", "latin1", "soft-fail", "not-json"):
        daemon.wait_action("run.finish", job=job_id, timeout=20)
    assert daemon.process.poll() is None  # still running
    assert daemon.stop() == 0

    last = {row["job_id"]: row for row in reversed(cli_json(config, "history", "-n", "200"))
            if row["status"] != "skipped"}
    expected = {
        "reset": ("failed", "reset"),
        "busy": ("failed", "Retry-After 120 s is past"),
        "huge": ("ok", None),
        "latin1": ("ok", None),
        # cronhost's reason is the error; the endpoint's words are the message.
        "soft-fail": ("failed", '"success": false'),
        "not-json": ("ok", None),
    }
    for job_id, (status, words) in expected.items():
        assert last[job_id]["status"] == status, last[job_id]
        if words:
            assert words in last[job_id]["error"], last[job_id]
        assert_every_slot_once(slot_rows(tmp_path, job_id), timedelta(seconds=2))
    assert last["soft-fail"]["message"] == "quota exceeded"
    assert len(endpoint.requests("/busy")) == sum(  # 429 past the deadline: no retry
        1 for _, status, _ in slot_rows(tmp_path, "busy") if status == "failed")


def test_sigterm_waits_shutdown_timeout_then_marks_the_run_abandoned(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = hanging_job_config(tmp_path, endpoint, extra='[daemon]\nshutdown_timeout = "1s"\n')
    daemon = start(daemons, config, "daemon")
    assert cli(config, "trigger", "hang").returncode == 0
    daemon.wait_action("run.start")
    endpoint.wait_for_requests("/hang", 1)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    (row,) = cli_json(config, "history")
    assert row["status"] == "abandoned" and "after waiting 1 s" in row["error"]


# -- database faults --------------------------------------------------------------------------


def test_a_locked_sqlite_file_delays_slots_but_loses_and_duplicates_none(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    import sqlite3

    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url)
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", count=2)
    other_writer = sqlite3.connect(tmp_path / "cronhost.db", timeout=10)
    other_writer.execute("BEGIN EXCLUSIVE")
    time.sleep(4)  # several slots fall due while another process holds the write lock
    other_writer.rollback()
    other_writer.close()
    done = len(daemon.wait_action("run.finish"))
    daemon.wait_action("run.finish", count=done + 3, timeout=20)  # it recovered by itself
    assert daemon.stop() == 0
    assert any(r.get("action") == "store.error" for r in daemon.records())
    statuses = assert_every_slot_once(slot_rows(tmp_path, "tick"), timedelta(seconds=1))
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys)) == statuses["ok"]


@pytest.mark.postgres
def test_postgres_connections_killed_under_the_daemon_lose_and_duplicate_no_slot(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess], postgres_url: str
) -> None:
    import sqlalchemy

    from tests.conftest import PG_ADMIN_URL

    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url, store_url=postgres_url)
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", count=2)
    database = sqlalchemy.engine.make_url(postgres_url).database
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for _ in range(3):
            killed = conn.execute(sqlalchemy.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database}).scalar()
            assert killed
            time.sleep(1.2)
    admin.dispose()
    done = len(daemon.wait_action("run.finish"))
    daemon.wait_action("run.finish", count=done + 3, timeout=20)
    assert daemon.stop() == 0

    store = Store(postgres_url)
    rows = [(r.scheduled_at, r.status, r.slot_count)
            for r in store.runs_for_slots("tick", datetime(2000, 1, 1).astimezone(),
                                          datetime(2100, 1, 1).astimezone())]
    store.dispose()
    statuses = assert_every_slot_once(rows, timedelta(seconds=1))
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys)) == statuses["ok"]


def test_sighup_while_the_store_is_locked_keeps_the_daemon_and_applies_the_edit_later(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    import sqlite3

    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url)
    daemon = start(daemons, config, "daemon")
    daemon.wait_action("run.finish", count=1)
    write_config(tmp_path, TICK_EVERY_SECOND + '[[jobs]]\nid = "tock"\npath = "/tock"\nevery = "1s"\n',
                 base_url=endpoint.url)
    other_writer = sqlite3.connect(tmp_path / "cronhost.db", timeout=10)
    other_writer.execute("BEGIN EXCLUSIVE")
    daemon.signal(signal.SIGHUP)
    daemon.wait_action("config.reload_retry", timeout=20)
    other_writer.rollback()
    other_writer.close()
    (reloaded,) = daemon.wait_action("config.reloaded", timeout=20)
    assert reloaded["added"] == ["tock"]
    daemon.wait_action("run.finish", job="tock", timeout=20)
    assert daemon.stop() == 0


def test_a_second_daemon_on_the_same_store_is_refused(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url)
    first = start(daemons, config, "first")
    second = DaemonProcess(config, tmp_path / "second.log")
    daemons.append(second)
    assert second.wait(timeout=30) == 1
    message = (tmp_path / "second.log").read_text()
    assert "another cronhost daemon is running on" in message and f"pid {first.process.pid}" in message
    assert "Traceback" not in message
    first.wait_action("run.finish", count=2)  # the first one never noticed
    assert first.stop() == 0


@pytest.mark.postgres
def test_a_second_daemon_on_the_same_postgres_store_is_refused(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess], postgres_url: str
) -> None:
    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url, store_url=postgres_url)
    first = start(daemons, config, "first")
    second = DaemonProcess(config, tmp_path / "second.log")
    daemons.append(second)
    assert second.wait(timeout=30) == 1
    assert "another cronhost daemon is running on" in (tmp_path / "second.log").read_text()
    assert first.stop() == 0
    third = start(daemons, config, "third")  # the lock went with the first daemon
    assert third.stop() == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_standby_daemon_takes_over_when_the_running_one_is_killed(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess],
    request: pytest.FixtureRequest, backend: str,
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    config = write_config(tmp_path, TICK_EVERY_SECOND,
                          base_url=endpoint.url, store_url=url)
    leader = start(daemons, config, "leader")
    leader.wait_action("run.finish", count=2)
    standby = DaemonProcess(config, tmp_path / "standby.log", "--standby")
    daemons.append(standby)
    standby.wait_action("daemon.standby")
    assert not [r for r in standby.records() if r.get("action") == "run.start"]
    leader.kill()
    standby.wait_action("daemon.leading", timeout=15)
    standby.wait_action("run.finish", count=2, timeout=15)
    assert standby.stop() == 0

    store = Store(url or f"sqlite:///{tmp_path / 'cronhost.db'}")
    rows = [(r.scheduled_at, r.status, r.slot_count)
            for r in store.runs_for_slots("tick", datetime(2000, 1, 1).astimezone(),
                                          datetime(2100, 1, 1).astimezone())]
    store.dispose()
    assert_every_slot_once(rows, timedelta(seconds=1))
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys))
