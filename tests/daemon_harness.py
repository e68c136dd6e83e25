"""Run the real daemon as a subprocess (`python -m scheduler.cli ... run`) and read its store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SECRET = "test-secret-Zq81vLx"


def write_config(directory: Path, jobs: str, *, store_url: str | None = None, extra: str = "",
                 base_url: str = "http://127.0.0.1:9") -> Path:
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    path = directory / "config.toml"
    path.write_text(f"""{store}{extra}
[defaults]
base_url = "{base_url}"
secret = "CRON_SECRET"
timeout = "2s"
deadline = "4s"
retries = 1
""" + jobs, encoding="utf-8")
    return path


def hanging_job_config(directory: Path, endpoint: Any, extra: str = "") -> Path:
    """A config with one job `hang` whose endpoint hangs for 30 s; it runs when triggered."""
    from tests.endpoint_server import Fault

    endpoint.set_default("/hang", Fault.hang(30))
    return write_config(directory, """
[[jobs]]
id = "hang"
path = "/hang"
schedule = "0 0 1 1 *"
timeout = "20s"
deadline = "20s"
""", base_url=endpoint.url, extra=extra)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRON", "NOTIFY_SOCKET"))}
    env["CRON_SECRET"] = SECRET
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def cli(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli", "--config", str(config), *args],
        capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=timeout,
    )


def cli_json(config: Path, *args: str) -> Any:
    result = cli(config, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class DaemonProcess:
    """`cronhost run` in a subprocess, its JSON log lines kept in a file."""

    def __init__(self, config: Path, log_path: Path, *run_args: str, **env: str) -> None:
        self.config = config
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "--config", str(config), "run",
             "--log-format", "json", *run_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=cli_env(**env), cwd=REPO,
        )

    def records(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"action": "raw", "msg": line})
        return records

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0,
                 what: str = "condition") -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            if predicate(records):
                return records
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited ({self.process.returncode}) before {what}:\n"
                                     + self.log_path.read_text())
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n" + self.log_path.read_text()[-4000:])

    def wait_action(self, action: str, count: int = 1, timeout: float = 15.0, **fields: Any) -> list[dict[str, Any]]:
        def matching(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in records if r.get("action") == action
                    and all(r.get(k) == v for k, v in fields.items())]

        self.wait_for(lambda records: len(matching(records)) >= count, timeout, f"{count}x {action} {fields}")
        return matching(self.records())

    def wait_started(self) -> None:
        self.wait_action("daemon.start")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def kill(self) -> None:
        self.process.kill()
        self.wait()

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()


def started_daemon(config: Path, tmp_path: Path, daemons: list[DaemonProcess]) -> DaemonProcess:
    """The daemon on ``config``, started; the ``daemons`` fixture kills it whatever happens."""
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemons.append(daemon)
    daemon.wait_started()
    return daemon
