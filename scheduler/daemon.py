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
from scheduler.engine import Changes, Engine
from scheduler.errors import ConfigError, StoreError, first_line
from scheduler.events import EventBus, SlotEvent
from scheduler.lock import DaemonLock
from scheduler.logs import get_logger
from scheduler.notify import Notifier
from scheduler.observability import build_observability
from scheduler.runner import SlotRunner
from scheduler.store import Store
from scheduler.store.store import Command

log = get_logger("daemon")

TICK_SECONDS = 0.5
RELOAD_RETRY_SECONDS = 2.0
STANDBY_POLL_SECONDS = 2.0


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
    def __init__(
        self, config: Config, *, notifier: Notifier | None = None, standby: bool = False
    ) -> None:
        self.config = config
        self.standby = standby
        self.daemon_id = f"{uuid.uuid4().hex[:12]}"
        self.notifier = notifier or Notifier()
        self.store = Store(config.store.url)
        self.stop_requested = asyncio.Event()
        self.reload_requested = False
        self._config_mtime = self._mtime()
        self._last_beat = 0.0
        self._last_watchdog = 0.0
        self._reload_retry_at = 0.0
        self._store_down_since: float | None = None
        self._store_error_logged_at = float("-inf")
        self.lock = DaemonLock(self.store.engine, self.store.url_for_humans)
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
        if self.standby:
            self._install_signal_handlers()
            if not await self._stand_by():
                self.lock.release()
                return 0
        try:
            self._start_bookkeeping()
        except SQLAlchemyError as exc:
            self.lock.release()
            raise StoreError(
                f"cannot start: the store {self.store.url_for_humans} is unavailable: "
                f"{first_line(exc)}"
            ) from None
        async with HttpJobRunner(
            user_agent=f"cronhost/{__version__}", max_in_flight=self.config.daemon.max_in_flight
        ) as http:
            self._runner = SlotRunner(
                store=self.store, config=lambda: self.config, http=http,
                daemon_id=self.daemon_id, events=self.events,
            )
            self._engine = Engine(self.store, self.runner.on_due)
            try:
                self.store.sync_jobs(job_state_rows(self.config.jobs))
                changes = self.engine.start(self.config.jobs, self.store.paused_jobs())
                self.store.record_config_loaded(self.daemon_id)
            except SQLAlchemyError as exc:
                self.engine.shutdown()
                await self.observability.aclose()
                self.lock.release()
                raise StoreError(
                    f"cannot start: the store {self.store.url_for_humans} failed while "
                    f"scheduling the jobs: {first_line(exc)}"
                ) from None
            if not self.standby:
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

    async def _stand_by(self) -> bool:
        """Wait until this daemon holds the store (`run --standby`); False if stopped first.

        The daemon that holds the store runs the jobs; a standby takes over within
        STANDBY_POLL_SECONDS of the holder's death (its flock or PostgreSQL session ends).
        """
        announced = False
        while not self.stop_requested.is_set():
            holder = self.lock.try_acquire()
            if holder is None:
                log.info("taking over the store", extra={"action": "daemon.leading"})
                return True
            if not announced:
                announced = True
                log.info(
                    "standing by: another daemon runs the jobs on this store",
                    extra={"action": "daemon.standby", "store": self.store.url_for_humans,
                           "holder": holder.strip(" ()") or None},
                )
                # systemd must not time the start out while we wait our turn.
                self.notifier.ready(f"standing by for {self.store.url_for_humans}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), STANDBY_POLL_SECONDS)
        return False

    def _start_bookkeeping(self) -> None:
        """Before any job fires: take the store, upgrade it, close the books of a dead daemon."""
        self.lock.acquire()  # before migrating: two daemons must not upgrade one store at once
        self.store.migrate()
        self.store.register_daemon(self.daemon_id, str(self.config.path), __version__)
        abandoned = self.store.abandon_running(
            "abandoned: the daemon stopped (crash, kill or power loss) before the run finished; "
            "not re-run automatically: `cronhost trigger JOB --slot SLOT` re-runs it under its "
            "Idempotency-Key",
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
        self.lock.release()
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
        now = asyncio.get_running_loop().time()
        self._watchdog(now)
        if self.config.daemon.watch_config and self._mtime() != self._config_mtime:
            self.reload_requested = True
        if self.reload_requested and now >= self._reload_retry_at:
            self.reload_requested = False
            self.reload()
        try:
            commands = await asyncio.to_thread(self.store.pending_commands)
            for command in commands:
                await self.handle_command(command)
            self.runner.flush_unrecorded()
            await self._beat(now)
            self._store_down_since = None
        except SQLAlchemyError as exc:
            self._store_unavailable(exc, now)

    def _watchdog(self, now: float) -> None:
        # The watchdog vouches for the event loop turning and the scheduler being alive,
        # not for the store: a database outage must not get the daemon killed (it keeps
        # the books in memory and catches up when the store is back).
        interval = self.notifier.watchdog_interval()
        if interval is None or now - self._last_watchdog < interval:
            return
        if self._engine is not None and self.engine.scheduler.running:
            self._last_watchdog = now
            self.notifier.watchdog()

    def _store_unavailable(self, exc: Exception, now: float) -> None:
        if self._store_down_since is None:
            self._store_down_since = now
        # Once every 10 s is enough to tell the operator; every tick would flood the journal.
        if now - self._store_error_logged_at >= 10:
            self._store_error_logged_at = now
            log.error(
                "store unavailable; the daemon keeps running and retries",
                extra={"action": "store.error", "error": first_line(exc),
                       "down_for_s": round(now - self._store_down_since)},
            )
            self.notifier.status(f"{self.status_line()}; store unavailable: {first_line(exc)}")

    async def _beat(self, now: float) -> None:
        if now - self._last_beat < self.config.daemon.heartbeat_interval:
            return
        self._last_beat = now
        status = self.status_line()
        await asyncio.to_thread(self.store.beat, self.daemon_id, status)
        self.notifier.status(status)
        if not await asyncio.to_thread(self.lock.still_held):
            log.error(
                "another daemon took this store over while it was unreachable; stopping",
                extra={"action": "daemon.lock_lost"},
            )
            self.stop_requested.set()

    def status_line(self) -> str:
        jobs = [spec for spec in self.config.jobs if spec.enabled]
        running = len(self._runner.in_flight) if self._runner is not None else 0
        return f"{len(jobs)} jobs scheduled, {running} running"

    def reload(self) -> Changes | None:
        """Re-read config.toml; a bad edit changes nothing and is recorded for the operator.

        Returns what changed, or None when the reload failed (or must be retried).
        """
        self.notifier.reloading()
        self._config_mtime = self._mtime()
        try:
            new = load_config(self.config.path)
            self._refuse_restart_only_changes(new)
        except ConfigError as exc:
            self._reload_failed(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - nothing in a config file may stop the daemon
            self._reload_failed(f"{self.config.path}: cannot load: {type(exc).__name__}: {exc}")
            return None
        # The new config first: slots of added jobs may fire as soon as the engine has them.
        self.config = new
        try:
            changes = self.engine.apply(new.jobs, self.store.paused_jobs())
            self.store.sync_jobs(job_state_rows(new.jobs))
            self.store.record_config_loaded(self.daemon_id)
        except SQLAlchemyError as exc:
            # Some changes may not have reached APScheduler's job store; applying the same
            # config again is a no-op for what did, so retry until the store takes it all.
            self.reload_requested = True
            self._reload_retry_at = asyncio.get_running_loop().time() + RELOAD_RETRY_SECONDS
            log.error(
                "config reload not fully applied: the store is unavailable; retrying",
                extra={"action": "config.reload_retry", "error": first_line(exc)},
            )
            self.notifier.ready(self.status_line())
            return None
        log.info(
            "config reloaded",
            extra={"action": "config.reloaded", "changes": changes.summary(),
                   "added": changes.added, "rescheduled": changes.rescheduled,
                   "removed": changes.removed},
        )
        self.notifier.ready(self.status_line())
        return changes

    def _refuse_restart_only_changes(self, new: Config) -> None:
        if new.store.url != self.config.store.url:
            raise ConfigError(
                "changing [store] url needs a restart (the running daemon keeps the old store)",
                file=str(self.config.path), field="store.url",
            )
        if new.daemon.max_in_flight != self.config.daemon.max_in_flight:
            log.warning(
                "[daemon] max_in_flight takes effect at the next restart",
                extra={"action": "config.needs_restart", "field": "daemon.max_in_flight"},
            )

    def _reload_failed(self, error: str) -> None:
        log.error(
            "config reload failed; still running the previous config",
            extra={"action": "config.reload_failed", "error": error},
        )
        try:
            self.store.record_config_error(self.daemon_id, error)
        except SQLAlchemyError as exc:
            log.error("could not record the reload error in the store",
                      extra={"action": "store.error", "error": first_line(exc)})
        self.notifier.ready(self.status_line())

    async def handle_command(self, command: Command) -> None:
        if not await asyncio.to_thread(self.store.take_command, command.id):
            return
        job_id = command.job_id or ""
        if command.kind == "reload":
            changes = self.reload()
            if changes is None:
                self.store.finish_command(command.id, "failed", "config reload failed; see status")
            else:
                self.store.finish_command(command.id, "done", changes.summary())
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

