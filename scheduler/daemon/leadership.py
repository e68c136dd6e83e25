"""Leading or standing by: the daemon's role on a store it may share with other nodes.

On PostgreSQL several daemons share one store; one leads (fires the jobs) under a
lease the server enforces (``scheduler.daemon.lease``), the others bid for it. A
leader that loses its lease stops claiming at once, drops to standby and bids
again; it never exits for that. On SQLite the flock makes the first daemon the
only one. Mixed into :class:`~scheduler.daemon.loop.Daemon`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from scheduler import __version__
from scheduler.daemon.control import job_state_rows
from scheduler.daemon.takeover import look
from scheduler.errors import StoreError, first_line
from scheduler.logs import get_logger
from scheduler.run import SlotEvent
from scheduler.store.rows import utcnow

if TYPE_CHECKING:
    from scheduler.config import Config, LiveConfig
    from scheduler.daemon.lock import DaemonLock
    from scheduler.daemon.notify import Notifier
    from scheduler.daemon.takeover import ForeignRuns
    from scheduler.engine import Engine
    from scheduler.observe import Observability
    from scheduler.run import EventBus, SlotRunner
    from scheduler.store import RunRow, Store
    from scheduler.store.doorbell import Doorbell
    from scheduler.store.worker import StoreThread

__all__ = ["Leadership"]

log = get_logger("daemon")

STANDBY_BACKOFF_MAX_SECONDS = 4.0  # a standby's tries while the store is down
STORE_RETRY_SECONDS = 2.0
CONFIG_POLL_SECONDS = 2.0  # [daemon] watch_config = true: how often the file is looked at
WRITER_FLUSH_SECONDS = 10.0  # at shutdown, for outcomes still on their way to the store



class Leadership:
    """The role methods of the daemon (its attributes are the Daemon's, set in its __init__)."""

    live: LiveConfig
    store: Store
    lock: DaemonLock
    runner: SlotRunner
    engine: Engine
    observability: Observability
    events: EventBus
    notifier: Notifier
    daemon_id: str
    store_thread: StoreThread
    nudged: asyncio.Event
    doorbell: Doorbell
    leading: bool
    _ever_led: bool
    _role_since: datetime
    _lost_reason: str | None
    _taking_lead: bool
    _role_task: asyncio.Task[None] | None
    _next_try_at: float
    _standby_wait: float
    _standby_state: str | None
    _registered: bool
    _foreign: ForeignRuns
    _foreign_task: asyncio.Task[None] | None
    _foreign_checked_at: float
    _loop: asyncio.AbstractEventLoop | None
    _observing: bool
    _engine_in_sync: bool

    @property
    def config(self) -> Config:
        return self.live.current


    def _may_claim(self) -> bool:
        """Fencing, asked by the runner before every claim (any thread)."""
        if self.lock.may_claim():
            return True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(
                self._lose_lead, "the lease was not confirmed in time; claims stopped")
        return False

    def _lose_lead(self, reason: str) -> None:
        """On the loop: stop claiming at once; the main loop drops to standby next.

        A loss while the lead is being taken counts too: it is acted on once the take-over
        is done (``_bid``), else a node whose lease went mid-take-over would lead without it.
        """
        if not (self.leading or self._taking_lead) or self._lost_reason is not None:
            return
        self._lost_reason = reason
        self._stop_claiming()

    def _stop_claiming(self) -> None:
        if self.engine.scheduler.running:
            self.engine.scheduler.pause()  # APScheduler: no wake-up claims while paused
        self.nudged.set()  # the main loop drops the lead

    def _start_role_task(self, coroutine: Coroutine[object, object, None], name: str) -> None:
        self._role_task = asyncio.get_running_loop().create_task(coroutine, name=name)

        def done(task: asyncio.Task[None]) -> None:
            self._role_task = None
            self.nudged.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("leadership step failed", exc_info=task.exception(),
                          extra={"action": "daemon.role_error"})

        self._role_task.add_done_callback(done)

    async def _bid(self) -> None:
        """A standby's try for the lead; on success, take it."""
        loop = asyncio.get_running_loop()
        self._next_try_at = loop.time() + self._standby_wait  # whatever goes wrong below
        try:
            holder = await asyncio.to_thread(self.lock.try_acquire)
        except StoreError as exc:
            # Back off while the store is down, and say so once, not at every try.
            self._standby_wait = min(self._standby_wait * 2, STANDBY_BACKOFF_MAX_SECONDS)
            self._next_try_at = loop.time() + self._standby_wait
            self._announce("store_down", error=first_line(exc))
            return
        self._standby_wait = self.lock.poll_seconds
        self._next_try_at = loop.time() + self._standby_wait
        if holder is not None:
            self._announce("standby", holder=holder.strip(" ()") or None)
            return
        self._taking_lead = True
        try:
            await self._take_lead()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the lock must go back
            # Holding the lock without leading would stop every node from firing.
            await self._pause_engine()
            await asyncio.to_thread(self.lock.release)
            self.leading = False
            self._lost_reason = None  # whatever was lost meanwhile: not leading now
            if isinstance(exc, SQLAlchemyError | StoreError):
                self._announce("store_down", error=first_line(exc))
            else:
                log.error("taking the lead failed; the lock is released and the next bid "
                          "tries again", exc_info=exc, extra={"action": "daemon.lead_failed"})
            return
        finally:
            self._taking_lead = False
        # Lost while taking it (the keeper said so, or nothing could): drop it again now,
        # pausing the engine the take-over has just started or resumed.
        if self._lost_reason is None and not self.lock.held:
            self._lost_reason = "the lease was lost while taking the lead"
        if self._lost_reason is not None:
            self._stop_claiming()

    async def _take_lead(self) -> None:
        """Holding the lock: close other nodes' books, bring the jobs in line, fire."""
        log.info("taking over the store", extra={"action": "daemon.leading",
                                                 "store": self.store.url_for_humans})
        if not self._ever_led:
            await self.store_thread.call(self.store.migrate)
            await self._look_at_foreign_runs()
            await self._first_lead()
        else:
            await self._look_at_foreign_runs()
            await self.store_thread.call(self._resync)
            self.engine.scheduler.resume()
            self._set_role(True)
            self._standby_state = None
            self.notifier.status(self.status_line())

    def _resync(self) -> None:
        """In the store thread, before a standby fires again: the jobs as this config has them."""
        self.store.sync_jobs(job_state_rows(self.config.jobs))
        self.engine.apply(self.config.jobs, self.store.paused_jobs())
        self._engine_in_sync = True
        self.store.register_daemon(self.daemon_id, str(self.config.path), __version__,
                                   "leader", utcnow())

    async def _first_lead(self) -> None:
        """Start firing for the first time (the store is migrated, the books closed).

        The job_state and daemons writes go through the store thread: a standby taking
        the lead keeps its watchdog and signals turning while a slow store answers.
        (APScheduler's own start stays on the loop, which it belongs to.)
        """
        if not self._observing:
            self._observing = True
            self.observability.start()
        paused = await self.store_thread.call(self._sync_job_state)
        changes = self.engine.start(self.config.jobs, paused)
        self._ever_led = self._running = True
        self.doorbell.start()
        # Only now is the daemon up for readers: its jobs are scheduled.
        self._set_role(True, write=False)
        await self.store_thread.call(self._register_leader)
        self._standby_state = None
        log.info(
            "daemon started",
            extra={"action": "daemon.start", "daemon_id": self.daemon_id,
                   "config": str(self.config.path), "store": self.store.url_for_humans,
                   "jobs": changes.summary(), "version": __version__},
        )
        self.notifier.ready(self.status_line())

    def _sync_job_state(self) -> set[str]:
        """In the store thread: job_state as the config has it; the jobs paused there."""
        self.store.sync_jobs(job_state_rows(self.config.jobs))
        return self.store.paused_jobs()

    def _register_leader(self) -> None:
        """In the store thread: this node's daemons row, as the leader, with its config."""
        self.store.register_daemon(self.daemon_id, str(self.config.path), __version__,
                                   "leader", self._role_since)
        self._registered = True
        self.store.record_config_loaded(self.daemon_id)

    async def _drop_lead(self, reason: str) -> None:
        """Lost (or no longer sure of) the lead: stop firing, stand by, compete again.

        Runs in flight go on and are recorded as they end; the new leader counts them as
        running until then (scheduler.daemon.takeover).
        """
        await self._pause_engine()
        await asyncio.to_thread(self.lock.release)
        self._foreign.forget()
        self._lost_reason = None
        self._set_role(False)
        self._next_try_at = asyncio.get_running_loop().time() + self.lock.poll_seconds
        log.warning("lost the lead of the store; standing by to compete again",
                    extra={"action": "daemon.lead_lost", "reason": reason})
        self._announce("standby", holder=None)
        self.notifier.status(self.status_line())

    async def _pause_engine(self) -> None:
        if self.engine.scheduler.running:
            self.engine.scheduler.pause()
        await self.engine.scheduler.wait_idle()

    def _set_role(self, leading: bool, *, write: bool = True) -> None:
        self.leading = leading
        self._role_since = utcnow()
        if write and self._registered:
            self.store_thread.submit(self._write_role, self.role, self._role_since)

    def _write_role(self, role: str, since: datetime) -> None:
        with contextlib.suppress(SQLAlchemyError):  # the next beat writes it too
            self.store.set_role(self.daemon_id, role, since)

    @property
    def role(self) -> str:
        return "leader" if self.leading else "standby"

    def _announce(self, state: str, **fields: object) -> None:
        """One log line per change of a standby's state, not one per try."""
        key = f"{state}:{fields.get('holder')}" if state == "standby" else state
        if key == self._standby_state:
            return
        self._standby_state = key
        if state == "store_down":
            log.error("standing by: the store is unreachable; trying again with backoff",
                      extra={"action": "daemon.standby_store_down",
                             "store": self.store.url_for_humans, **fields})
        else:
            holder = fields.get("holder")
            # No holder named: just dropped the lead, or the holder's session has no name.
            who = f"daemon {holder}" if holder else "another daemon, or none yet,"
            log.info(f"standing by: {who} runs the jobs on this store",
                     extra={"action": "daemon.standby", "store": self.store.url_for_humans,
                            **fields})
        self.notifier.status(self.status_line())

    def status_line(self) -> str:
        if not self.leading:
            return f"standby for {self.store.url_for_humans}"
        line = super().status_line()  # type: ignore[misc]  # DaemonControl's, next in the MRO
        # Several nodes share a PostgreSQL store: say which one this is.
        return f"leader: {line}" if self.lock.can_be_lost else line

    async def _look_at_foreign_runs(self) -> None:
        """Other nodes' runs in flight: abandon those surely over, count the rest as running."""
        only = list(self._foreign.live) if self.leading else None
        if self.leading and not only:
            return
        books = await self.store_thread.call(
            look, self.store, self.config, self.daemon_id, exclusive=not self.lock.can_be_lost,
            now=utcnow(), only=only)
        self._foreign_checked_at = asyncio.get_running_loop().time()
        self._announce_abandoned(books.abandoned, "another daemon")
        self._foreign.replace(books.live)
        if books.live and not self.leading:
            log.info("runs of another daemon still in flight count as running",
                     extra={"action": "daemon.foreign_runs", "runs": len(books.live)})

    def _announce_abandoned(self, rows: list[RunRow], left_by: str) -> None:
        """Runs another (or a dead) daemon left in flight, now marked abandoned: say so."""
        for row in rows:
            self.events.publish(SlotEvent(
                job_id=row.job_id, status="abandoned", scheduled_at=row.scheduled_at,
                run_id=row.id, trigger=row.trigger, error=row.error,
            ))
            log.warning(
                f"run left in flight by {left_by} marked abandoned",
                extra={"action": "run.abandoned", "job": row.job_id,
                       "slot": row.scheduled_at.isoformat(), "run_id": row.id},
            )
