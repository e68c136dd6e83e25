"""What an import produces: jobs for config.toml, secret values kept apart, and findings.

A source module (vercel, cronjob_org) turns an export into an :class:`ImportResult`.
Everything that would change how a job behaves is a :class:`Finding` naming the
job: a *refusal* keeps the job out of the output, a *warning* lets it in and says
what differs. Nothing is changed silently.

Secret values live only in :class:`SecretValue` (whose repr hides them); an
:class:`ImportedJob` holds the secret's NAME, like config.toml does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scheduler.errors import UsageError

# Mirrors scheduler.config.JOB_ID (which validates the result anyway).
ID_MAX = 63
_NOT_ID = re.compile(r"[^a-z0-9]+")
# A credential in a URL path or a body: one long "word" mixing letters and digits.
_TOKENISH = re.compile(r"^[A-Za-z0-9_\-.~+/=]{20,}$")
_TOKEN_PREFIXES = ("sk_", "sk-", "ghp_", "xox", "eyj")


@dataclass(frozen=True)
class SecretValue:
    """A credential found in an export. The value never reaches config.toml or a terminal."""

    name: str
    value: str = field(repr=False)
    used_by: tuple[str, ...] = ()


@dataclass
class ImportedJob:
    """One [[jobs]] table to write, in the keys config.toml uses."""

    id: str
    origin: str  # where it came from, for messages and a comment: "cron-job.org job 12345"
    schedule: str
    timezone: str
    method: str
    url: str | None = None
    path: str | None = None  # joined to defaults.base_url (Vercel, --into a config that has one)
    description: str = ""
    secret: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | dict[str, Any] | list[Any] | None = None
    timeout: str | None = None
    deadline: str | None = None
    enabled: bool = True
    allow_http: bool = False
    notes: list[str] = field(default_factory=list)  # written as comments above the table

    def table(self) -> dict[str, Any]:
        """The job as config.toml keys, in the order an operator reads them."""
        table: dict[str, Any] = {"id": self.id}
        if self.description:
            table["description"] = self.description
        if self.url is not None:
            table["url"] = self.url
        if self.path is not None:
            table["path"] = self.path
        table["method"] = self.method
        table["schedule"] = self.schedule
        table["timezone"] = self.timezone
        if self.secret:
            table["secret"] = self.secret
        if self.headers:
            table["headers"] = dict(self.headers)
        if self.body is not None:
            table["body"] = self.body
        if self.timeout:
            table["timeout"] = self.timeout
        if self.deadline:
            table["deadline"] = self.deadline
        if self.allow_http:
            table["allow_http"] = True
        if not self.enabled:
            table["enabled"] = False
        return table


@dataclass(frozen=True)
class Finding:
    """Something about one job the operator must know; ``refused`` keeps it out."""

    origin: str
    message: str
    refused: bool = False
    job_id: str | None = None

    def line(self) -> str:
        who = f"job {self.job_id!r} ({self.origin})" if self.job_id else self.origin
        return f"{'refused' if self.refused else 'warning'}: {who}: {self.message}"


@dataclass
class ImportResult:
    jobs: list[ImportedJob] = field(default_factory=list)
    secrets: list[SecretValue] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # about the whole export, not one job

    @property
    def refused(self) -> list[Finding]:
        return [f for f in self.findings if f.refused]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.refused]


class Refused(Exception):
    """Raised inside a source module while mapping one job; becomes a refusing Finding."""


def slug(text: str) -> str:
    """``"/api/cron/Sync Mailboxes"`` -> ``"api-cron-sync-mailboxes"``."""
    return _NOT_ID.sub("-", text.lower()).strip("-")


def fit_id(base: str, fallback: str) -> str:
    """A valid job id from ``base``: at most 63 characters, starting with a letter or digit.

    A long base is cut and given a short hash of the whole, so two long names that
    share a beginning still get different ids.
    """
    base = base or fallback
    if len(base) > ID_MAX:
        digest = hashlib.sha256(base.encode()).hexdigest()[:6]
        base = base[: ID_MAX - 7].rstrip("-") + "-" + digest
    return base


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def tokenish(value: str) -> bool:
    """Whether a URL path segment, query value or body string looks like a credential.

    Stricter than scheduler.secrets.looks_like_a_token (which is meant for header
    values): a path segment such as ``process-email-queue`` must not count.
    """
    if value.lower().startswith(_TOKEN_PREFIXES) and len(value) >= 12:
        return True
    if not _TOKENISH.match(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    mixed_case = any(c.islower() for c in value) and any(c.isupper() for c in value)
    hexish = len(value) >= 32 and all(c in "0123456789abcdefABCDEF" for c in value)
    return hexish or (has_digit and has_alpha and (mixed_case or len(value) >= 32))


def read_json(path: Path, expected: str = "") -> Any:
    """The JSON in ``path``; a UsageError naming the file if it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc}){expected}") from None
