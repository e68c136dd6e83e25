"""Every attempt on record, as it happens, and typed JSON in `history --json` (issue 12).

The real daemon against the loopback endpoint: a 500 then a 200 leaves two attempt
rows; a daemon killed -9 in the middle of a request leaves the attempt it sent on
record; a Retry-After it honoured is written down; `data` is the endpoint's JSON value
and `error` cronhost's own reason, the endpoint's words being the `message`.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobs.attempts import AttemptRecord
from jobs.http import HttpJobRunner, HttpRequest
from jobs.outcome import Outcome, RunStatus
from scheduler.store import RunRow, Store
from scheduler.store.attempts import AttemptRow
from tests.daemon_harness import SECRET, DaemonProcess, cli, cli_json, started_daemon, write_config
from tests.endpoint_server import EndpointServer, Fault
from tests.test_tui import until
from tests.test_tui_fixtures import NOW, SHOWN_CONFIG, make_store
from tui.app import DashboardApp
from tui.screens.run_details import RunDetailsScreen

JOB = """
[[jobs]]
id = "{id}"
path = "/{id}"
schedule = "0 0 1 1 *"
timeout = "20s"
deadline = "20s"
retries = {retries}
"""


def screen_lines(svg: str) -> list[str]:
    """The text of a Textual screenshot, line by line (each span names its line's clip)."""
    lines: dict[int, str] = {}
    for number, text in re.findall(r'clip-path="url\(#[\w-]+-line-(\d+)\)"[^>]*>([^<]*)<', svg):
        lines[int(number)] = lines.get(int(number), "") + html.unescape(text)
    return [lines[n].replace("\xa0", " ") for n in sorted(lines)]


def job(job_id: str, retries: int = 1) -> str:
    return JOB.format(id=job_id, retries=retries)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def store_of(config: Path) -> Store:
    return Store(f"sqlite:///{config.parent / 'cronhost.db'}")


def trigger_and_wait(config: Path, job_id: str) -> dict[str, Any]:
    result = cli(config, "trigger", job_id, "--wait", "--json", timeout=60)
    assert result.returncode in (0, 1), result.stderr
    (row,) = [r for r in cli_json(config, "history", job_id) if r["trigger"] == "manual"]
    return dict(row)


@pytest.mark.slow
def test_a_500_then_a_200_leaves_two_attempts_in_the_store_and_in_history_json(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.program("/flaky", Fault.status(500))
    config = write_config(tmp_path, job("flaky"), base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)

    row = trigger_and_wait(config, "flaky")

    assert (row["status"], row["attempts"], row["error"]) == ("ok", 2, None)
    sent = endpoint.requests("/flaky")
    log = row["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2]
    assert [a["http_status"] for a in log] == [500, 200]
    assert [a["error_kind"] for a in log] == ["http_5xx", None]
    assert log[0]["error"] == "HTTP 500 Internal Server Error" and log[1]["error"] is None
    # The ids the endpoint received, one fresh per attempt, under one Idempotency-Key.
    assert [a["request_id"] for a in log] == [r.headers["x-request-id"] for r in sent]
    assert log[0]["request_id"] != log[1]["request_id"]
    assert len({r.headers["idempotency-key"] for r in sent}) == 1
    assert log[0]["sent_at"] < log[1]["sent_at"]
    assert all(isinstance(a["duration_ms"], int) and a["finished_at"] for a in log)
    assert log[0]["retry_after_ms"] is None  # a plain 500 has no Retry-After

    store = store_of(config)
    rows = store.run_attempts(row["id"])
    store.dispose()
    assert [(a.attempt, a.http_status) for a in rows] == [(1, 500), (2, 200)]
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_run_killed_9_mid_request_shows_what_was_sent_after_the_restart(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    # The first attempt is answered (500); the retry hangs until the daemon is killed.
    endpoint.program("/crash", Fault.status(500), Fault.hang(30))
    config = write_config(tmp_path, job("crash"), base_url=endpoint.url)
    first = DaemonProcess(config, tmp_path / "first.log")
    daemons.append(first)
    first.wait_started()
    assert cli(config, "trigger", "crash").returncode == 0
    endpoint.wait_for_requests("/crash", 2)
    store = store_of(config)
    # Written as it happens: the second attempt is on record while it is on the wire.
    wait_until(lambda: len(store.attempts_of(r.id for r in store.history("crash"))
                           .get(store.history("crash")[0].id, [])) == 2,
               "both attempts on record")
    # While it runs, `history` counts the attempts sent so far, not the 0 the row holds.
    (running,) = cli_json(config, "history", "crash")
    assert (running["status"], running["attempts"]) == ("running", 2)
    assert "running" in (text := cli(config, "history", "crash").stdout) and " 2 " in text
    first.kill()

    second = DaemonProcess(config, tmp_path / "second.log")
    daemons.append(second)
    second.wait_started()
    (row,) = cli_json(config, "history", "crash")
    assert row["status"] == "abandoned"
    assert (row["attempts"], row["http_status"]) == (2, 500)  # not "0 tries"
    answered, on_the_wire = row["attempt_log"]
    assert (answered["http_status"], answered["error_kind"]) == (500, "http_5xx")
    assert answered["finished_at"] is not None
    assert on_the_wire["attempt"] == 2 and on_the_wire["sent_at"]
    assert (on_the_wire["finished_at"], on_the_wire["http_status"]) == (None, None)
    assert on_the_wire["request_id"] == endpoint.requests("/crash")[1].headers["x-request-id"]
    history = cli(config, "history", "crash")
    assert "abandoned" in history.stdout and " 2 " in history.stdout
    store.dispose()
    assert second.stop() == 0


@pytest.mark.slow
def test_a_retry_after_that_was_honoured_is_on_record(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.program("/limited", Fault.rate_limited(1))
    config = write_config(tmp_path, job("limited"), base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)

    row = trigger_and_wait(config, "limited")

    assert row["status"] == "ok"
    waited, answered = row["attempt_log"]
    assert (waited["http_status"], waited["error_kind"], waited["retry_after_ms"]) == (
        429, "http_429", 1000)
    assert answered["retry_after_ms"] is None
    first, second = endpoint.requests("/limited")
    assert second.received_at - first.received_at >= 0.95
    assert daemon.stop() == 0


def test_a_retry_after_past_the_deadline_is_not_on_record_as_honoured(
    endpoint: EndpointServer,
) -> None:
    endpoint.set_default("/limited", Fault.rate_limited(120))
    sends: list[tuple[int, str | None]] = []
    ends: list[AttemptRecord] = []

    async def main() -> Outcome:
        request = HttpRequest(job_id="limited", url=endpoint.url + "/limited",
                              idempotency_key="limited@x", deadline=10, retries=2)
        async with HttpJobRunner(user_agent="cronhost/test") as runner:
            return await runner.run(request, ends.append,
                                    on_send=lambda n, rid, at: sends.append((n, rid)))

    outcome = asyncio.run(main())

    assert outcome.status is RunStatus.FAILED and outcome.attempts == 1
    assert [n for n, _ in sends] == [1] and sends[0][1] == ends[0].request_id
    assert (ends[0].http_status, ends[0].error_kind, ends[0].retry_after) == (
        429, "http_429", None)


@pytest.mark.slow
def test_data_is_the_endpoints_json_value_and_error_is_cronhosts_reason_only(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    data = {"processed": 42, "ids": [1, 2], "nested": {"ok": True}}
    endpoint.set_default("/report", Fault.ok({"success": True, "message": "done", "data": data}))
    endpoint.set_default("/counts", Fault.ok({"success": True, "data": [3, 1, 4]}))
    endpoint.set_default("/broken", Fault.status(500, {"success": False, "message": "db down"}))
    endpoint.set_default("/refused", Fault.success_false("no leads source configured"))
    config = write_config(tmp_path, job("report") + job("counts") + job("broken", retries=0)
                          + job("refused"), base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)

    report, counts = trigger_and_wait(config, "report"), trigger_and_wait(config, "counts")
    broken, refused = trigger_and_wait(config, "broken"), trigger_and_wait(config, "refused")

    assert (report["data"], report["data_truncated"], report["message"]) == (data, False, "done")
    assert counts["data"] == [3, 1, 4]
    assert (broken["error"], broken["message"]) == ("HTTP 500 Internal Server Error", "db down")
    assert broken["attempt_log"][0]["error"] == "HTTP 500 Internal Server Error"
    assert (refused["status"], refused["error"], refused["message"]) == (
        "failed", 'the endpoint answered "success": false', "no leads source configured")
    assert refused["attempt_log"][0]["error_kind"] == "success_false"
    # The text history: cronhost's reason, then the endpoint's words.
    text = cli(config, "history", "broken").stdout
    assert "ERROR · MESSAGE" in text
    assert "HTTP 500 Internal Server Error · db down" in text
    assert daemon.stop() == 0


def test_data_kept_only_as_a_prefix_is_marked_truncated(tmp_path: Path) -> None:
    config = write_config(tmp_path, job("big"))
    store = store_of(config)
    store.migrate()
    slot = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    run_id = store.claim(job_id="big", trigger="schedule", scheduled_at=slot,
                         idempotency_key="big@x", daemon_id="d", started_at=slot)
    assert run_id is not None
    store.finish(run_id, Outcome(RunStatus.OK, http_status=200, data={"rows": ["x" * 100] * 500}),
                 slot + timedelta(seconds=1))
    store.dispose()

    (row,) = cli_json(config, "history")

    assert row["data_truncated"] is True
    assert isinstance(row["data"], str) and row["data"].startswith('{"rows": ["xxx')
    assert len(row["data"]) == 16_384
    assert row["attempt_log"] == []


@pytest.mark.slow
def test_an_attempts_error_is_redacted_like_the_runs(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # The http job's token (CRON_SECRET, from [defaults]) makes it a secret cronhost knows.
    config = write_config(tmp_path, job("fine") + '[[jobs]]\nid = "leaky"\n'
                          'call = "tests.sample_callables:leaks_the_secret"\n'
                          'schedule = "0 0 1 1 *"\n')
    daemon = started_daemon(config, tmp_path, daemons)

    row = trigger_and_wait(config, "leaky")
    assert daemon.stop() == 0

    (attempt,) = row["attempt_log"]
    assert attempt["error"] == "PermissionError: token [REDACTED] was refused"
    assert (attempt["error_kind"], attempt["request_id"]) == ("python_exception", None)
    assert row["error"] == attempt["error"]
    store_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("cronhost.db*") if p.is_file())
    assert SECRET.encode() not in store_bytes
    assert SECRET not in json.dumps(row)


def test_a_secret_no_enabled_job_needs_is_redacted_too(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # Only Python jobs: nothing sends CRON_SECRET ([defaults] names it), yet a job may read
    # it from the environment and quote it. It is redacted all the same.
    config = write_config(tmp_path, '[[jobs]]\nid = "leaky"\n'
                          'call = "tests.sample_callables:leaks_the_secret"\n'
                          'schedule = "0 0 1 1 *"\n')
    daemon = started_daemon(config, tmp_path, daemons)

    row = trigger_and_wait(config, "leaky")
    assert daemon.stop() == 0

    assert row["error"] == "PermissionError: token [REDACTED] was refused"
    store_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("cronhost.db*") if p.is_file())
    assert SECRET.encode() not in store_bytes
    assert SECRET not in (tmp_path / "daemon.log").read_text()


def test_retention_deletes_the_attempts_of_pruned_runs(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    store.migrate()
    slots = [datetime(2026, 1, day, tzinfo=UTC) for day in (1, 20)]
    run_ids = []
    for slot in slots:
        run_id = store.claim(job_id="j", trigger="schedule", scheduled_at=slot,
                             idempotency_key=f"j@{slot.isoformat()}", daemon_id="d",
                             started_at=slot)
        assert run_id is not None
        store.write_runs([], [], [AttemptRow(run_id, 1, "r", slot, slot, 200, 5)])
        store.finish(run_id, Outcome(RunStatus.OK), slot)
        run_ids.append(run_id)

    assert store.prune(datetime(2026, 1, 10, tzinfo=UTC)) == 1

    assert set(store.attempts_of(run_ids)) == {run_ids[1]}
    store.dispose()


def run_details_lines(store: Store, run: RunRow, size: tuple[int, int]) -> list[str]:
    """The run details screen of ``run`` as text lines, once its attempts are read."""
    async def scenario() -> list[str]:
        app = DashboardApp(store, Path(SHOWN_CONFIG), clock=lambda: NOW)
        async with app.run_test(size=size) as pilot:
            screen = RunDetailsScreen(run, store, clock=lambda: NOW)
            app.push_screen(screen)
            await until(pilot, lambda: screen.attempts is not None, "the attempts")
            await pilot.pause()
            return screen_lines(app.export_screenshot())

    return asyncio.run(scenario())


def test_the_run_details_list_the_attempts(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    (run,) = [r for r in store.history("sync-mailboxes", limit=1)]
    sent = run.scheduled_at
    # The fixture's run has its first attempt (a 500) on record; two more follow it.
    store.write_runs([], [], [
        AttemptRow(run.id, 2, "req-two", sent, sent + timedelta(seconds=1), 429, 1000,
                   "http_429", "HTTP 429 Too Many Requests", 2000),
        AttemptRow(run.id, 3, "req-three", sent + timedelta(seconds=3)),
    ])

    shown = run_details_lines(store, run, (120, 40))
    header = next(line for line in shown if "sent at" in line)
    assert all(word in header for word in ("#", "status", "took", "error kind", "Retry-After"))
    first, second, third = (line for line in shown if "09:00:0" in line and "Z" in line
                            and ("HTTP" in line or "answer" in line))
    assert all(word in first for word in ("HTTP 500", "2.4s", "http_5xx"))
    assert all(word in second for word in ("HTTP 429", "1.0s", "http_429", "2.0s", "req-two"))
    assert "sent, no answer" in third and third.lstrip().startswith("3")


def test_at_80_columns_the_attempts_keep_every_column_but_the_request_id(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)
    (run,) = [r for r in store.history("sync-mailboxes", limit=1)]
    sent = run.scheduled_at
    store.write_runs([], [], [
        AttemptRow(run.id, 2, "req-two", sent, sent + timedelta(seconds=1), 429, 1000,
                   "http_429", "HTTP 429 Too Many Requests", 2000),
    ])

    shown = run_details_lines(store, run, (80, 24))
    header = next(line for line in shown if "sent at" in line)
    # Whole words: at 80 columns they used to be cut to "stat…", "t…", "Retry-…".
    assert all(word in header for word in ("#", "status", "took", "error kind", "Retry-After"))
    assert "request id" not in header
    second = next(line for line in shown if "http_429" in line)
    assert all(word in second for word in ("HTTP 429", "1.0s", "2.0s"))
    assert second.lstrip().startswith("2") and "…" not in second


def test_a_sent_attempt_is_completed_by_its_end_and_a_crash_counts_what_was_sent(
    store: Store,
) -> None:
    slot = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    run_id = store.claim(job_id="j", trigger="schedule", scheduled_at=slot,
                         idempotency_key="j@x", daemon_id="gone", started_at=slot)
    assert run_id is not None
    sent = [AttemptRow(run_id, n, f"r{n}", slot + timedelta(seconds=n)) for n in (1, 2)]
    answered = AttemptRow(run_id, 1, "r1", sent[0].sent_at, sent[0].sent_at, 503, 40, "http_5xx",
                          "HTTP 503 Service Unavailable", 1000)
    # One group commit with the send and the end of attempt 1, the next with attempt 2's
    # send and a late repeat of attempt 1's send, which must not blank its answer.
    store.write_runs([], [], [sent[0], answered])
    store.write_runs([], [], [sent[1], sent[0]])

    (abandoned,) = store.abandon_running("abandoned: the daemon died", except_daemon="new")

    first, second = store.run_attempts(run_id)
    assert (first.http_status, first.error_kind, first.retry_after_ms) == (503, "http_5xx", 1000)
    assert (second.request_id, second.finished_at, second.http_status) == ("r2", None, None)
    run = store.run(abandoned.id)
    assert run is not None and (run.status, run.attempts, run.http_status) == (
        "abandoned", 2, 503)
