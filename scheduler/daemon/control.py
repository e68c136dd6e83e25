"""What the daemon does when asked: re-read its config, trigger, pause, resume.

Requests come as rows in the `commands` table (from the CLI and the dashboard)
or as SIGHUP; a bad config on reload changes nothing and is recorded for the
operator (status, dashboard), and the daemon keeps running what it had.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from scheduler.config import Config, JobSpec, LiveConfig, load_config
from scheduler.daemon.notify import Notifier
from scheduler.engine import Changes, Engine
from scheduler.errors import ConfigError, first_line
from scheduler.logs import get_logger
from scheduler.run import SlotRunner
from scheduler.store import Command, Store

__all__ = ["DaemonControl", "job_state_rows"]

log = get_logger("daemon")

RELOAD_RETRY_SECONDS = 2.0


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
    engine: Engine
    runner: SlotRunner
    notifier: Notifier
    daemon_id: str
    reload_requested: bool
    _reload_retry_at: float
    _config_mtime: float | None

    @property
    def config(self) -> Config:
        return self.live.current

    def status_line(self) -> str:
        jobs = [spec for spec in self.config.jobs if spec.enabled]
        return f"{len(jobs)} jobs scheduled, {len(self.runner.in_flight)} running"

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
        self.live.replace(new)
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
