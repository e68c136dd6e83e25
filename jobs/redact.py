"""Keep secrets out of anything cronhost records or shows.

Response excerpts, endpoint messages and error texts all end up in the run
history, the logs and the dashboard; each passes through :func:`redact` first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[REDACTED]"

# Shorter "secrets" would blank out ordinary words and numbers all over an
# excerpt while protecting nothing: no real token is that short.
MIN_SECRET_LENGTH = 4

# RFC 6750's b64token, so an echoed header is caught even when the secret is
# not one we were told about (another job's, or a rotated one).
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*")


def _forms(secret: str) -> set[str]:
    # An endpoint that echoes the token back usually does so inside JSON or a
    # URL, where characters like / and " come back escaped.
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret)}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every secret and every ``Bearer <token>`` replaced by ``[REDACTED]``."""
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            forms |= _forms(secret)
    # Longest first: a secret that contains another must go as a whole, not
    # leave its tail behind around the shorter one's marker.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return _BEARER.sub(rf"\1\2{REDACTED}", text)


def redact_json(value: Any, secrets: Iterable[str | None]) -> Any:
    """Redact every string (keys included) inside a decoded JSON value."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {
            redact(str(key), secrets): redact_json(item, secrets) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(item, secrets) for item in value]
    return value
