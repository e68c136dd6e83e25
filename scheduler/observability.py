"""What watches the daemon from beside the run path: metrics, alerts, heartbeat, retention.

The config loader calls :func:`validate_tables` so that a bad ``[metrics]``,
``[[alerts]]``, ``[heartbeat]`` or ``[logging]`` table fails ``cronhost check``,
start-up and a reload alike. The daemon calls :func:`build_observability` once
(in ``_build_listeners``) and :meth:`Observability.aclose` at shutdown; in
between, a reloaded config is picked up lazily, the next time an event or a
heartbeat needs it, so the daemon's reload path needs no hook of ours.

Nothing here may stop a job from running: listeners only count and hand work
to background tasks, and a metrics port already in use is logged, not fatal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from scheduler import __version__, retention
from scheduler.alerts import AlertDispatcher, build_routes, threshold_from
from scheduler.alerts.settings import ChannelSettings, parse_alerts, resolve_secrets
from scheduler.errors import ConfigError
from scheduler.events import EventBus, SlotEvent
from scheduler.heartbeat_ping import HeartbeatPinger, HeartbeatSettings, parse_heartbeat
from scheduler.logs import get_logger
from scheduler.metrics import Metrics, MetricsSettings, parse_metrics

if TYPE_CHECKING:
    from scheduler.config import Config, JobSpec
    from scheduler.store import Store

log = get_logger("observability")

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
              "error": logging.ERROR}
STORE_CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Settings:
    metrics: MetricsSettings | None
    alerts: tuple[ChannelSettings, ...]
    heartbeat: HeartbeatSettings | None
    log_level: int | None


def parse_logging(raw: Any, file: str) -> int | None:
    """``[logging] level = "info"``; the format is chosen on the command line (--log-format)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("`logging` must be a table ([logging])", file=file, field="logging")
    for key in raw:
        if key != "level":
            raise ConfigError("unknown key; expected: level", file=file, field=f"logging.{key}")
    level = raw.get("level", "info")
    if level not in LOG_LEVELS:
        raise ConfigError(f"must be one of {', '.join(LOG_LEVELS)}", file=file,
                          field="logging.level")
    return LOG_LEVELS[level]


def parse_settings(extra: Mapping[str, Any], job_ids: Sequence[str], file: str) -> Settings:
    return Settings(
        metrics=parse_metrics(extra.get("metrics"), file),
        alerts=parse_alerts(extra.get("alerts"), job_ids, file),
        heartbeat=parse_heartbeat(extra.get("heartbeat"), file),
        log_level=parse_logging(extra.get("logging"), file),
    )


def validate_tables(
    extra: Mapping[str, Any], jobs: Sequence[JobSpec], *, file: str, resolve_secrets: bool
) -> None:
    """Raise ConfigError for a bad table (and SecretError for a missing secret, if asked)."""
    settings = parse_settings(extra, [job.id for job in jobs], file)
    if resolve_secrets:
        _secrets(settings, file)


def _secrets(settings: Settings, file: str) -> dict[str, str]:
    values = resolve_secrets(settings.alerts, file)
    if settings.heartbeat is not None:
        settings.heartbeat.resolve_url(file)
    return values


class Observability:
    def __init__(self, config: Callable[[], Config], events: EventBus, store: Store) -> None:
        self._config = config
        self._events = events
        self._store = store
        self._user_agent = f"cronhost/{__version__}"
        self._seen: Config | None = None
        self.settings = Settings(None, (), None, None)
        self.metrics: Metrics | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.alerts = AlertDispatcher()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._base_log_level = logging.getLogger().level

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Called on the daemon's event loop, before the first job can fire."""
        config = self._config()
        self._seen = config
        self.settings = parse_settings(config.extra, [job.id for job in config.jobs],
                                       str(config.path))
        self._apply_log_level()
        states = self._store.jobs()
        if self.settings.metrics is not None:
            self.metrics = Metrics()
            self.metrics.seed(states)
            self._serve_metrics(self.settings.metrics)
        self._set_alert_routes(_secrets(self.settings, str(config.path)))
        for route in self.alerts.routes:
            for state in states:
                route.rules.seed(state.job_id, state.consecutive_failures)
        self._start_heartbeat()
        retention.bind(self._store, lambda: self._config().store.keep)
        self._events.subscribe(self.observe)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Stop everything; alerts still in flight get ``timeout`` s to go out."""
        retention.unbind()
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
        """Apply a reloaded config's tables; on a problem keep the previous ones."""
        config = self._config()
        if config is self._seen:
            return
        self._seen = config
        file = str(config.path)
        try:
            settings = parse_settings(config.extra, [job.id for job in config.jobs], file)
            secrets = _secrets(settings, file)
        except ConfigError as exc:
            log.error("alert/metrics settings not applied; keeping the previous ones",
                      extra={"action": "config.reload_failed", "error": str(exc)})
            return
        if settings.metrics != self.settings.metrics:
            log.warning("[metrics] changed; restart the daemon to apply it",
                        extra={"action": "metrics.restart_needed"})
            settings = Settings(self.settings.metrics, settings.alerts, settings.heartbeat,
                                settings.log_level)
        self.settings = settings
        self._apply_log_level()
        self._set_alert_routes(secrets)
        self._start_heartbeat()

    # -- parts --------------------------------------------------------------------------

    def _apply_log_level(self) -> None:
        level = self.settings.log_level
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

    def _set_alert_routes(self, secrets: dict[str, str]) -> None:
        routes = build_routes(
            self.settings.alerts, secrets, threshold_from(lambda: self._config().jobs),
            user_agent=self._user_agent, previous=self.alerts.routes,
        )
        self.alerts.replace_routes(routes)

    def _start_heartbeat(self) -> None:
        if self.settings.heartbeat is None:
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
        settings = self.settings.heartbeat
        if settings is None:
            return None
        try:
            return settings.resolve_url(str(self._config().path)), settings
        except ConfigError as exc:
            log.error("heartbeat stopped", extra={"action": "heartbeat.failed", "error": str(exc)})
            return None

    async def _store_answers(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._store.latest_daemon),
                                   STORE_CHECK_TIMEOUT)
        except (SQLAlchemyError, TimeoutError):
            return False
        return True


def build_observability(config: Callable[[], Config], events: EventBus, store: Store) -> Observability:
    """Make, start and subscribe the daemon's observers (see the module docstring)."""
    observability = Observability(config, events, store)
    observability.start()
    return observability
