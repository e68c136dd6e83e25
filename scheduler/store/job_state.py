"""The `job_state` table: what the daemon runs, paused flags and failure streaks.

Next fire times are read from APScheduler's job store table (plain SQL, so that
readers such as the dashboard never load APScheduler).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, column, inspect, select, table, update

from scheduler.store.rows import JobRow, utcnow
from scheduler.store.schema import APSCHEDULER_TABLE, job_state

__all__ = ["JobStateTable"]


class JobStateTable:
    """Store methods on `job_state` (mixed into Store)."""

    engine: Engine


    def sync_jobs(self, jobs: Iterable[dict[str, Any]]) -> None:
        """Record what the daemon now runs; jobs no longer configured are marked removed.

        Only rows that change are written, in one statement per kind of change, so a
        reload of 10,000 jobs that changes one writes one row.
        """
        now = utcnow()
        listed = {job["job_id"]: {**job, "removed": False} for job in jobs}
        fields = sorted({key for job in listed.values() for key in job})
        with self.engine.begin() as conn:
            known = {row["job_id"]: row for row in conn.execute(
                select(*(job_state.c[name] for name in fields))).mappings()}
            changed = [job for job_id, job in listed.items()
                       if job_id in known and dict(known[job_id]) != job]
            added = [job for job_id, job in listed.items() if job_id not in known]
            if changed:
                conn.execute(
                    update(job_state).where(job_state.c.job_id == bindparam("b_job_id"))
                    .values({name: bindparam(f"b_{name}") for name in fields if name != "job_id"}
                            | {"updated_at": now}),
                    [{f"b_{key}": value for key, value in job.items()} for job in changed],
                )
            if added:
                conn.execute(job_state.insert(), [{**job, "updated_at": now} for job in added])
            gone = [job_id for job_id, row in known.items()
                    if job_id not in listed and not row["removed"]]
            if gone:
                conn.execute(
                    update(job_state)
                    .where(job_state.c.job_id.in_(gone))
                    .values(removed=True, updated_at=now)
                )

    def set_paused(self, job_id: str, paused: bool, reason: str | None = None) -> bool:
        """Pause or resume a job; False when the store does not know it.

        ``reason`` says why cronhost paused a job itself (auto-disable); a pause without one
        (the operator's, or the daemon carrying out a pause command) keeps the reason already
        recorded, and a resume clears it.
        """
        values: dict[str, Any] = {"paused": paused, "updated_at": utcnow()}
        if not paused:
            values["paused_reason"] = None
        elif reason is not None:
            values["paused_reason"] = reason
        with self.engine.begin() as conn:
            result = conn.execute(
                update(job_state).where(job_state.c.job_id == job_id).values(**values)
            )
            return bool(result.rowcount)

    def paused_jobs(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(
                select(job_state.c.job_id).where(job_state.c.paused.is_(True))
            ).scalars())

    def jobs(self, include_removed: bool = False) -> list[JobRow]:
        next_runs = self.next_run_times()
        query = select(job_state).order_by(job_state.c.job_id)
        if not include_removed:
            query = query.where(job_state.c.removed.is_(False))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            JobRow(
                job_id=row["job_id"], kind=row["kind"], schedule=row["schedule"],
                timezone=row["timezone"], target=row["target"],
                description=row["description"], enabled=row["enabled"], paused=row["paused"],
                paused_reason=row["paused_reason"] if row["paused"] else None,
                removed=row["removed"], consecutive_failures=row["consecutive_failures"],
                last_success_at=row["last_success_at"], next_run_at=next_runs.get(row["job_id"]),
            )
            for row in rows
        ]

    def put_scheduled_jobs(self, rows: list[dict[str, Any]]) -> None:
        """Write APScheduler job rows (id, next_run_time, job_state) in one transaction,
        replacing rows with the same id (the engine builds them; see engine.sync)."""
        aps = table(APSCHEDULER_TABLE, column("id"), column("next_run_time"),
                    column("job_state"))
        with self.engine.begin() as conn:
            conn.execute(aps.delete().where(aps.c.id.in_([row["id"] for row in rows])))
            conn.execute(aps.insert(), rows)

    def next_run_times(self) -> dict[str, datetime]:
        """Next fire times from APScheduler's job store table (epoch seconds there)."""
        if APSCHEDULER_TABLE not in inspect(self.engine).get_table_names():
            return {}
        aps = table(APSCHEDULER_TABLE, column("id"), column("next_run_time"))
        with self.engine.connect() as conn:
            return {
                job_id: datetime.fromtimestamp(float(ts), UTC)
                for job_id, ts in conn.execute(select(aps.c.id, aps.c.next_run_time))
                if ts is not None
            }
