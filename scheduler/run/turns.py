"""Whose turn it is: a job's runs in flight, in claim order, and a trigger waiting for them.

A scheduled slot that comes while its job still runs is ``skipped`` (the overlap
rule); a manual trigger (`cronhost trigger`) is a person asking for a run now, so
it waits its turn instead: it is claimed ``queued``, waits for the runs of the job
that were in flight before it, and then runs. It never waits past the moment the
runs ahead must have ended (each one's deadline) plus :data:`GRACE`: a run still
going then is stuck, and the trigger is recorded ``skipped`` with that reason.

Event-driven: a waiter sleeps on one per-job event, set whenever a run of the job
leaves or starts (which tightens its deadline), and on the deadline itself; no
polling. Only touched on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["GRACE", "JobTurns", "Turn", "TurnWait"]

# How long past the deadline of the runs ahead a trigger still waits for them.
GRACE = 5.0


@dataclass
class Turn:
    """One run of a job in flight (claimed, not finished)."""

    run_id: int
    slot: datetime
    # Monotonic time by which the run has surely ended: when it starts, its start plus
    # its deadline; before that, the latest start it may get plus its deadline.
    ends_by: float
    waits: bool = False  # a trigger waiting for the runs ahead of it
    started: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class TurnWait:
    """What waiting for a turn came to."""

    waited_for: Turn | None  # the run ahead that ended last; None when nothing was ahead
    waited_s: float
    stuck: Turn | None = None  # a run ahead still going at its deadline + GRACE

    @property
    def may_run(self) -> bool:
        return self.stuck is None


class JobTurns:
    """Per job, its runs in flight in claim order (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._turns: dict[str, list[Turn]] = {}
        self._moved: dict[str, asyncio.Event] = {}

    def enter(self, job_id: str, run_id: int, slot: datetime, ends_by: float, *,
              waits: bool = False) -> Turn:
        """A run of ``job_id`` was claimed; it is in flight until :meth:`leave`."""
        turn = Turn(run_id, slot, ends_by, waits=waits)
        self._turns.setdefault(job_id, []).append(turn)
        return turn

    def started(self, job_id: str, run_id: int, ends_by: float) -> None:
        """The run is sent (its deadline counts now): ``ends_by`` is its start + deadline."""
        turn = self.turn(job_id, run_id)
        if turn is not None:
            turn.started, turn.waits, turn.ends_by = True, False, ends_by
            self._move(job_id)

    def leave(self, job_id: str, run_id: int) -> None:
        """The run ended (or never started): whoever waits behind it may go on."""
        turns = self._turns.get(job_id, [])
        turn = self.turn(job_id, run_id)
        if turn is None:
            return
        turns.remove(turn)
        turn.done.set()
        if not turns:
            self._turns.pop(job_id, None)
        self._move(job_id)

    def ahead(self, job_id: str, run_id: int | None = None) -> list[Turn]:
        """The runs of ``job_id`` in flight before ``run_id`` (all of them for None)."""
        turns = self._turns.get(job_id, [])
        mine = self.turn(job_id, run_id) if run_id is not None else None
        return turns[: turns.index(mine)] if mine is not None else list(turns)

    def ends_by(self, job_id: str) -> float | None:
        """When every run of ``job_id`` in flight has surely ended; None when none is."""
        turns = self._turns.get(job_id)
        return max(turn.ends_by for turn in turns) if turns else None

    def waiting(self, job_id: str) -> bool:
        """Whether a trigger of ``job_id`` is waiting for its turn."""
        return any(turn.waits for turn in self._turns.get(job_id, []))

    async def wait_turn(self, job_id: str, run_id: int) -> TurnWait:
        """Wait until the runs of ``job_id`` ahead of ``run_id`` have ended, or are stuck."""
        began = self._clock()
        mine = self.turn(job_id, run_id)
        ahead = self.ahead(job_id, run_id)
        last = ahead[-1] if ahead else None
        try:
            while True:
                pending = [turn for turn in ahead if not turn.done.is_set()]
                if not pending:
                    return TurnWait(last, self._clock() - began)
                latest = max(pending, key=lambda turn: turn.ends_by)
                left = latest.ends_by + GRACE - self._clock()
                if left <= 0:
                    return TurnWait(last, self._clock() - began, stuck=latest)
                last = latest
                moved = self._moved.setdefault(job_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), left)
        finally:
            if mine is not None:
                mine.waits = False  # done waiting: what comes next is an ordinary queued run

    def turn(self, job_id: str, run_id: int) -> Turn | None:
        """The run ``run_id`` of ``job_id``, while it is in flight."""
        return next((t for t in self._turns.get(job_id, []) if t.run_id == run_id), None)

    def _move(self, job_id: str) -> None:
        # A fresh event for the next change; the old one wakes everyone waiting now.
        moved = self._moved.pop(job_id, None)
        if moved is not None:
            moved.set()
