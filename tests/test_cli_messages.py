"""What the CLI says when things are not as expected: every message names what it is about.

The real CLI in a subprocess against a real SQLite store (its job table written as the
daemon writes it, or by the daemon itself for `reload`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.config import load_config
from scheduler.config.diff import ConfigDiff
from scheduler.daemon.control import job_state_rows
from scheduler.store import Store
from tests.daemon_harness import (
    REPO,
    DaemonProcess,
    cli,
    cli_env,
    started_daemon,
    write_config,
)

JOBS = """
[[jobs]]
id = "sync-mailboxes"
path = "/api/cron/sync-mailboxes"
schedule = "*/5 * * * *"

[[jobs]]
id = "digest"
path = "/api/cron/digest"
schedule = "0 8 * * *"
timezone = "Europe/Paris"
"""


def store_as_the_daemon_left_it(config: Path) -> None:
    """The store's job table as a daemon that loaded ``config`` writes it."""
    store = Store(f"sqlite:///{config.parent / 'cronhost.db'}")
    store.migrate()
    store.sync_jobs(job_state_rows(load_config(config, resolve_secrets=False).jobs))
    store.dispose()


def test_next_with_a_broken_config_answers_from_the_store_and_says_the_file_is_broken(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)
    config.write_text(config.read_text().replace('schedule = "0 8 * * *"',
                                                 'schedule = "0 8 * * *"\nretries = "many"'))

    result = cli(config, "next", "sync-mailboxes", "-n", "2", "--after", "2026-12-02T03:01:00Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2026-12-02T03:05:00+00:00", "2026-12-02T03:10:00+00:00"]
    warning = result.stderr
    assert "warning" in warning and str(config) in warning
    assert "'digest'" in warning and "retries" in warning  # the job and the field at fault
    assert "fields" not in warning and "Traceback" not in warning

    paris = cli(config, "next", "digest", "-n", "1", "--after", "2026-12-02T00:00:00Z")
    assert paris.returncode == 0 and paris.stdout.strip() == "2026-12-02T08:00:00+01:00"


def test_next_with_a_broken_config_and_an_unknown_id_says_both_plainly(tmp_path: Path) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)
    config.write_text(config.read_text() + "\n[[jobs]\n")  # not TOML any more

    result = cli(config, "next", "sync-mailbox")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "'sync-mailbox' is not a job the daemon knows" in message
    assert "the config file is broken" in message and str(config) in message
    assert "fields" not in message  # no cron parser's word on an id
    assert len(message.splitlines()) == 1 and "Traceback" not in message

    expression = cli(config, "next", "0 9 * * 1", "-n", "1", "--after", "2026-11-29T10:00:00Z")
    assert expression.returncode == 0 and expression.stdout.strip() == "2026-11-30T09:00:00+00:00"


def test_pausing_a_paused_job_and_resuming_a_running_one_say_there_is_nothing_to_do(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)

    first = cli(config, "pause", "digest")
    assert first.returncode == 0 and first.stdout.startswith("digest paused")
    again = cli(config, "pause", "digest")
    assert again.returncode == 0 and again.stdout.strip() == "digest is already paused"
    assert cli(config, "resume", "digest").stdout.startswith("digest resumed")
    running = cli(config, "resume", "digest")
    assert running.returncode == 0
    assert running.stdout.strip() == "digest is not paused; nothing to resume"


@pytest.mark.slow
def test_reload_names_the_jobs_it_added_rescheduled_and_removed(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, JOBS + """
[[jobs]]
id = "old-report"
path = "/api/cron/old-report"
schedule = "0 6 * * 1"
""")
    daemon = started_daemon(config, tmp_path, daemons)
    text = config.read_text().replace('"*/5 * * * *"', '"*/10 * * * *"')
    text = text[:text.index('[[jobs]]\nid = "old-report"')] + """[[jobs]]
id = "new-report"
path = "/api/cron/new-report"
schedule = "0 7 * * 1"
"""
    config.write_text(text)

    result = cli(config, "reload", timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "added: new-report" in lines
    assert "changed: sync-mailboxes (*/5 * * * * → */10 * * * *)" in lines
    assert "removed: old-report" in lines
    assert "digest" not in result.stdout  # unchanged jobs are counted, not named

    # A second reload reports its own changes only: the file now disables one job.
    config.write_text(config.read_text().replace('schedule = "0 7 * * 1"',
                                                 'schedule = "0 7 * * 1"\nenabled = false'))
    again = cli(config, "reload", timeout=60)
    assert again.returncode == 0, again.stderr
    assert [line.strip() for line in again.stdout.splitlines()][1:] == [
        "changed: new-report (disabled)"]
    assert daemon.stop() == 0


def test_a_reload_of_many_jobs_names_ten_of_each_kind_and_counts_the_rest() -> None:
    diff = ConfigDiff(
        added=[{"job": f"new-{i:02d}"} for i in range(3)],
        changed=[{"job": f"kept-{i:02d}", "fields": ["schedule"], "old_schedule": "* * * * *",
                  "new_schedule": "*/2 * * * *"} for i in range(12)],
    )
    lines = ConfigDiff.from_json(diff.to_json()).lines()  # as `cronhost reload` reads it back
    assert lines[0] == "added: new-00, new-01, new-02"
    assert lines[1].startswith("changed: kept-00 (* * * * * → */2 * * * *), ")
    assert lines[1].endswith("kept-09 (* * * * * → */2 * * * *) and 2 more")
    assert len(lines) == 2
    # The audit log's one line names fewer.
    assert diff.summary().endswith("kept-02 (* * * * * → */2 * * * *) and 9 more")


# -- odd input on the command line: one paragraph and exit 2, never a traceback or a hang --

HUGE = str(10**30)
ODD_ARGUMENTS = {
    "history -n 10**30": (["history", "-n", HUGE], "-n must be between 1 and"),
    "log -n 10**30": (["log", "-n", HUGE], "-n must be between 1 and"),
    "next -n 10**8": (["next", "* * * * *", "-n", "100000000"], "-n must be between 1 and"),
    "report --since 99999999d": (["report", "--since", "99999999d"], "at most"),
    "trigger --slot ''": (["trigger", "digest", "--slot", ""], "--slot needs a time"),
    "trigger --force alone": (["trigger", "digest", "--force"], "--force goes with --slot"),
    "trigger --timeout nan": (["trigger", "digest", "--wait", "--timeout", "nan"],
                              "--timeout must be"),
    "trigger --timeout -1": (["trigger", "digest", "--wait", "--timeout", "-1"],
                             "--timeout must be"),
}


@pytest.mark.parametrize("case", ODD_ARGUMENTS)
def test_odd_arguments_are_refused_in_one_paragraph(tmp_path: Path, case: str) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)
    args, expected = ODD_ARGUMENTS[case]
    result = cli(config, *args)
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert Store(f"sqlite:///{tmp_path / 'cronhost.db'}").pending_commands() == []


def test_a_config_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    for command in (["check"], ["status"], ["history"]):
        result = cli(fifo, *command, timeout=60)  # reading a FIFO would block for ever
        assert result.returncode == 2, (command, result.stderr)
        assert "not a regular file" in result.stderr and "Traceback" not in result.stderr


def test_a_store_url_that_is_no_url_names_the_file_and_the_field_for_every_command(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, JOBS, store_url="not a url")
    for command in (["status"], ["history"], ["trigger", "digest"], ["check"]):
        result = cli(config, *command)
        assert result.returncode == 2, (command, result.stderr)
        assert f"{config}, field 'store.url'" in result.stderr, (command, result.stderr)


def test_a_full_disk_under_stdout_is_one_line_on_stderr(tmp_path: Path) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "scheduler.cli", "--config", str(config),
                                 "status", "--json"], stdout=full, stderr=subprocess.PIPE,
                                text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "No space left" in result.stderr, result.stderr


def test_compare_with_an_export_that_holds_no_runs_is_no_agreement(tmp_path: Path) -> None:
    config = write_config(tmp_path, JOBS)
    store_as_the_daemon_left_it(config)
    empty = tmp_path / "old-runs.json"
    empty.write_text("[]", encoding="utf-8")
    result = cli(config, "compare", str(empty))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nothing to compare" in result.stderr and "agree" not in result.stdout

