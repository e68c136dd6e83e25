"""``${SECRET_NAME}`` in a job's body: a secret named in config.toml, sent by value.

A body that must carry a credential (an API that wants ``{"token": ...}`` rather
than ``Authorization: Bearer``) names it instead of holding it:

    body = { token = "${LEADMAP_API_TOKEN}", dry_run = false }

The config checks each name as it checks ``secret`` (a valid name, found at start
and on reload); the executor substitutes the values at send time, so the secret
is never in config.toml, the store or the job spec. ``$${`` stands for a literal
``${``. In a table body the value replaces the JSON string it sits in, escaped as
JSON; in a string body it is pasted as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from scheduler.config.secrets import SECRET_NAME

__all__ = ["PlaceholderError", "fill", "fill_json", "names_in", "without_placeholders"]

# "$${...}" is an escaped, literal "${...}"; "${NAME}" is a secret.
_PLACEHOLDER = re.compile(r"\$(\$?)\{([^{}]*)\}")


class PlaceholderError(ValueError):
    """A ``${...}`` whose inside is not a secret name."""


def names_in(text: str) -> list[str]:
    """The secret names ``text`` refers to, in order; PlaceholderError for a bad one."""
    names = []
    for match in _PLACEHOLDER.finditer(text):
        escaped, name = match.groups()
        if escaped:
            continue
        if not SECRET_NAME.match(name):
            raise PlaceholderError(
                f"${{{name[:40]}}} is not a secret name (letters, digits and _, e.g. "
                "${LEADMAP_API_TOKEN}); write $${ for a literal ${")
        names.append(name)
    return names


def without_placeholders(text: str) -> str:
    """``text`` with every ``${NAME}`` cut out: what is left must hold no credential."""
    return _PLACEHOLDER.sub(" ", text)


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each ``${NAME}`` replaced by the secret's value and ``$${`` by ``${``."""

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return "${" + name + "}"
        if name not in values:
            # The config refuses unknown names, so only a config loaded without its
            # secrets gets here; the name is not secret, the value never appears.
            raise KeyError(f"the secret {name!r} named in the body was not loaded")
        return values[name]

    return _PLACEHOLDER.sub(replace, text)


def fill_json(value: Any, values: Mapping[str, str]) -> Any:
    """A decoded JSON body with the placeholders in its strings filled in."""
    if isinstance(value, str):
        return fill(value, values)
    if isinstance(value, dict):
        return {key: fill_json(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_json(item, values) for item in value]
    return value
