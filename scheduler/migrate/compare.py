"""The parallel run's verdict: the old scheduler's log against cronhost's history.

Old logs, as ``--format`` (detected when not given):

- ``cron-job.org``: what ``GET /jobs/<id>/history`` answers, ``{"history": [...]}``
  (or a list, or JSON lines, of such answers), items with ``url``, ``datePlanned``
  and ``date`` (Unix seconds), ``status`` (1 = OK), ``httpStatus`` and ``jitter`` (ms).
- ``jsonl``: one object a line, ``{"path" or "url", "scheduled_at" or "fired_at",
  "status", "http_status"}``; times ISO 8601 or Unix seconds. Any log (Vercel's
  included) can be turned into this with jq.

Matching: an old run belongs to the cronhost HTTP job with the same URL, else the
same path and query, else the same path; when several jobs share it, the one whose
schedule has that minute. Its slot is the scheduled minute (``datePlanned`` /
``scheduled_at``; with only ``fired_at``, the minute it fired in). cronhost's slots
are its ``schedule`` runs (manual runs are left out) by ``scheduled_at``'s minute; a
``missed`` or ``skipped`` row did not run.

The window compared: from ``--since`` (default: the first old slot) to the last
old slot. For cron-job.org the window is per job, because its API returns only the
latest runs of each job; a JSON-lines log is one window for all jobs, so a job the
old log never ran still shows its cronhost runs as ``only_cronhost``.

Status: ok or not (cron-job.org status 1; jsonl ``ok``/``success``/true, or a 2xx
``http_status`` when there is no status); an unknown status never counts as a
disagreement. Lateness: cron-job.org's ``jitter``, or ``fired_at - scheduled_at``;
cronhost's ``lateness_ms``; p50 and p95 by nearest rank.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from scheduler.config import JobSpec
from scheduler.errors import UsageError
from scheduler.store import RunRow

FORMATS = ("cron-job.org", "jsonl")
_OK_WORDS = {"ok", "success", "succeeded", "successful", "passed", "done", "true", "1"}
_NOT_RAN = {"missed", "skipped"}


@dataclass(frozen=True)
class OldRun:
    target: str  # a URL or a path (with any query)
    slot: datetime  # UTC, whole minute
    ok: bool | None
    lateness_ms: int | None


@dataclass
class JobComparison:
    job_id: str
    both: list[datetime] = field(default_factory=list)
    only_old: list[datetime] = field(default_factory=list)
    only_cronhost: list[datetime] = field(default_factory=list)
    status_mismatch: list[datetime] = field(default_factory=list)
    old_lateness: list[int] = field(default_factory=list)
    cronhost_lateness: list[int] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not (self.only_old or self.only_cronhost or self.status_mismatch)

    def to_json(self) -> dict[str, Any]:
        def stamps(slots: list[datetime]) -> list[str]:
            return [s.isoformat().replace("+00:00", "Z") for s in slots]

        return {
            "job_id": self.job_id,
            "both": len(self.both),
            "only_old": len(self.only_old),
            "only_cronhost": len(self.only_cronhost),
            "status_mismatch": len(self.status_mismatch),
            "old_lateness_ms": percentiles(self.old_lateness),
            "cronhost_lateness_ms": percentiles(self.cronhost_lateness),
            # Not in issue 14's list: the slots themselves, for looking them up.
            "only_old_slots": stamps(self.only_old),
            "only_cronhost_slots": stamps(self.only_cronhost),
            "status_mismatch_slots": stamps(self.status_mismatch),
        }


@dataclass
class Comparison:
    jobs: list[JobComparison]
    unmatched_old: int

    @property
    def agrees(self) -> bool:
        return self.unmatched_old == 0 and all(job.agrees for job in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {"jobs": [job.to_json() for job in self.jobs], "unmatched_old": self.unmatched_old}


def percentiles(values: list[int]) -> dict[str, int | None]:
    ordered = sorted(values)

    def rank(p: float) -> int | None:
        return ordered[max(math.ceil(p * len(ordered)) - 1, 0)] if ordered else None

    return {"p50": rank(0.50), "p95": rank(0.95)}


# -- reading old logs -------------------------------------------------------------------


def load_old_log(path: Path, fmt: str | None) -> tuple[list[OldRun], str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it: {exc}") from None
    documents = _json_documents(text, path)
    if fmt is None:
        fmt = "cron-job.org" if any(isinstance(d, dict) and "history" in d for d in documents) \
            else "jsonl"
    if fmt == "cron-job.org":
        items = []
        for document in documents:
            for answer in document if isinstance(document, list) else [document]:
                if not isinstance(answer, dict) or not isinstance(answer.get("history"), list):
                    raise UsageError(f"{path}: not a cron-job.org history answer (expected "
                                     "{\"history\": [...]} from GET /jobs/<id>/history)")
                items += answer["history"]
        return [_cronjob_org_run(item, path, n) for n, item in enumerate(items, 1)], fmt
    rows = [d for document in documents for d in (document if isinstance(document, list)
                                                  else [document])]
    return [_jsonl_run(row, path, n) for n, row in enumerate(rows, 1)], fmt


def _json_documents(text: str, path: Path) -> list[Any]:
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}: line {number} is not JSON ({exc.msg})") from None
    return documents


def _cronjob_org_run(item: Any, path: Path, number: int) -> OldRun:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise UsageError(f"{path}: history item {number} has no `url`")
    planned = item.get("datePlanned") or item.get("date")
    if not isinstance(planned, int | float):
        raise UsageError(f"{path}: history item {number} has no `datePlanned`")
    status = item.get("status")
    jitter = item.get("jitter")
    if not isinstance(jitter, int | float) and isinstance(item.get("date"), int | float):
        jitter = (item["date"] - planned) * 1000
    return OldRun(
        target=item["url"],
        slot=_minute(_from_unix(planned, f"{path}: history item {number}", "datePlanned")),
        ok=None if status in (0, None) else status == 1,
        lateness_ms=int(jitter) if isinstance(jitter, int | float) else None,
    )


def _jsonl_run(row: Any, path: Path, number: int) -> OldRun:
    where = f"{path}: record {number}"
    if not isinstance(row, dict):
        raise UsageError(f"{where} is not an object")
    target = row.get("url") or row.get("path")
    if not isinstance(target, str) or not target:
        raise UsageError(f"{where} has neither `url` nor `path`")
    scheduled = _instant(row.get("scheduled_at"), where, "scheduled_at")
    fired = _instant(row.get("fired_at"), where, "fired_at")
    if scheduled is None and fired is None:
        raise UsageError(f"{where} has neither `scheduled_at` nor `fired_at`")
    slot = _minute(scheduled or fired)  # type: ignore[arg-type]
    lateness = int((fired - scheduled).total_seconds() * 1000) if fired and scheduled else None
    return OldRun(target=target, slot=slot, ok=_ok(row.get("status"), row.get("http_status")),
                  lateness_ms=lateness)


def _instant(value: Any, where: str, key: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _from_unix(value, where, key)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise UsageError(f"{where}: `{key}` {value!r} is not an ISO 8601 time or Unix seconds")


def _from_unix(value: float, where: str, key: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise UsageError(f"{where}: `{key}` {value!r} is not a Unix time in seconds") from None


def _ok(status: Any, http_status: Any) -> bool | None:
    if isinstance(status, bool):
        return status
    if isinstance(status, str | int) and str(status).strip():
        return str(status).strip().lower() in _OK_WORDS
    if isinstance(http_status, int) and not isinstance(http_status, bool):
        return 200 <= http_status < 300
    return None


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return _instant(text, "--since", "since")
    except UsageError:
        raise UsageError(f"--since {text!r} is not an ISO 8601 time such as "
                         "2026-12-01T00:00:00Z") from None


# -- matching and comparing -------------------------------------------------------------


def match(run: OldRun, jobs: list[JobSpec]) -> JobSpec | None:
    old = urlsplit(run.target)
    old_path = old.path or "/"
    tiers: list[list[JobSpec]] = [[], [], []]
    for job in jobs:
        new = urlsplit(job.url or "")
        same_path = (new.path or "/").rstrip("/") == old_path.rstrip("/")
        if old.netloc and same_path and new.netloc.lower() == old.netloc.lower() \
                and new.query == old.query:
            tiers[0].append(job)
        elif same_path and new.query == old.query:
            tiers[1].append(job)
        elif same_path:
            tiers[2].append(job)
    for candidates in tiers:
        if candidates:
            return next((job for job in candidates if _has_slot(job, run.slot)), candidates[0])
    return None


def _has_slot(job: JobSpec, slot: datetime) -> bool:
    if not job.schedule:
        return False
    try:
        start = (slot - timedelta(seconds=1)).astimezone(ZoneInfo(job.timezone))
        return next(iter(CronSim(job.schedule, start))).astimezone(UTC) == slot
    except (CronSimError, StopIteration, ValueError):
        return False


def compare(
    old_runs: list[OldRun], jobs: Iterable[JobSpec], fmt: str, since: datetime | None,
    history: Callable[[str, datetime], list[RunRow]],
) -> Comparison:
    """``history(job_id, since)``: cronhost's runs of that job from ``since`` on."""
    http_jobs = [job for job in jobs if job.kind == "http"]
    by_job: dict[str, list[OldRun]] = {}
    unmatched = 0
    for run in old_runs:
        if since is not None and run.slot < since:
            continue
        job = match(run, http_jobs)
        if job is None:
            unmatched += 1
        else:
            by_job.setdefault(job.id, []).append(run)
    slots = [run.slot for runs in by_job.values() for run in runs]
    if not slots:
        return Comparison([], unmatched)
    global_window = (since or min(slots), max(slots))
    results = []
    for job in http_jobs:
        runs = by_job.get(job.id, [])
        if fmt == "cron-job.org":
            if not runs:
                continue
            window = (since or min(r.slot for r in runs), max(r.slot for r in runs))
        else:
            window = global_window
        results.append(_compare_job(job.id, runs, history(job.id, window[0]), window))
    results = [r for r in results if r.both or r.only_old or r.only_cronhost]
    return Comparison(results, unmatched)


def _compare_job(
    job_id: str, runs: list[OldRun], rows: list[RunRow], window: tuple[datetime, datetime]
) -> JobComparison:
    result = JobComparison(job_id)
    old: dict[datetime, bool | None] = {}
    for run in runs:
        # A slot run twice (a fall-back hour) is one slot; it failed if any run failed.
        seen = old.get(run.slot, True)
        old[run.slot] = None if run.ok is None else (run.ok if seen is None else seen and run.ok)
        if run.lateness_ms is not None:
            result.old_lateness.append(run.lateness_ms)
    new: dict[datetime, bool | None] = {}
    for row in rows:
        slot = _minute(row.scheduled_at)
        if row.trigger != "schedule" or row.status in _NOT_RAN or not window[0] <= slot <= window[1]:
            continue
        new[slot] = None if row.status == "running" else row.status == "ok"
        if row.lateness_ms is not None:
            result.cronhost_lateness.append(row.lateness_ms)
    for slot in sorted(old.keys() | new.keys()):
        if slot in old and slot in new:
            result.both.append(slot)
            if old[slot] is not None and new[slot] is not None and old[slot] != new[slot]:
                result.status_mismatch.append(slot)
        elif slot in old:
            result.only_old.append(slot)
        else:
            result.only_cronhost.append(slot)
    return result
