"""The audit log against the real daemon: who paused a job, what a reload changed, and a
failed reload that never shows the secret pasted into the bad config."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import load_config
from scheduler.config.diff import diff_configs
from tests.daemon_harness import SECRET, DaemonProcess, cli, cli_json, started_daemon, write_config
from tests.endpoint_server import EndpointServer
from tests.test_redact import leaks

JOBS = """
[[jobs]]
id = "sync-mailboxes"
path = "/sync"
schedule = "*/5 * * * *"

[[jobs]]
id = "nightly-report"
path = "/report"
schedule = "0 3 * * *"
"""


def events(config: Path, *args: str) -> list[dict[str, Any]]:
    rows = cli_json(config, "log", "-n", "100", *args)
    assert isinstance(rows, list)
    return rows


def expected_user() -> str:
    from scheduler.store.audit import who_asks  # the same rule the CLI process applies

    user = who_asks().user
    assert user
    return user


def test_a_pause_from_the_cli_and_a_reload_appear_in_the_log_with_user_host_and_diff(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess],
) -> None:
    config = write_config(tmp_path, JOBS, base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)

    assert cli(config, "pause", "sync-mailboxes").returncode == 0
    daemon.wait_action("job.pause", job="sync-mailboxes")

    edited = config.read_text().replace('schedule = "*/5 * * * *"', 'schedule = "*/10 * * * *"')
    edited = edited.replace('[[jobs]]\nid = "nightly-report"\npath = "/report"\n'
                            'schedule = "0 3 * * *"\n', "")
    edited += '\n[[jobs]]\nid = "weekly-digest"\npath = "/digest"\nschedule = "0 8 * * 1"\n'
    config.write_text(edited)
    reloaded = cli(config, "reload")
    assert reloaded.returncode == 0, reloaded.stderr

    rows = events(config)
    user, host = expected_user(), socket.gethostname()
    pause = next(row for row in rows if row["kind"] == "command.pause")
    assert (pause["job_id"], pause["user"], pause["host"]) == ("sync-mailboxes", user, host)
    assert pause["summary"] == f"paused by {user}@{host} (cli)"
    assert pause["detail"]["outcome"] == "done" and pause["detail"]["requested_by"] == "cli"

    reload = next(row for row in rows if row["kind"] == "config.reloaded")
    assert (reload["user"], reload["host"]) == (user, host)
    assert reload["detail"]["changed"] == [{
        "job": "sync-mailboxes", "fields": ["schedule"],
        "old_schedule": "*/5 * * * *", "new_schedule": "*/10 * * * *"}]
    assert [entry["job"] for entry in reload["detail"]["added"]] == ["weekly-digest"]
    assert reload["detail"]["removed"] == [
        {"job": "nightly-report", "schedule": "0 3 * * *", "timezone": "UTC"}]
    assert "sync-mailboxes (*/5 * * * * → */10 * * * *)" in reload["summary"]

    # Newest first: the reload came after the pause; --job keeps that job's lines only.
    kinds = [row["kind"] for row in rows]
    assert kinds.index("config.reloaded") < kinds.index("command.pause")
    assert kinds[-1] == "daemon.started"
    assert {row["job_id"] for row in events(config, "--job", "sync-mailboxes")} == {
        "sync-mailboxes"}

    text = cli(config, "log")
    assert text.returncode == 0
    assert f"{user}@{host}" in text.stdout and "command.pause" in text.stdout

    assert daemon.stop() == 0
    assert events(config)[0]["kind"] == "daemon.stopped"


def test_a_failed_reload_is_in_the_log_without_the_secret_pasted_into_the_config(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess],
) -> None:
    config = write_config(tmp_path, JOBS, base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)

    # The token pasted where a schedule goes: the loader's error quotes the field's value.
    config.write_text(config.read_text().replace('"*/5 * * * *"', f'"{SECRET}"'))
    daemon.signal(signal.SIGHUP)
    daemon.wait_action("config.reload_failed")
    refused = cli(config, "reload")
    assert refused.returncode == 2

    rows = events(config)
    failed = [row for row in rows if row["kind"] == "config.reload_failed"]
    assert len(failed) == 2
    assert "sync-mailboxes" in failed[0]["detail"]["error"]
    assert "[REDACTED]" in failed[0]["detail"]["error"]
    assert failed[1]["detail"]["via"] == "signal or file change"
    assert failed[0]["detail"]["via"] == "cli"
    # The error names a job the daemon runs: `log --job` finds the failure under it.
    assert {row["job_id"] for row in failed} == {"sync-mailboxes"}
    assert [row["kind"] for row in events(config, "--job", "sync-mailboxes")].count(
        "config.reload_failed") == 2
    assert daemon.stop() == 0

    store_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("cronhost.db*")
                           if path.is_file())
    places = {
        "cronhost log --json": json.dumps(rows),
        "cronhost log": cli(config, "log").stdout,
        "the daemon's output": (tmp_path / "daemon.log").read_text(errors="replace"),
        "the SQLite files": store_bytes.decode("latin-1"),
    }
    assert {place: leaks(text, SECRET) for place, text in places.items()} == {
        place: [] for place in places}


def test_a_reload_diff_names_the_changed_fields_and_a_move_of_the_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRON_SECRET", SECRET)
    old = load_config(write_config(tmp_path, JOBS))
    edited = JOBS.replace('schedule = "0 3 * * *"',
                          'schedule = "0 3 * * *"\ntimezone = "Europe/Paris"\ntimeout = "1s"')
    edited = edited.replace('path = "/sync"', 'path = "/sync2"')
    new = load_config(write_config(tmp_path, edited))
    diff = diff_configs(old, new)
    assert diff.changed == [
        {"job": "sync-mailboxes", "fields": ["url"]},
        {"job": "nightly-report", "fields": ["schedule", "timeout"],
         "old_schedule": "0 3 * * *", "new_schedule": "0 3 * * * Europe/Paris"},
    ]
    assert diff.summary() == ("changed sync-mailboxes (url), "
                              "nightly-report (0 3 * * * → 0 3 * * * Europe/Paris)")
    assert diff_configs(new, new).summary() == "no job changed"
