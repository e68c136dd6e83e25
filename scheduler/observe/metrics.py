"""Prometheus metrics, opt-in: ``[metrics] listen = "127.0.0.1:9464"``.

Everything is driven from slot events (the same facts the run history holds),
kept in a registry of our own (not prometheus_client's global one, which would
also export the process collectors and clash between daemons in one test run),
and served by prometheus_client's small HTTP server in a thread.

    cronhost_runs_total{job,status}                 slots that ended, by final status
    cronhost_slots_due_total{job}                   slots of the schedule that ended (manual
                                                    runs are not due), any status
    cronhost_missed_slots_total{job}                slots not run (one event can stand for many)
    cronhost_run_errors_total{job,kind}             failed and timed-out runs by error kind
                                                    (http_5xx, http_4xx, http_3xx, timeout,
                                                    connection, success_false, python_exception)
    cronhost_run_duration_seconds{job}              histogram, runs that ran
    cronhost_run_lateness_seconds{job}              histogram, scheduled runs: start - slot
    cronhost_last_success_timestamp_seconds{job}    unix time of the last ok run
    cronhost_consecutive_failures{job}              failed/timeout runs since the last ok
    cronhost_up, cronhost_leader                    1 while this daemon runs (and leads)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from scheduler.config.observers import MetricsSettings
from scheduler.run.events import SlotEvent
from scheduler.store import JobRow
from scheduler.store.report import error_kind

# Runs of LeadMap's jobs last from milliseconds to the 2-minute deadline.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# The daemon aims at a few ms; seconds mean a busy loop, minutes mean catch-up after downtime.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300)
RAN = frozenset({"ok", "failed", "timeout"})
FAILED = frozenset({"failed", "timeout"})


class Metrics:
    """The daemon's metrics; :meth:`observe` is an :class:`~scheduler.run.events.EventBus` listener."""

    def __init__(self, kind_of: Callable[[str], str | None] = lambda job_id: None) -> None:
        self._kind_of = kind_of  # a job's kind (http, python): error kinds depend on it
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("cronhost_runs", "Slots that reached a final status.",
                            ["job", "status"], registry=r)
        self.missed = Counter("cronhost_missed_slots", "Slots that were not run.",
                              ["job"], registry=r)
        self.due = Counter("cronhost_slots_due", "Slots of the job's schedule that ended "
                           "(any status; manual runs are not due).", ["job"], registry=r)
        self.errors = Counter("cronhost_run_errors", "Failed and timed-out runs by error kind.",
                              ["job", "kind"], registry=r)
        self.duration = Histogram("cronhost_run_duration_seconds", "How long runs took.",
                                  ["job"], buckets=DURATION_BUCKETS, registry=r)
        self.lateness = Histogram("cronhost_run_lateness_seconds",
                                  "How late scheduled runs started after their slot.",
                                  ["job"], buckets=LATENESS_BUCKETS, registry=r)
        self.last_success = Gauge("cronhost_last_success_timestamp_seconds",
                                  "Unix time of the last successful run.", ["job"], registry=r)
        self.failures = Gauge("cronhost_consecutive_failures",
                              "Failed or timed-out runs since the last success.", ["job"],
                              registry=r)
        self.up = Gauge("cronhost_up", "1 while the daemon runs.", registry=r)
        self.leader = Gauge("cronhost_leader",
                            "1 while this daemon leads (fires jobs); a single daemon always leads.",
                            registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def seed(self, jobs: Iterable[JobRow]) -> None:
        """Start from what the store knows, so a restart does not reset a failure streak to 0."""
        for job in jobs:
            if job.removed:
                continue
            self.failures.labels(job.job_id).set(job.consecutive_failures)
            if job.last_success_at is not None:
                self.last_success.labels(job.job_id).set(job.last_success_at.timestamp())

    def observe(self, event: SlotEvent) -> None:
        job = event.job_id
        count = max(event.slot_count, 1)
        self.runs.labels(job, event.status).inc(count)
        if event.status == "missed":
            self.missed.labels(job).inc(count)
        if event.trigger == "schedule":
            self.due.labels(job).inc(count)
        kind = error_kind(event.status, event.http_status, event.error, self._kind_of(job))
        if kind is not None:
            self.errors.labels(job, kind).inc()
        if event.status in RAN and event.duration_ms is not None:
            self.duration.labels(job).observe(event.duration_ms / 1000)
        if event.status in RAN and event.trigger == "schedule" and event.lateness_ms is not None:
            self.lateness.labels(job).observe(max(event.lateness_ms, 0) / 1000)
        if event.status == "ok":
            self.failures.labels(job).set(0)
            self.last_success.labels(job).set(time.time())
        elif event.status in FAILED:
            self.failures.labels(job).inc()

    def serve(self, settings: MetricsSettings) -> tuple[str, int]:
        """Start the HTTP endpoint; returns the address bound (port 0 picks a free port)."""
        self.up.set(1)
        self.leader.set(1)
        self._server, self._thread = start_http_server(
            settings.port, settings.host, registry=self.registry
        )
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.up.set(0)
        self.leader.set(0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
