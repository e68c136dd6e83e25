"""`cronhost trigger` as an operator uses it: a trigger during a run waits its turn, then runs.

The real daemon in a subprocess, a loopback endpoint whose `Fault.held` lets the test
decide when the scheduled run ends, the real CLI. Waits are conditions with generous
deadlines (a loaded CI machine is slow to start Python processes), never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler.run.turns import GRACE, JobTurns
from scheduler.views.text import when
from tests.daemon_harness import (
    REPO,
    DaemonProcess,
    cli,
    cli_env,
    cli_json,
    started_daemon,
    write_config,
)
from tests.endpoint_server import EndpointServer, Fault

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PATIENCE = 60.0  # seconds any one condition may take on a loaded machine


def trigger_in_background(config: Path, job: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli", "--config", str(config), "trigger", job,
         "--wait", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=PATIENCE * 2)
    return process.returncode, stdout, stderr


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {PATIENCE:g} s waiting for {what}")


def history(config: Path, job: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = cli_json(config, "history", job, "-n", "500")
    return rows


def test_a_trigger_during_a_scheduled_run_waits_for_it_then_runs(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    held = Fault.held()
    endpoint.program("/work", held)  # only the first request is held; later ones answer 200
    config = write_config(tmp_path, """
[[jobs]]
id = "work"
path = "/work"
every = "1s"
timeout = "50s"
deadline = "60s"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    endpoint.wait_for_requests("/work", 1, timeout=PATIENCE)
    (scheduled,) = [row for row in history(config, "work") if row["status"] == "running"]
    assert scheduled["trigger"] == "schedule"

    as_json = trigger_in_background(config, "work", "--json")
    daemon.wait_action("run.waiting", count=1, timeout=PATIENCE)
    as_text = trigger_in_background(config, "work")
    daemon.wait_action("run.waiting", count=2, timeout=PATIENCE)

    # Both are claimed `queued`, and nothing was sent for them while the first run lasts.
    queued = wait_until("two queued manual rows", lambda: [
        row for row in history(config, "work")
        if row["trigger"] == "manual" and row["status"] == "queued"])
    assert len(queued) == 2
    assert len(endpoint.requests("/work")) == 1

    held.release()
    code, stdout, stderr = finish(as_json)
    assert code == 0, stderr
    first = json.loads(stdout)
    assert first["status"] == "ok" and first["trigger"] == "manual"
    assert first["waited_for"] == scheduled["scheduled_at"]
    assert isinstance(first["waited_ms"], int) and first["waited_ms"] >= 0

    code, stdout, stderr = finish(as_text)
    assert code == 0, stderr
    # The second waited behind the first trigger, which waited behind the scheduled run.
    assert stdout.startswith("work: waited "), stdout
    slot = when(datetime.fromisoformat(first["scheduled_at"]))
    assert f"s for the run of {slot} to finish, then ran: ok" in stdout, stdout

    # One at a time throughout; scheduled slots meanwhile kept the overlap rule.
    assert endpoint.max_concurrent == 1
    rows = history(config, "work")
    assert all(row["trigger"] == "schedule" for row in rows if row["status"] == "skipped")
    assert daemon.stop() == 0


def test_a_trigger_behind_a_run_stuck_past_its_deadline_is_skipped_and_says_so(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    gate = tmp_path / "release-the-stuck-run"
    config = write_config(tmp_path, """
[[jobs]]
id = "stuck"
call = "tests.sample_callables:outlives_its_deadline"
schedule = "0 0 1 1 *"
timeout = "1s"
deadline = "1s"
""")
    daemon = DaemonProcess(config, tmp_path / "daemon.log", TEST_GATE_FILE=str(gate))
    daemons.append(daemon)
    daemon.wait_started()
    assert cli(config, "trigger", "stuck").returncode == 0  # the run that gets stuck
    daemon.wait_action("run.start", job="stuck", timeout=PATIENCE)

    result = cli(config, "trigger", "stuck", "--wait", timeout=PATIENCE * 2)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "waited" in result.stdout and "then gave up: skipped: the run of" in result.stdout
    assert "still running 5 s past its deadline" in result.stdout
    assert "nothing was sent" in result.stdout
    assert len(daemon.wait_action("run.start", job="stuck")) == 1  # the second never started

    gate.touch()
    daemon.wait_action("run.finish", count=2, job="stuck", timeout=PATIENCE)
    assert daemon.stop() == 0


def test_a_trigger_still_waiting_when_the_daemon_stops_is_missed_and_never_sent(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    held = Fault.held()
    endpoint.program("/work", held)
    config = write_config(tmp_path, """
[[jobs]]
id = "work"
path = "/work"
schedule = "0 0 1 1 *"
timeout = "50s"
deadline = "60s"
""", base_url=endpoint.url, extra='[daemon]\nshutdown_timeout = "120s"\n')
    daemon = started_daemon(config, tmp_path, daemons)
    assert cli(config, "trigger", "work").returncode == 0  # the run that is in flight
    endpoint.wait_for_requests("/work", 1, timeout=PATIENCE)
    waiting = trigger_in_background(config, "work")
    daemon.wait_action("run.waiting", timeout=PATIENCE)

    daemon.signal(signal.SIGTERM)
    daemon.wait_action("daemon.draining", timeout=PATIENCE)
    held.release()  # the run in flight finishes; the waiting trigger must not start then
    code, stdout, stderr = finish(waiting)
    assert code == 1, stderr
    assert "then gave up: missed" in stdout and "the daemon was stopping" in stdout, stdout
    assert daemon.wait(PATIENCE) == 0
    assert len(endpoint.requests("/work")) == 1


def test_rerunning_a_slot_that_ran_ok_asks_for_force_a_failed_one_does_not(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, """
[[jobs]]
id = "nightly"
path = "/nightly"
schedule = "0 3 * * *"
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    ok = cli_json(config, "trigger", "nightly", "--wait")
    endpoint.program("/nightly", Fault.status(401))  # not retried: one failed attempt
    failed = cli(config, "trigger", "nightly", "--wait", "--json")
    assert failed.returncode == 1
    failed_slot = json.loads(failed.stdout)["scheduled_at"]

    refused = cli(config, "trigger", "nightly", "--slot", ok["scheduled_at"])
    assert refused.returncode == 2
    assert "already ran ok" in refused.stderr and "--force" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr

    forced = cli(config, "trigger", "nightly", "--slot", ok["scheduled_at"], "--force", "--wait")
    assert forced.returncode == 0, forced.stderr
    again = cli(config, "trigger", "nightly", "--slot", failed_slot, "--wait")
    assert again.returncode == 0, again.stderr
    keys = [request.headers["idempotency-key"] for request in endpoint.requests("/nightly")]
    assert keys[2] == keys[0] and keys[3] == keys[1]  # the re-runs reuse their slots' keys
    # The failed slot's re-run went ok: the slot ran ok, whichever row says so.
    twice = cli(config, "trigger", "nightly", "--slot", failed_slot)
    assert twice.returncode == 2 and "already ran ok" in twice.stderr, twice.stderr
    assert len(endpoint.requests("/nightly")) == 4
    assert daemon.stop() == 0


# -- the turn keeping itself, without a daemon ---------------------------------------------

def test_a_waiting_trigger_goes_when_the_runs_ahead_leave_in_claim_order() -> None:
    async def main() -> None:
        turns = JobTurns()
        slot = datetime(2026, 12, 2, 3, tzinfo=UTC)
        turns.enter("job", 1, slot, ends_by=time.monotonic() + 600)
        turns.enter("job", 2, slot.replace(minute=1), ends_by=time.monotonic() + 600, waits=True)
        turns.enter("job", 3, slot.replace(minute=2), ends_by=time.monotonic() + 600, waits=True)
        second = asyncio.create_task(turns.wait_turn("job", 2))
        third = asyncio.create_task(turns.wait_turn("job", 3))
        await asyncio.sleep(0)
        assert turns.waiting("job") and not second.done() and not third.done()
        turns.leave("job", 1)
        wait = await second
        assert wait.may_run and wait.waited_for is not None and wait.waited_for.run_id == 1
        assert not third.done()  # still behind the second
        turns.started("job", 2, ends_by=time.monotonic() + 600)
        turns.leave("job", 2)
        wait = await third
        assert wait.may_run and wait.waited_for is not None and wait.waited_for.run_id == 2
        assert not turns.waiting("job")

    asyncio.run(main())


def test_a_trigger_behind_a_run_past_its_deadline_plus_grace_does_not_wait() -> None:
    async def main() -> None:
        turns = JobTurns()
        slot = datetime(2026, 12, 2, 3, tzinfo=UTC)
        turns.enter("job", 1, slot, ends_by=time.monotonic() - GRACE - 1)
        turns.enter("job", 2, slot, ends_by=time.monotonic() + 600, waits=True)
        wait = await turns.wait_turn("job", 2)
        assert not wait.may_run and wait.stuck is not None and wait.stuck.run_id == 1

    asyncio.run(main())
