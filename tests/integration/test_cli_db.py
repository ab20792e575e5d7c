"""`postwarden db migrate`, `db status`, `db copy --to URL` and `postwarden status`, on SQLite
and on the session's PostgreSQL 15: the schema versions each command reports, serve's refusal
of an old PostgreSQL schema, a copy of a running SQLite installation (accounts with aliases,
published keys with pending DNS names, held and deferred messages, nodes and leases) compared
row by row and column by column with the source, serve running on the copy, and the password
kept out of every output."""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

from pwtest import keys as pk
from pwtest import net
from pwtest.mailcheck import message, rcpt_states, sender_addr, uniq
from pwtest.relay import Relay, binary, daemon_env

SCHEMA = 10         # the program's schema version (src/core/schema.c)
UNREACHABLE_MX = "127.0.0.250"    # nothing listens there
TABLES = {"accounts", "addresses", "messages", "recipients", "keydir_keys", "keydir_pending",
          "nodes", "leases", "ct_logs", "ct_findings", "ct_sightings", "ct_alerts",
          "ct_deliveries", "mig_jobs", "mig_folders", "acct_sessions", "acct_login_failures",
          "mta_sts_policies", "tlsrpt_counts", "tlsrpt_sent", "tls_history", "acct_notices"}


# -- helpers -----------------------------------------------------------------------

def sqlite_relay(workdir, name="pw", **options):
    """A Relay (not started) on its own SQLite file whatever engine the suite runs on."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "state", "postwarden.db")
    return Relay(d, 25, "/nonexistent", database_url="sqlite:" + path, **options)


def any_db_pgpass(postgres):
    """A password file for every database of the session's server: the fixture's names only
    its "postwarden" database, and libpq matches the database field too."""
    path = os.path.join(postgres.dir, "pgpass-any-db")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("%s:%d:*:%s:%s\n" % (postgres.host, postgres.port, postgres.user,
                                         postgres.password))
    return path


def pg_relay(workdir, postgres, url=None, name="pg", **options):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    return Relay(d, 25, "/nonexistent", database_url=url or postgres.new_database(),
                 database_password_file=any_db_pgpass(postgres), **options)


def pw_leak_checked(relay, *args):
    """Run a command with LeakSanitizer on (Relay.pw turns it off for serve's sake)."""
    env = daemon_env()
    env["ASAN_OPTIONS"] = "detect_leaks=1"
    r = subprocess.run([binary(), "-c", relay.conf_path] + list(args), capture_output=True,
                       text=True, env=env, timeout=60, cwd=relay.dir)
    assert "LeakSanitizer" not in r.stderr, r.stderr
    return r


def dbname(url):
    return url.rsplit("/", 1)[1]


def with_password(postgres, url):
    """The URL with the password written into it (what an operator should not do)."""
    return url.replace("://%s@" % postgres.user, "://%s:%s@" % (postgres.user,
                                                                 postgres.password))


def sqlite_path(relay):
    return relay.sections["database"]["url"][len("sqlite:"):]


def _norm(v):
    return "\\x" + v.hex() if isinstance(v, bytes) else v


def _sorted_rows(rows):
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def sqlite_tables(path):
    """{table: [row dicts]} of every table of an SQLite file, blobs as PostgreSQL's \\x hex."""
    con = sqlite3.connect(path)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = "
                                           "'table' AND name NOT LIKE 'sqlite_%'")]
        out = {}
        for t in names:
            cur = con.execute("SELECT * FROM %s" % t)
            cols = [c[0] for c in cur.description]
            out[t] = _sorted_rows([{c: _norm(v) for c, v in zip(cols, row)} for row in cur])
        return out
    finally:
        con.close()


def pg_tables(postgres, url):
    """{table: [row dicts]} of every table of a PostgreSQL database but the version's."""
    db = dbname(url)
    names = postgres.psql("SELECT table_name FROM information_schema.tables WHERE "
                          "table_schema = 'public' AND table_name <> 'postwarden_schema'",
                          dbname=db).split()
    return {t: _sorted_rows(json.loads(postgres.psql(
        "SELECT coalesce(json_agg(t), '[]') FROM %s t" % t, dbname=db))) for t in names}


def cli_view(relay):
    """What the CLI shows of accounts, keys and the queue."""
    keys = relay.pw_json("keys", "list")
    for k in keys:          # the pending names' next attempt moves with every failed try
        k.pop("next_attempt", None)
    queue = {m["id"]: (m["sender"], rcpt_states(m)) for m in relay.queue()}
    return {"users": relay.pw_json("user", "list"), "keys": keys, "queue": queue}


@pytest.fixture
def gpg():
    home = tempfile.mkdtemp(prefix="pwg", dir="/tmp")
    g = pk.GnuPG(home)
    yield g
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


def keydir_options():
    """A key directory whose DNS primary is not there: every publication stays pending
    with an error, as on a day the primary is down."""
    return {"keydir_dns_server": "127.0.0.1:%d" % net.free_port("127.0.0.1"),
            "keydir_zones": "keys.test", "keydir_tsig_name": "pw-test",
            "keydir_tsig_secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}


# -- migrate and status ------------------------------------------------------------------

def _assert_migrate_and_status(pw, engine, shown_url):
    st = pw.pw_json("db", "status")
    assert st == {"engine": engine, "url": shown_url, "schema_version": 0,
                  "program_schema_version": SCHEMA, "state": "needs migrate"}
    r = pw.pw("db", "status", check=True)
    assert "version 0, this program's %d: needs migrate" % SCHEMA in r.stdout
    assert "postwarden db migrate" in r.stdout
    r = pw.pw("db", "migrate", check=True)
    assert "schema version 0 -> %d" % SCHEMA in r.stdout, r.stdout
    assert pw.pw_json("db", "status")["state"] == "up to date"
    r = pw.pw("db", "migrate", check=True)
    assert "schema version %d, up to date" % SCHEMA in r.stdout, r.stdout
    r = pw.pw("db", "status", check=True)
    assert "engine:  %s" % engine in r.stdout and "up to date" in r.stdout


def test_migrate_and_status_on_sqlite(workdir):
    pw = sqlite_relay(workdir)
    _assert_migrate_and_status(pw, "sqlite", "sqlite:" + sqlite_path(pw))
    con = sqlite3.connect(sqlite_path(pw))
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA
    con.close()


def test_migrate_and_status_on_postgresql(workdir, postgres):
    url = postgres.new_database()
    pw = pg_relay(workdir, postgres, url)
    _assert_migrate_and_status(pw, "postgresql", url)
    assert postgres.psql("SELECT version FROM postwarden_schema", dbname=dbname(url)) == \
        str(SCHEMA)
    assert set(pg_tables(postgres, url)) == TABLES


def test_status_and_errors_never_show_the_password(workdir, postgres):
    url = postgres.new_database()
    pw = pg_relay(workdir, postgres, with_password(postgres, url))
    pw.set("database_password_file", "")
    for args in (("db", "status"), ("db", "status", "--json"), ("db", "migrate"),
                 ("status",), ("status", "--json")):
        r = pw.pw(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert postgres.password not in r.stdout + r.stderr, args
        assert url.replace("postgresql://", "") in r.stdout, (args, r.stdout)
    # Control: a wrong password fails, and the error shows neither.
    wrong = url.replace("://%s@" % postgres.user, "://%s:not-%s@" % (postgres.user,
                                                                   postgres.password))
    pw.set("database_url", wrong)
    pw.write_conf()
    r = pw.pw("db", "status")
    assert r.returncode == 1
    assert "password authentication failed" in r.stderr, r.stderr
    assert postgres.password not in r.stdout + r.stderr


def test_serve_refuses_an_old_postgresql_schema(workdir, postgres, make_relay):
    url = postgres.new_database()
    relay = make_relay(start=False, database_url=url,
                       database_password_file=any_db_pgpass(postgres))
    relay.pw("db", "migrate", check=True)
    # Back to version 2: what a database of the previous release looks like.
    postgres.psql("DROP TABLE acct_notices; DROP FUNCTION recipients_notice() CASCADE; "
                  "DROP TABLE tls_history; DROP TABLE tlsrpt_sent; DROP TABLE tlsrpt_counts; "
                  "DROP TABLE mta_sts_policies; ALTER TABLE messages DROP COLUMN requiretls; "
                  "DROP TABLE acct_login_failures; DROP TABLE acct_sessions; "
                  "DROP TABLE mig_folders; DROP TABLE mig_jobs; "
                  "DROP TABLE ct_deliveries; DROP TABLE ct_alerts; DROP TABLE ct_sightings; "
                  "DROP TABLE ct_findings; DROP TABLE ct_logs; "
                  "DROP TABLE nodes; DROP TABLE leases; DROP INDEX messages_node; "
                  "ALTER TABLE messages DROP COLUMN node; "
                  "UPDATE postwarden_schema SET version = 2", dbname=dbname(url))
    assert relay.pw_json("db", "status")["state"] == "needs migrate"
    r = subprocess.run([binary(), "-c", relay.conf_path, "serve"], capture_output=True,
                       text=True, env=daemon_env(), timeout=60, cwd=relay.dir)
    assert r.returncode != 0
    assert "schema version 2, this program needs %d: run `postwarden db migrate`" % SCHEMA \
        in r.stderr, r.stderr
    # Nothing was changed by the refusing serve.
    assert postgres.psql("SELECT version FROM postwarden_schema", dbname=dbname(url)) == "2"
    assert "nodes" not in pg_tables(postgres, url)
    # Other commands refuse the same way; status names the command too.
    r = relay.pw("status")
    assert r.returncode == 1 and "postwarden db migrate" in r.stderr
    # The operator's step, then serve starts.
    r = relay.pw("db", "migrate", check=True)
    assert "schema version 2 -> %d" % SCHEMA in r.stdout
    relay.start()
    assert relay.alive()
    assert set(pg_tables(postgres, url)) == TABLES


# -- copy ----------------------------------------------------------------------------

def _fill(relay, zones, smtp_server, gpg, workdir):
    """Accounts, keys and a held and a deferred message in a running relay's database."""
    relay.pw("user", "add", "anna@keys.test", "--alias", "Info@keys.test", check=True)
    relay.pw("user", "add", "bob@keys.test", check=True)
    sender = sender_addr()
    relay.pw("user", "add", sender, check=True)
    relay.pw("user", "guarantee", sender, "on", check=True)
    fpr = gpg.make_key("anna@keys.test", "Info@keys.test")
    with open(os.path.join(workdir, "anna.asc"), "wb") as f:
        f.write(gpg.export(fpr))
    out = relay.pw_json("keys", "publish", "anna@keys.test", os.path.join(workdir, "anna.asc"))
    assert out["pending"] is True, out
    pem, _ = pk.make_smime_cert("bob@keys.test")
    with open(os.path.join(workdir, "bob.pem"), "wb") as f:
        f.write(pem)
    relay.pw_json("keys", "publish", "bob@keys.test", os.path.join(workdir, "bob.pem"))

    held_dom = zones.mx("example.test", uniq("held"), smtp_server("notls").addr)
    zones.publish()
    held, later = "held@" + held_dom, "later@" + _unreachable_domain(zones)
    assert relay.send(sender, [held], message(sender, [held], "held")) == {}
    # a sender without an account: no guarantee, an MX that does not answer: deferred
    other = sender_addr()
    assert relay.send(other, [later], message(other, [later], "deferred")) == {}
    relay.wait_queue(lambda q: sorted(s for m in q for s in rcpt_states(m).values())
                     == ["deferred", "held"], timeout=60, what="a held and a deferred recipient")
    return other


def _unreachable_domain(zones):
    """A domain whose MX address has no server listening (connection refused)."""
    dom = zones.mx("example.test", uniq("later"), UNREACHABLE_MX)
    zones.publish()
    return dom


def _add_nodes_and_leases(path, now):
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO nodes VALUES ('node-a', ?, ?, 4242, 'test')", (now - 100, now - 2))
        con.execute("INSERT INTO nodes VALUES ('node-b', ?, ?, 4343, 'test')",
                    (now - 1000, now - 600))
        con.execute("INSERT INTO leases VALUES ('keydir', 'node-a', ?)", (now + 25,))
    con.close()


def _assert_status(relay, now):
    """The held message, the deferred one and the one accepted after the first copy."""
    st = relay.pw_json("status")
    q = st["queue"]
    assert q["messages"] == 3 and q["held_messages"] == 1, q
    assert q["recipients"]["held"] == 1 and q["recipients"]["deferred"] == 2, q
    assert q["recipients"]["queued"] == 0
    nodes = {n["name"]: n for n in st["nodes"]}
    assert nodes["node-a"]["stale"] is False and nodes["node-a"]["pid"] == 4242
    assert nodes["node-b"]["stale"] is True and nodes["node-b"]["age"] >= 600
    assert {"name": "keydir", "holder": "node-a", "expires": now + 25,
            "expired": st["time"] > now + 25} in st["leases"]
    # anna's and Info's DANE names, GnuPG's lower-cased info, bob's SMIMEA (no WKD here)
    assert st["keydir"]["pending"] == 4
    assert st["keydir"]["errors"] == st["keydir"]["pending"]
    assert st["database"]["schema_version"] == SCHEMA
    text = relay.pw("status", check=True).stdout
    assert "node-b" in text and "STALE" in text and "held by node-a" in text
    assert "3 messages, 1 held" in text and "deferred 2" in text
    return st


def test_copy_running_sqlite_installation_to_postgresql(workdir, postgres, make_relay, zones,
                                                        smtp_server, pf_notify, gpg):
    src = make_relay(start=False, **keydir_options())
    src.set("database_url", "sqlite:" + os.path.join(src.state_dir, "postwarden.db"))
    src.start()
    sender = _fill(src, zones, smtp_server, gpg, workdir)
    before = cli_view(src)

    # 1. The copy of the running installation.
    url_a = postgres.new_database()
    r = src.pw("db", "copy", "--to", url_a, "--password-file", any_db_pgpass(postgres))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "accounts        3 rows" in r.stdout and "addresses       4 rows" in r.stdout
    assert "messages        2 rows" in r.stdout and "recipients      2 rows" in r.stdout
    assert "keydir_keys     3 rows" in r.stdout, r.stdout
    assert "set [database] url = %s" % url_a in r.stdout
    assert "re-index" in r.stdout or "indexes every message of its spool" in r.stdout
    # A message accepted after the copy: only the spool knows it.
    late = "late@" + _unreachable_domain(zones)
    assert src.send(sender, [late], message(sender, [late], "after the copy")) == {}
    src.wait_queue(lambda q: len(q) == 3, what="the third message")
    src.stop()

    # 2. A copy of the stopped installation: every row of every table, every column.
    now = int(time.time())
    _add_nodes_and_leases(sqlite_path(src), now)
    url_b = postgres.new_database()
    r = src.pw("db", "copy", "--to", url_b, "--password-file", any_db_pgpass(postgres))
    assert r.returncode == 0, r.stdout + r.stderr
    source, target = sqlite_tables(sqlite_path(src)), pg_tables(postgres, url_b)
    assert set(source) == TABLES and set(target) == TABLES
    for t in sorted(TABLES):
        assert target[t] == source[t], t
        assert "%-15s %d row" % (t, len(source[t])) in r.stdout, (t, r.stdout)
    assert len(source["keydir_pending"]) == 4 and all(p["error"] for p in
                                                      source["keydir_pending"])
    # The identity sequences and the marks' generations went past the copied values
    # (without that, the next account would get id 1, taken).
    db_b = dbname(url_b)
    assert postgres.psql("SELECT nextval(pg_get_serial_sequence('accounts', 'id'))",
                         dbname=db_b) == str(max(a["id"] for a in source["accounts"]) + 1)
    assert postgres.psql("SELECT nextval(pg_get_serial_sequence('keydir_keys', 'id'))",
                         dbname=db_b) == str(max(k["id"] for k in source["keydir_keys"]) + 1)
    assert int(postgres.psql("SELECT nextval('keydir_gen')", dbname=db_b)) > \
        max(p["gen"] for p in source["keydir_pending"])
    # status on both engines.
    dst = pg_relay(workdir, postgres, url_b, name="pg-b", **keydir_options())
    _assert_status(src, now)
    _assert_status(dst, now)

    # 3. A second copy into a database that holds data is refused, and says nothing of the
    # password written into the URL.
    r = src.pw("db", "copy", "--to", with_password(postgres, url_b))
    assert r.returncode == 1
    assert "already holds data" in r.stderr, r.stderr
    assert postgres.password not in r.stdout + r.stderr
    assert pg_tables(postgres, url_b) == target
    # A target that cannot be reached is named without its password.
    bad = with_password(postgres, url_b).replace(":%d/" % postgres.port, ":1/")
    r = src.pw("db", "copy", "--to", bad)
    assert r.returncode == 1 and postgres.password not in r.stdout + r.stderr
    assert "127.0.0.1:1" in r.stderr, r.stderr

    # The other way, from PostgreSQL (a repeatable-read snapshot there) to a new SQLite
    # file: the same rows again.
    back = os.path.join(workdir, "back.db")
    r = dst.pw("db", "copy", "--to", "sqlite:" + back)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sqlite_tables(back) == source

    # 4. serve on the first copy: the message accepted after the copy is found in the
    # spool at start-up, beside the copied ones, with their states.
    sqlite_view = cli_view(src)
    src.set("database_url", url_a)
    src.set("database_password_file", any_db_pgpass(postgres))
    src.start()
    db_a = dbname(url_a)
    want = sorted(m["id"] for m in source["messages"])
    net.wait_until(lambda: sorted(postgres.psql("SELECT id FROM messages",
                                                dbname=db_a).split()) == want,
                   20, what="serve indexing the spool")
    (late_id,) = set(want) - set(before["queue"])
    assert "event=queue_recovered id=%s" % late_id in src.log()
    states = dict(l.split("|") for l in postgres.psql(
        "SELECT msg_id, state FROM recipients", dbname=db_a).splitlines())
    for qid, (_, rcpts) in before["queue"].items():
        assert states[qid] == list(rcpts.values())[0], (qid, states)
    assert states[late_id] in ("queued", "deferred")
    assert pg_tables(postgres, url_a)["accounts"] == source["accounts"]

    # 5. The accounts, keys and queue through the CLI on PostgreSQL.
    assert cli_view(dst) == sqlite_view
    view = cli_view(src)
    assert view["users"] == before["users"]
    # (serve retries the pending names at start-up: their error text is its latest)
    strip = lambda keys: [{k: v for k, v in x.items() if k != "error"} for x in keys]
    assert strip(view["keys"]) == strip(before["keys"])
    for qid, entry in before["queue"].items():
        assert view["queue"][qid] == entry
    assert view["queue"][late_id][0] == sender
    # The identity sequences went past the copied ids: new rows get new ones.
    src.pw("user", "add", "carl@keys.test", check=True)
    pem, _ = pk.make_smime_cert("carl@keys.test")
    with open(os.path.join(workdir, "carl.pem"), "wb") as f:
        f.write(pem)
    src.pw("keys", "publish", "carl@keys.test", os.path.join(workdir, "carl.pem"), check=True)
    ids = postgres.psql("SELECT a.id, k.id FROM accounts a JOIN keydir_keys k ON "
                        "k.account_id = a.id WHERE a.primary_addr = 'carl@keys.test'",
                        dbname=db_a)
    assert ids == "4|4", ids


def test_copy_refuses_the_configured_database_and_bad_usage(workdir):
    pw = sqlite_relay(workdir)
    assert pw_leak_checked(pw, "db", "migrate").returncode == 0
    r = pw_leak_checked(pw, "db", "copy", "--to", pw.sections["database"]["url"])
    assert r.returncode == 1 and "the target is the configured database" in r.stderr
    assert pw_leak_checked(pw, "db", "copy").returncode == 2
    assert pw_leak_checked(pw, "db", "copy", "--to").returncode == 2
    assert pw_leak_checked(pw, "db", "frobnicate").returncode == 2
    assert pw_leak_checked(pw, "status", "extra").returncode == 2
    r = pw_leak_checked(pw, "db", "copy", "--to", "mysql://x")
    assert r.returncode == 1 and "expected sqlite:PATH or postgresql://" in r.stderr
    # Control: a copy to a fresh SQLite file works.
    pw.pw("user", "add", "a@keys.test", "--alias", "b@keys.test", check=True)
    other = os.path.join(workdir, "copy.db")
    r = pw_leak_checked(pw, "db", "copy", "--to", "sqlite:" + other)
    assert r.returncode == 0 and "copied and verified" in r.stdout
    assert sqlite_tables(other) == sqlite_tables(sqlite_path(pw))
    assert len(sqlite_tables(other)["addresses"]) == 2
    for args in (("status",), ("status", "--json"), ("db", "status"), ("db", "status", "--json")):
        assert pw_leak_checked(pw, *args).returncode == 0, args


def test_copy_is_one_transaction_on_the_target(workdir, postgres):
    """A row the target refuses in the last table leaves no row of any table behind."""
    pw = sqlite_relay(workdir)
    pw.pw("user", "add", "a@keys.test", "--alias", "b@keys.test", check=True)
    con = sqlite3.connect(sqlite_path(pw))
    with con:
        con.execute("INSERT INTO leases VALUES ('keydir', 'node-a', 12345)")
    con.close()
    url = postgres.new_database()
    target = pg_relay(workdir, postgres, url)
    target.pw("db", "migrate", check=True)
    # Something the source holds that the target will refuse, in the last table copied.
    postgres.psql("ALTER TABLE leases ADD CONSTRAINT refuse CHECK (expires < 0)",
                  dbname=dbname(url))
    r = pw_leak_checked(pw, "db", "copy", "--to", url, "--password-file",
                        any_db_pgpass(postgres))
    assert r.returncode == 1
    assert "nothing copied" in r.stderr, r.stderr
    assert "accounts        1 row" in r.stdout      # copied before the refusal ...
    assert all(rows == [] for rows in pg_tables(postgres, url).values())   # ... and gone
    # Control: without the constraint the same copy goes through.
    postgres.psql("ALTER TABLE leases DROP CONSTRAINT refuse", dbname=dbname(url))
    r = pw_leak_checked(pw, "db", "copy", "--to", url, "--password-file",
                        any_db_pgpass(postgres))
    assert r.returncode == 0, r.stderr
    assert pg_tables(postgres, url) == sqlite_tables(sqlite_path(pw))


def test_status_with_serve_not_running(workdir):
    pw = sqlite_relay(workdir, server_node="here")
    pw.pw("user", "add", "x@keys.test", check=True)
    st = pw.pw_json("status")
    assert st["node"] == "here" and st["nodes"] == [] and st["leases"] == []
    assert st["queue"]["messages"] == 0 and st["queue"]["recipients"] == {
        "queued": 0, "deferred": 0, "held": 0}
    assert st["keydir"] == {"pending": 0, "errors": 0}
    assert st["database"]["engine"] == "sqlite"
    text = pw.pw("status", check=True).stdout
    assert "here" in text and "no heartbeat in the database" in text
    assert "leases:   none" in text
