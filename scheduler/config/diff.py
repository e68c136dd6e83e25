"""What a reload changed, job by job: the diff the audit log records (`config.reloaded`)
and `cronhost reload` prints back from that record.

The engine's own diff (``scheduler.engine.sync.Changes``) knows only what it had to
touch; this one names every job added, changed or removed, with the old and new
schedule and the names of the fields that changed. Field values other than the
schedule are left out: they are in the config file, and a header or a body is no
business of a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from scheduler.config.model import Config, JobSpec

__all__ = ["ConfigDiff", "diff_configs"]

# Timing fields all show as "schedule"; the others by their name in config.toml.
_TIMING = ("schedule", "every", "timezone")
_NAMES = {"json_body_text": "body", "body_secrets": "body", "call": "call", "url": "url"}
SHOWN_IN_SUMMARY = 3  # jobs named per kind of change in the audit log's one line
SHOWN_PER_LINE = 10  # ... and in `cronhost reload`'s line per kind; the rest are counted


@dataclass(frozen=True)
class ConfigDiff:
    added: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    @property
    def only_job(self) -> str | None:
        """The one job a reload touched, if it touched one (so `log --job` finds it)."""
        jobs = {entry["job"] for entry in (*self.added, *self.changed, *self.removed)}
        return jobs.pop() if len(jobs) == 1 else None

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfigDiff:
        """Back from an event's detail (`cronhost reload` prints what the daemon recorded)."""
        return cls(**{kind: [entry for entry in data.get(kind) or [] if isinstance(entry, dict)]
                      for kind in ("added", "changed", "removed")})

    def summary(self) -> str:
        """One line for the audit log: the jobs added, changed (the schedule's move), removed."""
        parts = self._parts(SHOWN_IN_SUMMARY)
        return "; ".join(f"{kind} {names}" for kind, names in parts) or "no job changed"

    def lines(self) -> list[str]:
        """`cronhost reload`'s lines: one per kind of change, e.g. ``changed: a (x → y)``."""
        return [f"{kind}: {names}" for kind, names in self._parts(SHOWN_PER_LINE)]

    def _parts(self, shown: int) -> list[tuple[str, str]]:
        entries = (("added", [entry["job"] for entry in self.added]),
                   ("changed", [_change(entry) for entry in self.changed]),
                   ("removed", [entry["job"] for entry in self.removed]))
        return [(kind, _names(names, shown)) for kind, names in entries if names]


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    before = {spec.id: spec for spec in old.jobs}
    after = {spec.id: spec for spec in new.jobs}
    diff = ConfigDiff()
    for job_id, spec in after.items():
        previous = before.get(job_id)
        if previous is None:
            diff.added.append({"job": job_id, "schedule": spec.schedule_text,
                               "timezone": spec.timezone, "enabled": spec.enabled})
            continue
        changed = _changed_fields(previous, spec)
        if not changed:
            continue
        entry: dict[str, Any] = {"job": job_id, "fields": changed}
        if "schedule" in changed:
            entry["old_schedule"] = _when(previous)
            entry["new_schedule"] = _when(spec)
        if "enabled" in changed:
            entry["enabled"] = spec.enabled
        diff.changed.append(entry)
    for job_id, spec in before.items():
        if job_id not in after:
            diff.removed.append({"job": job_id, "schedule": spec.schedule_text,
                                 "timezone": spec.timezone})
    return diff


def _changed_fields(old: JobSpec, new: JobSpec) -> list[str]:
    names: list[str] = []
    for spec_field in fields(JobSpec):
        name = spec_field.name
        if getattr(old, name) == getattr(new, name):
            continue
        shown = "schedule" if name in _TIMING else _NAMES.get(name, name)
        if shown not in names:
            names.append(shown)
    return names


def _when(spec: JobSpec) -> str:
    """The schedule with its zone when not UTC: a move of the zone is a move of the slots."""
    return spec.schedule_text + (f" {spec.timezone}" if spec.timezone != "UTC" else "")


def _change(entry: Mapping[str, Any]) -> str:
    if "old_schedule" in entry:
        return f"{entry['job']} ({entry['old_schedule']} → {entry['new_schedule']})"
    if entry.get("fields") == ["enabled"]:
        return f"{entry['job']} ({'enabled' if entry.get('enabled') else 'disabled'})"
    return f"{entry['job']} ({', '.join(entry.get('fields') or [])})"


def _names(items: list[str], shown: int) -> str:
    if len(items) <= shown:
        return ", ".join(items)
    return f"{', '.join(items[:shown])} and {len(items) - shown} more"
