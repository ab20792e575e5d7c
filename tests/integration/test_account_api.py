"""The account API ([account] listen) against real serve, with a real Dovecot 2.3 as the IMAP
login backend: sign-in by password and by SSO assertion, the session cookie and its rules
(CSRF, sign-out, idle timeout), the user's own data (me, guarantee, held messages and their
release, notifications), one user reaching for another's held message, the rate limit on
failed sign-ins, and that no password is left anywhere postwarden writes."""

import base64
import hashlib
import hmac
import socket
import threading
import http.client
import json
import os
import ssl
import subprocess
import time

import pytest

from pwtest import ca as pw_ca
from pwtest import net
from pwtest import nodes as pw_nodes
from pwtest.mailcheck import message, rcpt_states, uniq
from pwtest.relay import binary, daemon_env
from pwtest.secrets import secrets_found

pytestmark = pytest.mark.engines

SECRET = "s3cret-for-the-webmail-" + "x" * 16
PW_A = "Pa55-alice-%s" % uniq("")
PW_B = "Pa55-bob-%s" % uniq("")
JSON = {"Content-Type": "application/json"}


# -- a small client ------------------------------------------------------------------------

class Client:
    """HTTP to the account listener with one cookie jar (pw_session only)."""

    def __init__(self, port):
        self.port = port
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, csrf=True, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = "pw_session=" + self.cookie
        if csrf and self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        r.body = json.loads(text) if r.getheader("Content-Type") == "application/json" else text
        for v in r.headers.get_all("Set-Cookie") or []:
            if v.startswith("pw_session="):
                val = v.split(";", 1)[0].split("=", 1)[1]
                self.cookie = val or None
        c.close()
        return r

    def sign_in(self, address, password):
        r = self.request("POST", "/v1/session", {"address": address, "password": password})
        if r.status == 200:
            self.csrf = r.body["csrf"]
        return r

    def sso(self, assertion):
        r = self.request("POST", "/v1/session/sso", {"assertion": assertion})
        if r.status == 200:
            self.csrf = r.body["csrf"]
        return r


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def assertion(sub, exp, secret=SECRET):
    payload = b64u(json.dumps({"sub": sub, "exp": exp}).encode())
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return payload + "." + b64u(mac)


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def users():
    return {"a": "alice-%s@example.test" % uniq(""), "b": "bob-%s@example.test" % uniq("")}


@pytest.fixture
def dove(make_dovecot, users):
    return make_dovecot("login", tls=False, users={users["a"]: PW_A, users["b"]: PW_B})


@pytest.fixture
def make_acct(make_relay, dove, users, workdir):
    """A relay with the account listener; the two users have accounts."""
    def make(add_users=True, **options):
        port = net.free_port("127.0.0.1")
        www = os.path.join(workdir, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<!doctype html><title>settings</title>\n")
        opts = dict(account_listen="127.0.0.1:%d" % port,
                    account_imap="imap://127.0.0.1:%d" % dove.port,
                    account_sso_secret=SECRET, account_insecure_cookie="on",
                    account_www_dir=www)
        opts.update(options)
        r = make_relay(start=False, **opts)
        r.start()
        net.wait_port("127.0.0.1", port, timeout=20, proc=r.proc)
        for u in users.values() if add_users else ():
            r.pw("user", "add", u, check=True)
        r.account_port = port
        return r
    return make


@pytest.fixture
def acct(make_acct):
    return make_acct()


# -- sign-in -------------------------------------------------------------------------------

def test_password_sign_in_right_and_wrong(acct, users):
    c = Client(acct.account_port)
    r = c.sign_in(users["a"], "wrong-" + PW_A)
    assert r.status == 401 and "error" in r.body and c.cookie is None
    assert r.body["code"] == "wrong_password"       # for a page to say in its language
    assert c.request("GET", "/v1/me").status == 401
    r = c.sign_in(users["a"], PW_A)
    assert r.status == 200, r.body
    assert r.body["address"] == users["a"] and r.body["language"] == "en"
    assert len(r.body["csrf"]) == 43 and c.cookie and len(c.cookie) == 43
    me = c.request("GET", "/v1/me")
    assert me.status == 200 and me.body == {"address": users["a"], "aliases": [],
                                            "language": "en"}
    # GET /v1/session gives a reloaded page its CSRF token back
    s = c.request("GET", "/v1/session")
    assert s.status == 200 and s.body["csrf"] == c.csrf


IMAPS_NAME = "imap.provider.invalid"	# never resolves: reached through [account] imap_address


def test_imaps_sign_in_checks_certificate_against_ca_file_and_name(make_acct, make_dovecot,
                                                                  test_ca, users, workdir):
    d = make_dovecot("imaps", tls=True, hostname=IMAPS_NAME,
                     users={users["a"]: PW_A, users["b"]: PW_B})
    url = "imaps://%s:%d" % (IMAPS_NAME, d.imaps_port)
    r = make_acct(account_imap=url, account_ca_file=test_ca.cert_path,
                  account_imap_address="127.0.0.1")
    c = Client(r.account_port)
    assert c.sign_in(users["a"], "wrong-" + PW_A).status == 401
    ok = c.sign_in(users["a"], PW_A)
    assert ok.status == 200 and ok.body["address"] == users["a"], ok.body
    assert c.request("GET", "/v1/me").status == 200

    # a CA file without the server's issuer: 502, the password is never sent, and the
    # refusals are not counted as wrong passwords (login_failures 2 would answer 429)
    other = pw_ca.TestCA(os.path.join(workdir, "other-ca"), name="another CA")
    bad = make_acct(add_users=False, account_imap=url, account_ca_file=other.cert_path,
                    account_imap_address="127.0.0.1", account_login_failures="2")
    for _ in range(3):
        b = Client(bad.account_port).sign_in(users["a"], PW_A)
        assert b.status == 502 and "certificate" in b.body["error"], b.body
    assert "result=tls_error" in bad.log()

    # the right CA but a name the certificate does not carry: refused the same way
    wrong_name = make_acct(add_users=False, account_ca_file=test_ca.cert_path,
                           account_imap="imaps://other.provider.invalid:%d" % d.imaps_port,
                           account_imap_address="127.0.0.1")
    w = Client(wrong_name.account_port).sign_in(users["a"], PW_A)
    assert w.status == 502 and "certificate" in w.body["error"], w.body


def test_imap_address_must_be_an_ip_address(make_relay, workdir):
    r = make_relay(start=False, account_listen="127.0.0.1:%d" % net.free_port("127.0.0.1"),
                   account_imap="imaps://%s" % IMAPS_NAME,
                   account_imap_address="imap.example.test")
    p = r.pw("serve", check=False, timeout=20)
    assert p.returncode != 0 and "imap_address" in p.stderr, p.stderr


def test_sign_in_bad_bodies(acct, users):
    c = Client(acct.account_port)
    r = c.request("POST", "/v1/session", raw="not json")
    assert r.status == 400 and r.body["code"] == "bad_request"
    assert c.request("POST", "/v1/session", {"address": users["a"]}).status == 400
    assert c.request("POST", "/v1/session", {"address": "x", "password": "y"}).status == 400
    r = c.request("POST", "/v1/session", raw=json.dumps({"address": users["a"],
                                                         "password": "p" * 70000}))
    assert r.status == 413
    # a body not declared JSON (what a cross-site form can send) is refused
    body = json.dumps({"address": users["a"], "password": PW_A})
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        r = c.request("POST", "/v1/session", raw=body, headers={"Content-Type": ct})
        assert r.status == 415 and c.cookie is None, ct
        assert r.body["code"] == "json_required"
    assert c.request("POST", "/v1/session", raw=body, headers={
        "Content-Type": "application/json; charset=utf-8"}).status == 200


def test_session_cookie_flags(acct, make_acct, users):
    c = Client(acct.account_port)
    conn = http.client.HTTPConnection("127.0.0.1", acct.account_port, timeout=30)
    conn.request("POST", "/v1/session", body=json.dumps({"address": users["a"],
                                                         "password": PW_A}), headers=JSON)
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie")
    attrs = [a.strip() for a in cookie.split(";")]
    assert attrs[0].startswith("pw_session=") and "HttpOnly" in attrs
    assert "SameSite=Strict" in attrs and "Path=/" in attrs
    # insecure_cookie = on (plain-HTTP tests) leaves Secure off; by default it is set
    assert "Secure" not in attrs
    secure = make_acct(account_insecure_cookie="off")
    conn = http.client.HTTPConnection("127.0.0.1", secure.account_port, timeout=30)
    conn.request("POST", "/v1/session", body=json.dumps({"address": users["a"],
                                                         "password": PW_A}), headers=JSON)
    r = conn.getresponse()
    r.read()
    assert "Secure" in [a.strip() for a in r.getheader("Set-Cookie").split(";")]
    assert c.request("GET", "/v1/me").status == 401


def test_sso_right_expired_forged(acct, users):
    now = int(time.time())
    c = Client(acct.account_port)
    # a valid assertion for an address without an account opens nothing
    r = Client(acct.account_port).sso(assertion("nobody@example.test", now + 60))
    assert r.status == 403 and r.body["code"] == "no_account"
    r = c.sso(assertion(users["b"], now + 60))
    assert r.status == 200 and r.body["address"] == users["b"], r.body
    assert c.request("GET", "/v1/me").body["address"] == users["b"]
    for bad, why in ((assertion(users["b"], now - 5), "expired"),
                     (assertion(users["b"], now + 3600), "ahead"),
                     (assertion(users["b"], now + 60, secret="y" * 40), "signature"),
                     (assertion(users["b"], now + 60)[:-2] + "AA", "signature"),
                     ("garbage", "not valid")):
        d = Client(acct.account_port)
        r = d.sso(bad)
        assert r.status == 401 and why in r.body["error"], (bad, r.body)
        assert r.body["code"] == "sso_refused"
        assert d.cookie is None and d.request("GET", "/v1/me").status == 401
    # refused assertions are not counted against the client (the webmail signs everyone in)
    assert Client(acct.account_port).sso(assertion(users["b"], now + 60)).status == 200
    assert acct.database.value("SELECT count(*) FROM acct_login_failures") == 0


def test_csrf_missing_is_403(acct, users):
    c = Client(acct.account_port)
    assert c.sign_in(users["a"], PW_A).status == 200
    r = c.request("PUT", "/v1/guarantee", {"enabled": True}, csrf=False)
    assert r.status == 403 and r.body["code"] == "csrf"
    r = c.request("PUT", "/v1/guarantee", {"enabled": True},
                  headers={"X-CSRF-Token": "A" * 43}, csrf=False)
    assert r.status == 403
    assert c.request("GET", "/v1/guarantee").body["enabled"] is False
    # control: the right token changes it
    r = c.request("PUT", "/v1/guarantee", {"enabled": True})
    assert r.status == 200 and r.body["enabled"] is True


def test_sign_out(acct, users):
    c = Client(acct.account_port)
    assert c.sign_in(users["a"], PW_A).status == 200
    old = c.cookie
    assert c.request("DELETE", "/v1/session", csrf=False).status == 403
    r = c.request("DELETE", "/v1/session")
    assert r.status == 200 and c.cookie is None
    c.cookie = old
    assert c.request("GET", "/v1/me").status == 401
    assert acct.database.value("SELECT count(*) FROM acct_sessions") == 0


def test_idle_timeout(make_acct, users):
    r = make_acct(account_idle_timeout="3s")
    c = Client(r.account_port)
    assert c.sign_in(users["a"], PW_A).status == 200
    # used within the idle time it stays alive past the first 3 seconds
    for _ in range(3):
        time.sleep(1.2)
        assert c.request("GET", "/v1/me").status == 200
    time.sleep(4)
    assert c.request("GET", "/v1/me").status == 401


def test_session_lifetime(make_acct, users):
    r = make_acct(account_session_lifetime="3s")
    c = Client(r.account_port)
    assert c.sign_in(users["a"], PW_A).status == 200
    assert c.request("GET", "/v1/me").status == 200
    deadline = time.monotonic() + 10
    while c.request("GET", "/v1/me").status == 200:
        assert time.monotonic() < deadline
        time.sleep(0.5)


# -- the user's data -------------------------------------------------------------------------

def test_guarantee_on_off_and_off_for(acct, users):
    c = Client(acct.account_port)
    assert c.sign_in(users["a"], PW_A).status == 200
    g = c.request("GET", "/v1/guarantee").body
    assert g == {"enabled": False, "active": False, "off_until": None}
    assert c.request("PUT", "/v1/guarantee", {"enabled": True}).body == \
        {"enabled": True, "active": True, "off_until": None}
    now = int(time.time())
    g = c.request("PUT", "/v1/guarantee", {"enabled": False, "for": 3600}).body
    assert g["enabled"] is True and g["active"] is False
    assert now + 3590 <= g["off_until"] <= now + 3610
    # the relay sees the same setting
    out = acct.pw("user", "show", users["a"], check=True).stdout
    assert "off" in out.lower()
    assert c.request("PUT", "/v1/guarantee", {"enabled": False}).body == \
        {"enabled": False, "active": False, "off_until": None}
    for bad in ({"enabled": "yes"}, {"enabled": True, "for": 60}, {"enabled": False, "for": 5},
                {}):
        assert c.request("PUT", "/v1/guarantee", bad).status == 400, bad
    # b's setting is untouched
    d = Client(acct.account_port)
    assert d.sign_in(users["b"], PW_B).status == 200
    assert d.request("GET", "/v1/guarantee").body["enabled"] is False


def _held_message(r, zones, pf_plain, pf_notify, sender, subject):
    """A message from sender (guarantee on) to an MX without STARTTLS: held."""
    plain = zones.mx("insecure.test", uniq("aplain"), pf_plain.addr)
    zones.publish()
    rcpts = ["h1@" + plain, "h2@" + plain]
    r.send(sender, rcpts, message(sender, rcpts, subject))
    r.wait_queue(lambda q: any(x["sender"] == sender and
                               set(rcpt_states(x).values()) == {"held"} for x in q),
                 timeout=60, what="held recipients")
    ids = [x["id"] for x in r.queue() if x["sender"] == sender]
    return ids[-1], rcpts


def test_held_list_release_and_another_users_message(acct, users, zones, pf_plain,
                                                    pf_notify):
    a, b = users["a"], users["b"]
    acct.pw("user", "guarantee", a, "on", check=True)
    acct.pw("user", "guarantee", b, "on", check=True)
    id_a, rcpts = _held_message(acct, zones, pf_plain, pf_notify, a, "Quarterly report")
    # RFC 2047 encoded words, folded, in two charsets: shown decoded and joined
    id_b, _ = _held_message(acct, zones, pf_plain, pf_notify, b,
                            "=?UTF-8?Q?Bob=E2=80=99s_?=\r\n =?ISO-8859-1?B?bm90ZSBhdXMgS/Zsbg==?=")

    ca, cb = Client(acct.account_port), Client(acct.account_port)
    assert ca.sign_in(a, PW_A).status == 200 and cb.sign_in(b, PW_B).status == 200
    held = ca.request("GET", "/v1/held").body["messages"]
    assert [m["id"] for m in held] == [id_a]
    m = held[0]
    assert m["subject"] == "Quarterly report" and abs(m["date"] - time.time()) < 300
    assert sorted(x["address"] for x in m["recipients"]) == sorted(rcpts)
    assert all(x["reason"] for x in m["recipients"]), m
    held_b = cb.request("GET", "/v1/held").body["messages"]
    assert [x["id"] for x in held_b] == [id_b]
    assert held_b[0]["subject"] == "Bob\u2019s note aus K\u00f6ln", held_b[0]["subject"]

    # b reaches for a's message: refused as if it did not exist, and nothing changes
    for path in ("/v1/held/%s/release" % id_a, "/v1/held/NOSUCHID/release"):
        r = cb.request("POST", path, {})
        assert r.status == 404, r.body
    r = cb.request("POST", "/v1/held/%s/release" % id_a, {"recipient": rcpts[0]})
    assert r.status == 404
    assert set(rcpt_states(next(x for x in acct.queue() if x["id"] == id_a)).values()) == \
        {"held"}
    # and releasing "all" of b's touches only b's
    assert cb.request("POST", "/v1/held/release", {}).body == {"released": 2}
    assert set(rcpt_states(next(x for x in acct.queue() if x["id"] == id_a)).values()) == \
        {"held"}

    # a releases one recipient, then the rest
    r = ca.request("POST", "/v1/held/%s/release" % id_a, {"recipient": rcpts[0]})
    assert r.status == 200 and r.body == {"released": 1}
    pf_plain.wait_for_message(rcpts[0], timeout=60)
    held = ca.request("GET", "/v1/held").body["messages"]
    assert [x["address"] for x in held[0]["recipients"]] == [rcpts[1]]
    r = ca.request("POST", "/v1/held/%s/release" % id_a, {})
    assert r.status == 200 and r.body == {"released": 1}
    pf_plain.wait_for_message(rcpts[1], timeout=60)
    assert ca.request("GET", "/v1/held").body == {"messages": []}
    r = ca.request("POST", "/v1/held/%s/release" % id_a, {})
    assert r.status == 404 and r.body["code"] == "held_not_yours"


def test_notifications(acct, users, zones, pf_plain, pf_notify):
    a, b = users["a"], users["b"]
    acct.pw("user", "guarantee", a, "on", check=True)
    id_a, rcpts = _held_message(acct, zones, pf_plain, pf_notify, a, "noted")
    ca, cb = Client(acct.account_port), Client(acct.account_port)
    assert ca.sign_in(a, PW_A).status == 200 and cb.sign_in(b, PW_B).status == 200
    n = ca.request("GET", "/v1/notifications?days=1").body["notifications"]
    assert sorted(x["recipient"] for x in n) == sorted(rcpts)
    assert all(x["kind"] == "held" and x["message"] == id_a and "held" in x["text"] and
               abs(x["date"] - time.time()) < 300 for x in n), n
    assert cb.request("GET", "/v1/notifications?days=7").body == {"notifications": []}
    assert ca.request("GET", "/v1/notifications?days=0").status == 400
    assert ca.request("GET", "/v1/notifications?days=x").status == 400
    assert len(ca.request("GET", "/v1/notifications").body["notifications"]) == 2
    # they stay once the message has left the queue: released, delivered, removed
    assert ca.request("POST", "/v1/held/%s/release" % id_a).body == {"released": 2}
    acct.wait_queue(lambda q: all(x["id"] != id_a for x in q), timeout=60,
                    what="the released message delivered and gone")
    # and a bounce (the domain does not exist) of a message that left the queue at once
    gone = "x@" + uniq("nx") + ".insecure.test"
    acct.send(a, [gone], message(a, [gone], "bounces"))
    n = net.wait_until(lambda: (lambda l: l if any(x["kind"] == "bounced" for x in l)
                                else None)(
        ca.request("GET", "/v1/notifications").body["notifications"]), 60, interval=0.5,
        what="the bounce among the notifications")
    assert all(x["sender"] != a for x in acct.queue()), acct.queue()
    assert sorted((x["kind"], x["recipient"]) for x in n) == \
        sorted([("held", r) for r in rcpts] + [("bounced", gone)]), n
    assert cb.request("GET", "/v1/notifications?days=7").body == {"notifications": []}


def test_endpoints_need_a_session(acct):
    c = Client(acct.account_port)
    for method, path in (("GET", "/v1/me"), ("GET", "/v1/guarantee"), ("GET", "/v1/held"),
                         ("GET", "/v1/notifications"), ("GET", "/v1/session"),
                         ("PUT", "/v1/guarantee"), ("POST", "/v1/held/release"),
                         ("DELETE", "/v1/session")):
        r = c.request(method, path, {} if method != "GET" else None)
        assert r.status == 401 and "error" in r.body, (method, path)
        assert r.body["code"] == "not_signed_in", (method, path)
    r = c.request("GET", "/v1/nothing")
    assert r.status == 404 and r.body == {"error": "no such endpoint", "code": "not_found"}
    assert c.request("PATCH", "/v1/me").status in (400, 405, 501)


def test_static_files(acct):
    c = Client(acct.account_port)
    r = c.request("GET", "/")
    assert r.status == 200 and b"<title>settings</title>" in r.body
    assert r.getheader("Content-Type").startswith("text/html")
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    for bad in ("/../postwarden.conf", "/%2e%2e/postwarden.conf", "/.hidden", "/missing.js"):
        assert c.request("GET", bad).status in (400, 404), bad


def test_https_listener_and_plain_http_refused_off_loopback(make_acct, make_relay, users,
                                                            test_ca):
    cert = test_ca.issue("account.example.test")
    r = make_acct(account_tls_cert=cert.chain_path, account_tls_key=cert.key_path,
                  account_insecure_cookie="off")
    ctx = ssl.create_default_context(cafile=test_ca.cert_path)
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", r.account_port, context=ctx, timeout=30)
    c.request("POST", "/v1/session", body=json.dumps({"address": users["a"],
                                                      "password": PW_A}), headers=JSON)
    resp = c.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 200 and body["address"] == users["a"]
    assert "Secure" in [a.strip() for a in resp.getheader("Set-Cookie").split(";")]
    # control: plain HTTP on that port is no answer
    with pytest.raises(Exception):
        p = http.client.HTTPConnection("127.0.0.1", r.account_port, timeout=5)
        p.request("GET", "/v1/me")
        p.getresponse().read()
    # plain HTTP on a non-loopback address is refused at start
    bad = make_relay(start=False, account_listen="0.0.0.0:%d" % net.free_port("127.0.0.1"))
    out = bad.pw("config")
    res = subprocess.run([binary(), "-c", bad.conf_path, "serve"], capture_output=True,
                         text=True, timeout=60, cwd=bad.dir, env=daemon_env())
    assert out.returncode == 0
    assert res.returncode != 0 and "plain HTTP only on a loopback address" in res.stderr


def test_slow_imap_server_blocks_nothing(make_acct, users):
    """An IMAP server that accepts and then says nothing: the sign-in waits in its thread
    while the loop keeps answering others; it ends with 502 after the IMAP timeout."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])   # kept open, never greeted
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = make_acct(account_imap="imap://127.0.0.1:%d" % lsock.getsockname()[1])
        other = Client(r.account_port)
        assert other.sso(assertion(users["b"], int(time.time()) + 60)).status == 200
        result = {}

        def sign_in():
            t0 = time.monotonic()
            result["resp"] = Client(r.account_port).sign_in(users["a"], PW_A)
            result["secs"] = time.monotonic() - t0
        st = threading.Thread(target=sign_in)
        st.start()
        time.sleep(1)
        lat = []
        for _ in range(10):
            t0 = time.monotonic()
            assert other.request("GET", "/v1/me").status == 200
            lat.append(time.monotonic() - t0)
        assert st.is_alive() and max(lat) < 1.0, lat
        st.join(60)
        assert result["resp"].status == 502 and 9 <= result["secs"] <= 30, result
        # a server that could not be asked is no failed sign-in: nothing counted
        assert r.database.value("SELECT count(*) FROM acct_login_failures") == 0
        print("GET /v1/me during a hanging sign-in: max %.1f ms" % (max(lat) * 1000))
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        lsock.close()


def test_sessions_and_failures_shared_by_two_nodes(make_acct, postgres, users):
    """Two nodes on one PostgreSQL database: a session opened on one is valid on the
    other, signing out on the other ends it on both, and failures count together."""
    url, pwfile = pw_nodes.shared_database(postgres)
    common = dict(database_url=url, database_password_file=pwfile,
                  account_login_failures="2", account_login_window="60s")
    a = make_acct(server_node="node-a", **common)
    b = make_acct(add_users=False, server_node="node-b", **common)
    ca = Client(a.account_port)
    assert ca.sign_in(users["a"], PW_A).status == 200
    cb = Client(b.account_port)
    cb.cookie, cb.csrf = ca.cookie, ca.csrf
    assert cb.request("GET", "/v1/me").body["address"] == users["a"]
    assert cb.request("PUT", "/v1/guarantee", {"enabled": True}).status == 200
    assert ca.request("GET", "/v1/guarantee").body["enabled"] is True
    assert cb.request("DELETE", "/v1/session").status == 200
    assert ca.request("GET", "/v1/me").status == 401
    # one failure on each node: the second node's count includes the first's
    assert Client(a.account_port).request(
        "POST", "/v1/session", {"address": users["b"], "password": "wrong"},
        headers={"X-Forwarded-For": "192.0.2.1"}).status == 401
    assert Client(b.account_port).request(
        "POST", "/v1/session", {"address": users["b"], "password": "wrong"},
        headers={"X-Forwarded-For": "192.0.2.2"}).status == 401
    r = Client(a.account_port).request(
        "POST", "/v1/session", {"address": users["b"], "password": PW_B},
        headers={"X-Forwarded-For": "192.0.2.3"})
    assert r.status == 429


# -- rate limit ------------------------------------------------------------------------------

def test_rate_limit_then_window_passes(make_acct, users):
    window = 30
    r = make_acct(account_login_failures="3", account_login_window="%ds" % window)
    c = Client(r.account_port)
    for _ in range(3):
        assert c.sign_in(users["a"], "wrong").status == 401
    blocked = c.sign_in(users["a"], PW_A)
    assert blocked.status == 429, blocked.body
    assert blocked.body["code"] == "rate_limited"
    retry = int(blocked.getheader("Retry-After"))
    assert 1 <= retry <= window
    assert c.cookie is None
    # the client address is blocked too, for another user's right password
    assert Client(r.account_port).sign_in(users["b"], PW_B).status == 429
    # behind a proxy on loopback the client is the last X-Forwarded-For entry: another
    # client of the proxy is not blocked, the blocked one still is
    other = Client(r.account_port)
    resp = other.request("POST", "/v1/session", {"address": users["b"], "password": PW_B},
                         headers={"X-Forwarded-For": "198.51.100.7, 192.0.2.10"})
    assert resp.status == 200, resp.body
    for _ in range(3):
        assert Client(r.account_port).request(
            "POST", "/v1/session", {"address": "x%d@example.test" % _, "password": "w"},
            headers={"X-Forwarded-For": "192.0.2.99"}).status == 401
    resp = Client(r.account_port).request(
        "POST", "/v1/session", {"address": users["b"], "password": PW_B},
        headers={"X-Forwarded-For": "192.0.2.99"})
    assert resp.status == 429
    # control: once the window has passed the right password works again
    time.sleep(retry + 1)
    ok = c.sign_in(users["a"], PW_A)
    assert ok.status == 200, ok.body
    assert c.request("GET", "/v1/me").status == 200


# -- no password kept ------------------------------------------------------------------------

def test_no_password_in_state_log_or_database(acct, users):
    c = Client(acct.account_port)
    assert c.sign_in(users["a"], "wrong-" + PW_A).status == 401
    assert c.sign_in(users["a"], PW_A).status == 200
    assert c.request("GET", "/v1/me").status == 200
    secrets = [PW_A.encode(), ("wrong-" + PW_A).encode(), c.cookie.encode()]
    time.sleep(0.5)
    assert secrets_found(acct.state_dir, secrets) == []
    log = acct.log().encode()
    assert not any(s in log for s in secrets)
    rows = acct.database.rows("SELECT * FROM acct_sessions") + \
        acct.database.rows("SELECT * FROM acct_login_failures")
    text = json.dumps(rows).encode()
    assert rows and not any(s in text for s in secrets)
    # the session row holds the id's SHA-256, not the id
    assert hashlib.sha256(c.cookie.encode()).hexdigest() in text.decode()
