"""Which of a job's due slots run, and why each of the others does not.

APScheduler hands the runner every fire time of a job that came due in one
wake-up (after downtime, that can be thousands). The rules, in order:

* a slot later than the job's ``misfire_grace`` → ``missed`` (too late);
* for ``catch_up = false``, a slot that fell due while the daemon was down → ``missed``;
* of the slots left, the newest runs and the older ones are ``missed`` (coalesced into it).

Pure: no store, no clock of its own; the runner records what this decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from scheduler.config import JobSpec
from scheduler.schedule import format_duration

__all__ = ["Missed", "SlotDecision", "decide"]


@dataclass(frozen=True)
class Missed:
    slots: list[datetime]
    reason: str


@dataclass(frozen=True)
class SlotDecision:
    to_run: datetime | None
    missed: list[Missed] = field(default_factory=list)


def decide(
    spec: JobSpec, run_times: list[datetime], now: datetime, daemon_started_at: datetime
) -> SlotDecision:
    """What becomes of each of ``run_times`` (any order, aware) when they are due at ``now``."""
    slots = sorted(slot.astimezone(UTC) for slot in run_times)
    late = [slot for slot in slots if now - slot > spec.misfire_grace]
    timely = [slot for slot in slots if now - slot <= spec.misfire_grace]
    down: list[datetime] = []
    if not spec.catch_up:
        down = [slot for slot in timely if slot < daemon_started_at]
        timely = [slot for slot in timely if slot >= daemon_started_at]
    to_run = timely[-1] if timely else None
    grace = format_duration(spec.misfire_grace)
    missed = [
        Missed(late, f"not run: started too late (past misfire_grace {grace})"),
        Missed(down, "not run: the daemon was down and catch_up = false"),
    ]
    if to_run is not None:
        missed.append(Missed(timely[:-1],
                             f"not run: coalesced into the run of slot {to_run.isoformat()}"))
    return SlotDecision(to_run=to_run, missed=[entry for entry in missed if entry.slots])
