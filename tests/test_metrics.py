"""Prometheus metrics: driven by slot events, served on loopback, scraped over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.config.observers import MetricsSettings
from scheduler.errors import ConfigError
from scheduler.observe.metrics import Metrics
from scheduler.run.events import SlotEvent
from scheduler.store import JobRow
from tests.config_tables import config_with
from tests.daemon_harness import DaemonProcess, write_config
from tests.endpoint_server import EndpointServer, Fault

SLOT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def event(job: str, status: str, **fields: object) -> SlotEvent:
    return SlotEvent(job_id=job, status=status, scheduled_at=SLOT, **fields)  # type: ignore[arg-type]


def test_events_drive_counters_histograms_and_gauges() -> None:
    metrics = Metrics()
    metrics.observe(event("sync", "failed", duration_ms=1500, lateness_ms=3, http_status=503))
    metrics.observe(event("sync", "timeout", duration_ms=30000, lateness_ms=2))
    assert sample(metrics, "cronhost_consecutive_failures", job="sync") == 2
    metrics.observe(event("sync", "ok", duration_ms=200, lateness_ms=4))
    metrics.observe(event("sync", "ok", duration_ms=100, lateness_ms=0, trigger="manual"))
    metrics.observe(event("sync", "missed", slot_count=7))
    metrics.observe(event("sync", "skipped"))
    metrics.observe(event("sync", "abandoned"))

    assert sample(metrics, "cronhost_runs_total", job="sync", status="ok") == 2
    assert sample(metrics, "cronhost_runs_total", job="sync", status="failed") == 1
    assert sample(metrics, "cronhost_runs_total", job="sync", status="missed") == 7
    assert sample(metrics, "cronhost_runs_total", job="sync", status="abandoned") == 1
    assert sample(metrics, "cronhost_missed_slots_total", job="sync") == 7
    assert sample(metrics, "cronhost_consecutive_failures", job="sync") == 0
    assert sample(metrics, "cronhost_run_duration_seconds_count", job="sync") == 4
    assert sample(metrics, "cronhost_run_duration_seconds_sum", job="sync") == pytest.approx(31.8)
    # Lateness is about the schedule: the manual run is not counted.
    assert sample(metrics, "cronhost_run_lateness_seconds_count", job="sync") == 3
    last_success = sample(metrics, "cronhost_last_success_timestamp_seconds", job="sync")
    assert last_success is not None and abs(last_success - datetime.now(UTC).timestamp()) < 5


def test_a_restart_keeps_failure_streaks_and_last_success_from_the_store() -> None:
    metrics = Metrics()
    success = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    metrics.seed([JobRow(
        job_id="sync", kind="http", schedule="* * * * *", timezone="UTC", target="", description="",
        enabled=True, paused=False, removed=False, consecutive_failures=4,
        last_success_at=success, next_run_at=None,
    )])
    assert sample(metrics, "cronhost_consecutive_failures", job="sync") == 4
    assert sample(metrics, "cronhost_last_success_timestamp_seconds", job="sync") == success.timestamp()
    metrics.observe(event("sync", "failed"))
    assert sample(metrics, "cronhost_consecutive_failures", job="sync") == 5


def test_each_daemon_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe(event("sync", "ok"))
    assert sample(second, "cronhost_runs_total", job="sync", status="ok") is None


@pytest.mark.parametrize(("table", "expected"), [
    (None, None),
    ({}, MetricsSettings("127.0.0.1", 9464)),
    ({"listen": "127.0.0.1:9100"}, MetricsSettings("127.0.0.1", 9100)),
    ({"listen": "[::1]:9100"}, MetricsSettings("::1", 9100)),
    ({"listen": "0.0.0.0:9100", "allow_remote": True}, MetricsSettings("0.0.0.0", 9100)),
    ({"enabled": False, "listen": "127.0.0.1:1"}, None),
])
def test_metrics_table_is_parsed(table: dict[str, object] | None, expected: MetricsSettings | None) -> None:
    assert config_with("metrics", table).metrics == expected


@pytest.mark.parametrize(("table", "field", "words"), [
    ({"listen": "0.0.0.0:9464"}, "metrics.listen", "no authentication"),
    ({"listen": "9464"}, "metrics.listen", "HOST:PORT"),
    ({"listen": "127.0.0.1:99999"}, "metrics.listen", "HOST:PORT"),
    ({"port": 9464}, "metrics.port", "unknown key"),
    ({"enabled": "yes"}, "metrics.enabled", "true or false"),
])
def test_bad_metrics_table_names_the_field(table: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_with("metrics", table)
    assert error.value.field == field and words in str(error.value)


def test_bad_metrics_table_fails_the_config_check(tmp_path: Path) -> None:
    from scheduler.config import load_config

    config = write_config(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nevery = "1s"\n',
                          extra='[metrics]\nlisten = "10.0.0.5:9464"\n')
    with pytest.raises(ConfigError, match="metrics.listen"):
        load_config(config, resolve_secrets=False)


def test_scrape_after_real_runs(tmp_path: Path, endpoint: EndpointServer) -> None:
    endpoint.set_default("/api/cron/broken", Fault.status(400))
    config = write_config(tmp_path, """
[[jobs]]
id = "fine"
path = "/api/cron/fine"
every = "1s"

[[jobs]]
id = "broken"
path = "/api/cron/broken"
every = "1s"
""", base_url=endpoint.url, extra='[metrics]\nlisten = "127.0.0.1:0"\n')
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        (listening,) = daemon.wait_action("metrics.listening")
        daemon.wait_action("run.finish", count=2, job="fine")
        daemon.wait_action("run.finish", count=2, job="broken")
        text = httpx.get(listening["url"], timeout=5).text
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", listening["url"])
    assert value("cronhost_up") == 1 and value("cronhost_leader") == 1
    assert value("cronhost_runs_total", job="fine", status="ok") >= 2
    assert value("cronhost_runs_total", job="broken", status="failed") >= 2
    assert value("cronhost_consecutive_failures", job="broken") >= 2
    assert value("cronhost_consecutive_failures", job="fine") == 0
    now = datetime.now(UTC)
    assert now - timedelta(seconds=30) < datetime.fromtimestamp(
        value("cronhost_last_success_timestamp_seconds", job="fine"), UTC) <= now
    assert value("cronhost_run_duration_seconds_count", job="fine") >= 2
    assert value("cronhost_run_lateness_seconds_count", job="fine") >= 2
    assert value("cronhost_run_lateness_seconds_bucket", job="fine", le="+Inf") >= 2
