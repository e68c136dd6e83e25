"""A store written before the layout of 2026-12 keeps its jobs, and so its catch-up.

`tests/fixtures/store-v4-flat-layout.db` was written by the daemon as it stood at
commit 0838bce (triggers pickled as `scheduler.cron.*`, the job function as
`scheduler.executor:fire_slot`), with `store-v4-flat-layout.toml` beside it.
APScheduler drops a stored job whose pickle no longer loads; these tests start
today's engine on a copy of that file and check that nothing was dropped.
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from scheduler.config import load_config
from scheduler.engine import CrontabTrigger, Engine, EveryTrigger
from scheduler.engine.legacy import FIRE_SLOT, upgrade_stored_jobs
from scheduler.store import Store
from scheduler.store.rows import JobAdvance
from scheduler.store.worker import StoreThread

FIXTURES = Path(__file__).parent / "fixtures"
# What the fixture's apscheduler_jobs table holds (read once with the old code).
STORED_NEXT_RUN = {
    "daily-report": datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
    "every-ten-minutes": datetime(2026, 12, 2, 3, 10, tzinfo=UTC),
    "python-noop": datetime(2026, 12, 2, 3, 30, tzinfo=UTC),
    "cronhost-prune-history": datetime(2026, 12, 2, 4, 17, tzinfo=UTC),
}


def copy_fixture(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "store-v4-flat-layout.db", tmp_path / "legacy.db")
    shutil.copy(FIXTURES / "store-v4-flat-layout.toml", tmp_path / "config.toml")
    return tmp_path / "config.toml"


def stored_states(db: Path) -> dict[str, bytes]:
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT id, job_state FROM apscheduler_jobs"))
    conn.close()
    return rows


def test_the_fixture_really_names_the_old_paths(tmp_path: Path) -> None:
    copy_fixture(tmp_path)
    for blob in stored_states(tmp_path / "legacy.db").values():
        assert b"scheduler.cron" in blob and b"scheduler.executor:fire_slot" in blob


def test_old_stored_jobs_are_rewritten_to_the_new_import_paths(tmp_path: Path) -> None:
    copy_fixture(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'legacy.db'}")
    try:
        assert upgrade_stored_jobs(store.engine) == 4
        assert upgrade_stored_jobs(store.engine) == 0  # idempotent
    finally:
        store.dispose()
    states = {job_id: pickle.loads(blob)
              for job_id, blob in stored_states(tmp_path / "legacy.db").items()}
    assert {job_id: state["next_run_time"] for job_id, state in states.items()} == STORED_NEXT_RUN
    assert {state["func"] for state in states.values()} == {FIRE_SLOT}
    assert isinstance(states["every-ten-minutes"]["trigger"], EveryTrigger)
    daily = states["daily-report"]["trigger"]
    assert isinstance(daily, CrontabTrigger)
    assert (daily.expression, daily.timezone) == ("0 9 * * 1-5", "Europe/Paris")


def test_the_engine_keeps_every_stored_job_and_catches_up_from_its_stored_time(
    tmp_path: Path,
) -> None:
    config = load_config(copy_fixture(tmp_path), resolve_secrets=False)
    store = Store(config.store.url)
    store.migrate()
    due: dict[str, list[datetime]] = {}

    async def on_wake(advances: list[JobAdvance]) -> None:
        for advance in advances:
            due.setdefault(advance.job_id, list(advance.run_times))

    async def scenario() -> dict[str, datetime | None]:
        engine = Engine(store, on_wake, StoreThread())
        try:
            engine.start(config.jobs, set())
            kept = {job.id: job.next_run_time for job in engine.scheduler.get_jobs()}
            for _ in range(200):  # the first wake-up hands over what fell due meanwhile
                if "every-ten-minutes" in due:
                    break
                await asyncio.sleep(0.05)
            return kept
        finally:
            await engine.shutdown()

    try:
        kept = asyncio.run(scenario())
    finally:
        store.dispose()
    # Unchanged jobs keep their stored next fire time: nothing was dropped and re-added.
    assert {job_id: when.astimezone(UTC) for job_id, when in kept.items() if when} == (
        STORED_NEXT_RUN)
    # And so the slots that fell due since the fixture was written are handed over,
    # starting with the stored one (a re-added job would start from now).
    assert due["every-ten-minutes"][0] == STORED_NEXT_RUN["every-ten-minutes"]
