"""The run store's API: every read and write the daemon, the CLI and the dashboard make."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError

from jobs.outcome import Outcome, RunStatus
from scheduler.errors import SchemaError, StoreError, first_line
from scheduler.slots import slot_key
from scheduler.store import migrations
from scheduler.store.schema import APSCHEDULER_TABLE, commands, daemons, job_state, runs

# A daemon whose heartbeat is older than this is taken for dead.
HEARTBEAT_STALE_AFTER = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class RunRow:
    id: int
    job_id: str
    trigger: str
    scheduled_at: datetime
    status: str
    attempts: int
    http_status: int | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    lateness_ms: int | None
    error: str | None
    message: str | None
    data: str | None
    response_excerpt: str | None
    idempotency_key: str
    slot_count: int
    slot_until: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` form: scripts parse these names (README lists them)."""
        row = asdict(self)
        return {
            key: iso(value) if isinstance(value, datetime) else value
            for key, value in row.items()
        }


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: str
    schedule: str
    timezone: str
    target: str
    description: str
    enabled: bool
    paused: bool
    removed: bool
    consecutive_failures: int
    last_success_at: datetime | None
    next_run_at: datetime | None


@dataclass(frozen=True)
class DaemonInfo:
    id: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    last_beat_at: datetime
    stopped_at: datetime | None
    config_path: str
    config_loaded_at: datetime | None
    config_error: str | None
    config_error_at: datetime | None
    status_line: str | None

    def is_up(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if self.stopped_at is not None or now - self.last_beat_at >= HEARTBEAT_STALE_AFTER:
            return False
        # On the daemon's own host a killed daemon shows as down at once, not 30 s later.
        return self.hostname != socket.gethostname() or _process_exists(self.pid)


@dataclass(frozen=True)
class Command:
    id: int
    kind: str
    job_id: str | None
    requested_at: datetime
    state: str
    handled_at: datetime | None
    result: str | None
    run_id: int | None
    slot: datetime | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while the daemon writes, and makes writes cheaper.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


BAD_URL = (
    "is not a SQLAlchemy database URL such as sqlite:////var/lib/cronhost/cronhost.db or "
    "postgresql+psycopg://user@host/db (not repeated here: it may hold a password)"
)


def parse_store_url(url: str) -> URL:
    """The URL as cronhost uses it; StoreError (never echoing the URL) if it is unusable."""
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):
            # The URL forms operators copy from elsewhere; psycopg 3 is the driver cronhost ships.
            parsed = parsed.set(drivername="postgresql+psycopg")
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError):
        raise StoreError(f"[store] url {BAD_URL}") from None
    return parsed


def create_store_engine(url: str) -> Engine:
    """An engine for the store URL. Error messages never repeat the URL: it may hold a password."""
    parsed = parse_store_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A short busy timeout: a locked file must not freeze the event loop for long;
        # writes that fail are retried by the caller with backoff.
        engine = create_engine(parsed, connect_args={"timeout": 2.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # Store calls run on the event loop: a half-open connection or a stuck statement
        # must fail within seconds, not hang the scheduler.
        connect_args = {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "options": "-c statement_timeout=10000",
        }
    try:
        # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced
        # instead of failing the next write.
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot use the [store] url: {type(exc).__name__}: {exc}") from None


class Store:
    """One database holding runs, job state, commands and daemon heartbeats."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self.url_for_humans = self.describe_url(url)

    def missing(self) -> bool:
        """True for a SQLite store whose file does not exist yet (readers must not create it)."""
        if self.engine.url.get_backend_name() != "sqlite":
            return False
        database = self.engine.url.database
        return bool(database) and database != ":memory:" and not Path(str(database)).exists()

    @staticmethod
    def describe_url(url: str) -> str:
        """The URL with any password hidden, fit for logs and the dashboard."""
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            return "<invalid URL>"

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema (the daemon does this on start)."""
        try:
            return migrations.migrate(self.engine, self.url_for_humans)
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url_for_humans}: {first_line(exc)}") from None

    def check_readable(self) -> bool:
        """For readers: False on an empty database; raises SchemaError on a foreign schema."""
        try:
            version = migrations.current_version(self.engine)
        except SchemaError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store {self.url_for_humans}: {first_line(exc)}") from None
        migrations.check_not_newer(version, self.url_for_humans)
        if version is not None and version < migrations.LATEST_VERSION:
            raise SchemaError(
                f"the store {self.url_for_humans} has schema version {version}; this cronhost "
                f"needs {migrations.LATEST_VERSION}. Start the daemon (`cronhost run`) once "
                "to upgrade it; history is kept."
            )
        return version is not None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- runs ---------------------------------------------------------------------------

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
                    data=_json_or_none(outcome.data),
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

    def abandon_running(self, reason: str, *, except_daemon: str | None = None) -> list[RunRow]:
        """Mark runs left `running` by a daemon that is gone as `abandoned`."""
        now = utcnow()
        condition = runs.c.status == RunStatus.RUNNING.value
        if except_daemon is not None:
            condition = and_(
                condition, or_(runs.c.daemon_id.is_(None), runs.c.daemon_id != except_daemon)
            )
        with self.engine.begin() as conn:
            rows = conn.execute(select(runs).where(condition)).mappings().all()
            if rows:
                conn.execute(
                    update(runs)
                    .where(runs.c.id.in_([row["id"] for row in rows]))
                    .values(
                        status=RunStatus.ABANDONED.value,
                        finished_at=now,
                        error=f"{reason} (found at {now.isoformat(timespec='seconds')})",
                    )
                )
        return [_run(row) for row in rows]

    def abandon_runs(self, run_ids: Iterable[int], reason: str) -> None:
        ids = list(run_ids)
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(ids), runs.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.ABANDONED.value, finished_at=utcnow(), error=reason)
            )

    def run(self, run_id: int) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        return _run(row) if row else None

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
            return [_run(row) for row in conn.execute(query).mappings()]

    def runs_for_slots(self, job_id: str, since: datetime, until: datetime) -> list[RunRow]:
        query = (
            select(runs)
            .where(runs.c.job_id == job_id, runs.c.scheduled_at >= since,
                   runs.c.scheduled_at <= until)
            .order_by(runs.c.scheduled_at)
        )
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query).mappings()]

    def latest_runs(self, job_ids: Iterable[str]) -> dict[str, RunRow]:
        """The newest run of each job (one indexed lookup per job, cheap at any history size)."""
        latest: dict[str, RunRow] = {}
        with self.engine.connect() as conn:
            for job_id in job_ids:
                row = conn.execute(
                    select(runs)
                    .where(runs.c.job_id == job_id)
                    .order_by(runs.c.scheduled_at.desc(), runs.c.id.desc())
                    .limit(1)
                ).mappings().first()
                if row:
                    latest[job_id] = _run(row)
        return latest

    def counts_since(self, since: datetime) -> dict[str, dict[str, int]]:
        """{job_id: {status: slots}} for slots at or after ``since``.

        One range search of ix_runs_job_scheduled per job: a single
        ``WHERE scheduled_at >= ? GROUP BY job_id, status`` is planned by SQLite as a scan
        of the whole index (~90 ms at a million runs, whatever the window); this reads
        only the window (~2 ms for a day of LeadMap's jobs). job_state keeps removed
        jobs, so every job that has runs is listed.
        """
        counts: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            job_ids = conn.execute(select(job_state.c.job_id)).scalars().all()
            for job_id in job_ids:
                rows = conn.execute(
                    select(runs.c.status, func.sum(runs.c.slot_count))
                    .where(runs.c.job_id == job_id, runs.c.scheduled_at >= since)
                    .group_by(runs.c.status)
                )
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
                conn.execute(delete(runs).where(runs.c.id.in_(ids)))
                deleted += len(ids)

    # -- job state ----------------------------------------------------------------------

    def sync_jobs(self, jobs: Iterable[dict[str, Any]]) -> None:
        """Record what the daemon now runs; jobs no longer configured are marked removed."""
        now = utcnow()
        listed = list(jobs)
        with self.engine.begin() as conn:
            known = set(conn.execute(select(job_state.c.job_id)).scalars())
            for job in listed:
                values = {**job, "removed": False, "updated_at": now}
                if job["job_id"] in known:
                    conn.execute(
                        update(job_state).where(job_state.c.job_id == job["job_id"]).values(**values)
                    )
                else:
                    conn.execute(job_state.insert().values(**values))
            gone = known - {job["job_id"] for job in listed}
            if gone:
                conn.execute(
                    update(job_state)
                    .where(job_state.c.job_id.in_(gone))
                    .values(removed=True, updated_at=now)
                )

    def set_paused(self, job_id: str, paused: bool) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(job_state)
                .where(job_state.c.job_id == job_id)
                .values(paused=paused, updated_at=utcnow())
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
                removed=row["removed"], consecutive_failures=row["consecutive_failures"],
                last_success_at=row["last_success_at"], next_run_at=next_runs.get(row["job_id"]),
            )
            for row in rows
        ]

    def next_run_times(self) -> dict[str, datetime]:
        """Next fire times from APScheduler's job store table (epoch seconds there)."""
        if APSCHEDULER_TABLE not in inspect(self.engine).get_table_names():
            return {}
        from sqlalchemy import column, table

        aps = table(APSCHEDULER_TABLE, column("id"), column("next_run_time"))
        with self.engine.connect() as conn:
            return {
                job_id: datetime.fromtimestamp(float(ts), UTC)
                for job_id, ts in conn.execute(select(aps.c.id, aps.c.next_run_time))
                if ts is not None
            }

    # -- commands -----------------------------------------------------------------------

    def add_command(
        self, kind: str, job_id: str | None, requested_by: str = "cli",
        slot: datetime | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(commands.insert().values(
                kind=kind, job_id=job_id, requested_at=utcnow(), requested_by=requested_by,
                state="pending", slot=slot,
            ))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def pending_commands(self) -> list[Command]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commands).where(commands.c.state == "pending").order_by(commands.c.id)
            ).mappings().all()
        return [_command(row) for row in rows]

    def take_command(self, command_id: int) -> bool:
        """Atomically move a command from pending to taken; False if another daemon took it."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(commands)
                .where(commands.c.id == command_id, commands.c.state == "pending")
                .values(state="taken", handled_at=utcnow())
            )
            return result.rowcount == 1

    def finish_command(
        self, command_id: int, state: str, result: str | None = None, run_id: int | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(commands).where(commands.c.id == command_id).values(
                    state=state, result=result, run_id=run_id, handled_at=utcnow()
                )
            )

    def command(self, command_id: int) -> Command | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
        return _command(row) if row else None

    def recent_commands(self, limit: int = 20) -> list[Command]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commands).order_by(commands.c.id.desc()).limit(limit)
            ).mappings().all()
        return [_command(row) for row in rows]

    # -- daemon heartbeat ---------------------------------------------------------------

    def register_daemon(self, daemon_id: str, config_path: str, version: str) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(daemons.insert().values(
                id=daemon_id, hostname=socket.gethostname(), pid=os.getpid(), version=version,
                started_at=now, last_beat_at=now, config_path=config_path,
            ))

    def beat(self, daemon_id: str, status_line: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(daemons).where(daemons.c.id == daemon_id).values(
                    last_beat_at=utcnow(), status_line=status_line
                )
            )

    def record_config_loaded(self, daemon_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(daemons).where(daemons.c.id == daemon_id).values(
                config_loaded_at=utcnow(), config_error=None, config_error_at=None
            ))

    def record_config_error(self, daemon_id: str, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(daemons).where(daemons.c.id == daemon_id).values(
                config_error=error, config_error_at=utcnow()
            ))

    def daemon_stopped(self, daemon_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(daemons).where(daemons.c.id == daemon_id).values(stopped_at=utcnow())
            )

    def latest_daemon(self) -> DaemonInfo | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(daemons).order_by(daemons.c.last_beat_at.desc()).limit(1)
            ).mappings().first()
        return DaemonInfo(**row) if row else None

    # -- dashboard reads (added for the TUI, issue 4) -----------------------------------

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


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user (the service's)
    return True


def _run(row: Any) -> RunRow:
    return RunRow(**{key: row[key] for key in RunRow.__dataclass_fields__})


def _command(row: Any) -> Command:
    return Command(**{key: row[key] for key in Command.__dataclass_fields__})


def _json_or_none(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, default=str)[:16_384]
    except (TypeError, ValueError):
        return None
