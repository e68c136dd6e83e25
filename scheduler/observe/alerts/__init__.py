"""Alerts: ``[[alerts]]`` channels (webhook, email) told about failures before users notice.

    rules.py       which slot events become alerts (threshold, recovery, rate limit)
    routes.py      one route per channel: its rules and its channel, kept across reloads
    delivery.py    the Channel protocol and DeliveryError (permanent or not)
    webhook.py     JSON POST, Slack-compatible
    email.py       SMTP via smtplib in a thread
    dispatcher.py  the event-bus listener; background delivery with bounded retries

The ``[[alerts]]`` tables themselves are parsed with the rest of the config
(``scheduler.config.alerts``).
"""

from __future__ import annotations

from scheduler.observe.alerts.dispatcher import AlertDispatcher, Route
from scheduler.observe.alerts.routes import build_routes, threshold_from

__all__ = ["AlertDispatcher", "Route", "build_routes", "threshold_from"]
