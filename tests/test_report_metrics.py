"""The report's numbers are derivable from the Prometheus series (README says which)."""

from __future__ import annotations

from datetime import timedelta

from scheduler.observe.metrics import Metrics
from scheduler.run.events import SlotEvent
from scheduler.store import Store
from scheduler.views.report import job_reports
from tests.test_report import NOW, SINCE, mixed_rows, write


def test_counts_and_error_kinds_from_metrics_match_the_report(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    rows = [row for row in mixed_rows(seed=3)
            if row.minutes_ago <= 24 * 60 and row.status != "running"]
    write(store, rows)
    kinds = {"api": "http", "py": "python"}
    metrics = Metrics(kind_of=kinds.get)
    for row in rows:  # the events the runner would have published for these rows
        metrics.observe(SlotEvent(
            job_id=row.job_id, status=row.status, trigger=row.trigger,
            scheduled_at=NOW - timedelta(minutes=row.minutes_ago), http_status=row.http_status,
            duration_ms=row.duration_ms, lateness_ms=row.lateness_ms, error=row.error,
            slot_count=row.slot_count))
    reports = {report.job_id: report for report in job_reports(store, SINCE, NOW)}
    store.dispose()

    def value(name: str, **labels: str) -> int:
        return int(metrics.registry.get_sample_value(name, labels) or 0)

    for job in ("api", "py"):
        report = reports[job]
        assert value("cronhost_slots_due_total", job=job) == report.due
        for status in ("ok", "failed", "timeout", "missed", "skipped", "abandoned"):
            assert value("cronhost_runs_total", job=job, status=status) == getattr(report, status)
        assert value("cronhost_missed_slots_total", job=job) == report.missed
        errors = {kind: value("cronhost_run_errors_total", job=job, kind=kind)
                  for kind in report.errors}
        assert errors == report.errors and sum(errors.values()) == report.failed + report.timeout
        ran = sum(value("cronhost_runs_total", job=job, status=s)
                  for s in ("ok", "failed", "timeout", "abandoned"))
        assert value("cronhost_runs_total", job=job, status="ok") / ran == report.success_rate
        assert value("cronhost_run_duration_seconds_count", job=job) == (
            report.ok + report.failed + report.timeout)
