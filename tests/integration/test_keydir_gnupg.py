"""The key directory seen by GnuPG: keys published with `postwarden keys publish` are found
by gpg through DANE (OPENPGPKEY, RFC 7929) and through the Web Key Directory.

The world of these tests lives in a network namespace of its own (pwtest.netns): Knot DNS
on 127.0.0.1:53 serves the DNSSEC-signed zone example.test, which postwarden updates by
RFC 2136 with a TSIG key, and nginx serves postwarden's wkd_dir over HTTPS as
https://openpgpkey.example.test/ (127.0.0.2:443) with a certificate from the test CA. gpg
and the dirmngr it starts run there too, with the test CA bind-mounted over the system CA
bundle in a private mount namespace, and look keys up from a fresh GNUPGHOME each time.

gpg hashes the lower-cased local-part for DANE (and WKD), so a key for a mixed-case address
must be published under that name too.
"""

import base64
import hashlib
import json
import os
import time

import pytest

from pwtest import database as pw_database
from pwtest import gnupg as pw_gnupg
from pwtest import logs as pw_logs
from pwtest import netns as pw_netns
from pwtest import relay as pw_relay
from pwtest import web as pw_web

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ZONE = "example.test"
WKD_HOST = "openpgpkey." + ZONE
WKD_ADDR = "127.0.0.2"

# address -> (key algorithm, extra user IDs the key carries besides the address)
ADDRESSES = {
    "alice@example.test": ("ed25519", ["Alice Private <alice@private.test>"]),
    # An RSA key makes a record over 512 bytes: gpg asks over UDP without EDNS0, gets a
    # truncated answer and asks again over TCP.
    "bob@example.test": ("rsa2048", []),
    "Carol.Mixed@example.test": ("ed25519", ["carol@private.test"]),
    "dave@example.test": ("ed25519", []),   # carries a third-party certification
}
CERTIFIED = "dave@example.test"
CERTIFIER = "Certifier <certifier@other.test>"
# Published by hand (not through postwarden) for the control test.
HANDPLACED = "handplaced@example.test"


def _mbox(uid):
    """The mail address in a user ID ("Name <a@b>" or "a@b")."""
    if "<" in uid and uid.endswith(">"):
        return uid[uid.rindex("<") + 1:-1]
    return uid


class KeyDirWorld:
    """Namespace, Knot, nginx, the publishing GnuPG home and postwarden's config."""

    def __init__(self, basedir, test_ca):
        self.dir = basedir
        self.ca = test_ca
        self.ns = None
        self.knot = None
        self.web = None
        self.publisher = None
        self.docroot = os.path.join(basedir, "wkd")
        self.conf_path = os.path.join(basedir, "postwarden.conf")
        self.pw_log = os.path.join(basedir, "postwarden.log")
        self.fprs = {}
        self.key_files = {}
        self.published = set()
        self.database = pw_database.fresh()   # the suite's engine (None: SQLite in state)

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)   # nginx workers (nobody) traverse it to the docroot
        self.ns = pw_netns.NetNS().create()
        self.knot = pw_netns.NsKnot(self.ns, os.path.join(self.dir, "knot"), zone=ZONE,
                                    records=[("openpgpkey", "A", WKD_ADDR)])
        pw_logs.register("keydir-knot", self.knot.log_path)
        self.knot.start()
        cert = self.ca.issue(WKD_HOST, stem="wkd-" + ZONE)
        self.web = pw_web.Nginx(self.ns, os.path.join(self.dir, "nginx"), cert, self.docroot,
                                [WKD_HOST], addr=WKD_ADDR, port=443)
        pw_logs.register("keydir-nginx", self.web.log_path)
        pw_logs.register("keydir-nginx-access", self.web.access_log)
        self.web.start()
        self.publisher = pw_gnupg.GnuPG(self.ns, self.ca.cert_path, prefix="pwg-pub-")
        pw_logs.register("gpg-publisher", self.publisher.cmd_log)
        self._make_keys()
        self._write_conf()
        return self

    def stop(self):
        for name in ("keydir-knot", "keydir-nginx", "keydir-nginx-access", "gpg-publisher",
                     "postwarden-keys"):
            pw_logs.unregister(name)
        if self.publisher is not None:
            self.publisher.stop()
        if self.web is not None:
            self.web.stop()
        if self.knot is not None:
            self.knot.stop()
        if self.ns is not None:
            self.ns.delete()

    def _make_keys(self):
        pub = self.publisher
        certifier = pub.gen_key(CERTIFIER)
        for addr, (algo, extra) in list(ADDRESSES.items()) + [(HANDPLACED, ("ed25519", []))]:
            fpr = pub.gen_key(addr, algo=algo)
            for uid in extra:
                pub.run("--quick-add-uid", fpr, uid)
            self.fprs[addr] = fpr
        for addr in (CERTIFIED, HANDPLACED):
            pub.certify(self.fprs[addr], certifier, addr)
            sigs = pub.keys(self.fprs[addr])[0].third_party_sigs()
            assert sigs, "the certification of %s is missing in the publisher's keyring" % addr
        keys_dir = os.path.join(self.dir, "keys")
        os.makedirs(keys_dir, exist_ok=True)
        for addr, fpr in self.fprs.items():
            # What a user uploads: the full key, all user IDs and certifications, armored.
            self.key_files[addr] = pub.export(fpr, os.path.join(keys_dir, addr + ".asc"),
                                              armor=True)

    def _write_conf(self):
        state = os.path.join(self.dir, "state")
        os.makedirs(state, exist_ok=True)
        k = self.knot
        with open(self.conf_path, "w") as f:
            f.write("[server]\nstate_dir = %s\nhostname = relay.%s\nlog_level = debug\n\n"
                    "[keydir]\ndns_server = %s\nzones = %s\ntsig_name = %s\n"
                    "tsig_algorithm = %s\ntsig_secret = %s\nttl = 60s\nwkd_dir = %s\n"
                    % (state, ZONE, k.server, ZONE, k.tsig_name, k.tsig_algorithm,
                       k.tsig_secret, self.docroot))
            # postwarden runs in the namespace: PostgreSQL by its unix socket
            if self.database is not None:
                f.write("\n[database]\n%s" % "".join(
                    "%s = %s\n" % kv for kv in self.database.config(local=True).items()))
        open(self.pw_log, "a").close()
        pw_logs.register("postwarden-keys", self.pw_log)

    # -- publishing ------------------------------------------------------------

    def postwarden(self, *args, timeout=60):
        """Run `postwarden -c CONF ARGS` inside the namespace (it reaches Knot on
        127.0.0.1:53 there); output goes to the returned CompletedProcess and the log."""
        cmd = [pw_relay.binary(), "-c", self.conf_path] + [str(a) for a in args]
        r = self.ns.run(cmd, env=pw_relay.daemon_env(), timeout=timeout, cwd=self.dir)
        with open(self.pw_log, "a") as f:
            f.write("$ %s\n[exit %d]\n--- stdout\n%s\n--- stderr\n%s\n"
                    % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def publish(self, addr):
        """`postwarden keys publish ADDR FILE` for addr's key (once per session)."""
        if addr in self.published:
            return
        r = self.postwarden("user", "add", addr)
        assert r.returncode == 0 or "exists" in (r.stdout + r.stderr), \
            "postwarden user add %s exited %d: %s%s" % (addr, r.returncode, r.stdout, r.stderr)
        r = self.postwarden("keys", "publish", addr, self.key_files[addr])
        assert r.returncode == 0, "postwarden keys publish %s exited %d\nstdout: %s\nstderr: %s" \
            % (addr, r.returncode, r.stdout, r.stderr)
        for text in (r.stdout, r.stderr):
            assert "AddressSanitizer" not in text and "runtime error:" not in text, text
        self.published.add(addr)

    def publish_by_hand(self, addr):
        """Put addr's full key (certifications included) into the zone and the WKD tree
        without postwarden: the control that shows what the tests would see otherwise."""
        pub = self.publisher
        data = pub.run("--export", self.fprs[addr], text=False).stdout
        rdata = data.hex()
        owner = pub.export_dane(self.fprs[addr])[0][0]
        self.knot.nsupdate(["add %s 60 OPENPGPKEY \\# %d %s" % (owner, len(data), rdata)])
        hu = os.path.join(self.docroot, ".well-known", "openpgpkey", ZONE, "hu")
        os.makedirs(hu, exist_ok=True)
        with open(os.path.join(hu, pub.wkd_hash(addr)), "wb") as f:
            f.write(data)

    def published_dns(self, addr):
        """The OPENPGPKEY RDATA (bytes) Knot serves under the name gpg looks up for addr
        (SHA-256 of the lower-cased local-part), or None."""
        local = addr.rpartition("@")[0].lower()
        owner = "%s._openpgpkey.%s." % (hashlib.sha256(local.encode()).hexdigest()[:56], ZONE)
        rdatas = self.openpgpkey_owners().get(owner, [])
        assert len(rdatas) <= 1, "%d OPENPGPKEY records at %s" % (len(rdatas), owner)
        return base64.b64decode("".join(rdatas[0].split())) if rdatas else None

    def published_wkd(self, addr):
        """The key file nginx serves for addr at the advanced-method URL gpg asks for."""
        url = "https://%s/.well-known/openpgpkey/%s/hu/%s?l=%s" % (
            WKD_HOST, ZONE, self.publisher.wkd_hash(addr), addr.rpartition("@")[0])
        status, body = self.web.get(url, self.ca.cert_path)
        assert status == 200, "GET %s: HTTP %d (file missing or not readable by the web " \
            "server's user)" % (url, status)
        return body

    def openpgpkey_owners(self):
        """{owner: [rdata]} of the OPENPGPKEY records Knot serves in the zone."""
        return self.knot.records_of_type("OPENPGPKEY")


@pytest.fixture(scope="module")
def world(session_dir, test_ca):
    binary = pw_relay.binary()
    assert os.access(binary, os.X_OK), "no postwarden binary at %s (make VARIANT=asan)" % binary
    w = KeyDirWorld(os.path.join(session_dir, "keydir-gnupg"), test_ca)
    try:
        w.start()
        yield w
    finally:
        w.stop()


@pytest.fixture
def lookup(world, request):
    """Factory: lookup() -> a fresh GnuPG home in the namespace for one key search.
    Its command log and dirmngr log are kept with a failed test's logs."""
    homes = []

    def make():
        g = pw_gnupg.GnuPG(world.ns, world.ca.cert_path, prefix="pwg-")
        n = len(homes) + 1
        pw_logs.register("gpg-lookup%d" % n, g.cmd_log)
        pw_logs.register("dirmngr-lookup%d" % n, g.dirmngr_log)
        homes.append(g)
        return g

    yield make
    for n, g in enumerate(homes, 1):
        g.stop()
        pw_logs.unregister("gpg-lookup%d" % n)
        pw_logs.unregister("dirmngr-lookup%d" % n)


def located_key(g, addr, mechanism, fpr):
    """Run the lookup and return the single key it brought, after checking it is fpr,
    usable (not revoked, expired or invalid) and carries addr as its only user ID."""
    r = g.locate(addr, mechanism)
    keys = g.keys()
    assert keys, "gpg --auto-key-locate clear,%s --locate-keys %s found nothing " \
        "(exit %d):\n%s" % (mechanism, addr, r.returncode, r.stderr)
    assert len(keys) == 1, "expected one key for %s, got %r" % (addr, keys)
    k = keys[0]
    assert k.fpr == fpr, "%s via %s: fingerprint %s, published %s" % (addr, mechanism,
                                                                      k.fpr, fpr)
    assert k.validity not in ("r", "e", "i", "d", "n"), \
        "%s via %s: key validity %r" % (addr, mechanism, k.validity)
    assert not k.expires or int(k.expires) > time.time(), "%s: key expired" % addr
    assert [uid for _, uid in k.uids] and \
        [_mbox(uid).lower() for _, uid in k.uids] == [addr.lower()], \
        "%s via %s: user IDs %r, expected only the address" % (addr, mechanism, k.uids)
    assert any(v not in ("r", "e", "i") for v, _ in k.subkeys), \
        "%s via %s: no usable subkey in %r" % (addr, mechanism, k.subkeys)
    return k


# -- the fixture itself ------------------------------------------------------------

def test_namespace_serves_signed_zone_and_wkd_host(world):
    """Knot answers in the namespace with signatures, openpgpkey.example.test points at
    nginx, and nginx's certificate verifies against the test CA by that name."""
    r = world.knot.dig(ZONE + ".", "SOA", "+dnssec")
    assert "status: NOERROR" in r.stdout and "RRSIG" in r.stdout, r.stdout
    assert world.knot.answer(WKD_HOST + ".", "A") == [(WKD_HOST + ".", "A", WKD_ADDR)]
    os.makedirs(os.path.join(world.docroot, ".well-known"), exist_ok=True)
    status, _ = world.web.get("https://%s/.well-known/nonexistent" % WKD_HOST,
                              world.ca.cert_path)
    assert status == 404


def test_control_gpg_keeps_certifications_of_a_hand_placed_key(world, lookup):
    """Control for test_third_party_certifications_are_not_published: a full key with a
    certification, published by hand, reaches gpg with that certification through both
    DANE and WKD; so its absence after `keys publish` is postwarden's doing."""
    world.publish_by_hand(HANDPLACED)
    for mechanism in ("dane", "wkd"):
        g = lookup()
        g.locate(HANDPLACED, mechanism, options="no-self-sigs-only,no-import-clean")
        keys = g.keys()
        assert len(keys) == 1 and keys[0].fpr == world.fprs[HANDPLACED], keys
        assert keys[0].third_party_sigs(), "%s: gpg dropped the certification itself" \
            % mechanism


# -- keys published by postwarden --------------------------------------------------

@pytest.mark.parametrize("addr", ["alice@example.test", "bob@example.test",
                                  "Carol.Mixed@example.test"])
def test_gpg_finds_published_key_through_dane(world, lookup, addr):
    world.publish(addr)
    if addr.startswith("bob@"):
        # Over 512 bytes: gpg's UDP answer is truncated and it must ask again over TCP.
        assert len(world.published_dns(addr) or b"") > 512
    located_key(lookup(), addr, "dane", world.fprs[addr])


@pytest.mark.parametrize("addr", ["alice@example.test", "bob@example.test",
                                  "Carol.Mixed@example.test"])
def test_gpg_finds_published_key_through_wkd(world, lookup, addr):
    world.publish(addr)
    located_key(lookup(), addr, "wkd", world.fprs[addr])
    # The advanced method's policy file is served for the domain.
    status, _ = world.web.get("https://%s/.well-known/openpgpkey/%s/policy"
                              % (WKD_HOST, ZONE), world.ca.cert_path)
    assert status == 200, "policy file not served (HTTP %d)" % status


@pytest.mark.parametrize("addr", ["alice@example.test", "Carol.Mixed@example.test"])
def test_export_dane_owner_is_published(world, addr):
    """gpg's own DANE export of the key names the owner postwarden published, and the
    record there holds the key (with the published fingerprint)."""
    world.publish(addr)
    exported = world.publisher.export_dane(addr)
    owners = {o for o, _ in exported}
    assert len(owners) >= 1, exported
    local = addr.rpartition("@")[0].lower()
    want = "%s._openpgpkey.%s." % (hashlib.sha256(local.encode()).hexdigest()[:56], ZONE)
    assert want in owners, "gpg exported %r, expected %s" % (owners, want)
    published = world.openpgpkey_owners()
    assert want in published, "no OPENPGPKEY at %s; zone has %r" % (want, sorted(published))
    assert len(published[want]) == 1, published[want]
    data = base64.b64decode("".join(published[want][0].split()))
    shown = world.publisher.show_keys(data)
    assert [k.fpr for k in shown] == [world.fprs[addr]], shown
    # postwarden names the same owner among the key's DNS names.
    r = world.postwarden("keys", "show", addr, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    entries = info if isinstance(info, list) else [info]
    names = {n.lower().rstrip(".") + "." for e in entries for n in e.get("dns_names", [])}
    assert want in names, "keys show %s names %r, gpg exports %s" % (addr, names, want)
    assert {e.get("fingerprint") for e in entries} == {world.fprs[addr]}, entries


@pytest.mark.parametrize("addr", ["alice@example.test", "Carol.Mixed@example.test",
                                  CERTIFIED])
def test_published_key_is_minimal(world, addr):
    """What DNS and the WKD server hand out is the one key, with the address's user ID
    only and no certifications (gpg filters user IDs itself on lookup, so this reads the
    published data directly)."""
    world.publish(addr)
    for source, data in (("dns", world.published_dns(addr)), ("wkd", world.published_wkd(addr))):
        assert data, "%s: nothing published for %s" % (source, addr)
        keys = world.publisher.show_keys(data)
        assert [k.fpr for k in keys] == [world.fprs[addr]], "%s: %r" % (source, keys)
        k = keys[0]
        assert [_mbox(uid).lower() for _, uid in k.uids] == [addr.lower()], \
            "%s: user IDs %r" % (source, k.uids)
        assert k.subkeys, "%s: the encryption subkey is missing" % source
        assert k.third_party_sigs() == [], "%s: certifications %r" % (source,
                                                                     k.third_party_sigs())


def test_third_party_certifications_are_not_published(world, lookup):
    world.publish(CERTIFIED)
    for mechanism in ("dane", "wkd"):
        g = lookup()
        # gpg keeps certifications from these sources when told to (see the control):
        # whatever arrives is what was published.
        g.locate(CERTIFIED, mechanism, options="no-self-sigs-only,no-import-clean")
        keys = g.keys()
        assert len(keys) == 1 and keys[0].fpr == world.fprs[CERTIFIED], \
            "%s: gpg located %r" % (mechanism, keys)
        assert keys[0].third_party_sigs() == [], \
            "%s: published key carries certifications %r" % (mechanism,
                                                              keys[0].third_party_sigs())
