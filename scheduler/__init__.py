"""cronhost's daemon side: config, cron semantics, the run store, the engine and the CLI."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cronhost")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
