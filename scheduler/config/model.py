"""What a loaded config.toml is: frozen, typed settings the rest of cronhost reads.

Every table is parsed once, by ``scheduler.config.load``, into the dataclasses
here; nothing downstream sees a raw TOML value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from scheduler.config.alerts import ChannelSettings
from scheduler.config.observers import HeartbeatSettings, MetricsSettings
from scheduler.config.secrets import SecretValues
from scheduler.schedule import CrontabSchedule, EverySchedule, format_duration

__all__ = ["Config", "DaemonSettings", "JobSpec", "LiveConfig", "StoreSettings"]


@dataclass(frozen=True)
class JobSpec:
    """One job as the engine sees it. Holds a secret's NAME, never its value."""

    id: str
    kind: str  # "http" | "python"
    schedule: str | None  # 5-field crontab, or None for `every` jobs
    every: timedelta | None
    timezone: str
    enabled: bool
    timeout: float  # seconds, one attempt
    deadline: float  # seconds, all attempts of a slot
    retries: int
    misfire_grace: timedelta
    catch_up: bool
    allow_overlap: bool
    description: str = ""
    url: str | None = None
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    json_body_text: str | None = None  # canonical JSON; kept as text so the spec stays hashable
    # Secrets the body names as ${NAME}, filled in at send time (never stored here).
    body_secrets: tuple[str, ...] = ()
    secret: str | None = None
    call: str | None = None

    def timetable(self) -> CrontabSchedule | EverySchedule:
        """When the job fires (the engine wraps this in an APScheduler trigger)."""
        if self.every is not None:
            return EverySchedule(self.every)
        assert self.schedule is not None
        return CrontabSchedule(self.schedule, self.timezone)

    @property
    def schedule_text(self) -> str:
        """The schedule as an operator wrote it: a crontab line or ``every 30s``."""
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        return self.schedule or ""

    @property
    def target(self) -> str:
        """Where the job goes: the URL or the callable (never a secret)."""
        return (self.url if self.kind == "http" else self.call) or ""


@dataclass(frozen=True)
class StoreSettings:
    url: str
    keep: timedelta


@dataclass(frozen=True)
class DaemonSettings:
    shutdown_timeout: float = 30.0
    max_in_flight: int = 100
    watch_config: bool = False
    heartbeat_interval: float = 15.0


@dataclass(frozen=True)
class Config:
    path: Path
    jobs: tuple[JobSpec, ...]
    store: StoreSettings
    daemon: DaemonSettings
    metrics: MetricsSettings | None = None
    alerts: tuple[ChannelSettings, ...] = ()
    heartbeat: HeartbeatSettings | None = None
    log_level: int | None = None  # None: as the command line set it
    # Values of every secret the config names (jobs, alert channels, heartbeat URL), by
    # name; empty when loaded with resolve_secrets=False.
    secrets: SecretValues = field(default_factory=SecretValues, compare=False)

    def job(self, job_id: str) -> JobSpec | None:
        return self._jobs_by_id.get(job_id)

    @functools.cached_property
    def _jobs_by_id(self) -> dict[str, JobSpec]:
        # A wake-up with 1,000 due jobs looks each one up: a scan each would be O(n**2).
        return {job.id: job for job in self.jobs}


class LiveConfig:
    """The config in force: one holder that a reload replaces, read by whoever needs it now.

    The runner, the executor and the observers take it as a plain ``Callable[[], Config]``
    (calling it gives the current config), so none keeps a stale copy and none knows how
    reloads happen.
    """

    def __init__(self, config: Config) -> None:
        self.current = config

    def __call__(self) -> Config:
        return self.current

    def replace(self, config: Config) -> None:
        self.current = config
