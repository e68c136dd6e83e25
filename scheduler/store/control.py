"""The control tables: `commands` (CLI and dashboard → daemon) and `daemons` (heartbeats).

The daemon and the dashboard are separate processes; they meet here. A command
row is the durable request; the daemon takes it atomically (pending → taken) and
finishes it (done/failed) with a result the asker reads back.

Every daemon (a node) has a `daemons` row with its role, leader or standby. On
PostgreSQL the leader is whoever holds the session advisory lock LEADER_LOCK_KEY
(``scheduler.daemon.lease``); its session's application_name names it, so readers
ask the server rather than trust a row a frozen node cannot update.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from scheduler.store.audit import Actor, insert_command_event, insert_event, who_asks
from scheduler.store.doorbell import notify_in, ring_socket
from scheduler.store.rows import (
    HEARTBEAT_STALE_AFTER,
    Command,
    DaemonInfo,
    command_from_row,
    utcnow,
)
from scheduler.store.schema import commands, daemons

__all__ = ["LEADER_LOCK_KEY", "ControlTables", "NodeInfo", "leader_application_name",
           "lease_held", "parse_holder"]

# pg_try_advisory_lock takes a bigint; this one spells "cronhost" in ASCII.
LEADER_LOCK_KEY = 0x63726F6E686F7374 & 0x7FFFFFFFFFFFFFFF
_APP_PREFIX = "cronhost/"


# The leader lock's row in pg_locks (a bigint key shows as classid, objid; objsubid 1),
# in this database: who holds it (leader_id), and whether a session still does (the
# claim transaction's fence, lease_held).
_LEADER_LOCK_ROW = (
    "l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo "
    "AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database())")
_LEADER_LOCK_PARAMS = {"hi": LEADER_LOCK_KEY >> 32, "lo": LEADER_LOCK_KEY & 0xFFFFFFFF}


def lease_held(conn: Connection, backend_pid: int) -> bool:
    """In the caller's transaction: the server process ``backend_pid`` holds the leader lock."""
    return bool(conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE " + _LEADER_LOCK_ROW
             + " AND l.pid = :pid)"), {**_LEADER_LOCK_PARAMS, "pid": backend_pid}).scalar())


def leader_application_name(daemon_id: str, pid: int, hostname: str) -> str:
    """The lock session's application_name: who holds the lock, for whoever asks."""
    return f"{_APP_PREFIX}{daemon_id}/{pid}/{hostname}"[:63]  # NAMEDATALEN - 1


def parse_holder(application_name: str | None) -> tuple[str, int, str] | None:
    """(daemon id, pid, hostname) from a lock session's application_name."""
    if not application_name or not application_name.startswith(_APP_PREFIX):
        return None
    parts = application_name.removeprefix(_APP_PREFIX).split("/", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1]), parts[2]


@dataclass(frozen=True)
class NodeInfo:
    """One daemon that is up on the store: `status` lists them all."""

    id: str
    hostname: str
    pid: int
    role: str  # leader | standby
    since: datetime | None
    last_beat_at: datetime

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "hostname": self.hostname, "pid": self.pid, "role": self.role,
                "since": self.since.isoformat() if self.since else None,
                "last_beat_at": self.last_beat_at.isoformat()}


def _role_event(conn: Connection, daemon_id: str, role: str | None, *, started: bool) -> None:
    """daemon.started / daemon.leading / daemon.standby: a node's moves, in the audit log."""
    me: Actor = who_asks()
    role = role or "leader"
    node = f"daemon {daemon_id} on {me.host} (pid {os.getpid()})"
    if started:
        kind, summary = "daemon.started", f"{node} started as {role}"
    elif role == "leader":
        kind, summary = "daemon.leading", f"{node} took the lead"
    else:
        kind, summary = "daemon.standby", f"{node} lost the lead and stands by"
    insert_event(conn, kind, summary, actor=me, daemon_id=daemon_id,
                 detail={"pid": os.getpid(), "role": role})


def _daemon_info(row: object) -> DaemonInfo:
    return DaemonInfo(**{key: row[key] for key in DaemonInfo.__dataclass_fields__})  # type: ignore[index]


class ControlTables:
    """Store methods on `commands` and `daemons` (mixed into Store)."""

    engine: Engine


    def add_command(
        self, kind: str, job_id: str | None, requested_by: str = "cli",
        slot: datetime | None = None,
    ) -> int:
        """Write a command for the daemon and ring its doorbell (see store.doorbell).

        The row names who asked: this process's Unix user and host (store.audit.who_asks).
        """
        asker = who_asks()
        with self.engine.begin() as conn:
            result = conn.execute(commands.insert().values(
                kind=kind, job_id=job_id, requested_at=utcnow(), requested_by=requested_by,
                requested_user=asker.user, requested_host=asker.host, state="pending", slot=slot,
            ))
            notify_in(conn)
            command_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        ring_socket(self.engine)
        return command_id

    def pending_commands(self) -> list[Command]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commands).where(commands.c.state == "pending").order_by(commands.c.id)
            ).mappings().all()
        return [command_from_row(row) for row in rows]

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
        self, command_id: int, state: str, result: str | None = None, run_id: int | None = None,
        *, daemon_id: str | None = None,
    ) -> None:
        """Done or failed, and its line in the audit log, in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                update(commands).where(commands.c.id == command_id).values(
                    state=state, result=result, run_id=run_id, handled_at=utcnow()
                )
            )
            insert_command_event(conn, command_id, state, result, run_id, daemon_id)

    def command(self, command_id: int) -> Command | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(commands).where(commands.c.id == command_id)).mappings().first()
        return command_from_row(row) if row else None

    def recent_commands(self, limit: int = 20) -> list[Command]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commands).order_by(commands.c.id.desc()).limit(limit)
            ).mappings().all()
        return [command_from_row(row) for row in rows]


    def register_daemon(
        self, daemon_id: str, config_path: str, version: str, role: str | None = None,
        role_since: datetime | None = None,
    ) -> None:
        """This daemon's row; a second call (a standby now leading) updates it."""
        now = utcnow()
        values = dict(last_beat_at=now, config_path=config_path, role=role,
                      role_since=role_since or now, stopped_at=None)
        with self.engine.begin() as conn:
            before = conn.execute(
                select(daemons.c.role).where(daemons.c.id == daemon_id)).first()
            updated = conn.execute(
                update(daemons).where(daemons.c.id == daemon_id).values(**values)).rowcount
            if not updated:
                conn.execute(daemons.insert().values(
                    id=daemon_id, hostname=socket.gethostname(), pid=os.getpid(),
                    version=version, started_at=now, **values,
                ))
            if before is None or before[0] != role:
                _role_event(conn, daemon_id, role, started=before is None)

    def beat(
        self, daemon_id: str, status_line: str | None = None, role: str | None = None,
        role_since: datetime | None = None,
    ) -> None:
        values: dict[str, object] = dict(last_beat_at=utcnow(), status_line=status_line)
        if role is not None:
            values.update(role=role, role_since=role_since)
        with self.engine.begin() as conn:
            conn.execute(update(daemons).where(daemons.c.id == daemon_id).values(**values))

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
            me = who_asks()
            insert_event(conn, "daemon.stopped", f"daemon {daemon_id} on {me.host} stopped",
                         actor=me, daemon_id=daemon_id, detail={"pid": os.getpid()})

    def latest_daemon(self) -> DaemonInfo | None:
        """The daemon that runs the jobs: the leader when one is up, else the latest beat."""
        base = [daemons.c[key] for key in DaemonInfo.__dataclass_fields__]
        query = select(*base).order_by(daemons.c.last_beat_at.desc()).limit(20)
        with self.engine.connect() as conn:
            try:
                rows = conn.execute(query.add_columns(daemons.c.role)).mappings().all()
            except SQLAlchemyError:  # a store from before v7: no roles
                conn.rollback()
                rows = conn.execute(query).mappings().all()
        if not rows:
            return None
        infos = [_daemon_info(row) for row in rows]
        leader = self.leader_id()
        for info, row in zip(infos, rows, strict=True):
            if info.is_up() and (info.id == leader if leader else row.get("role") == "leader"):
                return info
        return infos[0]

    def unclosed_daemons(self, except_id: str) -> list[DaemonInfo]:
        """Other daemons whose rows say they never stopped: up now, or died unannounced."""
        base = [daemons.c[key] for key in DaemonInfo.__dataclass_fields__]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*base).where(daemons.c.stopped_at.is_(None),
                                                    daemons.c.id != except_id)).mappings()
            return [_daemon_info(row) for row in rows]

    def record_dead_daemon(self, dead: DaemonInfo, abandoned: int, found_by: str) -> None:
        """A daemon found dead without having stopped: close its row (at its last beat, so
        this is said once) and say so in the audit log."""
        with self.engine.begin() as conn:
            closed = conn.execute(update(daemons).where(
                daemons.c.id == dead.id, daemons.c.stopped_at.is_(None)).values(
                stopped_at=dead.last_beat_at)).rowcount
            if not closed:
                return  # another node said it first
            runs = f"{abandoned} run{'s' if abandoned != 1 else ''}"
            me = who_asks()
            insert_event(
                conn, "daemon.died",
                f"daemon {dead.id} on {dead.hostname} (pid {dead.pid}) ended without stopping "
                f"(crash, kill -9 or power loss) after its last heartbeat at "
                f"{dead.last_beat_at.isoformat(timespec='seconds')}; {runs} it left in flight "
                f"marked abandoned",
                actor=me, daemon_id=found_by,
                detail={"daemon_id": dead.id, "hostname": dead.hostname, "pid": dead.pid,
                        "started_at": dead.started_at.isoformat(),
                        "last_beat_at": dead.last_beat_at.isoformat(), "abandoned": abandoned})

    def daemons_by_id(self, ids: set[str]) -> dict[str, DaemonInfo]:
        if not ids:
            return {}
        base = [daemons.c[key] for key in DaemonInfo.__dataclass_fields__]
        with self.engine.connect() as conn:
            rows = conn.execute(select(*base).where(daemons.c.id.in_(sorted(ids)))).mappings()
            return {row["id"]: _daemon_info(row) for row in rows}

    def set_role(self, daemon_id: str, role: str, since: datetime) -> None:
        with self.engine.begin() as conn:
            before = conn.execute(
                select(daemons.c.role).where(daemons.c.id == daemon_id)).first()
            conn.execute(update(daemons).where(daemons.c.id == daemon_id).values(
                role=role, role_since=since))
            if before is not None and before[0] != role:
                _role_event(conn, daemon_id, role, started=False)

    def nodes(self) -> list[NodeInfo]:
        """Every daemon up on this store, the leader first."""
        cutoff = utcnow() - HEARTBEAT_STALE_AFTER
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(daemons).where(daemons.c.stopped_at.is_(None),
                                      daemons.c.last_beat_at >= cutoff)
                .order_by(daemons.c.started_at)
            ).mappings().all()
        leader = self.leader_id()
        found = []
        for row in rows:
            if not _daemon_info(row).is_up():
                continue
            role = row["role"] or "leader"  # a row from before v7 is a lone leader
            if leader is not None:
                role = "leader" if row["id"] == leader else "standby"
            found.append(NodeInfo(id=row["id"], hostname=row["hostname"], pid=row["pid"],
                                  role=role, since=row["role_since"] or row["started_at"],
                                  last_beat_at=row["last_beat_at"]))
        return sorted(found, key=lambda node: node.role != "leader")

    def leader_id(self) -> str | None:
        """On PostgreSQL, the id of the daemon holding the leader lock, asked of the server."""
        if self.engine.url.get_backend_name() != "postgresql":
            return None
        try:
            with self.engine.connect() as conn:
                name = conn.execute(text(
                    "SELECT a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE " + _LEADER_LOCK_ROW),
                    _LEADER_LOCK_PARAMS,
                ).scalar()
        except SQLAlchemyError:
            return None
        holder = parse_holder(name)
        return holder[0] if holder else None
