"""What a reload changed, by name: the store's job table before and after it.

`cronhost reload` reads the daemon's job table (``job_state``, what the daemon runs)
before it asks and after the daemon answers, and names the jobs added, rescheduled
(old -> new schedule) and removed; the daemon's own answer only counts them.
A job switched to ``enabled = false`` leaves the schedule, so it shows as removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from scheduler.store import JobRow

__all__ = ["SHOWN_PER_KIND", "JobChanges", "job_changes"]

SHOWN_PER_KIND = 10  # names listed per kind of change; the rest are counted


@dataclass(frozen=True)
class JobChanges:
    added: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)  # "id (old -> new)"
    removed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per kind of change that happened, e.g. ``rescheduled: a (x -> y)``."""
        return [f"{label}: {_capped(names)}"
                for label, names in (("added", self.added), ("rescheduled", self.rescheduled),
                                     ("removed", self.removed))
                if names]


def job_changes(before: Iterable[JobRow], after: Iterable[JobRow]) -> JobChanges:
    old = {row.job_id: row for row in before if _scheduled(row)}
    new = {row.job_id: row for row in after if _scheduled(row)}
    gone = {row.job_id: row for row in after if not _scheduled(row)}
    removed = [job_id + (" (disabled)" if job_id in gone and not gone[job_id].removed else "")
               for job_id in sorted(old.keys() - new.keys())]
    rescheduled = [
        f"{job_id} ({_when(old[job_id])} -> {_when(new[job_id])})"
        for job_id in sorted(old.keys() & new.keys())
        if _when(old[job_id]) != _when(new[job_id])
    ]
    return JobChanges(added=sorted(new.keys() - old.keys()), rescheduled=rescheduled,
                      removed=removed)


def _scheduled(row: JobRow) -> bool:
    return row.enabled and not row.removed


def _when(row: JobRow) -> str:
    # A change of time zone moves the slots as much as a change of the expression.
    return row.schedule + (f" {row.timezone}" if row.timezone != "UTC" else "")


def _capped(names: list[str]) -> str:
    if len(names) <= SHOWN_PER_KIND:
        return ", ".join(names)
    return f"{', '.join(names[:SHOWN_PER_KIND])} and {len(names) - SHOWN_PER_KIND} more"
