"""What happens to due slots: decide, claim in one transaction, dispatch, record.

The engine calls :meth:`SlotRunner.on_wake` once per wake-up with every job that
fell due. For each job ``decide`` says which slot runs and which are ``missed``;
a slot that comes while the job's previous run still runs (or still waits for
its turn) is ``skipped``; a manual trigger is not: it waits its turn (turns.py).
Then ONE store transaction writes every slot's row
(UNIQUE per slot: a slot claimed before, by us before a crash or by another
daemon, is not claimed again) and every job's next fire time. Only then do the
claimed slots start, as tasks on the event loop, each waiting ``queued`` for a
free place under the in-flight limit; it is ``running`` from the moment its
first request is handed to the connection (or its callable is called), and
lateness counts to that moment. Outcomes go to the group-commit writer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from jobs.attempts import AttemptRecord, OnAttempt, OnSend
from jobs.outcome import Outcome, RunStatus
from jobs.redact import redact
from scheduler.config import Config, JobSpec
from scheduler.logs import get_logger
from scheduler.run.decide import decide
from scheduler.run.events import EventBus, SlotEvent
from scheduler.run.execute import JobExecutor
from scheduler.run.turns import GRACE, JobTurns, TurnWait
from scheduler.run.writer import RunWriter
from scheduler.schedule import slot_key
from scheduler.store import Store
from scheduler.store.attempts import AttemptRow
from scheduler.store.batch import FinishedRun, LeaseGone, MissedBatch, SlotKey, StartedRun
from scheduler.store.rows import JobAdvance, SlotClaim
from scheduler.store.worker import StoreThread

__all__ = ["SlotRunner"]

log = get_logger("run")

SLOW_CLAIM_MS = 100
SKIPPED_RUNNING = "skipped: the previous run of this job was still running"
SKIPPED_QUEUED = ("skipped: the previous slot of this job was still queued, waiting for a free "
                  "place under [daemon] max_in_flight")
SKIPPED_BEHIND_TRIGGER = ("skipped: a manual run of this job was waiting for the previous run "
                          "to finish")
MISSED_STOPPING = ("not run: the daemon was stopping when this manual run's turn came "
                   "(it waited for the previous run to finish)")
MISSED_NOT_LEADING = ("not run: this node stopped leading the store while this manual run "
                      "waited for the previous run to finish; trigger it again")
SKIPPED_STUCK = ("skipped: the run of slot {slot} was still running {grace:g} s past its "
                 "deadline, so this manual run did not start (nothing was sent)")


@dataclass
class SlotRunner:
    store: Store
    config: Callable[[], Config]
    executor: JobExecutor
    daemon_id: str
    store_thread: StoreThread = field(default_factory=StoreThread)
    events: EventBus = field(default_factory=EventBus)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Fencing: False when this node is not sure it still leads the store (any thread).
    may_claim: Callable[[], bool] = field(default=lambda: True)
    # The lease session's server pid on PostgreSQL: checked inside the claim transaction.
    fence_pid: Callable[[], int | None] = field(default=lambda: None)

    def __post_init__(self) -> None:
        self.writer = RunWriter(self.store, self.store_thread, self.events)
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.running_jobs: Counter[str] = Counter()  # started, not finished
        self.queued_jobs: Counter[str] = Counter()  # claimed, waiting for a free place
        self.turns = JobTurns()  # this node's runs in flight per job, in claim order
        self.accepting = True

    # -- due slots ----------------------------------------------------------------------

    async def on_wake(self, advances: list[JobAdvance]) -> None:
        """Claim what is due and advance every job, in one transaction; then dispatch.

        Raises the store's error when the transaction fails: then nothing was written,
        and the engine tries the same slots again at its next wake-up.
        """
        if not self.may_claim():
            return  # not sure we lead: the slots stay due, for whoever leads
        now = self.now()
        began = time.monotonic()
        config = self.config()
        claims: list[tuple[JobSpec, SlotClaim]] = []
        missed: list[MissedBatch] = []
        for advance in advances:
            spec = config.job(advance.job_id)
            if spec is None or not spec.enabled or not self.accepting:
                # Its schedule still moves on (in the same transaction), so it is not due
                # again at every wake-up; a reload removes it from the engine.
                log.warning(
                    "due slot of a job that is not (or no longer) configured; not run",
                    extra={"action": "run.unknown_job", "job": advance.job_id},
                )
                continue
            decision = decide(spec, advance.run_times, now, self.started_at)
            missed += [MissedBatch(spec.id, m.slots, m.reason) for m in decision.missed]
            if decision.to_run is not None:
                claims.append((spec, self._claim(spec, decision.to_run, "schedule")))
        written = await self._commit_and_start(claims, missed, advances, now)
        # What the claim transaction took is where a burst's first lateness comes from:
        # worth a line when it is slow; otherwise only for debugging (one a wake-up).
        took_ms = int((time.monotonic() - began) * 1000)
        log.log(
            20 if took_ms >= SLOW_CLAIM_MS else 10,
            "due slots claimed",
            extra={"action": "run.claimed", "jobs": len(advances), "claimed": len(written),
                   "missed": sum(len(batch.slots) for batch in missed),
                   "lateness_ms": int((now - min(min(a.run_times) for a in advances))
                                      .total_seconds() * 1000) if advances else 0,
                   "took_ms": took_ms},
        )

    def _claim(self, spec: JobSpec, scheduled_at: datetime, trigger: str,
               key: str | None = None) -> SlotClaim:
        reason = None
        # A trigger waits for this node's own runs ahead of it (see _wait_turn); other
        # nodes' runs (after a takeover, counted in running_jobs only) cannot be waited
        # for, so with none of ours ahead they still skip it.
        waits_its_turn = trigger == "manual" and bool(self.turns.ahead(spec.id))
        if not spec.allow_overlap and not waits_its_turn:
            if self.running_jobs[spec.id]:
                reason = SKIPPED_RUNNING
            elif self.turns.waiting(spec.id):
                reason = SKIPPED_BEHIND_TRIGGER
            elif self.queued_jobs[spec.id]:
                reason = SKIPPED_QUEUED
        return SlotClaim(
            job_id=spec.id, trigger=trigger, scheduled_at=scheduled_at,
            idempotency_key=key or slot_key(spec.id, scheduled_at, trigger),
            status=RunStatus.SKIPPED.value if reason else RunStatus.QUEUED.value, error=reason,
        )

    async def _commit_and_start(
        self, claims: list[tuple[JobSpec, SlotClaim]], missed: list[MissedBatch],
        advances: list[JobAdvance], now: datetime,
    ) -> dict[int, SlotClaim]:
        """Write the wake-up; start what was claimed. Returns the claims written, by run id."""
        written_wakeup = await self.store_thread.call(
            self._commit_if_leading, [claim for _, claim in claims], missed, advances, now)
        if written_wakeup is None:
            log.warning(
                "due slots not claimed: this node is no longer sure it leads the store",
                extra={"action": "run.fenced", "slots": len(claims)},
            )
            return {}
        claimed, recorded = written_wakeup
        for batch in missed:
            self._announce_missed(batch, recorded.get(batch.job_id, 0))
        written: dict[int, SlotClaim] = {}
        for spec, claim in claims:
            run_id = claimed.get((claim.job_id, claim.trigger, claim.scheduled_at))
            if run_id is None:
                log.info(
                    "slot already claimed; not run again",
                    extra={"action": "run.already_claimed", "job": spec.id,
                           "slot": claim.scheduled_at.isoformat()},
                )
                continue
            written[run_id] = claim
            if claim.status == RunStatus.SKIPPED.value:
                self._announce_skipped(claim, run_id)
            else:
                self._start(spec, claim, run_id)
        return written

    def _commit_if_leading(
        self, claims: list[SlotClaim], missed: list[MissedBatch], advances: list[JobAdvance],
        now: datetime,
    ) -> tuple[dict[SlotKey, int], dict[str, int]] | None:
        """In the store thread, right before the claim transaction: the fencing check."""
        if not self.may_claim():
            return None
        try:
            return self.store.commit_wakeup(claims, missed, advances, daemon_id=self.daemon_id,
                                            now=now, lease_pid=self.fence_pid())
        except LeaseGone:  # lost while the transaction ran: it was rolled back
            return None

    def _announce_missed(self, batch: MissedBatch, recorded: int) -> None:
        # Only what was really recorded: a slot that had a row already (it ran after all,
        # or was recorded before) must not raise a second alert.
        if not recorded:
            return
        slots = sorted(batch.slots)
        self.events.publish(SlotEvent(
            job_id=batch.job_id, status=RunStatus.MISSED.value, scheduled_at=slots[-1],
            error=batch.reason, slot_count=recorded,
        ))
        log.warning(
            "slots recorded as missed",
            extra={"action": "run.missed", "job": batch.job_id, "count": recorded,
                   "first_slot": slots[0].isoformat(), "last_slot": slots[-1].isoformat(),
                   "reason": batch.reason},
        )

    def _announce_skipped(self, claim: SlotClaim, run_id: int) -> None:
        reason = (claim.error or "").removeprefix("skipped: ")
        self.events.publish(SlotEvent(
            job_id=claim.job_id, status=RunStatus.SKIPPED.value, scheduled_at=claim.scheduled_at,
            run_id=run_id, trigger=claim.trigger, error=reason,
        ))
        log.warning(
            f"slot skipped: {reason}",
            extra={"action": "run.skipped", "job": claim.job_id,
                   "slot": claim.scheduled_at.isoformat(), "run_id": run_id},
        )

    async def trigger_now(self, job_id: str, idempotency_key: str | None = None) -> int | None:
        """Run a job now (`cronhost trigger`): a manual slot of its own, recorded like any run.

        Re-running an abandoned or failed slot passes that slot's ``idempotency_key``, so
        an endpoint that finished the work already can tell it is a repeat.
        """
        spec = self.config().job(job_id)
        if spec is None:
            return None
        now = self.now()
        claim = self._claim(spec, now, "manual", idempotency_key)
        claimed = await self._commit_and_start([(spec, claim)], [], [], now)
        return next(iter(claimed), None)

    def waits_behind(self, job_id: str, run_id: int) -> datetime | None:
        """The slot of the run that the trigger ``run_id`` waits for; None if it need not wait."""
        mine = self.turns.turn(job_id, run_id)
        ahead = self.turns.ahead(job_id, run_id)
        return ahead[-1].slot if mine is not None and mine.waits and ahead else None

    # -- one run ------------------------------------------------------------------------

    def _start(self, spec: JobSpec, claim: SlotClaim, run_id: int) -> None:
        self.queued_jobs[spec.id] += 1
        clock = time.monotonic()
        if claim.trigger == "manual" and not spec.allow_overlap:
            # It waits for the runs ahead (at most until their deadline + GRACE), then may
            # wait misfire_grace for a place, then runs for up to its deadline.
            after = self.turns.ends_by(spec.id)
            waits_until = after + GRACE if after is not None else clock
            ends_by = waits_until + spec.misfire_grace.total_seconds() + spec.deadline
            self.turns.enter(spec.id, run_id, claim.scheduled_at, ends_by, waits=True)
        else:
            start_by = claim.scheduled_at + spec.misfire_grace
            ends_by = clock + max(0.0, (start_by - self.now()).total_seconds()) + spec.deadline
            self.turns.enter(spec.id, run_id, claim.scheduled_at, ends_by)
        self.in_flight[run_id] = asyncio.get_running_loop().create_task(
            self._execute(run_id, spec, claim), name=f"run-{spec.id}-{run_id}"
        )

    async def _wait_turn(self, run_id: int, spec: JobSpec, claim: SlotClaim) -> Outcome | None:
        """A trigger waits for the job's runs ahead of it; the outcome when it must not run."""
        if claim.trigger != "manual" or spec.allow_overlap:
            return None
        ahead = self.turns.ahead(spec.id, run_id)
        if ahead:
            log.info(
                "manual run waits for the job's run in flight to finish",
                extra={"action": "run.waiting", "job": spec.id, "run_id": run_id,
                       "behind_run_id": ahead[-1].run_id,
                       "behind_slot": ahead[-1].slot.isoformat()},
            )
        wait: TurnWait = await self.turns.wait_turn(spec.id, run_id)
        if wait.waited_for is not None:
            log.info(
                "manual run's turn came" if wait.may_run else "manual run gave up waiting",
                extra={"action": "run.turn", "job": spec.id, "run_id": run_id,
                       "behind_slot": wait.waited_for.slot.isoformat(),
                       "waited_ms": int(wait.waited_s * 1000), "may_run": wait.may_run},
            )
        if wait.waited_for is not None and not self.accepting:
            return Outcome(RunStatus.MISSED, attempts=0, error=MISSED_STOPPING)
        if wait.waited_for is not None and not self.may_claim():
            # While it waited this node lost the lead: whoever leads now runs the job.
            return Outcome(RunStatus.MISSED, attempts=0, error=MISSED_NOT_LEADING)
        if wait.stuck is None:
            return None
        return Outcome(RunStatus.SKIPPED, attempts=0, error=SKIPPED_STUCK.format(
            slot=wait.stuck.slot.isoformat(), grace=GRACE))

    async def _execute(self, run_id: int, spec: JobSpec, claim: SlotClaim) -> None:
        scheduled_at, key = claim.scheduled_at, claim.idempotency_key
        began: dict[str, float] = {}
        lateness: dict[str, int] = {}
        started_row: list[StartedRun] = []

        def on_start() -> None:
            # The first request is on its way (or the callable is called): from here the
            # run is `running`, its timeout and deadline count, and lateness is measured.
            began["monotonic"] = time.monotonic()
            started_at = self.now()
            late = int((started_at - scheduled_at).total_seconds() * 1000)
            lateness["ms"] = late
            self.queued_jobs[spec.id] -= 1
            self.running_jobs[spec.id] += 1
            self.turns.started(spec.id, run_id, began["monotonic"] + spec.deadline)
            started_row.append(StartedRun(run_id, started_at, late))
            self.writer.started(started_row[0])
            log.info(
                "run started",
                extra={"action": "run.start", "job": spec.id, "slot": scheduled_at.isoformat(),
                       "run_id": run_id, "trigger": claim.trigger, "lateness_ms": late,
                       "idempotency_key": key},
            )

        try:
            outcome = await self._wait_turn(run_id, spec, claim)
            if outcome is None:
                # A trigger's grace counts from when its turn came, not from the request.
                start_by = (scheduled_at if claim.trigger == "schedule" else self.now()) + (
                    spec.misfire_grace)
                on_send, on_attempt = self._attempt_writers(run_id)
                outcome = await self.executor.run(spec, scheduled_at, key, on_start=on_start,
                                                  start_by=start_by, on_send=on_send,
                                                  on_attempt=on_attempt)
        except Exception as exc:  # noqa: BLE001 - a bug in a kind must not kill the daemon
            outcome = Outcome(RunStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if "monotonic" in began:
                self.running_jobs[spec.id] -= 1
            else:
                self.queued_jobs[spec.id] -= 1
            self.in_flight.pop(run_id, None)
            self.turns.leave(spec.id, run_id)
        duration_ms = (int((time.monotonic() - began["monotonic"]) * 1000)
                       if "monotonic" in began else None)
        secrets = self.config().secrets.values_for_redaction()
        if outcome.error:
            outcome = replace(outcome, error=redact(outcome.error, secrets))
        # Logged before the store write, so the outcome is in the journal even if the
        # store is down and the daemon is stopped before the row can be written.
        log.log(
            20 if outcome.status is RunStatus.OK else 30,
            "run finished",
            extra={"action": "run.finish", "job": spec.id, "slot": scheduled_at.isoformat(),
                   "run_id": run_id, "trigger": claim.trigger, "idempotency_key": key,
                   "status": outcome.status.value,
                   "attempts": outcome.attempts, "http_status": outcome.http_status,
                   "duration_ms": duration_ms, "lateness_ms": lateness.get("ms"),
                   "error": outcome.error},
        )
        self.writer.finished(
            FinishedRun(run_id, spec.id, outcome, self.now(), duration_ms,
                        started_row[0] if started_row else None),
            SlotEvent(
                job_id=spec.id, status=outcome.status.value, scheduled_at=scheduled_at,
                run_id=run_id, trigger=claim.trigger, attempts=outcome.attempts,
                http_status=outcome.http_status, duration_ms=duration_ms,
                lateness_ms=lateness.get("ms"), error=outcome.error, message=outcome.message,
            ),
        )

    def _attempt_writers(self, run_id: int) -> tuple[OnSend, OnAttempt]:
        """Callbacks that put each attempt on record: a row when it is sent, its answer
        when it ends (both through the group commit, so the loop never waits on the store)."""

        def on_send(attempt: int, request_id: str | None, sent_at: datetime) -> None:
            self.writer.attempt(AttemptRow(run_id, attempt, request_id, sent_at))

        def on_attempt(record: AttemptRecord) -> None:
            # The kinds redact the secrets they were given; a python job's exception text
            # has seen none, so every secret cronhost knows is cut here, as for run errors.
            secrets = self.config().secrets.values_for_redaction()
            self.writer.attempt(AttemptRow(
                run_id=run_id, attempt=record.attempt, request_id=record.request_id,
                sent_at=record.sent_at, finished_at=record.finished_at,
                http_status=record.http_status, duration_ms=int(record.duration * 1000),
                error_kind=record.error_kind,
                error=redact(record.error, secrets) if record.error else None,
                retry_after_ms=(int(record.retry_after * 1000)
                                if record.retry_after is not None else None),
            ))

        return on_send, on_attempt

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
