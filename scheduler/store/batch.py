"""The daemon's batched writes: one transaction per wake-up, one group commit per batch of runs.

Claim and advance (``commit_wakeup``): every slot that fell due in one wake-up of
the scheduler gets its row (UNIQUE(job_id, trigger, scheduled_at)) and every due
job's next fire time is written to APScheduler's job table, in ONE transaction.
Both land or neither does: if neither, the slots are still due when the daemon
next looks (or after a restart) and run once then.

Group commit (``write_runs``): runs that started (queued → running), attempts sent
and ended, and runs that finished, as many as are ready, in one transaction, with the
jobs' failure streaks.

Both are meant for one writer thread (``scheduler.store.worker.StoreThread``), so
the daemon's writes never fight each other for SQLite's single write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    LargeBinary,
    String,
    Unicode,
    bindparam,
    case,
    column,
    func,
    table,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from jobs.outcome import Outcome, RunStatus
from scheduler.schedule import slot_key
from scheduler.store.attempts import AttemptRow, write_attempts
from scheduler.store.control import lease_held
from scheduler.store.rows import JobAdvance, SlotClaim, iso, json_or_none
from scheduler.store.schema import APSCHEDULER_TABLE, job_state, runs

__all__ = ["BatchWrites", "FinishedRun", "LeaseGone", "MissedBatch", "SlotKey", "StartedRun"]

SlotKey = tuple[str, str, datetime]  # (job_id, trigger, scheduled_at)

# Past this many missed slots of one job in one go, one summary row stands for them all.
MISSED_ROWS_CAP = 1000

class LeaseGone(Exception):  # noqa: N818 - what happened, not an error of the code
    """The claim transaction found this node's lease gone; it was rolled back."""


# Appended to the error of a run whose outcome came after another node marked it abandoned.
LATE_OUTCOME = ("recorded late: the node that took the lead had marked this run abandoned "
                "(its node was frozen or cut off past the deadline); this is the answer the "
                "run got, so do not re-run it for the abandonment alone")

_aps_jobs = table(APSCHEDULER_TABLE, column("id", Unicode), column("next_run_time"),
                  column("job_state", LargeBinary))


@dataclass(frozen=True)
class MissedBatch:
    job_id: str
    slots: list[datetime]
    reason: str


@dataclass(frozen=True)
class StartedRun:
    run_id: int
    started_at: datetime
    lateness_ms: int


@dataclass(frozen=True)
class FinishedRun:
    run_id: int
    job_id: str
    outcome: Outcome
    finished_at: datetime
    duration_ms: int | None
    started: StartedRun | None = None  # None: it never started (missed while queued)


class BatchWrites:
    """Batched write methods (mixed into Store)."""

    engine: Engine

    # -- claim and advance --------------------------------------------------------------

    def commit_wakeup(
        self,
        claims: Sequence[SlotClaim],
        missed: Sequence[MissedBatch],
        advances: Sequence[JobAdvance],
        *,
        daemon_id: str,
        now: datetime,
        lease_pid: int | None = None,
    ) -> tuple[dict[SlotKey, int], dict[str, int]]:
        """Write one wake-up; returns (run id of each claim written, missed slots recorded
        per job). A slot that already has a row (claimed before a crash, or by another
        daemon) is left as it is and not in the result.

        ``lease_pid`` (PostgreSQL): the server process of this node's lock session. Last
        in the transaction, the server is asked whether that process still holds the
        advisory lock; if not, everything is rolled back and LeaseGone raised. The node's
        own clock fences claims before the transaction; this closes a transaction that
        stalled (on a lock, a slow disk) while the lease ran out and another node led.
        """
        with self.engine.begin() as conn:
            claimed = self._insert_claims(conn, claims, daemon_id, now)
            recorded = {batch.job_id: 0 for batch in missed}
            for batch in missed:
                recorded[batch.job_id] += self._insert_missed_batch(conn, batch, daemon_id, now)
            self._advance_jobs(conn, advances)
            if lease_pid is not None and not lease_held(conn, lease_pid):
                raise LeaseGone(f"the lock session (server pid {lease_pid}) no longer holds it")
        return claimed, {job_id: count for job_id, count in recorded.items() if count}

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
        if not rows:
            return []
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        statement = (
            dialect.insert(runs)
            .on_conflict_do_nothing(index_elements=["job_id", "trigger", "scheduled_at"])
            .returning(runs.c.id, runs.c.job_id, runs.c.trigger, runs.c.scheduled_at,
                       runs.c.slot_count)
        )
        return list(conn.execute(statement, rows))

    def _insert_claims(
        self, conn: Connection, claims: Sequence[SlotClaim], daemon_id: str, now: datetime
    ) -> dict[SlotKey, int]:
        rows = []
        for claim in claims:
            decided = claim.status != RunStatus.QUEUED.value
            rows.append(dict(
                job_id=claim.job_id, trigger=claim.trigger, scheduled_at=claim.scheduled_at,
                status=claim.status, attempts=0, claimed_at=now,
                started_at=None, finished_at=now if decided else None,
                duration_ms=0 if decided else None, lateness_ms=None, error=claim.error,
                idempotency_key=claim.idempotency_key, daemon_id=daemon_id, slot_count=1,
                slot_until=None,
            ))
        return {(row.job_id, row.trigger, row.scheduled_at): int(row.id)
                for row in self._insert(conn, rows)}

    def _insert_missed_batch(
        self, conn: Connection, batch: MissedBatch, daemon_id: str, now: datetime
    ) -> int:
        ordered = sorted(batch.slots)
        if not ordered:
            return 0
        common = dict(trigger="schedule", status=RunStatus.MISSED.value, attempts=0,
                      claimed_at=None, started_at=None, finished_at=now, duration_ms=None,
                      lateness_ms=None, daemon_id=daemon_id)
        if len(ordered) > MISSED_ROWS_CAP:
            first, last = ordered[0], ordered[-1]
            rows = [dict(common, job_id=batch.job_id, scheduled_at=first, slot_count=len(ordered),
                         slot_until=last, idempotency_key=slot_key(batch.job_id, first),
                         error=f"{len(ordered)} slots from {iso(first)} to {iso(last)} did not "
                               f"run: {batch.reason}")]
        else:
            rows = [dict(common, job_id=batch.job_id, scheduled_at=slot, slot_count=1,
                         slot_until=None, idempotency_key=slot_key(batch.job_id, slot),
                         error=batch.reason)
                    for slot in ordered]
        return sum(int(row.slot_count) for row in self._insert(conn, rows))

    def _advance_jobs(self, conn: Connection, advances: Sequence[JobAdvance]) -> None:
        moved = [dict(b_id=a.job_id, b_next=a.next_run_time.timestamp(), b_state=a.job_state)
                 for a in advances if a.next_run_time is not None]
        if moved:
            conn.execute(
                update(_aps_jobs).where(_aps_jobs.c.id == bindparam("b_id"))
                .values(next_run_time=bindparam("b_next"), job_state=bindparam("b_state")),
                moved,
            )
        ended = [a.job_id for a in advances if a.next_run_time is None]
        if ended:  # a schedule with no next fire time (it can never fire again)
            conn.execute(_aps_jobs.delete().where(_aps_jobs.c.id.in_(ended)))

    # -- group commit of runs -----------------------------------------------------------

    def write_runs(
        self, started: Sequence[StartedRun], finished: Sequence[FinishedRun],
        attempts: Sequence[AttemptRow] = (),
    ) -> None:
        """Runs that started, attempts sent or ended (in the order they happened) and runs
        that finished since the last commit, in one transaction.

        A run that started and finished within one batch is written once, finished.
        """
        done = {run.run_id for run in finished}
        started = [run for run in started if run.run_id not in done]
        with self.engine.begin() as conn:
            if started:
                conn.execute(
                    update(runs)
                    .where(runs.c.id == bindparam("b_id"),
                           runs.c.status == RunStatus.QUEUED.value)
                    .values(status=RunStatus.RUNNING.value, started_at=bindparam("b_started"),
                            lateness_ms=bindparam("b_lateness")),
                    [dict(b_id=s.run_id, b_started=s.started_at, b_lateness=s.lateness_ms)
                     for s in started],
                )
            write_attempts(conn, attempts)
            if finished:
                conn.execute(
                    update(runs).where(runs.c.id == bindparam("b_id")).values(
                        started_at=func.coalesce(bindparam("b_started"), runs.c.started_at),
                        lateness_ms=func.coalesce(bindparam("b_lateness"), runs.c.lateness_ms),
                        status=bindparam("b_status"), attempts=bindparam("b_attempts"),
                        http_status=bindparam("b_http"), finished_at=bindparam("b_finished"),
                        duration_ms=bindparam("b_duration"),
                        # The answer stands (it is what the endpoint did), but a row another
                        # node had marked abandoned meanwhile says so: its alert went out.
                        error=case(
                            (runs.c.status == RunStatus.ABANDONED.value,
                             func.coalesce(bindparam("b_error", type_=String) + " · ", "")
                             + LATE_OUTCOME),
                            else_=bindparam("b_error", type_=String)),
                        message=bindparam("b_message"), data=bindparam("b_data"),
                        response_excerpt=bindparam("b_excerpt"),
                    ),
                    [_finished_values(run) for run in finished],
                )
                self._update_failure_streaks(conn, finished)

    def _update_failure_streaks(self, conn: Connection, finished: Sequence[FinishedRun]) -> None:
        # One statement per kind of change, for all jobs of the batch; in finishing order,
        # so a job whose batch holds "failed, ok, failed" ends it at 1.
        reset: dict[str, dict[str, Any]] = {}
        added: dict[str, int] = {}
        for run in finished:
            status = run.outcome.status
            if status is RunStatus.OK:
                reset[run.job_id] = {"b_job": run.job_id, "b_count": 0, "b_at": run.finished_at}
                added.pop(run.job_id, None)
            elif status in (RunStatus.FAILED, RunStatus.TIMEOUT):
                if run.job_id in reset:
                    reset[run.job_id]["b_count"] += 1
                else:
                    added[run.job_id] = added.get(run.job_id, 0) + 1
        if reset:
            conn.execute(
                update(job_state).where(job_state.c.job_id == bindparam("b_job")).values(
                    consecutive_failures=bindparam("b_count"),
                    last_success_at=bindparam("b_at")),
                list(reset.values()),
            )
        if added:
            conn.execute(
                update(job_state).where(job_state.c.job_id == bindparam("b_job")).values(
                    consecutive_failures=job_state.c.consecutive_failures + bindparam("b_count")),
                [{"b_job": job_id, "b_count": count} for job_id, count in added.items()],
            )


def _finished_values(run: FinishedRun) -> dict[str, Any]:
    outcome = run.outcome
    return dict(
        b_id=run.run_id, b_status=outcome.status.value,
        b_started=run.started.started_at if run.started else None,
        b_lateness=run.started.lateness_ms if run.started else None, b_attempts=outcome.attempts,
        b_http=outcome.http_status, b_finished=run.finished_at, b_duration=run.duration_ms,
        b_error=outcome.error, b_message=outcome.message, b_data=json_or_none(outcome.data),
        b_excerpt=outcome.response_excerpt,
    )
