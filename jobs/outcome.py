"""What one run of a job came to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    QUEUED = "queued"  # claimed, waiting for a free place under the in-flight limit
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"  # the previous run of the job was still running
    MISSED = "missed"  # the slot passed without a run (downtime, grace, outage)
    ABANDONED = "abandoned"  # the daemon died or stopped while the run was in flight

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class Outcome:
    """The result of running a job kind once (all attempts of one slot)."""

    status: RunStatus
    attempts: int = 1
    http_status: int | None = None
    error: str | None = None
    # From the endpoint's JSON body, when there is one: LeadMap's endpoints answer
    # {"success": bool, "message": str, "data": ..., "duration": ...}.
    message: str | None = None
    data: Any = None
    endpoint_duration: str | float | None = None
    # At most a few KB of the response body, with secrets redacted.
    response_excerpt: str | None = None
