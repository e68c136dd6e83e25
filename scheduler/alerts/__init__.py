"""Alerts: ``[[alerts]]`` channels (webhook, email) told about failures before users notice.

    settings.py    parse and check the [[alerts]] tables
    rules.py       which slot events become alerts (threshold, recovery, rate limit)
    delivery.py    the Channel protocol and DeliveryError (permanent or not)
    webhook.py     JSON POST, Slack-compatible
    email.py       SMTP via smtplib in a thread
    dispatcher.py  the event-bus listener; background delivery with bounded retries
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from scheduler.alerts.delivery import Channel
from scheduler.alerts.dispatcher import AlertDispatcher, Route
from scheduler.alerts.email import EmailChannel
from scheduler.alerts.rules import AlertRules, default_after_failures
from scheduler.alerts.settings import ChannelSettings, parse_alerts, resolve_secrets
from scheduler.alerts.webhook import WebhookChannel

if TYPE_CHECKING:
    from scheduler.config import JobSpec

__all__ = [
    "AlertDispatcher", "Route", "build_routes", "parse_alerts", "resolve_secrets", "threshold_from",
]


def build_routes(
    channels: Sequence[ChannelSettings],
    secrets: dict[str, str],
    threshold: Callable[[str], int],
    *,
    user_agent: str,
    previous: Sequence[Route] = (),
) -> list[Route]:
    """One route per channel; a channel unchanged since ``previous`` keeps its route (and
    so its failure counts and rate limit) across a reload."""
    kept = {(route.settings, route.secret): route for route in previous}
    routes = []
    for settings in channels:
        secret = _secret_of(settings, secrets)
        route = kept.get((settings, secret))
        if route is None:
            route = Route(settings, AlertRules(settings.rules, threshold),
                          _channel(settings, secret, user_agent), secret)
        routes.append(route)
    return routes


def _secret_of(settings: ChannelSettings, secrets: dict[str, str]) -> str | None:
    name = (settings.webhook.url_secret if settings.webhook is not None
            else settings.email.password_secret if settings.email is not None else None)
    return secrets.get(name) if name else None


def _channel(settings: ChannelSettings, secret: str | None, user_agent: str) -> Channel:
    if settings.webhook is not None:
        url = settings.webhook.url or secret
        assert url is not None
        return WebhookChannel(settings.name, url, timeout=settings.webhook.timeout,
                              user_agent=user_agent)
    assert settings.email is not None
    return EmailChannel(settings.name, settings.email, secret)


def threshold_from(specs: Callable[[], Sequence[JobSpec]]) -> Callable[[str], int]:
    """The default ``after_failures`` of each job, from its schedule as configured now."""

    def threshold(job_id: str) -> int:
        for spec in specs():
            if spec.id == job_id:
                return default_after_failures(spec.trigger())
        return 1  # a job no longer configured (its last runs ending after a reload)

    return threshold
