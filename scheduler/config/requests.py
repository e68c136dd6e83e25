"""The HTTP request an http job sends: its URL, headers and body, each read strictly.

What is refused here would otherwise fail every run, or put a credential in
config.toml (and so in the store, the dashboard and every backup of the file):

- a URL that httpx would not send (spaces, control characters, a bad port), or
  that carries a credential (user:password@, a token in the path or query, any
  value of a query parameter named like a credential);
- a header whose name is not an HTTP token (``X Bad``), whose value holds a
  control character (CR/LF would split the request), that cronhost or httpx sets
  itself, or that holds a literal credential;
- a body that holds one: the body names it as ``${SECRET_NAME}`` instead (see
  :mod:`scheduler.config.placeholders`).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import httpx

from scheduler.config.credentials import credential_in, names_a_credential, url_credential
from scheduler.config.placeholders import PlaceholderError, names_in, without_placeholders
from scheduler.config.reader import TableReader
from scheduler.config.urls import is_loopback

__all__ = ["parse_body", "parse_headers", "parse_url"]

# RFC 9110 5.1: a field name is a token of these characters.
HEADER_NAME = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}\Z")
# Set by cronhost or httpx for every request; another value would break the request or
# the idempotency contract. Authorization comes from `secret`.
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "idempotency-key",
    "x-request-id",
})
NAME_ADVICE = ("config names secrets and never holds them: put the token in the environment "
               "and set `secret = \"CRON_SECRET\"` (sent as Authorization: Bearer)")
BODY_ADVICE = ("config names secrets and never holds them: put the value in the environment "
               "and write \"${NAME}\" in the body (filled in when the request is sent)")
MAX_BODY_DEPTH = 32
_SPACE_OR_BACKSLASH = re.compile(r"[\s\\]")
# http(s)://host[:port]/path?query#fragment in RFC 3986's unreserved, sub-delims and
# pct-encoded characters: such a URL httpx parses as urlsplit does, so its (slower)
# parse is only asked for the others. 10,000 jobs load in half the time.
_PLAIN_URL = re.compile(
    r"\Ahttps?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*)?"
    r"(\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?(#[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?\Z")


def parse_url(job: TableReader, defaults: dict[str, Any], allow_http: bool) -> str:
    if job.has("url") == job.has("path"):
        raise job.error(
            "an HTTP job needs exactly one of `url` or `path` (joined to defaults.base_url); "
            "an in-process job has `call` instead", "url")
    if job.has("url"):
        field_name, url = "url", job.string("url", non_empty=True)
    else:
        field_name, path = "path", job.string("path", non_empty=True)
        base = defaults.get("base_url")
        if not isinstance(base, str) or not base:
            raise job.error("`path` needs defaults.base_url to be set", "path")
        try:
            names_a_host = bool(urlsplit(path).scheme) or path.startswith("//")
            url = urljoin(base.rstrip("/") + "/", path.lstrip("/"))
        except ValueError:  # urlsplit's "Invalid IPv6 URL", for "http://[::1" or a base "https://]"
            raise job.error(f"{base[:60]!r} joined with {path[:60]!r} is not a valid URL",
                            "path") from None
        if names_a_host:
            # urljoin would let the path replace base_url's host altogether.
            raise job.error("is joined to defaults.base_url, so it cannot name a host; "
                            "write the whole URL as `url` instead", "path")
    if not url.isprintable() or _SPACE_OR_BACKSLASH.search(url):
        # urlsplit silently drops tabs and newlines, and httpx refuses the rest at send
        # time, so every run would fail: refuse it here, where it can be fixed.
        raise job.error("the URL may not hold spaces, backslashes or control characters "
                        "(percent-encode them: %20)", field_name)
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port  # .port raises for "x:notaport", "x:99999"
        if not _PLAIN_URL.match(url):  # a plain URL parses in httpx too; a strange one, see
            httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise job.error(f"{url[:80]!r} is not a valid URL", field_name) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise job.error(f"{url[:80]!r} is not an http(s) URL", field_name)
    found = url_credential(url)
    if found:
        raise job.error(f"the URL carries a credential ({found}); send it as the Bearer "
                        "secret (`secret = \"NAME\"`) instead: " + NAME_ADVICE, field_name)
    if parts.scheme == "http" and not is_loopback(hostname) and not allow_http:
        raise job.error(
            f"http:// to {hostname} would send the Bearer secret in clear text; "
            "use https://, or set allow_http = true if you really mean it", field_name)
    return url


def parse_headers(job: TableReader, own: TableReader) -> tuple[tuple[str, str], ...]:
    value = job.value("headers")
    if not isinstance(value, dict):
        raise job.error("must be a table of header names to strings", "headers")
    own_headers = own.value("headers")
    headers: dict[str, tuple[str, str]] = {}
    for name, header_value in value.items():
        field_name = ("headers" if isinstance(own_headers, dict) and name in own_headers
                      else "defaults.headers")
        problem = _header_problem(name, header_value)
        if problem:
            raise job.error(problem, field_name)
        if name.lower() in headers:
            raise job.error(f"header {name!r} is given twice (header names ignore case)",
                            field_name)
        headers[name.lower()] = (name, header_value)
    return tuple(sorted(headers.values()))


def _header_problem(name: str, value: Any) -> str | None:
    if not HEADER_NAME.match(name):
        return (f"header name {name[:40]!r} is not a valid HTTP header name (letters, digits "
                "and !#$%&'*+-.^_`|~, no spaces or colons)")
    if not isinstance(value, str):
        return f"header {name!r} must be a string"
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        return (f"header {name!r} holds a control character (CR, LF, NUL...), which would "
                "end or split the request's headers")
    if not value.isascii():
        return f"header {name!r} must be ASCII (httpx sends header values as ASCII)"
    if name.lower() in RESERVED_HEADERS:
        return f"header {name!r} is set by cronhost for every request; remove it"
    if name.lower() in ("authorization", "proxy-authorization") or (
            names_a_credential(name) and value.strip()):
        return f"header {name!r} is a credential by its name; " + NAME_ADVICE
    found = credential_in(value)
    if found:
        return f"header {name!r} holds a literal credential ({found}); " + NAME_ADVICE
    return None


def parse_body(job: TableReader) -> tuple[str | None, str | None, tuple[str, ...]]:
    """The body as text or as canonical JSON text, and the secret names it refers to."""
    value = job.value("body")
    if value is None:
        return None, None, ()
    if isinstance(value, str):
        text, json_text = value, None
        try:
            decoded: Any = json.loads(value)
        except (ValueError, RecursionError):
            decoded = dict(parse_qsl(value)) if "=" in value and " " not in value else None
        if isinstance(decoded, dict | list):
            _check_body_value(job, decoded, 0)
    elif isinstance(value, dict | list):
        _check_body_value(job, value, 0)
        text, json_text = None, json.dumps(value, sort_keys=True, default=str)
    else:
        raise job.error("must be a string or a table (sent as JSON)", "body")
    source = text if text is not None else json_text or ""
    try:
        names = tuple(dict.fromkeys(names_in(source)))
    except PlaceholderError as exc:
        raise job.error(str(exc), "body") from None
    found = credential_in(without_placeholders(source))
    if found:
        raise job.error(f"the body holds a literal credential ({found}); " + BODY_ADVICE, "body")
    return text, json_text, names


def _check_body_value(job: TableReader, value: Any, depth: int) -> None:
    """Refuse credential-named keys with a literal value, and nesting past any real body."""
    if depth > MAX_BODY_DEPTH:
        raise job.error(f"is nested more than {MAX_BODY_DEPTH} levels deep", "body")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if (isinstance(key, str) and isinstance(item, str) and names_a_credential(key)
                and without_placeholders(item).strip()):
            raise job.error(f"the body's key {key[:40]!r} is a credential by its name and "
                            "holds a literal value; " + BODY_ADVICE, "body")
        if isinstance(item, dict | list):
            _check_body_value(job, item, depth + 1)
