"""`cronhost compare`: a synthetic old log against real cronhost history in a SQLite store.

The old log is made from cronhost's own runs, then slots are removed from it (they
must come back as ``only_cronhost``), added to it (``only_old``) and given the other
status (``status_mismatch``); nothing else may be reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobs.outcome import Outcome, RunStatus
from scheduler.schedule import slot_key
from scheduler.store import Store
from tests.test_migrate_helpers import run_cli

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # the parallel week starts
BASE = "https://www.example.com"


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Store]]:
    db = tmp_path / "cronhost.db"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[store]
url = "sqlite:///{db}"

[defaults]
base_url = "{BASE}"
secret = "CRON_SECRET"

[[jobs]]
id = "sync-mailboxes"
path = "/api/cron/sync-mailboxes"
schedule = "*/5 * * * *"

[[jobs]]
id = "process-email-queue"
path = "/api/cron/process-email-queue"
schedule = "* * * * *"
""")
    store = Store(f"sqlite:///{db}")
    store.migrate()
    try:
        yield config, store
    finally:
        store.dispose()


def record(store: Store, job_id: str, slot: datetime, ok: bool = True, late_ms: int = 150,
           trigger: str = "schedule") -> None:
    run_id = store.claim(job_id=job_id, trigger=trigger, scheduled_at=slot,
                         idempotency_key=slot_key(job_id, slot, trigger), daemon_id="test",
                         started_at=slot + timedelta(milliseconds=late_ms))
    assert run_id is not None
    outcome = Outcome(RunStatus.OK if ok else RunStatus.FAILED, http_status=200 if ok else 500)
    store.finish(run_id, outcome, slot + timedelta(seconds=1))


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_jsonl_log_finds_exactly_the_removed_added_and_flipped_runs(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = setup
    # cronhost ran every 5 minutes for 3 hours, starting 30 minutes before the old log's window.
    slots = [T0 - timedelta(minutes=30) + timedelta(minutes=5 * i) for i in range(36)]
    failed = {slots[20]}
    for slot in slots:
        record(store, "sync-mailboxes", slot, ok=slot not in failed, late_ms=100 + len(slot.isoformat()))
    missed = T0 + timedelta(hours=3, minutes=5)  # cronhost recorded it as missed: it did not run
    store.record_missed("sync-mailboxes", [missed], "daemon was down")
    record(store, "sync-mailboxes", T0 + timedelta(minutes=7), trigger="manual")  # not a slot

    in_window = [s for s in slots if s >= T0]
    removed = {in_window[3], in_window[10], in_window[-2]}
    added = {T0 + timedelta(minutes=12), missed}  # 00:12 is not even a slot of */5
    flipped = {in_window[5], slots[20]}
    lines = []
    for slot in sorted((set(in_window) - removed) | added):
        ok = (slot not in failed) != (slot in flipped)
        lines.append({"path": "/api/cron/sync-mailboxes", "scheduled_at": z(slot),
                      "fired_at": z(slot + timedelta(seconds=2)),
                      "status": "ok" if ok else "failed", "http_status": 200 if ok else 500})
    lines += [{"url": "https://elsewhere.example.com/api/other", "fired_at": z(T0), "status": "ok"}
              for _ in range(3)]
    log = tmp_path / "vercel-log.jsonl"
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    code, out, err = run_cli(["--config", str(config), "compare", str(log), "--json"], capsys)
    assert code == 1, err
    result = json.loads(out)
    assert result["unmatched_old"] == 3
    [job] = [j for j in result["jobs"] if j["job_id"] == "sync-mailboxes"]
    assert set(job["only_cronhost_slots"]) == {z(s) for s in removed}
    assert set(job["only_old_slots"]) == {z(s) for s in added}
    assert set(job["status_mismatch_slots"]) == {z(s) for s in flipped}
    assert job["both"] == len(in_window) - len(removed)
    assert (job["only_old"], job["only_cronhost"], job["status_mismatch"]) == (2, 3, 2)
    assert job["old_lateness_ms"] == {"p50": 2000, "p95": 2000}
    assert job["cronhost_lateness_ms"]["p50"] == 125
    # process-email-queue has neither old nor cronhost runs in the window: not reported.
    assert [j["job_id"] for j in result["jobs"]] == ["sync-mailboxes"]


def test_cron_job_org_history_uses_date_planned_and_jitter(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = setup
    slots = [T0 + timedelta(minutes=i) for i in range(30)]
    for slot in slots:
        record(store, "process-email-queue", slot, late_ms=40)
    removed = {slots[4]}
    history = [{"jobLogId": i, "jobId": 1001, "identifier": f"1001-{i}",
                "url": f"{BASE}/api/cron/process-email-queue",
                "datePlanned": int(slot.timestamp()), "date": int(slot.timestamp()) + 1,
                "jitter": 900 + i, "duration": 120, "status": 1, "statusText": "OK",
                "httpStatus": 200}
               for i, slot in enumerate(slots) if slot not in removed]
    log = tmp_path / "history.json"
    log.write_text(json.dumps({"history": history, "predictions": []}))

    code, out, _ = run_cli(["--config", str(config), "compare", str(log), "--format",
                            "cron-job.org", "--json"], capsys)
    assert code == 1
    [job] = json.loads(out)["jobs"]
    assert (job["job_id"], job["both"], job["only_old"], job["only_cronhost"]) == (
        "process-email-queue", 29, 0, 1)
    assert job["only_cronhost_slots"] == [z(slots[4])]
    assert job["old_lateness_ms"]["p50"] == 915 and job["cronhost_lateness_ms"]["p95"] == 40


def test_an_identical_log_agrees_and_exits_0(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = setup
    slots = [T0 + timedelta(minutes=5 * i) for i in range(12)]
    for slot in slots:
        record(store, "sync-mailboxes", slot)
    log = tmp_path / "old.jsonl"
    log.write_text("".join(json.dumps({"url": f"{BASE}/api/cron/sync-mailboxes",
                                       "scheduled_at": int(s.timestamp()), "status": "ok"}) + "\n"
                           for s in slots))
    code, out, _ = run_cli(["--config", str(config), "compare", str(log)], capsys)
    assert code == 0
    assert "the two schedulers agree" in out


def test_since_narrows_the_window(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, store = setup
    slots = [T0 + timedelta(minutes=5 * i) for i in range(12)]
    for slot in slots[6:]:  # cronhost started half an hour into the old log
        record(store, "sync-mailboxes", slot)
    log = tmp_path / "old.jsonl"
    log.write_text("".join(json.dumps({"path": "/api/cron/sync-mailboxes",
                                       "fired_at": z(s + timedelta(seconds=1))}) + "\n"
                           for s in slots))
    code, out, _ = run_cli(["--config", str(config), "compare", str(log), "--json"], capsys)
    assert code == 1 and json.loads(out)["jobs"][0]["only_old"] == 6
    code, out, _ = run_cli(["--config", str(config), "compare", str(log), "--json",
                            "--since", z(slots[6])], capsys)
    assert code == 0, out


def test_a_bad_log_line_is_a_usage_error(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    log = tmp_path / "old.jsonl"
    log.write_text('{"path": "/x", "fired_at": "yesterday"}\n')
    code, _, err = run_cli(["--config", str(config), "compare", str(log)], capsys)
    assert code == 2 and "record 1" in err and "fired_at" in err


def test_a_unix_time_out_of_range_is_a_usage_error(
    setup: tuple[Path, Store], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    log = tmp_path / "history.json"
    log.write_text(json.dumps({"history": [{"url": f"{BASE}/x", "datePlanned": 10**20}]}))
    code, _, err = run_cli(["--config", str(config), "compare", str(log)], capsys)
    assert code == 2 and "datePlanned" in err and "Traceback" not in err
