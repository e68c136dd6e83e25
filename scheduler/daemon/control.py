"""What the daemon does when asked: re-read its config, trigger, pause, resume.

Requests come as rows in the `commands` table (from the CLI and the dashboard)
or as SIGHUP; a bad config on reload changes nothing and is recorded for the
operator (status, dashboard), and the daemon keeps running what it had. Every
finished command, reload and failed reload is a line in the audit log
(``scheduler.store.audit``), written in the store thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from jobs.redact import redact
from scheduler.config import Config, JobSpec, LiveConfig, load_config
from scheduler.config.diff import ConfigDiff, diff_configs
from scheduler.daemon.notify import Notifier
from scheduler.engine import Changes, Engine
from scheduler.errors import ConfigError, first_line
from scheduler.logs import get_logger
from scheduler.run import SlotRunner
from scheduler.store import Command, Store
from scheduler.store.audit import Actor, who_asks
from scheduler.store.rows import trigger_waits_result
from scheduler.store.worker import StoreThread

__all__ = ["DaemonControl", "job_state_rows"]

log = get_logger("daemon")

RELOAD_RETRY_SECONDS = 2.0
SIDE_TASKS_GRACE_SECONDS = 5.0  # at shutdown, for a reload or commands still going


def job_state_rows(specs: tuple[JobSpec, ...]) -> list[dict[str, object]]:
    """What the store's job_state table records of each configured job."""
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


class DaemonControl:
    """Reloads and commands; mixed into :class:`~scheduler.daemon.loop.Daemon`."""

    live: LiveConfig
    store: Store
    store_thread: StoreThread
    engine: Engine
    runner: SlotRunner
    notifier: Notifier
    daemon_id: str
    reload_requested: bool
    _engine_in_sync: bool
    _reload_retry_at: float
    _config_mtime: float | None
    # What the audit log last recorded as loaded: the base of the next reload's diff
    # (not the live config, which a reload that failed halfway has already replaced).
    _audited_config: Config | None = None
    # Outcomes of commands carried out whose finish the store refused (command id, state,
    # result, run id): appended on the loop, written and popped in the store thread.
    _unfinished: deque[tuple[int, str, str | None, int | None]]
    _reload_lock: asyncio.Lock
    _reload_task: asyncio.Task[object] | None
    nudged: asyncio.Event
    _commands_task: asyncio.Task[None] | None
    _foreign_task: asyncio.Task[None] | None
    _store_unavailable: Callable[[Exception, float], None]  # the loop's (scheduler.daemon.loop)

    @property
    def config(self) -> Config:
        return self.live.current

    def status_line(self) -> str:
        jobs = [spec for spec in self.config.jobs if spec.enabled]
        running = sum(self.runner.running_jobs.values())
        queued = sum(self.runner.queued_jobs.values())
        return (f"{len(jobs)} jobs scheduled, {running} running"
                + (f", {queued} queued" if queued else ""))

    async def reload(self, asked: Command | None = None) -> Changes | None:
        """Re-read config.toml; a bad edit changes nothing and is recorded for the operator.

        Returns what changed, or None when the reload failed (or must be retried). The
        file is parsed in a worker thread and the engine changed in the store thread, so
        jobs keep firing (and the watchdog keeps beating) through a reload of any size.
        ``asked``: the command that asked for it (the audit log names who), else SIGHUP
        or a change of the file. One reload at a time: a command's reload and a SIGHUP's
        would otherwise interleave on the engine and on the audit diff's base.
        """
        async with self._reload_lock:
            return await self._reload(asked)

    async def _reload(self, asked: Command | None) -> Changes | None:
        self.notifier.reloading()
        self._config_mtime = self._mtime()
        try:
            new = await asyncio.to_thread(load_config, self.config.path)
            self._refuse_restart_only_changes(new)
        except ConfigError as exc:
            await self._reload_failed(str(exc), asked, self._known_job(exc.job))
            return None
        except Exception as exc:  # noqa: BLE001 - nothing in a config file may stop the daemon
            await self._reload_failed(
                f"{self.config.path}: cannot load: {type(exc).__name__}: {exc}", asked)
            return None
        if self._audited_config is None:
            self._audited_config = self.config  # what the daemon started with
        diff = diff_configs(self._audited_config, new)
        # The new config first: slots of added jobs may fire as soon as the engine has them.
        # After a reload that failed halfway the engine may hold a mix: compare it all.
        previous = self.config if self._engine_in_sync else None
        self.live.replace(new)
        self._engine_in_sync = False
        try:
            changes = await self.store_thread.call(self._apply, new, previous, diff, asked)
            self._engine_in_sync = True
            self._audited_config = new
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

    def _apply(self, new: Config, previous: Config | None, diff: ConfigDiff,
               asked: Command | None) -> Changes:
        """In the store thread: the engine's jobs, job_state, the load stamp, the audit line."""
        changes = self.engine.apply(new.jobs, self.store.paused_jobs(),
                                    previous=previous.jobs if previous is not None else None)
        self.store.sync_jobs(job_state_rows(new.jobs))
        self.store.record_config_loaded(self.daemon_id)
        actor, how = _asker(asked)
        self.store.add_event(
            "config.reloaded", f"config reloaded by {actor} ({how}): {diff.summary()}",
            job_id=diff.only_job, actor=actor, daemon_id=self.daemon_id,
            detail={**diff.to_json(), "path": str(new.path), "via": how,
                    "command_id": asked.id if asked else None})
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

    def _known_job(self, job_id: str | None) -> str | None:
        """The job an error names, if it is one the daemon runs (`cronhost log --job` finds
        the event under it); an id only the broken file has is left in the message."""
        return job_id if any(spec.id == job_id for spec in self.config.jobs) else None

    async def _reload_failed(self, error: str, asked: Command | None = None,
                             job_id: str | None = None) -> None:
        # A config error may quote the file, and a file may hold a pasted token: the
        # running config's secrets (and any Bearer value) go before it is kept anywhere.
        error = redact(error, self.config.secrets.values_for_redaction())
        log.error(
            "config reload failed; still running the previous config",
            extra={"action": "config.reload_failed", "error": error},
        )
        try:
            await self.store_thread.call(self._record_reload_failure, error, asked, job_id)
        except SQLAlchemyError as exc:
            log.error("could not record the reload error in the store",
                      extra={"action": "store.error", "error": first_line(exc)})
        self.notifier.ready(self.status_line())

    def _record_reload_failure(self, error: str, asked: Command | None,
                               job_id: str | None = None) -> None:
        self.store.record_config_error(self.daemon_id, error)
        actor, how = _asker(asked)
        self.store.add_event(
            "config.reload_failed",
            f"config reload by {actor} ({how}) failed, the previous config runs: "
            f"{error.splitlines()[0] if error else error}",
            job_id=job_id, actor=actor, daemon_id=self.daemon_id,
            detail={"error": error, "path": str(self.config.path), "via": how,
                    "command_id": asked.id if asked else None})

    async def _finish(self, command: Command, state: str, result: str | None = None,
                      run_id: int | None = None) -> None:
        """The command's outcome and its audit line (one transaction, in the store thread).

        If the store fails now, the outcome is kept and written by a later look at the
        store (``finish_unfinished``): the command was carried out and must not stay
        `taken` (its asker waits for it), nor go back to pending (it would run twice).
        """
        try:
            await self.store_thread.call(self.store.finish_command, command.id, state, result,
                                         run_id, daemon_id=self.daemon_id)
        except SQLAlchemyError:
            self._unfinished.append((command.id, state, result, run_id))
            raise

    def finish_unfinished(self) -> None:
        """In the store thread: write the outcomes of commands the store failed to take."""
        while self._unfinished:
            command_id, state, result, run_id = self._unfinished[0]
            self.store.finish_command(command_id, state, result, run_id,
                                      daemon_id=self.daemon_id)
            self._unfinished.popleft()

    async def _handle_commands(self, commands: list[Command]) -> None:
        for command in commands:
            try:
                await self.handle_command(command)
            except SQLAlchemyError as exc:
                self._store_unavailable(exc, asyncio.get_running_loop().time())
                return
            except Exception as exc:  # noqa: BLE001 - one command must not end the others
                log.error("command failed", exc_info=exc,
                          extra={"action": "command.error", "command_id": command.id,
                                 "kind": command.kind, "job": command.job_id})
                with contextlib.suppress(SQLAlchemyError):
                    await self._finish(command, "failed",
                                       f"cronhost could not carry it out: {type(exc).__name__}")

    def _reloading(self) -> bool:
        return self._reload_task is not None and not self._reload_task.done()

    def _start_reload(self) -> None:
        """A reload runs beside the main loop, so the watchdog and commands keep going.

        A request that comes meanwhile stays requested: one more reload follows this one.
        """
        if self._reloading():
            return
        self.reload_requested = False
        self._reload_task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reload_task.add_done_callback(lambda _: self.nudged.set())

    async def _end_side_tasks(self) -> None:
        """A reload or commands in progress get a moment to finish (a command left half
        done stays `taken`); then they, and a look at other nodes' runs, are cancelled:
        none may reach for the store thread after it is closed."""
        tasks = [task for task in (self._reload_task, self._commands_task, self._foreign_task)
                 if task is not None and not task.done()]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=SIDE_TASKS_GRACE_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def handle_command(self, command: Command) -> None:
        call = self.store_thread.call
        if not await call(self.store.take_command, command.id):
            return
        job_id = command.job_id or ""
        if command.kind == "reload":
            changes = await self.reload(command)
            if changes is None:
                await self._finish(command, "failed",
                           "config reload failed; see status")
            else:
                await self._finish(command, "done", changes.summary())
            return
        if self.config.job(job_id) is None:
            await self._finish(command, "failed",
                       f"no job {job_id!r} in the running config")
            return
        if command.kind == "trigger":
            key = await call(self._replayed_key, job_id, command)
            run_id = await self.runner.trigger_now(job_id, key)
            if run_id is None:
                await self._finish(command, "failed", "could not claim a run")
            else:
                behind = self.runner.waits_behind(job_id, run_id)
                result = trigger_waits_result(behind) if behind is not None else "started"
                await self._finish(command, "done", result, run_id)
        elif command.kind in ("pause", "resume"):
            paused = command.kind == "pause"
            await call(self._set_paused, job_id, paused)
            log.info(f"job {command.kind}d", extra={"action": f"job.{command.kind}", "job": job_id})
            await self._finish(command, "done", f"{command.kind}d")
        else:
            await self._finish(command, "failed",
                       f"unknown command {command.kind!r}")

    def _set_paused(self, job_id: str, paused: bool) -> None:
        self.store.set_paused(job_id, paused)
        self.engine.set_paused(job_id, paused)

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


def _asker(asked: Command | None) -> tuple[Actor, str]:
    """Who a reload is for: the command's asker, else this daemon (SIGHUP, file watch)."""
    if asked is not None:
        return Actor(asked.requested_user, asked.requested_host), asked.requested_by
    return who_asks(), "signal or file change"
