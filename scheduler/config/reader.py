"""One strict reader for every config table: each value checked, each error naming its field.

Every table of config.toml (``[store]``, ``[daemon]``, ``[defaults]``, each
``[[jobs]]``, ``[metrics]``, ``[heartbeat]``, ``[logging]``, each ``[[alerts]]``)
is read through a :class:`TableReader`, so a wrong type, an unknown key or an
out-of-range number reads the same everywhere: one ConfigError naming the file,
the job and the field (``alerts[2].url``, ``daemon.shutdown_timeout``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from scheduler.config.secrets import SECRET_NAME, looks_like_a_token
from scheduler.errors import ConfigError
from scheduler.schedule import ScheduleError, parse_duration

__all__ = ["MAX_DURATION", "REQUIRED", "TableReader"]

# Longer than any timeout, grace or retention an operator means; a bound keeps values
# such as 1e308 or "99999999999d" from overflowing timedelta and the event loop's timers.
MAX_DURATION = timedelta(days=3650)
DURATION_EXAMPLE = 'must be a duration such as "30s" or "5m"'


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class TableReader:
    """Reads one table. ``prefix`` is prepended to keys in field names (``"metrics."``)."""

    def __init__(
        self, raw: Mapping[str, Any], *, file: str, prefix: str = "", job: str | None = None
    ) -> None:
        self.raw, self.file, self.prefix, self.job = raw, file, prefix, job

    def error(self, message: str, key: str | None = None) -> ConfigError:
        field = self.prefix + key if key else self.prefix.rstrip(".") or None
        return ConfigError(message, file=self.file, job=self.job, field=field)

    def only(self, allowed: Collection[str], what: str = "") -> None:
        """Refuse keys outside ``allowed``, suggesting the closest one."""
        for key in self.raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                hint = (f"did you mean {close[0]!r}?" if close
                        else "expected one of: " + ", ".join(sorted(allowed)))
                raise self.error(f"unknown key{what}; {hint}", str(key))

    def has(self, key: str) -> bool:
        return key in self.raw

    def value(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def _get(self, key: str, default: Any) -> Any:
        if key in self.raw:
            return self.raw[key]
        if default is REQUIRED:
            raise self.error(f"`{key}` is required", key)
        return default

    # -- scalars ------------------------------------------------------------------------

    def string(self, key: str, default: Any = REQUIRED, *, non_empty: bool = False) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or (non_empty and not value):
            raise self.error("must be a non-empty string" if non_empty else "must be a string",
                             key)
        return value

    def optional_string(self, key: str, *, non_empty: bool = False) -> str | None:
        return self.string(key, non_empty=non_empty) if key in self.raw else None

    def boolean(self, key: str, default: Any = REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error("must be true or false", key)
        return value

    def integer(self, key: str, default: Any = REQUIRED, low: int = 0, high: int = 10**6) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(f"must be a whole number from {low} to {high}", key)
        return value

    def duration(
        self, key: str, default: Any = REQUIRED, *, at_least: timedelta | None = None,
        at_least_text: str | None = None,
    ) -> timedelta:
        """A duration such as "30s" (or a number of seconds), positive and at most 10 years."""
        if key not in self.raw and isinstance(default, timedelta):
            return default
        value = self._get(key, default)
        duration = self._as_duration(value, key)
        if duration > MAX_DURATION:
            raise self.error("is too long: at most 3650d (ten years)", key)
        if at_least is not None and duration < at_least:
            raise self.error(f"must be at least {at_least_text or at_least}", key)
        return duration

    def _as_duration(self, value: Any, key: str) -> timedelta:
        if isinstance(value, bool):
            raise self.error(DURATION_EXAMPLE, key)
        if isinstance(value, int | float):
            if not math.isfinite(value) or value <= 0:
                raise self.error("must be a positive, finite number of seconds", key)
            if value > MAX_DURATION.total_seconds():
                raise self.error("is too long: at most 3650d (ten years)", key)
            return timedelta(seconds=value)
        if not isinstance(value, str):
            raise self.error(DURATION_EXAMPLE, key)
        try:
            return parse_duration(value)
        except ScheduleError as exc:
            raise self.error(str(exc), key) from None

    def secret_name(self, key: str, what: str = "") -> str | None:
        """The NAME of a secret (never its value), or None when the key is absent."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or looks_like_a_token(value) or not SECRET_NAME.match(value):
            raise self.error(
                what or "must be the NAME of a secret (an environment variable or systemd "
                "credential such as \"SMTP_PASSWORD\"), never the value itself", key)
        return value

    # -- structure ----------------------------------------------------------------------

    def table(self, key: str) -> TableReader:
        """A sub-table (absent: empty), read with ``key.`` prepended to its fields."""
        value = self.raw.get(key, {})
        if not isinstance(value, dict):
            raise self.error(f"`{key}` must be a table ([{key}])", key)
        return TableReader(value, file=self.file, prefix=f"{self.prefix}{key}.", job=self.job)

    def optional_table(self, key: str) -> TableReader | None:
        """A sub-table, or None when config.toml has no such table at all."""
        return self.table(key) if key in self.raw else None

    def tables(self, key: str, what: str) -> list[dict[str, Any]]:
        """A list of tables (``[[key]]``); absent: empty."""
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(f"`{key}` must be a list of [[{key}]] tables ({what})", key)
        return value
