"""Alerts: when a slot event becomes an alert, and delivery to a real webhook and SMTP server."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from scheduler.config import load_config
from scheduler.config.alerts import (
    ChannelSettings,
    EmailSettings,
    Rules,
    parse_alerts,
    resolve_secrets,
)
from scheduler.config.observers import HeartbeatSettings
from scheduler.engine.triggers import CrontabTrigger, EveryTrigger
from scheduler.errors import ConfigError, SecretError
from scheduler.observe import Observability
from scheduler.observe.alerts import AlertDispatcher, Route, build_routes
from scheduler.observe.alerts.email import EmailChannel
from scheduler.observe.alerts.rules import Alert, AlertRules, default_after_failures
from scheduler.observe.heartbeat import HeartbeatPinger
from scheduler.run.events import EventBus, SlotEvent
from scheduler.store import Store
from tests.config_tables import config_with
from tests.daemon_harness import DaemonProcess, write_config
from tests.endpoint_server import EndpointServer, Fault

SLOT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def event(status: str, job: str = "sync", **fields: Any) -> SlotEvent:
    return SlotEvent(job_id=job, status=status, scheduled_at=SLOT, **fields)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rules(clock: Clock | None = None, threshold: int = 3, **settings: Any) -> AlertRules:
    return AlertRules(Rules(**settings), lambda job_id: threshold, clock or Clock())


# -- thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize(("trigger", "expected"), [
    (CrontabTrigger("* * * * *", "UTC"), 3),
    (CrontabTrigger("*/5 * * * *", "UTC"), 3),
    (CrontabTrigger("*/30 * * * *", "UTC"), 3),
    (EveryTrigger(timedelta(seconds=1)), 3),
    (CrontabTrigger("0 * * * *", "UTC"), 1),
    (CrontabTrigger("0 3 * * *", "UTC"), 1),
    (CrontabTrigger("0 9 * * 1", "Europe/Paris"), 1),
])
def test_default_threshold_is_3_for_jobs_firing_more_often_than_hourly(trigger: Any, expected: int) -> None:
    assert default_after_failures(trigger, SLOT) == expected


# -- rules --------------------------------------------------------------------------------


def test_a_blip_of_a_frequent_job_stays_quiet_and_the_third_failure_alerts() -> None:
    r = rules(threshold=3)
    assert r.decide(event("failed")) is None
    assert r.decide(event("timeout")) is None
    alert = r.decide(event("failed", error="HTTP 503"))
    assert alert is not None and alert.kind == "failure" and alert.consecutive_failures == 3
    assert "3 in a row" in alert.text() and "HTTP 503" in alert.text()


def test_an_ok_resets_the_streak() -> None:
    r = rules(threshold=2)
    assert r.decide(event("failed")) is None
    assert r.decide(event("ok")) is None  # never alerted: no recovery either
    assert r.decide(event("failed")) is None


def test_a_failing_every_minute_job_sends_4_alerts_an_hour_not_60() -> None:
    clock = Clock()
    r = rules(clock, threshold=3)
    sent: list[Alert] = []
    for _ in range(60):
        alert = r.decide(event("failed"))
        if alert is not None:
            sent.append(alert)
        clock.advance(60)
    assert [a.consecutive_failures for a in sent] == [3, 18, 33, 48]
    assert [a.suppressed for a in sent] == [0, 14, 14, 14]
    assert "14 more alerts for this job held back" in sent[1].text()


def test_recovery_is_told_once_and_never_held_back() -> None:
    clock = Clock()
    r = rules(clock, threshold=1)
    assert r.decide(event("failed")) is not None
    clock.advance(60)  # well inside min_interval
    recovery = r.decide(event("ok", run_id=9))
    assert recovery is not None and recovery.kind == "recovery"
    assert "recovered" in recovery.text()
    assert r.decide(event("ok")) is None


def test_no_recovery_when_the_failures_were_never_told() -> None:
    clock = Clock()
    r = rules(clock, threshold=1)
    r.decide(event("failed"))
    r.decide(event("ok"))  # recovery sent
    clock.advance(60)
    assert r.decide(event("failed")) is None  # held back by min_interval
    assert r.decide(event("ok")) is None  # the operator's last word is already "recovered"


def test_on_recovery_false_keeps_quiet() -> None:
    r = rules(threshold=1, on_recovery=False)
    assert r.decide(event("failed")) is not None
    assert r.decide(event("ok")) is None


def test_missed_and_abandoned_alert_unless_turned_off() -> None:
    clock = Clock()
    r = rules(clock)
    missed = r.decide(event("missed", slot_count=12, error="daemon was down"))
    assert missed is not None and "MISSED 12 slots" in missed.subject()
    clock.advance(3600)
    abandoned = r.decide(event("abandoned", run_id=4))
    assert abandoned is not None and abandoned.kind == "abandoned"
    quiet = rules(on_missed=False, on_abandoned=False)
    assert quiet.decide(event("missed")) is None and quiet.decide(event("abandoned")) is None
    assert rules().decide(event("skipped")) is None


def test_the_jobs_filter_limits_a_channel() -> None:
    r = rules(threshold=1, jobs=frozenset({"other"}))
    assert r.decide(event("failed", job="sync")) is None
    assert r.decide(event("failed", job="other")) is not None


def test_the_rate_limit_is_per_job() -> None:
    r = rules(threshold=1)
    assert r.decide(event("failed", job="a")) is not None
    assert r.decide(event("failed", job="b")) is not None
    assert r.decide(event("failed", job="a")) is None


def test_a_streak_carried_over_a_restart_alerts_and_recovers() -> None:
    r = rules(threshold=3)
    r.seed("sync", 5)
    failure = r.decide(event("failed"))
    assert failure is not None and failure.consecutive_failures == 6
    r2 = rules(threshold=3)
    r2.seed("sync", 5)
    recovery = r2.decide(event("ok"))
    assert recovery is not None and recovery.kind == "recovery"


def test_payload_is_slack_compatible_with_structured_fields() -> None:
    alert = rules(threshold=1).decide(
        event("failed", run_id=42, http_status=500, attempts=3,
              error="HTTP 500 Internal Server Error after 3 attempts", message="boom"))
    assert alert is not None
    payload = alert.payload()
    assert isinstance(payload["text"], str) and "sync" in payload["text"]
    # cronhost's reason, then the endpoint's words.
    assert "HTTP 500 Internal Server Error after 3 attempts · boom" in payload["text"]
    assert payload | {"text": "", "host": ""} == payload | {
        "text": "", "host": "", "kind": "failure", "job": "sync", "slot": SLOT.isoformat(),
        "status": "failed", "error": "HTTP 500 Internal Server Error after 3 attempts",
        "message": "boom", "run_id": 42, "http_status": 500, "attempts": 3}
    json.dumps(payload)


# -- settings -----------------------------------------------------------------------------


def parse(*tables: dict[str, Any], jobs: tuple[str, ...] = ("sync",)) -> tuple[ChannelSettings, ...]:
    return parse_alerts(list(tables), jobs, "config.toml")


def test_alert_tables_parse_with_defaults() -> None:
    webhook, email = parse(
        {"type": "webhook", "url": "https://example.com/api/alerts/cronhost"},
        {"type": "email", "host": "smtp.example.com", "from": "cron@example.com",
         "to": ["ops@example.com"], "username": "cron", "password_secret": "SMTP_PASSWORD",
         "jobs": ["sync"], "after_failures": 2, "min_interval": "1h", "on_missed": False},
    )
    assert webhook.rules == Rules() and webhook.retries == 4
    assert email.email == EmailSettings(
        host="smtp.example.com", port=587, starttls=True, ssl=False, sender="cron@example.com",
        to=("ops@example.com",), username="cron", password_secret="SMTP_PASSWORD")
    assert email.rules == Rules(jobs=frozenset({"sync"}), after_failures=2,
                                min_interval=timedelta(hours=1), on_missed=False)


@pytest.mark.parametrize(("table", "field", "words"), [
    ({"type": "pager"}, "alerts[1].type", '"webhook" or "email"'),
    ({"type": "webhook", "url": "https://a.example/x", "colour": "red"}, "alerts[1].colour",
     "unknown key"),
    ({"type": "webhook"}, "alerts[1].url", "exactly one of"),
    ({"type": "webhook", "url": "http://hooks.example.com/x"}, "alerts[1].url", "https://"),
    ({"type": "webhook", "url": "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/"
      "abcDEF123ghiJKL456mnoPQR"}, "alerts[1].url", "url_secret"),
    ({"type": "webhook", "url_secret": "xoxb-1234567890-abcdefghij"}, "alerts[1].url_secret",
     "NAME of a secret"),
    ({"type": "webhook", "url": "https://a.example/x", "jobs": ["nope"]}, "alerts[1].jobs",
     "no such job: nope"),
    ({"type": "webhook", "url": "https://a.example/x", "after_failures": 0},
     "alerts[1].after_failures", "from 1"),
    ({"type": "webhook", "url": "https://a.example/x", "min_interval": "soon"},
     "alerts[1].min_interval", "duration"),
    ({"type": "email", "host": "smtp.example.com", "from": "a@example.com"}, "alerts[1].to",
     "needs `to`"),
    ({"type": "email", "host": "smtp.example.com", "from": "a@example.com", "to": ["a@example.com"],
      "starttls": False, "username": "u", "password_secret": "P"}, "alerts[1].starttls",
     "clear text"),
    ({"type": "email", "host": "smtp.example.com", "from": "a@example.com", "to": ["a@example.com"],
      "ca_file": "ca.pem"}, "alerts[1].ca_file", "absolute path"),
    ({"type": "email", "host": "127.0.0.1", "from": "a@example.com", "to": ["a@example.com"],
      "ca_file": "/etc/ca.pem"}, "alerts[1].ca_file", "only used with starttls"),
])
def test_bad_alert_tables_name_the_field(table: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(table)
    assert error.value.field == field and words in str(error.value)


def test_missing_alert_secret_fails_the_config_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRON_SECRET", "x")
    config = write_config(tmp_path, '[[jobs]]\nid = "a"\npath = "/a"\nevery = "1s"\n',
                          extra='[[alerts]]\ntype = "webhook"\nurl_secret = "SLACK_URL"\n')
    load_config(config, resolve_secrets=False)  # `cronhost status` etc. need no secret
    with pytest.raises(SecretError, match=r"alerts\[1\]\.url_secret.*SLACK_URL"):
        load_config(config)
    monkeypatch.setenv("SLACK_URL", "http://hooks.example.com/x")
    with pytest.raises(SecretError, match="https://"):
        load_config(config)
    monkeypatch.setenv("SLACK_URL", "https://hooks.example.com/T0/B0/xYz123AbC456dEf789")
    assert resolve_secrets(parse({"type": "webhook", "url_secret": "SLACK_URL"}), "c") == {
        "SLACK_URL": "https://hooks.example.com/T0/B0/xYz123AbC456dEf789"}


# -- delivery -----------------------------------------------------------------------------


def one_route(settings: ChannelSettings, secrets: dict[str, str] | None = None) -> list[Route]:
    return build_routes([settings], secrets or {}, lambda job_id: 1, user_agent="cronhost/test")


def webhook_settings(url: str, retries: int = 2, **rule: Any) -> ChannelSettings:
    return parse({"type": "webhook", "url": url, "retries": retries, "after_failures": 1, **rule})[0]


async def deliver(dispatcher: AlertDispatcher, *events: SlotEvent, timeout: float = 5) -> None:
    for e in events:
        dispatcher.observe(e)
    await dispatcher.aclose(timeout)


def test_webhook_alert_is_posted_as_json(endpoint: EndpointServer) -> None:
    dispatcher = AlertDispatcher(one_route(webhook_settings(endpoint.url + "/hook")))
    asyncio.run(deliver(dispatcher, event("failed", run_id=7, error="HTTP 503")))
    (request,) = endpoint.requests("/hook")
    body = request.json()
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert body["job"] == "sync" and body["run_id"] == 7 and body["error"] == "HTTP 503"
    assert body["status"] == "failed" and body["slot"] == SLOT.isoformat()
    assert "sync FAILED" in body["text"]


def test_undelivered_alert_is_retried_with_backoff(endpoint: EndpointServer) -> None:
    endpoint.program("/hook", Fault.status(503), Fault.reset())
    dispatcher = AlertDispatcher(one_route(webhook_settings(endpoint.url + "/hook")),
                                 backoff_initial=0.05)
    asyncio.run(deliver(dispatcher, event("failed")))
    assert len(endpoint.requests("/hook")) == 3
    assert dispatcher.delivered == 1 and dispatcher.failed == 0


def test_retries_are_bounded_and_a_4xx_is_not_retried(endpoint: EndpointServer) -> None:
    endpoint.set_default("/down", Fault.status(500))
    endpoint.set_default("/gone", Fault.status(404))
    routes = one_route(webhook_settings(endpoint.url + "/down", retries=2))
    routes += one_route(webhook_settings(endpoint.url + "/gone", retries=2))
    dispatcher = AlertDispatcher(routes, backoff_initial=0.01)
    asyncio.run(deliver(dispatcher, event("failed")))
    assert len(endpoint.requests("/down")) == 3 and len(endpoint.requests("/gone")) == 1
    assert dispatcher.failed == 2


def test_a_hanging_receiver_never_blocks_the_caller(endpoint: EndpointServer) -> None:
    endpoint.set_default("/slow", Fault.hang(10))
    dispatcher = AlertDispatcher(one_route(webhook_settings(endpoint.url + "/slow")))

    async def scenario() -> float:
        started = time.monotonic()
        dispatcher.observe(event("failed"))
        took = time.monotonic() - started
        await dispatcher.aclose(timeout=0.2)  # shutdown gives up on it
        return took

    assert asyncio.run(scenario()) < 0.05
    assert dispatcher.delivered == 0


@dataclass
class Inbox:
    envelopes: list[Envelope] = field(default_factory=list)
    tls: list[dict[str, Any] | None] = field(default_factory=list)  # session.ssl per message

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        self.tls.append(session.ssl)  # None unless the session was upgraded by STARTTLS
        return "250 OK"

    def messages(self) -> list[Any]:
        return [message_from_bytes(bytes(e.content)) for e in self.envelopes]  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accept_cron_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"mail-pw"
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=accept_cron_login, auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def starttls_smtp_server(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    """An SMTP server on 127.0.0.1 that refuses MAIL and AUTH before STARTTLS, with a
    self-signed certificate; yields the inbox, the port and the certificate (as a CA)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=accept_cron_login)
    controller.start()
    try:
        yield inbox, port, cert
    finally:
        controller.stop()


def email_settings(port: int, **extra: Any) -> ChannelSettings:
    return parse({"type": "email", "host": "127.0.0.1", "port": port, "from": "cron@example.com",
                  "to": ["ops@example.com", "oncall@example.com"], "after_failures": 1,
                  "retries": 0, **extra})[0]


# aiosmtpd warns about AUTH without TLS; a loopback test server needs no TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_alert_goes_out_over_smtp_with_login(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = email_settings(port, username="cron", password_secret="SMTP_PASSWORD")
    assert settings.email is not None and not settings.email.starttls  # loopback relay
    dispatcher = AlertDispatcher(one_route(settings, {"SMTP_PASSWORD": "mail-pw"}))
    asyncio.run(deliver(dispatcher, event("timeout", run_id=3, error="timed out after 30 s")))
    (message,) = inbox.messages()
    assert message["Subject"] == "cronhost: sync TIMEOUT"
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert inbox.envelopes[0].rcpt_tos == ["ops@example.com", "oncall@example.com"]
    assert "timed out after 30 s" in message.get_payload()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_refused_smtp_login_is_permanent(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = email_settings(port, username="cron", password_secret="SMTP_PASSWORD", retries=3)
    dispatcher = AlertDispatcher(one_route(settings, {"SMTP_PASSWORD": "wrong"}),
                                 backoff_initial=5)  # a retry would blow the timeout below
    started = time.monotonic()
    asyncio.run(deliver(dispatcher, event("failed"), timeout=4))
    assert time.monotonic() - started < 3
    assert dispatcher.failed == 1 and inbox.envelopes == []


def test_email_alert_goes_out_over_starttls_trusting_a_private_ca(
    starttls_smtp_server: tuple[Inbox, int, Path],
) -> None:
    inbox, port, cert = starttls_smtp_server
    settings = email_settings(port, starttls=True, ca_file=str(cert), username="cron",
                              password_secret="SMTP_PASSWORD")
    assert settings.email is not None and settings.email.ca_file == str(cert)
    dispatcher = AlertDispatcher(one_route(settings, {"SMTP_PASSWORD": "mail-pw"}))
    asyncio.run(deliver(dispatcher, event("failed", run_id=5, error="HTTP 502")))
    assert dispatcher.delivered == 1 and dispatcher.failed == 0
    (message,) = inbox.messages()
    assert message["Subject"] == "cronhost: sync FAILED"
    assert "HTTP 502" in message.get_payload()
    # The server refuses MAIL (and AUTH) before STARTTLS; and the session that carried the
    # message (and the password) was a verified TLS one.
    (tls,) = inbox.tls
    assert tls is not None and tls["ssl_object"].version() in ("TLSv1.2", "TLSv1.3")


def test_starttls_refuses_an_untrusted_certificate(
    starttls_smtp_server: tuple[Inbox, int, Path],
) -> None:
    inbox, port, _ = starttls_smtp_server
    settings = email_settings(port, starttls=True)  # no ca_file: the self-signed cert is unknown
    assert settings.email is not None
    channel = EmailChannel("test", settings.email, None)
    alert = rules(threshold=1).decide(event("failed"))
    assert alert is not None
    from scheduler.observe.alerts.delivery import DeliveryError

    with pytest.raises(DeliveryError, match="TLS certificate verify failed") as caught:
        asyncio.run(channel.send(alert))
    assert caught.value.permanent  # not retried: the certificate will not become trusted
    assert inbox.envelopes == []


def test_smtp_down_is_a_transient_delivery_error() -> None:
    settings = email_settings(free_port())
    assert settings.email is not None
    channel = EmailChannel("test", settings.email, None)
    alert = rules(threshold=1).decide(event("failed"))
    assert alert is not None
    from scheduler.observe.alerts.delivery import DeliveryError

    with pytest.raises(DeliveryError) as error:
        asyncio.run(channel.send(alert))
    assert not error.value.permanent


# -- in the daemon ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_daemon_alerts_once_per_streak_then_recovers_over_webhook_and_email(
    tmp_path: Path, endpoint: EndpointServer, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    # 400 is not retried: one request per run. Fails 3 times, then answers ok.
    endpoint.program("/api/cron/flaky", Fault.status(400), Fault.status(400), Fault.status(400))
    config = write_config(tmp_path, f"""
[heartbeat]
url = "{endpoint.url}/ping"
interval = "1s"

[[alerts]]
type = "webhook"
url = "{endpoint.url}/hooks/alert"
after_failures = 2
min_interval = "1h"

[[alerts]]
type = "email"
host = "127.0.0.1"
port = {port}
from = "cron@example.com"
to = ["ops@example.com"]
username = "cron"
password_secret = "SMTP_PASSWORD"
after_failures = 2
min_interval = "1h"

[[alerts]]
type = "webhook"
url = "http://127.0.0.1:9/nobody-listens"
after_failures = 1
retries = 1

[[jobs]]
id = "flaky"
path = "/api/cron/flaky"
every = "1s"
""", base_url=endpoint.url)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", SMTP_PASSWORD="mail-pw")
    try:
        daemon.wait_action("run.finish", count=2, job="flaky", status="ok")
        endpoint.wait_for_requests("/hooks/alert", 2)
        daemon.wait_action("alert.sent", count=4)  # 2 webhook + 2 email
        # The dead channel is logged, retried once, and never held up a run.
        daemon.wait_action("alert.failed", channel="alerts[3] webhook 127.0.0.1")
        # The dead-man's switch pings while the daemon is healthy.
        assert {r.method for r in endpoint.wait_for_requests("/ping", 2)} == {"GET"}
        assert daemon.stop() == 0
    finally:
        if daemon.process.poll() is None:
            daemon.kill()
    failure, recovery = (r.json() for r in endpoint.requests("/hooks/alert"))
    assert (failure["kind"], failure["consecutive_failures"], failure["http_status"]) == (
        "failure", 2, 400)
    assert (recovery["kind"], recovery["suppressed"]) == ("recovery", 1)
    assert [m["Subject"] for m in inbox.messages()] == [
        "cronhost: flaky FAILED (2 in a row)", "cronhost: flaky recovered"]


# -- heartbeat (dead-man's switch) ----------------------------------------------------------


def test_heartbeat_table_is_strict() -> None:
    assert config_with("heartbeat", None, "c").heartbeat is None
    assert config_with("heartbeat", {"url": "https://hc.example.com/ping/cronhost"}, "c").heartbeat == (
        HeartbeatSettings(url="https://hc.example.com/ping/cronhost", url_secret=None))
    for table, words in (
        ({"url": "https://hc-ping.com/0f3c2d4e-1b2a-4c5d-8e9f-0a1b2c3d4e5f"}, "url_secret"),
        ({"url": "http://hc.example.com/ping"}, "https://"),
        ({"url": "https://hc.example.com/ping", "interval": "0s"}, "duration"),
        ({"url_secret": "PING", "every": "1m"}, "unknown key"),
    ):
        with pytest.raises(ConfigError, match=words):
            config_with("heartbeat", table, "c")


def test_heartbeat_pings_only_while_the_store_answers(endpoint: EndpointServer) -> None:
    settings = HeartbeatSettings(url=endpoint.url + "/ping", url_secret=None)
    healthy = {"value": True}

    async def is_healthy() -> bool:
        return healthy["value"]

    async def scenario() -> list[bool]:
        pinger = HeartbeatPinger(lambda: None, is_healthy, user_agent="cronhost/test")
        results = [await pinger.ping_once(endpoint.url + "/ping", settings.timeout)]
        healthy["value"] = False
        results.append(await pinger.ping_once(endpoint.url + "/ping", settings.timeout))
        await pinger.run()  # target() is None: closes its client and returns
        return results

    assert asyncio.run(scenario()) == [True, False]
    assert len(endpoint.requests("/ping")) == 1


# -- reloads --------------------------------------------------------------------------------


def test_a_reload_swaps_alert_channels(
    tmp_path: Path, endpoint: EndpointServer
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'cronhost.db'}")
    store.migrate()
    job = '[[jobs]]\nid = "sync"\ncall = "tests.sample_callables:greet"\nevery = "1s"\n'
    first = load_config(write_config(tmp_path, job, extra=(
        f'[[alerts]]\ntype = "webhook"\nurl = "{endpoint.url}/one"\nafter_failures = 1\n')))
    second = replace(first, alerts=parse_alerts(
        [{"type": "webhook", "url": f"{endpoint.url}/two", "after_failures": 1}], ["sync"],
        "config.toml"))
    current = {"config": first}
    events = EventBus()

    async def scenario() -> None:
        observability = Observability(lambda: current["config"], events, store)
        observability.start()
        try:
            events.publish(event("failed", job="sync"))
            current["config"] = second
            events.publish(event("failed", job="sync"))
        finally:
            await observability.aclose()

    try:
        asyncio.run(scenario())
    finally:
        store.dispose()
    assert len(endpoint.requests("/one")) == 1 and len(endpoint.requests("/two")) == 1
