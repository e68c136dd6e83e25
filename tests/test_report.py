"""`cronhost report`: each job's numbers over a window, computed in the database.

The expected values are worked out here, in plain Python, from the rows the test wrote;
the store's SQL must agree with them on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.cli import main
from scheduler.store import Store
from scheduler.store.report import error_kind, job_figures
from scheduler.store.schema import runs
from scheduler.views.report import job_reports

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)


@dataclass(frozen=True)
class Row:
    job_id: str
    status: str
    minutes_ago: float
    duration_ms: int | None = None
    lateness_ms: int | None = None
    http_status: int | None = None
    error: str | None = None
    trigger: str = "schedule"
    slot_count: int = 1
    kind: str | None = None  # the error kind this row must be counted under


# What the job kinds write (jobs/http.py, jobs/http_retry.py, jobs/python.py), and the kind.
HTTP_FAILURES = [
    ("failed", 503, "HTTP 503 Service Unavailable after 3 attempts", "http_5xx"),
    ("failed", 500, "HTTP 500 Internal Server Error: database down", "http_5xx"),
    ("failed", 404, "HTTP 404 Not Found", "http_4xx"),
    ("failed", 401, "HTTP 401 Unauthorized", "http_4xx"),
    ("failed", 301, "HTTP 301 Moved Permanently: redirect to https://x/ not followed; point "
                    "the job at the final URL", "http_3xx"),
    ("failed", None, "connection refused by app.example:443 after 3 attempts", "connection"),
    ("failed", None, "DNS lookup failed for host app.example", "connection"),
    # A 503, then a refused connection: the error is the last attempt's.
    ("failed", 503, "connection refused by app.example:443 after 2 attempts", "connection"),
    ("failed", 200, "quota exceeded for today", "success_false"),
    ("failed", 200, 'the job answered "success": false with no message', "success_false"),
    ("failed", 200, 'the endpoint answered "success": false', "success_false"),
    ("timeout", None, "timed out after 30.0 s (attempt 3 of 3)", "timeout"),
    ("timeout", 503, "timed out after 30.0 s (attempt 2 of 2)", "timeout"),
]
PYTHON_FAILURES = [
    ("failed", None, "ValueError: bad input: 3", "python_exception"),
    ("failed", None, "TimeoutError: the API said so", "python_exception"),
    ("failed", None, "nothing to send today", "success_false"),
    ("failed", None, 'the job answered "success": false', "success_false"),
    ("timeout", None, "timed out after 5 s; the function runs in a thread that cannot be "
                      "stopped and was left to finish", "timeout"),
]


def mixed_rows(seed: int = 13) -> list[Row]:
    """Two jobs' last 24 h with every outcome, plus rows outside the window."""
    rng = random.Random(seed)
    rows: list[Row] = []
    for job_id, failures in (("api", HTTP_FAILURES), ("py", PYTHON_FAILURES)):
        for minute in range(1, 300):
            roll = rng.random()
            took, late = rng.randint(5, 4000), rng.randint(0, 900)
            if roll < 0.7:
                rows.append(Row(job_id, "ok", minute * 4, took, late, 200 if job_id == "api"
                                else None))
            elif roll < 0.85:
                status, http, error, kind = failures[minute % len(failures)]
                rows.append(Row(job_id, status, minute * 4, took, late, http, error, kind=kind))
            elif roll < 0.9:
                rows.append(Row(job_id, "skipped", minute * 4, 0, late,
                                error="skipped: the previous run of this job was still running"))
            elif roll < 0.95:
                rows.append(Row(job_id, "abandoned", minute * 4, None, late))
            else:
                rows.append(Row(job_id, "missed", minute * 4, error="missed: down"))
        # A row for many missed slots, manual runs (not due), a run still going.
        rows.append(Row(job_id, "missed", 1300, slot_count=7, error="7 slots did not run"))
        rows.append(Row(job_id, "ok", 3.5, 12, 9, trigger="manual"))
        rows.append(Row(job_id, "failed", 2.5, 15, 4, 503 if job_id == "api" else None,
                        failures[0][2], trigger="manual", kind=failures[0][3]))
        rows.append(Row(job_id, "running", 0.5, None, 3))
        # Outside the window: must not count.
        rows.append(Row(job_id, "failed", 24 * 60 + 5, 99_999, 99_999, 500, "HTTP 500 x"))
        rows.append(Row(job_id, "ok", 48 * 60, 1, 1, 200))
    return rows


def write(store: Store, rows: list[Row], now: datetime = NOW) -> None:
    store.sync_jobs([
        {"job_id": "api", "kind": "http", "schedule": "*/4 * * * *", "timezone": "UTC",
         "target": "GET https://app.example/api/cron/x", "description": "", "enabled": True},
        {"job_id": "py", "kind": "python", "schedule": "*/4 * * * *", "timezone": "UTC",
         "target": "tasks:run", "description": "", "enabled": True},
        {"job_id": "quiet", "kind": "http", "schedule": "0 3 * * *", "timezone": "UTC",
         "target": "GET https://app.example/api/cron/q", "description": "", "enabled": True},
    ])
    values = []
    for row in rows:
        slot = now - timedelta(minutes=row.minutes_ago)
        started = (slot + timedelta(milliseconds=row.lateness_ms)
                   if row.lateness_ms is not None else None)
        values.append({
            "job_id": row.job_id, "trigger": row.trigger, "scheduled_at": slot,
            "status": row.status, "attempts": 1, "http_status": row.http_status,
            "started_at": started, "duration_ms": row.duration_ms,
            "lateness_ms": row.lateness_ms, "error": row.error,
            "idempotency_key": f"{row.job_id}@{slot.isoformat()}", "slot_count": row.slot_count,
        })
    with store.engine.begin() as conn:
        conn.execute(runs.insert(), values)


def nearest_rank(values: list[int], percent: int) -> int | None:
    """The value at position ceil(n * percent / 100) of the sorted values (1-based)."""
    if not values:
        return None
    ordered = sorted(values)
    position = max(1, -(-len(ordered) * percent // 100))
    return ordered[position - 1]


def expected(rows: list[Row], job_id: str, since: datetime, until: datetime,
             now: datetime = NOW) -> dict[str, Any]:
    mine = [row for row in rows if row.job_id == job_id
            and since <= now - timedelta(minutes=row.minutes_ago) <= until]

    def slots(status: str) -> int:
        return sum(row.slot_count for row in mine if row.status == status)

    ran = [row for row in mine if row.status in ("ok", "failed", "timeout")]
    durations = [row.duration_ms for row in ran if row.duration_ms is not None]
    lateness = [row.lateness_ms for row in ran
                if row.trigger == "schedule" and row.lateness_ms is not None]
    errors: dict[str, int] = {}
    for row in mine:
        if row.status in ("failed", "timeout"):
            assert row.kind is not None
            errors[row.kind] = errors.get(row.kind, 0) + 1
    counted = slots("ok") + slots("failed") + slots("timeout") + slots("abandoned")
    return {
        "job_id": job_id,
        "due": sum(row.slot_count for row in mine if row.trigger == "schedule"),
        "runs": counted, "ok": slots("ok"), "failed": slots("failed"),
        "timeout": slots("timeout"), "missed": slots("missed"), "skipped": slots("skipped"),
        "abandoned": slots("abandoned"), "running": slots("running"),
        "manual": sum(1 for row in mine if row.trigger == "manual"),
        "success_rate": slots("ok") / counted if counted else None,
        "error_rate": (slots("failed") + slots("timeout")) / counted if counted else None,
        "duration_ms": {"p50": nearest_rank(durations, 50), "p95": nearest_rank(durations, 95),
                        "max": max(durations) if durations else None},
        "lateness_ms": {"p50": nearest_rank(lateness, 50), "p99": nearest_rank(lateness, 99)},
        "errors": errors,
    }


def without_window(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in ("since", "until")}


def test_report_counts_rates_percentiles_and_error_kinds_match_the_rows(store: Store) -> None:
    rows = mixed_rows()
    write(store, rows)
    reports = {r.job_id: r.to_json() for r in job_reports(store, SINCE, NOW)}
    assert set(reports) == {"api", "py", "quiet"}
    for job_id in ("api", "py"):
        want = expected(rows, job_id, SINCE, NOW)
        got = without_window(reports[job_id])
        assert got == want, job_id
        assert list(got["errors"].values()) == sorted(got["errors"].values(), reverse=True)
    # The mix really holds every kind there is (else the test proves less than it says).
    assert set(reports["api"]["errors"]) == {"http_5xx", "http_4xx", "http_3xx", "connection",
                                             "success_false", "timeout"}
    assert set(reports["py"]["errors"]) == {"python_exception", "success_false", "timeout"}
    quiet = reports["quiet"]
    assert (quiet["due"], quiet["runs"], quiet["success_rate"], quiet["errors"]) == (0, 0, None, {})
    assert quiet["duration_ms"] == {"p50": None, "p95": None, "max": None}


def test_a_short_window_and_a_chosen_job(store: Store) -> None:
    rows = mixed_rows(seed=5)
    write(store, rows)
    since = NOW - timedelta(hours=1)
    (report,) = job_reports(store, since, NOW, ["py"])
    assert without_window(report.to_json()) == expected(rows, "py", since, NOW)


@pytest.mark.parametrize("values", [[7], [3, 1], [5, 5, 5, 1], list(range(1, 101)),
                                    list(range(200, 0, -3))])
def test_percentiles_are_nearest_rank_for_any_count(store: Store, values: list[int]) -> None:
    rows = [Row("api", "ok", i + 1, value, value) for i, value in enumerate(values)]
    write(store, rows)
    (figures,) = job_figures(store, SINCE, NOW, ["api"])
    assert figures.duration == {"p50": nearest_rank(values, 50), "p95": nearest_rank(values, 95),
                                "max": max(values)}
    assert figures.lateness == {"p50": nearest_rank(values, 50), "p99": nearest_rank(values, 99)}


def test_the_sql_and_the_python_error_kinds_agree(store: Store) -> None:
    rows = [Row("api", status, i + 1, 10, 1, http, error, kind=kind)
            for i, (status, http, error, kind) in enumerate(HTTP_FAILURES)]
    rows += [Row("py", status, i + 1, 10, 1, http, error, kind=kind)
             for i, (status, http, error, kind) in enumerate(PYTHON_FAILURES)]
    write(store, rows)
    for job_id, kind in (("api", "http"), ("py", "python")):
        (figures,) = job_figures(store, SINCE, NOW, [job_id])
        python_side: dict[str, int] = {}
        for row in rows:
            if row.job_id == job_id:
                found = error_kind(row.status, row.http_status, row.error, kind)
                assert found == row.kind, row
                python_side[found] = python_side.get(found, 0) + 1
        assert figures.errors == python_side
    assert error_kind("ok", 200, None, "http") is None


# -- the command ------------------------------------------------------------------------------


def cli_store(tmp_path: Path, rows: list[Row], now: datetime) -> Path:
    db = tmp_path / "cronhost.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    write(store, rows, now)
    store.dispose()
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    return config


def test_cronhost_report_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = mixed_rows(seed=21)
    now = datetime.now(UTC)  # the command reports up to the moment it runs
    config = cli_store(tmp_path, rows, now)
    assert main(["-c", str(config), "report", "--json", "--since", "24h"]) == 0
    listed = {item["job_id"]: item for item in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"api", "py", "quiet"}
    # Its window ends a moment after `now`: no row is that close to either edge.
    for job_id in ("api", "py"):
        assert without_window(listed[job_id]) == expected(
            rows, job_id, now - timedelta(hours=24), now, now), job_id

    assert main(["-c", str(config), "report", "api", "--since", "7d"]) == 0
    out = capsys.readouterr().out
    assert "SUCCESS" in out and "HTTP 5xx" in out and "api" in out and "py" not in out.split()

    assert main(["-c", str(config), "report", "--since", "soon"]) == 2
    assert "--since 'soon'" in capsys.readouterr().err
    assert main(["-c", str(config), "report", "nope"]) == 2
    assert "no job 'nope'" in capsys.readouterr().err
