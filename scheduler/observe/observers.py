"""What watches the daemon from beside the run path: metrics, alerts and the heartbeat ping.

The composition root builds one :class:`Observability`; the daemon calls
:meth:`~Observability.start` before the first job can fire and
:meth:`~Observability.aclose` at shutdown. In between, a reloaded config is
picked up lazily, the next time an event or a heartbeat needs it, so the
daemon's reload path needs no hook of ours. The settings come typed from
``scheduler.config`` (parsed once, with the rest of the file).

Nothing here may stop a job from running: listeners only count and hand work
to background tasks, and a metrics port already in use is logged, not fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from scheduler import __version__
from scheduler.config import Config
from scheduler.config.observers import HeartbeatSettings, MetricsSettings
from scheduler.errors import ConfigError
from scheduler.logs import get_logger
from scheduler.observe.alerts import AlertDispatcher, build_routes, threshold_from
from scheduler.observe.heartbeat import HeartbeatPinger
from scheduler.observe.metrics import Metrics
from scheduler.run.events import EventBus, SlotEvent
from scheduler.store import Store

__all__ = ["Observability"]

log = get_logger("observability")

STORE_CHECK_TIMEOUT = 10.0
AUTO_DISABLE_BY = "auto-disable"  # requested_by of the pause commands auto_disable_after writes


class Observability:
    def __init__(self, config: Callable[[], Config], events: EventBus, store: Store) -> None:
        self._config = config
        self._events = events
        self._store = store
        self._user_agent = f"cronhost/{__version__}"
        self._seen: Config | None = None
        self._metrics_settings: MetricsSettings | None = None
        self.metrics: Metrics | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.alerts = AlertDispatcher(auto_disable=self._auto_disable)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._base_log_level = logging.getLogger().level

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Called on the daemon's event loop, before the first job can fire."""
        config = self._config()
        self._seen = config
        self._apply_log_level(config)
        states = self._store.jobs()
        self._metrics_settings = config.metrics
        if config.metrics is not None:
            self.metrics = Metrics(kind_of=self._job_kind)
            self.metrics.seed(states)
            self._serve_metrics(config.metrics)
        self._set_alert_routes(config)
        for route in self.alerts.routes:
            for state in states:
                route.rules.seed(state.job_id, state.consecutive_failures)
        self._start_heartbeat(config)
        self._events.subscribe(self.observe)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop everything; alerts still in flight get ``timeout`` s to go out."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        await self.alerts.aclose(timeout)
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)

    # -- events -------------------------------------------------------------------------

    def observe(self, event: SlotEvent) -> None:
        self.follow_config()
        if self.metrics is not None:
            self.metrics.observe(event)
        self.alerts.observe(event)

    def follow_config(self) -> None:
        """Apply a reloaded config's tables (they were checked when it loaded)."""
        config = self._config()
        if config is self._seen:
            return
        self._seen = config
        if config.metrics != self._metrics_settings:
            log.warning("[metrics] changed; restart the daemon to apply it",
                        extra={"action": "metrics.restart_needed"})
        self._apply_log_level(config)
        self._set_alert_routes(config)
        self._start_heartbeat(config)

    # -- parts --------------------------------------------------------------------------

    def _apply_log_level(self, config: Config) -> None:
        level = config.log_level
        logging.getLogger().setLevel(level if level is not None else self._base_log_level)

    def _serve_metrics(self, settings: MetricsSettings) -> None:
        assert self.metrics is not None
        try:
            host, port = self.metrics.serve(settings)
        except OSError as exc:
            # Metrics are for watching; a port clash must not stop jobs from firing.
            log.error("metrics endpoint not started",
                      extra={"action": "metrics.failed",
                             "listen": f"{settings.host}:{settings.port}", "error": str(exc)})
            return
        self.metrics_address = (host, port)
        shown = f"[{host}]" if ":" in host else host
        log.info("metrics endpoint listening",
                 extra={"action": "metrics.listening", "url": f"http://{shown}:{port}/metrics",
                        "port": port})

    def _set_alert_routes(self, config: Config) -> None:
        routes = build_routes(
            config.alerts, dict(config.secrets), threshold_from(lambda: self._config().jobs),
            user_agent=self._user_agent, previous=self.alerts.routes,
        )
        self.alerts.replace_routes(routes)

    def _job_kind(self, job_id: str) -> str | None:
        spec = self._config().job(job_id)
        return spec.kind if spec is not None else None

    def _auto_disable(self, job_id: str, reason: str) -> None:
        """Pause a job for auto_disable_after (in a thread): recorded with its reason first,
        as `cronhost pause` does, then a command the daemon carries out as any other pause."""
        if self._store.set_paused(job_id, True, reason):
            self._store.add_command("pause", job_id, requested_by=AUTO_DISABLE_BY)

    def _start_heartbeat(self, config: Config) -> None:
        if config.heartbeat is None:
            return
        if self._heartbeat_task is not None and not self._heartbeat_task.done():
            return
        pinger = HeartbeatPinger(self._heartbeat_target, self._store_answers,
                                 user_agent=self._user_agent)
        self._heartbeat_task = asyncio.get_running_loop().create_task(
            pinger.run(), name="heartbeat-ping"
        )

    def _heartbeat_target(self) -> tuple[str, HeartbeatSettings] | None:
        self.follow_config()
        config = self._config()
        settings = config.heartbeat
        if settings is None:
            return None
        if settings.url is not None:
            return settings.url, settings
        assert settings.url_secret is not None
        url = config.secrets.get(settings.url_secret)
        if url is None:
            try:  # a config loaded without its secrets (tests): look the URL up now
                url = settings.resolve_url(str(config.path))
            except ConfigError as exc:
                log.error("heartbeat stopped",
                          extra={"action": "heartbeat.failed", "error": str(exc)})
                return None
        return url, settings

    async def _store_answers(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._store.latest_daemon),
                                   STORE_CHECK_TIMEOUT)
        except (SQLAlchemyError, TimeoutError):
            return False
        return True
