"""What watches the daemon: metrics, alerts and the heartbeat ping; they read the facts runs publish.

    observers.py  Observability: starts, follows reloads of, and stops the parts below
    metrics.py    Prometheus metrics from slot events
    alerts/       [[alerts]] channels: rules, routes, delivery
    heartbeat.py  the dead-man's-switch ping
"""

from __future__ import annotations

from scheduler.observe.observers import Observability

__all__ = ["Observability"]
