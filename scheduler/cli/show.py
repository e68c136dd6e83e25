"""The commands that look: check, next, status, history."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from scheduler.cli.common import (
    EXIT_OK,
    MAX_FIRE_TIMES,
    MAX_ROWS,
    config_path,
    connect_store,
    count_option,
    emit_json,
    known_job,
    missing_store_message,
    open_store,
    parse_time,
    try_config,
)
from scheduler.config import PRUNE_JOB_ID, Config, load_config
from scheduler.errors import ConfigError, CronhostError, UsageError
from scheduler.schedule import (
    CrontabSchedule,
    EverySchedule,
    Schedule,
    ScheduleError,
    next_fire_times,
    parse_duration,
    replayed_slot,
    validate_expression,
    zone,
)
from scheduler.store import DaemonInfo, JobRow, RunRow, Store
from scheduler.store.control import NodeInfo
from scheduler.views import job_statuses
from scheduler.views.text import duration_ms, one_line, relative, table, when


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for job in config.jobs:
        upcoming = next_fire_times(job.timetable(), 1, now) if job.enabled else []
        rows.append({
            "job_id": job.id, "kind": job.kind, "schedule": job.schedule_text,
            "timezone": job.timezone, "enabled": job.enabled,
            "next_run_at": upcoming[0].isoformat() if upcoming else None,
            "target": f"{job.method} {job.url}" if job.kind == "http" else job.call,
        })
    if args.json:
        emit_json({"config": str(config.path), "store": Store.describe_url(config.store.url),
                   "jobs": rows})
        return EXIT_OK
    builtin = sum(job.id == PRUNE_JOB_ID for job in config.jobs)
    declared = len(config.jobs) - builtin
    print(f"{config.path}: OK, {declared} job{'' if declared == 1 else 's'}"
          f"{' and the built-in history pruning' if builtin else ''}; "
          f"store {Store.describe_url(config.store.url)}")
    print(table(
        ("job", "schedule", "tz", "next run", "target"),
        [(r["job_id"] + ("" if r["enabled"] else " (disabled)"), r["schedule"], r["timezone"],
          when(datetime.fromisoformat(r["next_run_at"])) if r["next_run_at"] else "-", r["target"])
         for r in rows],
    ))
    return EXIT_OK


def cmd_next(args: argparse.Namespace) -> int:
    count_option(args.n, MAX_FIRE_TIMES)
    after = parse_time(args.after) if args.after else datetime.now(UTC)
    try:
        shown_in = zone(args.tz) if args.tz else None
    except ScheduleError as exc:
        raise UsageError(f"--tz: {exc}") from None
    config, broken = _config_or_error(args)
    job = config.job(args.target) if config else None
    stored = _stored_job(args, args.target) if broken is not None else None
    schedule: Schedule
    if job is not None:
        schedule = job.timetable()  # --tz, if given, only changes how the times are shown
    elif stored is not None:
        # The file cannot be read, but the daemon still runs what it last loaded: answer
        # from that, and say why the file was not used.
        print(f"cronhost: warning: {broken}; showing {args.target!r} as the daemon last "
              f"loaded it (the store's job table), not as the file says", file=sys.stderr)
        schedule = _stored_timetable(stored)
    else:
        try:
            expression = validate_expression(args.target)
        except ScheduleError as exc:
            if broken is not None:
                # A word without spaces was meant as a job id: a cron parser's complaint
                # about its field count would only confuse.
                schedule_too = (f"; nor is it a valid schedule ({exc})"
                                if len(args.target.split()) > 1 else "")
                raise UsageError(
                    f"{args.target!r} is not a job the daemon knows (its store has no such "
                    f"job), and the config file is broken, so its jobs cannot be looked up "
                    f"({broken}){schedule_too}"
                ) from None
            raise UsageError(
                f"{args.target!r} is neither a job id in {config_path(args)} nor a valid "
                f"schedule: {exc}"
            ) from None
        schedule = CrontabSchedule(expression, args.tz or "UTC")
    tz = shown_in or zone(getattr(schedule, "timezone", None) or "UTC")
    times = [t.astimezone(tz).isoformat() for t in next_fire_times(schedule, args.n, after)]
    if args.json:
        emit_json(times)
    else:
        print("\n".join(times))
    return EXIT_OK


def _config_or_error(args: argparse.Namespace) -> tuple[Config | None, ConfigError | None]:
    """The config, or why the file that is there cannot be used (no file: no error)."""
    path = config_path(args)
    try:
        return load_config(path, resolve_secrets=False), None
    except ConfigError as exc:
        return None, (exc if path.exists() else None)
    except CronhostError:
        return None, None


def _stored_job(args: argparse.Namespace, job_id: str) -> JobRow | None:
    store = connect_store(args)
    try:
        if store.missing() or not store.check_readable():
            return None
        return next((row for row in store.jobs() if row.job_id == job_id), None)
    except SQLAlchemyError:
        return None
    finally:
        store.dispose()


def _stored_timetable(row: JobRow) -> Schedule:
    """A job's schedule as the store records it (``Config``'s ``schedule_text``)."""
    if row.schedule.startswith("every "):
        return EverySchedule(parse_duration(row.schedule.removeprefix("every ")))
    return CrontabSchedule(row.schedule, row.timezone)


def cmd_status(args: argparse.Namespace) -> int:
    store = connect_store(args)
    config = try_config(args)
    if store.missing() and config is None:
        raise UsageError(missing_store_message(args, store))
    # Before the daemon's first run the jobs come from the config, with a note saying so.
    statuses = job_statuses(store, config)
    readable = not store.missing() and store.check_readable()
    info = store.latest_daemon() if readable else None
    nodes = _nodes(store) if readable else []
    if args.json:
        emit_json({
            "daemon": _daemon_json(info),
            "nodes": [node.to_json() for node in nodes],
            "jobs": [status.to_json() for status in statuses],
        })
        return EXIT_OK
    if store.missing():
        print(f"daemon: never started with this config (no store at {store.url_for_humans})")
    else:
        print(_daemon_line(info))
    if len(nodes) > 1 or any(node.role != "leader" for node in nodes):
        for node in nodes:
            print(f"  {node.role:<8} pid {node.pid} on {node.hostname} (node {node.id}), "
                  f"{node.role} since {when(node.since)}, last beat {when(node.last_beat_at)}")
    if info is not None and info.config_error:
        print(f"config reload failed at {when(info.config_error_at)}: {info.config_error}")
    now = datetime.now(UTC)
    print(table(
        ("job", "schedule", "next run", "last", "when", "took", "state"),
        [(s.job_id, s.schedule, relative(s.next_run_at, now), s.last_status,
          relative(s.last_run_at, now), duration_ms(s.last_duration_ms),
          s.state)
         for s in statuses],
    ))
    for s in statuses:
        if s.auto_disabled:
            print(f"{s.job_id}: {s.paused_reason}; `cronhost resume {s.job_id}` clears it")
    return EXIT_OK


def _nodes(store: Store) -> list[NodeInfo]:
    try:
        return store.nodes()
    except SQLAlchemyError:  # a store from before v7 has no roles: its one daemon is shown
        return []


def _daemon_json(info: DaemonInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "up": info.is_up(), "id": info.id, "hostname": info.hostname, "pid": info.pid,
        "version": info.version, "started_at": info.started_at.isoformat(),
        "last_beat_at": info.last_beat_at.isoformat(),
        "stopped_at": info.stopped_at.isoformat() if info.stopped_at else None,
        "config_path": info.config_path,
        "config_loaded_at": info.config_loaded_at.isoformat() if info.config_loaded_at else None,
        "config_error": info.config_error,
        "config_error_at": info.config_error_at.isoformat() if info.config_error_at else None,
    }


def _daemon_line(info: DaemonInfo | None) -> str:
    if info is None:
        return "daemon: never started on this store"
    if info.is_up():
        return (f"daemon: up since {when(info.started_at)} (pid {info.pid} on {info.hostname}), "
                f"config loaded {when(info.config_loaded_at)}")
    if info.stopped_at:
        return f"daemon: DOWN, stopped at {when(info.stopped_at)}"
    return f"daemon: DOWN, no heartbeat since {when(info.last_beat_at)} (crashed or killed?)"


def cmd_history(args: argparse.Namespace) -> int:
    count_option(args.n, MAX_ROWS)
    store = open_store(args)
    if args.job:
        known_job(store, args, args.job)
    rows = store.history(args.job, limit=args.n) if store.check_readable() else []
    attempts = store.attempts_of(row.id for row in rows)
    if args.json:
        emit_json([row.to_json([a.to_json() for a in attempts.get(row.id, [])])
                   for row in rows])
        return EXIT_OK
    if not rows:
        print("no runs recorded yet")
        return EXIT_OK
    print(table(
        ("job", "slot", "status", "tries", "http", "took", "late", "error · message"),
        [(r.job_id + _trigger_label(r), when(r.scheduled_at),
          r.status + (f" x{r.slot_count}" if r.slot_count > 1 else ""),
          r.attempts_so_far(len(attempts.get(r.id, []))), r.http_status,
          duration_ms(r.duration_ms), duration_ms(r.lateness_ms),
          one_line(" · ".join(text for text in (r.error, r.message) if text), 100))
         for r in rows],
    ))
    return EXIT_OK


def _trigger_label(run: RunRow) -> str:
    if run.trigger != "manual":
        return ""
    # A re-run of a recorded slot carries that slot's key: say which slot it repeated.
    replayed = replayed_slot(run.idempotency_key)
    return " (manual)" if replayed is None else f" (re-run of {replayed})"
