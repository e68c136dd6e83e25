"""Where the keys go: the jobs table at start and after any screen closes; Enter on a job
opens its runs, Enter on a run its details, Esc goes back one step; Tab is in the footer."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tests.test_tui import dashboard, drive, select_job, until
from tests.test_tui_fixtures import FLAKY_JOB, empty_store, make_leadmap_store, make_store
from tui.app import DashboardApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.run_details import RunDetailsScreen
from tui.screens.runs import RunsScreen
from tui.screens.trends import TrendsScreen


def footer_keys(app: DashboardApp) -> dict[str, str]:
    """What the footer shows now: key → description."""
    return {key.key: key.description for key in app.screen.query_one(Footer).query(FooterKey)}


async def back_on_the_dashboard(app: DashboardApp, pilot: Pilot[None]) -> DashboardScreen:
    await until(pilot, lambda: isinstance(app.screen, DashboardScreen)
                and dashboard(app).jobs.has_focus, "back on the jobs, focused")
    return dashboard(app)


def test_enter_opens_the_jobs_runs_enter_a_runs_details_and_esc_goes_back(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        assert dashboard(app).jobs.has_focus  # at start
        await select_job(app, pilot, "sync-mailboxes")
        await pilot.press("enter")  # one step
        await until(pilot, lambda: isinstance(app.screen, RunsScreen)
                    and app.screen.table.row_count == 4, "the runs of sync-mailboxes")
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.job_id == "sync-mailboxes"
        assert runs.table.has_focus
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), "details")
        assert app.screen.run.status == "failed"  # type: ignore[attr-defined]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is runs and runs.table.has_focus, "the runs")
        await pilot.press("escape")
        screen = await back_on_the_dashboard(app, pilot)
        await pilot.press("down")  # the arrows move in the jobs, not in the history
        await until(pilot, lambda: screen.selected_job == "sync-mailboxes" or
                    screen.jobs.cursor_row == 5, "moved")
        assert screen.jobs.has_focus

    drive(make_store(tmp_path), scenario)


def test_the_jobs_have_the_focus_after_the_history_and_the_details_close(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        await select_job(app, pilot, "sync-mailboxes")
        assert footer_keys(app).get("tab") == "History"  # the way in is on screen
        await pilot.press("tab")
        await until(pilot, lambda: screen.history.has_focus, "history focused")
        assert footer_keys(app).get("shift+tab") == "Jobs"
        assert "tab" not in footer_keys(app)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetailsScreen), "details")
        await pilot.press("escape")
        await back_on_the_dashboard(app, pilot)
        await pilot.press("tab")
        await until(pilot, lambda: screen.history.has_focus, "history focused")
        await pilot.press("escape")
        await back_on_the_dashboard(app, pilot)
        await pilot.press("tab", "shift+tab")
        await back_on_the_dashboard(app, pilot)

    drive(make_store(tmp_path), scenario)


def test_the_jobs_have_the_focus_after_the_trends_close(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        await select_job(app, pilot, "process-email-queue")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, TrendsScreen), "trends")
        await pilot.press("escape")
        screen = await back_on_the_dashboard(app, pilot)
        assert screen.jobs.cursor_key == "process-email-queue"

    drive(make_store(tmp_path), scenario)


def test_at_80x24_with_15_jobs_the_footer_shows_every_key_and_no_tab(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        await until(pilot, lambda: screen.jobs.row_count == 15, "15 jobs")
        keys = footer_keys(app)
        assert "tab" not in keys  # no preview at this size: nowhere to tab to
        assert {"enter", "t", "p", "r", "f", "g", "slash", "q"} <= set(keys)
        footer = app.screen.query_one(Footer)
        assert all(key.region.right <= footer.region.right for key in footer.query(FooterKey))

    drive(make_leadmap_store(tmp_path), scenario, size=(80, 24))


def test_f_stops_at_a_job_that_fails_every_other_run_even_when_its_last_run_went_well(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        assert str(screen.jobs.value(FLAKY_JOB, "last")) == "ok"
        seen = []
        for _ in range(6):
            before = screen.selected_job
            await pilot.press("f")
            await until(pilot, lambda before=before: screen.selected_job != before, "moved")
            seen.append(screen.selected_job)
        # Every job whose last run failed or whose 24 h success is below 100 %, in order,
        # and round again.
        assert seen == [FLAKY_JOB, "process-email-queue", "provider-health-check",
                        "sync-mailboxes", FLAKY_JOB, "process-email-queue"]

    drive(make_leadmap_store(tmp_path), scenario, size=(120, 35))


def test_f_with_no_failing_job_says_so(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        before = screen.selected_job
        await pilot.press("f")
        await until(pilot, lambda: any("no job failed lately" in notification.message
                                       for notification in app._notifications), "the notice")
        assert screen.selected_job == before

    drive(empty_store(tmp_path), scenario, size=(120, 35))
