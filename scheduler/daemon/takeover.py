"""What a new leader does with the runs other nodes left in flight.

A run that another node claimed counts as running until it finishes or is surely
over: its node is known to be dead (its row says it stopped, or its process is
gone on this host; on SQLite the lock itself says every other daemon is dead), or
its deadline, plus FOREIGN_MARGIN, has passed. Only then is it marked abandoned:
a leader that was merely cut off from PostgreSQL, or frozen, still records what
its runs answered. While such a run counts as running, a job with
``allow_overlap = false`` starts no second run beside it, on any node.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.config import Config
from scheduler.store import DaemonInfo, RunRow, Store

__all__ = ["FOREIGN_MARGIN", "FOREIGN_POLL_SECONDS", "ForeignRuns", "TakeoverBooks"]

# Past a run's deadline: for clocks that differ between nodes and an outcome on its way.
FOREIGN_MARGIN = timedelta(seconds=15)
# How often a leader looks whether another node's runs have finished (only while some are).
FOREIGN_POLL_SECONDS = 2.0

ABANDONED_DEAD = (
    "abandoned: the daemon that ran it stopped (crash, kill or power loss) before the run "
    "finished; not re-run automatically: `cronhost trigger JOB --slot SLOT` re-runs it under "
    "its Idempotency-Key"
)
ABANDONED_EXPIRED = (
    "abandoned: the node that ran it lost the lead and had not recorded an outcome by the "
    "job's deadline (plus {margin} s); not re-run automatically: `cronhost trigger JOB --slot "
    "SLOT` re-runs it under its Idempotency-Key"
)


@dataclass(frozen=True)
class TakeoverBooks:
    """The outcome of one look at other nodes' runs (computed in the store thread)."""

    abandoned: list[RunRow]
    live: dict[int, tuple[str, datetime]]  # run id -> (job id, counts as running until)


def counts_until(run: RunRow, config: Config) -> datetime | None:
    """Until when another node's run counts as running; None when its job is gone."""
    spec = config.job(run.job_id)
    if spec is None:
        return None
    if run.started_at is not None:
        start = run.started_at
    else:  # queued: it may still start, up to the job's misfire_grace after its slot
        basis = run.scheduled_at if run.trigger == "schedule" else (run.claimed_at
                                                                     or run.scheduled_at)
        start = basis + spec.misfire_grace
    return start + timedelta(seconds=spec.deadline) + FOREIGN_MARGIN


def _surely_dead(info: DaemonInfo | None) -> bool:
    if info is None:
        return False
    if info.stopped_at is not None or info.process_gone():
        return True
    # Our own pid on this host, under another daemon id: a past life (a container restart).
    return info.hostname == socket.gethostname() and info.pid == os.getpid()


def look(store: Store, config: Config, daemon_id: str, *, exclusive: bool, now: datetime,
         only: list[int] | None = None) -> TakeoverBooks:
    """In the store thread: abandon what is surely over, return what still counts as running.

    ``exclusive``: the lock proves every other daemon dead (SQLite's flock).
    """
    found = store.in_flight_runs(except_daemon=daemon_id, only=only)
    infos = store.daemons_by_id({owner for _, owner in found if owner})
    dead, expired = [], []
    live: dict[int, tuple[str, datetime]] = {}
    for run, owner in found:
        until = counts_until(run, config)
        if exclusive or _surely_dead(infos.get(owner or "")) or until is None:
            dead.append(run.id)
        elif until <= now:
            expired.append(run.id)
        else:
            live[run.id] = (run.job_id, until)
    abandoned = store.abandon_running(ABANDONED_DEAD, except_daemon=daemon_id, only=dead)
    abandoned += store.abandon_running(
        ABANDONED_EXPIRED.format(margin=int(FOREIGN_MARGIN.total_seconds())),
        except_daemon=daemon_id, only=expired)
    if only is None:
        # The audit log says which daemon died unannounced, not only what it left.
        dead_ids = set(dead)
        owners = Counter(owner for run, owner in found if run.id in dead_ids)
        for info in store.unclosed_daemons(daemon_id):
            if exclusive or _surely_dead(info):
                store.record_dead_daemon(info, owners[info.id], found_by=daemon_id)
    return TakeoverBooks(abandoned, live)


@dataclass
class ForeignRuns:
    """Other nodes' runs that count as running here; kept in the runner's running_jobs.

    Only touched on the event loop, as the runner's own counts are.
    """

    running_jobs: Counter[str]
    live: dict[int, tuple[str, datetime]] = field(default_factory=dict)

    def replace(self, live: dict[int, tuple[str, datetime]]) -> None:
        before = Counter(job_id for job_id, _ in self.live.values())
        after = Counter(job_id for job_id, _ in live.values())
        for job_id in before.keys() | after.keys():
            self.running_jobs[job_id] += after[job_id] - before[job_id]
        self.live = dict(live)

    def forget(self) -> None:
        self.replace({})

    def __bool__(self) -> bool:
        return bool(self.live)
