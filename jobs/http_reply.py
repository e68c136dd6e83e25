"""What cronhost keeps of one HTTP response: a capped body and what it says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from jobs.redact import reach, redact, redact_bytes
from jobs.reply import ReplyFields, parse_json_object, reply_fields


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: httpx.Headers = field(repr=False)
    body: bytes = field(repr=False)
    # True when the body went on past the cap and the rest was never read.
    truncated: bool = False

    @cached_property
    def json_object(self) -> dict[str, Any] | None:
        # A cut-off body cannot be valid JSON, and guessing at half of one
        # could invent a "success" the endpoint never finished saying.
        return None if self.truncated else parse_json_object(self.body)

    @property
    def fields(self) -> ReplyFields | None:
        obj = self.json_object
        return None if obj is None else reply_fields(obj)

    @property
    def status_line(self) -> str:
        reason = self.reason or httpx.codes.get_reason_phrase(self.status)
        return f"HTTP {self.status} {reason}".rstrip()


async def read_reply(response: httpx.Response, limit: int) -> Reply:
    """Read at most ``limit`` bytes of the body, then stop: a runaway endpoint
    must not be able to fill the daemon's memory."""
    body = bytearray()
    truncated = False
    async for chunk in response.aiter_bytes():
        room = limit - len(body)
        if len(chunk) > room:
            body += chunk[:room]
            truncated = True
            break
        body += chunk
    return Reply(
        status=response.status_code,
        reason=response.reason_phrase,
        headers=response.headers,
        body=bytes(body),
        truncated=truncated,
    )


def excerpt(
    body: bytes, limit: int, secret: str | None | Sequence[str | None]
) -> str | None:
    """The first ``limit`` bytes of ``body`` as text, secrets redacted; None for an empty body.

    ``secret`` is one secret or several (the job's token and every other one to hide).
    """
    if not body or limit <= 0:
        return None
    secrets = [secret] if secret is None or isinstance(secret, str) else list(secret)
    # Redact over a window reaching past the cut far enough that a form of the
    # secret starting before it (HTML entities take up to 12 bytes a character)
    # is seen whole, or by a run long enough to be recognised.
    window = body[: limit + reach(secrets)]
    # Bytes first: decoding could hide a form from the text search (a UTF-16
    # body, or U+FFFD where a non-ASCII secret's bytes were not UTF-8), and the
    # bytes are what the endpoint actually sent.
    window = redact_bytes(window, secrets)
    text = redact(window.decode("utf-8", errors="replace"), secrets)
    return text.encode()[:limit].decode("utf-8", errors="ignore")
