"""SVG snapshots of the dashboard (pytest-textual-snapshot), with a frozen clock and fixed data.

Regenerate after an intended change of the picture, then look at the SVGs:
    .venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update

The main screen is taken at the three sizes the README promises: 80x24 (every job's
id, state, next fire and last status; the jobs take the screen), 120x35 (all 15 jobs,
the schedule in words and the selected job's history) and 200x50 (every column).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.test_tui import until
from tests.test_tui_audit import EVENTS, seed_events
from tests.test_tui_fixtures import NOW, SHOWN_CONFIG, make_leadmap_store, make_store
from tui.app import DashboardApp
from tui.screens.audit_log import AuditLogScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.run_details import RunDetailsScreen
from tui.screens.runs import RunsScreen

SnapCompare = Callable[..., bool]


async def settle(pilot: Pilot[None], job_id: str) -> DashboardScreen:
    """Wait for the first refresh, then put the cursor on ``job_id`` and wait for its history."""
    screen = pilot.app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    await until(pilot, lambda: screen.snapshot is not None, "first refresh")
    screen.jobs.move_to_key(job_id)
    await until(pilot, lambda: screen.snapshot is not None
                and screen.snapshot.history_job == job_id, f"history of {job_id}")
    await pilot.pause()
    return screen


@pytest.mark.parametrize("size", [(80, 24), (120, 35), (200, 50)],
                         ids=["80x24", "120x35", "200x50"])
def test_main_screen(snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]) -> None:
    app = DashboardApp(make_leadmap_store(tmp_path), Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, "process-email-queue")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_runs_screen_at_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = DashboardApp(make_leadmap_store(tmp_path), Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, "sms-drip-run")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen)
                    and pilot.app.screen.snapshot is not None, "the runs")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_run_details_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = DashboardApp(make_store(tmp_path), Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, "sync-mailboxes")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunsScreen)
                    and pilot.app.screen.snapshot is not None, "the runs")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, RunDetailsScreen)
                    and pilot.app.screen.attempts is not None, "details and their attempts")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_audit_log_at_80x24(snap_compare: SnapCompare, tmp_path: Path) -> None:
    store = seed_events(make_leadmap_store(tmp_path))
    app = DashboardApp(store, Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, "process-email-queue")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, AuditLogScreen)
                    and pilot.app.screen.table.row_count == len(EVENTS), "the audit log")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
