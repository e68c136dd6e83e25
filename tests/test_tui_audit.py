"""The dashboard's audit log (Pilot): `l` lists the events newest first, Enter shows one,
Esc goes back to the log and then to the jobs, focused; at 80x24 the footer keeps `l`."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import delete, update
from textual.pilot import Pilot
from textual.widgets import Footer, Static
from textual.widgets._footer import FooterKey

from scheduler.store import Store
from scheduler.store.audit import Actor
from scheduler.store.schema import events
from tests.test_tui import dashboard, drive, until
from tests.test_tui_fixtures import NOW, make_leadmap_store
from tests.test_tui_focus import back_on_the_dashboard, footer_keys
from tui.app import DashboardApp
from tui.screens.audit_log import AuditLogScreen, EventDetailsScreen

DAEMON = Actor("cronhost", "vm-1")
ALICE = Actor("alice", "vm-1")

# (minutes before NOW, kind, job, actor, summary, detail), oldest first.
EVENTS = [
    (180, "daemon.started", None, DAEMON,
     "daemon 4242abcd on vm-1 (pid 4242) started as leader", {"pid": 4242, "role": "leader"}),
    (95, "command.pause", "prospect-enrich", ALICE, "paused by alice@vm-1 (cli)",
     {"command_id": 3, "requested_by": "cli", "outcome": "done"}),
    (40, "config.reloaded", "sync-mailboxes", ALICE,
     "config reloaded by alice@vm-1 (cli): changed sync-mailboxes (*/5 * * * * → */10 * * * *)",
     {"added": [], "changed": [{"job": "sync-mailboxes", "fields": ["schedule"],
                                "old_schedule": "*/5 * * * *", "new_schedule": "*/10 * * * *"}],
      "removed": [], "via": "cli"}),
    (20, "config.reload_failed", None, DAEMON,
     "config reload by cronhost@vm-1 (signal or file change) failed, the previous config "
     "runs: job 'sms-drip-run', field 'schedule': '[REDACTED]' is not a valid cron expression",
     {"error": "job 'sms-drip-run', field 'schedule': '[REDACTED]' is not valid"}),
    (5, "command.trigger", "process-campaigns", Actor("bob", "laptop"),
     "triggered by bob@laptop (tui), run 812",
     {"command_id": 4, "requested_by": "tui", "outcome": "done", "run_id": 812}),
]


def seed_events(store: Store) -> Store:
    """A fixed audit log at fixed times (the fixture's own daemon.started is wall-clock)."""
    with store.engine.begin() as conn:
        conn.execute(delete(events))
    for minutes, kind, job, actor, summary, detail in EVENTS:
        store.add_event(kind, summary, job_id=job, actor=actor, daemon_id="4242abcd",
                        detail=detail)
        with store.engine.begin() as conn:
            conn.execute(update(events).where(events.c.summary == summary)
                         .values(at=NOW - timedelta(minutes=minutes)))
    return store


def screen_text(app: DashboardApp) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for static in app.screen.query(Static):
        console.print(static.content)
    return console.export_text()


def test_l_lists_the_events_newest_first_enter_shows_one_and_esc_goes_back_to_the_jobs(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, AuditLogScreen)
                    and app.screen.table.row_count == len(EVENTS), "the audit log")
        log = app.screen
        assert isinstance(log, AuditLogScreen) and log.table.has_focus
        shown = [str(log.table.value(key, "kind")) for key in log.table.keys]
        assert shown == [kind for _, kind, *_ in reversed(EVENTS)]

        await pilot.press("down", "down")  # the reload with its diff
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, EventDetailsScreen), "the details")
        text = screen_text(app)
        assert "config.reloaded" in text and "alice@vm-1" in text
        assert '"old_schedule": "*/5 * * * *"' in text
        assert '"new_schedule": "*/10 * * * *"' in text

        await pilot.press("escape")
        await until(pilot, lambda: app.screen is log and log.table.has_focus, "back in the log")
        await pilot.press("escape")
        await back_on_the_dashboard(app, pilot)

    drive(seed_events(make_leadmap_store(tmp_path)), scenario, size=(120, 35))


def test_at_80x24_the_footer_keeps_every_key_and_the_log(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: dashboard(app).jobs.row_count == 15, "15 jobs")
        keys = footer_keys(app)
        assert {"enter", "t", "p", "r", "f", "g", "slash", "l", "q"} <= set(keys)
        footer = app.screen.query_one(Footer)
        assert all(key.region.right <= footer.region.right for key in footer.query(FooterKey))

    drive(seed_events(make_leadmap_store(tmp_path)), scenario, size=(80, 24))


def test_an_empty_log_says_so(tmp_path: Path) -> None:
    store = make_leadmap_store(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(delete(events))

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, AuditLogScreen)
                    and app.screen.snapshot is not None, "the audit log")
        assert "no events yet" in screen_text(app)

    drive(store, scenario, size=(80, 24))
