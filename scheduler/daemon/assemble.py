"""The composition root: the one place that builds the daemon's object graph.

Every collaborator is created here and handed to those that use it; no module
holds a live store, client or bus in a global. Reading this function is reading
the daemon's wiring:

    config ─► LiveConfig ─┬─► SlotRunner ─► JobExecutor ─► jobs/ (HttpJobRunner, callables)
                          │        │               └─► PruneHistory ─► Store
                          │        └─► Store (through one StoreThread), EventBus, RunWriter
                          ├─► Observability (metrics, alerts, heartbeat) ◄─ EventBus
                          └─► Daemon ─► Engine (APScheduler) ─► SlotRunner.on_due
"""

from __future__ import annotations

import uuid

from jobs.http import HttpJobRunner
from scheduler import __version__
from scheduler.config import PRUNE_CALL, Config, LiveConfig
from scheduler.daemon.lock import DaemonLock
from scheduler.daemon.loop import Daemon
from scheduler.daemon.notify import Notifier
from scheduler.engine import Engine
from scheduler.observe import Observability
from scheduler.run import EventBus, JobExecutor, SlotRunner
from scheduler.store import Store
from scheduler.store.retention import PruneHistory
from scheduler.store.worker import StoreThread

__all__ = ["build_daemon"]


def build_daemon(
    config: Config, *, standby: bool = False, notifier: Notifier | None = None
) -> Daemon:
    """A daemon for ``config``, ready to ``await daemon.run()``; nothing runs before that."""
    live = LiveConfig(config)
    store = Store(config.store.url)
    events = EventBus()
    daemon_id = uuid.uuid4().hex[:12]
    http = HttpJobRunner(
        user_agent=f"cronhost/{__version__}", max_in_flight=config.daemon.max_in_flight
    )
    executor = JobExecutor(
        http, live, builtins={PRUNE_CALL: PruneHistory(store, lambda: live().store.keep)}
    )
    store_thread = StoreThread()
    runner = SlotRunner(
        store=store, config=live, executor=executor, daemon_id=daemon_id,
        store_thread=store_thread, events=events,
    )
    return Daemon(
        live=live,
        store=store,
        lock=DaemonLock(store.engine, store.url_for_humans, daemon_id),
        runner=runner,
        engine=Engine(store, runner.on_wake, store_thread),
        observability=Observability(live, events, store),
        events=events,
        http=http,
        notifier=notifier or Notifier(),
        daemon_id=daemon_id,
        store_thread=store_thread,
        standby=standby,
    )
