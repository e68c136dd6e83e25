"""The python job kind: resolving "module:function" targets and running them."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.outcome import Outcome, RunStatus
from jobs.python import CallContext, resolve_callable, run_callable
from tests import sample_callables

CONTEXT = CallContext(
    job_id="nightly-report",
    scheduled_at=datetime(2024, 3, 1, 2, 0, tzinfo=UTC),
    idempotency_key="nightly-report@2024-03-01T02:00:00+00:00",
    logger=logging.getLogger("cronhost.test"),
)


def run(target: str, timeout: float = 5.0) -> Outcome:
    return asyncio.run(run_callable(resolve_callable(target), CONTEXT, timeout))


def test_sync_callable_runs_in_a_worker_thread_and_its_string_is_the_message() -> None:
    outcome = run("tests.sample_callables:greet")
    assert outcome.status is RunStatus.OK
    assert outcome.message is not None
    assert outcome.message.startswith("hello from nightly-report on ")
    assert threading.main_thread().name not in outcome.message


def test_async_callable_is_awaited_and_its_reply_fields_are_kept() -> None:
    outcome = run("tests.sample_callables:summarize")
    assert outcome == Outcome(RunStatus.OK, message="done", data={"key": CONTEXT.idempotency_key})


def test_raising_callable_fails_with_exception_type_and_message() -> None:
    outcome = run("tests.sample_callables:fail")
    assert outcome.status is RunStatus.FAILED
    assert outcome.error == "ValueError: bad input for nightly-report"


def test_system_exit_in_a_job_fails_the_run_not_the_daemon() -> None:
    outcome = run("tests.sample_callables:exits")
    assert outcome.status is RunStatus.FAILED
    assert outcome.error == "SystemExit: 3"


def test_success_false_dict_is_failed_with_its_error_as_the_message() -> None:
    outcome = run("tests.sample_callables:quota_exceeded")
    assert outcome.status is RunStatus.FAILED
    assert outcome.error == 'the job answered "success": false'
    assert outcome.message == "quota exceeded"
    assert outcome.data == {"used": 100}


def test_other_json_values_become_data_and_anything_else_is_ignored() -> None:
    assert run("tests.sample_callables:counts").data == [1, 2, 3]
    assert run("tests.sample_callables:opaque") == Outcome(RunStatus.OK)


def test_async_callable_past_its_timeout_is_timeout() -> None:
    started = time.monotonic()
    outcome = run("tests.sample_callables:sleeps_async", timeout=0.2)
    assert time.monotonic() - started < 2
    assert outcome.status is RunStatus.TIMEOUT
    assert outcome.error == "timed out after 0.2 s"


def test_sync_callable_past_its_timeout_is_timeout_and_the_error_says_it_runs_on() -> None:
    sample_callables.RELEASE.clear()

    async def main() -> Outcome:
        func = resolve_callable("tests.sample_callables:blocks_until_released")
        try:
            return await run_callable(func, CONTEXT, 0.2)
        finally:
            # Let the thread end, or asyncio.run would wait for it at shutdown.
            sample_callables.RELEASE.set()

    outcome = asyncio.run(main())
    assert outcome.status is RunStatus.TIMEOUT
    assert outcome.error is not None
    assert outcome.error.startswith("timed out after 0.2 s")
    assert "thread" in outcome.error and "left to finish" in outcome.error


def run_frozen_after_start(target: str, timeout: float, freeze: float) -> Outcome:
    """Run a python job and stop the event loop for ``freeze`` s just after it starts.

    A synchronous sleep on the loop's thread is what SIGSTOP looks like from inside:
    no callback runs, while the job's thread goes on and finishes.
    """

    async def main() -> Outcome:
        run = asyncio.create_task(run_callable(resolve_callable(target), CONTEXT, timeout))
        await asyncio.sleep(0)  # the job is started (its thread, or its first await)
        time.sleep(freeze)  # noqa: ASYNC251  (the point: nothing runs on the loop)
        return await run

    return asyncio.run(main())


def test_a_result_that_came_while_the_process_was_frozen_is_recorded_as_that_result() -> None:
    # The function returns after 0.3 s; the loop is stopped 2.5 s, past the 1 s timeout.
    outcome = run_frozen_after_start("tests.sample_callables:sleeps_sync", 1.0, freeze=2.5)

    assert outcome.status is RunStatus.OK, outcome.error
    assert outcome.message == "slept"


def test_a_hang_is_still_a_timeout_when_the_process_was_frozen_meanwhile() -> None:
    outcome = run_frozen_after_start("tests.sample_callables:sleeps_async", 1.0, freeze=2.5)

    assert outcome.status is RunStatus.TIMEOUT
    assert outcome.error == "timed out after 1 s"


def test_sync_callable_does_not_block_the_event_loop() -> None:
    async def main() -> tuple[Outcome, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        outcome = await run_callable(sample_callables.sleeps_sync, CONTEXT, 5.0)
        task.cancel()
        return outcome, ticks

    outcome, ticks = asyncio.run(main())
    assert outcome.message == "slept"
    # 0.3 s of time.sleep in the job; a blocked loop would tick about once.
    assert ticks >= 10


def test_resolve_callable_finds_functions_and_class_methods() -> None:
    assert resolve_callable("tests.sample_callables:greet") is sample_callables.greet
    func: Callable[..., Any] = resolve_callable("tests.sample_callables:Tasks.nightly")
    assert func(CONTEXT) == "nightly"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "nosuchpkg.mod:run",
            "cannot import module 'nosuchpkg.mod': No module named 'nosuchpkg'",
        ),
        (
            "tests.sample_callables:missing",
            "module 'tests.sample_callables' has no attribute 'missing'",
        ),
        (
            "tests.sample_callables:Tasks.missing",
            "'tests.sample_callables:Tasks' has no attribute 'missing'",
        ),
        (
            "tests.sample_callables:NOT_CALLABLE",
            "'tests.sample_callables:NOT_CALLABLE' is not callable",
        ),
        ("xyz", "'xyz' is not of the form package.module:function"),
        ("pkg.mod:", "'pkg.mod:' is not of the form package.module:function"),
        ("pkg mod:f", "'pkg mod:f' is not of the form package.module:function"),
    ],
)
def test_resolve_callable_errors_are_one_clear_line(target: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        resolve_callable(target)
    assert str(raised.value) == message
