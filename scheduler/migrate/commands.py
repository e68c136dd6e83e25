"""`cronhost import`, `cronhost verify`, `cronhost compare`: argparse glue.

    cronhost import vercel PATH [--base-url URL] [--method M] [--secret NAME]
                                [--into FILE [--replace]]
    cronhost import cron-job.org PATH [--secret NAME] [--secrets-dir DIR]
                                [--accept-dst-difference] [--into FILE [--replace]]
    cronhost verify [JOB...] --yes [--include-unsafe] [--json]
    cronhost compare PATH [--format cron-job.org|jsonl] [--since T] [--json]

Exit status: 0 when everything was imported / every check passed / the two
schedulers agree; 1 when some job was refused / some check failed / they
disagree (the rest is still written or printed); 2 for bad input (a UsageError
or ConfigError, printed by the CLI as ``cronhost: <message>``).

Import writes TOML to stdout (or the merged file with --into) and everything else
to stderr: one line per refusal or warning, then the commands that install each
secret. No secret value is ever printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scheduler.config import default_config_path, load_config
from scheduler.errors import UsageError
from scheduler.migrate import compare as compare_mod
from scheduler.migrate import cronjob_org, toml_out, vercel
from scheduler.migrate import verify as verify_mod
from scheduler.migrate.model import ImportResult
from scheduler.migrate.secrets_out import install_commands, write_secrets
from scheduler.store import RunRow, Store

EXIT_OK, EXIT_FAILED = 0, 1
SOURCES = ("vercel", "cron-job.org")
HISTORY_LIMIT = 10_000_000  # Store.history needs a limit; a parallel run is far smaller


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="turn vercel.json crons or a cron-job.org export into [[jobs]]",
        description="Print [[jobs]] TOML for another scheduler's jobs, or add them to a config "
                    "with --into. Credentials become named secrets; anything cronhost cannot "
                    "reproduce exactly is refused or warned about, job by job, on stderr.")
    p.add_argument("source", choices=SOURCES)
    p.add_argument("path", type=Path, metavar="PATH",
                   help="vercel.json / .vercel/output/config.json, or cron-job.org's JSON "
                        "(GET /jobs, GET /jobs/<id>, or a list of jobs)")
    p.add_argument("--into", type=Path, metavar="FILE",
                   help="add the jobs to this config.toml, keeping its comments and other jobs")
    p.add_argument("--replace", action="store_true",
                   help="with --into: replace jobs whose id exists (default: refuse)")
    p.add_argument("--secret", default="CRON_SECRET", metavar="NAME",
                   help="secret name: Vercel's CRON_SECRET, or the first credential found in a "
                        "cron-job.org export (default CRON_SECRET)")
    p.add_argument("--base-url", metavar="URL",
                   help="vercel: the production URL (required unless --into's config has "
                        "defaults.base_url)")
    p.add_argument("--method", default="GET", type=str.upper,
                   help="vercel: the method cronhost uses (default GET, as Vercel does)")
    p.add_argument("--secrets-dir", type=Path, metavar="DIR",
                   help="cron-job.org: write each credential found to DIR/NAME (mode 0600)")
    p.add_argument("--accept-dst-difference", action="store_true",
                   help="cron-job.org: import fixed-time jobs whose DST-day behaviour differs "
                        "(with a warning) instead of refusing them")
    p.set_defaults(handler=cmd_import)

    p = subparsers.add_parser(
        "verify", help="the endpoint checklist: 401 without auth, JSON success with it, "
                       "a safe repeat",
        description="Call each HTTP job's endpoint three times (without auth, with auth, and "
                    "again with the same Idempotency-Key). These calls do the job's real work.")
    p.add_argument("jobs", nargs="*", metavar="JOB", help="job ids (default: every enabled "
                                                          "HTTP job)")
    p.add_argument("--yes", action="store_true", help="really call the endpoints")
    p.add_argument("--include-unsafe", action="store_true",
                   help="also call jobs whose method is not safe to repeat (POST, PATCH)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)

    p = subparsers.add_parser(
        "compare", help="compare the old scheduler's log with cronhost's history",
        description="The parallel run's verdict, per job: slots both ran, only the old one, "
                    "only cronhost, status disagreements, lateness p50/p95.")
    p.add_argument("path", type=Path, metavar="PATH", help="the old scheduler's log")
    p.add_argument("--format", choices=compare_mod.FORMATS, default=None,
                   help="cron-job.org history JSON, or JSON lines (default: detected)")
    p.add_argument("--since", default=None, metavar="T", help="ISO 8601 start of the window")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_compare)


def _config_path(args: argparse.Namespace) -> Path:
    return args.config if getattr(args, "config", None) is not None else default_config_path()


# -- import -----------------------------------------------------------------------------


def cmd_import(args: argparse.Namespace) -> int:
    target = toml_out.Target(args.into) if args.into else None
    if args.replace and target is None:
        raise UsageError("--replace only means something with --into FILE")
    importer = _import_vercel if args.source == "vercel" else _import_cronjob_org
    result = importer(args, target)

    label = str(args.into) if args.into else "the printed config"
    kept, findings = toml_out.validate_jobs(result.jobs, target.defaults if target else {}, label)
    result.jobs = kept
    result.findings += findings
    refused_ids = {f.job_id for f in result.findings if f.refused}
    result.secrets = [s for s in result.secrets if set(s.used_by) - refused_ids]

    for finding in result.findings:
        print(f"cronhost: {finding.line()}", file=sys.stderr)
    if result.jobs:
        for note in result.notes:
            print(f"cronhost: note: {note}", file=sys.stderr)
    if target is not None and result.jobs:
        # Merge and load the result first: an id clash or a config that will not load
        # stops here, before any file (config or secret) is written.
        text, added, replaced = target.merge(result.jobs, args.replace)
        target.write(text)
        print(f"cronhost: {args.into}: added {len(added)} job(s)"
              + (f", replaced {', '.join(replaced)}" if replaced else "")
              + f"; refused {len(result.refused)}", file=sys.stderr)
    _emit_secrets(result, args.secrets_dir)
    if target is None and result.jobs:
        sys.stdout.write(toml_out.render(result.jobs))
    if not result.jobs:
        print("cronhost: no job was imported", file=sys.stderr)
    return EXIT_FAILED if result.refused or not result.jobs else EXIT_OK


def _import_vercel(args: argparse.Namespace, target: toml_out.Target | None) -> ImportResult:
    if args.secrets_dir or args.accept_dst_difference:
        raise UsageError("--secrets-dir and --accept-dst-difference are for cron-job.org "
                         "imports; a vercel.json holds no secret values and schedules in UTC")
    if args.method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
        raise UsageError(f"--method {args.method}: cronhost sends GET, POST, PUT, PATCH, DELETE "
                         "or HEAD")
    base_url = args.base_url
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--base-url {base_url!r} is not an http(s) URL such as "
                             "https://www.example.com")
    existing = target.base_url if target else None
    if base_url is None and existing is None:
        where = f"{args.into} has no defaults.base_url" if target else "no --into config"
        raise UsageError(f"--base-url is required ({where}): Vercel's paths need the "
                         "production URL, e.g. --base-url https://www.example.com")
    # The config's own base_url: write `path =` so the jobs follow it; else full URLs.
    same = existing is not None and (base_url is None
                                     or base_url.rstrip("/") == existing.rstrip("/"))
    options = vercel.Options(base_url=None if same else base_url, method=args.method,
                             secret_name=args.secret)
    return vercel.import_crons(vercel.load_crons(args.path), options)


def _import_cronjob_org(args: argparse.Namespace, target: toml_out.Target | None) -> ImportResult:
    if args.base_url or args.method != "GET":
        raise UsageError("--base-url and --method are for vercel imports; cron-job.org jobs "
                         "carry their own URL and method")
    options = cronjob_org.Options(secret_name=args.secret,
                                  accept_dst_difference=args.accept_dst_difference)
    return cronjob_org.import_jobs(cronjob_org.load_export(args.path), options)


def _emit_secrets(result: ImportResult, directory: Path | None) -> None:
    if not result.secrets:
        return
    if directory is not None:
        write_secrets(result.secrets, directory)
        print(f"cronhost: wrote {len(result.secrets)} secret value(s) to {directory} (mode 0600); "
              "install each where the daemon reads it:", file=sys.stderr)
    else:
        print("cronhost: the export holds credentials, now named secrets; their values were not "
              "written anywhere (pass --secrets-dir DIR to have them written there, mode 0600). "
              "Install each, typing its value when asked:", file=sys.stderr)
    for secret in result.secrets:
        print(f"  # {secret.name}, used by {', '.join(secret.used_by)}", file=sys.stderr)
        for line in install_commands(secret, directory):
            print(f"  {line}", file=sys.stderr)


# -- verify -----------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    jobs = verify_mod.select_jobs(config, args.jobs)
    if not jobs:
        raise UsageError(f"{config.path} has no enabled HTTP job to verify")
    if not args.yes:
        names = ", ".join(f"{job.id} ({job.method})" for job in jobs)
        raise UsageError(f"verify calls each endpoint up to 3 times and so runs its real work: "
                         f"{names}. Pass --yes to go ahead (POST and PATCH jobs are only called "
                         "with --include-unsafe)")
    reports = verify_mod.verify(config, jobs, include_unsafe=args.include_unsafe)
    if args.json:
        print(json.dumps([report.to_json() for report in reports], indent=2))
    else:
        for report in reports:
            print(f"{report.job_id}  {report.method} {report.url}  "
                  f"{'ok' if report.ok else 'FAILED'}")
            for check in report.checks:
                status = check.http_status if check.http_status is not None else "-"
                print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name:<15} {status!s:<4} "
                      f"{check.detail}")
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FAILED


# -- compare ----------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    since = compare_mod.parse_since(args.since)
    config = load_config(_config_path(args), resolve_secrets=False)
    old_runs, fmt = compare_mod.load_old_log(args.path, args.format)
    if not old_runs:
        # Nothing read is not agreement: an empty or unrelated export would pass as one.
        raise UsageError(f"{args.path}: no runs of the old scheduler in it, so there is "
                         "nothing to compare (README: Moving from Vercel and cron-job.org)")
    store = Store(config.store.url)
    try:
        if store.missing():
            raise UsageError(f"no store at {store.url_for_humans}: cronhost has not run with "
                             f"{config.path} here, so there is nothing to compare")
        has_schema = store.check_readable()

        def history(job_id: str, start: datetime) -> list[RunRow]:
            return store.history(job_id, HISTORY_LIMIT, start) if has_schema else []

        result = compare_mod.compare(old_runs, config.jobs, fmt, since, history)
    finally:
        store.dispose()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        _print_comparison(result)
    return EXIT_OK if result.agrees else EXIT_FAILED


def _print_comparison(result: compare_mod.Comparison) -> None:
    print(f"{'job':<28} {'both':>6} {'only old':>9} {'only cronhost':>14} {'status ≠':>9}"
          f"  lateness p50/p95 old | cronhost (ms)")
    for job in result.jobs:
        old, new = (compare_mod.percentiles(job.old_lateness),
                    compare_mod.percentiles(job.cronhost_lateness))
        print(f"{job.job_id:<28} {len(job.both):>6} {len(job.only_old):>9} "
              f"{len(job.only_cronhost):>14} {len(job.status_mismatch):>9}  "
              f"{old['p50']}/{old['p95']} | {new['p50']}/{new['p95']}")
        for label, slots in (("only old", job.only_old), ("only cronhost", job.only_cronhost),
                             ("status differs", job.status_mismatch)):
            if slots:
                shown = ", ".join(s.strftime("%Y-%m-%d %H:%MZ") for s in slots[:5])
                more = f" and {len(slots) - 5} more" if len(slots) > 5 else ""
                print(f"    {label}: {shown}{more}")
    print(f"old runs matching no cronhost job: {result.unmatched_old}")
    print("verdict: " + ("the two schedulers agree" if result.agrees else "they disagree"))
