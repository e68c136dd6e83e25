"""Small importable targets for the python job kind ("tests.sample_callables:<name>")."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

from jobs.python import CallContext

# Set by a test to let blocks_until_released return (a thread cannot be killed).
RELEASE = threading.Event()

NOT_CALLABLE = 42


def greet(context: CallContext) -> str:
    context.logger.info("greeting %s", context.job_id)
    return f"hello from {context.job_id} on {threading.current_thread().name}"


async def summarize(context: CallContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"success": True, "message": "done", "data": {"key": context.idempotency_key}}


def fail(context: CallContext) -> None:
    raise ValueError("bad input for " + context.job_id)


def quota_exceeded(context: CallContext) -> dict[str, Any]:
    return {"success": False, "error": "quota exceeded", "data": {"used": 100}}


def counts(context: CallContext) -> list[int]:
    return [1, 2, 3]


def opaque(context: CallContext) -> object:
    return object()


def exits(context: CallContext) -> None:
    raise SystemExit(3)


async def sleeps_async(context: CallContext) -> str:
    await asyncio.sleep(30)
    return "never"


def sleeps_sync(context: CallContext) -> str:
    time.sleep(0.3)
    return "slept"


def blocks_until_released(context: CallContext) -> str:
    RELEASE.wait(10)
    return "released"


class Tasks:
    @staticmethod
    def nightly(context: CallContext) -> str:
        return "nightly"


def leaks_the_secret(context: CallContext) -> None:
    # A job whose exception quotes a credential it read (as a careless client library does).
    raise PermissionError(f"token {os.environ['CRON_SECRET']} was refused")


async def outlives_its_deadline(context: CallContext) -> str:
    """A stuck run: shrugs off its deadline's cancellation once, then goes on until the
    file named by $TEST_GATE_FILE exists (at most 120 s)."""
    gate = Path(os.environ["TEST_GATE_FILE"])
    until = time.monotonic() + 120
    cancelled = False
    while not gate.exists() and time.monotonic() < until:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if cancelled:
                raise
            cancelled = True
    return "released"
