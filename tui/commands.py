"""Trigger, pause and resume as the dashboard asks for them: rows in the commands table.

Runs in a thread worker (every call here writes to the database). The daemon
picks the rows up; the dashboard then follows each command's state
(pending → taken → done/failed) on its next refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from scheduler.errors import CronhostError
from scheduler.store import Store

Severity = Literal["information", "warning", "error"]
KINDS = ("trigger", "pause", "resume")
REQUESTED_BY = "tui"


@dataclass(frozen=True)
class CommandReceipt:
    """What became of a request; ``command_id`` is None when nothing was written."""

    kind: str
    job_id: str
    command_id: int | None
    message: str
    severity: Severity = "information"


def send_command(
    store: Store, kind: str, job_id: str, now: datetime, slot: datetime | None = None
) -> CommandReceipt:
    """``slot``: re-run that recorded slot under its Idempotency-Key (trigger only)."""
    if kind not in KINDS:
        raise ValueError(f"unknown command {kind!r}")
    try:
        return _send(store, kind, job_id, now, slot)
    except (CronhostError, SQLAlchemyError) as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return CommandReceipt(kind, job_id, None,
                              f"could not {kind} {job_id}: {text[0] if text else exc!r}", "error")


def _send(
    store: Store, kind: str, job_id: str, now: datetime, slot: datetime | None
) -> CommandReceipt:
    info = store.latest_daemon()
    up = info is not None and info.is_up(now)
    if kind == "trigger":
        if not up:
            # A trigger row left for a daemon that is not there would fire whenever it
            # comes back, long after the operator stopped expecting it: refuse instead.
            return CommandReceipt(
                kind, job_id, None,
                f"not triggered: the daemon is down, so nothing would run {job_id}. "
                "Start it (cronhost run, or systemctl start cronhost) and try again.",
                "error",
            )
        command_id = store.add_command(kind, job_id, requested_by=REQUESTED_BY, slot=slot)
        what = f"re-run of {job_id}'s slot {slot:%H:%M:%S}" if slot else f"trigger of {job_id}"
        return CommandReceipt(kind, job_id, command_id, f"{what} sent (command {command_id})")
    paused = kind == "pause"
    # Persist first, as `cronhost pause` does: the state holds even if no daemon is up,
    # and a daemon that starts later reads it before it schedules anything.
    if not store.set_paused(job_id, paused):
        return CommandReceipt(kind, job_id, None,
                              f"{job_id} is not in the store; nothing to {kind}", "error")
    command_id = store.add_command(kind, job_id, requested_by=REQUESTED_BY)
    if not up:
        return CommandReceipt(
            kind, job_id, command_id,
            f"{job_id} {kind}d in the store; the daemon is down, it applies this when it starts",
            "warning",
        )
    return CommandReceipt(kind, job_id, command_id, f"{kind} of {job_id} sent (command {command_id})")
