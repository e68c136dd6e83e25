"""Secrets by name: config names a secret, this module finds its value.

Lookup order for a name such as ``CRON_SECRET``:

1. ``$CREDENTIALS_DIRECTORY/CRON_SECRET`` (systemd ``LoadCredential=``),
2. the environment variable ``CRON_SECRET``,
3. the file named by the environment variable ``CRON_SECRET_FILE``.

Values are kept in a :class:`SecretValues` whose ``repr`` never shows them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from scheduler.errors import SecretError

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def looks_like_a_token(value: str) -> bool:
    """True for strings that look like a credential rather than a name.

    A name is short and made of words (``CRON_SECRET``); a token is long and mixes
    lower case, upper case and digits, or carries a known token prefix.
    """
    if value.lower().startswith(("bearer ", "basic ", "sk_", "sk-", "ghp_", "xox")):
        return True
    if not SECRET_NAME.match(value):
        return len(value) >= 16
    mixed = (
        any(c.islower() for c in value)
        and any(c.isupper() for c in value)
        and any(c.isdigit() for c in value)
    )
    return mixed and len(value) >= 20


def find_secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the secret called ``name``, or None when it is nowhere."""
    env = os.environ if environ is None else environ
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / name
        if path.is_file():
            return _read_secret_file(path)
    if env.get(name):
        return env[name]
    file_name = env.get(f"{name}_FILE")
    if file_name and Path(file_name).is_file():
        return _read_secret_file(Path(file_name))
    return None


def require_secret(name: str, *, file: str, field: str, job: str | None = None) -> str:
    """The secret's value, or a SecretError naming the file, job and field that need it."""
    try:
        value = find_secret(name)
    except UnreadableSecret as exc:
        raise SecretError(str(exc), file=file, job=job, field=field) from None
    if value is None:
        raise SecretError(
            f"the secret {name!r} is not set; {where_to_put(name)}", file=file, job=job, field=field
        )
    return value


def where_to_put(name: str) -> str:
    return (
        f"set the environment variable {name}, or {name}_FILE to a file holding it, "
        f"or install it as a systemd credential (LoadCredential={name}:/path)"
    )


def _read_secret_file(path: Path) -> str:
    # Files written by `echo` end in a newline that is not part of the token.
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableSecret(f"cannot read the secret file {path}: {exc}") from None


class UnreadableSecret(Exception):
    """A secret file exists but cannot be read (permissions, not UTF-8)."""


class SecretValues(Mapping[str, str]):
    """Resolved secret values by name; printing it never shows a value."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretValues({sorted(self._values)} hidden)"

    def values_for_redaction(self) -> list[str]:
        return list(self._values.values())
