"""Stores for the dashboard tests, filled through the store's own API (no tests here).

Everything the dashboard shows is pinned to NOW (the app gets a clock that
always says NOW), so the same store renders the same picture on any machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import text, update

from jobs.outcome import Outcome, RunStatus
from scheduler.config import load_config
from scheduler.daemon.control import job_state_rows
from scheduler.schedule import next_fire_times
from scheduler.store import Store
from scheduler.store.attempts import AttemptRow
from scheduler.store.schema import APSCHEDULER_TABLE, daemons

NOW = datetime(2026, 1, 31, 9, 0, 30, tzinfo=UTC)
DAEMON_ID = "d-test"
DaemonState = Literal["up", "stopped", "crashed", "none"]

CONFIG = """\
[defaults]
base_url = "http://127.0.0.1:9"
secret = "CRON_SECRET"
allow_http = true

[[jobs]]
id = "process-email-queue"
path = "/api/cron/process-email-queue"
schedule = "* * * * *"
description = "Send queued outbound email"

[[jobs]]
id = "sync-mailboxes"
path = "/api/cron/sync-mailboxes"
schedule = "*/5 * * * *"
description = "Sync connected mailboxes"

[[jobs]]
id = "calendar-cleanup"
path = "/api/cron/calendar-cleanup"
schedule = "0 2 * * *"
description = "Clean up stale calendar data"

[[jobs]]
id = "prospect-enrich"
path = "/api/cron/prospect-enrich"
schedule = "0 */4 * * *"
description = "Enrich prospects"

[[jobs]]
id = "property-map-refresh"
path = "/api/cron/property-map-refresh"
schedule = "0 */6 * * *"
description = "Refresh the property map"
enabled = false
"""
JOB_IDS = ("calendar-cleanup", "process-email-queue", "property-map-refresh", "prospect-enrich",
           "sync-mailboxes")
# Where the daemon "runs" from, as the header shows it (tmp_path differs per run).
SHOWN_CONFIG = "/etc/cronhost/config.toml"
SHOWN_STORE = "sqlite:////var/lib/cronhost/cronhost.db"


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def empty_store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'cronhost.db'}")


def make_store(tmp_path: Path, *, daemon: DaemonState = "up", runs: bool = True) -> Store:
    """A store as a daemon leaves it: jobs synced, a few runs each, a heartbeat."""
    config = load_config(write_config(tmp_path), resolve_secrets=False)
    store = empty_store(tmp_path)
    store.migrate()
    # Only the jobs written above: built-in jobs that config adds come and go with
    # other issues, and would change every picture.
    store.sync_jobs(job_state_rows(tuple(spec for spec in config.jobs if spec.id in JOB_IDS)))
    store.set_paused("prospect-enrich", True)
    _next_fire_times(store)
    if runs:
        _runs(store)
    if daemon != "none":
        set_daemon(store, daemon)
    store.url_for_humans = SHOWN_STORE
    return store


def set_daemon(store: Store, state: DaemonState) -> None:
    """Register the daemon, then pin its times (register/beat stamp the wall clock)."""
    if store.latest_daemon() is None:
        store.register_daemon(DAEMON_ID, SHOWN_CONFIG, "0.1.0")
        store.record_config_loaded(DAEMON_ID)
        store.beat(DAEMON_ID, "4 jobs scheduled, 0 running")
    last_beat = {"up": NOW - timedelta(seconds=2), "stopped": NOW - timedelta(minutes=5),
                 "crashed": NOW - timedelta(seconds=45)}[state]
    with store.engine.begin() as conn:
        conn.execute(update(daemons).where(daemons.c.id == DAEMON_ID).values(
            hostname="vm-1", pid=4242, started_at=NOW - timedelta(hours=3),
            config_loaded_at=NOW - timedelta(hours=3), last_beat_at=last_beat,
            stopped_at=NOW - timedelta(minutes=5) if state == "stopped" else None,
        ))


def _next_fire_times(store: Store) -> None:
    # The two columns of APScheduler's job table that the store reads.
    upcoming = {
        "process-email-queue": NOW.replace(second=0) + timedelta(minutes=1),
        "sync-mailboxes": NOW.replace(minute=5, second=0),
        "calendar-cleanup": (NOW + timedelta(days=1)).replace(hour=2, minute=0, second=0),
    }
    with store.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {APSCHEDULER_TABLE} (id VARCHAR(191) PRIMARY KEY, "
                          "next_run_time FLOAT, job_state BLOB NOT NULL)"))
        for job_id, when in upcoming.items():
            conn.execute(text(f"INSERT INTO {APSCHEDULER_TABLE} VALUES (:id, :t, x'00')"),
                         {"id": job_id, "t": when.timestamp()})


def run(
    store: Store, job_id: str, slot: datetime, outcome: Outcome, took_ms: int,
    late_ms: int = 40, trigger: str = "schedule",
) -> int:
    started = slot + timedelta(milliseconds=late_ms)
    run_id = store.claim(
        job_id=job_id, trigger=trigger, scheduled_at=slot,
        idempotency_key=f"{job_id}@{slot.isoformat()}", daemon_id=DAEMON_ID, started_at=started,
    )
    assert run_id is not None
    store.finish(run_id, outcome, started + timedelta(milliseconds=took_ms))
    return run_id


def ok(message: str = "done", data: object = None) -> Outcome:
    return Outcome(RunStatus.OK, attempts=1, http_status=200, message=message, data=data,
                   response_excerpt='{"success": true, "message": "' + message + '"}')


def _runs(store: Store) -> None:
    minute = NOW.replace(second=0)
    for back, took in enumerate((210, 180, 240, 190, 650, 200, 230, 220), start=1):
        slot = minute - timedelta(minutes=8 - back)
        outcome = ok("sent 12 emails", {"sent": 12})
        if back == 5:
            outcome = Outcome(RunStatus.FAILED, attempts=3, http_status=503,
                              error="HTTP 503 after 3 attempts: upstream unavailable",
                              response_excerpt='{"success": false, "error": "unavailable"}')
        run(store, "process-email-queue", slot, outcome, took)
    five = minute.replace(minute=0)
    for back, took in enumerate((1200, 1350, 1100), start=1):
        run(store, "sync-mailboxes", five - timedelta(minutes=5 * (4 - back)), ok("synced 4"),
            took)
    failed = run(store, "sync-mailboxes", five, Outcome(
        RunStatus.FAILED, attempts=1, http_status=500, message="gmail quota exceeded",
        error="HTTP 500 Internal Server Error",
        response_excerpt='{"success": false, "message": "gmail quota exceeded", '
                         '"data": {"token": "[REDACTED]"}}',
    ), 2400, late_ms=120)
    sent = five + timedelta(milliseconds=120)
    store.write_runs([], [], [AttemptRow(
        failed, 1, "5f0c6a52-1d9e-4b8e-9a65-2b7f0e4d3c11", sent,
        sent + timedelta(milliseconds=2400), 500, 2400, "http_5xx",
        "HTTP 500 Internal Server Error")])
    day = NOW.replace(hour=2, minute=0, second=0)
    run(store, "calendar-cleanup", day - timedelta(days=1), ok("removed 3 events"), 4200)
    store.record_missed("calendar-cleanup", [day], "the daemon was down at 02:00", DAEMON_ID)


# LeadMap's 14 jobs as the shipped config.toml declares them (copied, so that an edit
# of that file does not move every picture), plus the built-in history pruning: 15.
LEADMAP = (
    ("process-email-queue", "* * * * *", "Send queued outbound email"),
    ("process-campaigns", "* * * * *", "Advance email campaigns"),
    ("process-emails", "* * * * *", "Process inbound and outbound email"),
    ("gmail-watch-renewal", "0 3 * * *", "Renew Gmail push watches"),
    ("sync-mailboxes", "*/5 * * * *", "Sync connected mailboxes"),
    ("calendar-sync", "*/15 * * * *", "Sync calendars"),
    ("calendar-token-refresh", "0 * * * *", "Refresh calendar OAuth tokens"),
    ("calendar-webhook-renewal", "0 3 * * *", "Renew calendar webhooks"),
    ("calendar-sync-retry", "*/30 * * * *", "Retry failed calendar syncs"),
    ("calendar-cleanup", "0 2 * * *", "Clean up stale calendar data"),
    ("property-map-refresh", "0 */6 * * *", "Refresh the property map"),
    ("prospect-enrich", "0 */4 * * *", "Enrich prospects"),
    ("provider-health-check", "0 * * * *", "Check email/SMS provider health"),
    ("sms-drip-run", "* * * * *", "Send due SMS drip messages"),
)
FLAKY_JOB = "calendar-sync"  # fails every other run; its last run went well
DRIP_MESSAGE = ("Drip step sent to 42 leads across 3 campaigns; 5 skipped (unsubscribed), "
                "1 bounced")


def write_leadmap_config(tmp_path: Path) -> Path:
    lines = ['[defaults]\nbase_url = "http://127.0.0.1:9"\nsecret = "CRON_SECRET"\n'
             'allow_http = true\n']
    for job_id, schedule, description in LEADMAP:
        lines.append(f'[[jobs]]\nid = "{job_id}"\npath = "/api/cron/{job_id}"\n'
                     f'schedule = "{schedule}"\ndescription = "{description}"\n'
                     + ("enabled = false\n" if job_id == "property-map-refresh" else ""))
    path = tmp_path / "leadmap.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def make_leadmap_store(tmp_path: Path) -> Store:
    """The 15 jobs of a LeadMap install, a few hours into a day: some failing, one
    flaky, one paused, one disabled, one with a trigger the daemon has not taken yet."""
    config = load_config(write_leadmap_config(tmp_path), resolve_secrets=False)
    store = empty_store(tmp_path)
    store.migrate()
    store.sync_jobs(job_state_rows(config.jobs))
    store.set_paused("prospect-enrich", True)
    with store.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {APSCHEDULER_TABLE} (id VARCHAR(191) PRIMARY KEY, "
                          "next_run_time FLOAT, job_state BLOB NOT NULL)"))
        for spec in config.jobs:
            (when,) = next_fire_times(spec.timetable(), 1, NOW)
            conn.execute(text(f"INSERT INTO {APSCHEDULER_TABLE} VALUES (:id, :t, x'00')"),
                         {"id": spec.id, "t": when.timestamp()})
    _runs(store)  # process-email-queue, sync-mailboxes, calendar-cleanup as in make_store
    minute = NOW.replace(second=0)
    for back in range(6, 0, -1):
        slot = minute - timedelta(minutes=back)
        run(store, "sms-drip-run", slot, ok(DRIP_MESSAGE), 300 + 10 * back)
        run(store, "process-campaigns", slot, ok("advanced 2 campaigns"), 150 + back)
        run(store, "process-emails", slot, ok("processed 9 emails"), 400 - back)
    quarter = minute.replace(minute=0)
    for back in range(5, 0, -1):
        slot = quarter - timedelta(minutes=15 * (back - 1))
        outcome = ok("synced 7 calendars") if back % 2 else Outcome(
            RunStatus.FAILED, attempts=3, http_status=502,
            error="HTTP 502 after 3 attempts: bad gateway")
        run(store, FLAKY_JOB, slot, outcome, 2100 + back)
    hour = minute.replace(minute=0)
    run(store, "calendar-token-refresh", hour, ok("refreshed 3 tokens"), 820)
    run(store, "provider-health-check", hour, Outcome(
        RunStatus.TIMEOUT, attempts=1, error="no answer within 30s"), 30_000)
    run(store, "calendar-sync-retry", minute.replace(minute=0) - timedelta(minutes=30),
        ok("nothing to retry"), 95)
    set_daemon(store, "up")
    store.add_command("trigger", "process-campaigns", requested_by="cli")
    store.url_for_humans = SHOWN_STORE
    return store
