"""systemd's notify protocol, heard on a real datagram socket set as NOTIFY_SOCKET.

The daemon test runs `cronhost run` as systemd would (Type=notify, WatchdogSec) and,
where the kernel has it, under prctl(PR_SET_MDWE): the kernel's own form of
MemoryDenyWriteExecute=yes, so the unit's setting is tested, not assumed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scheduler.daemon.notify import Notifier
from tests.daemon_harness import REPO, DaemonProcess, cli_env, write_config

Message = dict[str, str]

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
# Runs the daemon with W+X memory refused, as MemoryDenyWriteExecute=yes does.
MDWE_LAUNCHER = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:\n"
    "    sys.exit('prctl(PR_SET_MDWE) failed')\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


def kernel_has_mdwe() -> bool:
    return sys.platform == "linux" and ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0


class NotifySocket:
    """What systemd listens on: one datagram per sd_notify() call, fields split by newlines."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.messages: list[Message] = []

    def receive(self, timeout: float) -> Message | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(message)
        return message

    def expect(self, predicate: Callable[[Message], bool], timeout: float = 10.0,
               what: str = "message") -> Message:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is not None and predicate(message):
                return message
        raise AssertionError(f"no {what} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="cronhost-") as directory:
        listener = NotifySocket(os.path.join(directory, "notify"))
        try:
            yield listener
        finally:
            listener.close()


# -- the Notifier on its own -------------------------------------------------------------


def test_notifier_sends_each_message_as_one_datagram(notify_socket: NotifySocket) -> None:
    notifier = Notifier(notify_socket.address)
    try:
        assert notifier.ready("3 jobs scheduled, 0 running")
        assert notify_socket.receive(1) == {
            "READY": "1", "STATUS": "3 jobs scheduled, 0 running", "MAINPID": str(os.getpid())}
        for send, expected in ((notifier.watchdog, {"WATCHDOG": "1"}),
                               (notifier.reloading, {"RELOADING": "1"}),
                               (notifier.stopping, {"STOPPING": "1"}),
                               (lambda: notifier.status("busy"), {"STATUS": "busy"})):
            assert send()
            assert notify_socket.receive(1) == expected
    finally:
        notifier.close()


def test_notifier_reaches_an_abstract_socket() -> None:
    listener = NotifySocket(f"@cronhost-test-{uuid.uuid4().hex}")
    notifier = Notifier(listener.address)
    try:
        assert notifier.watchdog()
        assert listener.receive(1) == {"WATCHDOG": "1"}
    finally:
        notifier.close()
        listener.close()


def test_notifier_is_silent_outside_systemd() -> None:
    notifier = Notifier()  # the autouse fixture removed NOTIFY_SOCKET
    assert not notifier.enabled
    assert not notifier.ready("x") and not notifier.watchdog()


def test_notifier_survives_a_vanished_socket(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    try:
        assert notifier.enabled and not notifier.watchdog()
    finally:
        notifier.close()


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Notifier().watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert Notifier().watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier().watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert Notifier().watchdog_interval() is None


# -- the real daemon ---------------------------------------------------------------------


class NotifiedDaemon(DaemonProcess):
    """DaemonProcess, optionally started under PR_SET_MDWE (the same pid after execv)."""

    def __init__(self, config: Path, log_path: Path, *, mdwe: bool, **env: str) -> None:
        if not mdwe:
            super().__init__(config, log_path, **env)
            return
        self.config = config
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-c", MDWE_LAUNCHER, "-m", "scheduler.cli", "--config", str(config),
             "run", "--log-format", "json"],
            stdout=self._log, stderr=subprocess.STDOUT, env=cli_env(**env), cwd=REPO,
        )


JOBS = """
[metrics]
listen = "127.0.0.1:0"

[[jobs]]
id = "greeter"
call = "tests.sample_callables:greet"
every = "1s"
"""


def test_daemon_speaks_ready_watchdog_status_reloading_and_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    config = write_config(tmp_path, JOBS)
    daemon = NotifiedDaemon(
        config, tmp_path / "daemon.log", mdwe=kernel_has_mdwe(),
        NOTIFY_SOCKET=notify_socket.address,
        # 1 s watchdog: the daemon must ping every 0.5 s although its heartbeat is 5 s.
        WATCHDOG_USEC="1000000",
    )
    try:
        ready = notify_socket.expect(lambda m: m.get("READY") == "1", what="READY=1")
        assert ready["MAINPID"] == str(daemon.process.pid)
        # the configured job and the built-in history pruning
        assert ready["STATUS"] == "2 jobs scheduled, 0 running"

        start = time.monotonic()
        for _ in range(3):
            notify_socket.expect(lambda m: m.get("WATCHDOG") == "1", timeout=2, what="WATCHDOG=1")
        assert time.monotonic() - start < 2.5  # about every 0.5 s
        assert any("STATUS" in m and "READY" not in m for m in notify_socket.messages)
        daemon.wait_action("run.finish", job="greeter", status="ok")

        daemon.signal(signal.SIGHUP)
        notify_socket.expect(lambda m: m.get("RELOADING") == "1", what="RELOADING=1")
        notify_socket.expect(lambda m: m.get("READY") == "1", what="READY=1 after reload")
        daemon.wait_action("config.reloaded")

        # A broken edit: still RELOADING then READY (running the previous config), and logged.
        config.write_text(config.read_text() + "\n[[jobs]]\nid = \"bad\"\n", encoding="utf-8")
        daemon.signal(signal.SIGHUP)
        notify_socket.expect(lambda m: m.get("RELOADING") == "1", what="RELOADING=1 (bad edit)")
        notify_socket.expect(lambda m: m.get("READY") == "1", what="READY=1 (bad edit)")
        daemon.wait_action("config.reload_failed")

        daemon.signal(signal.SIGTERM)
        notify_socket.expect(lambda m: m.get("STOPPING") == "1", what="STOPPING=1")
        assert daemon.wait(20) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    actions = [r.get("action") for r in daemon.records()]
    assert "metrics.listening" in actions and "daemon.stop" in actions
    assert not [r for r in daemon.records() if r.get("level") == "error"
                and r.get("action") != "config.reload_failed"]


def _main_thread_switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines()
               if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))


def test_an_idle_daemon_sleeps_between_its_watchdog_pings(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Nothing due, a 1 s watchdog: the main thread wakes a few times a second, not thousands.

    Counted in context switches of the daemon's main thread (a busy loop makes tens of
    thousands in these seconds whatever the machine's load; a sleeping one a handful).
    """
    config = write_config(tmp_path, '[[jobs]]\nid = "never"\ncall = "jobs.builtin:noop"\n'
                                    'schedule = "0 0 1 1 *"\n')
    daemon = DaemonProcess(config, tmp_path / "daemon.log", NOTIFY_SOCKET=notify_socket.address,
                           WATCHDOG_USEC="1000000")
    try:
        notify_socket.expect(lambda m: m.get("READY") == "1", what="READY=1")
        before = _main_thread_switches(daemon.process.pid)
        pings = 0
        while pings < 6:  # about 3 s of idling
            notify_socket.expect(lambda m: m.get("WATCHDOG") == "1", what="WATCHDOG=1")
            pings += 1
        woke = _main_thread_switches(daemon.process.pid) - before
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    assert woke < 300, f"the idle daemon's main thread woke {woke} times for 6 watchdog pings"
