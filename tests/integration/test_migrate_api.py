"""Migration jobs under serve: POST /v1/migrations, GET progress, DELETE to cancel.

serve runs with [api] tokens and [migrate] destination pointing at a real Dovecot 2.3; the
source is another one. A job copies exactly (mailbox.compare: 0 differences); a job
cancelled mid-run and restarted by its id ends with 0 missing and 0 duplicates; a wrong
source password ends the job with the error and its advice; no token is 401; and after the
jobs neither the source address, the source user name nor any password is in the state
dir, the log or the database.
"""

import json
import time
import urllib.error
import urllib.request

import pytest

from pwtest import dovecot, mailbox
from pwtest.secrets import any_file_holds, secrets_found

SRC_USER, SRC_PW = "alice.old", "0ld-Pa55word!"
DST_USER, DST_PW = "alice", "n3w-Pa55word!"
HOST = "imap.example.test"       # the destination, named in the config
SRC_HOST = "old.example.test"    # the old provider: must not be kept anywhere
TOKEN = "tok-migrate"


@pytest.fixture
def servers(dovecots):
    """Dovecot servers; the source under the old provider's own name."""
    def make(name, **kw):
        if name == "src":
            kw.setdefault("hostname", SRC_HOST)
        return dovecots(name, **kw)
    return make


def serve(make_relay, test_ca, dst, **extra):
    opts = {"api_tokens": TOKEN, "api_rate_limit": "10000",
            "migrate_destination": "imaps://%s:%d" % (HOST, dst.imaps_port),
            "migrate_ca_file": test_ca.cert_path, "migrate_hosts": "%s=127.0.0.1, %s=127.0.0.1" % (HOST, SRC_HOST),
            "migrate_connections": "2", "migrate_allow_private": "on"}
    opts.update(extra)
    return make_relay(**opts)


def call(r, method, path, body=None, token=TOKEN):
    """(status, parsed JSON body) of one API request to relay r."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (r.api_port, path), data=data,
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        data = e.read()
        # libevent's own refusals (a body over the listener's bound) are not JSON
        return e.code, json.loads(data) if data.startswith(b"{") else None


def job_body(src, src_pw=SRC_PW, **more):
    b = {"kind": "mail", "source": "imaps://%s:%d" % (SRC_HOST, src.imaps_port),
         "source_user": SRC_USER, "source_password": src_pw,
         "destination_user": DST_USER, "destination_password": DST_PW}
    b.update(more)
    return b


def wait_job(r, job, until=("done", "partial", "failed", "cancelled", "interrupted"),
             timeout=300, pred=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        code, j = call(r, "GET", "/v1/migrations/%d" % job)
        assert code == 200, j
        if j["state"] in until or (pred and pred(j)):
            return j
        time.sleep(0.2)
    raise AssertionError("job %d still %s" % (job, j))


def compare(src, dst):
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    try:
        return mailbox.compare(s, d)
    finally:
        s.logout()
        d.logout()


def test_post_job_copies_exactly_and_get_reports_progress(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = servers("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=300, seed=3)
    s.logout()
    r = serve(make_relay, test_ca, dst)
    code, j = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 202 and j["state"] == "running", j
    done = wait_job(r, j["id"])
    assert done["state"] == "done", done
    assert done["messages_done"] == filled["messages"] == done["summary"]["messages_copied"]
    assert done["messages_total"] == filled["messages"]
    assert done["bytes_done"] == done["bytes_total"] > 0
    assert done["folders_done"] == done["folders_total"] >= len(done["folders"]) > 1
    assert {f["destination"] for f in done["folders"]} >= {"Sent"}
    assert "messages_per_second" in done
    assert compare(src, dst) == []
    # the list of the destination user's jobs has it; another user's list does not
    code, lst = call(r, "GET", "/v1/migrations?user=%s" % DST_USER)
    assert code == 200 and [x["id"] for x in lst["jobs"]] == [j["id"]]
    code, lst = call(r, "GET", "/v1/migrations?user=bob")
    assert code == 200 and lst["jobs"] == []
    code, _ = call(r, "GET", "/v1/migrations/%d" % (j["id"] + 100))
    assert code == 404


def test_cancel_mid_run_then_restart_by_id(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=2500, seed=5)
    s.logout()
    r = serve(make_relay, test_ca, dst, migrate_connections="1")
    code, j = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 202, j
    job = j["id"]
    wait_job(r, job, pred=lambda x: x["messages_done"] > 0)
    code, c = call(r, "DELETE", "/v1/migrations/%d" % job)
    assert code == 202 and c["state"] == "cancelling"
    cancelled = wait_job(r, job)
    assert cancelled["state"] == "cancelled", cancelled
    assert 0 < cancelled["messages_done"] < filled["messages"], cancelled
    assert compare(src, dst) != []          # control: the copy really was cut short
    # the same job again, by its id: the rest, nothing twice
    code, again = call(r, "POST", "/v1/migrations", job_body(src, job=job))
    assert code == 202 and again["id"] == job, again
    done = wait_job(r, job)
    assert done["state"] == "done", done
    assert compare(src, dst) == []          # 0 missing, 0 duplicates
    # a job of another destination user cannot be restarted by this one
    code, e = call(r, "POST", "/v1/migrations", job_body(src, job=job, destination_user="bob"))
    assert code == 404, e


def test_wrong_source_password_ends_with_advice(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_PW})
    r = serve(make_relay, test_ca, dst)
    code, j = call(r, "POST", "/v1/migrations", job_body(src, src_pw="wrong"))
    assert code == 202, j
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed"
    assert "old provider" in failed["error"] and "What to do" in failed["error"], failed
    assert "app password" in failed["error"]


def test_auth_body_checks_and_job_limit(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    mailbox.fill(s, count=1500, seed=9)
    s.logout()
    r = serve(make_relay, test_ca, dst, migrate_jobs="1", migrate_connections="1")
    assert call(r, "POST", "/v1/migrations", job_body(src), token=None)[0] == 401
    assert call(r, "GET", "/v1/migrations/1", token=None)[0] == 401
    assert call(r, "POST", "/v1/migrations", job_body(src), token="nope")[0] == 401
    code, e = call(r, "POST", "/v1/migrations", {"kind": "mail"})
    assert code == 400 and "source" in e["error"]
    code, e = call(r, "POST", "/v1/migrations", dict(job_body(src), extra=1))
    assert code == 400
    # a body over the bound is refused before it is parsed; a password over 8192 bytes too
    code, _ = call(r, "POST", "/v1/migrations", job_body(src, src_pw="x" * 60000))
    assert code == 413
    code, e = call(r, "POST", "/v1/migrations", job_body(src, src_pw="x" * 9000))
    assert code == 400 and "8192" in e["error"] and "xxxx" not in e["error"]
    # [migrate] jobs = 1: the second job at once gets 429 with Retry-After
    code, j = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 202
    code, e = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 429, e
    call(r, "DELETE", "/v1/migrations/%d" % j["id"])
    wait_job(r, j["id"])
    code, j2 = call(r, "POST", "/v1/migrations", job_body(src))   # control: room again
    assert code == 202, j2
    wait_job(r, j2["id"])


def test_no_source_address_user_or_password_is_kept(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    mailbox.fill(s, count=40, seed=2)
    s.logout()
    r = serve(make_relay, test_ca, dst)
    code, j = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 202
    assert wait_job(r, j["id"])["state"] == "done"
    code, j = call(r, "POST", "/v1/migrations", job_body(src, src_pw="Wr0ng-Secret!"))
    assert wait_job(r, j["id"])["state"] == "failed"
    r.stop()
    # the test's own [migrate] hosts names the old server
    found = secrets_found(r.dir, (SRC_PW, DST_PW, "Wr0ng-Secret!", SRC_USER, SRC_HOST),
                          skip=(r.conf_path,))
    assert not found, found
    # control: the jobs are recorded, under the destination user, and the log has them
    assert any_file_holds(r.state_dir, DST_USER)
    assert "event=migration_end" in r.log()


def test_job_of_a_dead_node_shows_interrupted_and_restarts(servers, make_relay, test_ca):
    src = servers("src", users={SRC_USER: SRC_PW})
    dst = servers("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=2500, seed=6)
    s.logout()
    r = serve(make_relay, test_ca, dst, migrate_connections="1")
    code, j = call(r, "POST", "/v1/migrations", job_body(src))
    assert code == 202
    job = j["id"]
    running = wait_job(r, job, pred=lambda x: x["messages_done"] > 0)
    assert running["state"] == "running" and running["node"]
    time.sleep(1.1)                 # the restarted node starts in a later second
    r.kill()                        # the node dies with the job running
    r.start()
    cut = wait_job(r, job, until=("interrupted",), timeout=30)
    assert cut["messages_done"] < filled["messages"], cut
    code, again = call(r, "POST", "/v1/migrations", job_body(src, job=job))
    assert code == 202, again
    done = wait_job(r, job)
    assert done["state"] == "done", done
    assert compare(src, dst) == []  # 0 missing, 0 duplicates
