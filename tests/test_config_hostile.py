"""Hostile config.toml input, case by case: each is one ConfigError naming what is wrong.

Three tables: HOSTILE (hand-written inputs that once crashed, were wrongly accepted,
or were refused for the wrong reason), HARMLESS (ordinary values that must pass:
Content-Type, Accept, dates, UUIDs...) and cronsim's own invalid cron fields. Then
${SECRET_NAME} in a body, from config to the request that goes out.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from itertools import product
from pathlib import Path

import httpx
import pytest

from jobs.http import HttpJobRunner
from scheduler.cli.main import main
from scheduler.config import PRUNE_JOB_ID, Config, load_config
from scheduler.errors import ConfigError
from scheduler.run.execute import JobExecutor

TOKEN = "f3Kq9ZxR2mLw8PvT4nYb7HcJ"  # random-looking, 24 characters
HEADER = '[defaults]\nbase_url = "https://app.example.com"\nsecret = "CRON_SECRET"\n\n'


def job(extra: str = "", *, schedule: str = 'schedule = "* * * * *"', target: str = 'path = "/a"',
        job_id: str = '"a"') -> str:
    return f"[[jobs]]\nid = {job_id}\n{target}\n{schedule}\n{extra}\n"


def load(tmp_path: Path, text: str, *, header: bool = True) -> Config:
    path = tmp_path / "config.toml"
    path.write_text((HEADER if header else "") + text, encoding="utf-8")
    return load_config(path)


@pytest.fixture(autouse=True)
def cron_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRON_SECRET", "test-secret-Zq81vLx")


def nested(depth: int, open_: str, close: str, inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


# name: (config text after HEADER, job the error names, field it names, words it says).
# job None: a file-level error. Every message also starts with the file's path.
HOSTILE: dict[str, tuple[str, str | None, str | None, list[str]]] = {
    # -- numbers: finite and within their stated bounds --------------------------------
    "timeout nan": (job("timeout = nan"), "a", "timeout", ["finite"]),
    "timeout inf": (job("timeout = inf"), "a", "timeout", ["finite"]),
    "timeout -inf": (job("timeout = -inf"), "a", "timeout", ["positive"]),
    "timeout 1e308": (job("timeout = 1e308"), "a", "timeout", ["too long"]),
    "timeout 99999999999d": (job('timeout = "99999999999d"'), "a", "timeout", ["far too long"]),
    "timeout 16 digits": (job('timeout = "9999999999999999d"'), "a", "timeout", ["not a valid"]),
    "timeout zero": (job("timeout = 0"), "a", "timeout", ["positive"]),
    "timeout negative": (job("timeout = -5"), "a", "timeout", ["positive"]),
    "timeout 0s": (job('timeout = "0s"'), "a", "timeout", ["longer than zero"]),
    "timeout bool": (job("timeout = true"), "a", "timeout", ["duration"]),
    "timeout array": (job("timeout = [1]"), "a", "timeout", ["duration"]),
    "timeout unicode digit": (job('timeout = "٣s"'), "a", "timeout", ["not a valid duration"]),
    "timeout superscript": (job('timeout = "¹s"'), "a", "timeout", ["not a valid duration"]),
    "timeout 5000 digits": (job(f'timeout = "{"9" * 5000}s"'), "a", "timeout", ["not a valid"]),
    "deadline nan": (job("deadline = nan"), "a", "deadline", ["finite"]),
    "deadline below timeout": (job('timeout = "1m"\ndeadline = "30s"'), "a", "deadline",
                               ["at least the timeout"]),
    "every 1e20": (job(schedule="every = 1e20"), "a", "every", ["too long"]),
    "every nan": (job(schedule="every = nan"), "a", "every", ["finite"]),
    "every 1.5": (job(schedule="every = 1.5"), "a", "every", ["whole number"]),
    "every 500ms": (job(schedule='every = "500ms"'), "a", "every", ["at least 1s"]),
    "every 11 years": (job(schedule='every = "4000d"'), "a", "every", ["too long"]),
    "retries 101": (job("retries = 101"), "a", "retries", ["0 to 100"]),
    "retries -1": (job("retries = -1"), "a", "retries", ["0 to 100"]),
    "retries float": (job("retries = 2.0"), "a", "retries", ["whole number"]),
    "retries huge": (job("retries = 9223372036854775807"), "a", "retries", ["whole number"]),
    "retries bool": (job("retries = true"), "a", "retries", ["whole number"]),
    "misfire grace nan": (job("misfire_grace = nan"), "a", "misfire_grace", ["finite"]),
    "shutdown_timeout 1e308": (job() + "[daemon]\nshutdown_timeout = 1e308\n", None,
                               "daemon.shutdown_timeout", ["too long"]),
    "shutdown_timeout nan": (job() + "[daemon]\nshutdown_timeout = nan\n", None,
                             "daemon.shutdown_timeout", ["finite"]),
    "max_in_flight 0": (job() + "[daemon]\nmax_in_flight = 0\n", None, "daemon.max_in_flight",
                        ["whole number"]),
    "max_in_flight 1e9": (job() + "[daemon]\nmax_in_flight = 1000000000\n", None,
                          "daemon.max_in_flight", ["whole number"]),
    "heartbeat inf": (job() + "[daemon]\nheartbeat_interval = inf\n", None,
                      "daemon.heartbeat_interval", ["finite"]),
    "keep nan": (job() + "[store]\nkeep = nan\n", None, "store.keep", ["finite"]),
    "keep inf": (job() + "[store]\nkeep = inf\n", None, "store.keep", ["finite"]),
    "keep 1e308": (job() + "[store]\nkeep = 1e308\n", None, "store.keep", ["too long"]),
    "alert min_interval nan": (job() + '[[alerts]]\ntype = "webhook"\nurl = "https://h.example'
                               '.com/x"\nmin_interval = nan\n', None, "alerts[1].min_interval",
                               ["finite"]),
    "alert after_failures 0": (job() + '[[alerts]]\ntype = "webhook"\nurl = "https://h.example'
                               '.com/x"\nafter_failures = 0\n', None, "alerts[1].after_failures",
                               ["1 to 10000"]),
    "email port 70000": (job() + '[[alerts]]\ntype = "email"\nhost = "smtp.example.com"\n'
                         'from = "c@example.com"\nto = ["o@example.com"]\nport = 70000\n', None,
                         "alerts[1].port", ["1 to 65535"]),
    "email port nan": (job() + '[[alerts]]\ntype = "email"\nhost = "smtp.example.com"\n'
                       'from = "c@example.com"\nto = ["o@example.com"]\nport = nan\n', None,
                       "alerts[1].port", ["whole number"]),
    "heartbeat timeout inf": (job() + '[heartbeat]\nurl = "https://hc.example.com/ping"\n'
                              'timeout = inf\n', None, "heartbeat.timeout", ["finite"]),
    "metrics port 99999": (job() + '[metrics]\nlisten = "127.0.0.1:99999"\n', None,
                           "metrics.listen", ["HOST:PORT"]),
    "metrics port 5000 digits": (job() + f'[metrics]\nlisten = "127.0.0.1:{"9" * 5000}"\n', None,
                                 "metrics.listen", ["HOST:PORT"]),
    "metrics port unicode": (job() + '[metrics]\nlisten = "127.0.0.1:٩٤٦٤"\n', None,
                             "metrics.listen", ["HOST:PORT"]),
    # -- URLs, parsed strictly --------------------------------------------------------
    "store port notaport": (job() + '[store]\nurl = "postgresql://u@db:notaport/x"\n', None,
                            "store.url", ["not a SQLAlchemy database URL"]),
    "store port 99999999": (job() + '[store]\nurl = "postgresql://u@db:99999999/x"\n', None,
                            "store.url", ["not a SQLAlchemy database URL"]),
    "store url not a string": (job() + "[store]\nurl = 5\n", None, "store.url", ["string"]),
    "job url port notaport": (job(target='url = "https://app.example.com:notaport/a"'), "a",
                              "url", ["not a valid URL"]),
    "job url port 99999": (job(target='url = "https://app.example.com:99999/a"'), "a", "url",
                           ["not a valid URL"]),
    "job url with a space": (job(target='url = "https://app.example.com/a b"'), "a", "url",
                             ["spaces"]),
    "job url with a newline": (job(target='url = "https://app.example.com/a\\n"'), "a", "url",
                               ["control characters"]),
    "job url with a tab in the host": (job(target='url = "https://app.exam\\tple.com/a"'), "a",
                                       "url", ["control characters"]),
    "job url with NUL": (job(target='url = "https://app.example.com/\\u0000"'), "a", "url",
                         ["control characters"]),
    "job url with a backslash": (job(target='url = "https://app.example.com\\\\@evil.com/"'), "a",
                                 "url", ["backslashes"]),
    "job url ftp": (job(target='url = "ftp://app.example.com/a"'), "a", "url", ["http(s)"]),
    "job url without host": (job(target='url = "https:///a"'), "a", "url", ["http(s)"]),
    "job url empty": (job(target='url = ""'), "a", "url", ["non-empty"]),
    "job url bad IPv6": (job(target='url = "https://[::1/a"'), "a", "url", ["not a valid URL"]),
    "path naming a host": (job(target='path = "//evil.example.com/x"'), "a", "path",
                           ["cannot name a host"]),
    "path with a scheme": (job(target='path = "https://evil.example.com/x"'), "a", "path",
                           ["cannot name a host"]),
    "url with user and password": (job(target='url = "https://u:pw@app.example.com/a"'), "a",
                                   "url", ["user:password@"]),
    # -- nesting ----------------------------------------------------------------------
    "arrays nested 5000 deep": (job() + "x = " + nested(5000, "[", "]") + "\n", None, None,
                                ["nested too deeply"]),
    "tables nested 3000 deep": (job() + "x = " + nested(3000, "{a=", "}") + "\n", None, None,
                                ["nested too deeply"]),
    "body nested 100 deep": (job("body = " + nested(100, "[", "]")), "a", "body",
                             ["nested more than"]),
    # -- TOML itself ------------------------------------------------------------------
    "integer of 5000 digits": (job("retries = 1" + "0" * 5000), None, None, ["not valid TOML"]),
    "NUL byte": (job() + "\x00", None, None, ["not valid TOML"]),
    "jobs not a list": ("jobs = 5\n", None, "jobs", ["list of [[jobs]]"]),
    "jobs a list of strings": ('jobs = ["a"]\n', None, "jobs", ["list of [[jobs]]"]),
    "unknown top-level key": ("x = 1\n", None, "x", ["unknown key"]),
    "unknown top key": (job() + "[deamon]\n", None, "deamon", ["did you mean 'daemon'"]),
    # -- empty, or nothing enabled ------------------------------------------------------
    "empty file": ("", None, "jobs", ["declares no [[jobs]]"]),
    "only defaults": ("", None, "jobs", ["declares no [[jobs]]", "history pruning"]),
    "every job disabled": (job("enabled = false"), None, "jobs", ["no enabled job"]),
    "only the pruning, disabled": (job("enabled = false", job_id=f'"{PRUNE_JOB_ID}"',
                                       target='call = "scheduler.store.retention:prune_history"'),
                                   None, "jobs", ["no enabled job"]),
    # -- ids by the whole pattern -----------------------------------------------------
    "id with a trailing newline": (job(job_id='"abc\\n"'), None, "id", ["'abc\\n'"]),
    "id with a leading newline": (job(job_id='"\\nabc"'), None, "id", ["1 to 64"]),
    "id upper case": (job(job_id='"Abc"'), None, "id", ["lower-case"]),
    "id with a space": (job(job_id='"a b"'), None, "id", ["lower-case"]),
    "id with a slash": (job(job_id='"a/b"'), None, "id", ["lower-case"]),
    "id 65 characters": (job(job_id='"' + "a" * 65 + '"'), None, "id", ["1 to 64"]),
    "id empty": (job(job_id='""'), None, "id", ["1 to 64"]),
    "id leading dash": (job(job_id='"-a"'), None, "id", ["dash"]),
    "id unicode": (job(job_id='"café"'), None, "id", ["lower-case"]),
    "id number": (job(job_id="5"), None, "id", ["lower-case"]),
    "id fullwidth digit": (job(job_id='"ａ１"'), None, "id", ["lower-case"]),
    # -- headers: HTTP token names, values without control characters -------------------
    "header name with a space": (job('headers = { "X Bad" = "1" }'), "a", "headers",
                                 ["not a valid HTTP header name"]),
    "header name with a colon": (job('headers = { "X:Bad" = "1" }'), "a", "headers",
                                 ["not a valid HTTP header name"]),
    "header name empty": (job('headers = { "" = "1" }'), "a", "headers",
                          ["not a valid HTTP header name"]),
    "header name unicode": (job('headers = { "X-Ünï" = "1" }'), "a", "headers",
                            ["not a valid HTTP header name"]),
    "header name with a newline": (job('headers = { "X-A\\nX-B" = "1" }'), "a", "headers",
                                   ["not a valid HTTP header name"]),
    "header value CRLF": (job('headers = { X-A = "ok\\r\\nX-Injected: 1" }'), "a", "headers",
                          ["control character"]),
    "header value LF": (job('headers = { X-A = "ok\\nmore" }'), "a", "headers",
                        ["control character"]),
    "header value NUL": (job('headers = { X-A = "a\\u0000" }'), "a", "headers",
                         ["control character"]),
    "header value DEL": (job('headers = { X-A = "a\\u007f" }'), "a", "headers",
                         ["control character"]),
    "header value CRLF with a token": (job(f'headers = {{ X-A = "{TOKEN}\\r\\n" }}'), "a",
                                       "headers", ["control character"]),
    "header value not ASCII": (job('headers = { X-Team = "équipe" }'), "a", "headers",
                               ["ASCII"]),
    "header value a number": (job("headers = { X-A = 1 }"), "a", "headers", ["string"]),
    "headers not a table": (job('headers = "X-A: 1"'), "a", "headers", ["table"]),
    "header twice": (job('headers = { X-A = "1", x-a = "2" }'), "a", "headers", ["twice"]),
    "header Host": (job('headers = { Host = "evil.example.com" }'), "a", "headers",
                    ["set by cronhost"]),
    "header Idempotency-Key": (job('headers = { Idempotency-Key = "x" }'), "a", "headers",
                               ["set by cronhost"]),
    "header Content-Length": (job('headers = { Content-Length = "5" }'), "a", "headers",
                              ["set by cronhost"]),
    "defaults header with CRLF": ("[defaults.headers]\nX-A = \"a\\r\\n\"\n" + job(), "a",
                                  "defaults.headers", ["control character"]),
    # -- literal credentials: URL path and query, headers, body, description -------------
    "token in the URL path": (job(target=f'path = "/api/cron/{TOKEN}"'), "a", "path",
                              ["credential", "in the path"]),
    "token in a full URL path": (job(target=f'url = "https://app.example.com/h/{TOKEN}"'), "a",
                                 "url", ["credential"]),
    "percent-encoded token in the path": (job(target='path = "/h/f3Kq9ZxR2mLw8P%76T4nYb7HcJ"'),
                                          "a", "path", ["credential"]),
    "hex token in the path": (job(target='path = "/h/3f2b8c1e9a4d4e7b8c2a1d5e6f7a8b9c"'), "a",
                              "path", ["credential"]),
    "query auth=": (job(target='path = "/a?auth=abc"'), "a", "path", ["'auth'"]),
    "query cron_secret=": (job(target='path = "/a?cron_secret=abc"'), "a", "path",
                           ["'cron_secret'"]),
    "query token=": (job(target='path = "/a?token=x"'), "a", "path", ["'token'"]),
    "query apiKey=": (job(target='path = "/a?apiKey=x"'), "a", "path", ["'apiKey'"]),
    "query access_token=": (job(target='path = "/a?access_token=x"'), "a", "path",
                            ["'access_token'"]),
    "query key=": (job(target='path = "/a?key=x"'), "a", "path", ["'key'"]),
    "query sig=": (job(target='path = "/a?sig=x"'), "a", "path", ["'sig'"]),
    "query password=": (job(target='path = "/a?password=x"'), "a", "path", ["'password'"]),
    "query random value": (job(target=f'path = "/a?state={TOKEN}"'), "a", "path",
                           ["in the query parameter 'state'"]),
    "token in the fragment": (job(target=f'path = "/a#{TOKEN}"'), "a", "path", ["fragment"]),
    "header Authorization": (job('headers = { Authorization = "Bearer abc" }'), "a", "headers",
                             ["credential by its name"]),
    "header X-Api-Key": (job('headers = { X-Api-Key = "abc" }'), "a", "headers",
                         ["credential by its name"]),
    "header X-Auth-Token": (job('headers = { X-Auth-Token = "abc" }'), "a", "headers",
                            ["credential by its name"]),
    "header Cookie": (job('headers = { Cookie = "session=abc" }'), "a", "headers",
                      ["credential by its name"]),
    "header X-Cron-Secret": (job('headers = { X-Cron-Secret = "abc" }'), "a", "headers",
                             ["credential by its name"]),
    "header Vercel bypass": (job('headers = { x-vercel-protection-bypass = "abc" }'), "a",
                             "headers", ["credential by its name"]),
    "header random value": (job(f'headers = {{ X-Trace = "{TOKEN}" }}'), "a", "headers",
                            ["literal credential", "24-character"]),
    "header Bearer value": (job(f'headers = {{ X-Forward = "Bearer {TOKEN}" }}'), "a",
                            "headers", ["literal credential"]),
    "header GitHub token": (job('headers = { X-Gh = "ghp_16C7e42F292c6912E7710c838347Ae178B4a" }'),
                            "a", "headers", ["literal credential"]),
    "header JWT": (job('headers = { X-Id = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig" }'), "a",
                   "headers", ["literal credential"]),
    "body string token": (job(f'body = "token={TOKEN}"'), "a", "body", ["credential"]),
    "body string random": (job(f'body = "run {TOKEN} now"'), "a", "body", ["literal credential"]),
    "body table token key": (job('body = { token = "abc" }'), "a", "body", ["'token'"]),
    "body table nested api_key": (job('body = { auth = { api_key = "abc" } }'), "a", "body",
                                  ["'api_key'"]),
    "body table random value": (job(f'body = {{ note = "{TOKEN}" }}'), "a", "body",
                                ["literal credential"]),
    "body array random value": (job(f'body = [{{ x = ["{TOKEN}"] }}]'), "a", "body",
                                ["literal credential"]),
    "body JSON string with a password": (job("body = '{\"password\": \"hunter2\"}'"), "a", "body",
                                         ["'password'"]),
    "body form with client_secret": (job('body = "grant_type=x&client_secret=abc"'), "a", "body",
                                     ["'client_secret'"]),
    "body Basic credential": (job('body = "Authorization: Basic dXNlcjpwYXNzd29yZA=="'), "a",
                              "body", ["HTTP credential"]),
    "body placeholder not a name": (job('body = { token = "${not a name}" }'), "a", "body",
                                    ["not a secret name"]),
    "body placeholder missing": (job('body = { token = "${MISSING_SECRET}" }'), "a", "body",
                                 ["MISSING_SECRET", "not set"]),
    "body placeholder beside a literal": (job(f'body = {{ token = "${{X}}{TOKEN}" }}'), "a",
                                          "body", ["credential"]),
    "body an integer": (job("body = 5"), "a", "body", ["string or a table"]),
    "description with a token": (job(f'description = "key {TOKEN}"'), "a", "description",
                                 ["credential"]),
    "secret a literal token": (job(f'secret = "{TOKEN}"'), "a", "secret", ["NAME"]),
    "secret a bearer value": (job('secret = "Bearer abc"'), "a", "secret", ["NAME"]),
    # -- cron fields: ASCII only ------------------------------------------------------
    "cron ¹": (job(schedule="schedule = '¹ * * * *'"), "a", "schedule", ["ASCII"]),
    "cron 1-¹": (job(schedule="schedule = '1-¹ * * * *'"), "a", "schedule", ["ASCII"]),
    "cron 1,¹ in day-of-month": (job(schedule="schedule = '* * 1,¹ * *'"), "a", "schedule",
                                 ["ASCII"]),
    "cron arabic digit": (job(schedule="schedule = '٣ * * * *'"), "a", "schedule", ["ASCII"]),
    "cron fullwidth digit": (job(schedule="schedule = '１ * * * *'"), "a", "schedule", ["ASCII"]),
    "cron em space": (job(schedule="schedule = '1\u2003* * * *'"), "a", "schedule", ["ASCII"]),
    "cron NUL": (job(schedule='schedule = "* * * * *\\u0000"'), "a", "schedule", ["ASCII"]),
    "cron step ¹": (job(schedule="schedule = '*/¹ * * * *'"), "a", "schedule", ["ASCII"]),
    "cron 5000-digit field": (job(schedule=f"schedule = '{'1' * 5000} * * * *'"), "a",
                              "schedule", ["is not a number"]),
    "cron 5000-digit step": (job(schedule=f"schedule = '*/{'1' * 5000} * * * *'"), "a",
                             "schedule", ["not a number"]),
    "cron huge in range": (job(schedule="schedule = '* * * * 1-99999999'"), "a", "schedule",
                           ["out of range"]),
    "cron not a string": (job(schedule="schedule = 5"), "a", "schedule", ["string"]),
    "timezone path": (job('timezone = "../../etc/passwd"'), "a", "timezone", ["unknown"]),
    "timezone NUL": (job('timezone = "UTC\\u0000"'), "a", "timezone", ["unknown"]),
    "timezone empty": (job('timezone = ""'), "a", "timezone", ["unknown"]),
    "timezone number": (job("timezone = 1"), "a", "timezone", ["IANA"]),
    "method unknown": (job('method = "BREW"'), "a", "method", ["one of"]),
    "method not a string": (job("method = 1"), "a", "method", ["string"]),
}


# Cases written without HEADER: after its [defaults], their top-level keys would land there.
TOP_LEVEL_ONLY = {"empty file", "jobs not a list", "jobs a list of strings", "unknown top-level key"}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_input_is_one_clear_error(tmp_path: Path, case: str) -> None:
    text, job_id, field, words = HOSTILE[case]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, header=case not in TOP_LEVEL_ONLY)
    error = caught.value
    assert (error.file, error.job, error.field) == (str(tmp_path / "config.toml"), job_id, field)
    message = str(error)
    assert "\n" not in message.strip() and len(message) < 700, message
    for word in words:
        assert word in message, message
    assert TOKEN not in message and "hunter2" not in message and "dXNlcjpw" not in message


def test_there_are_at_least_100_hand_written_hostile_cases() -> None:
    assert len(HOSTILE) >= 100


# Values that are not secrets: each must load as written.
HARMLESS: dict[str, str | None] = {
    "Content-Type json": 'headers = { Content-Type = "application/json" }',
    "Content-Type with charset": 'headers = { Content-Type = "application/json; charset=utf-8" }',
    "vendor media type": 'headers = { Accept = "application/vnd.api+json" }',
    "browser Accept": ('headers = { Accept = "text/html,application/xhtml+xml,application/xml;'
                       'q=0.9,image/webp,*/*;q=0.8" }'),
    "User-Agent browser": ('headers = { User-Agent = "Mozilla/5.0 (X11; Linux x86_64) '
                           'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 '
                           'Safari/537.36" }'),
    "User-Agent bot": 'headers = { User-Agent = "cronhost/0.1 (+https://example.com/bot)" }',
    "Accept-Language": 'headers = { Accept-Language = "sk-SK,en-US;q=0.9" }',
    "Cache-Control": 'headers = { Cache-Control = "no-cache, no-store, max-age=0" }',
    "If-Modified-Since": 'headers = { If-Modified-Since = "Thu, 01 Dec 2026 16:00:00 GMT" }',
    "X-Team": 'headers = { X-Team = "ops" }',
    "empty credential header": 'headers = { X-Api-Key = "" }',
    "token_type header": 'headers = { X-Token-Type = "bearer" }',
    "header with a tab": 'headers = { X-List = "a\\tb" }',
    "UUID request id header": 'headers = { X-Correlation-Id = "3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c" }',
    "body with a UUID": 'body = { request_id = "3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c" }',
    "body with a date": 'body = { since = "2026-11-29T03:00:00Z", until = 2026-11-30T03:00:00Z }',
    "body with a timestamp": 'body = { at = "2026-11-29T03:00:00.123456+01:00", ms = 1732849200000 }',
    "body with identifiers": 'body = { job = "processEmailQueue2024Job", queue = "leadmap_prod_eu_west_1" }',
    "body with a URL": 'body = { callback = "https://app.example.com/api/v2/Users/12345/Orders" }',
    "body with a version": 'body = { version = "v1.2.3-beta.4+build.5678.9012" }',
    "body with prose": 'body = "Basic information about tokens and secrets, in plain words."',
    "body with a non-credential key": 'body = { token_type = "bearer", auth_method = "oauth" }',
    "body with a placeholder": 'body = { token = "${LEADMAP_API_TOKEN}" }',
    "body with an escaped placeholder": 'body = { template = "Hello $${user}" }',
    "body JSON string": "body = '{\"dry_run\": true, \"limit\": 50}'",
    "body form": 'body = "limit=50&dry_run=true"',
    "query with ordinary values": None,  # see the path below
    "description in words": 'description = "Sync calendars for every account, hourly (v2)"',
    "Idempotency-free key name": 'headers = { X-Sort-Key = "created_at" }',
    "sk locale is no Stripe key": 'headers = { Content-Language = "sk-SK" }',
}
HARMLESS_PATHS = {
    "query with ordinary values": 'path = "/api/cron/process-email-queue?dry_run=1&limit=50"',
}


@pytest.mark.parametrize("case", HARMLESS, ids=list(HARMLESS))
def test_harmless_values_are_not_taken_for_credentials(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADMAP_API_TOKEN", "body-token-value-123")
    extra = HARMLESS[case]
    text = job(extra or "", target=HARMLESS_PATHS.get(case, 'path = "/a"'))
    config = load(tmp_path, text)
    assert config.job("a") is not None


def test_the_built_in_job_does_not_count_but_a_declared_one_does(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="declares no"):
        load(tmp_path, "")  # only the built-in history pruning would run
    config = load(tmp_path, job(job_id=f'"{PRUNE_JOB_ID}"', schedule='every = "1h"',
                                target='call = "scheduler.store.retention:prune_history"'))
    assert [spec.id for spec in config.jobs] == [PRUNE_JOB_ID]


def test_parsing_without_secrets_accepts_a_config_with_nothing_enabled(tmp_path: Path) -> None:
    # status, the dashboard and `cronhost import` (one disabled job at a time) only parse.
    path = tmp_path / "config.toml"
    path.write_text(HEADER + job("enabled = false"), encoding="utf-8")
    assert load_config(path, resolve_secrets=False).job("a") is not None


# cronsim's own invalid cases (its tests/test_cronsim.py): every pattern with every bad value.
CRONSIM_PATTERNS = (
    "%s * * * *", "* %s * * *", "* * %s * *", "* * * %s * ", "* * * * %s", "* * * * * %s",
    "1-%s * * * *", "%s-60 * * * *", "* * 1-%s * *", "* * 1,%s * *", "* * %s/1 * *",
    "* * * %s-DEC *", "* * * JAN-%s *", "* * * * %s-SUN", "* * * * MON-%s",
)
CRONSIM_BAD_VALUES = ("-1", "61", "ABC", "2/", "/2", "2#", "#2", "1##1", "1//2", "¹", "LL", "LWX")
CRONSIM_CASES = [pattern % value for pattern, value in product(CRONSIM_PATTERNS, CRONSIM_BAD_VALUES)]


@pytest.mark.parametrize("expression", CRONSIM_CASES)
def test_cronsims_invalid_fields_are_config_errors(tmp_path: Path, expression: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, job(schedule=f"schedule = {json.dumps(expression)}"))
    assert caught.value.field == "schedule" and caught.value.job == "a"


@pytest.mark.parametrize("expression", [p % "¹" for p in CRONSIM_PATTERNS])
def test_cronhost_next_refuses_non_ascii_digits_with_exit_2(
    tmp_path: Path, expression: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "next", expression]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cronhost: ") and "valid schedule" in err and "Traceback" not in err


# -- ${SECRET_NAME} in a body ---------------------------------------------------------------


def test_body_placeholders_are_resolved_like_secret_and_kept_as_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", "value-of-the-api-token")
    config = load(tmp_path, job('body = { token = "${API_TOKEN}", n = 1 }\nmethod = "PUT"'))
    spec = config.job("a")
    assert spec is not None and spec.body_secrets == ("API_TOKEN",)
    assert config.secrets["API_TOKEN"] == "value-of-the-api-token"
    assert "value-of-the-api-token" not in repr(spec) + (spec.json_body_text or "")


def test_a_disabled_job_needs_no_body_secret(tmp_path: Path) -> None:
    config = load(tmp_path, job() + job('body = "${ABSENT}"\nenabled = false', job_id='"b"'))
    assert "ABSENT" not in config.secrets


def run_job(config: Config, job_id: str) -> httpx.Request:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"success": True})

    async def go() -> None:
        runner = HttpJobRunner(user_agent="test", transport=httpx.MockTransport(handler))
        async with runner:
            spec = config.job(job_id)
            assert spec is not None
            executor = JobExecutor(runner, lambda: config)
            outcome = await executor.run(spec, datetime(2026, 1, 1, tzinfo=UTC), "a@x")
            assert outcome.status.value == "ok", outcome

    asyncio.run(go())
    (request,) = sent
    return request


def test_body_secrets_are_filled_in_at_send_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", 'tok"en\\value')  # JSON escaping is the executor's job
    config = load(tmp_path, job('body = { token = "${API_TOKEN}", keep = "$${LITERAL}" }')
                  + job('body = "token=${API_TOKEN}&x=$${Y}"', job_id='"b"'))
    table_body = json.loads(run_job(config, "a").content)
    assert table_body == {"token": 'tok"en\\value', "keep": "${LITERAL}"}
    assert run_job(config, "b").content == b'token=tok"en\\value&x=${Y}'


def test_check_says_which_secret_a_body_needs(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(HEADER + job('body = { token = "${BODY_TOKEN}" }'), encoding="utf-8")
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "job 'a', field 'body'" in err and "BODY_TOKEN" in err and "not set" in err
