"""One thread for the daemon's store writes, so they queue behind each other, not on a lock.

SQLite takes one writer at a time; threads that write at once wait on its lock
(busy timeout) and can fail under load, and every thread that waits is one more
wake-up. The daemon hands every write (claims, outcomes, heartbeats, commands)
to one :class:`StoreThread`: they run in order, off the event loop, and the
loop awaits their results.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["StoreThread"]

P = ParamSpec("P")
T = TypeVar("T")


class StoreThread:
    def __init__(self, name: str = "cronhost-store") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``function`` in the store thread, after the writes handed over before it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(function, *args, **kwargs)
        )

    def submit(self, function: Callable[P, object], *args: P.args, **kwargs: P.kwargs) -> None:
        """Queue ``function`` without waiting for it: its own code reports back if it must.

        Awaiting a result wakes the event loop when it comes; routine writes (a heartbeat)
        that have nothing to say should not.
        """
        self._executor.submit(function, *args, **kwargs)

    def close(self) -> None:
        """Let queued writes finish, then stop the thread."""
        self._executor.shutdown(wait=True)
