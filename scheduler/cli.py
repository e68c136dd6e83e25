"""The `cronhost` command line.

Every command reads the same store; `--json` prints the stable machine form.
Operator mistakes (bad config, unknown job, bad time) end as one paragraph on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler import __version__
from scheduler.config import Config, default_config_path, load_config, resolve_store_url
from scheduler.cron import CrontabTrigger, ScheduleError, next_fire_times, validate_expression, zone
from scheduler.errors import ConfigError, CronhostError, NotRunningError, UsageError
from scheduler.render import duration_ms, relative, table, when
from scheduler.retention import PRUNE_JOB_ID
from scheduler.store import Store
from scheduler.store.store import Command, DaemonInfo, RunRow
from scheduler.views import job_statuses

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, UsageError) as exc:
        print(f"cronhost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CronhostError as exc:  # the store is down, the daemon is not running
        print(f"cronhost: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `cronhost history --json | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cronhost", description="Self-hosted cron: fires HTTP endpoints and Python callables."
    )
    parser.add_argument("--version", action="version", version=f"cronhost {__version__}")
    parser.add_argument(
        "--config", "-c", type=Path, default=None,
        help="config file (default: $CRONHOST_CONFIG, else ./config.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("run", cmd_run, "run the daemon in the foreground")
    p.add_argument("--log-format", choices=("json", "text"), default=None,
                   help="json (default; for journald) or text (for a terminal)")
    p.add_argument("--standby", action="store_true",
                   help="if another daemon holds the store, wait and take over when it dies "
                        "(instead of refusing to start)")

    p = command("check", cmd_check, "validate the config and show what would run")
    p.add_argument("--json", action="store_true")

    p = command("next", cmd_next, "print the next fire times of a job or a cron expression")
    p.add_argument("target", metavar="JOB_ID_OR_EXPRESSION")
    p.add_argument("-n", type=int, default=5, help="how many (default 5)")
    p.add_argument("--tz", default=None, help="time zone for an expression (default UTC)")
    p.add_argument("--after", default=None, help="ISO 8601 start (default now)")
    p.add_argument("--json", action="store_true")

    p = command("status", cmd_status, "every job: schedule, next run, last run, paused")
    p.add_argument("--json", action="store_true")

    p = command("history", cmd_history, "recent runs, newest first")
    p.add_argument("job", nargs="?", default=None)
    p.add_argument("-n", type=int, default=20, help="how many rows (default 20)")
    p.add_argument("--json", action="store_true")

    p = command("trigger", cmd_trigger, "ask the running daemon to run a job now")
    p.add_argument("job")
    p.add_argument("--wait", action="store_true", help="wait for the run and print its result")
    p.add_argument("--slot", default=None, metavar="ISO8601",
                   help="re-run this recorded slot (e.g. an abandoned one) under its own "
                        "Idempotency-Key, so the endpoint can tell it is a repeat")
    p.add_argument("--timeout", type=float, default=300.0, help="how long --wait waits (s)")
    p.add_argument("--json", action="store_true")

    for name, verb in (("pause", "pause"), ("resume", "resume")):
        p = command(name, cmd_pause_resume, f"{verb} a job (persisted across restarts)")
        p.add_argument("job")
        p.add_argument("--json", action="store_true")
        p.set_defaults(verb=verb)

    p = command("reload", cmd_reload, "ask the running daemon to re-read its config")

    p = command("tui", cmd_tui, "open the live dashboard")
    return parser


# -- helpers ----------------------------------------------------------------------------


def config_path(args: argparse.Namespace) -> Path:
    return args.config if args.config is not None else default_config_path()


def store_url(args: argparse.Namespace) -> str:
    """The store the config names, read leniently: a broken job table must not stop an
    operator from looking at the history."""
    path = config_path(args)
    url = None
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        table = raw.get("store", {})
        url = table.get("url") if isinstance(table, dict) else None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
    return resolve_store_url(url if isinstance(url, str) else None, path)


def open_store(args: argparse.Namespace) -> Store:
    """The store, for commands that need its history: refuse to create an empty one."""
    store = Store(store_url(args))
    if store.missing():
        raise UsageError(missing_store_message(args, store))
    return store


def missing_store_message(args: argparse.Namespace, store: Store) -> str:
    path = config_path(args)
    if not path.exists():
        return (f"no config file {path} (pass --config PATH or set CRONHOST_CONFIG), and no "
                f"store at {store.url_for_humans}")
    return (f"no store at {store.url_for_humans}: the daemon has not run with this config "
            "here yet; under systemd the store is in the state directory: run the `cronhost` "
            "wrapper from README (Install on a VM) or set STATE_DIRECTORY=/var/lib/cronhost")


def try_config(args: argparse.Namespace) -> Config | None:
    try:
        return load_config(config_path(args), resolve_secrets=False)
    except CronhostError:
        return None


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def parse_time(text: str, option: str = "--after") -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 time such as 2026-01-31T09:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def known_job(store: Store, args: argparse.Namespace, job_id: str) -> None:
    config = try_config(args)
    ids = {job.id for job in config.jobs} if config else set()
    if store.check_readable():
        ids |= {job.job_id for job in store.jobs(include_removed=True)}
    if job_id not in ids:
        hint = ", ".join(sorted(ids)) or "none"
        raise UsageError(f"no job {job_id!r} in {config_path(args)} or the store (jobs: {hint})")


def daemon_up(store: Store) -> DaemonInfo | None:
    info = store.latest_daemon() if store.check_readable() else None
    return info if info is not None and info.is_up() else None


# -- commands ---------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from scheduler.daemon import Daemon
    from scheduler.logs import configure_logging

    config = load_config(config_path(args))
    fmt = args.log_format or ("text" if sys.stdout.isatty() else "json")
    configure_logging(fmt)
    return asyncio.run(Daemon(config, standby=args.standby).run())


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for job in config.jobs:
        upcoming = next_fire_times(job.trigger(), 1, now) if job.enabled else []
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
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    after = parse_time(args.after) if args.after else datetime.now(UTC)
    try:
        shown_in = zone(args.tz) if args.tz else None
    except ScheduleError as exc:
        raise UsageError(f"--tz: {exc}") from None
    config = try_config(args)
    job = config.job(args.target) if config else None
    if job is not None:
        trigger = job.trigger()  # --tz, if given, only changes how the times are shown
    else:
        try:
            expression = validate_expression(args.target)
        except ScheduleError as exc:
            raise UsageError(
                f"{args.target!r} is neither a job id in {config_path(args)} nor a valid "
                f"schedule: {exc}"
            ) from None
        trigger = CrontabTrigger(expression, args.tz or "UTC")
    tz = shown_in or zone(getattr(trigger, "timezone", None) or "UTC")
    times = [t.astimezone(tz).isoformat() for t in next_fire_times(trigger, args.n, after)]
    if args.json:
        emit_json(times)
    else:
        print("\n".join(times))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    store = Store(store_url(args))
    config = try_config(args)
    if store.missing() and config is None:
        raise UsageError(missing_store_message(args, store))
    # Before the daemon's first run the jobs come from the config, with a note saying so.
    statuses = job_statuses(store, config)
    info = store.latest_daemon() if not store.missing() and store.check_readable() else None
    if args.json:
        emit_json({
            "daemon": _daemon_json(info),
            "jobs": [status.to_json() for status in statuses],
        })
        return EXIT_OK
    if store.missing():
        print(f"daemon: never started with this config (no store at {store.url_for_humans})")
    else:
        print(_daemon_line(info))
    if info is not None and info.config_error:
        print(f"config reload failed at {when(info.config_error_at)}: {info.config_error}")
    now = datetime.now(UTC)
    print(table(
        ("job", "schedule", "next run", "last", "when", "took", "state"),
        [(s.job_id, s.schedule, relative(s.next_run_at, now), s.last_status,
          relative(s.last_run_at, now), duration_ms(s.last_duration_ms),
          "disabled" if not s.enabled else "paused" if s.paused else "active")
         for s in statuses],
    ))
    return EXIT_OK


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
    if args.n < 1:
        raise UsageError("-n must be at least 1")
    store = open_store(args)
    if args.job:
        known_job(store, args, args.job)
    rows = store.history(args.job, limit=args.n) if store.check_readable() else []
    if args.json:
        emit_json([row.to_json() for row in rows])
        return EXIT_OK
    if not rows:
        print("no runs recorded yet")
        return EXIT_OK
    print(table(
        ("job", "slot", "status", "tries", "http", "took", "late", "message / error"),
        [(r.job_id + _trigger_label(r), when(r.scheduled_at),
          r.status + (f" x{r.slot_count}" if r.slot_count > 1 else ""), r.attempts, r.http_status,
          duration_ms(r.duration_ms), duration_ms(r.lateness_ms),
          ((r.error or r.message or "")[:80]))
         for r in rows],
    ))
    return EXIT_OK


def _trigger_label(run: RunRow) -> str:
    if run.trigger != "manual":
        return ""
    # A re-run of a recorded slot carries that slot's key: say which slot it repeated.
    replayed = run.idempotency_key.split("@", 1)[-1]
    return " (manual)" if replayed.startswith("manual:") else f" (re-run of {replayed})"


def cmd_trigger(args: argparse.Namespace) -> int:
    store = open_store(args)
    known_job(store, args, args.job)
    info = daemon_up(store)
    if info is None:
        raise NotRunningError(
            f"the daemon is not running on {store.url_for_humans}, so nothing would run "
            f"{args.job!r}; start it with `cronhost run` (or `systemctl start cronhost`)"
        )
    running = {job.job_id for job in store.jobs()}
    if args.job not in running:
        raise UsageError(
            f"the running daemon has no job {args.job!r} (it is in the file but not loaded: "
            "`cronhost reload` or `systemctl reload cronhost` first)"
        )
    slot = recorded_slot(store, args.job, args.slot) if args.slot else None
    command_id = store.add_command("trigger", args.job, slot=slot)
    if not args.wait:
        _say(args, {"command_id": command_id, "state": "pending"},
             f"trigger of {args.job} requested (command {command_id}); the daemon picks it up within a second")
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    run = None
    while time.monotonic() < deadline:
        command = store.command(command_id)
        if command is not None and command.state == "failed":
            raise UsageError(f"the daemon refused the trigger: {command.result}")
        if command is not None and command.run_id is not None:
            run = store.run(command.run_id)
            if run is not None and run.status != "running":
                break
        time.sleep(0.2)
    if run is None or run.status == "running":
        print(f"cronhost: no result within {args.timeout:g} s; see `cronhost history {args.job}`",
              file=sys.stderr)
        return EXIT_FAILED
    _say(args, run.to_json(),
         f"{run.job_id}: {run.status} in {duration_ms(run.duration_ms)}"
         f"{f' (HTTP {run.http_status})' if run.http_status else ''}"
         f"{f': {run.error}' if run.error else f': {run.message}' if run.message else ''}")
    return EXIT_OK if run.status == "ok" else EXIT_FAILED


def recorded_slot(store: Store, job_id: str, text: str) -> datetime:
    slot = parse_time(text, "--slot")
    if not store.runs_for_slots(job_id, slot, slot):
        raise UsageError(
            f"no recorded slot {slot.isoformat()} for job {job_id!r}; "
            f"`cronhost history {job_id}` lists its slots"
        )
    return slot


def cmd_pause_resume(args: argparse.Namespace) -> int:
    store = open_store(args)
    known_job(store, args, args.job)
    paused = args.verb == "pause"
    if not store.set_paused(args.job, paused):
        raise UsageError(f"job {args.job!r} is not in the store yet; start the daemon once first")
    store.add_command(args.verb, args.job)
    live = daemon_up(store) is not None
    note = "" if live else " (the daemon is not running; it applies this when it starts)"
    _say(args, {"job_id": args.job, "paused": paused, "daemon_up": live},
         f"{args.job} {args.verb}d{note}")
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    store = open_store(args)
    if daemon_up(store) is None:
        raise NotRunningError("the daemon is not running; nothing to reload")
    command_id = store.add_command("reload", None)
    command = wait_for_command(store, command_id, timeout=15.0)
    if command is None:
        print(f"cronhost: the daemon has not taken the reload yet (command {command_id}); "
              "see `cronhost status`", file=sys.stderr)
        return EXIT_FAILED
    if command.state == "failed":
        info = store.latest_daemon()
        error = info.config_error if info is not None and info.config_error else command.result
        raise ConfigError(f"reload failed, the daemon keeps its previous config: {error}")
    print(f"reloaded: {command.result}")
    return EXIT_OK


def wait_for_command(store: Store, command_id: int, timeout: float) -> Command | None:
    """The command once the daemon has finished it, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command = store.command(command_id)
        if command is not None and command.state in ("done", "failed"):
            return command
        time.sleep(0.1)
    return None


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.app import run_dashboard

    return run_dashboard(open_store(args), config_path(args))


def _say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        emit_json(data)
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
