"""Wall-clock jumps (NTP steps, a VM resumed from suspend), simulated with freezegun.

The engine, runner and store are real; only the wall clock moves. asyncio keeps its
real monotonic clock (real_asyncio=True), as it does when a machine's clock steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from jobs.http import HttpJobRunner
from scheduler.config import load_config
from scheduler.engine import Engine
from scheduler.run import JobExecutor, SlotRunner
from scheduler.store import Store
from scheduler.store.worker import StoreThread

START = datetime(2026, 11, 29, 12, 0, 0, 500_000, tzinfo=UTC)


def make_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[store]
url = "sqlite:///{tmp_path / 'cronhost.db'}"

[[jobs]]
id = "tick"
call = "jobs.builtin:noop"
every = "1s"
misfire_grace = "5m"
""")
    return path


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def run_with_clock_jump(tmp_path: Path, jump: timedelta) -> tuple[Store, datetime]:
    config = load_config(make_config(tmp_path))
    store = Store(config.store.url)
    store.migrate()

    def slots_run() -> list[datetime]:
        return [row.scheduled_at for row in store.history(limit=10_000) if row.status == "ok"]

    with freeze_time(START, tick=True, real_asyncio=True) as clock:
        async with HttpJobRunner(user_agent="test") as http:
            thread = StoreThread()
            runner = SlotRunner(store=store, config=lambda: config,
                                executor=JobExecutor(http, lambda: config), daemon_id="d",
                                store_thread=thread)
            engine = Engine(store, runner.on_wake, thread)
            store.sync_jobs([{"job_id": "tick", "kind": "python", "schedule": "every 1s",
                              "timezone": "UTC", "target": "noop", "description": "", "enabled": True}])
            engine.start(config.jobs, set())
            await wait_until(lambda: len(slots_run()) >= 2, "two runs before the jump")
            jumped_at = datetime.now(UTC) + jump
            clock.move_to(jumped_at)
            if jump > timedelta(0):
                await wait_until(lambda: sum(slot >= jumped_at.replace(microsecond=0)
                                             for slot in slots_run()) >= 2, "runs after the jump")
            else:
                # A step back: nothing may run again; give it two seconds of chances to.
                await asyncio.sleep(2.2)
            await engine.shutdown()
            await runner.drain(5)
            await runner.writer.flush(5)
            thread.close()
    return store, jumped_at


def test_clock_jumping_forward_an_hour_runs_one_slot_not_a_burst(tmp_path: Path) -> None:
    store, jumped_at = asyncio.run(run_with_clock_jump(tmp_path, timedelta(hours=1)))
    rows = store.history(limit=10_000)
    store.dispose()
    ran = [row for row in rows if row.status == "ok"]
    missed = sum(row.slot_count for row in rows if row.status == "missed")
    slots = {row.scheduled_at for row in rows}
    assert len(slots) == len(rows)  # never two rows for a slot
    # before the jump: ~2 runs; at the jump: one coalesced catch-up run; after: ~2 runs
    assert 3 <= len(ran) <= 7
    assert missed >= 3599  # the skipped hour is visible slot by slot (past the cap, in one summary row)
    assert max(row.scheduled_at for row in ran) >= jumped_at.replace(microsecond=0)  # not stalled


def test_clock_stepping_back_never_reruns_a_slot(tmp_path: Path) -> None:
    store, _ = asyncio.run(run_with_clock_jump(tmp_path, timedelta(seconds=-30)))
    rows = store.history(limit=1000)
    store.dispose()
    slots = [row.scheduled_at for row in rows]
    assert len(slots) == len(set(slots))
    # the 30 s already lived are not re-run; the schedule waits for the clock to catch up
    assert all(row.status == "ok" for row in rows)
    assert max(slots) <= START + timedelta(seconds=3)
