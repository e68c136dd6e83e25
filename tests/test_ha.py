"""Two daemons on one PostgreSQL: whichever way the leader goes, the other leads within seconds.

Each scenario runs two real `cronhost run --standby` subprocesses against the loopback
endpoint with one job every second (allow_overlap = false, each request open 0.3 s),
breaks the leader (or PostgreSQL) one way, and then holds the goals of issue 10:
a node leads again within the failover budget; no Idempotency-Key twice on the wire;
no two requests open at once (across nodes); every slot has exactly one row (run,
skipped or missed); both processes alive at the end, exactly one of them leading.
The figures are printed (`pytest -s`) and kept in each test's tmp_path/failover.txt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from scheduler.daemon import lease as lease_module
from scheduler.daemon.lease import FENCE_SECONDS, LEASE_SECONDS, SESSION_LIMITS, PostgresLease
from scheduler.store import Store
from tests.conftest import PG_ADMIN_URL
from tests.daemon_harness import DaemonProcess, cli, cli_json, write_config
from tests.endpoint_server import EndpointServer, Fault

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TICK = """
[daemon]
heartbeat_interval = "3s"

[[jobs]]
id = "tick"
path = "/tick"
every = "1s"
misfire_grace = "30s"
"""

LEADS = ("daemon.start", "daemon.leading")


def _cluster_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        pytest.skip("no local PostgreSQL cluster to restart (/etc/postgresql)")
    return versions[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", _cluster_version(), "main",
                    action], check=True, capture_output=True, timeout=60)


def pg_answers() -> bool:
    engine = sqlalchemy.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        return True
    except sqlalchemy.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_left_running() -> Iterator[None]:
    """Whatever happens in the block, PostgreSQL is running and answering after it."""
    try:
        yield
    finally:
        if not pg_answers():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl("start")
        deadline = time.monotonic() + 30
        while not pg_answers() and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """As conftest's postgres_url, with no admin connection kept across a server restart."""
    from tests.conftest import require_postgres

    require_postgres()
    name = f"cronhost_test_{uuid.uuid4().hex[:10]}"

    def admin(statement: str) -> None:
        engine = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                                          poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text(statement))
        finally:
            engine.dispose()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with postgres_left_running():
            pass
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ts(record: dict[str, object]) -> float:
    return datetime.fromisoformat(str(record["ts"])).timestamp()


def leads_after(daemon: DaemonProcess, since: float) -> list[dict[str, object]]:
    return [r for r in daemon.records() if r.get("action") in LEADS and ts(r) >= since]


def wait_for_new_leader(pair: list[DaemonProcess], since: float,
                        timeout: float = 40) -> tuple[DaemonProcess, float]:
    """The node that took the lead after ``since``, and how long after it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for daemon in pair:
            found = leads_after(daemon, since)
            if found:
                return daemon, ts(found[0]) - since
        time.sleep(0.05)
    raise AssertionError("no node took the lead:\n" + "\n".join(
        d.log_path.read_text()[-3000:] for d in pair))


def start_pair(tmp_path: Path, endpoint: EndpointServer, postgres_url: str,
               daemons: list[DaemonProcess]) -> list[DaemonProcess]:
    endpoint.set_default("/tick", Fault.slow(0.3))
    config = write_config(tmp_path, TICK, base_url=endpoint.url, store_url=postgres_url)
    first, second = leader_and_standby(config, tmp_path, daemons)
    first.wait_action("run.finish", count=2, timeout=20)
    return [first, second]


def leader_and_standby(config: Path, tmp_path: Path, daemons: list[DaemonProcess],
                       standby_config: Path | None = None,
                       ) -> tuple[DaemonProcess, DaemonProcess]:
    """Two `run --standby` on ``config``: the first leads, the second stands by."""
    first = DaemonProcess(config, tmp_path / "a.log", "--standby")
    daemons.append(first)
    first.wait_action("daemon.start", timeout=30)
    second = DaemonProcess(standby_config or config, tmp_path / "b.log", "--standby")
    daemons.append(second)
    second.wait_action("daemon.standby", timeout=30)
    return first, second


def record(tmp_path: Path, scenario: str, failover: float) -> None:
    line = f"{scenario}: failover {failover:.1f} s"
    print(line)
    with open(tmp_path / "failover.txt", "a", encoding="utf-8") as out:
        out.write(line + "\n")


def check_goals(pair: list[DaemonProcess], endpoint: EndpointServer, postgres_url: str) -> None:
    for daemon in pair:
        assert daemon.process.poll() is None, daemon.log_path.read_text()[-3000:]
    store = Store(postgres_url)
    try:
        # Both nodes up and beating, exactly one of them leading.
        deadline = time.monotonic() + 30
        nodes = store.nodes()
        while time.monotonic() < deadline:
            nodes = store.nodes()
            if len(nodes) == 2 and Counter(n.role for n in nodes) == {"leader": 1, "standby": 1}:
                break
            time.sleep(0.2)
        assert sorted(n.pid for n in nodes) == sorted(d.process.pid for d in pair), nodes
        assert Counter(n.role for n in nodes) == {"leader": 1, "standby": 1}, nodes
        leader = next(d for d in pair if d.process.pid == nodes[0].pid)
        done = len(leader.wait_action("run.finish"))
        leader.wait_action("run.finish", count=done + 2, timeout=20)  # it fires
        for daemon in pair:
            assert daemon.stop() == 0
        rows = [r for r in store.runs_for_slots("tick", datetime(2000, 1, 1, tzinfo=UTC),
                                                datetime(2100, 1, 1, tzinfo=UTC))
                if r.trigger == "schedule"]
    finally:
        store.dispose()
    slots = [row.scheduled_at for row in rows]
    assert len(slots) == len(set(slots)), "a slot has two rows"
    expected = int((slots[-1] - slots[0]) / timedelta(seconds=1)) + 1
    assert sum(row.slot_count for row in rows) == expected, "slots lost"
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys)), "an Idempotency-Key went out twice"
    assert endpoint.max_concurrent == 1, "two requests of the job were open at once"
    # Nothing on the wire is left recorded as anything but its answer (or still abandoned
    # after its node died): every run that was sent has a final status.
    assert not [row for row in rows if row.status in ("running", "queued")]


def test_kill_9_of_the_leader_the_standby_leads_within_5_s(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    leader, standby = start_pair(tmp_path, endpoint, postgres_url, daemons)
    killed_at = time.time()
    leader.kill()
    new, failover = wait_for_new_leader([standby], killed_at)
    record(tmp_path, "kill -9", failover)
    assert failover <= 5
    # The killed node's run in flight (if any) is abandoned at once: its process is gone.
    replacement = DaemonProcess(leader.config, tmp_path / "a2.log", "--standby")
    daemons.append(replacement)
    replacement.wait_action("daemon.standby", timeout=30)
    check_goals([new, replacement], endpoint, postgres_url)


@pytest.mark.timeout(150)
def test_a_frozen_leader_loses_the_lead_and_never_fires_after_sigcont(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    leader, standby = start_pair(tmp_path, endpoint, postgres_url, daemons)
    # Freeze it with a request open: the endpoint answers 1.2 s later (within the 2 s
    # timeout) into the socket of a stopped process, and that answer, not `timeout`, is
    # what the run must record, though the timer is 28 s overdue at SIGCONT.
    endpoint.set_default("/tick", Fault.slow(1.2))
    leader.wait_action("run.start", count=len(leader.wait_action("run.start")) + 1)
    stopped_at = time.time()
    leader.signal(signal.SIGSTOP)
    endpoint.set_default("/tick", Fault.slow(0.3))
    try:
        new, failover = wait_for_new_leader([standby], stopped_at)
        record(tmp_path, "SIGSTOP", failover)
        assert failover <= 15
        assert failover >= FENCE_SECONDS  # not before the frozen one's claims had stopped
        # A run the frozen node had in flight counts as running (deadline + margin): the new
        # leader skips the job meanwhile rather than run it beside that one.
        standby.wait_for(lambda rs: any(r.get("action") in ("run.finish", "run.skipped")
                                        for r in rs), 20, "a slot decided by the new leader")
        time.sleep(max(0.0, stopped_at + 30 - time.time()))  # frozen 30 s in all
    finally:
        leader.signal(signal.SIGCONT)
    continued_at = time.time()
    (lost,) = leader.wait_action("daemon.lead_lost", timeout=20)
    # Between SIGCONT and dropping the lead, the frozen node claimed and sent nothing.
    fired = [r for r in leader.records() if r.get("action") == "run.start"
             and continued_at - 0.5 <= ts(r) <= ts(lost)]
    assert not fired, fired
    if leads_after(leader, continued_at):  # it may lead again, but only once it won the lock
        first_start = [r for r in leader.records() if r.get("action") == "run.start"
                       and ts(r) >= continued_at]
        assert not first_start or ts(first_start[0]) >= ts(leads_after(leader, continued_at)[0])
    assert ts(lost) - continued_at < LEASE_SECONDS
    check_goals([leader, standby], endpoint, postgres_url)
    store = Store(postgres_url)
    try:
        statuses = Counter(row.status for row in store.runs_for_slots(
            "tick", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)))
    finally:
        store.dispose()
    # Every request was answered within its 2 s timeout: none may be recorded timed out.
    assert statuses["timeout"] == 0, statuses


def _terminate(postgres_url: str, application_prefix: str | None = None) -> int:
    database = sqlalchemy.engine.make_url(postgres_url).database
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            query = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE datname = :db AND pid <> pg_backend_pid()")
            params: dict[str, str] = {"db": str(database)}
            if application_prefix is not None:
                query += " AND application_name LIKE :app"
                params["app"] = application_prefix + "%"
            return int(conn.execute(sqlalchemy.text(query), params).scalar() or 0)
    finally:
        admin.dispose()


def test_pg_terminate_backend_of_the_leaders_sessions_hands_over_and_both_live(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    pair = start_pair(tmp_path, endpoint, postgres_url, daemons)
    leader = pair[0]
    # A request of the leader is open when its sessions go (slow(0.3) every second).
    endpoint.set_default("/tick", Fault.slow(2.5))
    leader.wait_action("run.start", count=len(leader.wait_action("run.start")) + 1)
    cut_at = time.time()
    assert _terminate(postgres_url)  # every session of the store: the lease's, the pool's
    endpoint.set_default("/tick", Fault.slow(0.3))
    _, failover = wait_for_new_leader(pair, cut_at)
    record(tmp_path, "pg_terminate_backend", failover)
    assert failover <= 15
    check_goals(pair, endpoint, postgres_url)


@pytest.mark.timeout(300)
@pytest.mark.postgres_outage
def test_postgres_restart_leaves_both_alive_and_one_leading(
    tmp_path: Path, endpoint: EndpointServer, fresh_postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    pair = start_pair(tmp_path, endpoint, fresh_postgres_url, daemons)
    with postgres_left_running():
        restarted_at = time.time()
        pg_ctl("restart")
    _, failover = wait_for_new_leader(pair, restarted_at)
    record(tmp_path, "PostgreSQL restart", failover)
    assert failover <= 15
    check_goals(pair, endpoint, fresh_postgres_url)


@pytest.mark.timeout(300)
@pytest.mark.postgres_outage
def test_postgres_stopped_20_s_leaves_both_alive_and_one_leading(
    tmp_path: Path, endpoint: EndpointServer, fresh_postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    pair = start_pair(tmp_path, endpoint, fresh_postgres_url, daemons)
    with postgres_left_running():
        pg_ctl("stop")
        time.sleep(20)
        started_at = time.time()
        pg_ctl("start")
    _, failover = wait_for_new_leader(pair, started_at - 20)
    back = max(0.0, failover - 20)
    record(tmp_path, "PostgreSQL stopped 20 s", back)
    assert back <= 15  # after PostgreSQL is back
    check_goals(pair, endpoint, fresh_postgres_url)


def test_a_lease_lost_while_the_lead_is_being_taken_is_not_ignored(
    tmp_path: Path, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    # A job that never fires: no claim comes to find out by fencing that the lease is gone.
    config = write_config(tmp_path, """
[[jobs]]
id = "yearly"
path = "/yearly"
schedule = "0 0 1 1 *"
""", store_url=postgres_url)
    leader, standby = leader_and_standby(config, tmp_path, daemons)

    # The take-over's first read (the runs the dead leader left) waits behind a table lock
    # while the standby's lease session is ended under it.
    blocker = sqlalchemy.create_engine(postgres_url, poolclass=NullPool)
    try:
        with blocker.connect() as conn:
            conn.execute(sqlalchemy.text("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE"))
            leader.kill()
            standby.wait_action("daemon.leading", timeout=30)
            assert _terminate(postgres_url, "cronhost/") == 1  # the lease's session only
            # The lease keeper notices at its next touch (every TOUCH_SECONDS): give it two
            # while the take-over still waits. (If it noticed later, the take-over would be
            # over and the loss handled as any other: this test would pass without cause,
            # never fail without one.)
            time.sleep(2 * lease_module.TOUCH_SECONDS + 0.5)
            conn.rollback()
    finally:
        blocker.dispose()

    (lost,) = standby.wait_action("daemon.lead_lost", timeout=30)
    assert "the lock's session ended" in lost["reason"], lost
    # It stands by, competes again and, alone, leads again with a lease of its own.
    standby.wait_for(lambda rs: bool(leads_after(standby, ts(lost))), 30,
                     "the standby leading again")
    # (On a loaded machine a late touch may cost it the lease once more: it leads again.)
    deadline = time.monotonic() + 30
    while _admin_count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                       "database = (SELECT oid FROM pg_database WHERE datname = :db)",
                       db=str(sqlalchemy.engine.make_url(postgres_url).database)) != 1:
        assert time.monotonic() < deadline, standby.log_path.read_text()[-3000:]
        time.sleep(0.2)
    assert standby.stop() == 0


def test_a_take_over_that_fails_halfway_releases_the_lock_and_the_next_bid_leads(
    tmp_path: Path, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    yearly = """
[[jobs]]
id = "yearly"
path = "/yearly"
schedule = "0 0 1 1 *"
"""
    config = write_config(tmp_path, yearly, store_url=postgres_url)
    # The standby's config has one job more: its first lead inserts it into APScheduler's
    # table, and the server refuses that insert once (a sequence is not rolled back).
    more = tmp_path / "standby.toml"
    more.write_text(config.read_text() + yearly.replace('"yearly"', '"another"', 1))
    leader, standby = leader_and_standby(config, tmp_path, daemons, standby_config=more)
    engine = sqlalchemy.create_engine(postgres_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE SEQUENCE blip"))
            conn.execute(sqlalchemy.text("""
                CREATE FUNCTION blip_once() RETURNS trigger AS $$
                BEGIN
                    IF nextval('blip') = 1 THEN RAISE EXCEPTION 'a store blip'; END IF;
                    RETURN NEW;
                END $$ LANGUAGE plpgsql"""))
            conn.execute(sqlalchemy.text(
                "CREATE TRIGGER blip BEFORE INSERT ON apscheduler_jobs "
                "FOR EACH ROW EXECUTE FUNCTION blip_once()"))
        killed_at = time.time()
        leader.kill()
        standby.wait_action("daemon.standby_store_down", timeout=30)
        # The lock went back with the failure; the next bid takes it and leads for good.
        standby.wait_action("daemon.start", timeout=30)
        assert not [r for r in standby.records() if r.get("action") == "daemon.role_error"]
        with engine.connect() as conn:
            ids = set(conn.execute(sqlalchemy.text("SELECT id FROM apscheduler_jobs")).scalars())
        assert {"yearly", "another"} <= ids
        assert leads_after(standby, killed_at)
    finally:
        engine.dispose()
    assert standby.stop() == 0


def test_a_claim_whose_transaction_outlives_the_lease_is_rolled_back_not_run(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    endpoint.set_default("/tick", Fault.slow(0.2))
    config = write_config(tmp_path, TICK.replace('every = "1s"', 'every = "3s"'),
                          base_url=endpoint.url, store_url=postgres_url)
    leader, standby = leader_and_standby(config, tmp_path, daemons)
    leader.wait_action("run.finish", timeout=30)
    database = str(sqlalchemy.engine.make_url(postgres_url).database)
    blocker = sqlalchemy.create_engine(postgres_url, poolclass=NullPool)
    try:
        with blocker.connect() as conn:
            # The leader's next wake-up stalls inside its claim transaction, on this row.
            conn.execute(sqlalchemy.text(
                "SELECT id FROM apscheduler_jobs WHERE id = 'tick' FOR UPDATE"))
            deadline = time.monotonic() + 30
            while not _admin_count(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                    "AND wait_event_type = 'Lock'", db=database):
                assert time.monotonic() < deadline, "the leader's wake-up never waited"
                time.sleep(0.05)
            stalled_at = time.time()
            # Its lease ends meanwhile (the session only: the stalled transaction goes on),
            # and the standby takes the lead.
            assert _admin_count(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND application_name LIKE :app", db=database,
                app=f"cronhost/%/{leader.process.pid}/%") == 1
            wait_for_new_leader([standby], stalled_at)
            conn.rollback()  # the stalled claim transaction may go on now
    finally:
        blocker.dispose()
    # It checked, last in that transaction, that its lock session still held the lock: no.
    leader.wait_for(lambda rs: any(r.get("action") == "run.fenced" and ts(r) >= stalled_at
                                   for r in rs), 30, "the stalled claim fenced")
    started = [r for r in leader.records() if r.get("action") == "run.start"
               and ts(r) >= stalled_at]
    assert not started, started
    standby.wait_action("run.finish", count=2, timeout=30)
    keys = [r.headers["idempotency-key"] for r in endpoint.requests("/tick")]
    assert len(keys) == len(set(keys))
    assert endpoint.max_concurrent == 1
    for daemon in (leader, standby):
        assert daemon.stop() == 0


def test_a_second_plain_run_names_the_holder_on_postgres(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    config = write_config(tmp_path, TICK, base_url=endpoint.url, store_url=postgres_url)
    first = DaemonProcess(config, tmp_path / "first.log")
    daemons.append(first)
    first.wait_started()
    second = DaemonProcess(config, tmp_path / "second.log")
    daemons.append(second)
    assert second.wait(timeout=30) == 1
    message = (tmp_path / "second.log").read_text()
    assert f"(pid {first.process.pid} on {socket.gethostname()})" in message, message
    assert "Traceback" not in message
    assert first.stop() == 0



def _admin_count(sql: str, **params: object) -> int:
    engine = sqlalchemy.create_engine(PG_ADMIN_URL, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text(sql), params).scalar_one())
    finally:
        engine.dispose()


def test_the_server_ends_a_lease_session_left_idle_in_a_transaction(postgres_url: str) -> None:
    import psycopg

    conninfo = sqlalchemy.engine.make_url(postgres_url).set(
        drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(conninfo, autocommit=True)
    try:
        for statement in SESSION_LIMITS:
            conn.execute(statement)
        conn.execute("BEGIN")
        conn.execute("SELECT 1")
        backend = conn.info.backend_pid
        assert _admin_count("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid "
                            "AND state = 'idle in transaction'", pid=backend) == 1
        # Gone within twice the lease: the server, not the client, ended it.
        deadline = time.monotonic() + 2 * LEASE_SECONDS
        while _admin_count("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid",
                           pid=backend):
            assert time.monotonic() < deadline, "the session outlived its idle limit"
            time.sleep(0.2)
        with pytest.raises(psycopg.Error, match="idle-in-transaction timeout"):
            conn.execute("SELECT 1")
    finally:
        conn.close()


def test_a_leader_that_stops_touching_its_lease_is_fenced_before_another_node_leads(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a frozen leader looks like to the server: its lock session goes silent.
    monkeypatch.setattr(lease_module, "TOUCH_SECONDS", 3600.0)
    engine = sqlalchemy.create_engine(postgres_url, poolclass=NullPool)
    silent, standby = PostgresLease(engine, "silent-node"), PostgresLease(engine, "standby-node")
    try:
        assert silent.try_acquire() is None and silent.may_claim()
        deadline = time.monotonic() + 2 * LEASE_SECONDS
        while standby.try_acquire() is not None:
            assert time.monotonic() < deadline, "the server never freed the silent lease"
            time.sleep(0.2)
        # The old leader stopped claiming by its own clock before the server let go.
        assert not silent.may_claim()
    finally:
        silent.release()
        standby.release()
        engine.dispose()


def test_status_lists_every_node_with_its_role(
    tmp_path: Path, endpoint: EndpointServer, postgres_url: str, daemons: list[DaemonProcess]
) -> None:
    leader, standby = start_pair(tmp_path, endpoint, postgres_url, daemons)
    deadline = time.monotonic() + 20
    while True:
        nodes = cli_json(leader.config, "status")["nodes"]
        if len(nodes) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(n["pid"], n["role"]) for n in nodes] == [
        (leader.process.pid, "leader"), (standby.process.pid, "standby")]
    assert set(nodes[0]) == {"id", "hostname", "pid", "role", "since", "last_beat_at"}
    text = cli(leader.config, "status").stdout
    assert f"leader   pid {leader.process.pid}" in text and f"standby  pid {standby.process.pid}" in text
    assert leader.stop() == 0
    standby.wait_action("daemon.leading", timeout=10)
    assert standby.stop() == 0
