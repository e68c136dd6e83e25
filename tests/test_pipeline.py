"""The path from "due" to "on the wire" to "recorded": claims, queueing, group commit, doorbell.

Real parts: the daemon as a subprocess against the loopback endpoint, or the engine,
runner and writer in process on a real SQLite file; a store "outage" is a real
exclusive lock held on that file by another connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.http import HttpJobRunner
from jobs.outcome import Outcome, RunStatus
from scheduler.config import load_config
from scheduler.engine import Engine
from scheduler.run import EventBus, JobExecutor, SlotEvent, SlotRunner
from scheduler.run.writer import RunWriter
from scheduler.store import Store
from scheduler.store.batch import FinishedRun
from scheduler.store.doorbell import socket_path
from scheduler.store.worker import StoreThread
from tests.daemon_harness import DaemonProcess, cli, cli_json, started_daemon, write_config
from tests.endpoint_server import EndpointServer, Fault


@contextmanager
def sqlite_write_locked(db: Path) -> Iterator[None]:
    """Another process's writer holds the file: every write of the daemon fails (busy)."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def stored_next_run(db: Path, job_id: str) -> float | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT next_run_time FROM apscheduler_jobs WHERE id = ?",
                           (job_id,)).fetchone()
    conn.close()
    return None if row is None else row[0]


# -- claim and advance: one transaction -------------------------------------------------------


def test_a_failed_claim_transaction_leaves_the_slot_due_and_it_runs_once_after_a_restart(
    tmp_path: Path,
) -> None:
    # A yearly schedule: no slot of its own falls due while the test runs (an hourly one
    # did when the test crossed the hour, and the slot below was then coalesced as missed).
    path = write_config(tmp_path, '[[jobs]]\nid = "yearly"\ncall = "jobs.builtin:noop"\n'
                                  'schedule = "0 0 1 1 *"\nmisfire_grace = "1h"\n',
                        store_url=f"sqlite:///{tmp_path / 'cronhost.db'}")
    config = load_config(path, resolve_secrets=False)
    db = tmp_path / "cronhost.db"
    slot = (datetime.now(UTC) - timedelta(seconds=30)).replace(microsecond=0)

    async def daemon_life(lock_during_wake: bool) -> list[str]:
        store = Store(config.store.url)
        store.migrate()
        thread = StoreThread()
        errors: list[str] = []
        async with HttpJobRunner(user_agent="test") as http:
            runner = SlotRunner(store=store, config=lambda: config, daemon_id="d",
                                executor=JobExecutor(http, lambda: config), store_thread=thread)
            original = runner.on_wake

            async def on_wake(advances: list) -> None:  # type: ignore[type-arg]
                try:
                    await original(advances)
                except Exception as exc:
                    errors.append(type(exc).__name__)
                    raise

            engine = Engine(store, on_wake, thread)
            engine.scheduler.start(paused=True)
            engine.apply(config.jobs, set())
            if lock_during_wake:
                # The job's next fire time is a slot 30 s ago: due at the first wake-up.
                engine.scheduler.modify_job("yearly", next_run_time=slot)
                with sqlite_write_locked(db):
                    engine.scheduler.resume()
                    await wait_until(lambda: bool(errors), "the claim transaction to fail")
                    await engine.shutdown()  # the daemon dies with the store still locked
            else:
                engine.scheduler.resume()
                await wait_until(lambda: any(r.status == "ok" for r in store.history("yearly")),
                                 "the slot to run")
                await engine.shutdown()
                await runner.drain(5)
                await runner.writer.flush(5)
        thread.close()
        store.dispose()
        return errors

    assert asyncio.run(daemon_life(lock_during_wake=True)) == ["OperationalError"]
    # Neither the claim nor the advance landed: no row, and the job still due at the slot.
    assert Store(config.store.url).history("yearly") == []
    assert stored_next_run(db, "yearly") == slot.timestamp()

    asyncio.run(daemon_life(lock_during_wake=False))
    rows = Store(config.store.url).history("yearly")
    assert [(row.scheduled_at, row.status) for row in rows] == [(slot, "ok")]
    assert (stored_next_run(db, "yearly") or 0) > time.time()


# -- the group-commit writer -------------------------------------------------------------------


def test_the_run_writer_keeps_outcomes_through_a_store_outage_and_writes_them_all_after(
    tmp_path: Path,
) -> None:
    db = tmp_path / "cronhost.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    run_ids = [store.claim(job_id=f"job-{n}", trigger="schedule", idempotency_key=f"k{n}",
                           scheduled_at=datetime(2026, 12, 1, tzinfo=UTC), daemon_id="d",
                           started_at=datetime(2026, 12, 1, tzinfo=UTC)) for n in range(20)]
    published: list[SlotEvent] = []

    async def scenario() -> None:
        events = EventBus()
        events.subscribe(published.append)
        thread = StoreThread()
        writer = RunWriter(store, thread, events)
        with sqlite_write_locked(db):
            for n, run_id in enumerate(run_ids):
                assert run_id is not None
                writer.finished(
                    FinishedRun(run_id, f"job-{n}", Outcome(RunStatus.OK, http_status=200),
                                datetime.now(UTC), 10),
                    SlotEvent(job_id=f"job-{n}", status="ok",
                              scheduled_at=datetime(2026, 12, 1, tzinfo=UTC), run_id=run_id),
                )
            await wait_until(lambda: writer.failing, "a write refused by the locked store")
            assert published == [] and writer.pending == 20
        assert await writer.flush(30)
        thread.close()

    asyncio.run(scenario())
    statuses = {row.job_id: row.status for row in store.history(limit=100)}
    store.dispose()
    assert statuses == {f"job-{n}": "ok" for n in range(20)}
    assert len(published) == 20  # each outcome announced once, after it was written


# -- queued is not running; the timeout counts from the send -----------------------------------


def test_a_queued_slot_is_not_running_and_its_timeout_counts_from_its_send(
    tmp_path: Path, endpoint: EndpointServer, daemons: list[DaemonProcess]
) -> None:
    endpoint.set_default("/busy", Fault.hang(8))
    endpoint.set_default("/quick", Fault.slow(1.0))
    # One place in flight. `quick` gives each attempt 2 s: if its clock started at the
    # claim, the 8 s it waits behind `busy` would time it out before it was ever sent.
    config = write_config(tmp_path, """
[daemon]
max_in_flight = 1

[[jobs]]
id = "busy"
path = "/busy"
schedule = "0 0 1 1 *"
timeout = "10s"
deadline = "10s"

[[jobs]]
id = "quick"
path = "/quick"
schedule = "0 0 1 1 *"
timeout = "2s"
deadline = "2s"
retries = 0
""", base_url=endpoint.url)
    daemon = started_daemon(config, tmp_path, daemons)
    assert cli(config, "trigger", "busy").returncode == 0
    endpoint.wait_for_requests("/busy", 1, timeout=15)
    assert cli(config, "trigger", "quick").returncode == 0
    daemon.wait_action("run.start", job="busy")

    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")

    def row(job_id: str) -> dict:  # type: ignore[type-arg]
        (found,) = cli_json(config, "history", job_id)
        return found  # type: ignore[no-any-return]

    deadline = time.monotonic() + 15
    while not store.history("quick"):
        assert time.monotonic() < deadline, "quick was never claimed"
        time.sleep(0.05)
    (waiting,) = store.history("quick")
    store.dispose()
    assert endpoint.requests("/quick") == []  # still waiting for the one place (busy: 8 s)
    assert waiting.status == "queued" and waiting.started_at is None

    daemon.wait_action("run.finish", job="quick", timeout=30)
    done = row("quick")
    assert done["status"] == "ok", done
    assert done["started_at"] is not None and done["queued_ms"] >= 1000
    # Lateness counts to the send: it includes the wait behind `busy`.
    assert done["lateness_ms"] >= done["queued_ms"]


# -- the doorbell ------------------------------------------------------------------------------


def test_a_command_reaches_an_idle_daemon_by_its_doorbell_and_without_it_at_the_next_beat(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    # A 15 s heartbeat: the idle daemon's only timed wake-ups are 15 s apart.
    config = write_config(tmp_path, '[daemon]\nheartbeat_interval = "15s"\n'
                                    '[[jobs]]\nid = "quiet"\ncall = "jobs.builtin:noop"\n'
                                    'schedule = "0 0 1 1 *"\n')
    daemon = started_daemon(config, tmp_path, daemons)
    bell = socket_path(Store(f"sqlite:///{tmp_path / 'cronhost.db'}").engine)
    assert bell is not None and bell.exists()

    assert cli(config, "pause", "quiet").returncode == 0
    # Carried out long before the next 15 s wake-up could have found the command row.
    daemon.wait_action("job.pause", job="quiet", timeout=12)

    bell.unlink()  # a ring nobody hears: the row is still the request
    assert cli(config, "resume", "quiet").returncode == 0
    daemon.wait_action("job.resume", job="quiet", timeout=40)
    assert daemon.stop() == 0
