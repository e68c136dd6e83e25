"""When a slot event becomes an alert: thresholds, recovery, and a per-job rate limit.

One :class:`AlertRules` per channel, fed every slot event. Per job it counts
consecutive failures (failed or timeout; ok resets) and decides:

* failure: the streak reached ``after_failures`` (default 3 for jobs that fire
  more often than hourly, so a blip of an every-minute job stays quiet, else 1);
  every further failure of the streak is a reminder, subject to the rate limit;
* recovery: the first ok after a streak that reached the threshold;
* missed / abandoned: one alert each, if ``on_missed`` / ``on_abandoned``. The missed
  alert is the "late" rule: a slot that no run started within its job's misfire_grace
  becomes a missed slot;
* rate (``min_success_rate``): fewer than that share of the last ``rate_runs`` runs
  were ok (ok against failed, timeout and abandoned; judged once that many runs were
  seen), told on a failure, as a reminder subject to the rate limit; a job that fails
  every other run, which never makes a streak, is caught here; the recovery is told once
  the rate is back up;
* auto_disabled (``auto_disable_after`` = N): the streak reached N (then 2N, ...): the
  dispatcher pauses the job, and this alert, never held back, says so.

Rate limit: at most one alert per job per ``min_interval``; what is held back
is counted and the count goes in the next alert, so a failing every-minute job
sends 4 messages an hour, not 60. A recovery is never held back when the last
alert sent for the job was bad news: the operator's last word must not be a
stale "failing".
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.config.alerts import Rules
from scheduler.run.events import SlotEvent
from scheduler.schedule import Schedule, next_fire_times

FAILED = frozenset({"failed", "timeout"})
RAN = frozenset({"ok", "failed", "timeout", "abandoned"})  # what the success rate counts
BAD_NEWS = frozenset({"failure", "missed", "abandoned", "rate", "auto_disabled"})
FREQUENT = timedelta(hours=1)


def auto_disable_reason(failures: int) -> str:
    """The pause reason recorded for a job that auto_disable_after paused."""
    return f"auto-disabled after {failures} failures"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def default_after_failures(schedule: Schedule, now: datetime | None = None) -> int:
    """3 for a job whose next two fire times are less than an hour apart, else 1."""
    times = next_fire_times(schedule, 2, now or datetime.now(UTC))
    if len(times) == 2 and times[1] - times[0] < FREQUENT:
        return 3
    return 1


@dataclass(frozen=True)
class Alert:
    kind: str  # failure | recovery | missed | abandoned | rate | auto_disabled
    event: SlotEvent
    consecutive_failures: int = 0
    suppressed: int = 0  # alerts held back by the rate limit since the last one sent
    host: str = field(default_factory=socket.gethostname)
    # rate: the share of the last `rate_runs` runs that were ok, and the rule's numbers.
    success_rate: float | None = None
    rate_runs: int | None = None
    min_success_rate: float | None = None
    # auto_disabled: the pause reason recorded for the job ("auto-disabled after 25 failures").
    reason: str | None = None

    @property
    def job_id(self) -> str:
        return self.event.job_id

    def subject(self) -> str:
        job = self.event.job_id
        if self.kind == "failure":
            streak = f" ({self.consecutive_failures} in a row)" if self.consecutive_failures > 1 else ""
            return f"cronhost: {job} {self.event.status.upper()}{streak}"
        if self.kind == "recovery":
            return f"cronhost: {job} recovered"
        if self.kind == "missed":
            count = self.event.slot_count
            return f"cronhost: {job} MISSED {count} slot{'s' if count != 1 else ''}"
        if self.kind == "rate":
            return (f"cronhost: {job} success rate {_percent(self.success_rate)} over the last "
                    f"{self.rate_runs} runs (alerting below {_percent(self.min_success_rate)})")
        if self.kind == "auto_disabled":
            return f"cronhost: {job} AUTO-DISABLED ({self.reason})"
        return f"cronhost: {job} run ABANDONED"

    def text(self) -> str:
        """One paragraph, Slack-compatible (plain text; Slack renders it as is)."""
        event = self.event
        details = [f"slot {event.scheduled_at.astimezone(UTC).isoformat(timespec='seconds')}"]
        if event.http_status is not None:
            details.append(f"HTTP {event.http_status}")
        if event.attempts > 1:
            details.append(f"{event.attempts} attempts")
        if event.run_id is not None:
            details.append(f"run {event.run_id}")
        details.append(f"on {self.host}")
        line = f"{self.subject()}: {', '.join(details)}"
        if event.error and self.kind != "recovery":
            # cronhost's reason, then what the endpoint said about it.
            line += f"\n{event.error}" + (f" · {event.message}" if event.message else "")
        if self.kind == "auto_disabled":
            line += (f"\nThe job is paused and fires no more until `cronhost resume "
                     f"{event.job_id}` (or r in the dashboard).")
        if self.suppressed:
            line += (f"\n({self.suppressed} more alert{'s' if self.suppressed != 1 else ''} "
                     "for this job held back by min_interval since the last one)")
        return line

    def payload(self) -> dict[str, Any]:
        """The webhook body: Slack's ``text`` plus fields for machines."""
        event = self.event
        return {
            "text": self.text(),
            "kind": self.kind,
            "job": event.job_id,
            "slot": event.scheduled_at.astimezone(UTC).isoformat(),
            "status": event.status,
            "error": event.error,
            "message": event.message,
            "run_id": event.run_id,
            "trigger": event.trigger,
            "attempts": event.attempts,
            "http_status": event.http_status,
            "duration_ms": event.duration_ms,
            "slot_count": event.slot_count,
            "consecutive_failures": self.consecutive_failures,
            "suppressed": self.suppressed,
            "success_rate": self.success_rate,
            "reason": self.reason,
            "host": self.host,
        }


@dataclass
class _JobState:
    failures: int = 0
    alerted: bool = False  # the current streak reached the threshold
    last_sent_at: float | None = None
    last_sent_kind: str | None = None
    suppressed: int = 0
    recent: deque[bool] = field(default_factory=deque)  # the last rate_runs runs: ok or not
    rate_alerted: bool = False  # a rate alert went out and the rate is not back up yet


class AlertRules:
    """Per-channel decisions. ``threshold(job_id)`` gives a job's ``after_failures``."""

    def __init__(
        self,
        rules: Rules,
        threshold: Callable[[str], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = rules
        self._threshold = threshold
        self._clock = clock
        self._jobs: dict[str, _JobState] = {}

    def seed(self, job_id: str, consecutive_failures: int) -> None:
        """Carry a failure streak over a restart (from the store's job state)."""
        if consecutive_failures <= 0 or not self.rules.covers(job_id):
            return
        state = self._jobs.setdefault(job_id, _JobState())
        state.failures = consecutive_failures
        if consecutive_failures >= self._threshold_of(job_id, self.rules.after_failures):
            # It was most likely alerted before the restart; make sure a recovery is told.
            state.alerted, state.last_sent_kind = True, "failure"

    def decide(self, event: SlotEvent) -> Alert | None:
        if not self.rules.covers(event.job_id):
            return None
        state = self._jobs.setdefault(event.job_id, _JobState())
        if event.status in RAN:
            state.recent.append(event.status == "ok")
            while len(state.recent) > self.rules.rate_runs:
                state.recent.popleft()
        if event.status in FAILED:
            state.failures += 1
            every = self.rules.auto_disable_after
            if every is not None and state.failures % every == 0:
                state.alerted = True
                return self._emit(state, "auto_disabled", event, force=True,
                                  reason=auto_disable_reason(every))
            if state.failures >= self._threshold_of(event.job_id, self.rules.after_failures):
                state.alerted = True
                return self._emit(state, "failure", event)
            return self._rate(state, event)
        if event.status == "ok":
            recovered = state.alerted
            state.failures, state.alerted = 0, False
            if state.rate_alerted and not self._below(state):
                state.rate_alerted, recovered = False, True
            if recovered and self.rules.on_recovery and state.last_sent_kind in BAD_NEWS:
                return self._emit(state, "recovery", event, force=True)
            return None
        if event.status == "missed" and self.rules.on_missed:
            return self._emit(state, "missed", event)
        if event.status == "abandoned" and self.rules.on_abandoned:
            return self._emit(state, "abandoned", event)
        return None

    def _rate(self, state: _JobState, event: SlotEvent) -> Alert | None:
        if not self._below(state):
            return None
        state.rate_alerted = True
        return self._emit(state, "rate", event, success_rate=self._share(state),
                          rate_runs=self.rules.rate_runs,
                          min_success_rate=self.rules.min_success_rate)

    def _below(self, state: _JobState) -> bool:
        """The rate rule holds: a full window of runs, and too few of them ok."""
        floor = self.rules.min_success_rate
        if floor is None or len(state.recent) < self.rules.rate_runs:
            return False
        return self._share(state) < floor

    @staticmethod
    def _share(state: _JobState) -> float:
        return sum(state.recent) / len(state.recent) if state.recent else 1.0

    def _threshold_of(self, job_id: str, configured: int | None) -> int:
        return configured if configured is not None else self._threshold(job_id)

    def _emit(self, state: _JobState, kind: str, event: SlotEvent, force: bool = False,
              **details: Any) -> Alert | None:
        now = self._clock()
        interval = self.rules.min_interval.total_seconds()
        if not force and state.last_sent_at is not None and now - state.last_sent_at < interval:
            state.suppressed += 1
            return None
        alert = Alert(kind=kind, event=event, consecutive_failures=state.failures,
                      suppressed=state.suppressed, **details)
        state.last_sent_at, state.last_sent_kind, state.suppressed = now, kind, 0
        return alert
