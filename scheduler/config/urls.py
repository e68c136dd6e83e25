"""URLs in config: loopback hosts, where plain http:// cannot leak a secret, and URLs that hold one.

Job URLs, alert webhooks, the heartbeat ping and the metrics listener are all
checked here, so "is this a credential in a URL" has one answer.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import parse_qsl, urlsplit

from scheduler.config.credentials import url_credential
from scheduler.config.secrets import looks_like_a_token

__all__ = ["CREDENTIAL_QUERY_KEYS", "host_of", "is_loopback", "url_holds_token", "url_problem"]

# Query parameters whose value is a credential whatever it looks like.
CREDENTIAL_QUERY_KEYS = frozenset(
    {"token", "secret", "key", "api_key", "apikey", "access_token", "password"}
)


@functools.lru_cache(maxsize=1024)  # 10,000 jobs on one host ask 10,000 times
def is_loopback(host: str) -> bool:
    """``localhost``, ``*.localhost``, 127.0.0.0/8 or ::1 (RFC 6761 reserves .localhost)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problem(url: str) -> str | None:
    """Why an alert or heartbeat ``url`` cannot be used (a phrase after "the URL"), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return (f"uses http:// to {parts.hostname}, which is refused: alerts carry job errors "
                "and such URLs often carry a token; use https:// (only loopback may use http)")
    return None


def url_holds_token(url: str) -> bool:
    """True when a path segment or query value looks like a credential (a Slack hook's key).

    The job rule (:func:`~scheduler.config.credentials.url_credential`) and, for alert and
    ping URLs, which nearly always carry a key, a looser one: 16 characters, 4 digits.
    """
    if url_credential(url):
        return True
    parts = urlsplit(url)
    if parts.username or parts.password:
        return True
    query = parse_qsl(parts.query)
    if any(key.lower() in CREDENTIAL_QUERY_KEYS for key, _ in query):
        return True
    pieces = [piece for piece in parts.path.split("/") if piece] + [value for _, value in query]
    return any(_token_like(piece) for piece in pieces)


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "?"


def _token_like(piece: str) -> bool:
    # Random keys mix many letters and digits (Slack's 24-char key, a UUID); readable
    # paths such as /api/alerts/cronhost-failures do not.
    chars = piece.replace("-", "").replace("_", "")
    digits = sum(c.isdigit() for c in chars)
    letters = sum(c.isalpha() for c in chars)
    return looks_like_a_token(piece) and len(chars) >= 16 and digits >= 4 and letters >= 4
