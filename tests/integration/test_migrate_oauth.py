"""postwarden migrate mail from a source that logs in with an OAuth access token.

The source is a real Dovecot 2.3 whose oauth2 passdb checks every OAUTHBEARER and XOAUTH2
login against a token introspection endpoint the test runs on loopback (pwtest/oauth2.py:
active with the user's name for a known token, inactive otherwise); the destination is
another Dovecot. A valid token copies the mailbox exactly (mailbox.compare: 0
differences), with either mechanism and either introspection mode; an expired or unknown
token ends the job as failed with advice that says the token was refused, and nothing is
copied; the token is in neither the state dir (with the database) nor the output. The
same holds for a job started through serve's API with "source_token".
"""

import json
import os
import secrets
import subprocess

import pytest

from pwtest import dovecot, mailbox, net, oauth2, relay
from pwtest.secrets import any_file_holds, secrets_found
from test_migrate_api import call, serve, wait_job

SRC_USER, SRC_PW = "alice.old", "0ld-Pa55word!"
DST_USER, DST_PW = "alice", "n3w-Pa55word!"
HOST = "imap.example.test"
# tokens that look like real ones and occur nowhere else
VALID = "ya29.pwtest-valid-" + secrets.token_urlsafe(24)
EXPIRED = "ya29.pwtest-expired-" + secrets.token_urlsafe(24)
UNKNOWN = "ya29.pwtest-unknown-" + secrets.token_urlsafe(24)


@pytest.fixture
def introspection():
    s = oauth2.Introspection({VALID: SRC_USER, EXPIRED: None}).start()
    yield s
    s.stop()


def conf(workdir, test_ca):
    path = os.path.join(workdir, "pw.conf")
    with open(path, "w") as f:
        f.write("[server]\nstate_dir = %s/state\n\n[migrate]\nca_file = %s\n"
                "hosts = %s=127.0.0.1\nconnections = 2\nallow_private = on\n"
                % (workdir, test_ca.cert_path, HOST))
    return path


def migrate(cfg, src, dst, mech, token):
    """migrate mail with the token and the destination password on descriptors:
    (exit status, the done line, stdout, stderr)."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, token.encode() + b"\n")
    os.write(w2, DST_PW.encode() + b"\n")
    os.close(w1)
    os.close(w2)
    cmd = [relay.binary(), "-c", cfg, "migrate", "mail",
           "--from", "imaps://%s:%d" % (HOST, src.imaps_port), "--from-user", SRC_USER,
           "--oauth", mech, "--token-fd", str(r1),
           "--to", "imaps://%s:%d" % (HOST, dst.imaps_port), "--to-user", DST_USER,
           "--to-password-fd", str(r2), "--json"]
    try:
        p = subprocess.run(cmd, pass_fds=(r1, r2), capture_output=True, text=True,
                           timeout=300, env=relay.daemon_env())
    finally:
        os.close(r1)
        os.close(r2)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    done = lines[-1] if lines and lines[-1].get("event") == "done" else None
    return p.returncode, done, p.stdout, p.stderr


def source(dovecots, introspection, mode):
    return dovecots("src", users={SRC_USER: SRC_PW},
                   oauth2_introspection_url=introspection.url(),
                   oauth2_introspection_mode=mode)


def assert_not_kept(workdir, outputs, tokens):
    """No token in any file of the state dir (the database included) nor the output."""
    state = os.path.join(workdir, "state")
    found = secrets_found(state, tokens)
    found += [("output", t) for t in tokens for out in outputs if t in out]
    assert not found, found
    # control: the search reads what the job wrote (its record names the destination user)
    assert any_file_holds(state, DST_USER)


@pytest.mark.parametrize("mech,mode", [("oauthbearer", "post"), ("xoauth2", "get")])
def test_valid_token_copies_exactly(dovecots, introspection, workdir, test_ca, mech, mode):
    src = source(dovecots, introspection, mode)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=120, seed=17)
    s.logout()
    rc, done, out, err = migrate(conf(workdir, test_ca), src, dst, mech, VALID)
    assert rc == 0, err + out
    assert done["state"] == "done" and done["failed"] == 0, done
    assert done["messages_copied"] == filled["messages"]
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    try:
        assert mailbox.compare(s, d) == []
    finally:
        s.logout()
        d.logout()
    # the source really checked the token, and the login was the mechanism asked for
    assert VALID in introspection.tokens_asked()
    assert all(m == mode.upper() for m, _ in introspection.asked)
    # (Dovecot's log lines are written by its log process a moment later)
    net.wait_until(lambda: "user=<%s>, method=%s" % (SRC_USER, mech.upper()) in src.log(), 10,
                   what="the OAuth login in the source's log")
    assert_not_kept(workdir, (out, err), (VALID,))


@pytest.mark.parametrize("mech,token", [("oauthbearer", EXPIRED), ("xoauth2", EXPIRED),
                                        ("oauthbearer", UNKNOWN)],
                         ids=["oauthbearer-expired", "xoauth2-expired", "oauthbearer-unknown"])
def test_refused_token_fails_with_advice_and_copies_nothing(dovecots, introspection, workdir,
                                                           test_ca, mech, token):
    src = source(dovecots, introspection, "post")
    dst = dovecots("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    mailbox.fill(s, count=10, seed=4)
    s.logout()
    rc, done, out, err = migrate(conf(workdir, test_ca), src, dst, mech, token)
    assert rc == 1, err + out
    assert done["state"] == "failed" and done["messages_copied"] == 0, done
    error = done["error"]
    assert error.startswith("old provider:"), error
    assert "refused the OAuth access token" in error, error
    assert "What to do: the token was refused" in error and "new token" in error, error
    assert "app password" not in error, error      # a token is not a password
    # the refusal came from the introspection endpoint, not from a broken exchange
    assert token in introspection.tokens_asked()
    net.wait_until(lambda: "oauth2 failed" in src.log(), 10, what="the refusal in the log")
    # nothing copied: the destination has only the folders Dovecot makes itself, empty
    d = dst.login(DST_USER, DST_PW)
    try:
        for name in mailbox.list_folders(d):
            typ, count = d.select(mailbox.quote(dovecot.utf7_encode(name)), readonly=True)
            assert typ == "OK" and int(count[0]) == 0, name
    finally:
        d.logout()
    assert_not_kept(workdir, (out, err), (token,))


def test_api_job_with_a_token(dovecots, introspection, make_relay, test_ca):
    """The same through serve's API ("source_token"): a valid token copies exactly, a
    refused one fails with the token's advice, and neither token is in serve's files."""
    src = source(dovecots, introspection, "post")
    dst = dovecots("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=60, seed=23)
    s.logout()
    r = serve(make_relay, test_ca, dst)
    body = {"kind": "mail", "source": "imaps://%s:%d" % (HOST, src.imaps_port),
            "source_user": SRC_USER, "source_token": VALID, "oauth": "oauthbearer",
            "destination_user": DST_USER, "destination_password": DST_PW}
    code, j = call(r, "POST", "/v1/migrations", body)
    assert code == 202, j
    done = wait_job(r, j["id"])
    assert done["state"] == "done" and done["messages_done"] == filled["messages"], done
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    try:
        assert mailbox.compare(s, d) == []
    finally:
        s.logout()
        d.logout()
    code, j = call(r, "POST", "/v1/migrations", dict(body, source_token=EXPIRED))
    assert code == 202, j
    failed = wait_job(r, j["id"])
    assert failed["state"] == "failed", failed
    assert "refused the OAuth access token" in failed["error"], failed
    assert "new token" in failed["error"], failed
    assert [t for t in introspection.tokens_asked() if t != VALID] == [EXPIRED]
    r.stop()
    found = secrets_found(r.dir, (VALID, EXPIRED))
    assert not found, found
    assert "event=migration_end" in r.log()     # control: the log was there to search
