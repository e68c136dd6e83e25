"""The fields a LeadMap-style reply carries, shared by the http and python kinds.

LeadMap's endpoints answer ``{"success": bool, "message": str, "data": ...,
"duration": ...}`` (and sometimes ``"error"``). A Python job may return the
same shape; both kinds read it here so ``"success": false`` means the same
failure whichever way the job ran.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REPLY_KEYS = frozenset({"success", "message", "data", "duration", "error"})


@dataclass(frozen=True)
class ReplyFields:
    success: bool | None = None
    message: str | None = None
    data: Any = None
    duration: str | float | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        # Only an explicit false counts: a reply without the key is a plain 2xx.
        return self.success is False

    @property
    def words(self) -> str | None:
        """What the job said about its run, in its own words: its message, else its error."""
        return self.message or self.error


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("message"), str):
        return str(value["message"])
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return str(value)


def _duration(value: Any) -> str | float | None:
    if isinstance(value, bool):  # bool is an int; true/false is no duration
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value
    return None


def reply_fields(reply: Mapping[str, Any]) -> ReplyFields:
    """Read the known keys of a decoded JSON object; unknown keys are ignored."""
    success = reply.get("success")
    return ReplyFields(
        success=success if isinstance(success, bool) else None,
        message=_text(reply.get("message")),
        data=reply.get("data"),
        duration=_duration(reply.get("duration")),
        error=_text(reply.get("error")),
    )


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is anything else (or not JSON at all)."""
    if body.lstrip()[:1] != b"{":
        return None
    try:
        value = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return value if isinstance(value, dict) else None
