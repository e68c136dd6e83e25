"""Keep secrets out of anything cronhost records or shows.

Response excerpts, endpoint messages and error texts all end up in the run
history, the logs and the dashboard; each passes through :func:`redact` first.

An endpoint rarely echoes a token byte for byte: an HTML error page escapes
it, PHP's ``json_encode`` writes ``\\/``, a debug page base64-encodes the
``Authorization`` header, a framework lower-cases it, a log line truncates it.
So the search runs over a *canonical* copy of the text, in which HTML character
references (``&amp;``, ``&#38;``, ``&#x26;``), JSON / JavaScript escapes
(``\\/``, ``\\"``, ``\\u0026``, ``\\x26``) and URL escapes (``%26``, ``%C3%A9``)
are decoded, twice over, each decoded character remembering the span of the
original it came from. In that copy we look for each secret, and any run of
:data:`RUN` of its characters (a truncated echo): lower-cased (``+`` for spaces,
as ``quote_plus`` writes), in hex, and in base64 (standard or URL-safe, padded
or not, at all three alignments, so ``base64("Bearer " + secret)`` too).
Every span found is cut out of the *original* text. Forms that escape only
some characters are caught too: decoded, they all read the same.
"""

from __future__ import annotations

import base64
import codecs
import html.entities
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Shorter "secrets" would blank out ordinary words and numbers all over an
# excerpt while protecting nothing: no real token is that short.
MIN_SECRET_LENGTH = 4
# A run this long of a secret is the secret (cut short), not a coincidence:
# nothing in ordinary text shares 12 characters in a row with a random token.
RUN = 12
# 12 bytes of the secret anywhere in a blob give at least 15 characters made of
# their bits alone (16 when they start on a 3-byte boundary): the same run, encoded.
BASE64_RUN = 15
# Under 6 characters a base64 fragment turns up by chance inside any blob
# (inline images, other tokens); only secrets of 4 characters have none longer.
BASE64_MIN = 6
# The most bytes one character can take in a form we decode ("&#x0010FFFF;").
_MAX_BYTES_PER_CHAR = 12

# RFC 6750's b64token, so an echoed header is caught even when the secret is
# not one we were told about (another job's, or a rotated one).
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]+=*")

_TOKEN = re.compile(
    r"&(?:#[xX](?P<hex>[0-9a-fA-F]{1,8})|#(?P<dec>[0-9]{1,8})|(?P<name>[A-Za-z][A-Za-z0-9]{1,31}))"
    r"(?P<semi>;?)"
    r"|\\[uU](?P<u>[0-9a-fA-F]{4})"
    r"|\\[xX](?P<x>[0-9a-fA-F]{2})"
    r"|\\(?P<esc>[\\/\"'bfnrt])"
    # Every branch starts with a literal, which lets re skip to the next & \\ or %.
    r"|%(?P<pct>[0-9a-fA-F]{2}(?:%[0-9a-fA-F]{2})*)"
)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
# The escapes met most, by table: an HTML page can hold hundreds.
_COMMON = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'"}
_COMMON |= {"&#34;": '"', "&#38;": "&", "\\\\": "\\", "\\/": "/", '\\"': '"'}
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")


class _Canonical:
    """``text`` with escapes decoded, and where each of its characters came from.

    The mapping is kept per decoded escape, not per character: the text
    between two escapes maps one to one.
    """

    def __init__(self, original: str) -> None:
        self.text = original
        # Per escape: where its characters start in ``text``, and (its start and
        # end in the original, how many characters it decoded to).
        self._starts: list[int] = []
        self._escapes: list[tuple[int, int, int]] = []
        if _may_escape(original):
            self._decode_all(original)
        self.lower = _lower(self.text)

    @property
    def decoded(self) -> bool:
        return bool(self._starts)

    def _decode_all(self, original: str) -> None:
        parts: list[str] = []
        pos = length = 0
        for match in _TOKEN.finditer(original):
            begin, end = match.span()
            decoded = _COMMON.get(match.group())
            if decoded is not None:
                pieces: list[tuple[str, int, int]] = [(decoded, begin, end)]
            elif (groups := match.groups())[-1] is not None:
                pieces = _decode_percent(match.group(), begin)
            elif decoded := _decode(groups[:-1]):
                pieces = [(decoded, begin, end)]
            else:  # "&foo;" and the like: plain text after all
                continue
            parts.append(original[pos:begin])
            length += begin - pos
            for chars, first, last in pieces:
                parts.append(chars)
                self._starts.append(length)
                self._escapes.append((first, last, len(chars)))
                length += len(chars)
            pos = end
        parts.append(original[pos:])
        self.text = "".join(parts)

    def _origin(self, index: int) -> tuple[int, int]:
        escape = bisect_right(self._starts, index) - 1
        if escape < 0:
            return index, index + 1
        begin, end, size = self._escapes[escape]
        past = index - self._starts[escape] - size
        if past < 0:
            return begin, end
        return end + past, end + past + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The stretch of the original that canonical ``[start:end]`` came from."""
        return self._origin(start)[0], self._origin(end - 1)[1]


class _Unwrapped:
    """Decoded twice, since escapes of escapes are common: a JSON string inside a
    JSON body (``\\\\/``), an entity in an HTML-escaped page (``&amp;amp;``),
    a URL quoted twice (``%252F``)."""

    def __init__(self, original: str) -> None:
        self.layers = [_Canonical(original)]
        if self.layers[0].decoded and _may_escape(self.layers[0].text):
            self.layers.append(_Canonical(self.layers[0].text))
        self.text, self.lower = self.layers[-1].text, self.layers[-1].lower

    def span(self, start: int, end: int) -> tuple[int, int]:
        for layer in reversed(self.layers):
            start, end = layer.span(start, end)
        return start, end


def _may_escape(text: str) -> bool:
    return "&" in text or "\\" in text or "%" in text


def _lower(text: str) -> str:
    # Indexes must stay the same, and a few characters ("İ") lower-case to two.
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _decode(groups: tuple[str | None, ...]) -> str | None:
    """The characters one escape stands for; None when it is not a valid escape."""
    hex_, dec, name, semi, u, x, esc = groups
    if name is not None:
        # Upper-cased pages write &AMP;, which html5 knows, but not &APOS;.
        key = name + (semi or "")
        return html.entities.html5.get(key) or html.entities.html5.get(key.lower())
    if esc is not None:
        return _ESCAPES.get(esc, esc)
    number = hex_ or u or x
    code = int(number, 16) if number else int(dec or "0")
    return chr(code) if code <= 0x10FFFF else None


def _decode_percent(run: str, begin: int) -> list[tuple[str, int, int]]:
    """A run of %XX as UTF-8: (characters, start, end) for each character, which
    may take several escapes."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces = []
    first = begin
    for index in range(0, len(run), 3):
        if out := decoder.decode(bytes.fromhex(run[index + 1 : index + 3])):
            pieces.append((out, first, begin + index + 3))
            first = begin + index + 3
    if out := decoder.decode(b"", final=True):
        pieces.append((out, first, begin + len(run)))
    return pieces


class _Targets:
    """Strings to find in one haystack: each whole, or any run of ``width`` of them.

    Runs are found by sampling: every run of ``width`` holds, at a multiple of
    ``step``, a ``gram`` of the target; only those places are looked up (a few
    hundred in 4 KB, not 4000), and a hit is grown into the run around it.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self.gram = width // 2
        self.step = width - self.gram + 1
        self.targets: list[str] = []
        self.grams: dict[str, list[tuple[int, int]]] = {}
        self.wholes: set[str] = set()

    def add(self, target: str) -> None:
        if len(target) < self.width:
            self.wholes.add(target)
            return
        if target in self.targets:
            return
        index, q = len(self.targets), self.gram
        self.targets.append(target)
        for j in range(len(target) - q + 1):
            self.grams.setdefault(target[j : j + q], []).append((index, j))

    def find(self, hay: str, spans: list[tuple[int, int]]) -> None:
        q, grams = self.gram, self.grams
        hits = [i for i in range(0, len(hay) - q + 1, self.step) if hay[i : i + q] in grams]
        for i in hits:
            for index, j in grams[hay[i : i + q]]:
                start, end = _grow(hay, self.targets[index], i, j, q)
                if end - start >= self.width:
                    spans.append((start, end))
        for whole in self.wholes:
            at = hay.find(whole)
            while at >= 0:
                spans.append((at, at + len(whole)))
                at = hay.find(whole, at + 1)


def _grow(hay: str, target: str, i: int, j: int, q: int) -> tuple[int, int]:
    """The longest stretch of ``hay`` around ``hay[i:i+q] == target[j:j+q]`` that
    matches ``target`` character for character."""
    back = 0
    while back < min(i, j) and hay[i - back - 1] == target[j - back - 1]:
        back += 1
    ahead = q
    limit = min(len(hay) - i, len(target) - j)
    while ahead < limit and hay[i + ahead] == target[j + ahead]:
        ahead += 1
    return i - back, i + ahead


@dataclass(frozen=True)
class _Base64Edge:
    """One base64 core: the characters beside it carry a few bits of the secret too."""

    head: str
    tail: str
    lead: bool  # the character before mixes prefix bits with the secret's first bits
    trail: bool  # the character after mixes the secret's last bits with what follows


def _base64_cores(secret: bytes) -> list[tuple[str, _Base64Edge]]:
    cores = []
    for offset in range(3):
        n = offset + len(secret)
        encoded = base64.b64encode(bytes(offset) + secret).decode()
        # Only characters made of the secret's bits alone are the same in any blob.
        core = encoded[: 4 * (n // 3) + n % 3][(0, 2, 3)[offset] :]
        if len(core) < BASE64_MIN:
            continue
        for alphabet in (core, core.replace("+", "-").replace("/", "_")):
            edge = _Base64Edge(
                alphabet[:BASE64_RUN], alphabet[-BASE64_RUN:], offset > 0, n % 3 != 0
            )
            cores.append((alphabet, edge))
    return cores


class _Finder:
    """Everything precomputed for one tuple of secrets."""

    def __init__(self, secrets: tuple[str, ...], raw_bytes: bool) -> None:
        self.text = [_Targets(RUN), _Targets(2 * RUN)]
        self.base64 = _Targets(BASE64_RUN)
        self.edges: list[_Base64Edge] = []
        for secret in secrets:
            low = _lower(secret)
            # A secret holding "%41" or "&amp" in itself reads differently once decoded.
            forms = {low, low.replace(" ", "+"), _Canonical(secret).lower, _Unwrapped(secret).lower}
            for form in forms:
                self.text[0].add(form)
            encoded = secret.encode()
            # Two characters of hex per byte: a run of RUN bytes is 2 * RUN long.
            self.text[1].add(encoded.hex())
            if raw_bytes:
                # The body seen byte for byte (as latin-1): UTF-8 bytes of a
                # non-ASCII secret, and UTF-16 in both byte orders.
                self.text[0].add(_lower(encoded.decode("latin-1")))
                for codec in ("utf-16-le", "utf-16-be"):
                    self.text[1].add(_lower(secret.encode(codec).decode("latin-1")))
            for core, edge in _base64_cores(encoded):
                self.base64.add(core)
                self.edges.append(edge)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of ``text`` to cut, sorted and merged."""
        canonical = _Unwrapped(text)
        found: list[tuple[int, int]] = []
        for targets in self.text:
            targets.find(canonical.lower, found)
        coded: list[tuple[int, int]] = []
        self.base64.find(canonical.text, coded)
        found.extend(self._widen(canonical.text, span) for span in _merge(coded))
        spans = [canonical.span(start, end) for start, end in _merge(found)]
        if canonical.layers[0].decoded:
            # A secret holding "\\r" or "%41" shrinks when decoded: a cut-off
            # echo of it can be a run in the text as given and not in the copy.
            self.text[0].find(_lower(text), spans)
        return _merge(spans)

    def _widen(self, hay: str, span: tuple[int, int]) -> tuple[int, int]:
        start, end = span
        # One character at most each side (a core without + or / is its own
        # URL-safe twin, so two edges can match the same place).
        if start > 0 and any(e.lead and hay.startswith(e.head, start) for e in self.edges):
            start -= hay[start - 1] in _BASE64_ALPHABET
        if end < len(hay) and any(e.trail and hay.endswith(e.tail, 0, end) for e in self.edges):
            end += hay[end] in _BASE64_ALPHABET
        while end < len(hay) and hay[end] == "=":
            end += 1
        return start, end


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@lru_cache(maxsize=64)
def _finder(secrets: tuple[str, ...], raw_bytes: bool = False) -> _Finder:
    # Redaction runs for every finished run with the same few secrets:
    # build their windows and encodings once.
    return _Finder(secrets, raw_bytes)


def _usable(secrets: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}))


def _cut(text: str, finder: _Finder) -> str:
    pieces: list[str] = []
    pos = 0
    for start, end in finder.spans(text):
        pieces += (text[pos:start], REDACTED)
        pos = end
    pieces.append(text[pos:])
    return "".join(pieces)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Return ``text`` with every secret (in any form) and every ``Bearer <token>``
    replaced by ``[REDACTED]``."""
    usable = _usable(secrets)
    if usable:
        text = _cut(text, _finder(usable))
    return _BEARER.sub(rf"\1\2{REDACTED}", text)


def redact_bytes(data: bytes, secrets: Iterable[str | None]) -> bytes:
    """:func:`redact` on raw bytes, before any decoding: a body in UTF-16 or with
    invalid UTF-8 around a secret must not hide it from the search. Run
    :func:`redact` on the decoded text as well: only there do non-ASCII
    characters match whatever their case."""
    text = data.decode("latin-1")  # one character per byte, and back losslessly
    usable = _usable(secrets)
    if usable:
        text = _cut(text, _finder(usable, raw_bytes=True))
    return _BEARER.sub(rf"\1\2{REDACTED}", text).encode("latin-1")


def reach(secrets: Iterable[str | None]) -> int:
    """How many bytes past a cut :func:`redact` must see so that a form of a
    secret starting before the cut is found whole, or by a long enough run."""
    longest = max((min(len(s), RUN) for s in _usable(secrets)), default=0)
    return longest * _MAX_BYTES_PER_CHAR


def redact_json(value: Any, secrets: Iterable[str | None]) -> Any:
    """Redact every string (keys included) inside a decoded JSON value; a number
    that spells a secret becomes the ``[REDACTED]`` string."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {
            redact(str(key), secrets): redact_json(item, secrets) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(item, secrets) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = str(value)
        return value if redact(text, secrets) == text else REDACTED
    return value
