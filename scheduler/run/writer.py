"""One writer for runs that started, their attempts, and runs that finished: group commit,
through outages.

A run's outcome is logged first (so the journal has it whatever happens), then
handed here. The writer commits whatever is ready in one transaction in the
store thread; while that commit runs, the next outcomes gather, so a burst of
1,000 finishing runs costs a handful of transactions, not 1,000 that fight for
SQLite's write lock. What the store cannot take stays in memory, in order, and
is written when the store answers again; events (metrics, alerts) go out only
for what was written.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import first_line
from scheduler.logs import get_logger
from scheduler.run.events import EventBus, SlotEvent
from scheduler.store import Store
from scheduler.store.attempts import AttemptRow
from scheduler.store.batch import FinishedRun, StartedRun
from scheduler.store.worker import StoreThread

__all__ = ["RunWriter"]

log = get_logger("run")

RETRY_INITIAL = 0.5
RETRY_MAX = 15.0


class RunWriter:
    def __init__(self, store: Store, store_thread: StoreThread, events: EventBus) -> None:
        self._store = store
        self._thread = store_thread
        self._events = events
        self._started: list[StartedRun] = []
        self._attempts: list[AttemptRow] = []
        self._finished: list[tuple[FinishedRun, SlotEvent]] = []
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._failing_since: float | None = None

    @property
    def failing(self) -> bool:
        """True while the store refuses the writes (outcomes are kept in memory)."""
        return self._failing_since is not None

    @property
    def pending(self) -> int:
        return len(self._started) + len(self._attempts) + len(self._finished)

    def started(self, run: StartedRun) -> None:
        self._started.append(run)
        self._wake()

    def attempt(self, row: AttemptRow) -> None:
        """An attempt was sent (no answer yet) or has ended; later rows of one attempt win."""
        self._attempts.append(row)
        self._wake()

    def finished(self, run: FinishedRun, event: SlotEvent) -> None:
        self._finished.append((run, event))
        self._wake()

    def _wake(self) -> None:
        self._idle.clear()
        self._ready.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="run-writer")

    async def _run(self) -> None:
        wait = RETRY_INITIAL
        while self.pending:
            self._ready.clear()
            started, attempts, finished = self._started, self._attempts, self._finished
            self._started, self._attempts, self._finished = [], [], []
            try:
                await self._thread.call(
                    self._store.write_runs, started, [run for run, _ in finished], attempts
                )
            except SQLAlchemyError as exc:
                # Back in front, in order: nothing of this batch was written.
                self._started[:0], self._finished[:0] = started, finished
                self._attempts[:0] = attempts
                self._store_down(exc, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), wait)
                wait = min(wait * 2, RETRY_MAX)
                continue
            wait = RETRY_INITIAL
            self._store_back()
            for _, event in finished:
                self._events.publish(event)
        self._idle.set()

    def _store_down(self, exc: Exception, retry_in: float) -> None:
        loop_time = asyncio.get_running_loop().time()
        if self._failing_since is None:
            self._failing_since = loop_time
            log.error(
                "cannot record runs: the store is unavailable; keeping them in memory",
                extra={"action": "store.error", "pending": self.pending,
                       "error": first_line(exc), "retry_in_s": retry_in},
            )

    def _store_back(self) -> None:
        if self._failing_since is not None:
            log.info("the store is back; runs kept in memory are recorded",
                     extra={"action": "store.recovered"})
            self._failing_since = None

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for everything handed over to be written; True if it was."""
        if not self.pending and self._idle.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self._idle.is_set() and not self.pending

    def unwritten(self) -> list[FinishedRun]:
        """Finished runs still in memory (at shutdown: logged, and abandoned on the next start)."""
        return [run for run, _ in self._finished]
