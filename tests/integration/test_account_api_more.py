"""The account API's keys, migrations, compose help and certificates against real serve,
with a real Dovecot 2.3 as the IMAP login backend, Knot as the key directory's DNSSEC
primary (keys.test, RFC 2136 + TSIG) and the relay's Knot zones and Postfix MX hosts for the
recipients' domains.

Keys: an uploaded OpenPGP key and S/MIME certificate are listed with their DNS owner names,
WKD URL and "validates" (a SECURE answer holding the published record); a key for someone
else's address is refused; removing one takes it out of DNS; one user cannot remove
another's. Migrations: a user sees, reads and cancels only their own jobs. Compose help: a
DANE domain, a plaintext-only domain (stop under the guarantee, plaintext without it) and
addresses with keys (directory and DNS); 101 addresses are refused; the second ask is
answered from the cache. Certificates: public, the fingerprints of [relay] tls_cert.
"""

import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from pwtest import keys as pk
from pwtest.hostile import SilentMx
from pwtest import logs as pw_logs
from pwtest import net
from pwtest.keyzone import KeyZone
from pwtest.mailcheck import uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ZONE = "keys.test"
PW_A = "Pa55-anna-" + uniq("")
PW_B = "Pa55-bert-" + uniq("")


class Client:
    """HTTP to the account listener with its session cookie and CSRF token."""

    def __init__(self, port):
        self.port = port
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, raw=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {}
        if self.cookie:
            h["Cookie"] = "pw_session=" + self.cookie
        if self.csrf and method not in ("GET", "HEAD"):
            h["X-CSRF-Token"] = self.csrf
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        r.body = json.loads(text) if r.getheader("Content-Type") == "application/json" else text
        for v in r.headers.get_all("Set-Cookie") or []:
            if v.startswith("pw_session="):
                self.cookie = v.split(";", 1)[0].split("=", 1)[1] or None
        c.close()
        return r

    def sign_in(self, address, password):
        r = self.request("POST", "/v1/session", {"address": address, "password": password})
        assert r.status == 200, (r.status, r.body)
        self.csrf = r.body["csrf"]
        return self


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kz(session_dir):
    """Knot with the signed key zone keys.test that postwarden updates."""
    z = KeyZone(os.path.join(session_dir, "acct-keyzone"), zone=ZONE, mode="nsec")
    pw_logs.register("acct-keyzone", z.log_path)
    try:
        z.start()
        yield z
    finally:
        z.stop()
        pw_logs.unregister("acct-keyzone")


@pytest.fixture
def gpg():
    home = tempfile.mkdtemp(prefix="pwg", dir="/tmp")
    g = pk.GnuPG(home)
    yield g
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


def both_zones_unbound(workdir, knot, kz):
    """One unbound.conf for the relay's zones (example.test, insecure.test...) and keys.test."""
    path = os.path.join(workdir, "unbound-both.conf")
    with open(knot.unbound_conf) as f:
        text = f.read()
    # cache-max-ttl: the directory's records (TTL 60) are asked again, so a change is seen
    text += ("server:\n    cache-max-ttl: 1\n    trust-anchor-file: \"%s\"\nstub-zone:\n    name: \"%s\"\n"
             "    stub-addr: 127.0.0.1@%d\n" % (os.path.join(kz.dir, "ta.key"), ZONE, kz.port))
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.fixture
def users():
    return {"a": "anna-%s@%s" % (uniq(""), ZONE), "b": "bert-%s@%s" % (uniq(""), ZONE)}


@pytest.fixture
def acct(make_relay, make_dovecot, users, workdir, knot, kz, test_ca):
    """serve with the account listener, the key directory on kz and key search (local, dns);
    anna and bert have accounts and Dovecot logins."""
    kz.reset()
    dove = make_dovecot("login", tls=False, users={users["a"]: PW_A, users["b"]: PW_B})
    port = net.free_port("127.0.0.1")
    cert = test_ca.issue("mail.%s" % ZONE, stem="acct-smtp")
    opts = dict(kz.keydir_options())
    opts.update(account_listen="127.0.0.1:%d" % port,
                account_imap="imap://127.0.0.1:%d" % dove.port,
                account_insecure_cookie="on",
                dns_unbound_config=both_zones_unbound(workdir, knot, kz),
                keysearch_sources="local, dns",
                relay_tls_cert=cert.chain_path, relay_tls_key=cert.key_path,
                migrate_destination="imap://127.0.0.1:%d" % dove.port,
                migrate_allow_private="on", migrate_timeout="5s")
    r = make_relay(start=False, **opts)
    r.start()
    net.wait_port("127.0.0.1", port, timeout=20, proc=r.proc)
    for u in users.values():
        r.pw("user", "add", u, check=True)
    r.account_port = port
    r.smtp_cert = cert
    return r


def client(acct, users, who, pw):
    return Client(acct.account_port).sign_in(users[who], pw)


def wait_for(pred, timeout=20, what="condition"):
    return net.wait_until(pred, timeout, interval=0.3, what=what)


# -- keys --------------------------------------------------------------------------------------

def test_keys_upload_list_validate_remove(acct, users, gpg, kz):
    anna = client(acct, users, "a", PW_A)
    fpr = gpg.make_key(users["a"])
    r = anna.request("POST", "/v1/keys", {"key": gpg.export(fpr).decode()})
    assert r.status == 201, r.body
    assert r.body["fingerprint"] == fpr and r.body["addresses"] == [users["a"]]
    assert r.body["pending"] is False, r.body
    smime_pem, smime_der = pk.make_smime_cert(users["a"])
    r = anna.request("POST", "/v1/keys", {"key": smime_pem.decode()})
    assert r.status == 201 and r.body["type"] == "smime", r.body

    owner = pk.dane_owner(users["a"])
    lc_owner = pk.dane_owner(users["a"], lower=True)

    def listed():
        r = anna.request("GET", "/v1/keys")
        assert r.status == 200, r.body
        keys = {k["type"]: k for k in r.body["keys"]}
        dns = [p for k in keys.values() for p in k["published"] if p["kind"] == "dns"]
        return keys if dns and all(p["validates"] for p in dns) else None
    keys = wait_for(listed, what="both keys validating")
    pgp, smime = keys["openpgp"], keys["smime"]
    assert pgp["id"] == pgp["fingerprint"] == fpr and pgp["addresses"] == [users["a"]]
    names = {p["name"] for p in pgp["published"] if p["kind"] == "dns"}
    assert owner in names and (lc_owner == owner or lc_owner in names)
    local = users["a"].split("@")[0]
    wkd = [p["url"] for p in pgp["published"] if p["kind"] == "wkd"]
    assert wkd == ["https://openpgpkey.%s/.well-known/openpgpkey/%s/hu/%s?l=%s"
                   % (ZONE, ZONE, pk.wkd_hash(local), local)]
    smime_dns = [p for p in smime["published"] if p["kind"] == "dns"]
    assert [p["type"] for p in smime_dns] == ["SMIMEA"]
    assert smime["fingerprint"] == hashlib.sha256(smime_der).hexdigest().upper()
    # the control: a record in DNS that is not the key's does not validate it
    kz.edit(remove=[(owner, "OPENPGPKEY")],
            add=[(owner, 1, "OPENPGPKEY", base64.b64encode(b"\x99not-the-key").decode())])
    wait_for(lambda: not any(p.get("validates") for p in [
        q for k in anna.request("GET", "/v1/keys").body["keys"] if k["type"] == "openpgp"
        for q in k["published"] if q.get("name") == owner]), what="the wrong record seen")

    # removing it takes the records down and the key out of the list
    r = anna.request("DELETE", "/v1/keys/" + fpr)
    assert r.status == 200 and r.body["removed"] == 1, r.body
    assert kz.wait_rdatas(owner, "OPENPGPKEY", []) == []
    r = anna.request("GET", "/v1/keys")
    assert [k["type"] for k in r.body["keys"]] == ["smime"]
    r = anna.request("DELETE", "/v1/keys/" + fpr)
    assert r.status == 404, r.body


def test_keys_for_others_are_refused(acct, users, gpg, kz):
    anna = client(acct, users, "a", PW_A)
    bert = client(acct, users, "b", PW_B)
    stranger = gpg.make_key("stranger@other.test")
    r = anna.request("POST", "/v1/keys", {"key": gpg.export(stranger).decode()})
    assert r.status == 400 and "stranger@other.test" in r.body["error"], r.body
    assert r.body["code"] == "key_refused"
    # bert's key, even uploaded by anna, is refused: it carries none of her addresses
    bfpr = gpg.make_key(users["b"])
    r = anna.request("POST", "/v1/keys", {"key": gpg.export(bfpr).decode()})
    assert r.status == 400, r.body
    r = bert.request("POST", "/v1/keys", {"key": gpg.export(bfpr).decode()})
    assert r.status == 201, r.body
    # anna can neither see nor remove it
    assert anna.request("GET", "/v1/keys").body["keys"] == []
    r = anna.request("DELETE", "/v1/keys/" + bfpr)
    assert r.status == 404 and r.body["code"] == "key_not_yours", r.body
    assert [k["id"] for k in bert.request("GET", "/v1/keys").body["keys"]] == [bfpr]
    assert kz.rdatas(pk.dane_owner(users["b"]), "OPENPGPKEY") != []
    # bad bodies, no CSRF token, no session
    assert anna.request("POST", "/v1/keys", {"key": "not a key"}).status == 400
    assert anna.request("POST", "/v1/keys", {"nokey": 1}).status == 400
    assert anna.request("POST", "/v1/keys", raw="[").status == 400
    assert anna.request("DELETE", "/v1/keys/..%2f..%2fetc").status == 404
    anna.csrf = None
    assert anna.request("DELETE", "/v1/keys/" + bfpr).status == 403
    assert Client(acct.account_port).request("GET", "/v1/keys").status == 401


# -- migrations ---------------------------------------------------------------------------------

def test_migrations_are_the_users_own(acct, users):
    anna = client(acct, users, "a", PW_A)
    bert = client(acct, users, "b", PW_B)
    body = {"kind": "mail", "source": "imap://127.0.0.1:9", "source_user": "old",
            "source_password": "old-pw", "destination_password": PW_B}
    r = bert.request("POST", "/v1/migrations", body)
    assert r.status == 202 and r.body["state"] == "running", r.body
    job = r.body["id"]
    r = bert.request("GET", "/v1/migrations")
    assert r.status == 200 and [j["id"] for j in r.body["jobs"]] == [job]
    assert bert.request("GET", "/v1/migrations/%d" % job).status == 200
    # anna: not in her list, not readable, not cancellable, not restartable
    assert anna.request("GET", "/v1/migrations").body["jobs"] == []
    r = anna.request("GET", "/v1/migrations/%d" % job)
    assert r.status == 404 and r.body["code"] == "not_found", r.body    # the jobs' own body
    assert anna.request("DELETE", "/v1/migrations/%d" % job).status == 404
    r = anna.request("POST", "/v1/migrations", dict(body, job=job, destination_password=PW_A))
    assert r.status == 404, r.body
    # nor can she name bert as the destination
    r = anna.request("POST", "/v1/migrations", dict(body, destination_user=users["b"]))
    assert r.status == 400 and "own account" in r.body["error"], r.body
    assert r.body["code"] == "bad_request"
    # bert himself may cancel it
    r = bert.request("DELETE", "/v1/migrations/%d" % job)
    assert r.status == 202 and r.body["state"] == "cancelling", r.body


# -- compose help -------------------------------------------------------------------------------

def openpgpkey_rdata(gpg, fpr):
    return base64.b64encode(gpg.export(fpr, armor=False)).decode()


def status_of(c, addrs):
    r = c.request("POST", "/v1/recipients/status", {"recipients": addrs}, timeout=120)
    assert r.status == 200, r.body
    out = {x["address"]: x for x in r.body["recipients"]}
    assert [x["address"] for x in r.body["recipients"]] == addrs
    return out


def test_recipients_status(acct, users, zones, pf_tls, pf_plain, gpg):
    dane = zones.mx("example.test", uniq("dane"), pf_tls.addr, tlsa=[pf_tls.cert.tlsa_311()],
                    mx_host="mx1.example.test")
    plain = zones.mx("insecure.test", uniq("plain"), pf_plain.addr)
    tls = zones.mx("example.test", uniq("tls"), pf_tls.addr)  # its own MX name: no TLSA
    carol = "carol@" + dane
    cfpr = gpg.make_key(carol)
    zones.raw("example.test", pk.dane_owner(carol) + ".", "OPENPGPKEY",
              openpgpkey_rdata(gpg, cfpr))
    zones.publish()
    bert = client(acct, users, "b", PW_B)
    bfpr = gpg.make_key(users["b"])
    assert bert.request("POST", "/v1/keys", {"key": gpg.export(bfpr).decode()}).status == 201

    anna = client(acct, users, "a", PW_A)
    assert anna.request("PUT", "/v1/guarantee", {"enabled": True}).status == 200
    addrs = [carol, "dave@" + plain, "erin@" + tls, users["b"], "not an address"]
    t0 = time.monotonic()
    got = status_of(anna, addrs)
    first = time.monotonic() - t0
    assert got[carol]["transport"] == "dane", got[carol]
    assert "DANE" in got[carol]["reason"]
    assert got["erin@" + tls]["transport"] == "tls", got["erin@" + tls]
    assert got["dave@" + plain]["transport"] == "stop", got["dave@" + plain]
    assert "TLS" in got["dave@" + plain]["reason"]
    assert got["not an address"]["transport"] == "stop"
    # keys: carol's from DNSSEC-signed DNS, bert's from the provider's own directory
    assert got[carol]["key"] == {"type": "openpgp", "fingerprint": cfpr, "source": "dns",
                                 "trust": "dns-secure"}, got[carol]
    assert got[users["b"]]["key"]["fingerprint"] == bfpr
    assert got[users["b"]]["key"]["trust"] == "directory", got[users["b"]]
    assert got["dave@" + plain]["key"] is None

    # with the guarantee off the same domain goes without it: plaintext, from the cache
    assert anna.request("PUT", "/v1/guarantee", {"enabled": False}).status == 200
    t0 = time.monotonic()
    got = status_of(anna, addrs)
    second = time.monotonic() - t0
    assert got["dave@" + plain]["transport"] == "plaintext", got["dave@" + plain]
    assert "guarantee is off" in got["dave@" + plain]["reason"]
    assert got[carol]["transport"] == "dane"
    print("recipients status: first %.3f s, cached %.3f s" % (first, second))
    assert second < 1.0, (first, second)
    probes = [l for l in acct.log_lines("account_probe")]
    # one per domain (bert's keys.test too), none for the second ask
    assert len(probes) == 4, probes

    # bounds and rules
    r = anna.request("POST", "/v1/recipients/status",
                     {"recipients": ["u%d@%s" % (i, tls) for i in range(101)]})
    assert r.status == 400 and "100" in r.body["error"], r.body
    r = anna.request("POST", "/v1/recipients/status",
                     {"recipients": ["u%d@%s" % (i, tls) for i in range(100)]})
    assert r.status == 200 and len(r.body["recipients"]) == 100
    assert anna.request("POST", "/v1/recipients/status", raw="{").status == 400
    assert Client(acct.account_port).request("POST", "/v1/recipients/status",
                                             {"recipients": []}).status in (401, 403)



def test_recipients_status_does_not_wait_for_a_hanging_server(acct, users, zones, pf_tls,
                                                              mx_port):
    silent = SilentMx("127.0.0.40", mx_port)
    try:
        slow = zones.mx("example.test", uniq("slow"), silent.addr)
        fast = zones.mx("example.test", uniq("fast"), pf_tls.addr)
        zones.publish()
        anna = client(acct, users, "a", PW_A)
        addrs = ["x@" + slow, "y@" + fast]
        t0 = time.monotonic()
        got = status_of(anna, addrs)
        took = time.monotonic() - t0
        # answered after the 5 s wait, with what was known: the hanging domain is pending
        assert 4.5 < took < 9, took
        assert got["x@" + slow]["pending"] is True and got["x@" + slow]["transport"] == "stop"
        assert got["y@" + fast]["pending"] is False and got["y@" + fast]["transport"] == "tls"
        # the probe went on (the relay's command timeout ends it): a later ask has the verdict
        later = wait_for(lambda: (lambda g: g if not g["x@" + slow]["pending"] else None)(
            status_of(anna, addrs)), timeout=40, what="the slow probe's end")
        assert later["x@" + slow]["transport"] == "stop", later
        assert "reached" in later["x@" + slow]["reason"], later
    finally:
        silent.close()


# -- certificates -------------------------------------------------------------------------------

def test_certificates_without_sign_in(acct):
    r = Client(acct.account_port).request("GET", "/v1/certificates")
    assert r.status == 200, r.body
    certs = r.body["certificates"]
    assert len(certs) == 1 and certs[0]["used_for"] == "smtp", certs
    out = subprocess.run(["openssl", "x509", "-in", acct.smtp_cert.cert_path, "-noout",
                          "-fingerprint", "-sha256"], capture_output=True, text=True,
                         check=True).stdout
    assert certs[0]["sha256"] == out.strip().split("=", 1)[1]
    assert certs[0]["spki_sha256"] == acct.smtp_cert.tlsa_311().split()[-1]
    assert certs[0]["name"] == "mail.%s" % ZONE
    assert certs[0]["not_after"].endswith("Z")
