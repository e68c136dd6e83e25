"""The daemon's main loop keeps going when the store is slow: no work piles up behind it.

In-process (the real daemon object on a real SQLite file), because what is checked is
what the loop hands the store thread while that thread is stuck, which a subprocess
would only show as memory growing.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from scheduler.config import load_config
from scheduler.daemon import Daemon, build_daemon
from scheduler.store import Store
from scheduler.store.schema import commands
from tests.test_pipeline import wait_until

YEARLY = """
[store]
url = "sqlite:///{db}"

[[jobs]]
id = "yearly"
call = "jobs.builtin:noop"
schedule = "0 0 1 1 *"
"""


def _daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    monkeypatch.setenv("CRON_SECRET", "not-used-by-python-jobs")
    path = tmp_path / "config.toml"
    path.write_text(YEARLY.format(db=tmp_path / "cronhost.db"), encoding="utf-8")
    return build_daemon(load_config(path))


def test_wake_ups_while_the_store_thread_is_stuck_queue_one_look_not_one_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path, monkeypatch)
    looks = 0
    real = daemon._housekeeping

    def counted(*args: Any, **kwargs: Any) -> None:
        nonlocal looks
        looks += 1
        real(*args, **kwargs)

    daemon._housekeeping = counted  # type: ignore[method-assign]

    async def main() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            await wait_until(lambda: daemon.leading, "the daemon leading")
            await wait_until(lambda: looks >= 1, "a first look at the store")
            stuck = threading.Event()
            daemon.store_thread.submit(stuck.wait, 60)  # a store that does not answer
            before = looks
            for _ in range(300):  # doorbell rings, a reload finishing...: wake-ups
                daemon.nudged.set()
                await asyncio.sleep(0.002)
            stuck.set()
            await daemon.store_thread.call(lambda: None)  # what was queued has run
            assert looks - before <= 2, f"{looks - before} looks queued behind a stuck store"
        finally:
            daemon.stop_requested.set()
            assert await asyncio.wait_for(running, 60) == 0

    asyncio.run(main())


def test_a_command_whose_outcome_the_store_refused_is_finished_later_not_left_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = _daemon(tmp_path, monkeypatch)
    store = Store(daemon.config.store.url)
    real_finish = daemon.store.finish_command
    refused = []

    def finish_once_refused(*args: Any, **kwargs: Any) -> None:
        # The store failing at this very moment (a lock, a dropped connection) cannot be
        # produced on demand with a real database: the first finish fails as it would.
        if not refused:
            refused.append(args)
            raise OperationalError("UPDATE commands ...", {}, Exception("database is locked"))
        real_finish(*args, **kwargs)

    monkeypatch.setattr(daemon.store, "finish_command", finish_once_refused)

    def state(command_id: int) -> str | None:
        with store.engine.connect() as conn:
            return conn.execute(select(commands.c.state)
                                .where(commands.c.id == command_id)).scalar()

    async def main() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            await wait_until(lambda: daemon.leading, "the daemon leading")
            command_id = store.add_command("pause", "yearly")
            await wait_until(lambda: refused, "the refused finish")
            await wait_until(lambda: state(command_id) == "done", "the command finished", 60)
            # Carried out once: paused, and one audit line for it.
            assert store.paused_jobs() == {"yearly"}
            assert [e.kind for e in store.events(job_id="yearly")].count("command.pause") == 1
        finally:
            daemon.stop_requested.set()
            assert await asyncio.wait_for(running, 60) == 0

    asyncio.run(main())
    store.dispose()
