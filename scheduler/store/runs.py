"""The `runs` table: claiming slots, recording how they ended, and reading history.

A slot is claimed by inserting its row: UNIQUE(job_id, trigger, scheduled_at)
makes a second claim of the same slot fail, whoever tries it. That constraint is
what keeps a run single across restarts, reloads and several daemons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from jobs.outcome import Outcome, RunStatus
from scheduler.schedule import slot_key
from scheduler.store.attempts import attempts_count, delete_attempts_of, last_attempt_status
from scheduler.store.rows import RunRow, iso, json_or_none, run_from_row, utcnow
from scheduler.store.schema import job_state, runs

__all__ = ["RunsTable"]


class RunsTable:
    """Store methods on the `runs` table (mixed into Store)."""

    engine: Engine


    def claim(
        self,
        *,
        job_id: str,
        trigger: str,
        scheduled_at: datetime,
        idempotency_key: str,
        daemon_id: str,
        started_at: datetime,
        status: RunStatus = RunStatus.RUNNING,
        error: str | None = None,
    ) -> int | None:
        """Insert the run row for a slot; None if the slot was claimed before."""
        lateness = int((started_at - scheduled_at).total_seconds() * 1000)
        finished = status is not RunStatus.RUNNING
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    runs.insert().values(
                        job_id=job_id,
                        trigger=trigger,
                        scheduled_at=scheduled_at,
                        status=status.value,
                        attempts=0,
                        started_at=started_at,
                        finished_at=started_at if finished else None,
                        duration_ms=0 if finished else None,
                        lateness_ms=lateness,
                        error=error,
                        idempotency_key=idempotency_key,
                        daemon_id=daemon_id,
                    )
                )
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            if self._slot_taken(job_id, trigger, scheduled_at):
                return None
            raise

    def _slot_taken(self, job_id: str, trigger: str, scheduled_at: datetime) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(
                select(runs.c.id).where(
                    runs.c.job_id == job_id, runs.c.trigger == trigger,
                    runs.c.scheduled_at == scheduled_at,
                )
            ).first() is not None

    def record_missed(
        self, job_id: str, slots: Sequence[datetime], reason: str, daemon_id: str | None = None
    ) -> int:
        """Record slots that did not run; slots already recorded are left as they are."""
        if not slots:
            return 0
        try:
            with self.engine.begin() as conn:
                return self._insert_missed(conn, job_id, slots, reason, daemon_id)
        except IntegrityError:
            # One of them was recorded before (a retry after an outage): fall back to one by one.
            recorded = 0
            for slot in slots:
                try:
                    with self.engine.begin() as conn:
                        recorded += self._insert_missed(conn, job_id, [slot], reason, daemon_id)
                except IntegrityError:
                    pass
            return recorded

    # Past this many missed slots of one job in one go, one summary row stands for them all.
    MISSED_ROWS_CAP = 1000

    def _insert_missed(
        self, conn: Any, job_id: str, slots: Sequence[datetime], reason: str | None,
        daemon_id: str | None,
    ) -> int:
        now = utcnow()
        ordered = sorted(slots)
        if len(ordered) > self.MISSED_ROWS_CAP:
            first, last = ordered[0], ordered[-1]
            conn.execute(runs.insert().values(
                job_id=job_id, trigger="schedule", scheduled_at=first, status="missed",
                attempts=0, finished_at=now, slot_count=len(ordered), slot_until=last,
                error=f"{len(ordered)} slots from {iso(first)} to {iso(last)} did not run: {reason}",
                idempotency_key=slot_key(job_id, first), daemon_id=daemon_id,
            ))
            return len(ordered)
        conn.execute(runs.insert(), [
            dict(
                job_id=job_id, trigger="schedule", scheduled_at=slot, status="missed",
                attempts=0, finished_at=now, error=reason, slot_count=1,
                idempotency_key=slot_key(job_id, slot), daemon_id=daemon_id,
            )
            for slot in ordered
        ])
        return len(ordered)

    def finish(
        self, run_id: int, outcome: Outcome, finished_at: datetime, duration_ms: int | None = None
    ) -> None:
        """Record how a run ended; ``duration_ms`` is the runner's own measure when it has one."""
        with self.engine.begin() as conn:
            if duration_ms is None:
                started = conn.execute(
                    select(runs.c.started_at).where(runs.c.id == run_id)
                ).scalar()
                duration_ms = int((finished_at - started).total_seconds() * 1000) if started else None
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    status=outcome.status.value,
                    attempts=outcome.attempts,
                    http_status=outcome.http_status,
                    finished_at=finished_at,
                    duration_ms=duration_ms,
                    error=outcome.error,
                    message=outcome.message,
                    data=json_or_none(outcome.data),
                    response_excerpt=outcome.response_excerpt,
                )
            )
            job_id = conn.execute(select(runs.c.job_id).where(runs.c.id == run_id)).scalar_one()
            self._update_failure_streak(conn, job_id, outcome.status, finished_at)

    def _update_failure_streak(
        self, conn: Any, job_id: str, status: RunStatus, finished_at: datetime
    ) -> None:
        if status is RunStatus.OK:
            values: dict[str, Any] = {"consecutive_failures": 0, "last_success_at": finished_at}
        elif status in (RunStatus.FAILED, RunStatus.TIMEOUT):
            values = {"consecutive_failures": job_state.c.consecutive_failures + 1}
        else:
            return
        conn.execute(update(job_state).where(job_state.c.job_id == job_id).values(**values))

    def abandon_running(
        self, reason: str, *, except_daemon: str | None = None, only: Iterable[int] | None = None,
    ) -> list[RunRow]:
        """Mark runs a daemon that is gone left in flight (`queued` or `running`) `abandoned`.

        A `queued` one too: its start may have been on its way to the store when the
        daemon died, so whether it was sent is not known. ``only``: just these runs
        (a new leader abandons another node's runs once they are surely over).
        """
        now = utcnow()
        condition = _in_flight(except_daemon, only)
        if condition is None:
            return []
        with self.engine.begin() as conn:
            rows = conn.execute(select(runs).where(condition)).mappings().all()
            if rows:
                conn.execute(
                    update(runs)
                    .where(runs.c.id.in_([row["id"] for row in rows]),
                           runs.c.status.in_((RunStatus.QUEUED.value, RunStatus.RUNNING.value)))
                    .values(
                        status=RunStatus.ABANDONED.value,
                        finished_at=now,
                        error=f"{reason} (found at {now.isoformat(timespec='seconds')})",
                        # What was sent before the crash, and the last answer it had.
                        attempts=attempts_count(),
                        http_status=func.coalesce(last_attempt_status(), runs.c.http_status),
                    )
                )
        return [run_from_row(row) for row in rows]

    def in_flight_runs(
        self, *, except_daemon: str | None = None, only: Iterable[int] | None = None,
    ) -> list[tuple[RunRow, str | None]]:
        """Runs `queued` or `running`, with the daemon that claimed them (other daemons')."""
        condition = _in_flight(except_daemon, only)
        if condition is None:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).where(condition)).mappings().all()
        return [(run_from_row(row), row["daemon_id"]) for row in rows]

    def abandon_runs(self, run_ids: Iterable[int], reason: str) -> None:
        """At shutdown: runs cut short are `abandoned`; slots that never started are `missed`."""
        ids = list(run_ids)
        if not ids:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(ids), runs.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.ABANDONED.value, finished_at=now, error=reason,
                        attempts=attempts_count(),
                        http_status=func.coalesce(last_attempt_status(), runs.c.http_status))
            )
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(ids), runs.c.status == RunStatus.QUEUED.value)
                .values(status=RunStatus.MISSED.value, finished_at=now,
                        error="not run: the daemon stopped before this slot got a place to "
                              "run ([daemon] max_in_flight)")
            )

    def run(self, run_id: int) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        return run_from_row(row) if row else None

    def history(
        self, job_id: str | None = None, limit: int = 50, since: datetime | None = None
    ) -> list[RunRow]:
        """Newest first, by slot."""
        query = select(runs)
        if job_id is not None:
            query = query.where(runs.c.job_id == job_id)
        if since is not None:
            query = query.where(runs.c.scheduled_at >= since)
        query = query.order_by(runs.c.scheduled_at.desc(), runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [run_from_row(row) for row in conn.execute(query).mappings()]

    def runs_for_slots(self, job_id: str, since: datetime, until: datetime) -> list[RunRow]:
        query = (
            select(runs)
            .where(runs.c.job_id == job_id, runs.c.scheduled_at >= since,
                   runs.c.scheduled_at <= until)
            .order_by(runs.c.scheduled_at)
        )
        with self.engine.connect() as conn:
            return [run_from_row(row) for row in conn.execute(query).mappings()]

    def ran_ok_under_key(self, job_id: str, key: str, since: datetime) -> bool:
        """Whether any run of ``job_id`` since ``since`` ended ok under this Idempotency-Key:
        the slot's own run or a re-run of it (`trigger --slot` reuses the slot's key)."""
        query = (
            select(runs.c.id)
            .where(runs.c.job_id == job_id, runs.c.scheduled_at >= since,
                   runs.c.idempotency_key == key, runs.c.status == RunStatus.OK.value)
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def latest_runs(self, job_ids: Iterable[str]) -> dict[str, RunRow]:
        """The newest run of each job (one indexed lookup per job, cheap at any history size).

        The statement is built once and executed per job with a bound id: building a
        SQLAlchemy select costs more than SQLite's lookup, and `status` with 10,000 jobs
        spent seconds building them.
        """
        query = (
            select(runs)
            .where(runs.c.job_id == bindparam("job_id"))
            .order_by(runs.c.scheduled_at.desc(), runs.c.id.desc())
            .limit(1)
        )
        latest: dict[str, RunRow] = {}
        with self.engine.connect() as conn:
            for job_id in job_ids:
                row = conn.execute(query, {"job_id": job_id}).mappings().first()
                if row:
                    latest[job_id] = run_from_row(row)
        return latest

    def counts_since(self, since: datetime) -> dict[str, dict[str, int]]:
        """{job_id: {status: slots}} for slots at or after ``since``.

        One range search of ix_runs_job_scheduled per job: a single
        ``WHERE scheduled_at >= ? GROUP BY job_id, status`` is planned by SQLite as a scan
        of the whole index (~90 ms at a million runs, whatever the window); this reads
        only the window (~2 ms for a day of LeadMap's jobs). job_state keeps removed
        jobs, so every job that has runs is listed.
        """
        query = (
            select(runs.c.status, func.sum(runs.c.slot_count))
            .where(runs.c.job_id == bindparam("job_id"), runs.c.scheduled_at >= since)
            .group_by(runs.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            job_ids = conn.execute(select(job_state.c.job_id)).scalars().all()
            for job_id in job_ids:
                rows = conn.execute(query, {"job_id": job_id})
                for status, count in rows:
                    counts.setdefault(job_id, {})[status] = int(count or 0)
        return counts

    def prune(self, before: datetime, batch: int = 5000) -> int:
        """Delete finished runs older than ``before`` in small batches (never holds a long lock)."""
        deleted = 0
        while True:
            with self.engine.begin() as conn:
                ids = conn.execute(
                    select(runs.c.id)
                    .where(runs.c.scheduled_at < before, runs.c.status != RunStatus.RUNNING.value)
                    .limit(batch)
                ).scalars().all()
                if not ids:
                    return deleted
                delete_attempts_of(conn, ids)
                conn.execute(delete(runs).where(runs.c.id.in_(ids)))
                deleted += len(ids)


    def recent_durations(self, job_ids: Iterable[str], limit: int = 20) -> dict[str, list[int]]:
        """{job_id: durations in ms of its last ``limit`` finished runs, oldest first}.

        Only runs that really called the job count (ok, failed, timeout): skipped and
        missed slots have no meaningful duration and would flatten the trend.

        One query per job walking ix_runs_job_scheduled backwards, so the cost is
        ``limit`` index entries per job whatever the history size (a window function
        over all runs would read every row).
        """
        durations: dict[str, list[int]] = {}
        with self.engine.connect() as conn:
            for job_id in job_ids:
                values = conn.execute(
                    select(runs.c.duration_ms)
                    .where(
                        runs.c.job_id == job_id,
                        runs.c.status.in_(("ok", "failed", "timeout")),
                        runs.c.duration_ms.is_not(None),
                    )
                    .order_by(runs.c.scheduled_at.desc())
                    .limit(limit)
                ).scalars().all()
                durations[job_id] = [int(value) for value in reversed(values)]
        return durations


def _in_flight(
    except_daemon: str | None, only: Iterable[int] | None
) -> ColumnElement[bool] | None:
    """Runs still `queued` or `running` (not claimed by ``except_daemon``; among ``only``);
    None when ``only`` is empty, so nothing can match."""
    condition: ColumnElement[bool] = runs.c.status.in_(
        (RunStatus.QUEUED.value, RunStatus.RUNNING.value))
    if except_daemon is not None:
        condition = and_(
            condition, or_(runs.c.daemon_id.is_(None), runs.c.daemon_id != except_daemon)
        )
    if only is not None:
        ids = list(only)
        if not ids:
            return None
        condition = and_(condition, runs.c.id.in_(ids))
    return condition
