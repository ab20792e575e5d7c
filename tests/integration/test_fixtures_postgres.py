"""The PostgreSQL fixture: a real server on loopback that asks for the postwarden role's
password over TCP, keeps committed data across restart() and leaves no process after stop().

The server is ours alone (own port, socket directory and data directory), so Debian's
system cluster may run on 5432 or not: test_stop_leaves_no_process runs a second server
next to the session's one, as the system cluster would."""

import os
import shutil
import stat
import subprocess
import time

import pytest

from pwtest import net
from pwtest import postgres as pw_postgres


def _postmaster_pid(pg):
    with open(os.path.join(pg.data_dir, "postmaster.pid")) as f:
        return int(f.readline())


def test_answers_on_tcp_with_the_password_file(postgres):
    out = postgres.psql("SELECT current_user, current_database(), inet_server_addr(), "
                        "inet_server_port(), current_setting('is_superuser')", tcp=True)
    assert out == "postwarden|postwarden|127.0.0.1|%d|off" % postgres.port


def test_url_with_password_file_is_what_libpq_uses(postgres):
    assert postgres.url() == "postgresql://postwarden@127.0.0.1:%d/postwarden" % postgres.port
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = postgres.password_file
    r = subprocess.run([pw_postgres.PSQL, "-X", "-A", "-t", "-d", postgres.url(),
                        "-c", "SELECT current_user"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "postwarden"
    # Control: the same URL without the password file gets no further.
    env["PGPASSFILE"] = os.devnull
    r = subprocess.run([pw_postgres.PSQL, "-X", "-w", "-d", postgres.url(), "-c", "SELECT 1"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "no password supplied" in r.stderr, r.stderr


def test_password_file_format_and_mode(postgres):
    st = os.stat(postgres.password_file)
    assert stat.S_IMODE(st.st_mode) == 0o600
    with open(postgres.password_file) as f:
        line = f.read()
    assert line == "127.0.0.1:%d:*:postwarden:%s\n" % (postgres.port, postgres.password)
    assert len(postgres.password) >= 32


def test_refuses_a_wrong_password(postgres):
    r = postgres.psql_run("SELECT 1", tcp=True, password="not-" + postgres.password)
    assert r.returncode != 0
    assert 'password authentication failed for user "postwarden"' in r.stderr, r.stderr
    # Control: the right password given the same way is accepted.
    r = postgres.psql_run("SELECT 1", tcp=True, password=postgres.password)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_superuser_has_no_way_in_over_tcp(postgres):
    r = postgres.psql_run("SELECT 1", tcp=True, user="postgres", dbname="postgres",
                          password=postgres.password)
    assert r.returncode != 0
    assert 'password authentication failed for user "postgres"' in r.stderr, r.stderr
    # Control: over the unix socket (root and the server's user only) it is the superuser.
    assert postgres.psql("SELECT current_setting('is_superuser')") == "on"


def test_settings_for_a_test_machine(postgres):
    out = postgres.psql("SELECT name, setting FROM pg_settings WHERE name IN "
                        "('fsync', 'synchronous_commit', 'full_page_writes', "
                        "'shared_buffers', 'max_connections', 'listen_addresses', "
                        "'password_encryption') ORDER BY name")
    got = dict(line.split("|") for line in out.splitlines())
    assert got == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
                   "shared_buffers": "2048",   # 8 kB pages: 16 MB
                   "max_connections": "50", "listen_addresses": "127.0.0.1",
                   "password_encryption": "scram-sha-256"}
    stored = postgres.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postwarden'")
    assert stored.startswith("SCRAM-SHA-256$")
    assert postgres.psql("SHOW server_version_num")[:2] == "15"


def test_runs_unprivileged_in_its_own_directories(postgres):
    uid = os.stat(postgres.data_dir).st_uid
    assert uid != 0
    assert stat.S_IMODE(os.stat(postgres.data_dir).st_mode) == 0o700
    with open("/proc/%d/status" % _postmaster_pid(postgres)) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    assert uids == [str(uid)] * 4
    assert not postgres.socket_dir.startswith("/var/run/postgresql")
    assert os.path.exists(os.path.join(postgres.socket_dir, ".s.PGSQL.%d" % postgres.port))


def test_data_survives_restart(postgres):
    postgres.psql("DROP TABLE IF EXISTS restart_probe; "
                  "CREATE TABLE restart_probe (id int PRIMARY KEY, v text); "
                  "INSERT INTO restart_probe VALUES (1, 'kept')", tcp=True)
    port, pid = postgres.port, _postmaster_pid(postgres)
    t0 = time.monotonic()
    postgres.restart()
    took = time.monotonic() - t0
    assert postgres.port == port
    assert _postmaster_pid(postgres) != pid
    assert postgres.psql("SELECT v FROM restart_probe WHERE id = 1", tcp=True) == "kept"
    # Control: the table is really read back, not an empty answer.
    assert postgres.psql("SELECT count(*) FROM restart_probe WHERE id = 2", tcp=True) == "0"
    postgres.psql("DROP TABLE restart_probe", tcp=True)
    assert took < 20, "restart took %.1fs" % took


def test_committed_data_survives_an_immediate_restart(postgres):
    """restart(mode="immediate") skips the shutdown checkpoint: the row comes back by WAL
    replay, which is what fsync on buys."""
    postgres.psql("DROP TABLE IF EXISTS crash_probe; "
                  "CREATE TABLE crash_probe (id int PRIMARY KEY)", tcp=True)
    postgres.psql("INSERT INTO crash_probe SELECT generate_series(1, 1000)", tcp=True)
    log_before = len(postgres.log())
    postgres.restart(mode="immediate")
    log = postgres.log()[log_before:]
    assert "received immediate shutdown request" in log
    assert "was not properly shut down; automatic recovery in progress" in log, log
    assert postgres.psql("SELECT count(*), max(id) FROM crash_probe", tcp=True) == "1000|1000"
    postgres.psql("DROP TABLE crash_probe", tcp=True)


def test_stop_leaves_no_process(workdir, postgres):
    """A second server next to the session's one: its own port, socket and data; stop()
    ends it and its backends, including one busy in a query, and nothing else."""
    pg = pw_postgres.Postgres(os.path.join(workdir, "pg2"))
    pg.start()
    try:
        assert pg.port != postgres.port
        assert pg.startup_seconds["total"] < 20, pg.startup_seconds
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSFILE"] = pg.password_file
        busy = subprocess.Popen([pw_postgres.PSQL, "-X", "-d", pg.url(), "-c",
                                 "SELECT pg_sleep(60)"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        net.wait_until(lambda: pg.psql("SELECT count(*) FROM pg_stat_activity "
                                       "WHERE query LIKE 'SELECT pg_sleep%'") == "1",
                       10, what="the busy backend")
        # Control: the check below does see the server's processes while it runs.
        assert len(pw_postgres.processes_in(pg.data_dir)) >= 3
        pg.stop()
        assert pw_postgres.processes_in(pg.data_dir) == []
        assert not os.path.exists(os.path.join(pg.data_dir, "postmaster.pid"))
        assert busy.wait(10) != 0
        with pytest.raises(OSError):
            net.wait_port("127.0.0.1", pg.port, timeout=0.5)
    finally:
        pg.stop()
    # The session's server was not touched.
    assert postgres.psql("SELECT 1", tcp=True) == "1"
    assert pw_postgres.processes_in(postgres.data_dir)


def test_server_shuts_down_when_the_test_process_dies(workdir):
    """A test run killed before its teardown leaves no server behind on a shared machine."""
    base = os.path.join(workdir, "pg3")
    code = ("import os, sys\n"
            "sys.path.insert(0, %r)\n"
            "from pwtest import postgres\n"
            "p = postgres.Postgres(%r).start()\n"
            "print(p.proc.pid, p.socket_dir, flush=True)\n"
            "os._exit(0)\n" % (os.path.dirname(os.path.abspath(__file__)), base))
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    data_dir = os.path.join(base, "data")
    # Control: the server was up when its test process died.
    pid, socket_dir = r.stdout.split()
    assert pid.isdigit() and socket_dir.startswith("/tmp/pwpg-")
    net.wait_until(lambda: not pw_postgres.processes_in(data_dir), 30, interval=0.05,
                   what="the orphaned server to shut down")
    with open(os.path.join(base, "postgres.log")) as f:
        assert "received fast shutdown request" in f.read()
    shutil.rmtree(socket_dir)


def test_new_database_is_reachable_with_the_password_file(postgres):
    """A fresh database answers the postwarden role with the one password file, and a copy
    of a template has the template's tables; the control: the template itself is unchanged
    by writes to its copy."""
    tmpl = postgres.new_database(prefix="pwfixt")
    postgres.psql("CREATE TABLE t (x integer); INSERT INTO t VALUES (1)", tcp=True,
                  dbname=tmpl.rsplit("/", 1)[1])
    copy = postgres.new_database(prefix="pwfixc", template=tmpl)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = postgres.password_file
    r = subprocess.run([pw_postgres.PSQL, "-X", "-w", "-q", "-A", "-t", "-d", copy, "-c",
                        "INSERT INTO t VALUES (2); SELECT current_user, count(*) FROM t"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "postwarden|2"
    assert postgres.psql("SELECT count(*) FROM t", dbname=tmpl.rsplit("/", 1)[1]) == "1"
