"""Scale: the real daemon with many jobs due at once, idle, and starting with 10,000 jobs.

    python benchmarks/scale.py --mode burst --jobs 1000 --every 10s --seconds 60
    python benchmarks/scale.py --mode steady --jobs 14 --every 60s --seconds 180
    python benchmarks/scale.py --mode idle --jobs 14 --seconds 60
    python benchmarks/scale.py --mode startup --jobs 10000

(run from the repository root with PYTHONPATH set to it, e.g.
``PYTHONPATH=$PWD .venv/bin/python benchmarks/scale.py ...``).

Every mode starts ``python -m scheduler.cli --config CONFIG run --log-format json`` as a
subprocess (SQLite store in a fresh temp dir, CRON_SECRET in its environment) and a
loopback endpoint in a process of its own (benchmarks/latency_endpoint.py: asyncio,
answers ``{"success": true}`` after a random 20-80 ms, records every request's
Idempotency-Key and its own receive wall-clock stamp). All traffic goes to 127.0.0.1.
First it prints the machine (nproc, CPU model, load average, date, code revision).

burst / steady
    N HTTP jobs ``every = EVERY`` (all due in the same instant), ``misfire_grace = "5m"``.
    Measures from the daemon's ``daemon.start`` line for --seconds, then waits (never
    past the next slot) for the slots of the window to finish, samples the daemon, stops
    it with SIGTERM and reads its history. Prints per slot and in all: requests on the
    wire (counted by the endpoint, by Idempotency-Key; repeats are retries), arrival
    lateness p50/p99/max as the endpoint saw it (its receive stamp minus the slot time in
    the key ``<job>@<ISO slot>Z``, first arrival of each key), the daemon's own claim
    lateness from the history, skipped/missed/other counts from the history, slots that
    got no row at all (also those due after the window until ``daemon.stopping``: lost),
    CPU-s per 1,000 fires, peak RSS (VmHWM), and how long SIGTERM took to act.
idle
    N jobs on ``0 0 1 1 *`` (never due while measuring), the systemd watchdog on (a Unix
    datagram NOTIFY_SOCKET bound here, WATCHDOG_USEC=30000000) and the [heartbeat] ping
    pointed at the endpoint. After a settle period, measures for --seconds: CPU and
    wakeups (voluntary + nonvoluntary context switches summed over all threads in
    /proc/PID/task/*/status) per minute, per thread too, and the notify messages and
    heartbeat pings seen.
startup
    N jobs on ``0 0 1 1 *``. Times a start on an empty store until the ``daemon.start``
    line, then reloads (SIGHUP after changing one job's schedule, until
    ``config.reloaded``), stops (SIGTERM until exit), and starts again on the now
    populated store, this time also polling ``cronhost status --json`` until it reports
    the daemon up. Throughout, the store's daemon row is read every 0.25 s (up or DOWN, as
    `cronhost status` would say) and the WATCHDOG=1 pings on a NOTIFY_SOCKET bound here
    (WATCHDOG_USEC=30000000) are timed: the longest gap is printed against WatchdogSec.

CPU is utime+stime (+ reaped children) from /proc/PID/stat; "others" in the machine
figure is the machine's busy time from /proc/stat minus the daemon, the endpoint and
this process. Every wait and loop is bounded in time (--timeout for the big steps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scheduler.store import Store  # noqa: E402
from tests.daemon_harness import cli_env  # noqa: E402

ENDPOINT_SCRIPT = Path(__file__).resolve().parent / "latency_endpoint.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NEVER_DUE = "0 0 1 1 *"
DEFAULTS = {  # mode -> (jobs, every, seconds)
    "burst": (1000, "10s", 60.0),
    "steady": (14, "60s", 180.0),
    "idle": (14, None, 60.0),
    "startup": (10_000, None, 0.0),
}


# -- /proc ---------------------------------------------------------------------------


def read(path: str | Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def proc_cpu(pid: int | str, children: bool = True) -> float:
    """utime + stime (+ cutime + cstime: reaped children) of a process, in seconds."""
    fields = read(f"/proc/{pid}/stat").rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15 if children else 13]) / CLK_TCK


def own_cpu() -> float:
    """This process's CPU, without its children (the daemon it reaps would count twice)."""
    return proc_cpu("self", children=False)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_status(pid: int | str) -> dict[str, str]:
    status: dict[str, str] = {}
    for line in read(f"/proc/{pid}/status").splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return status


def kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def thread_switches(pid: int) -> dict[int, tuple[str, int, int]]:
    """tid -> (thread name, voluntary, nonvoluntary) context switches."""
    threads: dict[int, tuple[str, int, int]] = {}
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                status = proc_status(f"{pid}/task/{task}")
                threads[int(task)] = (status.get("Name", "?"),
                                      int(status.get("voluntary_ctxt_switches", 0)),
                                      int(status.get("nonvoluntary_ctxt_switches", 0)))
    return threads


@dataclass(frozen=True)
class MachineSample:
    wall: float
    busy: float  # CPU-s of all CPUs: user + nice + system + irq + softirq
    steal: float
    iowait: float
    load: str

    @classmethod
    def now(cls) -> MachineSample:
        values = [int(v) for v in read("/proc/stat").splitlines()[0].split()[1:]]
        user, nice, system, _idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
        return cls(time.time(), (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK,
                   iowait / CLK_TCK, " ".join(read("/proc/loadavg").split()[:3]))


def cpu_model() -> str:
    for line in read("/proc/cpuinfo").splitlines():
        if line.lower().startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "?"


def revision() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "scheduler", "jobs"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        branch = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--abbrev-ref", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{branch} @ {head}{' (scheduler/ or jobs/ modified)' if dirty else ''}"


def version_of(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def print_machine(sample: MachineSample) -> None:
    affinity = len(os.sched_getaffinity(0))
    total = next((line.split()[1] for line in read("/proc/meminfo").splitlines()
                  if line.startswith("MemTotal:")), "0")
    print(f"machine: nproc {affinity} ({os.cpu_count()} online), {cpu_model()}, "
          f"{int(total) // 1024} MiB RAM, Linux {platform.release()}")
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}; load average at start "
          f"{sample.load}")
    print(f"code: {revision()}; Python {platform.python_version()}, APScheduler "
          f"{version_of('apscheduler')}, httpx {version_of('httpx')}, SQLAlchemy "
          f"{version_of('sqlalchemy')}")


def print_busy(first: MachineSample, last: MachineSample, parts: dict[str, float]) -> None:
    """The machine's CPU use over [first, last], and how much of it was not ours."""
    span = max(1e-9, last.wall - first.wall)
    ncpu = len(os.sched_getaffinity(0))
    busy = last.busy - first.busy
    ours = sum(parts.values())
    others = busy - ours
    detail = ", ".join(f"{name} {value:.1f}" for name, value in parts.items())
    print(f"machine busy over {span:.0f} s: {busy:.1f} CPU-s = {100 * busy / span / ncpu:.0f}% of "
          f"{ncpu} CPUs ({detail}; others {others:.1f} CPU-s = {100 * others / span / ncpu:.0f}%); "
          f"steal {last.steal - first.steal:.1f} s, iowait {last.iowait - first.iowait:.1f} s; "
          f"load average at end {last.load}")


# -- the endpoint and the daemon -------------------------------------------------------


@dataclass(frozen=True)
class Request:
    received: float
    key: str
    method: str
    path: str


class Endpoint:
    """benchmarks/latency_endpoint.py in a subprocess."""

    def __init__(self, workdir: Path, min_ms: float, max_ms: float, seed: int | None) -> None:
        self.out = workdir / "requests.tsv"
        command = [sys.executable, str(ENDPOINT_SCRIPT), "--out", str(self.out),
                   "--min-ms", str(min_ms), "--max-ms", str(max_ms), "--max-seconds", "7200"]
        if seed is not None:
            command += ["--seed", str(seed)]
        with open(workdir / "endpoint.err", "wb") as errors:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                            text=True)
        line = ""
        ready = threading.Event()

        def first_line() -> None:
            nonlocal line
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            ready.set()

        threading.Thread(target=first_line, daemon=True).start()
        if not ready.wait(30) or not line.startswith("listening "):
            self.process.kill()
            raise SystemExit(f"the endpoint did not start: {line!r} {read(workdir / 'endpoint.err')}")
        host, port = line.split()[1:3]
        assert host == "127.0.0.1"
        self.url = f"http://127.0.0.1:{int(port)}"
        self.summary: dict[str, Any] = {}

    def cpu(self) -> float:
        try:
            return proc_cpu(self.process.pid)
        except FileNotFoundError:
            return 0.0

    def stop(self) -> list[Request]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise SystemExit("the endpoint did not stop within 60 s") from None
        lines = self.out.read_text(encoding="utf-8").splitlines()
        self.summary = json.loads(lines[0])
        requests = []
        for line in lines[1:]:
            received, key, method, path = line.split("\t")
            requests.append(Request(float(received), key, method, path))
        return requests


@dataclass
class Sample:
    cpu: float
    hwm_kib: int
    rss_kib: int
    threads: int


class Daemon:
    """`cronhost run` in a subprocess; its JSON log is tailed, /proc read, rusage kept."""

    def __init__(self, config: Path, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._offset = log_path.stat().st_size
        self._partial = b""
        self.records: list[dict[str, Any]] = []
        self.spawned = time.time()
        self.spawned_mono = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scheduler.cli", "--config", str(config), "run",
             "--log-format", "json"],
            stdout=self._log, stderr=subprocess.STDOUT, env=cli_env(**env), cwd=REPO,
        )
        self.pid = self.process.pid
        self.peak_hwm_kib = 0
        self.last: Sample | None = None
        self.returncode: int | None = None
        self.rusage: Any = None

    def poll_log(self) -> list[dict[str, Any]]:
        """New complete log lines, parsed; each gets ``_seen`` (time.time() when read)."""
        with open(self.log_path, "rb") as file:
            file.seek(self._offset)
            data = file.read(64 * 1024 * 1024)
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        seen = time.time()
        new = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"action": "raw", "msg": line.decode(errors="replace")}
            if not isinstance(record, dict):
                record = {"action": "raw", "msg": str(record)}
            record["_seen"] = seen
            new.append(record)
        self.records.extend(new)
        return new

    def sample(self) -> Sample | None:
        try:
            status = proc_status(self.pid)
            sample = Sample(proc_cpu(self.pid), kib(status.get("VmHWM")), kib(status.get("VmRSS")),
                            int(status.get("Threads", 0)))
        except (FileNotFoundError, ProcessLookupError):
            return self.last
        if status.get("State", "").startswith("Z"):
            return self.last  # exited, not reaped: its figures are no longer its own
        self.peak_hwm_kib = max(self.peak_hwm_kib, sample.hwm_kib)
        self.last = sample
        return sample

    def alive(self) -> bool:
        if self.returncode is not None:
            return False
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, rusage)
        return False

    def _reaped(self, status: int, rusage: Any) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self.process.returncode = self.returncode  # keep Popen from waiting again
        self.rusage = rusage
        self._log.close()
        self.poll_log()

    def wait_action(self, action: str, timeout: float, since: int = 0,
                    also: Callable[[], object] | None = None,
                    actions: tuple[str, ...] = ()) -> dict[str, Any]:
        """The first record with ``action`` (or one of ``actions``) at index >= since."""
        wanted = (action, *actions)
        deadline = time.monotonic() + timeout
        while True:
            self.poll_log()
            for record in self.records[since:]:
                if record.get("action") in wanted:
                    return record
            if not self.alive():
                raise SystemExit(f"the daemon exited ({self.returncode}) before {action}:\n"
                                 + self.tail())
            if time.monotonic() > deadline:
                raise SystemExit(f"no {action} within {timeout:g} s:\n" + self.tail())
            if also is not None:
                also()
            time.sleep(0.02)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(read(self.log_path).splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float) -> float:
        """SIGTERM, wait for the exit (SIGKILL after ``timeout``); seconds it took."""
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        deadline = started + timeout
        while self.alive():
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                _, status, rusage = os.wait4(self.pid, 0)
                self._reaped(status, rusage)
                print(f"!! the daemon did not stop within {timeout:g} s of SIGTERM; killed")
                break
            self.sample()
            time.sleep(0.05)
        return time.monotonic() - started

    def lifetime_cpu(self) -> float:
        if self.rusage is None:
            return self.last.cpu if self.last else 0.0
        return float(self.rusage.ru_utime + self.rusage.ru_stime)


def stamp(record: dict[str, Any]) -> float:
    """The wall-clock time in a log record's ``ts`` (ms precision)."""
    return datetime.fromisoformat(record["ts"]).timestamp()


def config_text(endpoint_url: str, jobs: str, *, max_in_flight: int | None, extra: str = "") -> str:
    daemon = f"[daemon]\nmax_in_flight = {max_in_flight}\n" if max_in_flight else ""
    return f"""{daemon}{extra}
[defaults]
base_url = "{endpoint_url}"
secret = "CRON_SECRET"
misfire_grace = "5m"
""" + jobs


def job_table(count: int, schedule: Callable[[int], str]) -> str:
    return "".join(
        f'\n[[jobs]]\nid = "job-{i:05d}"\npath = "/api/cron/job-{i:05d}"\n{schedule(i)}\n'
        for i in range(count)
    )


def parse_every(text: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole seconds, minutes or hours: 10s, 1m")
    seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
    if seconds < 1:
        raise argparse.ArgumentTypeError("at least 1s")
    return seconds


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"p50 {statistics.median(values):.0f}  p99 {pct(values, 0.99):.0f}  "
            f"max {max(values):.0f}")


def slot_of(key: str) -> tuple[str, datetime] | None:
    """``job@2026-11-29T03:00:00Z`` -> (job, slot); None for manual or foreign keys."""
    job, _, text = key.rpartition("@")
    if not job or not text.endswith("Z") or ":" not in text or text.startswith("manual"):
        return None
    try:
        return job, datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def settle_workdir(args: argparse.Namespace) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=f"cronhost-scale-{args.mode}-"))
    print(f"workdir: {workdir}")
    return workdir


# -- burst / steady ----------------------------------------------------------------------


def run_burst(args: argparse.Namespace) -> int:
    every = args.every
    workdir = settle_workdir(args)
    endpoint = Endpoint(workdir, args.min_ms, args.max_ms, args.seed)
    config = workdir / "config.toml"
    config.write_text(config_text(
        endpoint.url, job_table(args.jobs, lambda _i: f'every = "{every}s"'),
        max_in_flight=args.max_in_flight), encoding="utf-8")
    print(f"mode {args.mode}: {args.jobs} HTTP jobs every {every}s for {args.seconds:g} s; "
          f"max_in_flight {args.max_in_flight or '100 (daemon default)'}; endpoint delay "
          f"{args.min_ms:g}-{args.max_ms:g} ms; misfire_grace 5m; timeout/deadline/retries "
          f"at the defaults (30s/2m/2)", flush=True)
    daemon = Daemon(config, workdir / "daemon.log")
    try:
        started = daemon.wait_action("daemon.start", args.timeout, also=daemon.sample)
        window_start = time.time()
        cpu0 = daemon.sample()
        endpoint_cpu0 = endpoint.cpu()
        self0 = own_cpu()
        machine0 = MachineSample.now()
        print(f"start: daemon.start {stamp(started) - daemon.spawned:.2f} s after spawn "
              f"({started.get('jobs')}); daemon CPU by then {cpu0.cpu if cpu0 else 0:.2f} s",
              flush=True)
        window_end = window_start + args.seconds
        first_slot = (int(window_start) // every + 1) * every
        slots = [datetime.fromtimestamp(t, UTC) for t in range(first_slot, int(window_end) + 1, every)]
        next_slot = (int(window_end) // every + 1) * every
        while time.time() < window_end:
            time.sleep(min(0.5, max(0.0, window_end - time.time())))
            daemon.sample()
            daemon.poll_log()
            if not daemon.alive():
                raise SystemExit("the daemon died:\n" + daemon.tail())
        # Let the window's slots finish, but stop sampling before the next slot fires.
        expected = len(slots) * args.jobs
        cutoff = next_slot - 0.5

        slot_texts = {slot.isoformat() for slot in slots}

        def all_accounted() -> bool:
            daemon.poll_log()
            ours = [r for r in daemon.records if (r.get("slot") or r.get("first_slot")) in slot_texts]
            actions = Counter(r.get("action") for r in ours)
            missed = sum(int(r.get("count", 1)) for r in ours if r.get("action") == "run.missed")
            accounted = actions["run.finish"] + actions["run.skipped"] + missed
            return accounted >= expected and actions["run.start"] == actions["run.finish"]

        finished_by_cutoff = all_accounted()
        while not finished_by_cutoff and time.time() < cutoff:
            daemon.sample()
            time.sleep(min(0.2, max(0.0, cutoff - time.time())))
            finished_by_cutoff = all_accounted()
        measured_until = time.time()
        cpu1 = daemon.sample()
        endpoint_cpu1 = endpoint.cpu()
        self1 = own_cpu()
        machine1 = MachineSample.now()
        sigterm_at = time.time()
        stop_s = daemon.stop(args.shutdown_wait)
    finally:
        if daemon.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                daemon.stop(args.shutdown_wait)
        requests = endpoint.stop()
    store = Store(f"sqlite:///{workdir / 'cronhost.db'}")
    rows = store.history(limit=10_000_000)
    store.dispose()

    wanted = set(slots)
    by_slot_rows: dict[datetime, list[Any]] = defaultdict(list)
    for row in rows:
        slot = row.scheduled_at.astimezone(UTC)
        by_slot_rows[slot].append(row)
    first_arrival: dict[str, float] = {}
    by_slot_requests: Counter[datetime] = Counter()
    foreign = 0
    for request in requests:
        parsed = slot_of(request.key)
        if parsed is None:
            foreign += 1
            continue
        by_slot_requests[parsed[1]] += 1
        first_arrival.setdefault(request.key, request.received)
    lateness_by_slot: dict[datetime, list[float]] = defaultdict(list)
    for key, received in first_arrival.items():
        parsed = slot_of(key)
        assert parsed is not None
        lateness_by_slot[parsed[1]].append(1000 * (received - parsed[1].timestamp()))

    print(f"slots in the window: {len(slots)} instants x {args.jobs} jobs = {expected} slots "
          f"({slots[0].strftime('%H:%M:%S') if slots else '-'} .. "
          f"{slots[-1].strftime('%H:%M:%S') if slots else '-'}); "
          f"{'all finished' if finished_by_cutoff else 'NOT all finished'} "
          f"{measured_until - window_end:.1f} s after the window")
    print("slot      requests  keys  repeats  arrival lateness ms (endpoint, first per key)"
          "     claim lateness ms (history)    done s  history rows")
    all_late: list[float] = []
    all_claim: list[float] = []
    totals: Counter[str] = Counter()
    requests_in_window = keys_in_window = 0
    for slot in slots:
        late = lateness_by_slot.get(slot, [])
        all_late += late
        slot_rows = by_slot_rows.get(slot, [])
        statuses: Counter[str] = Counter()
        for row in slot_rows:
            statuses[row.status] += row.slot_count if row.status == "missed" else 1
        totals.update(statuses)
        claim = [float(row.lateness_ms) for row in slot_rows
                 if row.lateness_ms is not None and row.status not in ("missed", "skipped")]
        all_claim += claim
        no_row = args.jobs - sum(statuses.values())
        totals["no row"] += no_row
        requests_in_window += by_slot_requests[slot]
        keys_in_window += len(late)
        status_text = " ".join(f"{name} {count}" for name, count in sorted(statuses.items()))
        finished = [row.finished_at.astimezone(UTC) for row in slot_rows if row.finished_at]
        done = f"{(max(finished) - slot).total_seconds():6.1f}" if finished else "     -"
        print(f"{slot.strftime('%H:%M:%S')}  {by_slot_requests[slot]:8d}  {len(late):4d}  "
              f"{by_slot_requests[slot] - len(late):7d}  {spread(late):<44} {spread(claim):<30} "
              f"{done}  {status_text}{f' no-row {no_row}' if no_row else ''}")
    outside_rows = Counter((row.scheduled_at.astimezone(UTC), row.status) for row in rows
                           if row.scheduled_at.astimezone(UTC) not in wanted)
    outside = f"{sum(outside_rows.values())}" + (" (" + ", ".join(
        f"slot {slot.strftime('%H:%M:%S')} {status} {n}"
        for (slot, status), n in sorted(outside_rows.items())) + ")" if outside_rows else "")
    print(f"all slots: requests on the wire {requests_in_window} for {keys_in_window} keys "
          f"({requests_in_window / max(1, keys_in_window):.3f} per slot fired, "
          f"{requests_in_window / max(1, expected):.3f} per slot due); requests without a "
          f"cronhost slot key {foreign}; history rows outside the window {outside}")
    print(f"arrival lateness ms (endpoint): {spread(all_late)}")
    print(f"claim lateness ms (history lateness_ms): {spread(all_claim)}")
    print("history for the window: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    print(f"skipped {totals['skipped']}, missed {totals['missed']} (from the history)")
    # Fires on the wire by the time the CPU was sampled, whatever their slot.
    fires = sum(1 for received in first_arrival.values() if window_start <= received <= measured_until)
    window_cpu = (cpu1.cpu - cpu0.cpu) if cpu0 and cpu1 else float("nan")
    span = measured_until - window_start
    after_start = daemon.lifetime_cpu() - (cpu0.cpu if cpu0 else 0.0)
    print(f"daemon CPU: {window_cpu:.2f} s over {span:.1f} s from daemon.start "
          f"({100 * window_cpu / span:.0f}% of one CPU) = {1000 * window_cpu / max(1, fires):.2f} "
          f"CPU-s per 1,000 fires ({fires} fires on the wire by then); from daemon.start to exit "
          f"(drain included) {after_start:.2f} s = {1000 * after_start / max(1, len(first_arrival)):.2f} "
          f"per 1,000 ({len(first_arrival)} fires); lifetime {daemon.lifetime_cpu():.2f} s")
    rusage_peak = daemon.rusage.ru_maxrss // 1024 if daemon.rusage is not None else 0
    print(f"peak RSS (VmHWM): {daemon.peak_hwm_kib // 1024} MiB in the window; {rusage_peak} MiB "
          f"over its life (ru_maxrss); threads {cpu1.threads if cpu1 else '?'}")
    summary = endpoint.summary
    print(f"endpoint: {summary.get('requests')} requests on {summary.get('connections')} TCP "
          f"connections (at most {summary.get('max_open_connections')} open, "
          f"{summary.get('max_in_flight')} requests in flight at once); endpoint CPU "
          f"{endpoint_cpu1 - endpoint_cpu0:.1f} s in the window")
    errors = Counter(r.get("action") for r in daemon.records if r.get("level") in ("warning", "error", "critical"))
    if errors:
        print("daemon warnings/errors: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
    stopping = next((r for r in daemon.records if r.get("action") == "daemon.stopping"), None)
    stopping_at = stamp(stopping) if stopping else time.time()
    # Every grid slot due before the daemon began to stop must have a row (run, skipped,
    # missed): one without is lost (APScheduler has moved past it, so no restart runs it).
    late_grid = [datetime.fromtimestamp(t, UTC)
                 for t in range(next_slot, int(stopping_at) + 1, every)]
    lost = {slot: args.jobs - sum(row.slot_count if row.status == "missed" else 1
                                  for row in by_slot_rows.get(slot, []))
            for slot in slots + late_grid}
    lost = {slot: n for slot, n in lost.items() if n > 0}
    unknown = sum(1 for r in daemon.records if r.get("action") == "run.unknown_job")
    print("slots due after the window but before daemon.stopping: "
          + (", ".join(f"{slot.strftime('%H:%M:%S')}" for slot in late_grid) or "none")
          + "; slots due before daemon.stopping without any history row (lost): "
          + (", ".join(f"{n} of {slot.strftime('%H:%M:%S')}" for slot, n in sorted(lost.items()))
             or "none")
          + f"; run.unknown_job log lines {unknown}")
    after_sigterm = Counter(parsed[1] for key, received in first_arrival.items()
                            if received > sigterm_at and (parsed := slot_of(key)))
    print(f"shutdown: SIGTERM at {datetime.fromtimestamp(sigterm_at, UTC).strftime('%H:%M:%S.%f')[:-3]}, "
          f"daemon.stopping logged {stopping_at - sigterm_at:.2f} s later, "
          f"{stop_s:.2f} s to exit, exit status {daemon.returncode}; requests that reached the "
          f"endpoint after SIGTERM: "
          + (", ".join(f"{n} of slot {s.strftime('%H:%M:%S')}" for s, n in sorted(after_sigterm.items()))
             or "none"))
    print_busy(machine0, machine1, {"daemon": window_cpu, "endpoint": endpoint_cpu1 - endpoint_cpu0,
                          "benchmark": self1 - self0})
    return 0


# -- idle -------------------------------------------------------------------------------


class NotifySocket:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET; keeps what arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.socket.settimeout(0.5)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + 7200
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data = self.socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.time(), data.decode(errors="replace")))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


def run_idle(args: argparse.Namespace) -> int:
    workdir = settle_workdir(args)
    endpoint = Endpoint(workdir, args.min_ms, args.max_ms, args.seed)
    notify = NotifySocket(workdir / "notify.sock")
    config = workdir / "config.toml"
    heartbeat = f'[heartbeat]\nurl = "{endpoint.url}/heartbeat"\ninterval = "{args.heartbeat_interval}"\n'
    config.write_text(config_text(
        endpoint.url, job_table(args.jobs, lambda _i: f'schedule = "{NEVER_DUE}"'),
        max_in_flight=args.max_in_flight, extra=heartbeat), encoding="utf-8")
    print(f"mode idle: {args.jobs} HTTP jobs on '{NEVER_DUE}' (none due), measured for "
          f"{args.seconds:g} s after a {args.settle:g} s settle; watchdog WATCHDOG_USEC=30000000 "
          f"(pings every 15 s) to a NOTIFY_SOCKET; [heartbeat] ping every {args.heartbeat_interval} "
          f"to the endpoint; [daemon] heartbeat_interval 15s (default)", flush=True)
    daemon = Daemon(config, workdir / "daemon.log", NOTIFY_SOCKET=str(notify.path),
                    WATCHDOG_USEC="30000000")
    try:
        started = daemon.wait_action("daemon.start", args.timeout, also=daemon.sample)
        print(f"start: daemon.start {stamp(started) - daemon.spawned:.2f} s after spawn", flush=True)
        settle_until = time.monotonic() + args.settle
        while time.monotonic() < settle_until:
            time.sleep(0.2)
        machine0 = MachineSample.now()
        t0 = time.time()
        cpu0 = daemon.sample()
        threads0 = thread_switches(daemon.pid)
        endpoint_cpu0 = endpoint.cpu()
        self0 = own_cpu()
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            if not daemon.alive():
                raise SystemExit("the daemon died:\n" + daemon.tail())
        threads1 = thread_switches(daemon.pid)
        cpu1 = daemon.sample()
        t1 = time.time()
        endpoint_cpu1 = endpoint.cpu()
        self1 = own_cpu()
        machine1 = MachineSample.now()
        stop_s = daemon.stop(args.shutdown_wait)
    finally:
        if daemon.returncode is None:
            daemon.stop(args.shutdown_wait)
        requests = endpoint.stop()
        notify.close()
    minutes = (t1 - t0) / 60
    cpu = cpu1.cpu - cpu0.cpu if cpu0 and cpu1 else float("nan")
    per_thread = []
    total_vol = total_invol = 0
    for tid, (name, vol, invol) in threads1.items():
        before = threads0.get(tid, (name, 0, 0))
        dv, di = vol - before[1], invol - before[2]
        total_vol += dv
        total_invol += di
        per_thread.append((dv + di, tid, name, dv, di, tid in threads0))
    gone = len(set(threads0) - set(threads1))
    print(f"idle over {t1 - t0:.1f} s: daemon CPU {cpu:.3f} s = {cpu / minutes:.3f} CPU-s per minute "
          f"({100 * cpu / (t1 - t0):.2f}% of one CPU)")
    print(f"wakeups: {(total_vol + total_invol) / minutes:.0f} per minute "
          f"({total_vol / minutes:.0f} voluntary + {total_invol / minutes:.0f} nonvoluntary "
          f"context switches per minute, summed over {len(threads1)} threads; {gone} threads "
          f"ended during the window, their switches not counted)")
    for total, tid, name, dv, di, old in sorted(per_thread, reverse=True):
        name = f"{name} (main)" if tid == daemon.pid else name
        print(f"  thread {tid:>7} {name:<16} {total / minutes:8.1f}/min  (vol {dv}, invol {di})"
              f"{'' if old else '  [started in the window]'}")
    in_window = [(t, m) for t, m in notify.messages if t0 <= t <= t1]
    kinds = Counter(m.split("\n")[0].split("=")[0] for _, m in in_window)
    print(f"notify messages in the window: {len(in_window)} ("
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + f"); in all {len(notify.messages)}")
    pings = [r for r in requests if r.path == "/heartbeat"]
    pings_in = [r for r in pings if t0 <= r.received <= t1]
    print(f"heartbeat pings at the endpoint: {len(pings_in)} in the window, {len(pings)} in all; "
          f"other requests {len(requests) - len(pings)}")
    print(f"peak RSS (VmHWM) {daemon.peak_hwm_kib // 1024} MiB; threads {cpu1.threads if cpu1 else '?'}")
    errors = Counter(r.get("action") for r in daemon.records if r.get("level") in ("warning", "error", "critical"))
    if errors:
        print("daemon warnings/errors: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
    print(f"shutdown: {stop_s:.2f} s from SIGTERM to exit, exit status {daemon.returncode}")
    print_busy(machine0, machine1, {"daemon": cpu, "endpoint": endpoint_cpu1 - endpoint_cpu0,
                                    "benchmark": self1 - self0})
    return 0


# -- startup ----------------------------------------------------------------------------


@dataclass
class StatusPoller:
    """Runs `cronhost status --json` back to back until it reports ``pid`` up."""

    config: Path
    timeout: float
    calls: list[tuple[float, float, bool | None, str]] = field(default_factory=list)
    up_at: float | None = None
    pid: int | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, pid: int) -> None:
        self.pid = pid
        self._thread = threading.Thread(target=self._run, name="status-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.calls) < 10_000:
            began = time.time()
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "scheduler.cli", "--config", str(self.config),
                     "status", "--json"],
                    capture_output=True, text=True, env=cli_env(), cwd=REPO,
                    timeout=max(1.0, deadline - time.monotonic()),
                )
            except subprocess.TimeoutExpired:
                self.calls.append((began, time.time(), None, "timed out"))
                return
            ended = time.time()
            up: bool | None = None
            note = ""
            if result.returncode == 0:
                daemon = json.loads(result.stdout).get("daemon")
                up = bool(daemon and daemon.get("up") and daemon.get("pid") == self.pid)
                note = "no daemon row" if not daemon else f"up={daemon.get('up')} pid={daemon.get('pid')}"
            else:
                note = f"exit {result.returncode}: {result.stderr.strip()[:200]}"
            self.calls.append((began, ended, up, note))
            if up:
                self.up_at = ended
                return
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout)


class StoreProbe:
    """Reads the store's daemon row every 0.25 s: when would `cronhost status` say up?"""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.samples: list[tuple[float, bool | None, int | None]] = []  # (time, up, pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        store: Store | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if store is None:
                    candidate = Store(self.url)
                    if candidate.missing():  # a reader must not create the store
                        candidate.dispose()
                    else:
                        store = candidate
                info = store.latest_daemon() if store is not None else None
                self.samples.append((time.time(), info.is_up() if info else None,
                                     info.pid if info else None))
            except Exception as exc:  # noqa: BLE001 - an empty or migrating store: keep looking
                self.samples.append((time.time(), None, None))
                del exc
            self._stop.wait(0.25)
        if store is not None:
            store.dispose()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def report(self, pid: int, since: float, until: float) -> str:
        """Runs of up/DOWN for ``pid`` between ``since`` and ``until``, in seconds after ``since``."""
        runs: list[list[Any]] = []
        for when, up, row_pid in self.samples:
            if not since <= when <= until:
                continue
            state = "no row for it" if row_pid != pid else ("up" if up else "DOWN")
            if runs and runs[-1][0] == state:
                runs[-1][2] = when
            else:
                runs.append([state, when, when])
        return "; ".join(f"{state} {a - since:.1f}-{b - since:.1f} s" for state, a, b in runs) or "-"


def watchdog_report(notify: NotifySocket, since: float, until: float, usec: int) -> str:
    """The WATCHDOG=1 pings between READY=1 (after ``since``) and ``until``: the longest gap."""
    messages = [(t, m) for t, m in notify.messages if since <= t <= until]
    ready = next((t for t, m in messages if "READY=1" in m.split("\n")), None)
    if ready is None:
        return "no READY=1"
    pings = [ready] + [t for t, m in messages if t >= ready and "WATCHDOG=1" in m.split("\n")]
    pings.append(until)
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    worst = max(gaps)
    at = pings[gaps.index(worst)]
    verdict = "EXCEEDS" if worst > usec / 1e6 else "within"
    return (f"{len(pings) - 2} WATCHDOG=1 after READY=1; longest gap {worst:.1f} s "
            f"(from {at - since:.1f} s after spawn), {verdict} WatchdogSec {usec / 1e6:g} s")


def run_startup(args: argparse.Namespace) -> int:
    workdir = settle_workdir(args)
    endpoint = Endpoint(workdir, args.min_ms, args.max_ms, args.seed)
    config = workdir / "config.toml"
    original = config_text(endpoint.url, job_table(args.jobs, lambda _i: f'schedule = "{NEVER_DUE}"'),
                           max_in_flight=args.max_in_flight)
    config.write_text(original, encoding="utf-8")
    notify = NotifySocket(workdir / "notify.sock")
    usec = 30_000_000
    notify_env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(usec)}
    probe = StoreProbe(f"sqlite:///{workdir / 'cronhost.db'}", 4 * args.timeout)
    print(f"mode startup: {args.jobs} HTTP jobs on '{NEVER_DUE}' (none due); config "
          f"{config.stat().st_size // 1024} KiB; {args.reloads} reload(s) of one changed job; "
          f"NOTIFY_SOCKET bound here, WATCHDOG_USEC={usec}; the store's daemon row read every "
          f"0.25 s (what `cronhost status` calls up)", flush=True)
    machine0 = MachineSample.now()
    self0 = own_cpu()
    children0 = children_cpu()
    endpoint_cpu0 = endpoint.cpu()
    daemon_cpu = 0.0

    # 1. A start on an empty store: until the daemon.start line.
    daemon = Daemon(config, workdir / "daemon.log", **notify_env)
    try:
        started = daemon.wait_action("daemon.start", args.timeout, also=daemon.sample)
        at_start = daemon.sample()
        print(f"start (empty store): daemon.start {stamp(started) - daemon.spawned:.2f} s after "
              f"spawn (seen {started['_seen'] - daemon.spawned:.2f} s); jobs: {started.get('jobs')}; "
              f"daemon CPU {at_start.cpu if at_start else 0:.2f} s; VmHWM "
              f"{(at_start.hwm_kib if at_start else 0) // 1024} MiB", flush=True)

        # 2. Reloads: one job's schedule changed each time, SIGHUP, until config.reloaded.
        current = original
        for n in range(args.reloads):
            target = 'id = "job-00000"\npath = "/api/cron/job-00000"\n'
            old_line = f'{target}schedule = "{NEVER_DUE}"' if n % 2 == 0 else f'{target}schedule = "0 0 2 1 *"'
            new_line = f'{target}schedule = "0 0 2 1 *"' if n % 2 == 0 else f'{target}schedule = "{NEVER_DUE}"'
            assert old_line in current
            current = current.replace(old_line, new_line, 1)
            config.write_text(current, encoding="utf-8")
            before = daemon.sample()
            daemon.poll_log()
            since = len(daemon.records)
            sent = time.time()
            daemon.signal(signal.SIGHUP)
            record = daemon.wait_action("config.reloaded", args.timeout, since=since,
                                        also=daemon.sample,
                                        actions=("config.reload_failed", "config.reload_retry"))
            after = daemon.sample()
            print(f"reload {n + 1}: {record['action']} {stamp(record) - sent:.2f} s after SIGHUP "
                  f"(seen {record['_seen'] - sent:.2f} s); changes: {record.get('changes')}; "
                  f"daemon CPU {after.cpu - before.cpu if after and before else float('nan'):.2f} s",
                  flush=True)
        last = daemon.sample()
        sigterm_at = time.time()
        stop_s = daemon.stop(args.shutdown_wait)
        print(f"  store's daemon row (status up?): "
              f"{probe.report(daemon.pid, daemon.spawned, sigterm_at)}")
        print(f"  watchdog: {watchdog_report(notify, daemon.spawned, sigterm_at, usec)}")
        daemon_cpu += daemon.lifetime_cpu()
        rusage_peak = daemon.rusage.ru_maxrss // 1024 if daemon.rusage is not None else 0
        print(f"stop: {stop_s:.2f} s from SIGTERM to exit (status {daemon.returncode}); lifetime "
              f"CPU {daemon.lifetime_cpu():.2f} s; peak RSS VmHWM {daemon.peak_hwm_kib // 1024} MiB "
              f"(ru_maxrss {rusage_peak} MiB); threads {last.threads if last else '?'}", flush=True)

        # 3. A restart on the store that now has the jobs, with `cronhost status` polled.
        poller = StatusPoller(config, args.timeout)
        daemon = Daemon(config, workdir / "daemon.log", **notify_env)
        poller.start(daemon.pid)
        started = daemon.wait_action("daemon.start", args.timeout, also=daemon.sample)
        at_start = daemon.sample()
        print(f"restart (store has the jobs): daemon.start {stamp(started) - daemon.spawned:.2f} s "
              f"after spawn (seen {started['_seen'] - daemon.spawned:.2f} s); jobs: "
              f"{started.get('jobs')}; daemon CPU {at_start.cpu if at_start else 0:.2f} s", flush=True)
        poller_deadline = time.monotonic() + args.timeout
        while poller.up_at is None and time.monotonic() < poller_deadline and \
                (poller._thread is not None and poller._thread.is_alive()):
            time.sleep(0.1)
            daemon.sample()
        poller.stop()
        if poller.up_at is not None:
            first_up = next(c for c in poller.calls if c[2])
            print(f"restart: `cronhost status --json` first reported it up {poller.up_at - daemon.spawned:.2f} s "
                  f"after spawn (that call started at {first_up[0] - daemon.spawned:.2f} s and took "
                  f"{first_up[1] - first_up[0]:.2f} s; {len(poller.calls)} calls)")
        else:
            print(f"restart: `cronhost status --json` never reported it up ({len(poller.calls)} calls)")
        for began, ended, up, note in poller.calls[:40]:
            print(f"  status call {began - daemon.spawned:7.2f}..{ended - daemon.spawned:7.2f} s "
                  f"({ended - began:5.2f} s): {'UP' if up else 'not up'} {note}")
        settle_until = time.monotonic() + args.settle
        while time.monotonic() < settle_until:
            time.sleep(0.2)
        last = daemon.sample()
        sigterm_at = time.time()
        stop_s = daemon.stop(args.shutdown_wait)
        print(f"  store's daemon row (status up?): "
              f"{probe.report(daemon.pid, daemon.spawned, sigterm_at)}")
        print(f"  watchdog: {watchdog_report(notify, daemon.spawned, sigterm_at, usec)}")
        daemon_cpu += daemon.lifetime_cpu()
        print(f"stop: {stop_s:.2f} s from SIGTERM to exit (status {daemon.returncode}); lifetime "
              f"CPU {daemon.lifetime_cpu():.2f} s; peak RSS VmHWM {daemon.peak_hwm_kib // 1024} MiB; "
              f"threads {last.threads if last else '?'}")
        self1 = own_cpu()
        # The status calls and both daemons are the children reaped so far.
        status_cpu = children_cpu() - children0 - daemon_cpu
        endpoint_cpu1 = endpoint.cpu()
        machine1 = MachineSample.now()
    finally:
        if daemon.returncode is None:
            daemon.stop(args.shutdown_wait)
        requests = endpoint.stop()
        probe.stop()
        notify.close()
    print(f"requests at the endpoint (none expected): {len(requests)}")
    print_busy(machine0, machine1, {"daemon": daemon_cpu, "endpoint": endpoint_cpu1 - endpoint_cpu0,
                                    "status calls": status_cpu, "benchmark": self1 - self0})
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(DEFAULTS), required=True)
    parser.add_argument("--jobs", type=int, default=None, help="default: 1000 burst, 14 steady/idle, 10000 startup")
    parser.add_argument("--every", type=parse_every, default=None, help="burst/steady: 10s, 60s")
    parser.add_argument("--seconds", type=float, default=None, help="how long to measure")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="[daemon] max_in_flight (default: not set, the daemon's 32)")
    parser.add_argument("--min-ms", type=float, default=20.0, help="endpoint delay, lowest")
    parser.add_argument("--max-ms", type=float, default=80.0, help="endpoint delay, highest")
    parser.add_argument("--seed", type=int, default=None, help="endpoint delays' random seed")
    parser.add_argument("--settle", type=float, default=5.0, help="idle: seconds after start-up before measuring")
    parser.add_argument("--heartbeat-interval", default="1m", help="idle: [heartbeat] interval")
    parser.add_argument("--reloads", type=int, default=2, help="startup: SIGHUP reloads to time")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="bound on any one wait (start-up, reload, status)")
    parser.add_argument("--shutdown-wait", type=float, default=90.0,
                        help="SIGKILL the daemon if it has not exited this long after SIGTERM")
    args = parser.parse_args()
    jobs, every, seconds = DEFAULTS[args.mode]
    args.jobs = args.jobs if args.jobs is not None else jobs
    args.every = args.every if args.every is not None else (parse_every(every) if every else None)
    args.seconds = args.seconds if args.seconds is not None else seconds
    if not 1 <= args.jobs <= 100_000:
        parser.error("--jobs must be from 1 to 100000")
    if not 0 <= args.seconds <= 24 * 3600:
        parser.error("--seconds must be from 0 to 86400")
    if args.mode in ("burst", "steady") and args.seconds < args.every:
        parser.error("--seconds must cover at least one --every")
    if not 0 <= args.reloads <= 20:
        parser.error("--reloads must be from 0 to 20")
    print_machine(MachineSample.now())
    return {"burst": run_burst, "steady": run_burst, "idle": run_idle, "startup": run_startup}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
