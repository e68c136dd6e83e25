"""The dashboard fits: columns drop out by width, rows scroll with the cursor in view."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rich.text import Text
from textual.pilot import Pilot

from tests.test_tui import dashboard, drive, until
from tests.test_tui_fixtures import (
    DRIP_MESSAGE,
    LEADMAP,
    make_leadmap_store,
)
from tui.app import DashboardApp
from tui.screens.runs import RunsScreen
from tui.widgets.history_table import HistoryTable
from tui.widgets.keyed_table import Column, fit_columns

ESSENTIAL = ["job", "state", "next", "last"]


def test_fit_columns_keeps_rank_0_and_adds_the_others_by_rank_while_they_fit() -> None:
    columns = (Column("a", "a"), Column("b", "b", rank=2), Column("c", "c", rank=1))
    rows = [("k", ["xxxx", "yyyy", "zzzzzz"])]
    assert fit_columns(columns, rows, 6) == {"a": 4}  # even a too-narrow table keeps "a"
    assert fit_columns(columns, rows, 14) == {"a": 4, "c": 6}
    assert fit_columns(columns, rows, 12) == {"a": 4, "b": 4}  # c does not fit, b does
    assert list(fit_columns(columns, rows, 40)) == ["a", "b", "c"]  # in display order


def test_a_flex_column_takes_the_room_left_up_to_its_longest_cell() -> None:
    columns = (Column("a", "a"), Column("note", "note", rank=1, width=10, flex=True))
    rows = [("k", ["xxxx", "n" * 50])]
    assert fit_columns(columns, rows, 30) == {"a": 4, "note": 22}
    assert fit_columns(columns, rows, 100) == {"a": 4, "note": 50}
    assert fit_columns(columns, rows, 15) == {"a": 4}  # not even its floor: dropped


def test_a_flex_column_with_a_least_width_is_squeezed_in_before_it_is_dropped() -> None:
    columns = (Column("a", "a"), Column("note", "note", rank=1, width=20, flex=True, least=6),
               Column("b", "b", rank=2))
    rows = [("k", ["xxxx", "n" * 50, "yyyy"])]
    assert fit_columns(columns, rows, 40) == {"a": 4, "note": 26, "b": 4}
    # Its 20 do not fit in 18: it takes the 10 left, and "b" does not join.
    assert fit_columns(columns, rows, 18) == {"a": 4, "note": 10}
    assert fit_columns(columns, rows, 12) == {"a": 4, "b": 4}  # not even 6: dropped, b fits


def _no_sideways_scroll(app: DashboardApp) -> None:
    jobs = dashboard(app).jobs
    assert jobs.virtual_size.width <= jobs.scrollable_content_region.width
    assert jobs.max_scroll_x == 0


def test_at_80x24_every_job_shows_id_state_next_and_last_without_scrolling_sideways(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        jobs = screen.jobs
        await until(pilot, lambda: jobs.row_count == len(LEADMAP) + 1, "15 jobs")
        assert jobs.shown_columns[:4] == ESSENTIAL
        assert "words" not in jobs.shown_columns and "trend" not in jobs.shown_columns
        _no_sideways_scroll(app)
        # All 15 rows in view: the preview gave the jobs its room.
        assert not screen.history.display
        assert jobs.region.height - 3 >= jobs.row_count
        assert jobs.region.bottom <= 23  # the footer keeps the last line
        assert str(jobs.value("process-campaigns", "state")) == "active ⧗trigger"

    drive(make_leadmap_store(tmp_path), scenario, size=(80, 24))


def test_at_120x35_all_15_jobs_the_schedule_in_words_and_the_history_show(
    tmp_path: Path,
) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        screen = dashboard(app)
        jobs = screen.jobs
        await until(pilot, lambda: jobs.row_count == 15 and screen.history.display, "layout")
        assert "words" in jobs.shown_columns and "rate" in jobs.shown_columns
        _no_sideways_scroll(app)
        assert jobs.region.height == jobs.row_count + 3  # every row, nothing below the fold
        assert jobs.max_scroll_y == 0
        assert screen.history.region.height >= 7

    drive(make_leadmap_store(tmp_path), scenario, size=(120, 35))


def test_columns_come_back_as_the_terminal_widens_and_the_cursor_stays(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        jobs = dashboard(app).jobs
        jobs.move_to_key("sms-drip-run")
        await until(pilot, lambda: dashboard(app).selected_job == "sms-drip-run", "selected")
        await pilot.resize_terminal(200, 50)
        await until(pilot, lambda: "trend" in jobs.shown_columns, "every column")
        assert jobs.cursor_key == "sms-drip-run"
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "words" not in jobs.shown_columns, "narrow again")
        assert jobs.cursor_key == "sms-drip-run"
        _no_sideways_scroll(app)

    drive(make_leadmap_store(tmp_path), scenario, size=(120, 35))


def test_on_a_short_terminal_the_jobs_scroll_with_the_cursor_in_view(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        jobs = dashboard(app).jobs
        await until(pilot, lambda: jobs.row_count == 15, "15 jobs")
        visible = jobs.scrollable_content_region.height - 1  # the header row
        assert visible < jobs.row_count
        for _ in range(jobs.row_count - 1):
            await pilot.press("down")
        await until(pilot, lambda: jobs.cursor_key == "sync-mailboxes", "the last job")
        await until(pilot, lambda: jobs.scroll_y <= jobs.cursor_row < jobs.scroll_y + visible,
                    "cursor in view")
        _no_sideways_scroll(app)

    drive(make_leadmap_store(tmp_path), scenario, size=(80, 16))


async def _drip_runs(app: DashboardApp, pilot: Pilot[None], count: int) -> HistoryTable:
    """Enter on sms-drip-run: its runs screen's table, once it shows ``count`` runs."""
    dashboard(app).jobs.move_to_key("sms-drip-run")
    await until(pilot, lambda: dashboard(app).selected_job == "sms-drip-run", "selected")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen)
                and app.screen.table.row_count == count, "the runs")
    assert isinstance(app.screen, RunsScreen)
    return app.screen.table


def test_the_runs_screen_at_80x24_gives_the_message_the_room(tmp_path: Path) -> None:
    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        table = await _drip_runs(app, pilot, 6)
        assert table.shown_columns == ["slot", "status", "took", "note"]
        assert table.max_scroll_x == 0
        key = table.keys[0]
        assert str(table.value(key, "note")) == DRIP_MESSAGE  # whole; cut only on screen
        note = table.value(key, "note")
        assert isinstance(note, Text) and note.overflow == "ellipsis"
        assert table.columns["note"].width >= 40

    drive(make_leadmap_store(tmp_path), scenario, size=(80, 24))


def test_at_80x24_a_manual_re_run_still_leaves_room_for_its_reason(tmp_path: Path) -> None:
    store = make_leadmap_store(tmp_path)
    (last,) = store.history("sms-drip-run", limit=1)
    rerun = store.claim(job_id="sms-drip-run", trigger="manual",
                        scheduled_at=last.scheduled_at + timedelta(seconds=30),
                        idempotency_key=last.idempotency_key, daemon_id="d-test",
                        started_at=last.scheduled_at + timedelta(seconds=30))
    assert rerun is not None
    store.abandon_runs([rerun], "abandoned: the daemon that ran it stopped before it finished")

    async def scenario(app: DashboardApp, pilot: Pilot[None]) -> None:
        table = await _drip_runs(app, pilot, 7)
        # The "manual" mark widens the slot: the reason is squeezed in, not dropped.
        assert table.shown_columns == ["slot", "status", "took", "note"]
        assert 16 <= table.columns["note"].width < 40
        assert table.max_scroll_x == 0

    drive(store, scenario, size=(80, 24))
