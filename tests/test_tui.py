"""The dashboard driven as an operator would (Pilot), against real SQLite stores in tmp_path."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import delete, insert, inspect, select, update
from sqlalchemy.exc import OperationalError
from textual.pilot import Pilot
from textual.widgets import Static

from jobs.outcome import RunStatus
from scheduler.store import Store
from scheduler.store.schema import commands, daemons, job_state, schema_version
from tests.test_tui_fixtures import (
    DAEMON_ID,
    JOB_IDS,
    NOW,
    empty_store,
    make_store,
    ok,
    run,
)
from tui.app import DashboardApp
from tui.data import fetch_snapshot
from tui.screens.dashboard import NO_JOBS, DashboardScreen
from tui.screens.run_details import RunDetailsScreen

Scenario = Callable[[DashboardApp, Pilot[None]], Awaitable[None]]


def drive(store: Store, scenario: Scenario, *, clock: Callable[[], datetime] = lambda: NOW,
          size: tuple[int, int] = (100, 30), config: Path | None = None) -> DashboardApp:
    app = DashboardApp(store, config or Path("/etc/cronhost/config.toml"), clock=clock)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: dashboard(app).snapshot is not None, "first refresh")
            await pilot.pause()
            await scenario(app, pilot)

    asyncio.run(main())
    store.dispose()
    return app


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str,
                timeout: float = 10.0) -> None:
    """Refreshes come from a thread worker: wait for their effect, never a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def dashboard(app: DashboardApp) -> DashboardScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    return screen


def cell(app: DashboardApp, table: str, row: str, column: str) -> str:
    widget = dashboard(app).jobs if table == "jobs" else dashboard(app).history
    return str(widget.value(row, column))


def shown(app: DashboardApp, selector: str) -> str:
    """The plain text a Static on the current screen shows (wide, so nothing wraps)."""
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(app.screen.query_one(selector, Static).content)
    return " ".join(console.export_text().split())


def notices(app: DashboardApp) -> list[str]:
    return [notification.message for notification in app._notifications]


def command_rows(store: Store) -> list[tuple[str, str | None, str, str]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(commands.c.kind, commands.c.job_id, commands.c.state, commands.c.requested_by)
            .order_by(commands.c.id))]


def paused(store: Store, job_id: str) -> bool:
    with store.engine.connect() as conn:
        return bool(conn.execute(
            select(job_state.c.paused).where(job_state.c.job_id == job_id)).scalar())


async def select_job(app: DashboardApp, pilot: Pilot[None], job_id: str) -> None:
    screen = dashboard(app)
    screen.jobs.focus()
    screen.jobs.move_to_key(job_id)
    await until(pilot, lambda: screen.selected_job == job_id
                and screen.snapshot is not None and screen.snapshot.history_job == job_id,
                f"history of {job_id}")
    await pilot.pause()


# -- what it shows --------------------------------------------------------------------------


def test_lists_every_job_of_the_store_with_its_last_run(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        assert dashboard(app).jobs.keys == list(JOB_IDS)
        assert cell(app, "jobs", "process-email-queue", "last") == "ok"
        assert cell(app, "jobs", "process-email-queue", "next") == "30s"
        assert cell(app, "jobs", "process-email-queue", "words") == "every minute"
        assert cell(app, "jobs", "process-email-queue", "rate") == "88% of 8"
        assert len(cell(app, "jobs", "process-email-queue", "trend")) == 8
        assert cell(app, "jobs", "sync-mailboxes", "last") == "failed"
        assert cell(app, "jobs", "sync-mailboxes", "http") == "500"
        assert cell(app, "jobs", "prospect-enrich", "state") == "paused"
        assert cell(app, "jobs", "property-map-refresh", "state") == "disabled"
        header = shown(app, "#header")
        assert "daemon up" in header and "pid 4242 on vm-1" in header

    drive(make_store(tmp_path), scenario)


def test_selecting_a_job_shows_its_history_newest_first(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "process-email-queue")
        history = dashboard(app).history
        assert history.border_title == "history of process-email-queue"
        slots = [str(history.get_cell(key, "slot")) for key in history.keys]
        assert slots[0] == "01-31 09:00:00" and slots[-1] == "01-31 08:53:00"
        failed = [key for key in history.keys if str(history.get_cell(key, "status")) == "failed"]
        assert cell(app, "history", failed[0], "note").startswith("HTTP 503 after 3 attempts")
        assert cell(app, "history", failed[0], "attempts") == "3"

    drive(make_store(tmp_path), scenario)


def test_enter_on_a_history_row_opens_the_run_details(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        dashboard(app).history.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), "details screen")
        text = shown(app, "#run-text")
        assert "gmail quota exceeded" in text and "[REDACTED]" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "back")

    drive(make_store(tmp_path), scenario)


def test_run_details_re_runs_a_failed_slot_under_its_own_key(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        dashboard(app).history.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), "details screen")
        details = app.screen
        assert isinstance(details, RunDetailsScreen) and details.run.status == "failed"
        await pilot.press("t")
        await until(pilot, lambda: bool(command_rows(store)), "command written")
        with store.engine.connect() as conn:
            (row,) = conn.execute(select(commands.c.kind, commands.c.job_id, commands.c.slot))
        assert tuple(row) == ("trigger", "sync-mailboxes", details.run.scheduled_at)

    drive(store, scenario)


def test_t_on_a_slot_that_ran_ok_says_how_to_force_it_and_sends_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    (failed,) = [row for row in store.history("sync-mailboxes", limit=20)
                 if row.status == "failed"]
    # The failed slot was re-run by hand under its own key, and that went ok.
    rerun = store.claim(job_id="sync-mailboxes", trigger="manual",
                        scheduled_at=failed.scheduled_at + timedelta(minutes=1),
                        idempotency_key=failed.idempotency_key, daemon_id=DAEMON_ID,
                        started_at=failed.scheduled_at + timedelta(minutes=1))
    assert rerun is not None
    store.finish(rerun, ok("synced 4"), failed.scheduled_at + timedelta(minutes=1, seconds=2))

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        dashboard(app).history.focus()
        for status, expected in (("ok", "this slot ran ok"),
                                 ("failed", "a re-run of this slot ran ok")):
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), "details")
            details = app.screen
            assert isinstance(details, RunDetailsScreen) and details.run.status == status
            await pilot.press("t")
            await until(pilot, lambda expected=expected: any(expected in n for n in notices(app)), expected)
            assert any("--force" in n and details.run.scheduled_at.isoformat() in n
                       for n in notices(app))
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, DashboardScreen), "back")
            dashboard(app).history.focus()  # a closed screen gives the focus to the jobs
            await pilot.press("down")  # from the re-run (newest) to the failed slot
        assert command_rows(store) == []

    drive(store, scenario)


def test_the_cursor_stays_on_its_run_when_new_runs_arrive(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "process-email-queue")
        history = dashboard(app).history
        history.focus()
        await pilot.press("down", "down")
        chosen = history.cursor_key
        run(store, "process-email-queue", NOW.replace(second=0) + timedelta(minutes=1), ok(), 100)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: len(history.keys) == 9, "the new run")
        assert history.cursor_key == chosen
        assert history.cursor_row == 3
        assert dashboard(app).jobs.cursor_key == "process-email-queue"

    drive(store, scenario)


def test_the_header_counts_the_running_jobs_the_table_shows_not_the_last_heartbeat(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)  # its daemon's last beat said "0 running"
    assert store.claim(job_id="sync-mailboxes", trigger="manual", scheduled_at=NOW,
                       idempotency_key="sync-mailboxes@manual", daemon_id=DAEMON_ID,
                       started_at=NOW) is not None

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: cell(app, "jobs", "sync-mailboxes", "last") == "running",
                    "the running row")
        assert "1 running" in shown(app, "#header")

    drive(store, scenario)


def test_daemon_stopped_cleanly_shows_as_down_at_once(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        header = shown(app, "#header")
        assert "daemon DOWN" in header and "stopped 5m00s ago" in header

    drive(make_store(tmp_path, daemon="stopped"), scenario)


@pytest.mark.parametrize(("silent_for", "state"), [(29, "daemon up"), (31, "daemon DOWN")])
def test_a_crashed_daemon_shows_as_down_within_30_seconds(
    tmp_path: Path, silent_for: int, state: str
) -> None:
    store = make_store(tmp_path, daemon="crashed")  # last beat at NOW - 45 s, no clean stop
    last_beat = NOW - timedelta(seconds=45)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        header = shown(app, "#header")
        assert state in header
        if state == "daemon DOWN":
            assert f"no heartbeat for {silent_for}s" in header and "crashed or killed?" in header

    drive(store, scenario, clock=lambda: last_beat + timedelta(seconds=silent_for))


def with_two_nodes(store: Store, standby_host: str = "vm-2") -> Store:
    """Two daemons beating on the store now (register/beat stamp the wall clock)."""
    for daemon_id, role, host, pid in (("node-a", "leader", "vm-1", 4242),
                                       ("node-b", "standby", standby_host, 4343)):
        store.register_daemon(daemon_id, "/etc/cronhost/config.toml", "0.1.0", role=role)
        with store.engine.begin() as conn:
            conn.execute(update(daemons).where(daemons.c.id == daemon_id).values(
                hostname=host, pid=pid))
    return store


def test_the_header_shows_every_node_and_its_role_leader_first(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        header = shown(app, "#header")
        assert "nodes leader pid 4242 on vm-1 · standby pid 4343 on vm-2" in header

    drive(with_two_nodes(make_store(tmp_path)), scenario)


def test_a_lone_daemon_gets_no_nodes_line(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        assert "nodes " not in shown(app, "#header")

    drive(make_store(tmp_path), scenario)


def test_a_long_nodes_line_is_cropped_to_80_columns_not_wrapped(tmp_path: Path) -> None:
    long_host = "standby-in-the-other-availability-zone.eu-central-1.compute.internal"

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        header = app.screen.query_one("#header", Static)
        width = header.content_region.width
        assert width <= 80
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(header.content)
        lines = console.export_text().splitlines()
        nodes = next(line for line in lines if line.startswith("nodes "))
        assert nodes.endswith("…"), lines  # cropped, and the next line is the config line
        assert lines[lines.index(nodes) + 1].startswith("config ")
        assert nodes.startswith("nodes leader pid 4242 on vm-1 · standby pid 4343")
        assert screen.jobs.region.height >= 5 and screen.history.region.bottom <= 23

    drive(with_two_nodes(make_store(tmp_path), long_host), scenario, size=(80, 24))


def test_an_empty_store_says_to_start_the_daemon(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        assert shown(app, "#notice") == NO_JOBS
        assert dashboard(app).jobs.row_count == 0
        assert "no daemon has run on this store yet" in shown(app, "#header")
        await pilot.press("t")  # nothing selected: dimmed, and nothing written
        await pilot.pause()

    store = empty_store(tmp_path)
    drive(store, scenario)
    # A reader: it neither created the schema nor wrote a command.
    assert inspect(Store(store.url).engine).get_table_names() == []


def test_a_store_with_an_older_schema_says_how_to_upgrade_it(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with store.engine.begin() as conn:
        # As a store last written by cronhost's first release: its schema is stamped 1.
        conn.execute(delete(schema_version))
        conn.execute(insert(schema_version).values(version=1, applied_at=NOW,
                                                   cronhost_version="0.0.1"))

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        notice = shown(app, "#notice")
        assert notice.startswith("cannot read the store:")
        assert "schema version 1" in notice and "cronhost run" in notice
        assert dashboard(app).jobs.row_count == 0
        # The header agrees with the notice: a daemon did run here, its row is unreadable.
        header = shown(app, "#header")
        assert "the store cannot be read" in header and "no daemon has run" not in header

    drive(store, scenario)


def test_a_store_from_a_newer_cronhost_is_refused_with_a_message(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with store.engine.begin() as conn:
        conn.execute(insert(schema_version).values(version=99, applied_at=NOW,
                                                   cronhost_version="9.0"))

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        notice = shown(app, "#notice")
        assert "schema version 99" in notice and "Upgrade cronhost" in notice

    drive(store, scenario)


def test_a_store_that_fails_for_a_moment_keeps_the_last_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path)

    def locked() -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        notice = app.screen.query_one("#notice")
        with monkeypatch.context() as patch:
            patch.setattr(store, "latest_daemon", locked)
            await pilot.press("f5")
            await until(pilot, lambda: "database is locked" in shown(app, "#notice"), "notice")
            assert "retrying; showing the last good read" in shown(app, "#notice")
            assert notice.display and dashboard(app).jobs.keys == list(JOB_IDS)
        await pilot.press("f5")
        await until(pilot, lambda: not notice.has_class("shown"), "recovered")

    drive(store, scenario)


# -- what it lets you do --------------------------------------------------------------------


def test_trigger_writes_a_command_and_shows_it_pending_until_the_daemon_acts(
    tmp_path: Path,
) -> None:
    store = make_store(tmp_path)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        await pilot.press("t")
        await until(pilot, lambda: "⧗trigger" in cell(app, "jobs", "sync-mailboxes", "state"),
                    "pending trigger")
        assert command_rows(store) == [("trigger", "sync-mailboxes", "pending", "tui")]
        # The daemon's side of the protocol: take, run, finish.
        (pending,) = store.pending_commands()
        assert store.take_command(pending.id)
        await pilot.press("f5")
        await pilot.pause(0.2)
        assert "⧗trigger" in cell(app, "jobs", "sync-mailboxes", "state")  # taken, not done
        run_id = run(store, "sync-mailboxes", NOW, ok("synced 2"), 900, trigger="manual")
        store.finish_command(pending.id, "done", "started", run_id)
        await until(pilot, lambda: "⧗" not in cell(app, "jobs", "sync-mailboxes", "state"),
                    "done")
        await until(pilot, lambda: any(f"done by the daemon, started (run {run_id})" in text
                                       for text in notices(app)), "the news")
        await until(pilot, lambda: str(run_id) in dashboard(app).history.keys, "manual run")
        assert "manual" in cell(app, "history", str(run_id), "slot")

    drive(store, scenario)


def test_a_command_the_daemon_refuses_is_reported(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        await pilot.press("t")
        await until(pilot, lambda: bool(store.pending_commands()), "command row")
        (pending,) = store.pending_commands()
        store.finish_command(pending.id, "failed", "no job 'sync-mailboxes' in the running config")
        await until(pilot, lambda: any("the daemon refused" in text for text in notices(app)),
                    "refusal")

    drive(store, scenario)


def test_pause_and_resume_persist_and_write_commands(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "process-email-queue")
        assert app.screen.check_action("resume", ()) is None  # not paused: dimmed
        await pilot.press("p")
        await until(pilot, lambda: cell(app, "jobs", "process-email-queue", "state")
                    == "paused ⧗pause", "paused, pending")
        assert paused(store, "process-email-queue")
        assert cell(app, "jobs", "process-email-queue", "next") == "paused"
        assert app.screen.check_action("pause", ()) is None
        await pilot.press("r")
        await until(pilot, lambda: cell(app, "jobs", "process-email-queue", "state")
                    == "active ⧗resume+1", "resumed, pending")
        assert not paused(store, "process-email-queue")
        assert command_rows(store) == [("pause", "process-email-queue", "pending", "tui"),
                                       ("resume", "process-email-queue", "pending", "tui")]

    drive(store, scenario)


def test_trigger_with_the_daemon_down_is_refused_with_a_message(tmp_path: Path) -> None:
    store = make_store(tmp_path, daemon="stopped")

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        await pilot.press("t")
        await until(pilot, lambda: any("the daemon is down" in text for text in notices(app)),
                    "refusal")
        assert any(text.startswith("not triggered") for text in notices(app))

    drive(store, scenario)
    assert command_rows(Store(store.url)) == []


def test_pause_with_the_daemon_down_persists_and_says_when_it_applies(tmp_path: Path) -> None:
    store = make_store(tmp_path, daemon="crashed")

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "sync-mailboxes")
        await pilot.press("p")
        await until(pilot, lambda: any("applies this when it starts" in text
                                       for text in notices(app)), "warning")
        assert paused(store, "sync-mailboxes")

    drive(store, scenario)


def test_filter_narrows_the_table_and_escape_clears_it(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        await pilot.press("slash", "m", "a", "i", "l")
        await until(pilot, lambda: screen.jobs.keys == ["process-email-queue", "sync-mailboxes"],
                    "filtered")
        assert "2 of 5" in str(screen.jobs.border_title)
        await pilot.press("enter")  # keeps the filter, back to the table
        assert screen.jobs.has_focus
        await pilot.press("t")  # a key again, not text: the filter is unchanged
        assert screen.filter_input.value == "mail"
        await pilot.press("escape")
        await until(pilot, lambda: screen.jobs.keys == list(JOB_IDS), "unfiltered")
        assert not screen.filter_input.display

    drive(make_store(tmp_path), scenario)


def test_f_cycles_through_jobs_that_failed_lately(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        assert dashboard(app).jobs.cursor_key == "calendar-cleanup"
        # process-email-queue's last run went well, but 1 of its 8 today did not.
        for expected in ("process-email-queue", "sync-mailboxes", "process-email-queue"):
            await pilot.press("f")
            await until(pilot, lambda expected=expected: dashboard(app).selected_job == expected,
                        expected)

    drive(make_store(tmp_path), scenario)


def test_q_quits_with_status_zero(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await pilot.press("q")

    app = drive(make_store(tmp_path), scenario)
    assert app.return_code == 0


def test_fits_80_by_24(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        assert screen.jobs.region.height >= 5 and screen.history.region.height >= 4
        assert screen.history.region.bottom <= 23  # the footer keeps the last line

    drive(make_store(tmp_path), scenario, size=(80, 24))


# -- the snapshot behind it ----------------------------------------------------------------


def test_one_refresh_reads_everything_into_one_snapshot(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    snapshot = fetch_snapshot(store, now=NOW, config_path="c.toml", selected_job="sync-mailboxes")
    store.dispose()
    assert snapshot.daemon_up and snapshot.problem is None
    assert [job.job_id for job in snapshot.jobs] == list(JOB_IDS)
    assert snapshot.history_job == "sync-mailboxes"
    assert [row.status for row in snapshot.history] == ["failed", "ok", "ok", "ok"]
    assert snapshot.job("sync-mailboxes").trend == (1200, 1350, 1100, 2400)  # type: ignore[union-attr]
    assert snapshot.summary.last_hour.runs == 12 and snapshot.summary.last_hour.failed == 2
    assert snapshot.summary.last_day.missed == 1


def test_a_running_daemon_carries_out_trigger_pause_and_resume_from_the_dashboard(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """The whole loop in one process: dashboard → commands table → daemon → run → dashboard."""
    from scheduler.config import load_config
    from scheduler.daemon import build_daemon

    monkeypatch.setenv("CRON_SECRET", "not-used-by-python-jobs")
    config_path = tmp_path / "daemon.toml"
    config_path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'live.db'}"

[[jobs]]
id = "summarize"
call = "tests.sample_callables:summarize"
schedule = "0 0 1 1 *"
""", encoding="utf-8")
    daemon = build_daemon(load_config(config_path))
    store = Store(daemon.config.store.url)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "summarize" in dashboard(app).jobs.keys, "job listed")
        await until(pilot, lambda: "daemon up" in shown(app, "#header"),
                    "daemon up")
        await select_job(app, pilot, "summarize")
        await pilot.press("t")
        await until(pilot, lambda: any("done by the daemon" in text for text in notices(app)),
                    "trigger carried out")
        await until(pilot, lambda: cell(app, "jobs", "summarize", "last") == "ok", "run shown")
        (row,) = store.history("summarize")
        assert row.trigger == "manual" and row.status == RunStatus.OK
        assert command_rows(store) == [("trigger", "summarize", "done", "tui")]

        def scheduled() -> bool:
            job = daemon.engine.scheduler.get_job("summarize")
            return job is not None and job.next_run_time is not None

        await pilot.press("p")
        await until(pilot, lambda: not scheduled(), "daemon paused the job")
        await until(pilot, lambda: cell(app, "jobs", "summarize", "state") == "paused",
                    "paused shown, no longer pending")
        assert store.paused_jobs() == {"summarize"}
        await pilot.press("r")
        await until(pilot, scheduled, "daemon resumed the job")
        await until(pilot, lambda: cell(app, "jobs", "summarize", "state") == "active",
                    "active shown, no longer pending")
        assert store.paused_jobs() == set()
        assert [kind for kind, *_ in command_rows(store)] == ["trigger", "pause", "resume"]

    async def main() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            app = DashboardApp(store, config_path, clock=lambda: datetime.now(UTC))
            async with app.run_test(size=(100, 30)) as pilot:
                await scenario(app, pilot)
        finally:
            daemon.stop_requested.set()
            await asyncio.wait_for(running, 10)

    asyncio.run(main())
    store.dispose()


def test_the_dashboard_never_loads_the_engine() -> None:
    """tui reads the store through scheduler's public pieces; the engine stays in the daemon.

    Not one APScheduler module comes along (import-linter holds the static rule; this
    checks what a real import of the dashboard loads).
    """
    code = ("import sys, tui.app; print(' '.join(sorted(m for m in sys.modules "
            "if m.startswith(('apscheduler', 'scheduler.engine', 'scheduler.run', "
            "'scheduler.daemon', 'scheduler.observe')))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
