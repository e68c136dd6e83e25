"""Read config.toml: strict TOML → one frozen :class:`~scheduler.config.model.Config`.

Parsing is strict: an unknown key, a wrong type or a bad value becomes one
:class:`~scheduler.errors.ConfigError` naming the file, the job and the field.
Nothing invalid ever reaches the engine. With ``resolve_secrets`` (the daemon,
its reloads, ``cronhost check``) the config must be one the daemon can run: every
secret it names is found, and at least one of the operator's jobs is enabled.
Without it (status, the dashboard, ``cronhost import`` checking one job at a time)
the file is only parsed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from scheduler.config.alerts import parse_alerts, resolve_secrets
from scheduler.config.builtin import builtin_jobs
from scheduler.config.jobs import BUILTIN_DEFAULTS, DEFAULT_KEYS, parse_job
from scheduler.config.model import Config, DaemonSettings, JobSpec, StoreSettings
from scheduler.config.observers import (
    HeartbeatSettings,
    parse_heartbeat,
    parse_log_level,
    parse_metrics,
)
from scheduler.config.reader import TableReader
from scheduler.config.secrets import (
    SECRET_NAME,
    SecretValues,
    UnreadableSecret,
    find_secret,
    require_secret,
)
from scheduler.errors import ConfigError, StoreError
from scheduler.store.database import BAD_URL, parse_store_url

__all__ = ["default_config_path", "load_config", "resolve_store_url"]

DEFAULT_CONFIG_NAME = "config.toml"
TOP_KEYS = {"defaults", "jobs", "store", "daemon", "metrics", "alerts", "heartbeat", "logging"}


def default_config_path() -> Path:
    return Path(os.environ.get("CRONHOST_CONFIG") or DEFAULT_CONFIG_NAME)


def default_store_url(config_path: Path) -> str:
    """SQLite in systemd's StateDirectory when there is one, else next to the config."""
    state_dir = os.environ.get("STATE_DIRECTORY")
    base = Path(state_dir.split(":")[0]) if state_dir else config_path.resolve().parent
    return f"sqlite:///{base / 'cronhost.db'}"


def resolve_store_url(url: str | None, config_path: Path) -> str:
    """The store URL a config means: the default, or a relative SQLite path made absolute.

    A relative SQLite path means "next to the config file", never the working directory
    of whoever runs the command (systemd, cron, an operator's shell).
    """
    if not url:
        return default_store_url(config_path)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            return f"sqlite:///{config_path.resolve().parent / relative}"
    return url


def read_config_text(path: Path) -> str:
    """The file's text; OSError for what is not a regular file (a FIFO would block the
    read for ever, a device would feed it without end)."""
    if path.exists() and not path.is_file():
        raise OSError("not a regular file")
    return path.read_text(encoding="utf-8")


def load_config(path: Path, *, resolve_secrets: bool = True) -> Config:
    """Read and validate ``path``. Raises ConfigError (never anything else)."""
    file = str(path)
    try:
        raw = tomllib.loads(read_config_text(path))
    except FileNotFoundError:
        raise ConfigError(
            "no such file; pass --config PATH or set CRONHOST_CONFIG", file=file
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    except ValueError as exc:
        # tomllib's own int() refuses integers of more than 4300 digits with a ValueError.
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays or inline tables.
        raise ConfigError("not valid TOML for cronhost: arrays or tables nested too deeply",
                          file=file) from None
    return parse_config(raw, path, resolve_secrets=resolve_secrets)


def parse_config(raw: dict[str, Any], path: Path, *, resolve_secrets: bool = True) -> Config:
    """A decoded config.toml → Config; ``path`` is where it came from (for messages)."""
    file = str(path)
    top = TableReader(raw, file=file)
    top.only(TOP_KEYS)
    given_defaults = top.table("defaults")
    given_defaults.only(DEFAULT_KEYS)
    defaults = {**BUILTIN_DEFAULTS, **given_defaults.raw}

    jobs_raw = top.tables("jobs", "one table per job")
    declared = len(jobs_raw)  # the operator's; the built-in job comes after them
    jobs_raw = [*jobs_raw, *builtin_jobs(jobs_raw)]  # history pruning: see config.builtin
    jobs: list[JobSpec] = []
    seen: dict[str, int] = {}  # id -> its [[jobs]] table, counted from 1 as people do
    for index, job_raw in enumerate(jobs_raw):
        job = parse_job(job_raw, defaults, index, file)
        if job.id in seen:  # (the built-in job is only added when no table has its id)
            raise ConfigError(
                f"duplicate job id: [[jobs]] tables {seen[job.id]} and {index + 1} (counted "
                "from the top of the file) both have it; every id must be unique",
                file=file, job=job.id, field="id")
        seen[job.id] = index + 1
        jobs.append(job)

    config = Config(
        path=path,
        jobs=tuple(jobs),
        store=_store(top.table("store"), path),
        daemon=_daemon(top.table("daemon")),
        metrics=parse_metrics(top.optional_table("metrics")),
        alerts=parse_alerts(raw.get("alerts"), seen, file),
        heartbeat=parse_heartbeat(top.optional_table("heartbeat")),
        log_level=parse_log_level(top.optional_table("logging")),
    )
    if not resolve_secrets:
        return config
    _require_an_enabled_job(config, config.jobs[:declared])
    own_secret = {job_raw.get("id") for job_raw in jobs_raw if "secret" in job_raw}
    return _with_secrets(config, own_secret, _names_to_redact(config, defaults))


def _require_an_enabled_job(config: Config, declared: tuple[JobSpec, ...]) -> None:
    """Refuse a config with nothing of the operator's to run.

    An emptied or truncated file (an editor crash, a bad deploy, ``> config.toml``) would
    otherwise remove every job on the next reload, quietly. The built-in history pruning
    that cronhost appends to every config does not count; a [[jobs]] table the operator
    wrote does, even one that reschedules the pruning.
    """
    if any(job.enabled for job in declared):
        return
    what = ("declares no [[jobs]]" if not declared
            else "has no enabled job (every [[jobs]] has enabled = false)")
    raise ConfigError(
        f"the config {what}; cronhost will not run (or reload into) a config with nothing "
        "to run, so that an emptied file cannot remove every job. Add a [[jobs]] table with "
        "an id, a schedule and a url, path or call (the built-in history pruning does not "
        "count)", file=str(config.path), field="jobs")


def _store(table: TableReader, path: Path) -> StoreSettings:
    table.only({"url", "keep"})
    url = table.value("url")
    if url is not None and not isinstance(url, str):
        raise table.error("must be a SQLAlchemy URL string", "url")
    url = resolve_store_url(url, path)
    try:
        # ValueError: SQLAlchemy's make_url reads the port with int() ("db:notaport"),
        # and takes any number, which only fails at the first connection.
        port = parse_store_url(url).port
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(port)
    except (StoreError, ValueError):
        raise table.error(BAD_URL, "url") from None
    return StoreSettings(url=url, keep=table.duration("keep", "90d"))


def _daemon(table: TableReader) -> DaemonSettings:
    table.only({"shutdown_timeout", "max_in_flight", "watch_config", "heartbeat_interval"})
    heartbeat = table.duration("heartbeat_interval", "15s").total_seconds()
    # Readers call a daemon down when its heartbeat is older than 30 s: beat at least twice
    # in that time. Each beat wakes an idle daemon, so the default is the longest allowed.
    if not 1 <= heartbeat <= 15:
        raise table.error("must be from 1s to 15s", "heartbeat_interval")
    return DaemonSettings(
        shutdown_timeout=table.duration("shutdown_timeout", "30s").total_seconds(),
        # 100: measured (benchmarks/scale.py) as the knee for a burst of 1,000 requests;
        # more places cost memory and sockets and, CPU-bound, no longer go faster.
        max_in_flight=table.integer("max_in_flight", 100, 1, 10_000),
        watch_config=table.boolean("watch_config", False),
        heartbeat_interval=heartbeat,
    )


def _names_to_redact(config: Config, defaults: dict[str, Any]) -> set[str]:
    """Secret names the config mentions without needing them now: a disabled job's, and
    ``[defaults] secret`` when no enabled HTTP job uses it (a config of Python jobs only).

    A Python job may still read CRON_SECRET from its environment and quote it in an
    exception; cronhost can only redact a value it knows, so it looks these up too.
    """
    names = {job.secret for job in config.jobs if job.secret}
    names.update(name for job in config.jobs for name in job.body_secrets)
    default = defaults.get("secret")
    if isinstance(default, str) and SECRET_NAME.match(default):
        names.add(default)
    return names


def _with_secrets(config: Config, own_secret: set[Any], to_redact: set[str]) -> Config:
    """``config`` with the value of every secret it names; SecretError for a missing one.

    The names in ``to_redact`` are looked up too where they are set, for redaction only:
    their absence is no error.
    """
    file = str(config.path)
    values: dict[str, str] = {}
    for job in config.jobs:
        # A disabled job needs no secret: it cannot run until a reload enables it.
        if job.secret is None or job.secret in values or not job.enabled:
            continue
        field = "secret" if job.id in own_secret else "defaults.secret"
        values[job.secret] = require_secret(job.secret, file=file, job=job.id, field=field)
    for job in config.jobs:
        for name in job.body_secrets:
            if job.enabled and name not in values:
                values[name] = require_secret(name, file=file, job=job.id, field="body")
    values.update(resolve_secrets(config.alerts, file))
    heartbeat: HeartbeatSettings | None = config.heartbeat
    if heartbeat is not None and heartbeat.url_secret is not None:
        values[heartbeat.url_secret] = heartbeat.resolve_url(file)
    for name in sorted(to_redact - values.keys()):
        try:
            value = find_secret(name)
        except UnreadableSecret:
            continue  # not needed now: the job that needs it says so when it is enabled
        if value:
            values[name] = value
    return Config(
        path=config.path, jobs=config.jobs, store=config.store, daemon=config.daemon,
        metrics=config.metrics, alerts=config.alerts, heartbeat=config.heartbeat,
        log_level=config.log_level, secrets=SecretValues(values),
    )
