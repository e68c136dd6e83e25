"""The trends screen (g on a job): 1 h / 24 h / 7 d numbers and the last day's runs, at 80x24."""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static

from scheduler.store import Store
from scheduler.store.report import RunPoint
from scheduler.store.schema import runs
from tests.test_tui import dashboard, drive, select_job, until
from tests.test_tui_fixtures import NOW, make_store
from tui.app import DashboardApp
from tui.screens.trends import TrendsScreen
from tui.widgets.run_chart import RunChart, chart_lines

JOB = "process-email-queue"


def add_day_of_runs(store: Store, job_id: str = JOB) -> list[dict[str, object]]:
    """A day of minutely runs before the fixture's own: 1 in 10 failed, 1 in 50 timed out."""
    rng = random.Random(7)
    rows = []
    for minute in range(10, 7 * 24 * 60, 7):
        slot = NOW - timedelta(minutes=minute)
        status = "timeout" if minute % 50 == 0 else "failed" if minute % 10 == 0 else "ok"
        took = 30_000 if status == "timeout" else rng.randint(100, 900)
        rows.append({"job_id": job_id, "trigger": "schedule", "scheduled_at": slot,
                     "status": status, "attempts": 1, "http_status": 200 if status == "ok"
                     else (503 if status == "failed" else None), "started_at": slot,
                     "duration_ms": took, "lateness_ms": 3,
                     "error": None if status == "ok" else "HTTP 503 Service Unavailable",
                     "idempotency_key": f"{job_id}@{slot.isoformat()}", "slot_count": 1})
    with store.engine.begin() as conn:
        conn.execute(runs.insert(), rows)
    return rows


def screen_text(app: DashboardApp) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    for widget in app.screen.query(Static):
        console.print(widget.content)
    return console.export_text()


def test_g_opens_the_trends_of_the_selected_job_at_80x24(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    rows = add_day_of_runs(store)

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, JOB)
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, TrendsScreen)
                    and app.screen.snapshot is not None, "trends")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrendsScreen) and screen.snapshot is not None
        labels = [label for label, _ in screen.snapshot.windows]
        assert labels == ["1 h", "24 h", "7 d"]
        week = dict(screen.snapshot.windows)["7 d"]
        mine = [row for row in rows if NOW - row["scheduled_at"] <= timedelta(days=7)]  # type: ignore[operator]
        assert week.failed >= sum(row["status"] == "failed" for row in mine)
        text = screen_text(app)
        assert "trends of process-email-queue" in text
        assert "24 h" in text and "7 d" in text and "HTTP 5xx" in text
        chart = screen.query_one(RunChart)
        assert chart.size.width >= 70 and chart.size.height >= 8  # readable at 80x24
        drawn = chart.render()
        assert "•" in drawn.plain and "now" in drawn.plain and "30.0s" in drawn.plain
        styles = {str(span.style) for span in drawn.spans}
        assert {"green", "bold red", "bold magenta"} <= styles
        app.save_screenshot(str(tmp_path / "trends.svg"))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is dashboard(app), "back to the dashboard")

    drive(store, scenario, size=(80, 24))


def test_the_chart_puts_each_run_in_its_cell_and_the_worst_outcome_wins() -> None:
    since = datetime(2026, 1, 1, tzinfo=NOW.tzinfo)
    until_ = since + timedelta(hours=24)
    points = [RunPoint(since + timedelta(hours=1), 1000, "ok"),
              RunPoint(since + timedelta(hours=1, minutes=1), 1000, "failed"),
              RunPoint(since + timedelta(hours=23, minutes=59), 0, "timeout")]
    lines = chart_lines(points, since, until_, width=31, height=12)
    assert len(lines) == 12
    plot = [line for line in lines[:10]]
    top, bottom = plot[0], plot[-1]
    assert top.plain.startswith("  1.0s│") and bottom.plain.startswith("     0│")
    # 24 columns for 24 h: the hour-1 runs share column 1 of the top row; failed wins.
    assert top.plain[7 + 1] == "•" and _style_at(top, 7 + 1) == "bold red"
    assert bottom.plain[7 + 23] == "•" and _style_at(bottom, 7 + 23) == "bold magenta"
    assert "-24h" in lines[10].plain and "now" in lines[10].plain
    assert "3 runs" in lines[11].plain


def _style_at(line: Text, index: int) -> str:
    return next(str(span.style) for span in line.spans if span.start <= index < span.end)


def test_an_auto_disabled_job_is_marked_in_the_table_and_its_trends(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.set_paused("sync-mailboxes", True, "auto-disabled after 25 failures")

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        assert str(screen.jobs.get_cell("sync-mailboxes", "state")) == "auto-disabled"
        assert str(screen.jobs.get_cell("sync-mailboxes", "next")) == "auto-off"
        await select_job(app, pilot, "sync-mailboxes")
        assert screen.check_action("resume", ()) is True  # r brings it back
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, TrendsScreen), "trends")
        assert "auto-disabled after 25 failures" in screen_text(app)

    drive(store, scenario, size=(80, 24))
