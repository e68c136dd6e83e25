"""Every store read one dashboard refresh makes, gathered into one immutable snapshot.

`fetch_snapshot` runs in a thread worker (it blocks on the database); the UI
thread only ever renders a finished `DashboardSnapshot`, so a slow query can
delay the next picture but never freeze the keyboard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import CronhostError
from scheduler.store import Command, DaemonInfo, RunRow, Store
from scheduler.store.control import NodeInfo
from scheduler.views import RAN, JobStatus, job_statuses

HISTORY_LIMIT = 50
RUNS_LIMIT = 500  # the runs screen: a day of a minutely job, and then some
TREND_LENGTH = 20
RECENT_COMMANDS = 20
FAILED = ("failed", "timeout")


@dataclass(frozen=True)
class StatusCounts:
    """Slots in a time window, by what became of them."""

    runs: int = 0
    ok: int = 0
    failed: int = 0
    missed: int = 0
    abandoned: int = 0
    skipped: int = 0

    @classmethod
    def total(cls, counts: Mapping[str, Mapping[str, int]]) -> StatusCounts:
        """Sum Store.counts_since() over all jobs."""
        by_status: dict[str, int] = {}
        for per_job in counts.values():
            for status, count in per_job.items():
                by_status[status] = by_status.get(status, 0) + count
        return cls(
            runs=sum(by_status.get(status, 0) for status in RAN),
            ok=by_status.get("ok", 0),
            failed=sum(by_status.get(status, 0) for status in FAILED),
            missed=by_status.get("missed", 0),
            abandoned=by_status.get("abandoned", 0),
            skipped=by_status.get("skipped", 0),
        )


@dataclass(frozen=True)
class Summary:
    last_hour: StatusCounts = field(default_factory=StatusCounts)
    last_day: StatusCounts = field(default_factory=StatusCounts)


@dataclass(frozen=True)
class JobView:
    """One row of the jobs table: the shared status row plus what only the dashboard shows."""

    status: JobStatus
    trend: tuple[int, ...] = ()
    # Commands for this job the daemon has not finished yet (from the CLI or from us).
    pending: tuple[Command, ...] = ()

    @property
    def job_id(self) -> str:
        return self.status.job_id

    @property
    def failing(self) -> bool:
        """The last run went wrong."""
        return self.status.last_status in (*FAILED, "abandoned") or (
            self.status.consecutive_failures > 0
        )

    @property
    def flaky(self) -> bool:
        """Not every run of the last 24 h went well (the last one may have)."""
        return self.status.ok_24h < self.status.runs_24h

    @property
    def needs_a_look(self) -> bool:
        """What `f` stops at: a job failing every other run counts every time."""
        return self.failing or self.flaky


@dataclass(frozen=True)
class DashboardSnapshot:
    taken_at: datetime
    config_path: str
    store_url: str
    # Set when the store cannot be read at all (older/newer schema, unreachable database).
    problem: str | None = None
    # The problem may pass by itself (a locked file, a dropped connection): the
    # dashboard keeps showing the last good picture meanwhile.
    transient: bool = False
    # False until a daemon has created the schema in this database.
    initialized: bool = False
    daemon: DaemonInfo | None = None
    jobs: tuple[JobView, ...] = ()
    history_job: str | None = None
    history: tuple[RunRow, ...] = ()
    summary: Summary = field(default_factory=Summary)
    # The current state of commands this dashboard is waiting on, by id.
    watched: tuple[Command, ...] = ()
    # Every daemon up on the store, the leader first (two VMs on one PostgreSQL).
    nodes: tuple[NodeInfo, ...] = ()

    @property
    def daemon_up(self) -> bool:
        return self.daemon is not None and self.daemon.is_up(self.taken_at)

    def job(self, job_id: str | None) -> JobView | None:
        return next((job for job in self.jobs if job.job_id == job_id), None)


def fetch_snapshot(
    store: Store,
    *,
    now: datetime,
    config_path: str,
    selected_job: str | None = None,
    watched: Iterable[int] = (),
    history_limit: int = HISTORY_LIMIT,
) -> DashboardSnapshot:
    """All reads of one refresh. Store problems come back as ``problem``, never raised."""
    base = DashboardSnapshot(taken_at=now, config_path=config_path, store_url=store.url_for_humans)
    try:
        if not store.check_readable():
            return base
        return _read(store, base, now, selected_job, tuple(watched), history_limit)
    except CronhostError as exc:
        return replace(base, problem=str(exc))
    except SQLAlchemyError as exc:
        # E.g. "database is locked" past the busy timeout: the next refresh retries.
        first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
        return replace(base, initialized=True, transient=True,
                       problem=f"cannot read the store {store.url_for_humans}: "
                               f"{first_line[0] if first_line else type(exc).__name__}")


def _read(
    store: Store, base: DashboardSnapshot, now: datetime, selected_job: str | None,
    watched: tuple[int, ...], history_limit: int,
) -> DashboardSnapshot:
    # The dashboard shows what the daemon really runs (job_state), not what the file
    # says now: that is the truth after a failed reload too.
    last_day = store.counts_since(now - timedelta(hours=24))  # read once: table and summary
    statuses = job_statuses(store, None, now, counts_24h=last_day)
    ids = [status.job_id for status in statuses]
    trends = store.recent_durations(ids, TREND_LENGTH)
    tracked = tuple(
        command for command in (store.command(command_id) for command_id in watched)
        if command is not None
    )
    # Not done yet, whoever sent it (this dashboard, another one, the CLI): untaken ones
    # from pending_commands(), and taken ones (the daemon is on it) from the newest few.
    open_commands = {command.id: command for command in store.pending_commands()}
    for command in (*store.recent_commands(RECENT_COMMANDS), *tracked):
        if command.state in ("pending", "taken"):
            open_commands[command.id] = command
    pending: dict[str, list[Command]] = {}
    for command_id in sorted(open_commands):
        command = open_commands[command_id]
        if command.job_id is not None:
            pending.setdefault(command.job_id, []).append(command)
    history_job = selected_job if selected_job in ids else (ids[0] if ids else None)
    history = store.history(history_job, limit=history_limit) if history_job else []
    summary = Summary(
        last_hour=StatusCounts.total(store.counts_since(now - timedelta(hours=1))),
        last_day=StatusCounts.total(last_day),
    )
    return replace(
        base,
        initialized=True,
        daemon=store.latest_daemon(),
        jobs=tuple(
            JobView(status, tuple(trends.get(status.job_id, ())),
                    tuple(pending.get(status.job_id, ())))
            for status in statuses
        ),
        history_job=history_job,
        history=tuple(history),
        summary=summary,
        watched=tracked,
        nodes=_nodes(store),
    )


def _nodes(store: Store) -> tuple[NodeInfo, ...]:
    try:
        return tuple(store.nodes())
    except SQLAlchemyError:  # a store from before v7 has no roles: its one daemon is shown
        return ()


@dataclass(frozen=True)
class RunsSnapshot:
    """One job's runs, for the screen that Enter on a job opens."""

    job_id: str
    taken_at: datetime
    runs: tuple[RunRow, ...] = ()
    problem: str | None = None


def fetch_runs(store: Store, job_id: str, now: datetime,
               limit: int = RUNS_LIMIT) -> RunsSnapshot:
    """The newest ``limit`` runs of one job. Store problems come back as ``problem``."""
    try:
        if not store.check_readable():
            return RunsSnapshot(job_id, now, problem="no store yet")
        return RunsSnapshot(job_id, now, tuple(store.history(job_id, limit=limit)))
    except (CronhostError, SQLAlchemyError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1]
        return RunsSnapshot(job_id, now, problem=first[0] if first else type(exc).__name__)
