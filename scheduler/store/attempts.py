"""The `attempts` table: every attempt of a run, written as it happens.

An attempt's row is inserted when its request is sent (``finished_at`` NULL: on the
wire) and completed when it ends, both through the runner's group commit
(``BatchWrites.write_runs``). So a run abandoned by kill -9 still shows what was
sent, and the answer of every attempt that had one before the crash.

Both writes are one upsert on UNIQUE(run_id, attempt): when an attempt's send and
end fall in one batch, its row is written once, whole. An answer already on record
is never blanked by a send without one (the writer keeps them in order anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from scheduler.store.rows import iso
from scheduler.store.schema import attempts, runs

__all__ = ["AttemptRow", "AttemptsTable", "attempts_count", "delete_attempts_of",
           "last_attempt_status", "write_attempts"]


@dataclass(frozen=True)
class AttemptRow:
    run_id: int
    attempt: int
    request_id: str | None
    sent_at: datetime
    finished_at: datetime | None = None  # None: sent, no end recorded (yet, or ever)
    http_status: int | None = None
    duration_ms: int | None = None
    error_kind: str | None = None
    error: str | None = None
    retry_after_ms: int | None = None  # a Retry-After honoured before the next attempt

    def to_json(self) -> dict[str, Any]:
        """One entry of `history --json`'s `attempt_log` (README lists the names)."""
        return {
            "attempt": self.attempt, "request_id": self.request_id, "sent_at": iso(self.sent_at),
            "finished_at": iso(self.finished_at), "http_status": self.http_status,
            "duration_ms": self.duration_ms, "error_kind": self.error_kind, "error": self.error,
            "retry_after_ms": self.retry_after_ms,
        }


_FIELDS = tuple(AttemptRow.__dataclass_fields__)
_ANSWER = ("finished_at", "http_status", "duration_ms", "error_kind", "error", "retry_after_ms")


def write_attempts(conn: Connection, rows: Sequence[AttemptRow]) -> None:
    """Insert or complete attempts, in one statement; the last word of each attempt wins."""
    latest: dict[tuple[int, int], AttemptRow] = {}
    for row in rows:
        latest[(row.run_id, row.attempt)] = row
    if not latest:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(attempts)
    # A send (no answer yet) must never blank an answer already written for the attempt.
    statement = statement.on_conflict_do_update(
        index_elements=["run_id", "attempt"],
        set_={name: func.coalesce(statement.excluded[name], attempts.c[name])
              for name in _ANSWER},
    )
    conn.execute(statement, [{name: getattr(row, name) for name in _FIELDS}
                             for row in latest.values()])


def delete_attempts_of(conn: Connection, run_ids: Sequence[int]) -> None:
    """With the runs they belong to (retention)."""
    if run_ids:
        conn.execute(delete(attempts).where(attempts.c.run_id.in_(run_ids)))


def attempts_count() -> ColumnElement[int]:
    """The number of attempts on record for the `runs` row of the statement (correlated)."""
    return (select(func.count()).select_from(attempts)
            .where(attempts.c.run_id == runs.c.id).scalar_subquery())


def last_attempt_status() -> ColumnElement[int]:
    """The HTTP status of the latest attempt that had an answer, for the `runs` row."""
    return (select(attempts.c.http_status)
            .where(attempts.c.run_id == runs.c.id, attempts.c.http_status.is_not(None))
            .order_by(attempts.c.attempt.desc()).limit(1).scalar_subquery())


class AttemptsTable:
    """Store methods reading the `attempts` table (mixed into Store)."""

    engine: Engine

    def attempts_of(self, run_ids: Iterable[int]) -> dict[int, list[AttemptRow]]:
        """{run id: its attempts, first first}; runs with none are left out."""
        ids = list(run_ids)
        found: dict[int, list[AttemptRow]] = {}
        # A bounded IN list per query: SQLite caps the variables of one statement.
        for start in range(0, len(ids), 500):
            query = (select(attempts).where(attempts.c.run_id.in_(ids[start:start + 500]))
                     .order_by(attempts.c.run_id, attempts.c.attempt))
            with self.engine.connect() as conn:
                for row in conn.execute(query).mappings():
                    found.setdefault(int(row["run_id"]), []).append(
                        AttemptRow(**{name: row[name] for name in _FIELDS}))
        return found

    def run_attempts(self, run_id: int) -> list[AttemptRow]:
        return self.attempts_of([run_id]).get(run_id, [])
