"""The daemon as an operator runs it: a subprocess, a loopback endpoint, a real store."""

from __future__ import annotations

import signal
import statistics
import time
from pathlib import Path

import pytest

from scheduler.config import PRUNE_JOB_ID
from scheduler.store import Store
from tests.daemon_harness import (
    SECRET,
    DaemonProcess,
    cli,
    cli_json,
    hanging_job_config,
    started_daemon,
    write_config,
)
from tests.endpoint_server import EndpointServer, Fault

pytestmark = pytest.mark.slow

HISTORY_FIELDS = {"job_id", "scheduled_at", "started_at", "finished_at", "status", "attempts",
                  "http_status", "duration_ms", "lateness_ms", "error", "message"}
STATUS_FIELDS = {"job_id", "kind", "schedule", "timezone", "next_run_at", "enabled", "paused",
                 "last_status", "last_run_at", "last_duration_ms"}


def test_daemon_fires_every_second_jobs_and_history_shows_them(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, """
[[jobs]]
id = "email-queue"
path = "/api/cron/process-email-queue"
every = "1s"

[[jobs]]
id = "greeter"
call = "tests.sample_callables:greet"
every = "1s"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    daemon.wait_action("run.finish", count=4, job="email-queue")
    daemon.wait_action("run.finish", count=2, job="greeter")
    assert daemon.stop() == 0

    history = cli_json(config, "history", "email-queue", "-n", "50")
    assert len(history) >= 4
    assert set(history[0]) >= HISTORY_FIELDS
    assert {row["status"] for row in history} == {"ok"}
    assert [row["scheduled_at"] for row in history] == sorted(
        (row["scheduled_at"] for row in history), reverse=True)
    assert all(row["http_status"] == 200 and row["message"] == "ok" for row in history)
    lateness = [row["lateness_ms"] for row in history]
    # Slots are whole seconds; a daemon idling between them starts each within a few ms.
    print(f"\nlateness of 1-second jobs (ms): median {statistics.median(lateness)}, max {max(lateness)}")
    assert statistics.median(lateness) < 250

    requests = endpoint.requests("/api/cron/process-email-queue")
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in requests)
    assert all(r.headers["user-agent"].startswith("cronhost/") for r in requests)
    keys = [r.headers["idempotency-key"] for r in requests]
    assert len(set(keys)) == len(keys)
    assert keys[0].startswith("email-queue@") and keys[0].endswith("Z")

    greeter = cli_json(config, "history", "greeter")
    assert {row["status"] for row in greeter} == {"ok"}
    assert greeter[0]["message"].startswith("hello")

    status = cli_json(config, "status")
    assert status["daemon"]["up"] is False and status["daemon"]["stopped_at"]
    rows = {row["job_id"]: row for row in status["jobs"]}
    assert set(rows) == {"email-queue", "greeter", PRUNE_JOB_ID}
    assert rows[PRUNE_JOB_ID]["kind"] == "python"
    # The daemon is stopped: no job shows a next run that would not happen.
    assert {row["next_run_at"] for row in rows.values()} == {None}
    assert set(rows["email-queue"]) >= STATUS_FIELDS
    assert rows["email-queue"]["last_status"] == "ok" and rows["email-queue"]["schedule"] == "every 1s"

    raw = (tmp_path / "daemon.log").read_text() + (tmp_path / "cronhost.db").read_bytes().decode("latin-1")
    assert SECRET not in raw


def test_a_slot_that_comes_while_the_previous_run_runs_is_skipped(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.set_default("/slow", Fault.slow(2.5))
    config = write_config(tmp_path, """
[[jobs]]
id = "slow"
path = "/slow"
every = "1s"
timeout = "5s"
deadline = "5s"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    daemon.wait_action("run.skipped", count=2)
    daemon.wait_action("run.finish", count=1)
    assert daemon.stop() == 0
    assert endpoint.max_concurrent == 1
    statuses = [row["status"] for row in cli_json(config, "history", "-n", "20")]
    assert "skipped" in statuses and "ok" in statuses


def test_trigger_wait_runs_the_job_now_and_prints_the_result(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, """
[[jobs]]
id = "nightly"
path = "/api/cron/nightly"
schedule = "0 3 * * *"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    result = cli(config, "trigger", "nightly", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    assert '"status": "ok"' in result.stdout and '"trigger": "manual"' in result.stdout
    (request,) = endpoint.requests("/api/cron/nightly")
    assert request.headers["idempotency-key"].startswith("nightly@manual:")

    endpoint.program("/api/cron/nightly", Fault.status(401))
    failed = cli(config, "trigger", "nightly", "--wait")
    assert failed.returncode == 1
    assert "nightly: failed" in failed.stdout and "401" in failed.stdout
    assert daemon.stop() == 0


def test_trigger_says_so_when_the_daemon_is_down(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n')
    never_ran = cli(config, "trigger", "a")
    assert never_ran.returncode == 2 and "no store at" in never_ran.stderr
    assert not (tmp_path / "cronhost.db").exists()  # asking does not create an empty store

    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    store.migrate()
    store.dispose()
    result = cli(config, "trigger", "a")
    assert result.returncode == 1
    assert "the daemon is not running" in result.stderr and "Traceback" not in result.stderr
    unknown = cli(config, "trigger", "zzz")
    assert unknown.returncode == 2 and "no job 'zzz'" in unknown.stderr


def test_next_prints_fire_times_for_a_job_or_an_expression(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[jobs]]\nid = "paris"\npath = "/a"\nschedule = "30 9 * * 1"\n'
                          'timezone = "Europe/Paris"\n')
    times = cli_json(config, "next", "paris", "-n", "2", "--after", "2026-03-27T00:00:00Z")
    assert times == ["2026-03-30T09:30:00+02:00", "2026-04-06T09:30:00+02:00"]
    sundays = cli_json(config, "next", "0 9 * * 7", "-n", "1", "--after", "2026-11-29T10:00:00Z")
    assert sundays == ["2026-12-06T09:00:00+00:00"]
    bad = cli(config, "next", "61 * * * *")
    assert bad.returncode == 2 and "minute 61" in bad.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_lets_a_run_in_flight_finish_and_records_it(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess], stop_signal: int
) -> None:
    endpoint.set_default("/work", Fault.slow(1.5))
    config = write_config(tmp_path, """
[[jobs]]
id = "work"
path = "/work"
schedule = "0 0 1 1 *"
timeout = "5s"
deadline = "5s"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    assert cli(config, "trigger", "work").returncode == 0
    daemon.wait_action("run.start")
    daemon.signal(stop_signal)
    started = time.monotonic()
    assert daemon.wait() == 0
    assert time.monotonic() - started > 0.5  # it waited for the run
    (row,) = cli_json(config, "history")
    assert row["status"] == "ok"


def test_kill_9_mid_run_leaves_the_run_abandoned_on_restart_not_rerun(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = hanging_job_config(tmp_path, endpoint)
    first = DaemonProcess(config, tmp_path / "first.log")
    daemons.append(first)
    first.wait_started()
    assert cli(config, "trigger", "hang").returncode == 0
    first.wait_action("run.start")
    endpoint.wait_for_requests("/hang", 1)
    first.kill()
    (row,) = cli_json(config, "history")
    assert row["status"] == "running"

    second = DaemonProcess(config, tmp_path / "second.log")
    daemons.append(second)
    second.wait_started()
    (row,) = cli_json(config, "history")
    assert row["status"] == "abandoned"
    assert "found at" in row["error"]
    assert len(endpoint.requests("/hang")) == 1  # not re-run automatically
    # The audit log says the first daemon died, and what it left; once, not at each start.
    died = [e for e in cli_json(config, "log") if e["kind"] == "daemon.died"]
    assert [(e["detail"]["pid"], e["detail"]["abandoned"]) for e in died] == [
        (first.process.pid, 1)], died
    assert "kill -9" in died[0]["summary"]

    # The operator re-runs that slot: the endpoint gets the same Idempotency-Key again.
    endpoint.set_default("/hang", Fault.ok())
    replay = cli(config, "trigger", "hang", "--slot", row["scheduled_at"], "--wait")
    assert replay.returncode == 0, replay.stderr
    first_key, replay_key = (r.headers["idempotency-key"] for r in endpoint.requests("/hang"))
    assert replay_key == first_key
    assert second.stop() == 0
    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    assert store.history()[0].finished_at is not None
    store.dispose()
    third = started_daemon(config, tmp_path, daemons)
    assert third.stop() == 0
    assert [e["kind"] for e in cli_json(config, "log")].count("daemon.died") == 1
