"""Vercel Cron Jobs (``vercel.json`` or ``.vercel/output/config.json``) -> [[jobs]].

Both files carry ``"crons": [{"path": "/api/cron/x?y=1", "schedule": "0 5 * * *"}]``.
Vercel calls the production deployment with ``GET``, ``Authorization: Bearer
$CRON_SECRET`` and ``User-Agent: vercel-cron/1.0``, on the schedule in UTC. So each
cron becomes a job with

- ``method = "GET"`` (``--method`` for another), ``secret = "CRON_SECRET"``
  (``--secret`` for another name), ``timezone = "UTC"`` written out, so a
  ``[defaults]`` timezone or method of the config merged into cannot change it;
- ``path`` (query string kept) when the base URL is the one the config merged into
  already has as ``defaults.base_url``, else the full ``url`` from ``--base-url``;
- an id from the path: lower-case ``[a-z0-9-]``, leading ``api``/``cron`` segments
  dropped (``/api/cron/sync-mailboxes`` -> ``sync-mailboxes``), the query's keys and
  values appended. The same path twice (two schedules): the first keeps the plain
  id, the others add a short hash of their schedule. Ids depend on the file alone.

Not copied: Vercel's User-Agent. During the parallel week the endpoint's logs must
tell Vercel's calls from cronhost's; an endpoint that checks the User-Agent needs
``headers = {"User-Agent" = "vercel-cron/1.0"}`` added by hand (the import says so).
A credential in a cron's query string is refused: Vercel already sends CRON_SECRET,
and cronhost sends one secret per job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit

from scheduler.config.urls import CREDENTIAL_QUERY_KEYS
from scheduler.errors import UsageError
from scheduler.migrate.model import (
    Finding,
    ImportedJob,
    ImportResult,
    Refused,
    fit_id,
    read_json,
    short_hash,
    slug,
    tokenish,
)

USER_AGENT_NOTE = ("Vercel sent `User-Agent: vercel-cron/1.0`; cronhost sends its own. If an "
                   "endpoint checks it, add headers = { \"User-Agent\" = \"vercel-cron/1.0\" } "
                   "to that job")
_BOILERPLATE = ("api", "cron", "crons")


@dataclass
class Options:
    base_url: str | None = None  # the full base URL to write `url =`; None: write `path =`
    method: str = "GET"
    secret_name: str = "CRON_SECRET"


def load_crons(path: Path) -> list[Any]:
    """The ``crons`` list of a vercel.json or Build Output config.json."""
    raw = read_json(path)
    crons = raw.get("crons") if isinstance(raw, dict) else None
    if not isinstance(crons, list) or not crons:
        raise UsageError(f"{path}: has no `crons` list; expected a vercel.json or a Build Output "
                         ".vercel/output/config.json with \"crons\": [{\"path\", \"schedule\"}]")
    return crons


def import_crons(crons: list[Any], options: Options) -> ImportResult:
    result = ImportResult(notes=[USER_AGENT_NOTE])
    for index, (cron, job_id) in enumerate(zip(crons, assign_ids(crons), strict=True)):
        origin = f"vercel crons[{index}]"
        try:
            result.jobs.append(_map_cron(cron, job_id, origin, options))
        except Refused as exc:
            result.findings.append(Finding(origin, str(exc), refused=True, job_id=job_id))
    return result


def derive_id(cron_path: str) -> str:
    """``/api/cron/sync?mode=full`` -> ``sync-mode-full``."""
    parts = urlsplit(cron_path)
    segments = [s for s in parts.path.split("/") if s]
    while segments and segments[0].lower() in _BOILERPLATE and len(segments) > 1:
        segments.pop(0)
    words = [*segments]
    for piece in parts.query.split("&") if parts.query else []:
        key, _, value = piece.partition("=")
        words += [unquote_plus(key), unquote_plus(value)]
    return fit_id(slug("-".join(words)), "root")


def assign_ids(crons: list[Any]) -> list[str]:
    ids: list[str] = []
    for cron in crons:
        cron_path = cron.get("path") if isinstance(cron, dict) else None
        schedule = cron.get("schedule") if isinstance(cron, dict) else None
        base = derive_id(cron_path) if isinstance(cron_path, str) else "cron"
        job_id, n = base, 2
        if job_id in ids:
            job_id = fit_id(f"{base}-{short_hash(str(schedule))}", base)
        while job_id in ids:
            job_id, n = f"{base}-{n}", n + 1
        ids.append(job_id)
    return ids


def _map_cron(cron: Any, job_id: str, origin: str, options: Options) -> ImportedJob:
    if not isinstance(cron, dict):
        raise Refused("is not an object with `path` and `schedule`")
    cron_path, schedule = cron.get("path"), cron.get("schedule")
    if not isinstance(cron_path, str) or not cron_path.startswith("/"):
        raise Refused(f"`path` must be a string starting with / (got {cron_path!r})")
    if not isinstance(schedule, str) or not schedule.strip():
        raise Refused("has no `schedule`")
    query = urlsplit(cron_path).query
    for piece in query.split("&") if query else []:
        key, _, value = piece.partition("=")
        if unquote_plus(key).lower() in CREDENTIAL_QUERY_KEYS or tokenish(unquote_plus(value)):
            raise Refused(f"its query parameter {unquote_plus(key)!r} looks like a credential; "
                          "Vercel already sends CRON_SECRET and cronhost sends one secret per "
                          "job: take it out of vercel.json and check the endpoint")
    job = ImportedJob(
        id=job_id, origin=origin, schedule=" ".join(schedule.split()), timezone="UTC",
        method=options.method, secret=options.secret_name,
        notes=[f"imported from {origin}: {cron_path}"],
    )
    if options.base_url:
        job.url = urljoin(options.base_url.rstrip("/") + "/", cron_path.lstrip("/"))
    else:
        job.path = cron_path
    return job
