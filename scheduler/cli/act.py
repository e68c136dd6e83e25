"""The commands that act: run the daemon, trigger, pause, resume, reload."""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from datetime import datetime

from jobs.outcome import RunStatus
from scheduler.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    config_path,
    daemon_up,
    known_job,
    open_store,
    parse_time,
    say,
    wait_for_command,
)
from scheduler.config import load_config
from scheduler.config.diff import ConfigDiff
from scheduler.errors import ConfigError, NotRunningError, UsageError
from scheduler.store import RunRow, Store
from scheduler.store.rows import iso, trigger_waited_for
from scheduler.views.text import duration_ms, when


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the reading commands need neither APScheduler nor httpx.
    from scheduler.daemon import build_daemon
    from scheduler.logs import configure_logging

    config = load_config(config_path(args))
    fmt = args.log_format or ("text" if sys.stdout.isatty() else "json")
    configure_logging(fmt)
    return asyncio.run(build_daemon(config, standby=args.standby).run())


def cmd_trigger(args: argparse.Namespace) -> int:
    # Before anything is asked of the daemon: an option that does not mean what was typed
    # must not end in a run the operator did not want (`--slot ''` was a new run).
    if args.slot is not None and not args.slot.strip():
        raise UsageError("--slot needs a time, e.g. --slot 2026-12-04T02:35:00Z "
                         "(`cronhost history JOB` lists the slots)")
    if args.force and args.slot is None:
        raise UsageError("--force goes with --slot: it re-runs a slot that already ran ok")
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError(f"--timeout must be a number of seconds above 0 (got {args.timeout})")
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
    slot = (recorded_slot(store, args.job, args.slot, force=args.force)
            if args.slot is not None else None)
    command_id = store.add_command("trigger", args.job, slot=slot)
    if not args.wait:
        say(args, {"command_id": command_id, "state": "pending"},
             f"trigger of {args.job} requested (command {command_id}); the daemon picks it up within a second")
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    command, run = None, None
    try:
        while time.monotonic() < deadline:
            command = store.command(command_id)
            if command is not None and command.state == "failed":
                raise UsageError(f"the daemon refused the trigger: {command.result}")
            if command is not None and command.run_id is not None:
                run = store.run(command.run_id)
                # `queued` is claimed but not yet sent (waiting for a free place, or for
                # the job's run in flight to finish): not an end.
                if run is not None and RunStatus(run.status).finished:
                    break
            time.sleep(0.2)
    except KeyboardInterrupt:
        # Only the waiting stops: the daemon has the command and carries it out.
        print(f"cronhost: stopped waiting; the trigger (command {command_id}) goes on in the "
              f"daemon: `cronhost history {args.job}` shows how it ends", file=sys.stderr)
        return 130
    if run is None or not RunStatus(run.status).finished:
        print(f"cronhost: no result within {args.timeout:g} s; see `cronhost history {args.job}`",
              file=sys.stderr)
        return EXIT_FAILED
    say_run(args, run, trigger_waited_for(command.result if command is not None else None))
    return EXIT_OK if run.status == "ok" else EXIT_FAILED


def say_run(args: argparse.Namespace, run: RunRow, waited_for: datetime | None) -> None:
    """A trigger's finished run; ``waited_for``: the slot of the run it waited for."""
    # The run waited from its claim to its first send (or to giving up).
    end = run.started_at or run.finished_at
    waited_ms = (int((end - run.claimed_at).total_seconds() * 1000)
                 if waited_for is not None and end and run.claimed_at else None)
    took = f" in {duration_ms(run.duration_ms)}" if run.duration_ms is not None else ""
    # A skipped run's error starts with "skipped: " already; say it once.
    error = (run.error or "").removeprefix(f"{run.status}: ")
    result = (f"{run.status}{took}"
              f"{f' (HTTP {run.http_status})' if run.http_status else ''}"
              f"{f': {error}' if error else f': {run.message}' if run.message else ''}")
    if waited_for is not None:
        seconds = f"{(waited_ms or 0) / 1000:.1f}"
        ran = "then ran" if run.started_at else "then gave up"
        result = (f"waited {seconds} s for the run of {when(waited_for)} to finish, "
                  f"{ran}: {result}")
    say(args, {**run.to_json(), "waited_for": iso(waited_for), "waited_ms": waited_ms},
        f"{run.job_id}: {result}")


def recorded_slot(store: Store, job_id: str, text: str, *, force: bool = False) -> datetime:
    slot = parse_time(text, "--slot")
    rows = store.runs_for_slots(job_id, slot, slot)
    if not rows:
        raise UsageError(
            f"no recorded slot {slot.isoformat()} for job {job_id!r}; "
            f"`cronhost history {job_id}` lists its slots"
        )
    if not force and store.ran_ok_under_key(job_id, rows[0].idempotency_key, slot):
        raise UsageError(
            f"slot {slot.isoformat()} of job {job_id!r} already ran ok; running it again "
            "repeats its work under the same Idempotency-Key: add --force if that is what "
            "you want"
        )
    return slot


def cmd_pause_resume(args: argparse.Namespace) -> int:
    store = open_store(args)
    known_job(store, args, args.job)
    paused = args.verb == "pause"
    row = next((job for job in store.jobs() if job.job_id == args.job), None)
    if row is not None and row.paused == paused:
        # Nothing to do, and worth saying: silence reads as "done".
        why = f" ({row.paused_reason})" if paused and row.paused_reason else ""
        say(args, {"job_id": args.job, "paused": paused, "changed": False,
                   "daemon_up": daemon_up(store) is not None},
            f"{args.job} is already paused{why}" if paused
            else f"{args.job} is not paused; nothing to resume")
        return EXIT_OK
    if not store.set_paused(args.job, paused):
        raise UsageError(f"job {args.job!r} is not in the store yet; start the daemon once first")
    store.add_command(args.verb, args.job)
    live = daemon_up(store) is not None
    note = "" if live else " (the daemon is not running; it applies this when it starts)"
    say(args, {"job_id": args.job, "paused": paused, "changed": True, "daemon_up": live},
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
    # What the daemon recorded for this very reload: a SIGHUP meanwhile is not mixed in.
    event = store.reload_event(command_id)
    if event is not None and event.detail is not None:
        for line in ConfigDiff.from_json(event.detail).lines():
            print(f"  {line}")
    return EXIT_OK
