"""Alert routes: one per ``[[alerts]]`` channel, kept across reloads when unchanged."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scheduler.config import JobSpec
from scheduler.config.alerts import ChannelSettings
from scheduler.observe.alerts.delivery import Channel
from scheduler.observe.alerts.dispatcher import Route
from scheduler.observe.alerts.email import EmailChannel
from scheduler.observe.alerts.rules import AlertRules, default_after_failures
from scheduler.observe.alerts.webhook import WebhookChannel

__all__ = ["build_routes", "threshold_from"]


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
                return default_after_failures(spec.timetable())
        return 1  # a job no longer configured (its last runs ending after a reload)

    return threshold
