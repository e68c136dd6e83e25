"""Redaction holds: a secret is cut in every form a response can carry it, ordinary text is not.

Each case is checked by :func:`leaks`, an oracle written independently of
``jobs.redact``: it decodes the output every way an onlooker could (HTML,
URL, JSON escapes, twice over; base64 at every shift; hex) and looks for the
secret, or any 12 characters of it, case-insensitively. Every form is first
shown to leak to the oracle before redaction, so a form the oracle cannot see
would fail the table rather than pass it silently.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import random
import re
import string
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest

from jobs.http import HttpJobRunner, HttpRequest
from jobs.http_reply import excerpt
from jobs.outcome import Outcome, RunStatus
from jobs.redact import REDACTED, redact, redact_bytes, redact_json
from tests.endpoint_server import EndpointServer, Fault

PLAIN = "Zq81vLxTt0pWmE3sKd9"
SPECIAL = 'a/b+c&d<e>f"g=h/Zq81vLxTt0pWm'
SECRETS = [PLAIN, SPECIAL]
RUN = 12

# -- the oracle ------------------------------------------------------------------


def _json_unescape(text: str) -> str:
    return re.sub(
        r"\\(?:u([0-9a-fA-F]{4})|(.))", lambda m: chr(int(m[1], 16)) if m[1] else m[2], text
    )


def _views(text: str) -> set[str]:
    views = {text, text.replace("\x00", "")}
    for _ in range(2):
        decoders: list[Callable[[str], str]] = [html.unescape, unquote, unquote_plus]
        views |= {decode(view) for view in views for decode in [*decoders, _json_unescape]}
    return views


def _runs(secret: Any, n: int) -> set[Any]:
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def leaks(text: str, secret: str) -> list[str]:
    """Every way ``text`` still gives away ``secret`` (or 12 characters of it)."""
    n = min(RUN, len(secret))
    text_runs, byte_runs = _runs(secret.lower(), n), _runs(secret.encode(), n)
    found = []
    for view in _views(text):
        low = view.lower()
        found += [f"text {run!r}" for run in text_runs if run in low]
        for blob in re.findall(r"[A-Za-z0-9+/_\-]{8,}", view):
            blob = blob.replace("-", "+").replace("_", "/")
            for shift in range(4):
                chunk = blob[shift:][: (len(blob) - shift) // 4 * 4]
                decoded = base64.b64decode(chunk)
                found += [f"base64 {blob!r}" for run in byte_runs if run in decoded]
        for digits in re.findall(r"[0-9a-fA-F]{16,}", view):
            for shift in range(2):
                chunk = digits[shift:][: (len(digits) - shift) // 2 * 2]
                decoded = bytes.fromhex(chunk)
                found += [f"hex {digits!r}" for run in byte_runs if run in decoded]
    return found


# -- the forms ---------------------------------------------------------------------


def b64(data: str | bytes, *, urlsafe: bool = False, pad: bool = True) -> str:
    raw = data.encode() if isinstance(data, str) else data
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return text if pad else text.rstrip("=")


def entities(secret: str, pattern: str, only: str | None = None) -> str:
    return "".join(pattern.format(ord(c)) if only is None or c in only else c for c in secret)


_SPECIALS = "&<>\"'/+="
# Go's encoding/json escapes these three so the JSON can sit inside HTML.
_GO_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "&<>"}
_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "/": "&sol;", "+": "&plus;"}

FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps(s)[1:-1],
    "json with \\/ (PHP)": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json with \\u0026 (Go)": lambda s: json.dumps(s)[1:-1].translate(_GO_ESCAPES),
    "json, every character \\u": lambda s: entities(s, "\\u{:04X}"),
    "json inside json, \\/": lambda s: json.dumps(json.dumps(s)).replace("/", "\\/"),
    "quote": lambda s: quote(s, safe=""),
    "quote keeping /": quote,
    "quote_plus": quote_plus,
    "quote, twice": lambda s: quote(quote(s, safe=""), safe=""),
    "quote, every character": lambda s: entities(s, "%{:02X}"),
    "html.escape": html.escape,
    "html.escape, quote=False": lambda s: html.escape(s, quote=False),
    "html named entities": lambda s: "".join(_NAMED.get(c, c) for c in s),
    "html decimal, specials": lambda s: entities(s, "&#{};", _SPECIALS),
    "html decimal, every character": lambda s: entities(s, "&#{};"),
    "html hex, specials": lambda s: entities(s, "&#x{:x};", _SPECIALS),
    "html hex, every character": lambda s: entities(s, "&#x{:x};"),
    "html HEX, every character": lambda s: entities(s, "&#X{:X};"),
    "html.escape, twice": lambda s: html.escape(html.escape(s)),
    "html.escape inside json": lambda s: json.dumps(html.escape(s))[1:-1],
    "base64": b64,
    "base64, unpadded": lambda s: b64(s, pad=False),
    "base64 url-safe": lambda s: b64(s, urlsafe=True),
    "base64 url-safe, unpadded": lambda s: b64(s, urlsafe=True, pad=False),
    'base64("Bearer " + s): offset 1': lambda s: b64("Bearer " + s),
    'base64("user:" + s): offset 2': lambda s: b64("user:" + s),
    'base64("abc" + s + "..."): offset 0 inside': lambda s: b64(f"abc{s}|trailing data"),
    "base64 url-safe offset 1, unpadded": lambda s: b64("x" + s, urlsafe=True, pad=False),
    "base64 of a JSON blob": lambda s: b64(json.dumps({"auth": f"Bearer {s}", "n": 1})),
    "base64, JSON-escaped \\/": lambda s: b64("user:" + s).replace("/", "\\/"),
    "base64, url-quoted": lambda s: quote(b64("Bearer " + s), safe=""),
    "lower-cased": str.lower,
    "upper-cased": str.upper,
    "case swapped": str.swapcase,
    "lower-cased, html.escape": lambda s: html.escape(s.lower()),
    "lower-cased, quote": lambda s: quote(s, safe="").lower(),
    "hex of the bytes": lambda s: s.encode().hex(),
    "truncated: first 12": lambda s: s[:12],
    "truncated: last 13": lambda s: s[-13:],
    "truncated: middle 14": lambda s: s[2:16],
    "truncated, html.escape": lambda s: html.escape(s[:14]),
    "truncated, lower-cased": lambda s: s[3:].lower(),
    "truncated base64": lambda s: b64(s)[:20],
}

CASES = [
    pytest.param(name, secret, id=f"{name} [{label}]")
    for name in FORMS
    for label, secret in (("plain", PLAIN), ("special", SPECIAL))
]


@pytest.mark.parametrize(("form", "secret"), CASES)
def test_every_form_of_a_secret_is_cut_and_the_text_around_it_kept(form: str, secret: str) -> None:
    encoded = FORMS[form](secret)
    text = f"before: {encoded} :after"
    assert leaks(text, secret), "the oracle must see the unredacted form"

    out = redact(text, SECRETS)

    assert leaks(out, secret) == []
    assert encoded not in out
    assert out.startswith("before: ") and out.endswith(" :after") and REDACTED in out


@pytest.mark.parametrize(("form", "secret"), CASES)
def test_every_form_is_cut_in_raw_bytes_too(form: str, secret: str) -> None:
    body = f"<p>{FORMS[form](secret)}</p>".encode()
    out = redact_bytes(body, SECRETS).decode()
    assert leaks(out, secret) == [] and out.startswith("<p>") and out.endswith("</p>")


# -- what must survive -------------------------------------------------------------

ORDINARY = (
    '{"success": false, "error": "upstream timed out after 30 s", "data": {"id": '
    '"9f1c2e4a-77b0-4c1e-9d8e-3a5b6c7d8e9f", "batch": 50}}\n'
    "<html><body><h1>502 Bad Gateway</h1><p>Tom &amp; Jerry &lt;3 caf&eacute; &#38; "
    "co. 100% done, a\\/b, 5 &gt; 3</p>"
    f'<img src="data:image/png;base64,{b64(bytes(range(256)) * 3)}"></body></html>\n'
    "Authorization failed for user zq81; retry in 10 minutes. "
    "sha256=" + "ab54f1c9" * 8
)


def test_ordinary_text_is_left_alone() -> None:
    assert redact(ORDINARY, SECRETS) == ORDINARY
    assert redact_bytes(ORDINARY.encode(), SECRETS) == ORDINARY.encode()


def test_a_run_of_eleven_characters_is_not_the_secret_but_twelve_are() -> None:
    assert redact(f"id {PLAIN[:11]} ok", [PLAIN]) == f"id {PLAIN[:11]} ok"
    assert redact(f"id {PLAIN[:12]} ok", [PLAIN]) == f"id {REDACTED} ok"


def test_a_passphrase_only_blanks_runs_of_itself() -> None:
    secret = "correct-horse-battery-staple"
    text = "the horse ate a battery; correct staple"
    assert redact(text, [secret]) == text
    assert redact("x horse-battery y", [secret]) == f"x {REDACTED} y"


def test_secrets_shorter_than_four_characters_are_ignored() -> None:
    assert redact("abc ABC YWJj 616263", ["abc", "", None]) == "abc ABC YWJj 616263"
    assert redact("key ab12 AB12", ["ab12"]) == f"key {REDACTED} {REDACTED}"


def test_two_secrets_next_to_each_other_leave_nothing_between() -> None:
    text = f"[{PLAIN}{html.escape(SPECIAL)}]"
    assert redact(text, SECRETS) == f"[{REDACTED}]"


def test_redact_json_cuts_keys_values_and_numbers_and_keeps_the_rest() -> None:
    value = {
        "ok": True,
        "n": 12345678901234,
        "rows": [1, 2.5, None, f"Bearer {SPECIAL.lower()}", {PLAIN: b64(PLAIN)}],
        "note": "kept",
    }
    out = redact_json(value, [*SECRETS, "12345678901234"])
    assert out == {
        "ok": True,
        "n": REDACTED,
        "rows": [1, 2.5, None, f"Bearer {REDACTED}", {REDACTED: REDACTED}],
        "note": "kept",
    }


def test_raw_bytes_find_a_secret_that_decoding_would_hide() -> None:
    for body in (
        f"error: {SPECIAL} !".encode("utf-16-le"),
        f"error: {SPECIAL} !".encode("utf-16-be"),
        b"\xff\xfe\xc3" + PLAIN.encode() + b"\xe2\x82",
    ):
        out = redact_bytes(body, SECRETS)
        assert leaks(out.decode("latin-1"), SPECIAL if b"\x00" in body else PLAIN) == []
    accented = "pässwörd-Zq81"
    for body in (accented.encode(), accented.encode("latin-1"), quote(accented).encode()):
        assert redact_bytes(b"[" + body + b"]", [accented]) == f"[{REDACTED}]".encode()


@pytest.mark.parametrize("form", ["raw", "html hex, every character", "base64", "quote"])
@pytest.mark.parametrize("before_cut", [1, 5, 13, 40, 120])
@pytest.mark.parametrize("secret", SECRETS)
def test_excerpt_cuts_a_form_that_straddles_its_limit(
    form: str, before_cut: int, secret: str
) -> None:
    limit = 500
    encoded = FORMS[form](secret).encode()
    body = b"x" * (limit - before_cut) + encoded + b" and more " * 20

    text = excerpt(body, limit, secret)

    assert text is not None and len(text.encode()) <= limit
    assert leaks(text, secret) == []
    assert text.startswith("x" * (limit - before_cut))


def test_excerpt_of_a_utf16_body_does_not_show_the_secret() -> None:
    body = f"<p>token {SPECIAL} rejected</p>".encode("utf-16-le")
    text = excerpt(body, 4096, SPECIAL)
    assert text is not None and leaks(text, SPECIAL) == []


# -- end to end, through the http job kind ---------------------------------------------

PATH = "/api/cron/echo"


def run_echo(endpoint: EndpointServer, secret: str) -> tuple[Outcome, list[str]]:
    request = HttpRequest(
        job_id="echo",
        url=endpoint.url + PATH,
        idempotency_key="echo@2024-03-01T02:00:00+00:00",
        secret=secret,
        timeout=2.0,
        deadline=10.0,
        retries=1,
        backoff_initial=0.01,
        backoff_max=0.05,
    )

    async def main() -> tuple[Outcome, list[str]]:
        errors: list[str] = []
        async with HttpJobRunner(user_agent="cronhost-test") as runner:
            outcome = await runner.run(request, lambda report: errors.append(report.error or ""))
        return outcome, errors

    return asyncio.run(main())


@pytest.mark.parametrize("code", [200, 500])
@pytest.mark.parametrize("how", ["json", "php", "lower", "base64", "html", "entities"])
@pytest.mark.parametrize("secret", SECRETS, ids=["plain", "special"])
def test_an_endpoint_echoing_the_secret_in_any_form_leaves_no_trace_in_the_outcome(
    endpoint: EndpointServer, how: str, code: int, secret: str
) -> None:
    endpoint.set_default(PATH, Fault.echo_secret(how, code))

    outcome, attempt_errors = run_echo(endpoint, secret)

    assert endpoint.requests(PATH)[0].headers["authorization"] == f"Bearer {secret}"
    assert outcome.status is (RunStatus.OK if code == 200 else RunStatus.FAILED)
    assert outcome.response_excerpt
    fields = {
        "error": outcome.error or "",
        "message": outcome.message or "",
        "data": json.dumps(outcome.data, ensure_ascii=False),
        "response_excerpt": outcome.response_excerpt,
        "attempt errors": "\n".join(attempt_errors),
        "repr": repr(outcome),
    }
    assert {name: leaks(text, secret) for name, text in fields.items()} == dict.fromkeys(fields, [])
    if how in ("html", "entities"):
        assert "Please try again later." in outcome.response_excerpt
    else:
        assert outcome.message and outcome.message.startswith("you sent ")
        assert outcome.data == {"authorization": outcome.message.removeprefix("you sent ")}
    if code == 500:
        assert outcome.error and outcome.error.startswith("HTTP 500 Internal Server Error")


def test_base64_inside_a_blob_takes_one_character_of_its_neighbours_at_most() -> None:
    # The character either side of the secret's own base64 mixes its bits with
    # the neighbours' and goes too; the rest of the blob stays. "ABCDEF" has no
    # + or / in base64, so its standard and URL-safe forms are the same string.
    secret = "ABCDEF"
    assert b64("x" + secret + "tail") == "eEFCQ0RFRnRhaWw="
    assert redact("<eEFCQ0RFRnRhaWw=>", [secret]) == f"<e{REDACTED}RhaWw=>"
    assert b64("xy" + secret + "tail") == "eHlBQkNERUZ0YWls"
    assert redact("<eHlBQkNERUZ0YWls>", [secret]) == f"<eH{REDACTED}0YWls>"
    assert b64(secret) == "QUJDREVG"
    assert redact("<QUJDREVG>", [secret]) == f"<{REDACTED}>"


def test_a_cut_off_echo_of_a_secret_holding_an_escape_is_still_a_run() -> None:
    # Decoded, "\r" is one character: the 12 below are only 11 in the canonical copy.
    secret = "_dZx\\r0ueg S&T0V6rWT3m7"
    assert redact(f"<{secret[:12]}>", [secret]) == f"<{REDACTED}>"


def test_random_secrets_in_random_forms_never_leak() -> None:
    # Seeded, so a failure names a case that can be replayed.
    rng = random.Random(20240301)
    alphabet = string.ascii_letters + string.digits + "&<>\"'/+=%\\-_.~ é"
    filler = string.ascii_letters + " <>&;:"
    for _ in range(300):
        secret = "".join(rng.choices(alphabet, k=rng.randint(6, 40))).strip()
        form = rng.choice(list(FORMS))
        before = "".join(rng.choices(filler, k=rng.randint(0, 30)))
        text = f"{before} {FORMS[form](secret)} " + "".join(rng.choices(filler, k=30))
        if len(secret) < 6 or not leaks(text, secret):
            continue  # too short to count, or a truncation that kept too little
        assert leaks(redact(text, [secret]), secret) == [], (secret, form, text)
        cut = excerpt(text.encode(), len(before.encode()) + 5, secret) or ""
        assert leaks(cut, secret) == [], (secret, form, text)
