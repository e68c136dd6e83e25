"""Tables of the run store (SQLAlchemy Core).

APScheduler's own job store table (``apscheduler_jobs``) lives in the same
database and is owned by APScheduler; everything below is cronhost's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

APSCHEDULER_TABLE = "apscheduler_jobs"


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), read back aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite raw text (e.g. from a text() query)
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


metadata = MetaData()

schema_version = Table(
    "cronhost_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("cronhost_version", String(32), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(64), nullable=False),
    # "schedule" for slots from the job's schedule, "manual" for `cronhost trigger`.
    Column("trigger", String(16), nullable=False, default="schedule"),
    Column("scheduled_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("http_status", Integer),
    # claimed_at: when the daemon took the slot (its row was written, status `queued`);
    # started_at: when the first attempt's request was handed to the connection (or the
    # callable was called), status `running`. lateness_ms counts to started_at.
    Column("claimed_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("duration_ms", Integer),
    Column("lateness_ms", Integer),
    Column("error", Text),
    Column("message", Text),
    Column("data", Text),  # the endpoint's `data`, as JSON text
    Column("response_excerpt", Text),
    Column("idempotency_key", String(160), nullable=False),
    Column("daemon_id", String(64)),
    # A row for many missed slots at once (past the per-outage cap) covers
    # [scheduled_at, slot_until] and counts them in slot_count.
    Column("slot_count", Integer, nullable=False, default=1),
    Column("slot_until", UTCDateTime),
    # The one constraint that makes a slot run at most once, across restarts,
    # retries, reloads and several daemons on one PostgreSQL.
    UniqueConstraint("job_id", "trigger", "scheduled_at", name="uq_runs_slot"),
    Index("ix_runs_job_scheduled", "job_id", "scheduled_at"),
    Index("ix_runs_scheduled", "scheduled_at"),
    Index("ix_runs_status", "status"),
)

job_state = Table(
    "job_state",
    metadata,
    Column("job_id", String(64), primary_key=True),
    # What the daemon last loaded from config, so that readers (status, dashboard)
    # see what the daemon really runs, even after a failed reload.
    Column("kind", String(16), nullable=False),
    Column("schedule", String(128), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("removed", Boolean, nullable=False, default=False),
    Column("paused", Boolean, nullable=False, default=False),
    # Why it is paused, when cronhost paused it itself ("auto-disabled after 25 failures");
    # NULL for a pause an operator asked for. A resume clears it.
    Column("paused_reason", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_success_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # trigger | pause | resume | reload
    Column("job_id", String(64)),
    Column("requested_at", UTCDateTime, nullable=False),
    # requested_by: the channel (cli | tui | api); requested_user / requested_host: who
    # asked, the Unix user of the asking process and its host (v8, for the audit log).
    Column("requested_by", String(64), nullable=False, default="cli"),
    Column("requested_user", String(64)),
    Column("requested_host", String(255)),
    Column("state", String(16), nullable=False, default="pending"),  # pending | done | failed
    Column("handled_at", UTCDateTime),
    Column("result", Text),
    Column("run_id", Integer),
    # For `trigger --slot`: re-run that slot's work under that slot's Idempotency-Key.
    Column("slot", UTCDateTime),
    Index("ix_commands_state", "state"),
)

# v8: every attempt of a run, written as it happens (so a run abandoned by kill -9 still
# shows what was sent and what came back before the crash).
attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),  # 1, 2, ...
    Column("request_id", String(64)),  # the X-Request-Id sent (fresh per attempt)
    Column("sent_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),  # NULL while the attempt is on the wire
    Column("http_status", Integer),
    Column("duration_ms", Integer),
    # cronhost's classification, in `cronhost report`'s words (http_5xx, timeout, connection...)
    Column("error_kind", String(32)),
    Column("error", Text),
    Column("retry_after_ms", Integer),  # a Retry-After the endpoint sent and cronhost honoured
    UniqueConstraint("run_id", "attempt", name="uq_attempts_run_attempt"),
    Index("ix_attempts_run", "run_id"),
)

# v8: the audit log: who asked for what (commands), what each reload changed, and what
# cronhost decided on its own (auto-disable). Newest first in `cronhost log`.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    # e.g. command.trigger | command.pause | command.resume | command.reload |
    # config.reloaded | config.reload_failed | job.auto_paused | daemon.started |
    # daemon.leading | daemon.standby | daemon.stopped | daemon.died
    Column("kind", String(32), nullable=False),
    Column("job_id", String(64)),
    Column("actor_user", String(64)),  # Unix user; "cronhost" for the daemon's own decisions
    Column("actor_host", String(255)),
    Column("daemon_id", String(64)),
    Column("summary", Text, nullable=False),  # one line for humans
    Column("detail", Text),  # JSON object (e.g. a reload's diff), for `cronhost log --json`
    Index("ix_events_at", "at"),
)

daemons = Table(
    "daemons",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_beat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    Column("config_path", Text, nullable=False),
    Column("config_loaded_at", UTCDateTime),
    Column("config_error", Text),
    Column("config_error_at", UTCDateTime),
    Column("status_line", Text),
    # v7, several nodes on one PostgreSQL: leader | standby, and since when.
    Column("role", String(16)),
    Column("role_since", UTCDateTime),
)
