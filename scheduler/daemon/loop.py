"""`cronhost run`: the daemon's life, from start-up to a drained shutdown.

Signal handlers only set flags; the main loop does the work in small steps
(:meth:`Daemon.tick`) that are testable one by one. The daemon's parts are built
and handed in by ``scheduler.daemon.assemble.build_daemon``; reloads and
commands are in ``scheduler.daemon.control``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from sqlalchemy.exc import SQLAlchemyError

from jobs.http import HttpJobRunner
from scheduler import __version__
from scheduler.config import LiveConfig
from scheduler.daemon.control import DaemonControl, job_state_rows
from scheduler.daemon.lock import DaemonLock
from scheduler.daemon.notify import Notifier
from scheduler.engine import Engine
from scheduler.errors import StoreError, first_line
from scheduler.logs import get_logger
from scheduler.observe import Observability
from scheduler.run import EventBus, SlotEvent, SlotRunner
from scheduler.store import Store

__all__ = ["Daemon"]

log = get_logger("daemon")

TICK_SECONDS = 0.5
STANDBY_POLL_SECONDS = 2.0


class Daemon(DaemonControl):
    def __init__(
        self, *, live: LiveConfig, store: Store, lock: DaemonLock, runner: SlotRunner,
        engine: Engine, observability: Observability, events: EventBus, http: HttpJobRunner,
        notifier: Notifier, daemon_id: str, standby: bool = False,
    ) -> None:
        self.live = live
        self.store = store
        self.lock = lock
        self.runner = runner
        self.engine = engine
        self.observability = observability
        self.events = events
        self.http = http
        self.notifier = notifier
        self.daemon_id = daemon_id
        self.standby = standby
        self.stop_requested = asyncio.Event()
        self.reload_requested = False
        self._config_mtime = self._mtime()
        self._last_beat = 0.0
        self._last_watchdog = 0.0
        self._reload_retry_at = 0.0
        self._store_down_since: float | None = None
        self._store_error_logged_at = float("-inf")
        self._running = False

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
        async with self.http:
            try:
                self.observability.start()
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
            self._running = True
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
        if self._running and self.engine.scheduler.running:
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
