"""The rows the store hands out: runs, jobs, daemons and commands, as frozen dataclasses."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "HEARTBEAT_STALE_AFTER", "Command", "DaemonInfo", "JobAdvance", "JobRow", "RunRow",
    "SlotClaim", "command_from_row",
    "iso", "run_from_row", "utcnow",
]

# Beats come every [daemon] heartbeat_interval (at most 15 s): two missed beats = gone.
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
    claimed_at: datetime | None
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

    def attempts_so_far(self, logged: int) -> int:
        """Its attempts, given how many its attempt log holds: a run in flight counts them
        only when it ends, and until then its log knows more."""
        return max(self.attempts, logged)

    def to_json(self, attempt_log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The stable `--json` form: scripts parse these names (README lists them).

        ``data`` is the endpoint's JSON value as it sent it (object, list, number...);
        when the store kept only a prefix of a large one, ``data_truncated`` is true and
        ``data`` is that prefix, as text. ``attempt_log``: the run's attempts, when read.
        """
        row = asdict(self)
        shown: dict[str, Any] = {
            key: iso(value) if isinstance(value, datetime) else value
            for key, value in row.items()
        }
        shown["data"], shown["data_truncated"] = typed_data(self.data)
        if attempt_log is not None:
            shown["attempt_log"] = attempt_log
            shown["attempts"] = self.attempts_so_far(len(attempt_log))
        # How long the slot waited for a free place after it was claimed.
        shown["queued_ms"] = (
            int((self.started_at - self.claimed_at).total_seconds() * 1000)
            if self.started_at is not None and self.claimed_at is not None else None
        )
        return shown


@dataclass(frozen=True)
class JobAdvance:
    """One due job in a wake-up: its due fire times, and where its schedule goes next.

    The engine builds these; the claim transaction writes ``job_state`` (APScheduler's
    pickled job, with ``next_run_time`` moved on) in the same transaction as the slots'
    rows, or removes the job when ``next_run_time`` is None.
    """

    job_id: str
    run_times: list[datetime]
    next_run_time: datetime | None
    job_state: bytes | None


@dataclass(frozen=True)
class SlotClaim:
    """A slot to write in the claim transaction: `queued` to run, or already decided."""

    job_id: str
    trigger: str
    scheduled_at: datetime
    idempotency_key: str
    status: str  # queued, skipped or missed
    error: str | None = None


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
    paused_reason: str | None = None  # set when cronhost paused the job itself (auto-disable)


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
        return not self.process_gone()

    def process_gone(self) -> bool:
        """Its process is surely gone: it ran on this host and that pid is no more."""
        return self.hostname == socket.gethostname() and not _process_exists(self.pid)


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
    # Who asked (v8): the channel (cli, tui, auto-disable), the Unix user and the host.
    requested_by: str = "cli"
    requested_user: str | None = None
    requested_host: str | None = None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user (the service's)
    return True


def run_from_row(row: Any) -> RunRow:
    return RunRow(**{key: row[key] for key in RunRow.__dataclass_fields__})


def command_from_row(row: Any) -> Command:
    return Command(**{key: row[key] for key in Command.__dataclass_fields__})


def typed_data(stored: str | None) -> tuple[Any, bool]:
    """(the JSON value of stored `data`, False), or (the stored text, True) when the store
    kept only a prefix of it (past DATA_LIMIT), which is no JSON value any more."""
    if stored is None:
        return None, False
    try:
        return json.loads(stored), False
    except ValueError:
        return stored, True


DATA_LIMIT = 16_384


# What a trigger's command says when its run waits for the job's run in flight (the
# daemon writes it, `cronhost trigger --wait` reads the slot back out of it).
_WAITS_PREFIX = "queued: waits for the run of slot "
_WAITS_SUFFIX = " to finish"


def trigger_waits_result(slot: datetime) -> str:
    return f"{_WAITS_PREFIX}{slot.isoformat()}{_WAITS_SUFFIX}"


def trigger_waited_for(result: str | None) -> datetime | None:
    """The slot a trigger's run waited for, from its command's result; None if it did not."""
    if not result or not result.startswith(_WAITS_PREFIX):
        return None
    try:
        return datetime.fromisoformat(result.removeprefix(_WAITS_PREFIX)
                                      .removesuffix(_WAITS_SUFFIX))
    except ValueError:
        return None


def json_or_none(value: Any) -> str | None:
    """An endpoint's `data` as the JSON text the store keeps (16 KB at most), or None."""
    if value is None:
        return None
    try:
        return json.dumps(value, default=str)[:DATA_LIMIT]
    except (TypeError, ValueError):
        return None
