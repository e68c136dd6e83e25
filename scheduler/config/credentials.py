"""What a literal credential looks like, wherever it hides in a job: URL, header, body.

config.toml names secrets and never holds them, so a job that carries a token in
its URL path or query, a header or its body is refused. Two signs give a token
away, and only these two, so that ordinary values pass:

- it sits where a credential goes: the value of a header, query parameter or body
  key whose name ends in a credential word (``Authorization``, ``X-Api-Key``,
  ``?auth=``, ``?cron_secret=``, ``{"access_token": ...}``);
- it looks random: a long run of token characters with no words in it
  (``f3Kq9ZxR2mLw8PvT4nYb7HcJ``, 32 hex digits, base64), or a known token prefix
  (``sk_live_``, ``ghp_``, ``xoxb-``, ``eyJ`` for a JWT).

``application/json``, a User-Agent, a date, a media type, a canonical UUID and
``processEmailQueue2024`` are none of these. Messages never repeat the value.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["credential_in", "looks_random", "names_a_credential", "url_credential"]

# The last word of a name that makes its value a credential. "key" alone is too common
# (Idempotency-Key, sort_key): it counts after a qualifier, or as the whole name.
CREDENTIAL_WORDS = frozenset({
    "auth", "authorization", "token", "secret", "password", "passwd", "pwd", "apikey",
    "signature", "sig", "credential", "credentials", "cookie", "jwt", "bearer", "bypass",
})
KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "client", "app", "auth", "license", "signing",
    "master", "subscription", "x", "account", "service", "consumer", "encryption", "webhook",
})
# Prefixes that vendors give their tokens (Stripe, OpenAI, GitHub, GitLab, Slack, AWS,
# Google, SendGrid, Shopify, npm, PyPI, JWTs).
TOKEN_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "sk-", "ghp_", "gho_", "ghs_", "ghu_",
                  "github_pat_", "glpat-", "xoxb-", "xoxp-", "xoxa-", "xoxs-", "xapp-", "akia",
                  "asia", "aiza", "sg.", "shpat_", "npm_", "pypi-", "eyj")

_NAME_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# Runs of characters that tokens are made of (base64, base64url, hex, JWT dots).
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_\-~.]+")
_SEGMENT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z",
                   re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_HEX = re.compile(r"\A(?:[0-9a-f]+|[0-9A-F]+)\Z")
MIN_TOKEN_LENGTH = 20
# "Bearer <token>" or "Basic <base64>" pasted into a header or a body.
_AUTH_SCHEME = re.compile(r"\b(bearer|basic)\s+([A-Za-z0-9+/=_\-~.]{12,})", re.IGNORECASE)


def names_a_credential(name: str) -> bool:
    """True when a header, query or body key named ``name`` holds a credential."""
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    while words and words[-1].isdigit():  # X-Hub-Signature-256
        words.pop()
    if not words:
        return False
    last = words[-1]
    if last in CREDENTIAL_WORDS:
        return True
    return last == "key" and (len(words) == 1 or words[-2] in KEY_QUALIFIERS)


def looks_random(word: str) -> bool:
    """True for one run of token characters that reads as a random token, not as words."""
    if len(word) < 16:
        return False
    if word.lower().startswith(TOKEN_PREFIXES):
        return True
    if _UUID.match(word):
        return False  # request and object ids; a UUID that is a key sits under a key's name
    chars = _NOT_ALNUM.sub("", word)
    if len(chars) < MIN_TOKEN_LENGTH or len(set(chars)) < 8:
        return False
    letters = [c for c in chars if c.isalpha()]
    if _HEX.match(chars) and len(letters) >= len(chars) / 5 and len(letters) < len(chars):
        return True  # hex digests and keys: digits and a-f, well mixed
    segments = _SEGMENT.findall(chars)
    if len(segments) < 4:
        return False  # one or a few words and numbers: "calendarsync2026"
    # Words are long runs of one kind ("process", "Email", "2024"); a random token
    # changes between lower case, upper case and digits every one to three characters.
    mean = len(chars) / len(segments)
    vowels = sum(c in "aeiouAEIOU" for c in letters)
    return mean <= 3.0 or (mean <= 5.0 and len(letters) >= 8 and vowels < len(letters) / 5)


def _credential_shaped(word: str) -> bool:
    # After "Bearer " or "Basic ": not an English word ("Basic information"), so digits
    # and letters, base64 padding, or lower-to-upper humps inside it (dXNlcjpwYXNz).
    humps = sum(a.islower() and b.isupper() for a, b in zip(word, word[1:], strict=False))
    has_digit = any(c.isdigit() for c in word)
    return (looks_random(word) or word.endswith("=") or humps >= 2
            or (has_digit and any(c.isalpha() for c in word)))


def credential_in(text: str) -> str | None:
    """How a credential shows in ``text`` ("a 24-character random string"), or None.

    Never the credential itself: the answer goes into an error message.
    """
    for scheme, word in _AUTH_SCHEME.findall(text):
        if _credential_shaped(word):
            return f"an HTTP credential ({scheme} ...)"
    for run in _TOKEN_RUN.findall(text):
        # A token may follow a path or a key: /hooks/<token>, token=<token>.
        for word in (*re.split(r"[/=]", run), run):
            if looks_random(word):
                return f"a {len(word)}-character random-looking string"
    return None


def url_credential(url: str) -> str | None:
    """Where ``url`` carries a credential ("the query parameter 'auth'"), or None."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "user:password@ credentials"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and names_a_credential(key):
            return f"the query parameter {key[:40]!r}, a credential by its name"
        found = credential_in(key) or credential_in(value)
        if found:
            return f"{found} in the query parameter {key[:40]!r}"
    for segment in parts.path.split("/"):
        found = credential_in(unquote(segment))
        if found:
            return f"{found} in the path"
    found = credential_in(unquote(parts.fragment))
    return f"{found} in the fragment" if found else None
