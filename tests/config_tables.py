"""Parse one config table the way config.toml's loader does, for tests of that table alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scheduler.config import Config, parse_config


def config_with(key: str, table: Any, file: str = "config.toml") -> Config:
    """A Config from a file holding only ``[key]`` = ``table`` (None: no such table)."""
    raw = {} if table is None else {key: table}
    return parse_config(raw, Path(file), resolve_secrets=False)
