"""`cronhost run`: the daemon's life, from start-up to a drained shutdown.

Signal handlers only set flags; the main loop does the work in small steps
(:meth:`Daemon.tick`) that are testable one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from jobs.http import HttpJobRunner
from scheduler import __version__
from scheduler.config import Config, JobSpec, load_config
from scheduler.engine import Engine
from scheduler.errors import ConfigError
from scheduler.events import EventBus, SlotEvent
from scheduler.logs import get_logger
from scheduler.notify import Notifier
from scheduler.observability import build_observability
from scheduler.runner import SlotRunner
from scheduler.store import Store
from scheduler.store.store import Command

log = get_logger("daemon")

TICK_SECONDS = 0.5


def job_state_rows(specs: tuple[JobSpec, ...]) -> list[dict[str, object]]:
    return [
        {
            "job_id": spec.id,
            "kind": spec.kind,
            "schedule": spec.schedule_text,
            "timezone": spec.timezone,
            "target": spec.target,
            "description": spec.description,
            "enabled": spec.enabled,
        }
        for spec in specs
    ]


class Daemon:
    def __init__(self, config: Config, *, notifier: Notifier | None = None) -> None:
        self.config = config
        self.daemon_id = f"{uuid.uuid4().hex[:12]}"
        self.notifier = notifier or Notifier()
        self.store = Store(config.store.url)
        self.stop_requested = asyncio.Event()
        self.reload_requested = False
        self._config_mtime = self._mtime()
        self._last_beat = 0.0
        self._runner: SlotRunner | None = None
        self._engine: Engine | None = None

    @property
    def runner(self) -> SlotRunner:
        assert self._runner is not None, "the daemon is not running"
        return self._runner

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "the daemon is not running"
        return self._engine

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> int:
        self.store.migrate()
        self.store.register_daemon(self.daemon_id, str(self.config.path), __version__)
        abandoned = self.store.abandon_running(
            "abandoned: the daemon stopped (crash, kill or power loss) before the run finished; "
            "not re-run automatically, re-trigger it if needed (the Idempotency-Key makes that safe)",
            except_daemon=self.daemon_id,
        )
        self.events = EventBus()
        self._build_listeners()
        for row in abandoned:
            self.events.publish(SlotEvent(
                job_id=row.job_id, status="abandoned", scheduled_at=row.scheduled_at,
                run_id=row.id, trigger=row.trigger, error=row.error,
            ))
            log.warning(
                "run left in flight by a previous daemon marked abandoned",
                extra={"action": "run.abandoned", "job": row.job_id,
                       "slot": row.scheduled_at.isoformat(), "run_id": row.id},
            )
        async with HttpJobRunner(
            user_agent=f"cronhost/{__version__}", max_in_flight=self.config.daemon.max_in_flight
        ) as http:
            self._runner = SlotRunner(
                store=self.store, config=lambda: self.config, http=http,
                daemon_id=self.daemon_id, events=self.events,
            )
            self._engine = Engine(self.store, self.runner.on_due)
            self.store.sync_jobs(job_state_rows(self.config.jobs))
            changes = self.engine.start(self.config.jobs, self.store.paused_jobs())
            self.store.record_config_loaded(self.daemon_id)
            self._install_signal_handlers()
            log.info(
                "daemon started",
                extra={"action": "daemon.start", "daemon_id": self.daemon_id,
                       "config": str(self.config.path), "store": self.store.url_for_humans,
                       "jobs": changes.summary(), "version": __version__},
            )
            self.notifier.ready(self.status_line())
            try:
                while not self.stop_requested.is_set():
                    await self.tick()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_requested.wait(), TICK_SECONDS)
            finally:
                await self._shutdown()
        return 0

    def _build_listeners(self) -> None:
        """Subscribe what reacts to slot events (metrics, alerts)."""
        # Also starts the metrics endpoint and the heartbeat ping, and binds history pruning
        # to this store; closed in _shutdown. Follows reloads itself, through the callable.
        self.observability = build_observability(lambda: self.config, self.events, self.store)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("daemon stopping", extra={"action": "daemon.stopping"})
        self.engine.shutdown()
        left = await self.runner.drain(self.config.daemon.shutdown_timeout)
        try:
            self._abandon_at_shutdown(left)
            self.runner.flush_unrecorded()
            self.store.daemon_stopped(self.daemon_id)
        except SQLAlchemyError as exc:
            # Runs still `running` in the store are marked abandoned by the next start.
            log.error(
                "store unavailable at shutdown; the next start will finish the bookkeeping",
                extra={"action": "store.error", "error": str(getattr(exc, "orig", exc))[:300]},
            )
        await self.observability.aclose()  # after the abandoned events, so their alerts go out
        self.store.dispose()
        log.info("daemon stopped", extra={"action": "daemon.stop", "abandoned": len(left)})

    def _abandon_at_shutdown(self, run_ids: list[int]) -> None:
        if not run_ids:
            return
        self.store.abandon_runs(
            run_ids,
            f"abandoned: still running when the daemon stopped (after waiting "
            f"{self.config.daemon.shutdown_timeout:g} s)",
        )
        for run_id in run_ids:
            row = self.store.run(run_id)
            if row is not None:
                self.events.publish(SlotEvent(
                    job_id=row.job_id, status="abandoned", scheduled_at=row.scheduled_at,
                    run_id=run_id, trigger=row.trigger, error=row.error,
                ))

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)

    def _request_reload(self) -> None:
        self.reload_requested = True

    # -- one step of the main loop ------------------------------------------------------

    async def tick(self) -> None:
        if self.config.daemon.watch_config and self._mtime() != self._config_mtime:
            self.reload_requested = True
        if self.reload_requested:
            self.reload_requested = False
            self.reload()
        try:
            commands = await asyncio.to_thread(self.store.pending_commands)
            for command in commands:
                await self.handle_command(command)
            self.runner.flush_unrecorded()
            await self._beat()
        except SQLAlchemyError as exc:
            log.error(
                "store unavailable; the daemon keeps running and retries",
                extra={"action": "store.error", "error": str(getattr(exc, "orig", exc)).strip()[:300]},
            )

    async def _beat(self) -> None:
        now = asyncio.get_running_loop().time()
        interval = self.config.daemon.heartbeat_interval
        # systemd kills a service that is silent for WatchdogSec: ping at least twice as often.
        watchdog = self.notifier.watchdog_interval()
        if watchdog is not None:
            interval = min(interval, watchdog)
        if now - self._last_beat < interval:
            return
        self._last_beat = now
        status = self.status_line()
        await asyncio.to_thread(self.store.beat, self.daemon_id, status)
        # Reaching here proves the loop turns and the store answers: that is what the
        # watchdog should vouch for.
        self.notifier.watchdog()
        self.notifier.status(status)

    def status_line(self) -> str:
        jobs = [spec for spec in self.config.jobs if spec.enabled]
        running = len(self._runner.in_flight) if self._runner is not None else 0
        return f"{len(jobs)} jobs scheduled, {running} running"

    def reload(self) -> bool:
        """Re-read config.toml; a bad edit changes nothing and is recorded for the operator."""
        self.notifier.reloading()
        self._config_mtime = self._mtime()
        try:
            new = load_config(self.config.path)
            if new.store.url != self.config.store.url:
                raise ConfigError(
                    "changing [store] url needs a restart (the running daemon keeps the old store)",
                    file=str(self.config.path), field="store.url",
                )
        except ConfigError as exc:
            log.error(
                "config reload failed; still running the previous config",
                extra={"action": "config.reload_failed", "error": str(exc)},
            )
            self.store.record_config_error(self.daemon_id, str(exc))
            self.notifier.ready(self.status_line())
            return False
        self.config = new
        self.store.sync_jobs(job_state_rows(new.jobs))
        changes = self.engine.apply(new.jobs, self.store.paused_jobs())
        self.store.record_config_loaded(self.daemon_id)
        log.info(
            "config reloaded",
            extra={"action": "config.reloaded", "changes": changes.summary(),
                   "added": changes.added, "rescheduled": changes.rescheduled,
                   "removed": changes.removed},
        )
        self.notifier.ready(self.status_line())
        return True

    async def handle_command(self, command: Command) -> None:
        if not await asyncio.to_thread(self.store.take_command, command.id):
            return
        job_id = command.job_id or ""
        if command.kind == "reload":
            ok = self.reload()
            self.store.finish_command(command.id, "done" if ok else "failed",
                                      None if ok else "config reload failed; see status")
            return
        if self.config.job(job_id) is None:
            self.store.finish_command(command.id, "failed", f"no job {job_id!r} in the running config")
            return
        if command.kind == "trigger":
            run_id = await self.runner.trigger_now(job_id, self._replayed_key(job_id, command))
            if run_id is None:
                self.store.finish_command(command.id, "failed", "could not claim a run")
            else:
                self.store.finish_command(command.id, "done", "started", run_id)
        elif command.kind in ("pause", "resume"):
            paused = command.kind == "pause"
            self.store.set_paused(job_id, paused)
            self.engine.set_paused(job_id, paused)
            log.info(f"job {command.kind}d", extra={"action": f"job.{command.kind}", "job": job_id})
            self.store.finish_command(command.id, "done", f"{command.kind}d")
        else:
            self.store.finish_command(command.id, "failed", f"unknown command {command.kind!r}")

    def _replayed_key(self, job_id: str, command: Command) -> str | None:
        if command.slot is None:
            return None
        rows = self.store.runs_for_slots(job_id, command.slot, command.slot)
        return rows[0].idempotency_key if rows else None

    def _mtime(self) -> float | None:
        try:
            return Path(self.config.path).stat().st_mtime
        except OSError:
            return None

