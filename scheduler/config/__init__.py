"""config.toml → frozen, typed settings; nothing invalid gets past here.

    load.py       read the file, assemble one Config (entry point: load_config)
    reader.py     TableReader: the one strict reader every table goes through
    jobs.py       [[jobs]] over [defaults] → JobSpec
    alerts.py     [[alerts]] channels and their rules
    observers.py  [metrics], [heartbeat], [logging]
    builtin.py    jobs cronhost declares itself (history pruning)
    secrets.py    secrets by name: credentials directory, environment, _FILE
    urls.py       loopback hosts and credentials hidden in URLs
    model.py      the frozen dataclasses: Config, JobSpec, StoreSettings, DaemonSettings
"""

from __future__ import annotations

from scheduler.config.builtin import PRUNE_CALL, PRUNE_JOB_ID
from scheduler.config.load import (
    default_config_path,
    default_store_url,
    load_config,
    parse_config,
    read_config_text,
    resolve_store_url,
)
from scheduler.config.model import Config, DaemonSettings, JobSpec, LiveConfig, StoreSettings
from scheduler.schedule import format_duration

__all__ = [
    "PRUNE_CALL",
    "PRUNE_JOB_ID",
    "Config",
    "DaemonSettings",
    "JobSpec",
    "LiveConfig",
    "StoreSettings",
    "default_config_path",
    "default_store_url",
    "format_duration",
    "load_config",
    "read_config_text",
    "parse_config",
    "resolve_store_url",
]
