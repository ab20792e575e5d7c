"""Fixtures for postwarden's integration tests: real peers on loopback.

Session-wide (started once, on first use): the test CA, Knot DNS with the test zones and
the unbound.conf for libunbound, Postfix receivers (with TLS on 127.0.0.2, without TLS on
127.0.0.3, a third one on 127.0.0.4 for the senders' own domain), the sending Postfix and
a PostgreSQL server.
Per test: hostile/sink SMTP servers and the relay.

Every MX listens on the same port (mx_port) on its own 127.0.0.X, as the relay uses one
remote_port for every MX.

Logs: everything lives under one session directory. A test's own files (relay config,
state and log, ...) sit in tests/<test>/ and are deleted when the test passes; when it
fails they stay, the session servers' log lines written during the test are copied into
failed/<test>/, the tails are attached to the report, and the session directory is kept.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pwtest import ca as pw_ca            # noqa: E402
from pwtest import database as pw_database  # noqa: E402
from pwtest import dns as pw_dns          # noqa: E402
from pwtest import hostile as pw_hostile  # noqa: E402
from pwtest import logs as pw_logs        # noqa: E402
from pwtest import mailcheck              # noqa: E402
from pwtest import net                    # noqa: E402
from pwtest import postfix as pw_postfix  # noqa: E402
from pwtest import postgres as pw_postgres  # noqa: E402
from pwtest import relay as pw_relay      # noqa: E402

# Fixed loopback plan: each MX has its own address.
ADDR_PF_TLS = "127.0.0.2"
ADDR_PF_PLAIN = "127.0.0.3"
ADDR_PF_NOTIFY = "127.0.0.4"
ADDR_UNTRUSTED_CLIENT = "127.0.0.9"
HOSTILE_POOL = ["127.0.0.%d" % i for i in range(10, 40)]

_state = {"session_dir": None, "failed": []}


def _safe(nodeid):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-120:]


# -- reporting and log keeping ------------------------------------------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    pw_logs.mark_test_start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if not rep.failed:
        return
    _state["failed"].append(item.nodeid)
    base = _state["session_dir"] or tempfile.gettempdir()
    dest = os.path.join(base, "failed", _safe(item.nodeid))
    for name, (path, text) in pw_logs.save_excerpts(dest).items():
        tail = "\n".join(text.splitlines()[-40:])
        rep.sections.append(("log %s (%s, last 40 lines)" % (name, path), tail))


def pytest_terminal_summary(terminalreporter):
    if _state["failed"] and _state["session_dir"]:
        terminalreporter.write_line("postwarden test logs kept in %s" % _state["session_dir"])


def _passed(node):
    for when in ("setup", "call"):
        rep = getattr(node, "rep_" + when, None)
        if rep is None or not rep.passed:
            return False
    return True


@pytest.fixture(scope="session")
def session_dir():
    d = tempfile.mkdtemp(prefix="postwarden-it-")
    os.chmod(d, 0o755)  # Postfix's own user must traverse it
    _state["session_dir"] = d
    return d


def pytest_sessionfinish(session, exitstatus):
    # Here, after the last teardown was reported (a session fixture's finalizer runs
    # before the last test's teardown outcome is known).
    d = _state["session_dir"]
    if d and not _state["failed"] and exitstatus == 0:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workdir(request, session_dir):
    """A directory for this test's files; removed when the test passes."""
    d = os.path.join(session_dir, "tests", _safe(request.node.nodeid))
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    yield d
    # Fixtures that fail in their teardown (after the call passed) set pw_keep.
    if _passed(request.node) and not getattr(request.node, "pw_keep", False):
        shutil.rmtree(d, ignore_errors=True)


# -- CA and DNS ----------------------------------------------------------------

@pytest.fixture(scope="session")
def test_ca(session_dir):
    return pw_ca.TestCA(os.path.join(session_dir, "ca"))


@pytest.fixture
def dovecots(workdir, test_ca):
    """Start real Dovecot 2.3 servers by name: dovecots("src", users={...}, ...) takes
    pwtest.dovecot.start's options; every one is stopped after the test."""
    from pwtest import dovecot
    started = []

    def make(name, **kw):
        d = dovecot.start(workdir, name, ca=test_ca, **kw)
        started.append(d)
        return d
    yield make
    for d in started:
        dovecot.stop(d)


@pytest.fixture(scope="session")
def mx_port():
    """The one port every test MX listens on (the relay's remote_port)."""
    return net.free_port_on(["127.0.0.%d" % i for i in range(1, 41)])


@pytest.fixture(scope="session")
def knot(session_dir):
    """Knot DNS with signed (example.test, other.test), unsigned (insecure.test) and
    bogus (bogus.test) zones; knot.unbound_conf is the unbound.conf for libunbound."""
    k = pw_dns.Knot(os.path.join(session_dir, "knot"))
    pw_logs.register("knot", k.log_path)
    k.start()
    yield k
    k.stop()
    pw_logs.unregister("knot")


@pytest.fixture
def zones(knot, mx_port, pf_notify):
    """Zones for this test; the senders' domain other.test already points at pf_notify."""
    z = mailcheck.Zones(knot, mx_port)
    z.raw("other.test", "other.test.", "MX", "10 mx.other.test.")
    z.raw("other.test", "mx.other.test.", "A", pf_notify.addr)
    return z


# -- Postfix -------------------------------------------------------------------

def _receiver(session_dir, name, addr, port, hostname, cert):
    r = pw_postfix.Receiver(os.path.join(session_dir, name), addr, port, hostname, cert=cert)
    pw_logs.register(name, r.log_path)
    r.start()
    return r


@pytest.fixture(scope="session")
def pf_tls(session_dir, test_ca, mx_port):
    """Postfix MX with STARTTLS (certificate from the test CA) on 127.0.0.2:mx_port."""
    cert = test_ca.issue("mx1.example.test", "mx1.other.test", "mx1.insecure.test",
                         stem="pf-tls")
    r = _receiver(session_dir, "pf-tls", ADDR_PF_TLS, mx_port, "mx1.example.test", cert)
    yield r
    r.stop()
    pw_logs.unregister("pf-tls")


@pytest.fixture(scope="session")
def pf_plain(session_dir, mx_port):
    """Postfix MX without STARTTLS on 127.0.0.3:mx_port."""
    r = _receiver(session_dir, "pf-plain", ADDR_PF_PLAIN, mx_port, "mx-plain.example.test",
                  None)
    yield r
    r.stop()
    pw_logs.unregister("pf-plain")


@pytest.fixture(scope="session")
def pf_notify(session_dir, test_ca, mx_port):
    """Postfix MX with STARTTLS on 127.0.0.4:mx_port for the senders' domain
    (notifications arrive here)."""
    cert = test_ca.issue("mx.other.test", stem="pf-notify")
    r = _receiver(session_dir, "pf-notify", ADDR_PF_NOTIFY, mx_port, "mx.other.test", cert)
    yield r
    r.stop()
    pw_logs.unregister("pf-notify")


@pytest.fixture(scope="session")
def pf_sender(session_dir):
    """The sending Postfix on 127.0.0.1:<port>; point it with set_relayhost()."""
    port = net.free_port()
    s = pw_postfix.Sender(os.path.join(session_dir, "pf-sender"), "127.0.0.1", port,
                          relayhost="[127.0.0.1]:9")
    pw_logs.register("pf-sender", s.log_path)
    s.start()
    yield s
    s.stop()
    pw_logs.unregister("pf-sender")


# -- PostgreSQL ------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres(session_dir):
    """PostgreSQL 15 on 127.0.0.1:<port>, run as the postgres user, with a role and a
    database "postwarden": url(), password_file (PGPASSFILE format), psql(sql),
    restart(); see pwtest/postgres.py."""
    p = pw_postgres.Postgres(os.path.join(session_dir, "postgres"))
    pw_logs.register("postgres", p.log_path)
    try:
        p.start()
        yield p
    finally:
        p.stop()
        pw_logs.unregister("postgres")


def db_engine():
    """The engine the suite runs postwarden on: "sqlite" (default) or "postgresql"
    (PW_TEST_DB=postgresql: `make integration` runs the relay, key directory and key search
    tests, marked `engines`, a second time that way)."""
    return pw_database.suite_engine()


def _migrated_template(pg, session_dir):
    """A database with postwarden's schema, migrated once by `postwarden db migrate`, that
    every test's database is copied from (CREATE DATABASE ... TEMPLATE)."""
    url = pg.new_database(prefix="pwtemplate")
    d = os.path.join(session_dir, "db-template")
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "postwarden.conf")
    with open(conf, "w") as f:
        f.write("[server]\nstate_dir = %s\n\n[database]\nurl = %s\npassword_file = %s\n"
                % (os.path.join(d, "state"), url, pg.password_file))
    r = subprocess.run([pw_relay.binary(), "-c", conf, "db", "migrate"], capture_output=True,
                       text=True, env=pw_relay.daemon_env(), timeout=120)
    if r.returncode != 0:
        raise RuntimeError("postwarden db migrate failed: %s%s" % (r.stdout, r.stderr))
    return url


@pytest.fixture(scope="session", autouse=True)
def _database_engine(request, session_dir):
    """With PW_TEST_DB=postgresql every Relay (and every test that asks pwtest.database for
    a fresh database) gets a new, migrated database on the session's PostgreSQL server
    instead of its own SQLite file."""
    if db_engine() != "postgresql":
        yield
        return
    pg = request.getfixturevalue("postgres")
    template = _migrated_template(pg, session_dir)

    def fresh():
        url = pg.new_database(template=template)
        return pw_database.Database(url, pg.password_file, pg.local_url(url))
    pw_database.FACTORY = fresh
    yield
    pw_database.FACTORY = None


# -- Python SMTP servers ---------------------------------------------------------

@pytest.fixture
def smtp_server(mx_port, test_ca):
    """Factory: smtp_server(mode, addr=None, cert=None, port=None, hostname=None) starts a
    pwtest.hostile.SmtpServer (modes: sink notls 454 garbage tls10 tls11 weak anon inject)
    on the next free pool address at mx_port; all are stopped after the test."""
    started = []
    pool = list(HOSTILE_POOL)

    def make(mode, addr=None, cert=None, port=None, hostname=None, **kw):
        addr = addr or pool.pop(0)
        if addr in pool:
            pool.remove(addr)
        hostname = hostname or "mx-%s.example.test" % mode
        if cert is None and mode not in ("notls", "454", "garbage", "anon"):
            cert = test_ca.issue(hostname)
        s = pw_hostile.SmtpServer(addr, port or mx_port, mode=mode, cert=cert,
                                  hostname=hostname, **kw)
        s.start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# -- the relay ------------------------------------------------------------------

@pytest.fixture
def make_relay(request, workdir, knot, mx_port):
    """Factory: make_relay(start=True, **options) -> pwtest.relay.Relay.

    options are config keys as section_key=value (guarantee_default="on",
    relay_trusted_networks="127.0.0.1/32", guarantee_language="de", ...). Every relay is
    stopped after the test; sanitizer reports in its log fail the test."""
    relays = []

    def make(start=True, **options):
        n = len(relays) + 1
        d = os.path.join(workdir, "relay%d" % n)
        os.makedirs(d, exist_ok=True)
        r = pw_relay.Relay(d, mx_port, knot.unbound_conf, **options)
        relays.append(r)
        pw_logs.register("relay%d" % n, r.log_path)
        if start:
            r.start()
        return r

    yield make
    problems = []
    for i, r in enumerate(relays, 1):
        r.stop()
        pw_logs.unregister("relay%d" % i)
        log = r.log()
        if "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            problems.append("sanitizer report in %s" % r.log_path)
    if problems:
        request.node.pw_keep = True
        pytest.fail("; ".join(problems))


@pytest.fixture
def relay(make_relay):
    """A started relay with the default test options."""
    return make_relay()


# -- Dovecot ---------------------------------------------------------------------

@pytest.fixture
def make_dovecot(workdir, test_ca):
    """Factory: make_dovecot(name, tls=True, **options) -> a started pwtest.dovecot.Dovecot
    in workdir/name (options: users, master_users, imaps, separator, special_use, gmail,
    quota_bytes, no_capability, compress, doveadm_http; see pwtest/dovecot.py). With tls
    its certificate for options' hostname comes from the test CA. All are stopped after
    the test."""
    from pwtest import dovecot as pw_dovecot
    started = []

    def make(name="dovecot", tls=True, **options):
        d = pw_dovecot.start(workdir, name, ca=test_ca if tls else None, **options)
        started.append(d)
        return d

    yield make
    for d in started:
        pw_dovecot.stop(d)
