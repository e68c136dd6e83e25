"""Shared fixtures: a clean environment, real stores (SQLite file, PostgreSQL), a loopback endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.endpoint_server import endpoint  # noqa: F401  (fixture re-export)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the operator's CRON_*/CRONHOST_* variables or systemd's."""
    for name in list(os.environ):
        if name.startswith(("CRON", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_", "STATE_DIRECTORY")):
            monkeypatch.delenv(name, raising=False)
