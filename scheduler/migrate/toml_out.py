"""Imported jobs -> ``[[jobs]]`` TOML: printed, or merged into an existing config.toml.

Merging uses tomlkit, which edits the document in place: the file's comments,
layout and other jobs stay as they were; new jobs are appended to ``jobs``; an id
that exists already is refused (all such ids in one message, before anything is
written) unless ``replace``, which swaps that table in place.

Every job is validated job by job with cronhost's own ``load_config``: alone, in a
throw-away file that holds the target config's ``[defaults]`` (which a job
inherits). A job the config refuses becomes a refusing Finding with the config's
own message. The job as cronhost will see it is compared with what was imported,
so an inherited ``[defaults]`` secret or header is a warning, not a surprise.
Finally the whole merged document is loaded before the file is replaced
(atomically, keeping its mode).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from scheduler.config import load_config
from scheduler.errors import ConfigError, UsageError
from scheduler.migrate.model import Finding, ImportedJob


def render(jobs: Iterable[ImportedJob]) -> str:
    """A TOML document holding just the jobs' ``[[jobs]]`` tables."""
    doc = tomlkit.document()
    aot = tomlkit.aot()
    for job in jobs:
        aot.append(_table(job))
    doc.append("jobs", aot)
    return tomlkit.dumps(doc)


def _table(job: ImportedJob, blank_after: bool = False) -> Table:
    table = tomlkit.table()
    for note in job.notes:
        # A note quotes the export (a path, a name): no control character may end up in
        # a TOML comment, where tomlkit refuses it.
        table.add(tomlkit.comment("".join(c if c.isprintable() else "?" for c in note)))
    for key, value in job.table().items():
        table.add(key, _inline(value))
    if blank_after:  # inside an existing file; tomlkit spaces a fresh document itself
        table.add(tomlkit.nl())
    return table


def _inline(value: Any) -> Any:
    """Tables inside a job as inline tables (``headers = { ... }``), the way config.toml reads."""
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        for key, item in value.items():
            inline.append(key, _inline(item))
        return inline
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_inline(item))
        return array
    return value


class Target:
    """An existing config.toml that jobs are merged into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"--into {path}: no such file (it adds jobs to an existing config; "
                             "without --into the jobs are printed)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--into {path}: cannot read it: {exc}") from None
        try:
            self.doc = tomlkit.parse(self.text)
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from None

    @property
    def defaults(self) -> dict[str, Any]:
        value = self.doc.get("defaults")
        return dict(value.unwrap()) if isinstance(value, Table) else {}

    @property
    def base_url(self) -> str | None:
        value = self.defaults.get("base_url")
        return value if isinstance(value, str) and value else None

    def merge(self, jobs: list[ImportedJob], replace: bool) -> tuple[str, list[str], list[str]]:
        """The merged text, the ids added and the ids replaced. Does not write."""
        aot = self.doc.get("jobs")
        if aot is None:
            aot = tomlkit.aot()
            self.doc.append("jobs", aot)
        if not isinstance(aot, AoT):
            raise ConfigError("`jobs` must be a list of [[jobs]] tables", file=str(self.path),
                              field="jobs")
        index = {str(table.get("id")): i for i, table in enumerate(aot.body)}
        clashes = [job.id for job in jobs if job.id in index]
        if clashes and not replace:
            raise UsageError(
                f"--into {self.path}: it already has the job id(s) {', '.join(clashes)}; pass "
                "--replace to replace them, or remove them first (nothing was written)"
            )
        added, replaced = [], []
        for job in jobs:
            if job.id in index:
                position = index[job.id]
                del aot[position]
                aot.insert(position, _table(job, blank_after=True))
                replaced.append(job.id)
            else:
                if aot.body and not aot.body[-1].as_string().endswith("\n\n"):
                    aot.body[-1].add(tomlkit.nl())
                aot.append(_table(job, blank_after=True))
                index[job.id] = len(aot.body) - 1
                added.append(job.id)
        return tomlkit.dumps(self.doc), added, replaced

    def write(self, text: str) -> None:
        """Replace the file atomically, keeping its permissions, once cronhost loads the result.

        The new text is loaded from its temporary file next to the target, so paths in it
        that are relative to the config mean what they will mean in place.
        """
        mode = self.path.stat().st_mode & 0o7777
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".toml",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, mode)
            _load_as(Path(tmp), str(self.path), "the merged config would not load, nothing was "
                     "written: ")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def validate_jobs(
    jobs: list[ImportedJob], defaults: dict[str, Any], label: str
) -> tuple[list[ImportedJob], list[Finding]]:
    """Jobs cronhost's config accepts, and a Finding for each it refuses or changes."""
    kept: list[ImportedJob] = []
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="cronhost-import-") as tmp:
        for job in jobs:
            path = Path(tmp) / "job.toml"
            doc = tomlkit.document()
            if defaults:
                doc.append("defaults", _inline_free(defaults))
            doc.append("jobs", tomlkit.aot())
            doc["jobs"].append(_table(job))
            path.write_text(tomlkit.dumps(doc), encoding="utf-8")
            try:
                config = load_config(path, resolve_secrets=False)
            except ConfigError as exc:
                message = str(exc).replace(f"{path}, ", "").replace(f"{path}: ", "")
                findings.append(Finding(job.origin, f"cronhost's config refuses it: {message}",
                                        refused=True, job_id=job.id))
                continue
            spec = config.job(job.id)
            if spec is not None:
                findings.extend(_inherited(job, spec, label))
            kept.append(job)
    return kept, findings


def _inline_free(defaults: dict[str, Any]) -> Table:
    table = tomlkit.table()
    for key, value in defaults.items():
        table.add(key, _inline(value))
    return table


def _inherited(job: ImportedJob, spec: Any, label: str) -> list[Finding]:
    findings = []
    if job.secret is None and spec.secret is not None:
        findings.append(Finding(job.origin, (
            f"{label}'s [defaults] gives it secret = {spec.secret!r}, so cronhost sends "
            "`Authorization: Bearer` where the old scheduler sent none (a job cannot unset a "
            "default secret)"), job_id=job.id))
    extra = sorted({name for name, _ in spec.headers} - set(job.headers))
    if extra:
        findings.append(Finding(job.origin, (
            f"{label}'s [defaults] adds the header(s) {', '.join(extra)}, which the old "
            "scheduler did not send"), job_id=job.id))
    return findings


def validate_document(text: str, label: str) -> None:
    """Load a whole document as cronhost would (secrets not resolved); ConfigError if not."""
    with tempfile.TemporaryDirectory(prefix="cronhost-import-") as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text, encoding="utf-8")
        _load_as(path, label, "")


def _load_as(path: Path, label: str, prefix: str) -> None:
    try:
        load_config(path, resolve_secrets=False)
    except ConfigError as exc:
        message = str(exc).replace(f"{path}, ", "").replace(f"{path}: ", "")
        raise ConfigError(prefix + message, file=label) from None
