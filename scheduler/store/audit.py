"""The audit log: who asked for what, what each reload changed (the `events` table).

Every command records who asked (:func:`who_asks`: the Unix user and host of the
asking process); when the daemon finishes a command it writes the event in the
same transaction (:func:`insert_command_event`), so a command is never done
without its line in `cronhost log`. Reloads and the daemon's own moves (start,
lead, stop) add theirs with :meth:`AuditTable.add_event`. Retention prunes them
with the runs (``[store] keep``).
"""

from __future__ import annotations

import json
import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select

from scheduler.store.rows import iso, utcnow
from scheduler.store.schema import commands, events, job_state

__all__ = ["AuditTable", "EventRow", "Actor", "insert_command_event", "insert_event",
           "resolve_user", "who_asks"]

# The kernel's "no login uid" ((uid_t) -1): a process no login session started.
_NO_LOGINUID = 4294967295
# `cronhost reload` looks for its reload's event among the newest few: the daemon wrote it a
# moment ago, and a file watch or SIGHUP adds at most one more each time.
RELOADS_SEARCHED = 20
_DONE = {"pause": "paused", "resume": "resumed", "trigger": "triggered", "reload": "reloaded"}


@dataclass(frozen=True)
class Actor:
    user: str | None
    host: str | None

    def __str__(self) -> str:
        return f"{self.user or '?'}@{self.host or '?'}"


def resolve_user(loginuid: str | None, environ: Mapping[str, str], euid: int) -> str:
    """The person behind a process: the kernel login uid first (it survives `sudo` and
    `runuser -u cronhost`, which change the effective user), then $SUDO_USER, then the
    effective user."""
    try:
        uid = int(loginuid.strip()) if loginuid is not None else _NO_LOGINUID
    except ValueError:
        uid = _NO_LOGINUID
    if uid != _NO_LOGINUID:
        return _user_name(uid)
    if environ.get("SUDO_USER"):
        return environ["SUDO_USER"]
    return _user_name(euid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)  # a uid without a passwd entry (a container's): the number says it


def who_asks() -> Actor:
    """This process's user and host, as commands and events record them."""
    try:
        loginuid: str | None = Path("/proc/self/loginuid").read_text()
    except OSError:
        loginuid = None
    return Actor(resolve_user(loginuid, os.environ, os.geteuid())[:64],
                 socket.gethostname()[:255])


@dataclass(frozen=True)
class EventRow:
    id: int
    at: datetime
    kind: str
    job_id: str | None
    actor_user: str | None
    actor_host: str | None
    daemon_id: str | None
    summary: str
    detail: dict[str, Any] | None

    @property
    def who(self) -> str:
        if self.actor_user is None and self.actor_host is None:
            return "-"
        return str(Actor(self.actor_user, self.actor_host))

    def to_json(self) -> dict[str, Any]:
        """The stable `cronhost log --json` form; ``detail`` is an object, not a string."""
        return {"id": self.id, "at": iso(self.at), "kind": self.kind, "job_id": self.job_id,
                "user": self.actor_user, "host": self.actor_host, "daemon_id": self.daemon_id,
                "summary": self.summary, "detail": self.detail}


def insert_event(
    conn: Connection, kind: str, summary: str, *, job_id: str | None = None,
    actor: Actor | None = None, daemon_id: str | None = None,
    detail: Mapping[str, Any] | None = None, at: datetime | None = None,
) -> None:
    """One event, in the caller's transaction."""
    conn.execute(events.insert().values(
        at=at or utcnow(), kind=kind[:32], job_id=job_id,
        actor_user=actor.user if actor else None, actor_host=actor.host if actor else None,
        daemon_id=daemon_id, summary=summary,
        detail=json.dumps(dict(detail), default=str) if detail is not None else None,
    ))


def insert_command_event(
    conn: Connection, command_id: int, state: str, result: str | None, run_id: int | None,
    daemon_id: str | None,
) -> None:
    """The event of a finished command, in the transaction that finishes it."""
    row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
    if row is None:
        return
    actor = Actor(row["requested_user"], row["requested_host"])
    kind, channel = row["kind"], row["requested_by"]
    if state == "done":
        summary = f"{_DONE.get(kind, kind)} by {actor} ({channel})"
        if result and result not in (_DONE.get(kind), "started"):
            summary += f": {result}"
        if run_id is not None:
            summary += f", run {run_id}"
    else:
        summary = f"{kind} asked by {actor} ({channel}) failed: {result or 'no reason given'}"
    if kind == "pause" and state == "done" and row["job_id"]:
        reason = conn.execute(select(job_state.c.paused_reason)
                              .where(job_state.c.job_id == row["job_id"])).scalar()
        if reason:  # auto-disable says why
            summary += f": {reason}"
    detail = {"command_id": command_id, "requested_by": channel,
              "requested_at": iso(row["requested_at"]), "outcome": state, "result": result,
              "run_id": run_id, "slot": iso(row["slot"])}
    insert_event(conn, f"command.{kind}", summary, job_id=row["job_id"], actor=actor,
                 daemon_id=daemon_id, detail=detail)


class AuditTable:
    """Store methods on `events` (mixed into Store)."""

    engine: Engine

    def add_event(
        self, kind: str, summary: str, *, job_id: str | None = None,
        actor: Actor | None = None, daemon_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            insert_event(conn, kind, summary, job_id=job_id, actor=actor, daemon_id=daemon_id,
                         detail=detail)

    def events(self, limit: int = 50, job_id: str | None = None) -> list[EventRow]:
        """Newest first."""
        query = select(events).order_by(events.c.at.desc(), events.c.id.desc()).limit(limit)
        if job_id is not None:
            query = query.where(events.c.job_id == job_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event(row) for row in rows]

    def reload_event(self, command_id: int) -> EventRow | None:
        """The `config.reloaded` event of one reload command, if the daemon recorded one."""
        query = (select(events).where(events.c.kind == "config.reloaded")
                 .order_by(events.c.id.desc()).limit(RELOADS_SEARCHED))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        for row in rows:
            event = _event(row)
            if event.detail is not None and event.detail.get("command_id") == command_id:
                return event
        return None

    def prune_events(self, before: datetime) -> int:
        """Delete events older than ``before`` (retention, with the runs)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(events).where(events.c.at < before)).rowcount or 0)


def _event(row: Any) -> EventRow:
    try:
        detail = json.loads(row["detail"]) if row["detail"] else None
    except ValueError:
        detail = {"text": row["detail"]}
    return EventRow(id=row["id"], at=row["at"], kind=row["kind"], job_id=row["job_id"],
                    actor_user=row["actor_user"], actor_host=row["actor_host"],
                    daemon_id=row["daemon_id"], summary=row["summary"],
                    detail=detail if isinstance(detail, dict) else {"value": detail})
