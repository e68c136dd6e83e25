"""`cronhost verify`: the seed's checklist against the real loopback endpoint server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.endpoint_server import EndpointServer, Fault
from tests.test_migrate_helpers import run_cli

SECRET = "s3cretVerifyToken-4821"


def write_config(tmp_path: Path, endpoint: EndpointServer, jobs: dict[str, str]) -> Path:
    """One job per path: ``{id: method}``, each at ``/api/cron/<id>``."""
    lines = [f'[defaults]\nbase_url = "{endpoint.url}"\nsecret = "CRON_SECRET"\n']
    for job_id, method in jobs.items():
        lines.append(f'[[jobs]]\nid = "{job_id}"\npath = "/api/cron/{job_id}"\n'
                     f'method = "{method}"\nschedule = "* * * * *"\n')
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CRON_SECRET", SECRET)
    return SECRET


def test_a_well_behaved_endpoint_passes_all_three_checks(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"good": "PUT"})
    endpoint.program("/api/cron/good", Fault.status(401), Fault.ok(),
                     Fault.ok({"success": True, "message": "already done", "duplicate": True}))
    code, out, err = run_cli(["--config", str(config), "verify", "--yes", "--json"], capsys)
    assert code == 0, (out, err)
    [report] = json.loads(out)
    assert report["job_id"] == "good" and report["ok"] is True
    assert [(c["name"], c["ok"], c["http_status"]) for c in report["checks"]] == [
        ("unauthenticated", True, 401), ("authenticated", True, 200), ("repeat", True, 200)]
    assert "duplicate=true" in report["checks"][2]["detail"]

    unauthenticated, first, repeat = endpoint.requests("/api/cron/good")
    assert "authorization" not in unauthenticated.headers
    assert first.headers["authorization"] == repeat.headers["authorization"] == f"Bearer {secret}"
    assert first.headers["idempotency-key"] == repeat.headers["idempotency-key"]
    assert first.headers["idempotency-key"].startswith("good@verify:")
    assert first.method == repeat.method == "PUT"


def test_flags_200_without_auth_and_an_html_answer(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"open": "GET", "html": "GET", "good": "GET"})
    endpoint.program("/api/cron/html", Fault.status(401),
                     Fault.status(200, "<!DOCTYPE html><html><body>Sign in</body></html>",
                                  headers={"Content-Type": "text/html; charset=utf-8"}))
    endpoint.program("/api/cron/good", Fault.status(403))
    code, out, _ = run_cli(["--config", str(config), "verify", "--yes", "--json"], capsys)
    assert code == 1
    reports = {r["job_id"]: r for r in json.loads(out)}
    assert reports["good"]["ok"] is True
    open_check = reports["open"]["checks"][0]
    assert (open_check["name"], open_check["ok"], open_check["http_status"]) == (
        "unauthenticated", False, 200)
    assert "anyone" in open_check["detail"]
    html = reports["html"]
    assert html["ok"] is False and html["checks"][0]["ok"] is True
    assert html["checks"][1]["ok"] is False and "HTML" in html["checks"][1]["detail"]
    assert html["checks"][2]["ok"] is False and "not called" in html["checks"][2]["detail"]
    assert len(endpoint.requests("/api/cron/html")) == 2  # no repeat after a failed call


def test_unsafe_methods_are_listed_but_not_called_without_include_unsafe(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"campaigns": "POST"})
    code, out, _ = run_cli(["--config", str(config), "verify", "--yes"], capsys)
    assert code == 1
    assert "campaigns" in out and "--include-unsafe" in out
    assert endpoint.requests() == []

    endpoint.program("/api/cron/campaigns", Fault.status(401))
    code, out, _ = run_cli(["--config", str(config), "verify", "--yes", "--include-unsafe"],
                           capsys)
    assert code == 0, out
    assert [r.method for r in endpoint.requests()] == ["POST"] * 3


def test_without_yes_nothing_is_called(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"good": "GET"})
    code, out, err = run_cli(["--config", str(config), "verify"], capsys)
    assert (code, out) == (2, "")
    assert "--yes" in err and "good (GET)" in err
    assert endpoint.requests() == []


def test_the_secret_is_never_printed_even_when_the_endpoint_echoes_it(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"echo": "GET"})
    endpoint.program("/api/cron/echo", Fault.echo_secret(), Fault.echo_secret(),
                     Fault.echo_secret())
    for extra in ([], ["--json"]):
        endpoint.reset()
        endpoint.set_default("/api/cron/echo", Fault.echo_secret())
        code, out, err = run_cli(["--config", str(config), "verify", "--yes", *extra], capsys)
        assert code == 1  # it answers 200 without auth
        assert secret not in out + err and secret.lower() not in (out + err).lower()
        assert "[secret]" in out


def test_an_unknown_job_is_a_usage_error(
    tmp_path: Path, endpoint: EndpointServer, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, endpoint, {"good": "GET"})
    code, _, err = run_cli(["--config", str(config), "verify", "nope", "--yes"], capsys)
    assert code == 2 and "nope" in err and "good" in err
