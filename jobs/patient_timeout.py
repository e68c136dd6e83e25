"""A timeout that only decides when it fired on time: a pause of the whole process is not the job's fault.

``asyncio.timeout`` has a race that a frozen process always loses. After SIGSTOP and
SIGCONT (a paused VM, a long GC, a blocked loop), the overdue timer and the reply that
arrived meanwhile become ready in the same turn of the loop. The selector wakes the
reader first, but the reader only *schedules* the waiting task's wake-up, and the
overdue timer's callback runs before it and cancels the task: a request that got its
200 on the wire is recorded ``timeout``.

:func:`patient_timeout` works like ``asyncio.timeout`` (a TimeoutError out of the
block, :meth:`PatientTimeout.expired` to tell it from the block's own TimeoutError),
except when its timer fires late (the loop's clock more than LATE_SECONDS past the due
time: nothing ran meanwhile, so the work could not have noticed its answer). Then the
work gets GRACE_SECONDS more, at most MAX_GRACES times, before it counts as timed out.
A real hang still times out: the grace timer fires on time and decides.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["GRACE_SECONDS", "LATE_SECONDS", "MAX_GRACES", "PatientTimeout", "patient_timeout"]

# Late by more than this and the timer was not on time: a loop turn takes milliseconds.
LATE_SECONDS = 0.5
# Enough for replies already in the socket to be read; short, since it extends a timeout.
GRACE_SECONDS = 1.0
# A process frozen again and again still ends its run within a few seconds of its due time.
MAX_GRACES = 3


class PatientTimeout:
    """The async context manager :func:`patient_timeout` returns; one use only."""

    def __init__(
        self,
        delay: float | None,
        *,
        late: float = LATE_SECONDS,
        grace: float = GRACE_SECONDS,
        max_graces: int = MAX_GRACES,
    ) -> None:
        self._delay = delay
        self._late = late
        self._grace = grace
        self._graces_left = max_graces
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._expired = False
        self._cancelling = 0
        self.graces_used = 0

    def expired(self) -> bool:
        """True when this timeout ended the block (not the block's own TimeoutError)."""
        return self._expired

    async def __aenter__(self) -> PatientTimeout:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("patient_timeout must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._delay is not None:
            loop = asyncio.get_running_loop()
            self._arm(loop, loop.time() + max(0.0, self._delay))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        assert self._task is not None
        # As asyncio.Timeout does: our own cancel becomes a TimeoutError, anyone else's
        # (a shutdown cancelling the run) passes through untouched.
        if not self._expired:
            return
        # Take our cancel back whatever ended the block, so it cannot hit a later await.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._due = when
        self._handle = loop.call_at(when, self._on_due, loop)

    def _on_due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if loop.time() - self._due > self._late and self._graces_left > 0:
            # Fired late: the process or the loop was stopped, and what the work is
            # waiting for may be ready and not yet seen. Let it look first.
            self._graces_left -= 1
            self.graces_used += 1
            self._arm(loop, loop.time() + self._grace)
            return
        assert self._task is not None
        self._expired = True
        self._task.cancel()


def patient_timeout(delay: float | None) -> PatientTimeout:
    """``async with patient_timeout(s):`` a TimeoutError after ``s`` seconds, unless the timer was late."""
    return PatientTimeout(delay)
