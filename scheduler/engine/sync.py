"""Keeps APScheduler's persistent jobs in step with the configured job specs.

APScheduler's SQLAlchemy job store remembers each job's next fire time across
restarts: that is what makes catch-up after downtime possible. A reload is a
diff: unchanged jobs keep their next fire time, changed schedules are
rescheduled, removed (or disabled) jobs are removed.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler

from scheduler.config import JobSpec
from scheduler.engine.legacy import FIRE_SLOT, upgrade_stored_jobs
from scheduler.engine.scheduler import CronhostScheduler, OnWake, SlotExecutor
from scheduler.engine.triggers import trigger_for
from scheduler.store import Store
from scheduler.store.schema import APSCHEDULER_TABLE
from scheduler.store.worker import StoreThread


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(names)} {label}"
            for label, names in (
                ("added", self.added),
                ("rescheduled", self.rescheduled),
                ("removed", self.removed),
                ("unchanged", self.unchanged),
            )
            if names
        ]
        return ", ".join(parts) or "no jobs"


class Engine:
    def __init__(self, store: Store, on_wake: OnWake, store_thread: StoreThread) -> None:
        self._store = store
        self.scheduler = CronhostScheduler(
            on_wake=on_wake,
            store_thread=store_thread,
            jobstores={"default": SQLAlchemyJobStore(engine=store.engine, tablename=APSCHEDULER_TABLE)},
            executors={"default": SlotExecutor()},
            job_defaults={
                # The runner sees every due slot and decides (grace, coalescing, overlap).
                "coalesce": False,
                "misfire_grace_time": None,
                "max_instances": 1,
            },
            timezone=UTC,
            # While the store is down, look again every 2 s rather than APScheduler's 10 s.
            jobstore_retry_interval=2,
        )

    def start(self, specs: Iterable[JobSpec], paused: set[str]) -> Changes:
        # Before APScheduler loads a stored job: it drops those whose pickle does not load.
        upgrade_stored_jobs(self._store.engine)
        # Paused first, so that syncing the jobs cannot fire anything before all are known.
        if self.scheduler.running:  # a first lead that failed after this point: again
            self.scheduler.pause()
        else:
            self.scheduler.start(paused=True)
        changes = self.apply(specs, paused)
        self.scheduler.resume()
        return changes

    def apply(
        self, specs: Iterable[JobSpec], paused: set[str],
        previous: Iterable[JobSpec] | None = None,
    ) -> Changes:
        """Bring the job store in line with ``specs``.

        With ``previous`` (the specs the engine holds now, on a reload) only jobs whose
        timing changed are touched; without it (start-up, or after a reload that failed
        halfway) every stored job is read back and compared.
        """
        wanted = {spec.id: spec for spec in specs if spec.enabled}
        if previous is not None:
            return self._apply_diff(wanted, {s.id: s for s in previous if s.enabled}, paused)
        changes = Changes()
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        for job_id in existing.keys() - wanted.keys():
            self.scheduler.remove_job(job_id)
            changes.removed.append(job_id)
        new = [spec for job_id, spec in wanted.items() if job_id not in existing]
        self._add_many(new, paused)
        changes.added += [spec.id for spec in new]
        for job_id, spec in wanted.items():
            job = existing.get(job_id)
            if job is None:
                continue
            trigger = trigger_for(spec)
            if job.trigger != trigger:
                self.scheduler.reschedule_job(job_id, trigger=trigger)
                changes.rescheduled.append(job_id)
            else:
                changes.unchanged.append(job_id)
            if (job.next_run_time is None) != (job_id in paused):
                self.set_paused(job_id, job_id in paused)
        return changes

    def _apply_diff(
        self, wanted: dict[str, JobSpec], before: dict[str, JobSpec], paused: set[str]
    ) -> Changes:
        changes = Changes()
        for job_id in before.keys() - wanted.keys():
            self.scheduler.remove_job(job_id)
            changes.removed.append(job_id)
        new = [spec for job_id, spec in wanted.items() if job_id not in before]
        self._add_many(new, paused)
        changes.added += [spec.id for spec in new]
        for job_id, spec in wanted.items():
            old = before.get(job_id)
            if old is None:
                continue
            if (old.schedule, old.every, old.timezone) != (spec.schedule, spec.every,
                                                              spec.timezone):
                self.scheduler.reschedule_job(job_id, trigger=trigger_for(spec))
                self.set_paused(job_id, job_id in paused)
                changes.rescheduled.append(job_id)
            else:
                changes.unchanged.append(job_id)
        return changes

    def _add_many(self, specs: list[JobSpec], paused: set[str]) -> None:
        """Add jobs to APScheduler's job store in one transaction (add_job writes one each).

        Built as APScheduler's add_job builds them (its Job, its pickled state), so the
        scheduler reads them back like any other. A paused job is stored without a next
        fire time from the start: adding it, then pausing it, would leave a moment in
        which its slot could fire.
        """
        if not specs:
            return
        now = datetime.now(UTC)
        rows = []
        for spec in specs:
            trigger = trigger_for(spec)
            next_run = None if spec.id in paused else trigger.get_next_fire_time(None, now)
            job = Job(self.scheduler, id=spec.id, name=spec.id, func=FIRE_SLOT, args=(spec.id,),
                      kwargs={}, trigger=trigger, executor="default", misfire_grace_time=None,
                      coalesce=False, max_instances=1, next_run_time=next_run)
            rows.append({"id": spec.id, "next_run_time": next_run.timestamp() if next_run else None,
                         "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL)})
        self._store.put_scheduled_jobs(rows)
        self.scheduler.wakeup()

    def set_paused(self, job_id: str, paused: bool) -> bool:
        """Pause keeps no next fire time, so paused slots are neither run nor counted missed."""
        job = self.scheduler.get_job(job_id)
        if job is None:
            return False
        if paused and job.next_run_time is not None:
            self.scheduler.pause_job(job_id)
        elif not paused and job.next_run_time is None:
            self.scheduler.resume_job(job_id)
        return True

    async def shutdown(self) -> None:
        """Stop firing: no wake-up starts after this, and one in progress has finished."""
        if self.scheduler.running:
            # APScheduler's AsyncIOScheduler.shutdown only queues the real shutdown on the
            # loop; the state must be STOPPED now, so no wake-up claims slots after it.
            BaseScheduler.shutdown(self.scheduler, wait=False)
            self.scheduler._stop_timer()
        await self.scheduler.wait_idle()
