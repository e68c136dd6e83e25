"""`cronhost run`: the daemon's life, from start-up to a drained shutdown.

Signal handlers only set flags; the main loop does the work in small steps
(:meth:`Daemon.tick`) that are testable one by one. The daemon's parts are built
and handed in by ``scheduler.daemon.assemble.build_daemon``; reloads and
commands are in ``scheduler.daemon.control``.

An idle daemon sleeps. The main loop wakes for a signal, a ring of the command
doorbell (``scheduler.store.doorbell``), and its own timers: the heartbeat and
the systemd watchdog (one wake-up serves both), a reload or store retry. The
scheduler's timer wakes for the next fire time on its own. Every store call
runs in the store thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import signal
from collections import deque
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from jobs.http import HttpJobRunner
from scheduler import __version__
from scheduler.config import LiveConfig
from scheduler.daemon.control import DaemonControl
from scheduler.daemon.leadership import Leadership
from scheduler.daemon.lock import DaemonLock
from scheduler.daemon.notify import Notifier
from scheduler.daemon.takeover import FOREIGN_POLL_SECONDS, ForeignRuns, look
from scheduler.engine import Engine
from scheduler.errors import StoreError, first_line
from scheduler.logs import get_logger
from scheduler.observe import Observability
from scheduler.run import EventBus, SlotEvent, SlotRunner
from scheduler.store import Command, Store
from scheduler.store.doorbell import Doorbell
from scheduler.store.migrations import LATEST_VERSION, current_version
from scheduler.store.rows import utcnow
from scheduler.store.worker import StoreThread

__all__ = ["Daemon"]

log = get_logger("daemon")

STANDBY_BACKOFF_MAX_SECONDS = 4.0  # a standby's tries while the store is down
STORE_RETRY_SECONDS = 2.0
CONFIG_POLL_SECONDS = 2.0  # [daemon] watch_config = true: how often the file is looked at
WRITER_FLUSH_SECONDS = 10.0  # at shutdown, for outcomes still on their way to the store


class Daemon(Leadership, DaemonControl):
    def __init__(
        self, *, live: LiveConfig, store: Store, lock: DaemonLock, runner: SlotRunner,
        engine: Engine, observability: Observability, events: EventBus, http: HttpJobRunner,
        notifier: Notifier, daemon_id: str, store_thread: StoreThread, standby: bool = False,
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
        self.store_thread = store_thread
        self.standby = standby
        self.stop_requested = asyncio.Event()
        # Set by whatever wants the main loop to look now: a signal, the doorbell.
        self.nudged = asyncio.Event()
        self.doorbell = Doorbell(store.engine, self.nudged.set)
        self._reload_task: asyncio.Task[object] | None = None
        self._housekeeping_queued = False  # one _housekeeping waits for the store thread
        self._unfinished = deque()
        self._reload_lock = asyncio.Lock()
        self._commands_task: asyncio.Task[None] | None = None
        self._engine_in_sync = True
        self.reload_requested = False
        self._config_mtime = self._mtime()
        self._last_beat = 0.0
        self._last_watchdog = 0.0
        self._last_tick = 0.0
        self._reload_retry_at = 0.0
        self._store_down_since: float | None = None
        self._store_error_logged_at = float("-inf")
        self._running = False
        # Leadership (see scheduler.daemon.lease): the role, and the moves between roles.
        self.leading = False
        self._ever_led = False
        self._role_since = utcnow()
        self._lost_reason: str | None = None
        self._taking_lead = False  # between winning the lock and leading (leadership._bid)
        self._role_task: asyncio.Task[None] | None = None
        self._next_try_at = 0.0
        self._standby_wait = lock.poll_seconds
        self._standby_state: str | None = None  # what the standby last logged
        self._registered = False
        self._foreign = ForeignRuns(runner.running_jobs)
        self._foreign_task: asyncio.Task[None] | None = None
        self._foreign_checked_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observing = False
        # The runner asks before every claim (fencing); built before this daemon, so wired here.
        runner.may_claim = self._may_claim
        runner.fence_pid = lock.fence_pid

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> int:
        self._loop = loop = asyncio.get_running_loop()

        def lost(reason: str) -> None:  # in the lease's thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._lose_lead, reason)

        self.lock.set_on_lost(lost)
        # Before anything starts: a SIGTERM right after "daemon started" (systemd stopping a
        # daemon it just started) must end in a clean stop, not in Python's default death.
        self._install_signal_handlers()
        if not self.standby:
            # A plain `run` refuses a store another daemon leads (naming it) or cannot reach.
            self.lock.acquire()
            try:
                self._start_bookkeeping()
            except SQLAlchemyError as exc:
                self.lock.release()
                raise StoreError(
                    f"cannot start: the store {self.store.url_for_humans} is unavailable: "
                    f"{first_line(exc)}"
                ) from None
        async with self.http:
            if not self.standby:
                try:
                    await self._first_lead()
                except SQLAlchemyError as exc:
                    await self.engine.shutdown()
                    await self.observability.aclose()
                    self.lock.release()
                    raise StoreError(
                        f"cannot start: the store {self.store.url_for_humans} failed while "
                        f"scheduling the jobs: {first_line(exc)}"
                    ) from None
            if self.standby:
                self._announce("standby", holder=None)
                # systemd must not time the start out while we wait our turn.
                self.notifier.ready(self.status_line())
            self._last_beat = self._last_watchdog = loop.time()
            if self.standby:
                self._last_beat = float("-inf")  # register the node at the first tick
            try:
                while not self.stop_requested.is_set():
                    await self.tick()
                    await self._sleep()
            finally:
                await self._shutdown()
        return 0

    async def _sleep(self) -> None:
        """Until the next timer of the main loop is due, or someone nudges it.

        The nudge is cleared when a tick starts, not here: one that comes during a tick
        (a reload finishing, a second SIGHUP) must make the loop look again, not be lost.
        """
        timeout = self._next_timer() - asyncio.get_running_loop().time()
        if timeout <= 0 or self.stop_requested.is_set():
            # tick() itself never yields: without this a timer that stays due would spin
            # the loop with nothing else running (no run, no signal, no store reply).
            await asyncio.sleep(0)
            return
        waits = [asyncio.ensure_future(self.nudged.wait()),
                 asyncio.ensure_future(self.stop_requested.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _next_timer(self) -> float:
        interval = self.config.daemon.heartbeat_interval
        watchdog = self.notifier.watchdog_interval()
        if watchdog is not None:
            interval = min(interval, watchdog)
        # One wake-up serves the heartbeat and the watchdog: both are due at least this often.
        now = asyncio.get_running_loop().time()
        due = [self._last_tick + interval]
        if self.reload_requested and self.leading and not self._reloading():
            due.append(self._reload_retry_at)  # a running reload nudges the loop when done
        if self._store_down_since is not None:
            due.append(now + STORE_RETRY_SECONDS)
        if self.config.daemon.watch_config:
            due.append(now + CONFIG_POLL_SECONDS)
        if not self.leading and self._role_task is None:
            due.append(self._next_try_at)  # a standby's next bid for the lead
        if self.leading and self._foreign and (self._foreign_task is None
                                               or self._foreign_task.done()):
            due.append(self._foreign_checked_at + FOREIGN_POLL_SECONDS)
        return min(due)

    def _start_bookkeeping(self) -> None:
        """Before any job fires: take the store, upgrade it, close the books of a dead daemon."""
        self.store.migrate()  # under the lock: two daemons must not upgrade one store at once
        books = look(self.store, self.config, self.daemon_id,
                     exclusive=not self.lock.can_be_lost, now=utcnow())
        self._announce_abandoned(books.abandoned, "a previous daemon")
        self._foreign.replace(books.live)

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        log.info("daemon stopping", extra={"action": "daemon.stopping"})
        if self._role_task is not None:
            self._role_task.cancel()
            await asyncio.gather(self._role_task, return_exceptions=True)
        await self._end_side_tasks()
        self.doorbell.close()
        # No wake-up starts after this; one in progress has written its claims and started
        # its runs, so every claimed slot is in the drain below.
        await self.engine.shutdown()
        left = await self.runner.drain(self.config.daemon.shutdown_timeout)
        if not await self.runner.writer.flush(WRITER_FLUSH_SECONDS):
            for run in self.runner.writer.unwritten():
                log.error(
                    "run finished but the store could not record it before shutdown; its row "
                    "stays in flight and the next start marks it abandoned: the run.finish log "
                    "line has the outcome",
                    extra={"action": "run.unrecorded", "job": run.job_id, "run_id": run.run_id,
                           "status": run.outcome.status.value},
                )
        try:
            await self.store_thread.call(self._close_the_books, left)
        except SQLAlchemyError as exc:
            # Runs still in flight in the store are marked abandoned by the next start.
            log.error(
                "store unavailable at shutdown; the next start will finish the bookkeeping",
                extra={"action": "store.error", "error": first_line(exc)},
            )
        await self.observability.aclose()  # after the abandoned events, so their alerts go out
        self.store_thread.close()
        self.store.dispose()
        self.lock.release()
        log.info("daemon stopped", extra={"action": "daemon.stop", "abandoned": len(left)})

    def _close_the_books(self, left: list[int]) -> None:
        """In the store thread: runs cut short are abandoned; the daemon is stopped."""
        if left:
            self.store.abandon_runs(
                left,
                f"abandoned: still running when the daemon stopped (after waiting "
                f"{self.config.daemon.shutdown_timeout:g} s)",
            )
            for run_id in left:
                row = self.store.run(run_id)
                if row is not None:
                    self.events.publish(SlotEvent(
                        job_id=row.job_id, status="abandoned", scheduled_at=row.scheduled_at,
                        run_id=run_id, trigger=row.trigger, error=row.error,
                    ))
        self.store.daemon_stopped(self.daemon_id)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._request_stop)
        loop.add_signal_handler(signal.SIGINT, self._request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)

    def _request_stop(self) -> None:
        self.stop_requested.set()
        self.nudged.set()

    def _request_reload(self) -> None:
        self.reload_requested = True
        self.nudged.set()

    # -- one step of the main loop ------------------------------------------------------

    async def tick(self) -> None:
        self.nudged.clear()
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_tick = now
        self._watchdog(now)
        if self.leading and not self._taking_lead and not self.lock.may_claim():
            # The lease keeper may be stuck on a connection that hangs without closing
            # (it then never reports a loss): the fence's clock says so instead.
            self._lose_lead("the lease was not confirmed in time")
        if self._role_task is None:
            if self.leading and self._lost_reason is not None:
                self._start_role_task(self._drop_lead(self._lost_reason), "drop-lead")
            elif not self.leading and now >= self._next_try_at \
                    and not self.stop_requested.is_set():
                self._start_role_task(self._bid(), "bid-for-lead")
        if self.config.daemon.watch_config and self._mtime() != self._config_mtime:
            self.reload_requested = True
        # Only the leader reloads: a standby's engine does not touch the job store. It
        # takes the config file as it is when it next leads.
        if self.leading and self.reload_requested and now >= self._reload_retry_at:
            self._start_reload()
        if (self.leading and self._foreign and now - self._foreign_checked_at
                >= FOREIGN_POLL_SECONDS * 0.9
                and (self._foreign_task is None or self._foreign_task.done())):
            self._foreign_checked_at = now
            self._foreign_task = loop.create_task(self._refresh_foreign(), name="foreign-runs")
            self._foreign_task.add_done_callback(lambda _: self.nudged.set())
        if self._housekeeping_queued:
            # The store thread has not started the last one: that one will see whatever
            # this wake-up came for. Queuing one per wake-up grew the queue without bound
            # while the store was slow (a lock, an outage), and everything behind it waited.
            return
        # A beat a little early is as good as on time: it shares this wake-up.
        beat = now - self._last_beat >= self.config.daemon.heartbeat_interval * 0.9
        if beat:
            self._last_beat = now
            if self.notifier.watchdog_interval() is None:
                self.notifier.status(self.status_line())
        # Handed to the store thread without waiting: an idle daemon's routine beat must
        # not wake the loop again when it is written. It reports back only when there is
        # something to do (commands, a store error, the store back).
        self._housekeeping_queued = True
        self.store_thread.submit(self._housekeeping, loop, beat, self.status_line(),
                                 self._store_down_since is not None, self.leading,
                                 self.role, self._role_since)

    async def _refresh_foreign(self) -> None:
        try:
            await self._look_at_foreign_runs()
        except SQLAlchemyError as exc:
            self._store_unavailable(exc, asyncio.get_running_loop().time())

    def _housekeeping(
        self, loop: asyncio.AbstractEventLoop, beat: bool, status: str, was_down: bool,
        leading: bool = True, role: str = "leader", role_since: datetime | None = None,
    ) -> None:
        """In the store thread: the heartbeat, and pending commands (the leader's only)."""
        self._housekeeping_queued = False  # from here on, a new wake-up needs a new look
        try:
            if beat and not self._registered and not leading:
                self._register_standby(role_since)
            elif beat:
                self.store.beat(self.daemon_id, status, role, role_since)
            self.finish_unfinished()
            # A leader whose lease is not confirmed takes no command: another node may lead.
            commands = self.store.pending_commands() if self.lock.may_claim() else []
        except SQLAlchemyError as exc:
            if leading:
                loop.call_soon_threadsafe(self._store_unavailable, exc, loop.time())
            return  # a standby's beat is best effort: its bids report the store's state
        if commands or was_down:
            loop.call_soon_threadsafe(self._after_housekeeping, commands)

    def _register_standby(self, since: datetime | None) -> None:
        """A standby's row, once the store has the schema this cronhost writes."""
        if current_version(self.store.engine) != LATEST_VERSION:
            return  # the leader (of this version) upgrades it; a later beat registers
        self.store.register_daemon(self.daemon_id, str(self.config.path), __version__,
                                   "standby", since)
        self._registered = True

    def _after_housekeeping(self, commands: list[Command]) -> None:
        self._store_down_since = None
        if commands and self.leading and (
                self._commands_task is None or self._commands_task.done()):
            self._commands_task = asyncio.get_running_loop().create_task(
                self._handle_commands(commands), name="commands")
            # Commands that came meanwhile are picked up by one more look right after.
            self._commands_task.add_done_callback(lambda _: self.nudged.set())

    def _watchdog(self, now: float) -> None:
        # The watchdog vouches for the event loop turning and the scheduler being alive,
        # not for the store: a database outage must not get the daemon killed (it keeps
        # the books in memory and catches up when the store is back).
        interval = self.notifier.watchdog_interval()
        if interval is None:
            return
        # At every timed wake-up of the main loop (see _next_timer), so a ping never waits
        # for a second one; 0.9: wake-ups come give or take a few microseconds.
        step = min(interval, self.config.daemon.heartbeat_interval)
        if now - self._last_watchdog < step * 0.9:
            return
        # A standby vouches for its loop only: it has no scheduler running yet.
        if not self.leading or (self._running and self.engine.scheduler.running):
            self._last_watchdog = now
            self.notifier.watchdog(self.status_line())

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
