"""`cronhost tui`: the live dashboard, a separate process that reads the store.

It meets the daemon only in the database: it reads runs, job state and the
daemon's heartbeat, and writes rows to the commands table for the daemon to
carry out. It never imports APScheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from scheduler.store import Store
from tui.screens.dashboard import DashboardScreen


def utc_now() -> datetime:
    return datetime.now(UTC)


class DashboardApp(App[None]):
    CSS_PATH = "dashboard.tcss"
    TITLE = "cronhost"
    # The footer is for the operator's keys; the palette would only repeat them.
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(
        self, store: Store, config_path: Path, clock: Callable[[], datetime] = utc_now
    ) -> None:
        super().__init__()
        self.store = store
        self.config_path = config_path
        # Injected so that tests and snapshots see one fixed moment; the daemon's
        # times in the store are compared with this clock, never with the wall clock.
        self.clock = clock

    def get_default_screen(self) -> Screen[None]:
        return DashboardScreen(self.store, self.config_path, self.clock)


def run_dashboard(store: Store, config_path: Path) -> int:
    """Run until the operator quits; the exit status for the CLI."""
    app = DashboardApp(store, config_path)
    try:
        app.run()
    finally:
        store.dispose()
    return app.return_code or 0
