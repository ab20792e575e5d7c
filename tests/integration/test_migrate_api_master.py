"""Migration jobs under serve with a destination master user ([migrate] master_user and
master_password_file).

The destination is a real Dovecot 2.3 with a master user; serve logs in there as
"USER*MASTER" with the password it reads from its file when the job starts, so the request
carries no password of the destination user. A job copies exactly (mailbox.compare: 0
differences) and the Dovecot log shows the master login; a node without master_user still
requires destination_password (400); a wrong master password ends the job as failed with
advice and copies nothing; a password file that other users may read is refused with an
error saying so, and once it is 0600 the same job runs (the file is read at each job's
start, no restart); after the jobs neither password is in the state dir or the log.
"""

import os
import subprocess

from pwtest import mailbox, net, relay
from pwtest.secrets import any_file_holds, secrets_found
from test_migrate_api import DST_PW as DST_OWN_PW
from test_migrate_api import (DST_USER, SRC_PW, SRC_USER, call, compare, job_body, serve,
                              servers, wait_job)

MASTER, MASTER_PW = "migrator", "M4ster-Pa55word!"
WRONG_MASTER_PW = "Wr0ng-M4ster!"
# DST_OWN_PW: the user's own destination password, which the job never gets

__all__ = ["servers"]     # the fixture, imported for pytest


def master_file(workdir, password, mode=0o600):
    d = os.path.join(workdir, "secrets")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "master.pw")
    with open(path, "w") as f:
        f.write(password + "\n")
    os.chmod(path, mode)
    return path


def master_serve(make_relay, test_ca, dst, path):
    return serve(make_relay, test_ca, dst, migrate_master_user=MASTER,
                 migrate_master_password_file=path)


def body_without_destination_password(src, **more):
    b = job_body(src, **more)
    del b["destination_password"]
    return b


def destination_empty(dst):
    d = dst.login(DST_USER, DST_OWN_PW)
    try:
        for name in mailbox.list_folders(d):
            typ, count = d.select(mailbox.quote(name), readonly=True)
            assert typ == "OK" and int(count[0]) == 0, name
    finally:
        d.logout()


def assert_not_kept(r, secrets):
    """No secret in any file of serve's directory (state dir, database, log)."""
    r.stop()
    found = secrets_found(r.dir, secrets)
    assert not found, found
    # control: the search reads the job's record and the log
    assert any_file_holds(r.state_dir, DST_USER)
    assert "event=migration_end" in r.log()


def test_master_user_job_needs_no_destination_password(servers, make_relay, test_ca,
                                                       workdir):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_OWN_PW}, master_users={MASTER: MASTER_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=150, seed=11)
    s.logout()
    # control: a node without a master user refuses a body without the user's password
    plain = serve(make_relay, test_ca, dst)
    code, e = call(plain, "POST", "/v1/migrations", body_without_destination_password(src))
    assert code == 400 and "destination_password" in e["error"], e
    plain.stop()
    r = master_serve(make_relay, test_ca, dst, master_file(workdir, MASTER_PW))
    code, e = call(r, "POST", "/v1/migrations",
                   body_without_destination_password(src, destination_user="a*b"))
    assert code == 400 and "'*'" in e["error"], e
    code, j = call(r, "POST", "/v1/migrations", body_without_destination_password(src))
    assert code == 202, j
    done = wait_job(r, j["id"])
    assert done["state"] == "done", done
    assert done["messages_done"] == filled["messages"]
    assert compare(src, dst) == []
    # the job never had the user's own password: Dovecot let it in as the master user
    # (Dovecot's log lines are written by its log process a moment later)
    net.wait_until(lambda: "Login: user=<%s>" % DST_USER in dst.log(), 10, what="the login")
    assert_not_kept(r, (MASTER_PW, DST_OWN_PW, SRC_PW))


def test_wrong_master_password_fails_with_advice(servers, make_relay, test_ca, workdir):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_OWN_PW}, master_users={MASTER: MASTER_PW})
    s = src.login(SRC_USER, SRC_PW)
    mailbox.fill(s, count=20, seed=12)
    s.logout()
    r = master_serve(make_relay, test_ca, dst, master_file(workdir, WRONG_MASTER_PW))
    code, j = call(r, "POST", "/v1/migrations", body_without_destination_password(src))
    assert code == 202, j
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed", failed
    error = failed["error"]
    assert error.startswith("destination:") and "What to do" in error, error
    assert "master user" in error, error
    assert failed["messages_done"] == 0
    # Dovecot refused the master password itself (its log process writes it a moment later)
    net.wait_until(lambda: "auth failed" in dst.log(), 10, what="Dovecot's refusal")
    destination_empty(dst)
    assert_not_kept(r, (WRONG_MASTER_PW, MASTER_PW, DST_OWN_PW, SRC_PW))


def test_master_password_file_readable_by_others_is_refused(servers, make_relay, test_ca,
                                                            workdir):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_OWN_PW}, master_users={MASTER: MASTER_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=20, seed=13)
    s.logout()
    path = master_file(workdir, MASTER_PW, mode=0o644)
    r = master_serve(make_relay, test_ca, dst, path)
    code, j = call(r, "POST", "/v1/migrations", body_without_destination_password(src))
    assert code == 202, j
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed", failed
    error = failed["error"]
    assert "master_password_file" in error and "other users" in error, error
    assert "0644" in error and "chmod 600" in error, error
    destination_empty(dst)
    assert "event=migration_end" in r.log() and "master_password_file" in r.log()
    # control: made private, the same file is read at the next job's start (no restart)
    os.chmod(path, 0o600)
    code, again = call(r, "POST", "/v1/migrations",
                       body_without_destination_password(src, job=j["id"]))
    assert code == 202 and again["id"] == j["id"], again
    done = wait_job(r, j["id"])
    assert done["state"] == "done", done
    assert done["messages_done"] == filled["messages"]
    assert compare(src, dst) == []
    assert_not_kept(r, (MASTER_PW, DST_OWN_PW, SRC_PW))


def test_master_user_without_its_password_file_is_a_config_error(tmp_path):
    for text in ("master_user = %s\n" % MASTER, "master_password_file = /nonexistent\n"):
        conf = tmp_path / "pw.conf"
        conf.write_text("[server]\nstate_dir = %s\n\n[migrate]\n%s" % (tmp_path / "s", text))
        r = subprocess.run([relay.binary(), "-c", str(conf), "user", "list"],
                           capture_output=True, text=True, timeout=60, env=relay.daemon_env())
        assert r.returncode == 1, r.stderr
        assert "master_user and master_password_file must be set together" in r.stderr
    # control: both set is a valid configuration (the file is read only by a job)
    conf.write_text("[server]\nstate_dir = %s\n\n[migrate]\nmaster_user = %s\n"
                    "master_password_file = /nonexistent\n" % (tmp_path / "s", MASTER))
    r = subprocess.run([relay.binary(), "-c", str(conf), "user", "list"],
                       capture_output=True, text=True, timeout=60, env=relay.daemon_env())
    assert r.returncode == 0, r.stderr
