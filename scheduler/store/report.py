"""Per-job figures over a window of slots, computed in the database (`cronhost report`, trends).

For each job, over the slots scheduled in ``[since, until]`` (one range of
ix_runs_job_scheduled per job, so the cost follows the window, not the history):

    statuses   slots by final status (a missed row can stand for many slots: slot_count)
    due        slots of the job's schedule (trigger = "schedule"); manual runs are not due
    duration   p50, p95, max of duration_ms over runs that called the job (ok, failed, timeout)
    lateness   p50, p99 of lateness_ms over those runs, scheduled ones only (start - slot)
    errors     failed and timed-out runs by error kind (:data:`ERROR_KINDS`)

Percentiles are nearest-rank: the value at position ceil(q * n) of the n sorted values,
found with ROW_NUMBER() over the window's rows. That is the same SQL on SQLite (which
has no percentile functions) and PostgreSQL, and the value PostgreSQL's
``percentile_disc`` gives; it is always a duration some run really took.

Error kinds are read from what the job kinds write (``jobs/http.py``, ``jobs/python.py``):
the status, the HTTP status of the last reply and the error text's head. The same rules
exist twice, once as SQL (:func:`error_kind_sql`) and once in Python (:func:`error_kind`,
for the metrics); a test holds them to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
)

from scheduler.store.schema import job_state, runs
from scheduler.store.store import Store

__all__ = [
    "ERROR_KINDS", "RAN", "TIMED", "JobFigures", "RunPoint", "error_kind", "error_kind_sql",
    "job_figures", "run_points",
]

# Runs that called the job: their durations count. Abandoned runs did too, but their end
# (and so their duration) is unknown; they count as runs that did not succeed.
TIMED = ("ok", "failed", "timeout")
RAN = (*TIMED, "abandoned")
ERRORS = ("failed", "timeout")
ERROR_KINDS = (
    "http_5xx", "http_4xx", "http_3xx", "timeout", "connection", "success_false",
    "python_exception", "other",
)


@dataclass(frozen=True)
class JobFigures:
    job_id: str
    kind: str | None
    statuses: dict[str, int] = field(default_factory=dict)
    due: int = 0
    manual: int = 0
    duration: dict[str, int | None] = field(default_factory=dict)  # p50, p95, max
    lateness: dict[str, int | None] = field(default_factory=dict)  # p50, p99
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPoint:
    """One run for a chart: when its slot was, how long it took, how it ended."""

    scheduled_at: datetime
    duration_ms: int
    status: str


# -- error kinds --------------------------------------------------------------------------


def error_kind(
    status: str, http_status: int | None, error: str | None, job_kind: str | None
) -> str | None:
    """The kind of error of a failed or timed-out run; None for any other status."""
    if status == "timeout":
        return "timeout"
    if status != "failed":
        return None
    text = error or ""
    if job_kind == "python":
        head, sep, _ = text.partition(": ")
        # run_callable writes "ValueError: bad input" for an exception.
        return "python_exception" if sep and head and " " not in head else "success_false"
    if http_status is not None and 200 <= http_status < 300:
        return "success_false"  # a 2xx whose JSON said "success": false
    if text.startswith("HTTP ") and http_status is not None:
        # The last attempt's status line; an earlier 503 then a refused connection is
        # "connection" (the error is the last attempt's, http_status the last reply's).
        if http_status >= 500:
            return "http_5xx"
        if http_status >= 400:
            return "http_4xx"
        if http_status >= 300:
            return "http_3xx"
    if job_kind == "http" or job_kind is None:
        return "connection"  # refused, reset, DNS, TLS, closed early: no usable reply
    return "other"


def _position(dialect: str, haystack: Any, needle: str) -> ColumnElement[int]:
    if dialect == "postgresql":
        return func.strpos(haystack, needle)
    return func.instr(haystack, needle)


def error_kind_sql(dialect: str, job_kind: str | None) -> ColumnElement[str]:
    """:func:`error_kind` as a CASE over `runs`: NULL for rows that did not fail."""
    error = func.coalesce(runs.c.error, "")
    status = runs.c.http_status
    if job_kind == "python":
        colon = _position(dialect, error, ": ")
        head = func.substr(error, 1, colon - 1)
        return case(
            (runs.c.status.not_in(ERRORS), null()),
            (runs.c.status == "timeout", literal("timeout")),
            (and_(colon > 1, _position(dialect, head, " ") == 0), literal("python_exception")),
            else_=literal("success_false"),
        )
    status_line = and_(error.like("HTTP %"), status.is_not(None))
    return case(
        (runs.c.status.not_in(ERRORS), null()),
        (runs.c.status == "timeout", literal("timeout")),
        (and_(status >= 200, status < 300), literal("success_false")),
        (and_(status_line, status >= 500), literal("http_5xx")),
        (and_(status_line, status >= 400), literal("http_4xx")),
        (and_(status_line, status >= 300), literal("http_3xx")),
        else_=literal("connection" if job_kind in ("http", None) else "other"),
    )


# -- figures ------------------------------------------------------------------------------


def _window(job_id: str, since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(runs.c.job_id == job_id, runs.c.scheduled_at >= since,
                runs.c.scheduled_at <= until)


def _percentiles(
    conn: Connection, value: Any, where: ColumnElement[bool], quantiles: Sequence[int]
) -> dict[str, int | None]:
    """{"p50": ..., "max": ...}: nearest-rank percentiles (``quantiles`` in percent) in SQL.

    The window's values are counted by value first (durations in ms repeat a lot: a day of
    an every-minute job has ~1,400 runs and a few hundred distinct values), then a running
    sum over the distinct values finds, for each q, the smallest value whose running count
    reaches ceil(n * q / 100). Exact, and several times cheaper than ranking every row
    with ROW_NUMBER() (measured in benchmarks/report.py: 50 ms against 370 ms for 60,000
    runs of one job).
    """
    counted = (
        select(value.label("v"), func.count().label("c"))
        .where(where, value.is_not(None))
        .group_by(value)
        .subquery()
    )
    running = select(
        counted.c.v,
        # PostgreSQL's sum of bigints is numeric: back to integers, for integer division.
        cast(func.sum(counted.c.c).over(order_by=counted.c.v, rows=(None, 0)), BigInteger)
        .label("cum"),
        cast(func.sum(counted.c.c).over(), BigInteger).label("n"),
    ).subquery()
    # ceil(n * q / 100) in integers, so that both databases agree to the row.
    columns = [
        func.min(case((running.c.cum >= (running.c.n * q + 99) // 100, running.c.v)))
        .label(f"p{q}")
        for q in quantiles
    ]
    row = conn.execute(select(*columns, func.max(running.c.v).label("max"))).one()
    return {key: (int(found) if found is not None else None)
            for key, found in row._mapping.items()}


def job_figures(
    store: Store, since: datetime, until: datetime, job_ids: Iterable[str] | None = None,
) -> list[JobFigures]:
    """The figures of each job (every job the store knows that is not removed, by default)."""
    dialect = store.engine.dialect.name
    with store.engine.connect() as conn:
        kinds: dict[str, str | None] = {}
        query = select(job_state.c.job_id, job_state.c.kind, job_state.c.removed)
        known = {row.job_id: row for row in conn.execute(query.order_by(job_state.c.job_id))}
        if job_ids is None:
            ids = [job_id for job_id, row in known.items() if not row.removed]
        else:
            ids = list(job_ids)
        for job_id in ids:
            kinds[job_id] = known[job_id].kind if job_id in known else None
        return [_figures(conn, dialect, job_id, kinds[job_id], since, until) for job_id in ids]


def _figures(
    conn: Connection, dialect: str, job_id: str, kind: str | None, since: datetime,
    until: datetime,
) -> JobFigures:
    window = _window(job_id, since, until)
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    due = manual = 0
    # One pass for the counts and the error kinds (NULL for runs that did not fail).
    kind_column = error_kind_sql(dialect, kind).label("error_kind")
    for status, trigger, error, slots in conn.execute(
        select(runs.c.status, runs.c.trigger, kind_column, func.sum(runs.c.slot_count))
        .where(window).group_by(runs.c.status, runs.c.trigger, kind_column)
    ):
        slots = int(slots or 0)
        statuses[status] = statuses.get(status, 0) + slots
        if trigger == "schedule":
            due += slots
        else:
            manual += slots
        if error is not None:
            errors[str(error)] = errors.get(str(error), 0) + slots
    timed = and_(window, runs.c.status.in_(TIMED))
    ran_any = any(statuses.get(status) for status in TIMED)
    duration: dict[str, int | None] = {"p50": None, "p95": None, "max": None}
    lateness: dict[str, int | None] = {"p50": None, "p99": None}
    if ran_any:
        duration = _percentiles(conn, runs.c.duration_ms, timed, (50, 95))
        lateness = _percentiles(conn, runs.c.lateness_ms,
                                and_(timed, runs.c.trigger == "schedule"), (50, 99))
    lateness.pop("max", None)
    return JobFigures(job_id=job_id, kind=kind, statuses=statuses, due=due, manual=manual,
                      duration=duration, lateness=lateness,
                      errors=dict(sorted(errors.items(), key=lambda item: (-item[1], item[0]))))


def run_points(store: Store, job_id: str, since: datetime, until: datetime) -> list[RunPoint]:
    """The runs of one job in a window that have a duration, oldest first (for a chart)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.scheduled_at, runs.c.duration_ms, runs.c.status)
            .where(_window(job_id, since, until), runs.c.status.in_(TIMED),
                   runs.c.duration_ms.is_not(None))
            .order_by(runs.c.scheduled_at)
        ).all()
    return [RunPoint(row.scheduled_at, int(row.duration_ms), row.status) for row in rows]
