"""What happens to a due slot: claim it, run it, record it.

Called on the event loop by :class:`~scheduler.executor.SlotExecutor` with all
due fire times of one job. For each batch the runner decides:

* slots later than the job's ``misfire_grace`` → recorded ``missed``;
* slots that fell due while the daemon was down, for ``catch_up = false`` jobs → ``missed``;
* of the slots left, the newest runs and the older ones are recorded ``missed``
  (coalesced into it);
* a slot that comes while the job's previous run still runs → ``skipped``;
* a slot already claimed (by us before a crash, or by another daemon) → nothing.

The claim is written before APScheduler advances the job's next fire time, so a
crash between the two leaves a claimed slot (later ``abandoned``), never a lost one.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from jobs.http import AttemptReport, HttpJobRunner, HttpRequest
from jobs.outcome import Outcome, RunStatus
from jobs.python import CallContext, resolve_callable, run_callable
from jobs.redact import redact
from scheduler.config import Config, JobSpec, format_duration
from scheduler.errors import first_line
from scheduler.events import EventBus, SlotEvent
from scheduler.logs import get_logger
from scheduler.slots import slot_key
from scheduler.store import Store

log = get_logger("run")

STORE_RETRY_INITIAL = 0.5
STORE_RETRY_MAX = 15.0


@dataclass
class UnrecordedSlots:
    """Slots the store could not take (it was down); written once it is back."""

    job_id: str
    slots: list[datetime]
    reason: str


@dataclass
class SlotRunner:
    store: Store
    config: Callable[[], Config]
    http: HttpJobRunner
    daemon_id: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    events: EventBus = field(default_factory=EventBus)

    def __post_init__(self) -> None:
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.running_jobs: Counter[str] = Counter()
        self.unrecorded: list[UnrecordedSlots] = []
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
        slots = sorted(slot.astimezone(UTC) for slot in run_times)
        late = [slot for slot in slots if now - slot > spec.misfire_grace]
        timely = [slot for slot in slots if now - slot <= spec.misfire_grace]
        if not spec.catch_up:
            down = [slot for slot in timely if slot < self.started_at]
            timely = [slot for slot in timely if slot >= self.started_at]
        else:
            down = []
        to_run = timely[-1] if timely else None
        coalesced = timely[:-1]
        grace = format_duration(spec.misfire_grace)
        self._record_missed(job_id, late, f"not run: started too late (past misfire_grace {grace})")
        self._record_missed(job_id, down, "not run: the daemon was down and catch_up = false")
        if to_run is not None:
            self._record_missed(
                job_id, coalesced, f"not run: coalesced into the run of slot {to_run.isoformat()}"
            )
            self._claim_and_start(spec, to_run, "schedule", now)

    def _record_missed(self, job_id: str, slots: list[datetime], reason: str) -> None:
        if not slots:
            return
        try:
            recorded = self.store.record_missed(job_id, slots, reason, self.daemon_id)
        except SQLAlchemyError as exc:
            self._store_down(exc, job_id, slots, reason)
            return
        self._announce_missed(job_id, slots, reason, recorded)

    def _announce_missed(
        self, job_id: str, slots: list[datetime], reason: str, recorded: int
    ) -> None:
        # Only what was really recorded: a slot that got a row meanwhile (it ran after
        # all, or was recorded before) must not raise a second alert.
        if not recorded:
            return
        self.events.publish(SlotEvent(
            job_id=job_id, status=RunStatus.MISSED.value, scheduled_at=slots[-1],
            error=reason, slot_count=recorded,
        ))
        log.warning(
            "slots recorded as missed",
            extra={"action": "run.missed", "job": job_id, "count": recorded,
                   "first_slot": slots[0].isoformat(), "last_slot": slots[-1].isoformat(),
                   "reason": reason},
        )

    def _store_down(self, exc: Exception, job_id: str, slots: list[datetime], reason: str) -> None:
        # We could not claim, so we must not run (another daemon or a later retry might):
        # keep the slots and record them as missed once the store answers again.
        self.unrecorded.append(UnrecordedSlots(job_id, slots, f"{reason}; store unavailable"))
        log.error(
            "store unavailable: slot not run, will be recorded as missed",
            extra={"action": "store.error", "job": job_id, "slots": len(slots),
                   "error": first_line(exc)},
        )

    def flush_unrecorded(self) -> None:
        """Called by the daemon loop: write what the store could not take earlier."""
        while self.unrecorded:
            pending = self.unrecorded[0]
            try:
                recorded = self.store.record_missed(
                    pending.job_id, pending.slots, pending.reason, self.daemon_id
                )
            except SQLAlchemyError:
                return
            self.unrecorded.pop(0)
            self._announce_missed(pending.job_id, pending.slots, pending.reason, recorded)

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
            self._store_down(exc, spec.id, [scheduled_at], "not run: could not claim the slot")
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
            outcome = await self._run_kind(spec, scheduled_at, key)
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
            await self._finish_with_retry(run_id, outcome, duration_ms)
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

    async def _run_kind(self, spec: JobSpec, scheduled_at: datetime, key: str) -> Outcome:
        if spec.kind == "python":
            assert spec.call is not None
            context = CallContext(
                job_id=spec.id, scheduled_at=scheduled_at, idempotency_key=key,
                logger=get_logger(f"job.{spec.id}"),
            )
            return await run_callable(resolve_callable(spec.call), context, spec.deadline)
        assert spec.url is not None
        request = HttpRequest(
            job_id=spec.id,
            url=spec.url,
            idempotency_key=key,
            method=spec.method,
            headers=dict(spec.headers),
            body=spec.body,
            json_body=_json(spec.json_body_text),
            secret=self.config().secrets.get(spec.secret) if spec.secret else None,
            timeout=spec.timeout,
            deadline=spec.deadline,
            retries=spec.retries,
        )
        return await self.http.run(
            request, on_attempt=functools.partial(_log_attempt, spec.id, scheduled_at, key)
        )

    async def _finish_with_retry(self, run_id: int, outcome: Outcome, duration_ms: int) -> None:
        # The outcome is only in memory until this write lands: keep trying through a
        # store outage. If the daemon dies meanwhile, the row stays `running` and is
        # marked `abandoned` on the next start.
        wait = STORE_RETRY_INITIAL
        while True:
            try:
                await asyncio.to_thread(
                    self.store.finish, run_id, outcome, self.now(), duration_ms
                )
                return
            except SQLAlchemyError as exc:
                log.error(
                    "could not record a finished run; retrying",
                    extra={"action": "store.error", "run_id": run_id, "error": first_line(exc),
                           "retry_in_s": wait},
                )
                await asyncio.sleep(wait)
                wait = min(wait * 2, STORE_RETRY_MAX)

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


def _log_attempt(job_id: str, scheduled_at: datetime, key: str, report: AttemptReport) -> None:
    log.log(
        20 if report.error is None else 30,
        "attempt",
        extra={"action": "run.attempt", "job": job_id, "slot": scheduled_at.isoformat(),
               "idempotency_key": key, "attempt": report.attempt,
               "request_id": report.request_id, "http_status": report.http_status,
               "duration_ms": int(report.duration * 1000), "error": report.error,
               "will_retry": report.will_retry, "retry_in_ms": int(report.wait * 1000)},
    )


def _json(text: str | None) -> object:
    return json.loads(text) if text else None
