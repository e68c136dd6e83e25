"""`cronhost import vercel|cron-job.org`: the real CLI glue on the fixtures in tests/fixtures/migrate."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from scheduler.config import load_config
from tests.test_migrate_helpers import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "migrate"
VERCEL = FIXTURES / "vercel.json"
EXPORT = FIXTURES / "cronjob-org-export.json"
REFUSED_IDS = {"basic-auth-job", "trace-probe", "expired-promo", "api-key-header",
               "nightly-report", "options-probe"}


def jobs_of(text: str) -> dict[str, dict[str, Any]]:
    return {job["id"]: job for job in tomllib.loads(text)["jobs"]}


def loads_in_cronhost(text: str, tmp_path: Path, name: str = "imported.toml") -> Any:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_config(path, resolve_secrets=False)


def export_credentials() -> list[str]:
    """Every credential in the fixture export, found without the import's code."""
    found = []
    for job in json.loads(EXPORT.read_text()):
        for name, value in job["extendedData"]["headers"].items():
            if name.lower() == "authorization":
                found.append(value.split(" ", 1)[1])
            elif name.lower() == "x-api-key":
                found.append(value)
        if job["auth"]["password"]:
            found.append(job["auth"]["password"])
        found += [v for k, v in parse_qsl(urlsplit(job["url"]).query) if k == "token"]
    assert len(found) >= 5
    return found


def encodings(value: str) -> list[bytes]:
    return [value.encode(), quote(value, safe="").encode(), base64.b64encode(value.encode()),
            value.lower().encode()]


# -- Vercel ---------------------------------------------------------------------------------


def test_vercel_crons_become_get_jobs_with_cron_secret_in_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["import", "vercel", str(VERCEL), "--base-url",
                              "https://www.example.com/"], capsys)
    assert code == 0, err
    jobs = jobs_of(out)
    assert list(jobs)[:2] == ["process-email-queue", "sync-mailboxes"]
    assert jobs["sync-mailboxes"]["schedule"] == "*/5 * * * *"
    second = [j for j in jobs if j.startswith("sync-mailboxes-")]
    assert len(second) == 1 and jobs[second[0]]["schedule"] == "0 3 * * *"
    report = jobs["report-kind-weekly-format-csv"]
    assert report["url"] == "https://www.example.com/api/cron/report?kind=weekly&format=csv"
    assert "gmail-watch-renewal" in jobs
    for job in jobs.values():
        assert (job["method"], job["secret"], job["timezone"]) == ("GET", "CRON_SECRET", "UTC")
    config = loads_in_cronhost(out, tmp_path)
    assert {j.id for j in config.jobs} >= set(jobs)
    assert "vercel-cron/1.0" in err  # says the User-Agent is not copied


def test_vercel_ids_are_stable_and_do_not_depend_on_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = jobs_of(run_cli(["import", "vercel", str(VERCEL), "--base-url", "https://x.example"],
                            capsys)[1])
    crons = json.loads(VERCEL.read_text())["crons"]
    swapped = tmp_path / "vercel.json"
    swapped.write_text(json.dumps({"crons": [crons[4], crons[3], *crons[:3]]}))
    again = jobs_of(run_cli(["import", "vercel", str(swapped), "--base-url", "https://x.example"],
                            capsys)[1])
    assert {k: v["schedule"] for k, v in first.items()} == {k: v["schedule"] for k, v in again.items()}


def test_build_output_config_json_and_method_and_secret_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["import", "vercel", str(FIXTURES / "vercel-build-output-config.json"),
                            "--base-url", "https://app.example.com", "--method", "post",
                            "--secret", "APP_CRON_TOKEN"], capsys)
    assert code == 0
    jobs = jobs_of(out)
    assert set(jobs) == {"process-campaigns", "cleanup"}
    assert {(j["method"], j["secret"]) for j in jobs.values()} == {("POST", "APP_CRON_TOKEN")}
    loads_in_cronhost(out, tmp_path)


def test_vercel_without_base_url_or_a_config_that_has_one_is_a_usage_error(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["import", "vercel", str(VERCEL)], capsys)
    assert (code, out) == (2, "")
    assert "--base-url is required" in err


def test_into_refuses_an_existing_id_and_leaves_the_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.toml"
    shutil.copy(FIXTURES / "config-with-comments.toml", target)
    before = target.read_text()
    code, _, err = run_cli(["import", "vercel", str(VERCEL), "--into", str(target)], capsys)
    assert code == 2
    assert "process-email-queue" in err and "--replace" in err
    assert target.read_text() == before


def test_into_with_replace_keeps_comments_and_other_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.toml"
    shutil.copy(FIXTURES / "config-with-comments.toml", target)
    target.chmod(0o640)
    code, out, err = run_cli(["import", "vercel", str(VERCEL), "--into", str(target),
                              "--replace"], capsys)
    assert code == 0, err
    assert out == ""
    text = target.read_text()
    for kept in ("# LeadMap's cronhost config", "# production", "# trailing comment",
                 'id = "nightly-python"'):
        assert kept in text
    jobs = jobs_of(text)
    # The config has this base_url already, so the jobs follow it with `path`.
    assert jobs["process-email-queue"]["path"] == "/api/cron/process-email-queue"
    assert jobs["process-email-queue"]["method"] == "GET"
    assert list(jobs).count("process-email-queue") == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    config = load_config(target, resolve_secrets=False)
    spec = config.job("sync-mailboxes")
    assert spec is not None and spec.url == "https://www.example.com/api/cron/sync-mailboxes"
    assert spec.method == "GET" and spec.timezone == "UTC"


def test_into_with_another_base_url_writes_full_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.toml"
    shutil.copy(FIXTURES / "config-with-comments.toml", target)
    crons = tmp_path / "vercel.json"
    crons.write_text(json.dumps({"crons": [{"path": "/api/cron/other", "schedule": "0 1 * * *"}]}))
    code, _, err = run_cli(["import", "vercel", str(crons), "--into", str(target), "--base-url",
                            "https://staging.example.com"], capsys)
    assert code == 0, err
    assert jobs_of(target.read_text())["other"]["url"] == "https://staging.example.com/api/cron/other"


# -- cron-job.org ---------------------------------------------------------------------------


def test_cron_job_org_export_is_mapped_field_by_field_and_refused_job_by_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["import", "cron-job.org", str(EXPORT), "--secrets-dir",
                              str(tmp_path / "secrets")], capsys)
    assert code == 1  # some jobs refused; the others are printed
    jobs = jobs_of(out)
    refused = {line.split("'")[1] for line in err.splitlines() if line.startswith("cronhost: refused")}
    assert refused == REFUSED_IDS
    assert not REFUSED_IDS & set(jobs)
    assert set(jobs) == {"process-email-queue", "sync-mailboxes", "billing-run",
                         "legacy-webhook", "winter-promo", "plain-http-ping"}

    billing = jobs["billing-run"]
    assert (billing["schedule"], billing["timezone"]) == ("15 6 1,15 * 1", "America/New_York")
    assert (billing["timeout"], billing["deadline"]) == ("300s", "300s")
    assert billing["body"] == {"dry_run": False} and billing["method"] == "POST"
    assert billing["secret"] == "BILLING_RUN_SECRET"
    sync = jobs["sync-mailboxes"]
    assert sync["headers"] == {"X-Source": "cron-job.org"} and sync["schedule"] == "*/5 * * * *"
    assert sync["secret"] == jobs["process-email-queue"]["secret"] == "CRON_SECRET"
    legacy = jobs["legacy-webhook"]
    assert legacy["url"] == "https://hooks.example.com/legacy/ping?source=cron"
    assert legacy["secret"] == "LEGACY_WEBHOOK_SECRET" and legacy["method"] == "GET"
    ping = jobs["plain-http-ping"]
    assert (ping["method"], ping["allow_http"]) == ("HEAD", True) and "secret" not in ping

    for needle in ("basic auth", "TRACE", "expired", "X-Api-Key", "--accept-dst-difference",
                   "OPTIONS", "expiresAt", "[[alerts]]", "redirects", "Authorization: Bearer"):
        assert needle in err
    spec = loads_in_cronhost(out, tmp_path).job("billing-run")
    assert spec is not None and spec.json_body_text == '{"dry_run": false}'


def test_no_credential_from_the_export_reaches_any_file_but_the_secrets_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "config.toml"
    shutil.copy(FIXTURES / "config-with-comments.toml", target)
    secrets_dir = tmp_path / "secrets"
    code, out, err = run_cli(["import", "cron-job.org", str(EXPORT), "--into", str(target),
                              "--replace", "--secrets-dir", str(secrets_dir)], capsys)
    assert code == 1, err
    credentials = export_credentials()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and secrets_dir not in p.parents]
    assert target in written
    for path in written:
        data = path.read_bytes()
        for value in credentials:
            assert not any(form in data for form in encodings(value)), path
    for text in (out, err):
        for value in credentials:
            assert not any(form.decode() in text for form in encodings(value))

    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    files = {p.name: p for p in secrets_dir.iterdir()}
    assert set(files) == {"CRON_SECRET", "BILLING_RUN_SECRET", "LEGACY_WEBHOOK_SECRET"}
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = {name: path.read_text().strip() for name, path in files.items()}
    assert set(values.values()) <= set(credentials)
    # Refused jobs' credentials (basic auth, X-Api-Key) are written nowhere at all.
    job_by_id = {j["jobId"]: j for j in json.loads(EXPORT.read_text())}
    assert job_by_id[1005]["auth"]["password"] not in values.values()
    assert job_by_id[1009]["extendedData"]["headers"]["X-Api-Key"] not in values.values()
    assert "LoadCredential=CRON_SECRET:/etc/cronhost/cron_secret" in err
    config = load_config(target, resolve_secrets=False)
    assert config.job("billing-run") is not None and config.job("nightly-python") is not None


def test_without_secrets_dir_the_install_commands_ask_for_each_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(["import", "cron-job.org", str(EXPORT)], capsys)
    assert code == 1
    assert err.count("systemd-ask-password") == 3
    assert "--secrets-dir" in err
    for value in export_credentials():
        assert value not in out and value not in err


def test_an_existing_secret_file_with_another_value_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "CRON_SECRET").write_text("an-older-value\n")
    code, out, err = run_cli(["import", "cron-job.org", str(EXPORT), "--secrets-dir",
                              str(secrets_dir)], capsys)
    assert code == 2 and out == ""
    assert "already exists" in err
    assert (secrets_dir / "CRON_SECRET").read_text() == "an-older-value\n"


def test_get_jobs_list_export_warns_that_details_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["import", "cron-job.org",
                              str(FIXTURES / "cronjob-org-jobs-list.json")], capsys)
    assert code == 0
    assert set(jobs_of(out)) == {"process-email-queue", "sync-mailboxes"}
    assert err.count("GET /jobs/<id>") == 2
    loads_in_cronhost(out, tmp_path)


def test_get_job_details_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["import", "cron-job.org",
                            str(FIXTURES / "cronjob-org-job-details.json")], capsys)
    assert code == 0
    assert list(jobs_of(out)) == ["billing-run"]
    assert jobs_of(out)["billing-run"]["secret"] == "CRON_SECRET"  # the first secret's name


@pytest.mark.parametrize("content", ['{"history": []}', "not json", '{"jobs": [{"title": "x"}]}'])
def test_a_file_that_is_not_a_cron_job_org_export_is_a_usage_error(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.json"
    path.write_text(content)
    code, out, err = run_cli(["import", "cron-job.org", str(path)], capsys)
    assert (code, out) == (2, "")
    assert str(path) in err and "Traceback" not in err
