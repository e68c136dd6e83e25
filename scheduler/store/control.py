"""The control tables: `commands` (CLI and dashboard → daemon) and `daemons` (heartbeats).

The daemon and the dashboard are separate processes; they meet here. A command
row is the durable request; the daemon takes it atomically (pending → taken) and
finishes it (done/failed) with a result the asker reads back.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import Engine, select, update

from scheduler.store.doorbell import notify_in, ring_socket
from scheduler.store.rows import Command, DaemonInfo, command_from_row, utcnow
from scheduler.store.schema import commands, daemons

__all__ = ["ControlTables"]


class ControlTables:
    """Store methods on `commands` and `daemons` (mixed into Store)."""

    engine: Engine


    def add_command(
        self, kind: str, job_id: str | None, requested_by: str = "cli",
        slot: datetime | None = None,
    ) -> int:
        """Write a command for the daemon and ring its doorbell (see store.doorbell)."""
        with self.engine.begin() as conn:
            result = conn.execute(commands.insert().values(
                kind=kind, job_id=job_id, requested_at=utcnow(), requested_by=requested_by,
                state="pending", slot=slot,
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
        return command_from_row(row) if row else None

    def recent_commands(self, limit: int = 20) -> list[Command]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commands).order_by(commands.c.id.desc()).limit(limit)
            ).mappings().all()
        return [command_from_row(row) for row in rows]


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
