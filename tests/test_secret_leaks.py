"""No form of the secret anywhere a reader of the store, the journal or the screen could look.

The real daemon calls endpoints that echo its Authorization header back in every style
an endpoint may use (JSON, PHP's escaped slashes, lower case, base64, an HTML error page,
every character an entity), with a secret holding `& < > " / + =`. Then the daemon's
output, `history --json`, `status --json`, the SQLite file's bytes and the dashboard's
run-details screen are searched with the same independent oracle as tests/test_redact.py
(every decoding a reader could apply, any 12 characters of the secret).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from scheduler.store import Store
from tests.daemon_harness import DaemonProcess, cli, write_config
from tests.endpoint_server import EndpointServer, Fault
from tests.test_redact import SPECIAL, leaks
from tui.app import DashboardApp
from tui.screens.run_details import RunDetailsScreen

ECHOES = ("json", "php", "lower", "base64", "html", "entities")


def screen_text(app: DashboardApp) -> str:
    console = Console(width=400, record=True, file=io.StringIO())
    for static in app.screen.query(Static):
        console.print(static.render())
    return console.export_text()


@pytest.mark.slow
def test_no_form_of_an_echoed_secret_reaches_log_history_status_store_or_screen(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    jobs = ""
    for how in ECHOES:
        endpoint.set_default(f"/echo/{how}", Fault.echo_secret(how, code=500))
        jobs += (f'[[jobs]]\nid = "echo-{how}"\npath = "/echo/{how}"\nevery = "2s"\n'
                 'retries = 0\n\n')
    config = write_config(tmp_path, jobs, base_url=endpoint.url)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", CRON_SECRET=SPECIAL)
    daemons.append(daemon)
    for how in ECHOES:
        daemon.wait_action("run.finish", job=f"echo-{how}")
    assert daemon.stop() == 0
    # The endpoints did get the secret (so every echo above really carried it).
    assert all(r.headers["authorization"] == f"Bearer {SPECIAL}" for r in endpoint.requests())

    history = cli(config, "history", "-n", "200", "--json")
    status = cli(config, "status", "--json")
    assert history.returncode == 0 and status.returncode == 0
    db = tmp_path / "cronhost.db"
    store_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("cronhost.db*")
                           if path.is_file())

    store = Store(f"sqlite:///{db}")
    runs = [row for row in store.history(limit=200) if row.status == "failed"]
    assert {row.job_id for row in runs} == {f"echo-{how}" for how in ECHOES}
    shown: list[str] = []

    async def show_details() -> None:
        app = DashboardApp(store, config)
        async with app.run_test(size=(200, 50)) as pilot:
            for run in runs:
                app.push_screen(RunDetailsScreen(run, store, clock=lambda at=run.scheduled_at: at))
                await pilot.pause()
                shown.append(screen_text(app))
                app.pop_screen()
                await pilot.pause()

    asyncio.run(show_details())
    store.dispose()
    assert any("[REDACTED]" in text for text in shown), "the run details show the excerpt"

    places = {
        "the daemon's output": (tmp_path / "daemon.log").read_text(errors="replace"),
        "history --json": history.stdout,
        "status --json": status.stdout,
        "the SQLite files": store_bytes.decode("latin-1"),
        "the dashboard's run details": "\n".join(shown),
    }
    found = {place: leaks(text, SPECIAL) for place, text in places.items()}
    assert found == {place: [] for place in places}
