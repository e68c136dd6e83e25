"""SVG snapshots of the dashboard (pytest-textual-snapshot), with a frozen clock and fixed data.

Regenerate after an intended change of the picture, then look at the SVGs:
    .venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tests.test_tui_fixtures import NOW, SHOWN_CONFIG, make_store
from tui.app import DashboardApp
from tui.screens.dashboard import DashboardScreen
from tui.screens.run_details import RunDetailsScreen

SIZE = (100, 30)
SnapCompare = Callable[..., bool]


async def settle(pilot: Pilot[None], job_id: str) -> DashboardScreen:
    """Wait for the first refresh, then put the cursor on ``job_id`` and wait for its history."""
    screen = pilot.app.screen_stack[0]
    assert isinstance(screen, DashboardScreen)
    for _ in range(500):
        if screen.snapshot is not None:
            break
        await pilot.pause(0.01)
    screen.jobs.move_to_key(job_id)
    for _ in range(500):
        if screen.snapshot is not None and screen.snapshot.history_job == job_id:
            break
        await pilot.pause(0.01)
    await pilot.pause()
    return screen


def test_main_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = DashboardApp(make_store(tmp_path), Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, "process-email-queue")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_run_details_screen(snap_compare: SnapCompare, tmp_path: Path) -> None:
    app = DashboardApp(make_store(tmp_path), Path(SHOWN_CONFIG), clock=lambda: NOW)

    async def run_before(pilot: Pilot[None]) -> None:
        screen = await settle(pilot, "sync-mailboxes")
        screen.history.focus()
        await pilot.press("enter")
        for _ in range(500):
            if isinstance(pilot.app.screen, RunDetailsScreen):
                break
            await asyncio.sleep(0.01)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
