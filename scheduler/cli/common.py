"""What every `cronhost` command shares: finding the config and the store, and printing."""

from __future__ import annotations

import argparse
import json
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.config import (
    Config,
    default_config_path,
    load_config,
    read_config_text,
    resolve_store_url,
)
from scheduler.errors import ConfigError, CronhostError, StoreError, UsageError
from scheduler.store import Command, DaemonInfo, Store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Bounds for -n: more rows than anyone reads, fewer than would take the store (or a
# cron expression's search for fire times) minutes.
MAX_ROWS = 100_000
MAX_FIRE_TIMES = 10_000


def config_path(args: argparse.Namespace) -> Path:
    return args.config if args.config is not None else default_config_path()


def store_url(args: argparse.Namespace) -> str:
    """The store the config names, read leniently: a broken job table must not stop an
    operator from looking at the history."""
    path = config_path(args)
    url = None
    try:
        raw = tomllib.loads(read_config_text(path))
        table = raw.get("store", {})
        url = table.get("url") if isinstance(table, dict) else None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, RecursionError):
        pass
    return resolve_store_url(url if isinstance(url, str) else None, path)


def connect_store(args: argparse.Namespace) -> Store:
    """The store the config names (without creating it)."""
    try:
        return Store(store_url(args))
    except StoreError as exc:  # the URL itself is wrong: that is the config's field
        raise ConfigError(str(exc), file=str(config_path(args)), field="store.url") from None


def open_store(args: argparse.Namespace) -> Store:
    """The store, for commands that need its history: refuse to create an empty one."""
    store = connect_store(args)
    if store.missing():
        raise UsageError(missing_store_message(args, store))
    return store


def missing_store_message(args: argparse.Namespace, store: Store) -> str:
    path = config_path(args)
    if not path.exists():
        return (f"no config file {path} (pass --config PATH or set CRONHOST_CONFIG), and no "
                f"store at {store.url_for_humans}")
    try:
        load_config(path, resolve_secrets=False)
    except ConfigError as exc:
        # The store is looked for where a config that cannot be read would put it.
        return f"{exc}; and no store at {store.url_for_humans}"
    return (f"no store at {store.url_for_humans}: the daemon has not run with this config "
            "here yet; under systemd the store is in the state directory: run the `cronhost` "
            "wrapper from README (Install on a VM) or set STATE_DIRECTORY=/var/lib/cronhost")


def count_option(value: int, maximum: int, option: str = "-n") -> None:
    """A count given on the command line, within what the store and the screen can take."""
    if not 1 <= value <= maximum:
        raise UsageError(f"{option} must be between 1 and {maximum:,} (got {value:,})"
                         if value > 0 else f"{option} must be at least 1")


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


def wait_for_command(store: Store, command_id: int, timeout: float) -> Command | None:
    """The command once the daemon has finished it, or None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command = store.command(command_id)
        if command is not None and command.state in ("done", "failed"):
            return command
        time.sleep(0.1)
    return None


def say(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        emit_json(data)
    else:
        print(text)
