"""Alert rules beyond streaks: the success-rate rule and auto_disable_after (issue 13)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from scheduler.config.alerts import ChannelSettings, Rules, parse_alerts
from scheduler.errors import ConfigError
from scheduler.observe.alerts import AlertDispatcher, Route
from scheduler.observe.alerts.rules import Alert, AlertRules
from scheduler.observe.alerts.webhook import WebhookChannel
from scheduler.run.events import SlotEvent
from scheduler.store import Store
from scheduler.store.schema import commands
from tests.daemon_harness import DaemonProcess, cli, cli_json, write_config
from tests.endpoint_server import EndpointServer, Fault

SLOT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def event(status: str, job: str = "sync", minute: int = 0, **fields: Any) -> SlotEvent:
    return SlotEvent(job_id=job, status=status, scheduled_at=SLOT + timedelta(minutes=minute),
                     **fields)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def parse(**rule: Any) -> ChannelSettings:
    return parse_alerts([{"type": "webhook", "url": "http://127.0.0.1:9/hook", **rule}],
                        ("sync",), "config.toml")[0]


# -- config ---------------------------------------------------------------------------------


def test_the_new_rule_keys_parse_and_default_off() -> None:
    assert parse().rules == Rules()
    assert (Rules().min_success_rate, Rules().rate_runs, Rules().auto_disable_after) == (
        None, 20, None)
    rules = parse(min_success_rate=0.9, rate_runs=50, auto_disable_after=25).rules
    assert (rules.min_success_rate, rules.rate_runs, rules.auto_disable_after) == (0.9, 50, 25)
    assert parse(min_success_rate=1).rules.min_success_rate == 1.0


@pytest.mark.parametrize(("rule", "field", "words"), [
    ({"min_success_rate": 90}, "alerts[1].min_success_rate", "0.9 for 90%"),
    ({"min_success_rate": 0}, "alerts[1].min_success_rate", "above 0"),
    ({"min_success_rate": "90%"}, "alerts[1].min_success_rate", "fraction"),
    ({"rate_runs": 10}, "alerts[1].rate_runs", "only counts with min_success_rate"),
    ({"min_success_rate": 0.5, "rate_runs": 1}, "alerts[1].rate_runs", ""),
    ({"auto_disable_after": 0}, "alerts[1].auto_disable_after", ""),
])
def test_bad_rule_values_name_the_field(rule: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(**rule)
    assert field in str(caught.value) and words in str(caught.value)


# -- the rate rule --------------------------------------------------------------------------


def every_other_run(rules: AlertRules, clock: Clock, minutes: int) -> list[tuple[int, Alert]]:
    """An every-minute job that fails every other run; the alerts and the minute of each."""
    sent = []
    for minute in range(minutes):
        status = "failed" if minute % 2 == 0 else "ok"
        alert = rules.decide(event(status, minute=minute, error="HTTP 503"))
        if alert is not None:
            sent.append((minute, alert))
        clock.now += 60
    return sent


def test_a_job_failing_every_other_run_raises_one_rate_alert_per_rate_limit_window() -> None:
    clock = Clock()
    rules = AlertRules(Rules(min_success_rate=0.9, rate_runs=10,
                             min_interval=timedelta(minutes=15)), lambda job_id: 3, clock)
    sent = every_other_run(rules, clock, 120)
    # The streak rule never fires (no two failures in a row); the rate rule does, first
    # once 10 runs were seen, then once per 15-minute window, each with what it held back.
    assert {alert.kind for _, alert in sent} == {"rate"}
    minutes = [minute for minute, _ in sent]
    assert minutes == [10, 26, 42, 58, 74, 90, 106]
    assert all(later - earlier >= 15 for earlier, later in zip(minutes, minutes[1:], strict=False))
    assert [alert.suppressed for _, alert in sent] == [0] + [7] * 6
    first = sent[0][1]
    assert first.success_rate == 0.5
    assert first.subject() == ("cronhost: sync success rate 50% over the last 10 runs "
                               "(alerting below 90%)")
    assert first.payload()["kind"] == "rate" and first.payload()["success_rate"] == 0.5


def test_the_rate_rule_waits_for_a_full_window_and_tells_the_recovery_once() -> None:
    clock = Clock()
    rules = AlertRules(Rules(min_success_rate=0.9, rate_runs=5), lambda job_id: 99, clock)
    assert rules.decide(event("failed")) is None  # 1 run seen: too few to judge
    for _ in range(3):
        assert rules.decide(event("ok")) is None
    alert = rules.decide(event("failed"))  # 5 runs, 3 ok: 60%
    assert alert is not None and alert.kind == "rate" and alert.success_rate == 0.6
    clock.now += 60
    for _ in range(4):  # 80% each time: still below 90%
        assert rules.decide(event("ok")) is None
    recovery = rules.decide(event("ok"))  # the last failure left the window: 100%
    assert recovery is not None and recovery.kind == "recovery"
    assert rules.decide(event("ok")) is None


def test_without_min_success_rate_a_flapping_job_stays_quiet() -> None:
    rules = AlertRules(Rules(), lambda job_id: 3, Clock())
    assert every_other_run(rules, Clock(), 60) == []


def test_rate_alerts_reach_a_real_webhook_once_per_window(endpoint: EndpointServer) -> None:
    clock = Clock()
    settings = parse(url=endpoint.url + "/hook", min_success_rate=0.9, rate_runs=10,
                     min_interval="15m", retries=0)
    route = Route(settings, AlertRules(settings.rules, lambda job_id: 3, clock),
                  WebhookChannel(settings.name, endpoint.url + "/hook", timeout=5,
                                 user_agent="cronhost/test"))

    async def main() -> None:
        dispatcher = AlertDispatcher([route])
        for minute in range(60):
            dispatcher.observe(event("failed" if minute % 2 == 0 else "ok", minute=minute))
            clock.now += 60
        await dispatcher.aclose(5)

    asyncio.run(main())
    bodies = [request.json() for request in endpoint.requests("/hook")]
    assert [body["kind"] for body in bodies] == ["rate"] * 4  # minutes 10, 26, 42, 58
    # Delivered by background tasks: in any order on a loaded machine.
    assert sorted(body["slot"] for body in bodies) == [
        (SLOT + timedelta(minutes=minute)).isoformat() for minute in (10, 26, 42, 58)]


# -- auto_disable_after ---------------------------------------------------------------------


def test_auto_disable_fires_at_n_then_2n_consecutive_failures_and_is_never_held_back() -> None:
    clock = Clock()
    rules = AlertRules(Rules(auto_disable_after=4, min_interval=timedelta(hours=1)),
                       lambda job_id: 1, clock)
    kinds = []
    for _ in range(8):
        alert = rules.decide(event("timeout"))
        kinds.append(alert.kind if alert else None)
    # 1: failure alert; 2, 3: held back by min_interval; 4: auto-disabled, told at once.
    assert kinds == ["failure", None, None, "auto_disabled", None, None, None, "auto_disabled"]


def test_the_auto_disable_alert_says_what_happened() -> None:
    rules = AlertRules(Rules(auto_disable_after=2), lambda job_id: 5, Clock())
    assert rules.decide(event("failed")) is None
    alert = rules.decide(event("failed", error="HTTP 500 Internal Server Error"))
    assert alert is not None and alert.kind == "auto_disabled"
    assert alert.reason == "auto-disabled after 2 failures"
    assert alert.subject() == "cronhost: sync AUTO-DISABLED (auto-disabled after 2 failures)"
    assert "cronhost resume sync" in alert.text() and "HTTP 500" in alert.text()
    assert alert.payload()["reason"] == "auto-disabled after 2 failures"


def _job_state(store: Store, job_id: str) -> None:
    store.sync_jobs([{"job_id": job_id, "kind": "http", "schedule": "* * * * *",
                      "timezone": "UTC", "target": "GET https://x/y", "description": "",
                      "enabled": True}])


def test_auto_disable_pauses_once_with_its_reason_whichever_channels_decide_it(
    store: Store, endpoint: EndpointServer,
) -> None:
    _job_state(store, "sync")
    routes = []
    for index in (1, 2):
        settings = parse(auto_disable_after=3, retries=0)
        routes.append(Route(settings, AlertRules(settings.rules, lambda job_id: 1, Clock()),
                            WebhookChannel(f"hook{index}", f"{endpoint.url}/hook{index}",
                                           timeout=5, user_agent="cronhost/test")))

    def pause(job_id: str, reason: str) -> None:
        if store.set_paused(job_id, True, reason):
            store.add_command("pause", job_id, requested_by="auto-disable")

    async def main() -> None:
        dispatcher = AlertDispatcher(routes, auto_disable=pause)
        for _ in range(3):
            dispatcher.observe(event("failed"))
        await dispatcher.aclose(5)

    asyncio.run(main())
    (job,) = store.jobs()
    assert job.paused and job.paused_reason == "auto-disabled after 3 failures"
    with store.engine.connect() as conn:
        rows = conn.execute(select(commands.c.kind, commands.c.job_id, commands.c.requested_by)
                            ).all()
    assert [tuple(row) for row in rows] == [("pause", "sync", "auto-disable")]
    for path in ("/hook1", "/hook2"):
        # failure (1st), held back (2nd), auto_disabled (3rd, never held back)
        assert sorted(r.json()["kind"] for r in endpoint.requests(path)) == [
            "auto_disabled", "failure"]
    # A resume clears the reason; an operator's pause records none.
    store.set_paused("sync", False)
    assert store.jobs()[0].paused_reason is None
    store.set_paused("sync", True)
    assert store.jobs()[0].paused and store.jobs()[0].paused_reason is None


@pytest.mark.slow
def test_the_daemon_auto_disables_a_failing_job_and_resume_clears_it(
    tmp_path: Path, endpoint: EndpointServer,
) -> None:
    endpoint.set_default("/api/cron/broken", Fault.status(400))  # 4xx: not retried
    config = write_config(tmp_path, f"""
[[alerts]]
type = "webhook"
url = "{endpoint.url}/hooks/alert"
auto_disable_after = 3
min_interval = "1h"

[[jobs]]
id = "broken"
path = "/api/cron/broken"
every = "1s"
""", base_url=endpoint.url)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_action("job.auto_disabled", job="broken")
        daemon.wait_action("job.pause", job="broken")
        status = cli_json(config, "status")
        (job,) = [j for j in status["jobs"] if j["job_id"] == "broken"]
        assert job["paused"] and job["paused_reason"] == "auto-disabled after 3 failures"
        text = cli(config, "status").stdout
        assert "auto-disabled" in text and "cronhost resume broken" in text
        # The third failure is both the streak threshold (3 for an every-second job) and
        # auto_disable_after: one alert, the one that says the job is paused.
        (alert,) = endpoint.wait_for_requests("/hooks/alert", 1)
        assert alert.json()["kind"] == "auto_disabled"
        # Paused: no more requests reach the endpoint (one may have been in flight).
        calls = len(endpoint.requests("/api/cron/broken"))
        assert calls in (3, 4)
        # Fixed before the resume: three more failures would (rightly) disable it again
        # while this test reads the status.
        endpoint.set_default("/api/cron/broken", Fault.ok())
        assert cli(config, "resume", "broken").returncode == 0
        daemon.wait_action("job.resume", job="broken")
        (job,) = [j for j in cli_json(config, "status")["jobs"] if j["job_id"] == "broken"]
        assert not job["paused"] and job["paused_reason"] is None
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
