"""config.toml: what valid input means, and one clear error for each kind of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.config import PRUNE_JOB_ID, Config, JobSpec, load_config
from scheduler.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

HEADER = """
[defaults]
base_url = "https://app.example.com"
secret = "CRON_SECRET"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def operator_jobs(config: Config) -> list[JobSpec]:
    """The jobs config.toml declares, without cronhost's built-in history pruning."""
    return [job for job in config.jobs if job.id != PRUNE_JOB_ID]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRON")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli", *args],
        capture_output=True, text=True, env=environ, cwd=REPO, timeout=30,
    )


def test_repo_config_holds_the_14_leadmap_jobs_with_the_secret_named_not_written() -> None:
    text = (REPO / "config.toml").read_text()
    config = load_config(REPO / "config.toml", resolve_secrets=False)
    by_id = {job.id: job for job in operator_jobs(config)}
    assert len(by_id) == 14
    assert by_id["process-email-queue"].url == (
        "https://www.growyourdigitalleverage.com/api/cron/process-email-queue")
    assert by_id["gmail-watch-renewal"].schedule == "0 3 * * *"
    assert by_id["calendar-sync"].url.endswith("/api/calendar/cron/sync")  # type: ignore[union-attr]
    assert by_id["sms-drip-run"].schedule == "* * * * *"
    assert {job.method for job in by_id.values()} == {"POST"}
    assert {job.secret for job in by_id.values()} == {"CRON_SECRET"}
    assert {job.timezone for job in by_id.values()} == {"UTC"}
    assert "Bearer" not in text.replace("Bearer <CRON_SECRET>", "")


def test_defaults_apply_and_jobs_override_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRON_SECRET", "s3cret-value")
    config = load_config(write(tmp_path, """
[[jobs]]
id = "a"
path = "/api/cron/a"
schedule = "*/5 * * * *"

[[jobs]]
id = "b"
url = "http://127.0.0.1:8080/hook"
every = "30s"
method = "get"
timezone = "Europe/Paris"
timeout = "5s"
retries = 0
headers = { X-Team = "ops" }
body = { dry_run = true }
"""))
    a, b = operator_jobs(config)
    assert (a.url, a.method, a.timeout, a.deadline, a.retries) == (
        "https://app.example.com/api/cron/a", "POST", 30.0, 120.0, 2)
    assert a.misfire_grace == timedelta(minutes=5) and a.catch_up and not a.allow_overlap
    assert (b.method, b.timezone, b.timeout, b.retries, b.every) == (
        "GET", "Europe/Paris", 5.0, 0, timedelta(seconds=30))
    assert b.headers == (("X-Team", "ops"),) and b.json_body_text == '{"dry_run": true}'
    assert config.secrets["CRON_SECRET"] == "s3cret-value"
    assert "s3cret-value" not in repr(config)


def test_secret_is_found_in_credentials_directory_then_env_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n')
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("CRON_SECRET_FILE", str(secret_file))
    assert load_config(path).secrets["CRON_SECRET"] == "from-file"
    monkeypatch.setenv("CRON_SECRET", "from-env")
    assert load_config(path).secrets["CRON_SECRET"] == "from-env"
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "CRON_SECRET").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load_config(path).secrets["CRON_SECRET"] == "from-systemd"


TIDY_JOB = '[[jobs]]\nid = "tidy"\ncall = "jobs.builtin:noop"\nevery = "1m"\n'


def test_relative_sqlite_path_is_next_to_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nurl = "sqlite:///state/runs.db"\n' + TIDY_JOB)
    assert load_config(path).store.url == f"sqlite:///{tmp_path.resolve() / 'state/runs.db'}"


def test_python_job_takes_call_instead_of_url(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[[jobs]]
id = "tidy"
call = "jobs.builtin:noop"
every = "1m"
"""))
    (job,) = operator_jobs(config)
    assert (job.kind, job.call, job.secret) == ("python", "jobs.builtin:noop", None)


def test_history_pruning_is_a_built_in_job_an_operator_can_reschedule(tmp_path: Path) -> None:
    builtin = load_config(write(tmp_path, TIDY_JOB)).job(PRUNE_JOB_ID)
    assert builtin is not None and builtin.kind == "python" and builtin.schedule == "17 4 * * *"
    config = load_config(write(tmp_path, TIDY_JOB + f"""
[[jobs]]
id = "{PRUNE_JOB_ID}"
call = "scheduler.store.retention:prune_history"
schedule = "0 1 * * 0"
"""))
    assert [job.schedule for job in config.jobs if job.id == PRUNE_JOB_ID] == ["0 1 * * 0"]
    assert len(config.jobs) == 2


# Each bad input: (config body, words the message must contain). The job id and the field are
# always named; the CLI must exit 2 with one paragraph and no traceback.
BAD_INPUTS = {
    "unknown key": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\ntimout = "x"\n',
                    ["job 'a'", "field 'timout'", "unknown key; did you mean 'timeout'?"]),
    "bad cron expression": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "61 * * * *"\n',
                            ["job 'a'", "field 'schedule'", "61"]),
    "six fields": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "0 * * * * *"\n',
                   ["job 'a'", "field 'schedule'"]),
    "duplicate id": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n'
                     '[[jobs]]\nid = "a"\npath = "/b"\nschedule = "* * * * *"\n',
                     ["job 'a'", "field 'id'", "duplicate", "tables 1 and 2"]),
    "missing secret": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n',
                       ["job 'a'", "field 'defaults.secret'", "CRON_SECRET", "not set"]),
    "unknown time zone": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\ntimezone = "Mars/Base"\n',
                          ["job 'a'", "field 'timezone'", "Mars/Base"]),
    "plain http to a remote host": ('[[jobs]]\nid = "a"\nurl = "http://example.com/x"\nschedule = "* * * * *"\n',
                                    ["job 'a'", "field 'url'", "clear text"]),
    "literal token in a header": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n'
                                  'headers = { Authorization = "Bearer abc" }\n',
                                  ["job 'a'", "field 'headers'", "secret"]),
    "literal token as the secret": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n'
                                    'secret = "f3Kq9ZxR2mLw8PvT4nYb7HcJ"\n',
                                    ["job 'a'", "field 'secret'", "NAME"]),
    "schedule and every": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\nevery = "1m"\n',
                           ["job 'a'", "field 'schedule'", "exactly one"]),
    "callable that does not import": ('[[jobs]]\nid = "a"\ncall = "nowhere.module:f"\nevery = "1m"\n',
                                      ["job 'a'", "field 'call'", "nowhere"]),
    "bad duration": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\ntimeout = "soon"\n',
                     ["job 'a'", "field 'timeout'"]),
    "bad id": ('[[jobs]]\nid = "Bad_Id"\npath = "/a"\nschedule = "* * * * *"\n',
               ["field 'id'", "Bad_Id"]),
    "not TOML": ('[[jobs]\nid = "a"\n', ["not valid TOML"]),
    "tiny misfire grace": ('[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\nmisfire_grace = "1ms"\n',
                           ["job 'a'", "field 'misfire_grace'", "at least 1s"]),
    "slow heartbeat": ('[daemon]\nheartbeat_interval = "60s"\n',
                       ["field 'daemon.heartbeat_interval'", "15s"]),
    "store URL with a typo": ('[store]\nurl = "postgres ql://cronhost:hunter2pw@db/cronhost"\n',
                              ["field 'store.url'", "not a SQLAlchemy database URL"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_clear_error(tmp_path: Path, case: str) -> None:
    body, words = BAD_INPUTS[case]
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for word in words:
        assert word in message
    assert "hunter2pw" not in message  # a store URL's password is never repeated


@pytest.mark.parametrize("case", ["bad cron expression", "missing secret", "literal token as the secret",
                                  "not TOML"])
def test_cli_check_exits_2_with_one_paragraph_and_no_traceback(tmp_path: Path, case: str) -> None:
    body, words = BAD_INPUTS[case]
    path = write(tmp_path, body)
    result = run_cli("--config", str(path), "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"cronhost: {path}")
    assert all(word in result.stderr for word in words)
    assert "f3Kq9ZxR2mLw8PvT4nYb7HcJ" not in result.stderr + result.stdout


def test_cli_run_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_INPUTS["missing secret"][0])
    result = run_cli("--config", str(path), "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "CRON_SECRET" in result.stderr
    assert not (tmp_path / "cronhost.db").exists()


def test_cli_check_lists_what_would_run(tmp_path: Path) -> None:
    path = write(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nschedule = "0 3 * * *"\n')
    result = run_cli("--config", str(path), "check", env={"CRON_SECRET": "x" * 12})
    assert result.returncode == 0, result.stderr
    assert "OK, 1 job and the built-in history pruning" in result.stdout
    assert "POST https://app.example.com/a" in result.stdout
    assert PRUNE_JOB_ID in result.stdout
    assert "03:00:00Z" in result.stdout


def test_missing_config_file_names_the_file_and_how_to_choose_one(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.toml"), "check")
    assert result.returncode == 2
    assert "nope.toml: no such file; pass --config PATH or set CRONHOST_CONFIG" in result.stderr


def test_an_unreadable_secret_file_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nschedule = "* * * * *"\n')
    secret_file = tmp_path / "token"
    secret_file.write_bytes(b"\xff\xfe not utf-8")
    result = run_cli("--config", str(path), "check", env={"CRON_SECRET_FILE": str(secret_file)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "job 'a'" in result.stderr and "field 'defaults.secret'" in result.stderr
    assert "cannot read the secret file" in result.stderr
