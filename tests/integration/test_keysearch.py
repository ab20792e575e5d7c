"""Key search (`postwarden keys search`, the HTTP API of serve) against real sources on
loopback: Knot DNS with OPENPGPKEY and SMIMEA records in a signed, an unsigned and a bogus
zone; nginx serving Web Key Directories over HTTPS (test CA) on 127.0.0.110:443; scripted
VKS and HKP keyservers that record every request and can sleep before answering.

Every key a source returns must pass the same checks: a valid user ID equal to the searched
address, not revoked, not expired; the answer carries only that user ID.
"""

import hashlib
import http.client
import json
import os
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pwtest import keys as pk
from pwtest import keyservers as pks
from pwtest import logs as pw_logs
from pwtest import relay as pw_relay
from pwtest import searchkeys as sk
from pwtest import searchrun as sr
from pwtest import wkdsite

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ZONE = "example.test"
WKD_ADDR = "127.0.0.110"     # nginx, every WKD site (443, and 80 for the redirect case)
SLOW_WKD_ADDR = "127.0.0.111"  # the scripted WKD server (443) that can sleep
VKS_ADDR = "127.0.0.112"     # scripted VKS over https (certificate for the address)
HKP_ADDR = "127.0.0.113"     # scripted HKP over plain http
SSRF_ADDR = "127.0.0.114"    # the server that must not be contacted

# DNS
MIXED = "Mixed.Case@example.test"       # OPENPGPKEY under the exact-case hash only
LOWER = "Lower.Only@example.test"       # OPENPGPKEY under the lowercased hash only
SMIME = "smime@example.test"            # SMIMEA 3 0 0
INSECURE = "plain@insecure.test"        # unsigned zone
BOGUS = "broken@bogus.test"             # zone whose signatures do not validate
DNS_REVOKED = "dnsrevoked@example.test"
# WKD
ADV = "wkd@adv.example.test"            # advanced method only
DIRECT = "wkd@direct.example.test"      # direct method only
REDIR = "wkd@redir.example.test"        # https -> http redirect
BIG = "wkd@big.example.test"            # an RSA-3072 key: over a 1K response limit
FOREIGN = "wkd@foreign.example.test"    # the key's user ID is another address
# keyservers
VKS_GOOD = "good@keys.example.test"
VKS_REVOKED = "revoked@keys.example.test"
VKS_EXPIRED = "expired@keys.example.test"
VKS_FOREIGN = "foreign@keys.example.test"
VKS_GARBAGE = "garbage@keys.example.test"
VKS_MISSING = "missing@keys.example.test"
# merge: DNS (secure) + WKD + VKS give the same key, HKP another one
MERGE = "merge@example.test"
# parallelism: WKD 300 ms, VKS 100 ms, HKP 200 ms
SLOW = "slow@slow.example.test"
# answering early: signed DNS at once, WKD / VKS / HKP after 100 / 200 / 300 ms (HKP has
# another key for the address)
EARLY = "early@slow.example.test"
# a lower-ranked source first: VKS (another key) after 20 ms, WKD after 200 ms, HKP after 800
LOWFIRST = "lowfirst@slow.example.test"
# SSRF: WKD for this domain points at SSRF_ADDR
PROBE = "probe@private.example.test"

ALL_NAMES = {
    "openpgpkey.adv.example.test": WKD_ADDR,
    "direct.example.test": WKD_ADDR,
    "openpgpkey.redir.example.test": WKD_ADDR,
    "openpgpkey.big.example.test": WKD_ADDR,
    "openpgpkey.foreign.example.test": WKD_ADDR,
    "openpgpkey.example.test": WKD_ADDR,
    "openpgpkey.slow.example.test": SLOW_WKD_ADDR,
    "openpgpkey.private.example.test": SSRF_ADDR,
    "private.example.test": SSRF_ADDR,
}


def uids_of(kf, data):
    """User IDs (mail addresses, lowercased) in key data as GnuPG reads them."""
    if isinstance(data, str):
        data = data.encode()
    out = kf.gpg.run("--with-colons", "--import-options", "show-only", "--import",
                     input=data, check=False).stdout.decode()
    res = []
    for line in out.splitlines():
        if line.startswith("uid:"):
            u = line.split(":")[9]
            res.append((u[u.rindex("<") + 1:-1] if "<" in u else u).lower())
    return res


class World:
    """Keys, zone records, WKD sites and keyservers shared by the tests of this module."""

    def __init__(self, base, knot, ca):
        self.dir = base
        self.knot = knot
        self.ca = ca
        self.kf = sk.KeyFactory()
        self.k = {}
        self.servers = []
        self.nginx = None

    def make_keys(self):
        kf, k = self.kf, self.k
        for a in (MIXED, LOWER, INSECURE, BOGUS, DIRECT, REDIR, VKS_GOOD, MERGE, SLOW, EARLY,
                  LOWFIRST):
            k[a] = kf.good(a)
        k["early-hkp"] = kf.good(EARLY, name="Impostor")
        k["lowfirst-vks"] = kf.good(LOWFIRST, name="Older upload")
        # Published with a second user ID: the answer must carry only the searched one.
        k[ADV] = kf.good(ADV, "Private <private@elsewhere.test>")
        k[BIG] = kf.good(BIG, algo="rsa3072")
        k[FOREIGN] = kf.good("someone@elsewhere.test")
        k[VKS_FOREIGN] = kf.good("other@keys.example.test")
        k[DNS_REVOKED] = kf.revoked(DNS_REVOKED)
        k[VKS_REVOKED] = kf.revoked(VKS_REVOKED)
        k[VKS_EXPIRED] = kf.expired(VKS_EXPIRED)
        k["merge-hkp"] = kf.good(MERGE, name="Impostor")
        k[PROBE] = kf.good(PROBE)
        assert kf.validity(k[VKS_REVOKED]) == "r" and kf.validity(k[VKS_EXPIRED]) == "e"
        self.smime_pem, self.smime_der = pk.make_smime_cert(SMIME)

    def zones(self):
        k = self.k
        signed = [
            (pk.dane_owner(MIXED), "OPENPGPKEY", k[MIXED].openpgpkey_rdata()),
            (pk.dane_owner(LOWER, lower=True), "OPENPGPKEY", k[LOWER].openpgpkey_rdata()),
            (pk.dane_owner(SMIME, label="_smimecert"), "SMIMEA",
             sk.smimea_rdata(self.smime_der)),
            (pk.dane_owner(DNS_REVOKED), "OPENPGPKEY", k[DNS_REVOKED].openpgpkey_rdata()),
            (pk.dane_owner(MERGE), "OPENPGPKEY", k[MERGE].openpgpkey_rdata()),
            (pk.dane_owner(EARLY), "OPENPGPKEY", k[EARLY].openpgpkey_rdata()),
        ]
        assert pk.dane_owner(MIXED) != pk.dane_owner(MIXED, lower=True)
        assert pk.dane_owner(LOWER) != pk.dane_owner(LOWER, lower=True)
        for name, addr in ALL_NAMES.items():
            signed.append((name + ".", "A", addr))
        self.knot.set_zone(ZONE, signed)
        self.knot.set_zone("insecure.test", [
            (pk.dane_owner(INSECURE), "OPENPGPKEY", k[INSECURE].openpgpkey_rdata())])
        self.knot.set_zone("bogus.test", [
            (pk.dane_owner(BOGUS), "OPENPGPKEY", k[BOGUS].openpgpkey_rdata())])

    def wkd(self):
        names = [n for n, a in ALL_NAMES.items() if a == WKD_ADDR]
        cert = self.ca.issue(*names, stem="wkd-sites")
        w = wkdsite.WkdNginx(os.path.join(self.dir, "nginx"), WKD_ADDR, cert)
        sk.wkd_files(w.site(["openpgpkey.adv.example.test"]), ADV, self.k[ADV].binary)
        sk.wkd_files(w.site(["direct.example.test"]), DIRECT, self.k[DIRECT].binary,
                     advanced=False)
        sk.wkd_files(w.site(["openpgpkey.redir.example.test"], redirect_http=True), REDIR,
                     self.k[REDIR].binary)
        sk.wkd_files(w.site(["openpgpkey.big.example.test"]), BIG, self.k[BIG].binary)
        sk.wkd_files(w.site(["openpgpkey.foreign.example.test"]), FOREIGN,
                     self.k[FOREIGN].binary)
        sk.wkd_files(w.site(["openpgpkey.example.test"]), MERGE, self.k[MERGE].binary)
        self.nginx = w
        pw_logs.register("ks-nginx", w.log_path)
        pw_logs.register("ks-nginx-access", w.access_log)
        w.start()

    def keyservers(self):
        k = self.k
        log = os.path.join(self.dir, "keyservers.log")
        open(log, "a").close()
        pw_logs.register("ks-keyservers", log)
        self.vks = self._server(VKS_ADDR, cert=pks.issue_cert(self.ca, VKS_ADDR), log=log)
        self.hkp = self._server(HKP_ADDR, log=log)
        self.slow_wkd = self._server(SLOW_WKD_ADDR, port=443,
                                     cert=self.ca.issue("openpgpkey.slow.example.test",
                                                        stem="wkd-slow"), log=log)
        self.ssrf = self._server(SSRF_ADDR, port=443,
                                 cert=self.ca.issue("openpgpkey.private.example.test",
                                                    "private.example.test",
                                                    stem="wkd-private"), log=log)
        self.ssrf_http = self._server(SSRF_ADDR, log=log)
        v = self.vks
        v.answer(VKS_GOOD, k[VKS_GOOD].armored)
        v.answer(VKS_REVOKED, k[VKS_REVOKED].armored)
        v.answer(VKS_EXPIRED, k[VKS_EXPIRED].armored)
        v.answer(VKS_FOREIGN, k[VKS_FOREIGN].armored)
        v.answer(VKS_GARBAGE, b"this is not an OpenPGP key\n" * 4)
        v.answer(VKS_MISSING, b"not found\n", status=404, content_type="text/plain")
        v.answer(MERGE, k[MERGE].armored)
        v.answer(SLOW, k[SLOW].armored, delay=0.1)
        self.hkp.answer(MERGE, k["merge-hkp"].armored)
        self.hkp.answer(SLOW, k[SLOW].armored, delay=0.2)
        self.slow_wkd.answer(SLOW, k[SLOW].binary, kind="wkd", delay=0.3,
                             content_type="application/octet-stream")
        # EARLY: the others answer late enough that an early answer is told from a
        # waiting one even on a loaded machine
        self.slow_wkd.answer(EARLY, k[EARLY].binary, kind="wkd", delay=0.4,
                             content_type="application/octet-stream")
        v.answer(EARLY, k[EARLY].armored, delay=0.5)
        self.hkp.answer(EARLY, k["early-hkp"].armored, delay=0.6)
        self.slow_wkd.answer(LOWFIRST, k[LOWFIRST].binary, kind="wkd", delay=0.2,
                             content_type="application/octet-stream")
        v.answer(LOWFIRST, k["lowfirst-vks"].armored, delay=0.02)
        self.hkp.answer(LOWFIRST, b"not found\n", status=404, content_type="text/plain",
                        delay=0.8)
        self.ssrf.answer(PROBE, k[PROBE].binary, kind="wkd",
                         content_type="application/octet-stream")
        self.ssrf_http.answer(VKS_GOOD, k[VKS_GOOD].armored)

    def _server(self, addr, port=None, cert=None, log=None):
        s = pks.KeyServer(addr, port, cert=cert, log_path=log).start()
        self.servers.append(s)
        return s

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.make_keys()
        self.zones()
        self.wkd()
        self.keyservers()
        self.hosts = sr.write_hosts(os.path.join(self.dir, "hosts"), ALL_NAMES)
        return self

    def stop(self):
        for s in self.servers:
            s.stop()
        if self.nginx:
            self.nginx.stop()
        for n in ("ks-nginx", "ks-nginx-access", "ks-keyservers"):
            pw_logs.unregister(n)
        self.kf.close()
        self.knot.clear()

    def reset(self):
        for s in self.servers:
            s.reset()


@pytest.fixture(scope="module")
def world(session_dir, knot, test_ca):
    binary = pw_relay.binary()
    assert os.access(binary, os.X_OK), "no postwarden binary at %s (make VARIANT=asan)" % binary
    w = World(os.path.join(session_dir, "keysearch"), knot, test_ca)
    try:
        w.start()
        yield w
    finally:
        w.stop()


@pytest.fixture
def searcher(request, world, workdir, knot):
    """Factory: searcher(start=False, **options) -> sr.Searcher configured for the world
    (test CA, private addresses allowed, short timeouts); stopped after the test, and a
    sanitizer report in its log fails the test."""
    made = []
    world.reset()

    def make(start=False, **options):
        opts = {"keysearch_ca_file": world.ca.cert_path,
                "keysearch_allow_private": "on",
                "keysearch_source_timeout": "3s",
                "keysearch_deadline": "5s",
                "keysearch_vks_servers": world.vks.url,
                "keysearch_hkp_servers": world.hkp.url,
                "api_tokens": "tok-good,tok-other",
                "api_rate_limit": "1000"}
        opts.update(options)
        d = os.path.join(workdir, "pw%d" % (len(made) + 1))
        os.makedirs(d, exist_ok=True)
        s = sr.Searcher(d, 25, knot.unbound_conf, hosts_file=world.hosts, **opts)
        made.append(s)
        pw_logs.register("postwarden%d" % len(made), s.log_path)
        if start:
            s.start()
        return s

    yield make
    bad = []
    for i, s in enumerate(made, 1):
        s.stop()
        pw_logs.unregister("postwarden%d" % i)
        if sr.sanitizer_report(s.log()):
            bad.append(s.log_path)
    if bad:
        request.node.pw_keep = True
        pytest.fail("sanitizer report in %s" % ", ".join(bad))


def only_key(j, addr, kf, want):
    """The single key of result j: it is want (a TestKey), and carries only addr."""
    ks = sr.keys_of(j)
    assert len(ks) == 1, "%s: expected one key, got %s" % (addr, json.dumps(j, indent=1))
    k = ks[0]
    assert sr.key_id(k) == want.fpr, "%s: got %s, published %s" % (addr, sr.key_id(k), want.fpr)
    assert uids_of(kf, sr.key_data(k)) == [addr.lower()], \
        "%s: the key returned carries user IDs %r" % (addr, uids_of(kf, sr.key_data(k)))
    return k


# -- the servers themselves ------------------------------------------------------------

def test_world_serves_what_the_tests_expect(world, knot):
    """Control: the records are served (SECURE / INSECURE / BOGUS as intended), nginx
    answers each site by name with the test CA's certificate, and the keyservers answer."""
    r = knot.unbound_host(pk.dane_owner(MIXED), "OPENPGPKEY")
    assert "(secure)" in r.stdout, r.stdout + r.stderr
    r = knot.unbound_host(pk.dane_owner(INSECURE), "OPENPGPKEY")
    assert "(insecure)" in r.stdout, r.stdout + r.stderr
    r = knot.unbound_host(pk.dane_owner(BOGUS), "OPENPGPKEY")
    assert "BOGUS" in r.stdout.upper(), r.stdout + r.stderr
    r = knot.unbound_host("openpgpkey.adv.example.test", "A")
    assert WKD_ADDR in r.stdout and "(secure)" in r.stdout, r.stdout
    ctx = ssl.create_default_context(cafile=world.ca.cert_path)
    local = "wkd"
    url = "/.well-known/openpgpkey/adv.example.test/hu/%s?l=%s" % (pk.wkd_hash(local), local)
    conn = http.client.HTTPSConnection(WKD_ADDR, 443, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((WKD_ADDR, 443)),
                                server_hostname="openpgpkey.adv.example.test")
    conn.request("GET", url, headers={"Host": "openpgpkey.adv.example.test"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == world.k[ADV].binary


# -- DNS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("addr", [MIXED, LOWER])
def test_dns_openpgpkey_found_secure(world, searcher, addr):
    """A record under the exact-case hash and one only under the lowercased hash are both
    found, from the signed zone (SECURE)."""
    s = searcher(keysearch_sources="dns")
    rc, j = s.search(addr, expect_rc=0)
    k = only_key(j, addr, world.kf, world.k[addr])
    assert list(sr.key_sources(k)) == ["dns"], sr.key_sources(k)
    assert sr.status_of(j, "dns") == ["found"], sr.statuses(j)
    assert sr.recommended_id(j) == world.k[addr].fpr


def test_dns_insecure_found_with_lower_trust(world, searcher):
    """An unsigned zone's key is found, at a lower trust than a signed zone's."""
    s = searcher(keysearch_sources="dns")
    _, sec = s.search(MIXED, expect_rc=0)
    _, ins = s.search(INSECURE, expect_rc=0)
    k_ins = only_key(ins, INSECURE, world.kf, world.k[INSECURE])
    k_sec = sr.keys_of(sec)[0]
    t_ins = sr.key_sources(k_ins)["dns"]
    t_sec = sr.key_sources(k_sec)["dns"]
    assert (t_sec, t_ins) == ("dns-secure", "dns-insecure"), (t_sec, t_ins)
    assert k_sec["verified"] is True and k_ins["verified"] is False, (k_sec, k_ins)


def test_dns_bogus_discarded(world, searcher):
    """A BOGUS answer (signatures that do not validate) yields no key; status bogus."""
    s = searcher(keysearch_sources="dns")
    rc, j = s.search(BOGUS, expect_rc=1)
    assert sr.keys_of(j) == [], j
    assert sr.status_of(j, "dns") == ["bogus"], sr.statuses(j)


def test_dns_smimea(world, searcher):
    """SMIMEA 3 0 0: the certificate comes back as PEM with --type smime, not with
    --type openpgp."""
    s = searcher(keysearch_sources="dns")
    _, j = s.search(SMIME, "--type", "smime", expect_rc=0)
    ks = sr.keys_of(j)
    assert len(ks) == 1, j
    cert = x509.load_pem_x509_certificate(sr.key_data(ks[0]).encode())
    assert cert.public_bytes(serialization.Encoding.DER) == world.smime_der
    assert sr.key_id(ks[0]) == hashlib.sha256(world.smime_der).hexdigest().upper()
    s.search(SMIME, "--type", "openpgp", expect_rc=1)


def test_dns_revoked_key_refused(world, searcher):
    s = searcher(keysearch_sources="dns")
    rc, j = s.search(DNS_REVOKED, expect_rc=1)
    assert sr.keys_of(j) == [], j


# -- WKD ------------------------------------------------------------------------------------

@pytest.mark.parametrize("addr", [ADV, DIRECT])
def test_wkd_found(world, searcher, addr):
    """Advanced method only, direct method only: both found; the extra user ID of the
    advanced one is not in the answer."""
    s = searcher(keysearch_sources="wkd")
    rc, j = s.search(addr, expect_rc=0)
    k = only_key(j, addr, world.kf, world.k[addr])
    assert list(sr.key_sources(k)) == ["wkd"], sr.key_sources(k)
    assert sr.status_of(j, "wkd") == ["found"], sr.statuses(j)


def test_wkd_redirect_to_http_refused(world, searcher):
    """openpgpkey.redir.example.test redirects to http://, where the key is: refused,
    and the plain server never sees a request."""
    s = searcher(keysearch_sources="wkd")
    rc, j = s.search(REDIR, expect_rc=1)
    assert sr.keys_of(j) == []
    assert sr.status_of(j, "wkd")[0] in ("error", "blocked", "none"), sr.statuses(j)
    hits = world.nginx.accesses_to("openpgpkey.redir.example.test")
    assert any(" 443 " in h and " 302 " in h for h in hits), hits
    assert not world.nginx.accesses_to("openpgpkey.redir.example.test", port=80), hits


def test_wkd_oversized_refused(world, searcher):
    """An RSA-3072 key (over 1 KiB) with max_response_size = 1K: refused; the same key
    with the default limit: found (so the size is the reason)."""
    assert len(world.k[BIG].binary) > 1024
    small = searcher(keysearch_sources="wkd", keysearch_max_response_size="1K")
    rc, j = small.search(BIG, expect_rc=1)
    assert sr.keys_of(j) == []
    assert sr.status_of(j, "wkd") == ["error"], sr.statuses(j)
    big = searcher(keysearch_sources="wkd")
    rc, j = big.search(BIG, expect_rc=0)
    only_key(j, BIG, world.kf, world.k[BIG])


def test_wkd_foreign_user_id_refused(world, searcher):
    s = searcher(keysearch_sources="wkd")
    rc, j = s.search(FOREIGN, expect_rc=1)
    assert sr.keys_of(j) == [], j
    assert any(FOREIGN.split("@")[1] in h for h in world.nginx.accesses()), \
        "the WKD site was not asked"


def test_wkd_untrusted_ca_refused(world, searcher):
    """Without the test CA in ca_file (system bundle), the WKD site's certificate fails."""
    s = searcher(keysearch_sources="wkd", keysearch_ca_file="")
    rc, j = s.search(ADV, expect_rc=1)
    assert sr.keys_of(j) == []
    assert sr.status_of(j, "wkd") == ["error"], sr.statuses(j)


# -- keyservers ------------------------------------------------------------------------------

@pytest.mark.parametrize("addr,status", [
    (VKS_REVOKED, ("none", "error")),
    (VKS_EXPIRED, ("none", "error")),
    (VKS_FOREIGN, ("none", "error")),
    # A 200 answer holding no OpenPGP data at all is the server misbehaving, not "no
    # key here": an operator must be able to tell a broken keyserver from an empty one.
    (VKS_GARBAGE, ("error",)),
    (VKS_MISSING, ("none",)),
])
def test_vks_refusals(world, searcher, addr, status):
    s = searcher(keysearch_sources="vks")
    rc, j = s.search(addr, expect_rc=1)
    assert sr.keys_of(j) == [], j
    assert sr.status_of(j, "vks")[0] in status, sr.statuses(j)
    assert len(world.vks.requests_for(addr, "vks")) == 1, world.vks.requests


def test_vks_and_hkp_good_key(world, searcher):
    s = searcher(keysearch_sources="vks")
    rc, j = s.search(VKS_GOOD, expect_rc=0)
    only_key(j, VKS_GOOD, world.kf, world.k[VKS_GOOD])
    assert world.vks.requests_for(VKS_GOOD, "vks")
    world.hkp.answer(VKS_GOOD, world.k[VKS_GOOD].armored)
    s = searcher(keysearch_sources="hkp")
    rc, j = s.search(VKS_GOOD, expect_rc=0)
    k = only_key(j, VKS_GOOD, world.kf, world.k[VKS_GOOD])
    assert list(sr.key_sources(k)) == ["hkp"]
    assert world.hkp.requests_for(VKS_GOOD, "hkp")


def test_source_timeout(world, searcher):
    """A keyserver that answers after 3 s with source_timeout = 1s: status timeout, and the
    search does not wait for it."""
    world.vks.answer("sleepy@keys.example.test", world.k[VKS_GOOD].armored, delay=3)
    s = searcher(keysearch_sources="vks", keysearch_source_timeout="1s")
    t = time.monotonic()
    rc, j = s.search("sleepy@keys.example.test", expect_rc=1)
    dt = time.monotonic() - t
    assert sr.status_of(j, "vks") == ["timeout"], sr.statuses(j)
    assert dt < 2.9, "search took %.2fs" % dt


# -- merging and ranking ----------------------------------------------------------------------

def test_merge_same_key_three_sources(world, searcher):
    """The same key from secure DNS, WKD and VKS appears once with three sources; HKP's
    different key for the address appears too, and the recommended key is the merged
    (highest-trust) one. (--complete: every source, not only what the answer needs.)"""
    s = searcher(keysearch_sources="dns, wkd, vks, hkp")
    rc, j = s.search(MERGE, "--complete", expect_rc=0)
    assert j["complete"] is True, j
    ks = {sr.key_id(k): k for k in sr.keys_of(j)}
    good, bad = world.k[MERGE].fpr, world.k["merge-hkp"].fpr
    assert set(ks) == {good, bad}, json.dumps(j, indent=1)
    assert set(sr.key_sources(ks[good])) == {"dns", "wkd", "vks"}, sr.key_sources(ks[good])
    assert set(sr.key_sources(ks[bad])) == {"hkp"}
    assert sr.recommended_id(j) == good
    for src in ("dns", "wkd", "vks", "hkp"):
        assert sr.status_of(j, src) == ["found"], sr.statuses(j)


# -- parallelism -------------------------------------------------------------------------------

def test_sources_asked_in_parallel(world, searcher):
    """WKD answers after 300 ms, VKS after 100 ms, HKP after 200 ms: through the API one
    search takes about 300 ms (asked one after another it would be 600 ms)."""
    s = searcher(start=True, keysearch_sources="wkd, vks, hkp", keysearch_cache_entries="0")
    # Warm up the process (first resolver and TLS setup) with another address.
    s.api("/v1/keys/search?email=%s" % VKS_MISSING, token="tok-good")
    world.reset()
    st, _, body, dt = s.api("/v1/keys/search?email=%s" % SLOW, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    k = only_key(j, SLOW, world.kf, world.k[SLOW])
    assert set(sr.key_sources(k)) == {"wkd", "vks", "hkp"}, sr.key_sources(k)
    starts = sorted(r.time for srv in (world.slow_wkd, world.vks, world.hkp)
                    for r in srv.requests_for(SLOW) if r.kind != "policy")
    assert len(starts) == 3, starts
    # Asked one after another, the third request would start after the first two answered
    # (at least 0.1 + 0.2 s); in parallel they start together, apart only by the loop's
    # connection set-ups, which a loaded machine slows.
    assert starts[-1] - starts[0] < 0.25, "requests started %.3fs apart" % (
        starts[-1] - starts[0])
    elapsed = {r["source"]: r["elapsed_ms"] for r in j["sources"]}
    print("parallel search: %.0f ms through the API; per source %r" % (dt * 1000, elapsed))
    assert 0.29 <= dt < 0.55, "search took %.3fs (one after another: 0.6 s)" % dt
    assert elapsed["vks"] >= 100 and elapsed["hkp"] >= 200 and elapsed["wkd"] >= 300, elapsed


# -- answering as soon as nothing better can come ---------------------------------------

ALL4 = "dns, wkd, vks, hkp"


def early_searcher(world, searcher, **opts):
    """serve with every source; warmed up (resolver, DNSSEC chain of example.test, TLS
    setup) with other addresses, so that the timed search measures only its own lookups."""
    s = searcher(start=True, keysearch_sources=ALL4, **opts)
    st, _, body, _ = s.api("/v1/keys/search?email=%s&complete=1" % MIXED, token="tok-good")
    assert st == 200, body
    world.reset()
    return s


def key_requests(world, addr):
    """{source: number of key requests for addr} at the scripted servers."""
    return {"wkd": len(world.slow_wkd.requests_for(addr, "wkd")),
            "vks": len(world.vks.requests_for(addr, "vks")),
            "hkp": len(world.hkp.requests_for(addr, "hkp"))}


def wait_requests(world, addr, want, timeout=3.0):
    end = time.monotonic() + timeout
    while key_requests(world, addr) != want and time.monotonic() < end:
        time.sleep(0.02)
    return key_requests(world, addr)


def test_early_answer_secure_dns_first(world, searcher):
    """Signed DNS has the key at once; WKD, VKS and HKP answer after 400, 500, 600 ms. None
    of them can rank above dns-secure, so the answer comes well before 400 ms: the
    dns-secure key, complete false, the three others pending (and still asked)."""
    s = early_searcher(world, searcher)
    st, _, body, dt = s.api("/v1/keys/search?email=%s" % EARLY, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    print("early answer: %.1f ms through the API" % (dt * 1000))
    assert dt < 0.3, "answer took %.3fs" % dt
    assert j["complete"] is False, j
    assert sr.recommended_id(j) == world.k[EARLY].fpr, j
    k = sr.keys_of(j)[0]
    assert sr.key_trust(k) == "dns-secure" and list(sr.key_sources(k)) == ["dns"], k
    assert sr.status_of(j, "dns") == ["found"], sr.statuses(j)
    for src in ("wkd", "vks", "hkp"):
        assert sr.status_of(j, src) == ["pending"], sr.statuses(j)
    # The others were asked all the same, and finish in the background.
    assert wait_requests(world, EARLY, {"wkd": 1, "vks": 1, "hkp": 1}) == \
        {"wkd": 1, "vks": 1, "hkp": 1}


def test_early_answer_control_complete(world, searcher):
    """Control: complete=1 waits for every source (600 ms and more) and lists them all:
    the same key from DNS, WKD and VKS, HKP's other key below it."""
    s = early_searcher(world, searcher)
    st, _, body, dt = s.api("/v1/keys/search?email=%s&complete=1" % EARLY, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    assert dt >= 0.6, "complete answer after %.3fs" % dt
    assert j["complete"] is True, j
    assert sr.recommended_id(j) == world.k[EARLY].fpr
    ks = {sr.key_id(k): k for k in sr.keys_of(j)}
    assert set(ks) == {world.k[EARLY].fpr, world.k["early-hkp"].fpr}, ks
    assert set(sr.key_sources(ks[world.k[EARLY].fpr])) == {"dns", "wkd", "vks"}
    for src in ("dns", "wkd", "vks", "hkp"):
        assert sr.status_of(j, src) == ["found"], sr.statuses(j)
    st, _, body, _ = s.api("/v1/public_keys?email=%s&complete=1" % EARLY, token="tok-good")
    pkj = json.loads(body)
    assert st == 200 and pkj["complete"] is True and len(pkj["results"]) == 1, pkj
    assert s.api("/v1/keys/search?email=%s&complete=yes" % EARLY, token="tok-good")[0] == 400


def test_early_answer_public_keys(world, searcher):
    """The webmail endpoint answers early too, and says so."""
    s = early_searcher(world, searcher)
    st, _, body, dt = s.api("/v1/public_keys?email=%s" % EARLY, token="tok-good")
    j = json.loads(body)
    assert st == 200 and dt < 0.3 and j["complete"] is False, (dt, j)
    assert len(j["results"]) == 1 and j["results"][0]["trust"] == "dns-secure", j


def test_lower_ranked_source_first_waits(world, searcher):
    """VKS answers first (20 ms) with a key; WKD, which ranks above VKS, answers after 200
    ms with another key: the answer waits for WKD and recommends WKD's key (never a
    lower-ranked key than necessary); HKP (404 after 800 ms) cannot beat it and is left
    pending."""
    s = early_searcher(world, searcher)
    st, _, body, dt = s.api("/v1/keys/search?email=%s" % LOWFIRST, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    assert 0.2 <= dt < 0.6, "answer after %.3fs" % dt
    assert sr.recommended_id(j) == world.k[LOWFIRST].fpr, j
    assert sr.key_trust(sr.keys_of(j)[0]) == "wkd"
    assert world.k["lowfirst-vks"].fpr in sr.ids(j), "VKS's key is listed below"
    assert sr.status_of(j, "hkp") == ["pending"] and j["complete"] is False, sr.statuses(j)


def test_after_early_answer_cache_is_complete(world, searcher):
    """After an early answer the other sources finish in the background and reach the cache:
    a second search 1 s later is answered from the cache alone, complete, with every
    source's key, and no source is asked a second time."""
    s = early_searcher(world, searcher)
    path = "/v1/keys/search?email=%s" % EARLY
    st, _, body, _ = s.api(path, token="tok-good")
    assert st == 200 and json.loads(body)["complete"] is False, body
    time.sleep(1.0)
    st, _, body, dt = s.api(path, token="tok-good")
    j = json.loads(body)
    assert st == 200 and j["complete"] is True, j
    assert dt < 0.3, "cached answer took %.3fs (asking again: 0.4 s or more)" % dt
    assert all(x.get("cached") for x in j["sources"]), j["sources"]
    assert set(sr.ids(j)) == {world.k[EARLY].fpr, world.k["early-hkp"].fpr}, j
    assert sr.recommended_id(j) == world.k[EARLY].fpr
    assert key_requests(world, EARLY) == {"wkd": 1, "vks": 1, "hkp": 1}
    # A third search is answered from the whole cached answer: the same body.
    st, _, body3, _ = s.api(path, token="tok-good")
    assert st == 200 and json.loads(body3) == j


def test_search_joins_lookups_in_flight(world, searcher):
    """A complete search right after an early answer, while WKD, VKS and HKP are still
    asked, joins those lookups instead of asking again: one request per source."""
    s = early_searcher(world, searcher)
    st, _, body, _ = s.api("/v1/keys/search?email=%s" % EARLY, token="tok-good")
    assert st == 200 and json.loads(body)["complete"] is False, body
    st, _, body, dt = s.api("/v1/keys/search?email=%s&complete=1" % EARLY, token="tok-good")
    j = json.loads(body)
    assert st == 200 and j["complete"] is True, j
    for src in ("dns", "wkd", "vks", "hkp"):
        assert sr.status_of(j, src) == ["found"], sr.statuses(j)
    assert key_requests(world, EARLY) == {"wkd": 1, "vks": 1, "hkp": 1}


def test_cli_answers_early_or_complete(world, searcher):
    """The command answers early too (and exits); --complete waits for every source."""
    s = searcher(keysearch_sources=ALL4)
    rc, j = s.search(EARLY, expect_rc=0)
    assert j["complete"] is False and sr.recommended_id(j) == world.k[EARLY].fpr, j
    assert sr.status_of(j, "hkp") == ["pending"], sr.statuses(j)
    rc, j = s.search(EARLY, "--complete", expect_rc=0)
    assert j["complete"] is True and sr.status_of(j, "hkp") == ["found"], j


# -- SSRF ------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["vks", "wkd"])
def test_private_addresses_blocked(world, searcher, source):
    """allow_private = off: a source on 127.0.0.x is not contacted (the server records
    nothing) and its status says blocked; on: it is contacted. (WKD: both the advanced
    and the direct host name point at the private address.)"""
    addr = VKS_GOOD if source == "vks" else PROBE
    server = world.ssrf_http if source == "vks" else world.ssrf
    opts = {"keysearch_sources": source, "keysearch_vks_servers": world.ssrf_http.url}
    off = searcher(keysearch_allow_private="off", **opts)
    rc, j = off.search(addr, expect_rc=1)
    assert sr.status_of(j, source) == ["blocked"], sr.statuses(j)
    assert server.key_requests() == [], server.key_requests()
    on = searcher(keysearch_allow_private="on", **opts)
    rc, j = on.search(addr, expect_rc=0)
    assert sr.status_of(j, source) == ["found"], sr.statuses(j)
    assert server.key_requests(), "the server was not contacted with allow_private = on"


# -- command line ----------------------------------------------------------------------------

def test_cli_exit_codes(world, searcher):
    s = searcher(keysearch_sources="vks")
    assert s.pw("keys", "search", VKS_GOOD).returncode == 0
    assert s.pw("keys", "search", VKS_MISSING).returncode == 1
    assert s.pw("keys", "search").returncode == 2
    assert s.pw("keys", "search", VKS_GOOD, "--type", "nonsense").returncode == 2
    assert s.pw("keys", "search", "not-an-address").returncode == 2


# -- the API ------------------------------------------------------------------------------------

def test_api_authentication_and_json(world, searcher):
    s = searcher(start=True, keysearch_sources="dns, vks")
    path = "/v1/keys/search?email=%s" % MERGE
    assert s.api(path)[0] == 401
    assert s.api(path, token="tok-wrong")[0] == 401
    assert s.api(path, token="")[0] == 401
    st, hdrs, body, _ = s.api(path + "&complete=1", token="tok-good")
    assert st == 200, body
    assert "json" in hdrs.get("content-type", ""), hdrs
    j = json.loads(body)
    _, cli = s.search(MERGE, "--complete", expect_rc=0)
    assert sr.ids(j) == sr.ids(cli) == [world.k[MERGE].fpr]
    assert sr.recommended_id(j) == sr.recommended_id(cli)
    assert sr.key_sources(sr.keys_of(j)[0]) == sr.key_sources(sr.keys_of(cli)[0])
    assert set(sr.statuses(j)) == set(sr.statuses(cli)) == {"dns", "vks"}
    st, _, body, _ = s.api("/v1/keys/search?email=%s&type=smime" % SMIME, token="tok-other")
    assert st == 200 and len(sr.keys_of(json.loads(body))) == 1, body
    assert s.api("/v1/keys/search", token="tok-good")[0] == 400
    assert s.api("/v1/keys/search?email=nonsense", token="tok-good")[0] == 400


def test_api_public_keys_shape(world, searcher):
    s = searcher(start=True, keysearch_sources="dns")
    st, _, body, _ = s.api("/v1/public_keys?type=open_pgp&email=%s" % MIXED, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    assert set(j) == {"results", "complete"} and len(j["results"]) == 1, j
    assert j["complete"] is True, j
    r = j["results"][0]
    assert isinstance(r["verified"], bool) and r["verified"] is True, r
    assert uids_of(world.kf, r["content"]) == [MIXED.lower()]
    assert r["content"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----"), r["content"][:60]
    st, _, body, _ = s.api("/v1/public_keys?type=smime&email=%s" % SMIME, token="tok-good")
    assert st == 200
    r = json.loads(body)["results"]
    assert len(r) == 1 and r[0]["content"].startswith("-----BEGIN CERTIFICATE-----"), r
    st, _, body, _ = s.api("/v1/public_keys?type=open_pgp&email=%s" % BOGUS, token="tok-good")
    assert st in (200, 404) and json.loads(body).get("results", []) == [], body


def test_api_rate_limit(world, searcher):
    s = searcher(start=True, keysearch_sources="vks", api_rate_limit="5")
    path = "/v1/keys/search?email=%s" % VKS_GOOD
    codes = [s.api(path, token="tok-good")[0] for _ in range(5)]
    assert codes == [200] * 5, codes
    st, hdrs, _, _ = s.api(path, token="tok-good")
    assert st == 429 and "retry-after" in hdrs, (st, hdrs)
    # Per token: the other token is still served.
    assert s.api(path, token="tok-other")[0] == 200


def test_api_cache_positive_and_negative(world, searcher):
    s = searcher(start=True, keysearch_sources="vks")
    for addr, want in ((VKS_GOOD, 1), (VKS_MISSING, 0)):
        for _ in range(3):
            st, _, body, _ = s.api("/v1/keys/search?email=%s" % addr, token="tok-good")
            assert st == 200, body
            assert len(sr.keys_of(json.loads(body))) == want, body
        n = len(world.vks.requests_for(addr, "vks"))
        assert n == 1, "%s: the keyserver was asked %d times for 3 searches" % (addr, n)


def test_api_cache_disabled_asks_again(world, searcher):
    """Control for the cache test: cache_entries = 0 asks the keyserver every time."""
    s = searcher(start=True, keysearch_sources="vks", keysearch_cache_entries="0")
    for _ in range(3):
        assert s.api("/v1/keys/search?email=%s" % VKS_GOOD, token="tok-good")[0] == 200
    assert len(world.vks.requests_for(VKS_GOOD, "vks")) == 3


@pytest.mark.parametrize("level,logged", [("info", False), ("debug", True)])
def test_logs_and_searched_address(world, searcher, level, logged):
    probe = "logprobe7q@keys.example.test"
    world.vks.answer(probe, world.k[VKS_GOOD].armored)
    s = searcher(start=True, keysearch_sources="vks", server_log_level=level)
    st, _, body, _ = s.api("/v1/keys/search?email=%s" % probe, token="tok-good")
    assert st == 200
    assert world.vks.requests_for(probe), "the search did not reach the keyserver"
    s.stop()
    log = s.log()
    assert ("logprobe7q" in log) == logged, log[-3000:]


@pytest.mark.parametrize("addr", ["missing@adv.example.test", "nobody@nowkd.example.test"])
def test_wkd_no_key_is_none_and_cached(world, searcher, addr):
    """A domain that publishes no key for the address is "none", and that answer is
    cached like any negative one: (a) openpgpkey.<domain> exists and answers 404 (the
    draft: then the direct method is not used), (b) neither host name resolves (the
    domain has no WKD). A search that asks WKD again each time waits for it each time."""
    s = searcher(start=True, keysearch_sources="wkd")
    path = "/v1/keys/search?email=%s" % addr
    st, _, body, _ = s.api(path, token="tok-good")
    assert st == 200, body
    j = json.loads(body)
    assert sr.status_of(j, "wkd") == ["none"], sr.statuses(j)
    before = len(world.nginx.accesses())
    st, _, body, _ = s.api(path, token="tok-good")
    j = json.loads(body)
    assert sr.statuses(j)["wkd"][0].get("cached") is True, sr.statuses(j)
    assert len(world.nginx.accesses()) == before, "WKD asked again"


# -- the provider's own users -------------------------------------------------------------

def test_directory_answers_for_own_users_without_asking_outside(world, searcher, workdir):
    """A key published in this directory is the answer for that address: the directory is
    the authority for the provider's own users, so no outside source is asked (no keyserver
    learns whom a webmail user writes to) and the answer needs no network. A control
    address that is not in the directory shows the keyserver is asked otherwise."""
    own, stranger = "own@ourmail.test", VKS_GOOD
    key = world.kf.good(own)
    path = os.path.join(workdir, "own.asc")
    with open(path, "w") as f:
        f.write(key.armored)
    world.vks.answer(own, key.armored, kind="vks")
    s = searcher(keysearch_sources="vks, dns, local")
    s.pw("user", "add", own, check=True)
    s.pw("keys", "publish", own, path, check=True)

    rc, j = s.search(own, expect_rc=0)
    k = only_key(j, own, world.kf, key)
    assert list(sr.key_sources(k)) == ["local"], sr.key_sources(k)
    assert sr.key_trust(k) == "directory"
    assert sr.status_of(j, "vks") == ["none"] and sr.status_of(j, "dns") == ["none"], \
        sr.statuses(j)
    assert world.vks.requests_for(own) == [], "a keyserver was asked about our own user"

    rc, j = s.search(stranger, expect_rc=0)
    assert world.vks.requests_for(stranger, "vks"), "control: outside addresses go out"
    assert sr.status_of(j, "local") == ["none"]


def test_cached_answer_follows_the_directory(world, searcher, workdir):
    """A repeated search is answered from the cache, but the directory is asked every time:
    when the address becomes an account, and then publishes a key, the next search says so
    (the cached answer is not reused when the directory's answer differs)."""
    addr = "joiner@ourmail.test"
    key = world.kf.good(addr)
    world.vks.answer(addr, world.k[VKS_GOOD].armored)   # a key for another address: refused
    path = os.path.join(workdir, "joiner.asc")
    with open(path, "w") as f:
        f.write(key.armored)
    s = searcher(start=True, keysearch_sources="local, vks")
    q = "/v1/keys/search?email=%s" % addr

    def local_detail():
        st, _, body, _ = s.api(q, token="tok-good")
        assert st == 200, body
        j = json.loads(body)
        return [x["detail"] for x in j["sources"] if x["source"] == "local"][0], j

    for _ in range(3):      # asked, then cached, then the whole cached answer
        detail, j = local_detail()
        assert detail == "not an address of this provider", j
    assert len(world.vks.requests_for(addr, "vks")) == 1
    s.pw("user", "add", addr, check=True)
    detail, j = local_detail()
    assert detail == "no key published for this account", j
    assert sr.statuses(j)["vks"][0]["cached"] is True, j
    s.pw("keys", "publish", addr, path, check=True)
    detail, j = local_detail()
    assert sr.recommended_id(j) == key.fpr and sr.key_trust(sr.keys_of(j)[0]) == "directory", j
