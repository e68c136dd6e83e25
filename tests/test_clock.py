"""Wall-clock jumps (NTP steps, a VM resumed from suspend), simulated with freezegun.

The engine, runner and store are real; only the wall clock moves. asyncio keeps its
real monotonic clock (real_asyncio=True), as it does when a machine's clock steps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time

from jobs.http import HttpJobRunner
from scheduler.config import load_config
from scheduler.engine import Engine
from scheduler.run import JobExecutor, SlotRunner
from scheduler.store import Store

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


async def run_with_clock_jump(tmp_path: Path, jump: timedelta) -> tuple[Store, datetime]:
    config = load_config(make_config(tmp_path))
    store = Store(config.store.url)
    store.migrate()
    with freeze_time(START, tick=True, real_asyncio=True) as clock:
        async with HttpJobRunner(user_agent="test") as http:
            runner = SlotRunner(store=store, config=lambda: config,
                                executor=JobExecutor(http, lambda: config), daemon_id="d")
            engine = Engine(store, runner.on_due)
            store.sync_jobs([{"job_id": "tick", "kind": "python", "schedule": "every 1s",
                              "timezone": "UTC", "target": "noop", "description": "", "enabled": True}])
            engine.start(config.jobs, set())
            await asyncio.sleep(2.2)
            jumped_at = datetime.now(UTC) + jump
            clock.move_to(jumped_at)
            await asyncio.sleep(2.2)
            engine.shutdown()
            await runner.drain(5)
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
