"""What happens to a due slot: claim it, run it, record it.

Called on the event loop by the engine's SlotExecutor with all due fire times of
one job. ``decide`` says which slot runs and which are ``missed``; then:

* a slot that comes while the job's previous run still runs → ``skipped``;
* a slot already claimed (by us before a crash, or by another daemon) → nothing;
* otherwise the slot is claimed (its UNIQUE row), executed and recorded.

The claim is written before APScheduler advances the job's next fire time, so a
crash between the two leaves a claimed slot (later ``abandoned``), never a lost one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from jobs.outcome import Outcome, RunStatus
from jobs.redact import redact
from scheduler.config import Config, JobSpec
from scheduler.logs import get_logger
from scheduler.run.decide import decide
from scheduler.run.events import EventBus, SlotEvent
from scheduler.run.execute import JobExecutor
from scheduler.run.record import MissedSlots, finish_with_retry
from scheduler.schedule import slot_key
from scheduler.store import Store

__all__ = ["SlotRunner"]

log = get_logger("run")


@dataclass
class SlotRunner:
    store: Store
    config: Callable[[], Config]
    executor: JobExecutor
    daemon_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    events: EventBus = field(default_factory=EventBus)

    def __post_init__(self) -> None:
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.running_jobs: Counter[str] = Counter()
        self.missed = MissedSlots(self.store, self.daemon_id, self.events)
        self.accepting = True

    # -- due slots ----------------------------------------------------------------------

    def on_due(self, job_id: str, run_times: list[datetime]) -> None:
        spec = self.config().job(job_id)
        if spec is None or not spec.enabled or not self.accepting:
            log.warning(
                "due slot of a job that is not (or no longer) configured; not run",
                extra={"action": "run.unknown_job", "job": job_id},
            )
            return
        now = self.now()
        decision = decide(spec, run_times, now, self.started_at)
        for missed in decision.missed:
            self.missed.record(job_id, missed.slots, missed.reason)
        if decision.to_run is not None:
            self._claim_and_start(spec, decision.to_run, "schedule", now)

    def flush_unrecorded(self) -> None:
        """Called by the daemon loop: write what the store could not take earlier."""
        self.missed.flush()

    def _claim_and_start(
        self, spec: JobSpec, scheduled_at: datetime, trigger: str, now: datetime,
        key: str | None = None,
    ) -> int | None:
        key = key or slot_key(spec.id, scheduled_at, trigger)
        overlapping = self.running_jobs[spec.id] > 0 and not spec.allow_overlap
        try:
            run_id = self.store.claim(
                job_id=spec.id,
                trigger=trigger,
                scheduled_at=scheduled_at,
                idempotency_key=key,
                daemon_id=self.daemon_id,
                started_at=now,
                status=RunStatus.SKIPPED if overlapping else RunStatus.RUNNING,
                error="skipped: the previous run of this job was still running" if overlapping else None,
            )
        except SQLAlchemyError as exc:
            self.missed.store_down(exc, spec.id, [scheduled_at], "not run: could not claim the slot")
            return None
        lateness_ms = int((now - scheduled_at).total_seconds() * 1000)
        if run_id is None:
            log.info(
                "slot already claimed; not run again",
                extra={"action": "run.already_claimed", "job": spec.id, "slot": scheduled_at.isoformat()},
            )
            return None
        if overlapping:
            self.events.publish(SlotEvent(
                job_id=spec.id, status=RunStatus.SKIPPED.value, scheduled_at=scheduled_at,
                run_id=run_id, trigger=trigger, lateness_ms=lateness_ms,
                error="the previous run of this job was still running",
            ))
            log.warning(
                "slot skipped: previous run still running",
                extra={"action": "run.skipped", "job": spec.id, "slot": scheduled_at.isoformat(),
                       "run_id": run_id},
            )
            return run_id
        log.info(
            "run started",
            extra={"action": "run.start", "job": spec.id, "slot": scheduled_at.isoformat(),
                   "run_id": run_id, "trigger": trigger, "lateness_ms": lateness_ms,
                   "idempotency_key": key},
        )
        self.running_jobs[spec.id] += 1
        task = asyncio.get_running_loop().create_task(
            self._execute(run_id, spec, scheduled_at, key, trigger, lateness_ms),
            name=f"run-{spec.id}-{run_id}",
        )
        self.in_flight[run_id] = task
        return run_id

    async def trigger_now(self, job_id: str, idempotency_key: str | None = None) -> int | None:
        """Run a job now (`cronhost trigger`): a manual slot of its own, recorded like any run.

        Re-running an abandoned or failed slot passes that slot's ``idempotency_key``, so
        an endpoint that finished the work already can tell it is a repeat.
        """
        spec = self.config().job(job_id)
        if spec is None:
            return None
        now = self.now()
        return self._claim_and_start(spec, now, "manual", now, idempotency_key)

    # -- one run ------------------------------------------------------------------------

    async def _execute(
        self, run_id: int, spec: JobSpec, scheduled_at: datetime, key: str, trigger: str,
        lateness_ms: int,
    ) -> None:
        started = time.monotonic()
        try:
            outcome = await self.executor.run(spec, scheduled_at, key)
        except Exception as exc:  # noqa: BLE001 - a bug in a kind must not kill the daemon
            outcome = Outcome(RunStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.running_jobs[spec.id] -= 1
        duration_ms = int((time.monotonic() - started) * 1000)
        secrets = self.config().secrets.values_for_redaction()
        if outcome.error:
            outcome = replace(outcome, error=redact(outcome.error, secrets))
        # Logged before the store write, so the outcome is in the journal even if the
        # store is down and the daemon is stopped before the row can be written.
        log.log(
            20 if outcome.status is RunStatus.OK else 30,
            "run finished",
            extra={"action": "run.finish", "job": spec.id, "slot": scheduled_at.isoformat(),
                   "run_id": run_id, "trigger": trigger, "idempotency_key": key,
                   "status": outcome.status.value,
                   "attempts": outcome.attempts, "http_status": outcome.http_status,
                   "duration_ms": duration_ms, "lateness_ms": lateness_ms,
                   "error": outcome.error},
        )
        try:
            await finish_with_retry(self.store, run_id, outcome, self.now, duration_ms)
        except asyncio.CancelledError:
            log.error(
                "run finished but the store could not record it before shutdown; its row stays "
                "`running` and the next start marks it abandoned: this log line has the outcome",
                extra={"action": "run.unrecorded", "job": spec.id, "run_id": run_id,
                       "slot": scheduled_at.isoformat(), "status": outcome.status.value},
            )
            raise
        finally:
            self.in_flight.pop(run_id, None)
        self.events.publish(SlotEvent(
            job_id=spec.id, status=outcome.status.value, scheduled_at=scheduled_at,
            run_id=run_id, trigger=trigger, attempts=outcome.attempts,
            http_status=outcome.http_status, duration_ms=duration_ms, lateness_ms=lateness_ms,
            error=outcome.error,
        ))

    # -- shutdown -----------------------------------------------------------------------

    async def drain(self, timeout: float) -> list[int]:
        """Let runs in flight finish for up to ``timeout`` s; return those that did not."""
        self.accepting = False
        tasks = list(self.in_flight.values())
        if tasks:
            log.info(
                "waiting for runs in flight",
                extra={"action": "daemon.draining", "runs": len(tasks), "timeout_s": timeout},
            )
            await asyncio.wait(tasks, timeout=timeout)
        left = [run_id for run_id, task in self.in_flight.items() if not task.done()]
        for run_id in left:
            self.in_flight[run_id].cancel()
        return left
