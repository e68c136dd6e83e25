"""Logs: one JSON object a line with a stable `action`; secrets appear nowhere.

The secrecy test runs the real daemon with the Bearer secret installed as a systemd
credential, against an endpoint that echoes the Authorization header back and one
that puts the token in its error, with an alert webhook too; then it greps every
byte the daemon wrote (stdout, stderr, the SQLite file and its WAL) and every alert.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.config import load_config
from scheduler.errors import ConfigError
from scheduler.logs import JsonFormatter, TextFormatter, configure_logging, get_logger
from tests.config_tables import config_with
from tests.daemon_harness import SECRET as ENV_SECRET
from tests.daemon_harness import DaemonProcess, write_config
from tests.endpoint_server import EndpointServer, Fault

CREDENTIAL = "cred-7Hq2LmXv9Ws4Tz1KbN3c"  # what LoadCredential= would hand the daemon


def record(message: str, **extra: object) -> logging.LogRecord:
    logger = get_logger("test")
    return logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None,
                             extra=extra)


def test_json_formatter_writes_one_object_a_line_with_action_and_fields() -> None:
    line = JsonFormatter().format(record("run finished\nsecond line", action="run.finish",
                                         job="sync", status="ok", http_status=200))
    assert "\n" not in line  # a newline in a message must not split the record
    entry = json.loads(line)
    assert entry["action"] == "run.finish" and entry["msg"] == "run finished\nsecond line"
    assert entry["job"] == "sync" and entry["status"] == "ok" and entry["http_status"] == 200
    assert {"ts", "level", "logger"} <= entry.keys()


def test_json_formatter_falls_back_to_the_logger_name_for_action() -> None:
    assert json.loads(JsonFormatter().format(record("plain")))["action"] == "cronhost.test"


def test_text_formatter_is_for_humans() -> None:
    line = TextFormatter().format(record("run finished", action="run.finish", job="sync"))
    assert "run finished" in line and "job=sync" in line and "run.finish" not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_configure_logging_writes_json_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    configure_logging("json")
    get_logger("daemon").info("daemon started", extra={"action": "daemon.start", "jobs": 3})
    (entry,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["action"] == "daemon.start" and entry["jobs"] == 3


def test_secret_never_reaches_logs_store_or_alerts(tmp_path: Path, endpoint: EndpointServer) -> None:
    endpoint.set_default("/api/cron/echo", Fault.echo_secret())
    endpoint.set_default("/api/cron/refused", Fault.status(
        400, body={"success": False, "error": f"token Bearer {CREDENTIAL} is not valid"}))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "CRON_SECRET").write_text(CREDENTIAL + "\n", encoding="utf-8")
    config = write_config(tmp_path, f"""
[[alerts]]
type = "webhook"
url = "{endpoint.url}/hooks/alert"
after_failures = 1

[[jobs]]
id = "echo"
path = "/api/cron/echo"
every = "1s"

[[jobs]]
id = "refused"
path = "/api/cron/refused"
every = "1s"
""", base_url=endpoint.url)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", CREDENTIALS_DIRECTORY=str(credentials))
    try:
        daemon.wait_action("run.finish", count=2, job="echo", status="ok")
        daemon.wait_action("run.finish", count=1, job="refused", status="failed")
        endpoint.wait_for_requests("/hooks/alert", 1)
        daemon.wait_action("alert.sent")
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    # The test means something only if the secret was sent and came back.
    echo = endpoint.requests("/api/cron/echo")[0]
    assert echo.headers["authorization"] == f"Bearer {CREDENTIAL}"
    written = {"daemon stdout+stderr": daemon.log_path.read_bytes()}
    for path in tmp_path.glob("cronhost.db*"):
        written[path.name] = path.read_bytes()
    written["alerts"] = b"".join(r.body for r in endpoint.requests("/hooks/alert"))
    assert written["cronhost.db"] and written["alerts"]
    for where, data in written.items():
        for secret in (CREDENTIAL, ENV_SECRET):
            assert secret.encode() not in data, f"secret found in {where}"


def test_run_records_carry_job_slot_status_http_duration_lateness_and_ids(
    tmp_path: Path, endpoint: EndpointServer
) -> None:
    config = write_config(tmp_path, """
[[jobs]]
id = "tick"
path = "/api/cron/tick"
every = "1s"
""", base_url=endpoint.url)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        finish = daemon.wait_action("run.finish", job="tick")[0]
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    records = daemon.records()
    assert all(r.get("action") != "raw" for r in records), "a line that is not JSON"
    start = next(r for r in records if r["action"] == "run.start" and r["run_id"] == finish["run_id"])
    attempt = next(r for r in records if r["action"] == "run.attempt")
    assert {"job", "slot", "run_id", "trigger", "lateness_ms", "idempotency_key"} <= start.keys()
    assert {"job", "slot", "run_id", "status", "attempts", "http_status", "duration_ms",
            "lateness_ms", "idempotency_key"} <= finish.keys()
    assert finish["status"] == "ok" and finish["http_status"] == 200 and finish["attempts"] == 1
    assert finish["idempotency_key"] == f"tick@{finish['slot'][:19]}Z"
    assert {"job", "slot", "idempotency_key", "attempt", "request_id", "http_status",
            "duration_ms"} <= attempt.keys()
    assert attempt["job"] == "tick" and isinstance(attempt["duration_ms"], int)
    request = endpoint.requests("/api/cron/tick")[0]
    assert attempt["request_id"] == request.headers["x-request-id"]
    assert {"daemon.start", "daemon.stop"} <= {r["action"] for r in records}


def test_logging_table_sets_the_level_and_is_strict(tmp_path: Path) -> None:
    assert config_with("logging", None).log_level is None
    assert config_with("logging", {"level": "debug"}).log_level == logging.DEBUG
    for table, field in (({"level": "loud"}, "logging.level"), ({"format": "xml"}, "logging.format")):
        with pytest.raises(ConfigError) as error:
            config_with("logging", table)
        assert error.value.field == field
    config = write_config(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nevery = "1s"\n',
                          extra='[logging]\nlevel = "verbose"\n')
    with pytest.raises(ConfigError, match="logging.level"):
        load_config(config, resolve_secrets=False)
