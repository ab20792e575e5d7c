"""The key directory against real DNS primaries: keys published with RFC 2136 + TSIG, checked
through a validating resolver (SECURE, exact RDATA), taken down again, repaired by
`keys sync` (TSIG AXFR), retried by serve; zone file mode; the WKD tree; account deletion.

Every test that talks to a primary runs against each of Knot, BIND 9 (inline signing) and
PowerDNS (gsqlite3, live signing): one server of each kind per module, emptied of keys before
each test. BIND signs a moment after it answers an update, so the tests wait for what they
look at instead of looking once."""

import json
import os
import shutil
import tempfile

import dns.zone
import pytest

from pwtest import keys as pk
from pwtest import logs as pw_logs
from pwtest import net
from pwtest.bind import BindZone
from pwtest.keyzone import KeyZone
from pwtest.pdns import PdnsZone
from pwtest.relay import Relay

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ZONE = "keys.test"


PRIMARIES = {
    "knot": lambda d: KeyZone(d, zone=ZONE, mode="nsec"),
    "bind": lambda d: BindZone(d, zone=ZONE),
    "powerdns": lambda d: PdnsZone(d, zone=ZONE),
}


@pytest.fixture(scope="module", params=list(PRIMARIES))
def primary(request, session_dir):
    """One server of the kind for the whole module (starting one is most of a test's time)."""
    z = PRIMARIES[request.param](os.path.join(session_dir, "keydir-" + request.param))
    pw_logs.register("keydir-" + request.param, z.log_path)
    try:
        z.start()
        yield z
    finally:
        z.stop()
        pw_logs.unregister("keydir-" + request.param)


@pytest.fixture
def kz(primary):
    """The module's primary with no key records left by an earlier test."""
    primary.reset()
    return primary


@pytest.fixture
def gpg():
    # GnuPG's agent socket lives in GNUPGHOME: keep the path short.
    home = tempfile.mkdtemp(prefix="pwg", dir="/tmp")
    g = pk.GnuPG(home)
    yield g
    g.run("--version", check=False)
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


def make_pw(workdir, kz=None, name="pw", **options):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    opts = dict(kz.keydir_options()) if kz else {}
    opts.update(options)
    unbound = kz.unbound_conf if kz else "/nonexistent"
    return Relay(d, 25, unbound, **opts)


def write(workdir, name, data):
    p = os.path.join(workdir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def stored(pw, addr):
    """{address: minimised key bytes} from `keys show --json`."""
    return {k["address"]: pk.dearmor(k["key"]) for k in pw.pw_json("keys", "show", addr)}


def assert_secure(kz, owner, rtype, want):
    """The primary serves exactly want (wire RDATA list) and unbound-host validates it."""
    assert kz.wait_rdatas(owner, rtype, want) == sorted(want)
    r = kz.unbound_host(owner, rtype)
    assert "(secure)" in r.stdout, r.stdout + r.stderr


def test_publish_openpgp_secure_per_address(workdir, kz, gpg):
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "anna@keys.test", "--alias", "Info@keys.test", check=True)
    fpr = gpg.make_key("anna@keys.test", "Info@keys.test", "stranger@other.test")
    path = write(workdir, "anna.asc", gpg.export(fpr))

    out = pw.pw_json("keys", "publish", "Info@keys.test", path)
    assert out["fingerprint"] == fpr and out["pending"] is False
    assert sorted(out["addresses"]) == ["Info@keys.test", "anna@keys.test"]

    copies = stored(pw, "anna@keys.test")
    copies.update(stored(pw, "Info@keys.test"))
    # Each copy carries only its own address.
    assert gpg.uids_of(copies["anna@keys.test"]) == ["Test <anna@keys.test>"]
    assert gpg.uids_of(copies["Info@keys.test"]) == ["Test <Info@keys.test>"]

    assert_secure(kz, pk.dane_owner("anna@keys.test"), "OPENPGPKEY", [copies["anna@keys.test"]])
    # RFC 7929 name (local-part as written) and GnuPG's (lower-cased) both carry the key.
    info = [copies["Info@keys.test"]]
    assert_secure(kz, pk.dane_owner("Info@keys.test"), "OPENPGPKEY", info)
    lower = pk.dane_owner("Info@keys.test", lower=True)
    assert lower == pk.dane_owner("info@keys.test")
    assert_secure(kz, lower, "OPENPGPKEY", info)
    # GnuPG's own record for the primary user ID has the same hash label.
    assert gpg.dane_owner(fpr).split(".")[0] == pk.dane_owner("anna@keys.test").split(".")[0]
    # Nothing for the address that is not the account's.
    assert kz.rdatas(pk.dane_owner("stranger@other.test"), "OPENPGPKEY") == []

    # WKD: advanced layout, the address's copy, the policy file.
    root = os.path.join(pw.state_dir, "wkd", ".well-known", "openpgpkey", ZONE)
    with open(os.path.join(root, "hu", pk.wkd_hash("anna")), "rb") as f:
        assert f.read() == copies["anna@keys.test"]
    with open(os.path.join(root, "hu", pk.wkd_hash("Info")), "rb") as f:
        assert f.read() == copies["Info@keys.test"]
    assert os.path.isfile(os.path.join(root, "policy"))

    listed = pw.pw_json("keys", "list")
    assert {k["address"] for k in listed} == {"anna@keys.test", "Info@keys.test"}
    assert all(not k["pending"] for k in listed)

    # Unpublishing takes it out of DNS and WKD.
    r = pw.pw("keys", "unpublish", "anna@keys.test", "--fingerprint", fpr, check=True)
    assert "unpublished 1" in r.stdout
    assert kz.wait_rdatas(pk.dane_owner("anna@keys.test"), "OPENPGPKEY", []) == []
    r = kz.unbound_host(pk.dane_owner("anna@keys.test"), "OPENPGPKEY")
    assert "(secure)" in r.stdout and "has no" in r.stdout or "NXDOMAIN" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(root, "hu", pk.wkd_hash("anna")))
    assert kz.rdatas(lower, "OPENPGPKEY") == info


def test_publish_smime_secure(workdir, kz):
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "bob@keys.test", check=True)
    pem, der = pk.make_smime_cert("bob@keys.test")
    out = pw.pw_json("keys", "publish", "bob@keys.test", write(workdir, "bob.pem", pem))
    assert out["kind"] == "smime"
    assert_secure(kz, pk.dane_owner("bob@keys.test", "_smimecert"), "SMIMEA",
                  [b"\x03\x00\x00" + der])
    # DER input works too, and replaces nothing twice.
    pw.pw("keys", "publish", "bob@keys.test", write(workdir, "bob.der", der), check=True)
    smimea = {(pk.dane_owner("bob@keys.test", "_smimecert"), "SMIMEA"): [b"\x03\x00\x00" + der]}
    assert kz.wait_records(smimea) == smimea
    pw.pw("keys", "unpublish", "bob@keys.test", check=True)
    assert kz.wait_records({}) == {}
    assert kz.rdatas(pk.dane_owner("bob@keys.test", "_smimecert"), "SMIMEA") == []


def test_refusals_publish_nothing(workdir, kz, gpg):
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "carol@keys.test", check=True)
    fpr = gpg.make_key("someone@keys.test")
    r = pw.pw("keys", "publish", "carol@keys.test", write(workdir, "k.asc", gpg.export(fpr)))
    assert r.returncode == 1 and r.stderr.strip()
    secret = gpg.export_secret(fpr)
    r = pw.pw("keys", "publish", "carol@keys.test", write(workdir, "s.asc", secret))
    assert r.returncode == 1
    body = [l for l in secret.decode().splitlines() if len(l) >= 40]
    assert body and not any(l in r.stderr or l in r.stdout for l in body)
    r = pw.pw("keys", "publish", "nobody@keys.test", write(workdir, "k2.asc", gpg.export(fpr)))
    assert r.returncode == 1 and "no account" in r.stderr
    big = write(workdir, "big", b"x" * (1024 * 1024 + 1))
    assert pw.pw("keys", "publish", "carol@keys.test", big).returncode == 1
    assert pw.pw_json("keys", "list") == []
    assert kz.records() == {}


def test_sync_repairs_both_ways(workdir, kz, gpg):
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "dave@keys.test", check=True)
    fpr = gpg.make_key("dave@keys.test")
    pw.pw("keys", "publish", "dave@keys.test", write(workdir, "d.asc", gpg.export(fpr)),
          check=True)
    owner = pk.dane_owner("dave@keys.test")
    key = pk.dearmor(pw.pw_json("keys", "show", "dave@keys.test")[0]["key"])
    want = {(owner, "OPENPGPKEY"): [key]}
    assert kz.wait_records(want) == want
    stray = pk.dane_owner("ghost@keys.test")
    kz.edit(remove=[(owner, "OPENPGPKEY")], add=[(stray, 60, "OPENPGPKEY", "AQIDBA==")])
    assert kz.wait_records({(stray, "OPENPGPKEY"): [b"\x01\x02\x03\x04"]}) == {
        (stray, "OPENPGPKEY"): [b"\x01\x02\x03\x04"]}

    out = pw.pw_json("keys", "sync")
    changes = {(c["action"], c["name"], c["type"]) for c in out["changes"] if c["where"] == "dns"}
    assert changes == {("add", owner, "OPENPGPKEY"), ("remove", stray, "OPENPGPKEY")}
    assert out["error"] is None
    assert kz.wait_records(want) == want
    assert_secure(kz, owner, "OPENPGPKEY", want[(owner, "OPENPGPKEY")])
    # In step now: nothing more to do.
    assert pw.pw_json("keys", "sync")["changes"] == []


def test_failed_update_is_retried_by_serve(workdir, kz, gpg):
    pw = make_pw(workdir, kz, keydir_tsig_secret="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
    pw.pw("user", "add", "erin@keys.test", check=True)
    fpr = gpg.make_key("erin@keys.test")
    r = pw.pw("keys", "publish", "erin@keys.test", write(workdir, "e.asc", gpg.export(fpr)),
              "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # Knot and BIND answer a wrong secret as RFC 8945 says (NOTAUTH, TSIG BADSIG);
    # PowerDNS answers REFUSED, unsigned. Either way the key is named as the cause.
    rcode = "REFUSED, unsigned" if kz.kind == "powerdns" else "NOTAUTH (TSIG BADSIG 16)"
    why = "the server does not accept TSIG key %s as configured" % kz.tsig_name
    assert out["pending"] is True and rcode in out["error"] and why in out["error"], out
    listed = pw.pw_json("keys", "list")
    assert listed[0]["pending"] is True and why in listed[0]["error"]
    owner = pk.dane_owner("erin@keys.test")
    assert kz.rdatas(owner, "OPENPGPKEY") == []

    # The operator fixes the key; serve's timer publishes the pending name.
    pw.set("keydir_tsig_secret", kz.tsig_secret)
    pw.start()
    try:
        net.wait_until(lambda: kz.rdatas(owner, "OPENPGPKEY"), 20, interval=0.2,
                       what="serve publishing the pending record")
        net.wait_until(lambda: not pw.pw_json("keys", "list")[0]["pending"], 10,
                       what="the mark cleared")
    finally:
        pw.stop()
    log = pw.log()
    assert "event=keydir_retry done=" in log
    assert "AddressSanitizer" not in log and "runtime error" not in log


def test_zone_not_served_is_named(workdir, kz, gpg):
    """An update for a zone the primary does not serve: every server answers NOTAUTH (Knot
    unsigned, BIND and PowerDNS signed), and the error names the zone."""
    pw = make_pw(workdir, kz, keydir_zones="keys.test,other.test")
    pw.pw("user", "add", "olga@other.test", check=True)
    fpr = gpg.make_key("olga@other.test")
    out = pw.pw_json("keys", "publish", "olga@other.test",
                     write(workdir, "o.asc", gpg.export(fpr)))
    assert out["pending"] is True, out
    assert "refused the update of zone other.test: NOTAUTH" in out["error"], out
    if kz.kind == "knot":
        assert "or does not serve zone other.test" in out["error"], out
    else:
        assert "the server is not authoritative for zone other.test" in out["error"], out
    assert kz.records() == {}


def test_account_deletion_takes_keys_down(workdir, kz, gpg):
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "fred@keys.test", "--alias", "f@keys.test", check=True)
    fpr = gpg.make_key("fred@keys.test", "f@keys.test")
    pw.pw("keys", "publish", "fred@keys.test", write(workdir, "f.asc", gpg.export(fpr)),
          check=True)
    pem, _ = pk.make_smime_cert("f@keys.test")
    pw.pw("keys", "publish", "f@keys.test", write(workdir, "f.pem", pem), check=True)
    net.wait_until(lambda: len(kz.records()) == 3, 10, interval=0.05,
                   what="three key records served")
    root = os.path.join(pw.state_dir, "wkd", ".well-known", "openpgpkey", ZONE, "hu")
    assert len(os.listdir(root)) == 2
    pw.pw("user", "del", "f@keys.test", check=True)
    assert kz.wait_records({}) == {}
    assert os.listdir(root) == []
    assert pw.pw_json("keys", "list") == []


def test_zone_file_mode(workdir, gpg):
    pw = make_pw(workdir, None)
    pw.pw("user", "add", "gina@keys.test", "--alias", "Sales@keys.test", check=True)
    fpr = gpg.make_key("gina@keys.test", "Sales@keys.test")
    pw.pw("keys", "publish", "gina@keys.test", write(workdir, "g.asc", gpg.export(fpr)),
          check=True)
    pem, der = pk.make_smime_cert("gina@keys.test")
    pw.pw("keys", "publish", "gina@keys.test", write(workdir, "g.pem", pem), check=True)
    sales = stored(pw, "Sales@keys.test")["Sales@keys.test"]

    frag = os.path.join(pw.state_dir, "keydir.zone")
    text = "$ORIGIN keys.test.\n$TTL 60\n@ SOA ns hm 1 60 60 600 60\n@ NS ns\n"
    with open(frag) as f:
        text += f.read()
    z = dns.zone.from_text(text, origin="keys.test.", relativize=False)

    def rd(owner, rtype):
        rds = z.get_rdataset(owner + ".", rtype)
        return sorted(r.to_wire() for r in rds) if rds else []

    openpgp = [k for k in pw.pw_json("keys", "show", "gina@keys.test") if k["kind"] == "openpgp"]
    assert rd(pk.dane_owner("gina@keys.test"), "OPENPGPKEY") == [pk.dearmor(openpgp[0]["key"])]
    assert rd(pk.dane_owner("Sales@keys.test"), "OPENPGPKEY") == [sales]
    assert rd(pk.dane_owner("sales@keys.test"), "OPENPGPKEY") == [sales]
    assert rd(pk.dane_owner("gina@keys.test", "_smimecert"), "SMIMEA") == [b"\x03\x00\x00" + der]

    pw.pw("keys", "unpublish", "Sales@keys.test", check=True)
    with open(frag) as f:
        assert pk.dane_owner("sales@keys.test") not in f.read()
    root = os.path.join(pw.state_dir, "wkd", ".well-known", "openpgpkey", ZONE)
    assert os.listdir(os.path.join(root, "hu")) == [pk.wkd_hash("gina")]


def test_many_names_split_updates_and_long_transfer(workdir, kz):
    """200 names of 700 bytes: updates split under 60 KB, and sync reads a transfer of many
    TSIG-signed messages. Rows go into the store directly (as publish stores them), so the
    test needs no 200 real keys."""
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "many@keys.test", check=True)
    want = {}
    rows = []
    for i in range(200):
        data = os.urandom(700)
        owner = pk.dane_owner("u%d@keys.test" % i)
        want[(owner, "OPENPGPKEY")] = [data]
        rows.append(("u%d@keys.test" % i, data, owner))
    pw.database.execute_many(
        "INSERT INTO keydir_keys(account_id, addr, kind, fingerprint, algorithm,"
        " bits, created, expires, published, data, rrtype, owner) VALUES"
        " (1, ?, 'openpgp', 'F', 'EDDSA', 255, 0, 0, 0, ?, 61, ?)", rows)
    out = pw.pw_json("keys", "sync")
    assert out["error"] is None and out["done"] == 200 and len(out["changes"]) == 200
    assert kz.wait_records(want) == want
    # The transfer sync reads comes in many messages, each TSIG-signed.
    assert len(kz.axfr()) > 1
    missing = pk.dane_owner("u5@keys.test")
    kz.edit(remove=[(missing, "OPENPGPKEY")])
    out = pw.pw_json("keys", "sync")
    assert out["error"] is None
    assert [(c["action"], c["name"]) for c in out["changes"]] == [("add", missing)]
    assert kz.wait_records(want) == want


def test_publish_batch_one_update(workdir, kz, gpg):
    """keys publish --batch: every good line is stored, bad lines are reported with their
    line number, and the records of all keys go out together in one UPDATE message."""
    import subprocess
    from pwtest.relay import binary, daemon_env
    pw = make_pw(workdir, kz)
    pw.pw("user", "add", "hana@keys.test", check=True)
    pw.pw("user", "add", "ivan@keys.test", "--alias", "Iv@keys.test", check=True)
    pw.pw("user", "add", "jo@keys.test", check=True)
    paths = {}
    for addrs in (("hana@keys.test",), ("ivan@keys.test", "Iv@keys.test"),
                  ("stranger@keys.test",)):
        fpr = gpg.make_key(*addrs)
        paths[addrs[0]] = write(workdir, addrs[0] + ".asc", gpg.export(fpr))
    lst = write(workdir, "batch.txt", (
        "# address and key file\n"
        "\n"
        "hana@keys.test %s\n"
        "  ivan@keys.test\t%s  \n"
        "jo@keys.test %s\n"               # a key without jo's address
        "nobody@keys.test %s\n"           # no such account
        "hana@keys.test\n"                # no file
        "jo@keys.test %s\n" % (paths["hana@keys.test"], paths["ivan@keys.test"],
                                paths["stranger@keys.test"], paths["hana@keys.test"],
                                os.path.join(workdir, "missing.asc"))).encode())
    r = pw.pw("keys", "publish", "--batch", lst, "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["published"] == 2 and out["addresses"] == 3
    assert [x["line"] for x in out["refused"]] == [5, 6, 7, 8]
    assert [x["address"] for x in out["refused"]] == ["jo@keys.test", "nobody@keys.test",
                                                      "hana@keys.test", "jo@keys.test"]
    assert "no account" in out["refused"][1]["error"]
    assert all(x["error"] for x in out["refused"])
    assert "line 6: nobody@keys.test" in r.stderr
    assert out["pending"] == 0 and out["error"] is None
    # DNS: hana, ivan, Iv and iv (the lower-cased local-part); WKD: hana, ivan, iv.
    assert out["done"] == 7

    updates = [l for l in r.stderr.splitlines() if "event=keydir_update" in l]
    assert len(updates) == 1 and "names=4 " in updates[0], r.stderr
    copies = stored(pw, "hana@keys.test")
    copies.update(stored(pw, "ivan@keys.test"))
    copies.update(stored(pw, "Iv@keys.test"))
    assert_secure(kz, pk.dane_owner("hana@keys.test"), "OPENPGPKEY", [copies["hana@keys.test"]])
    assert_secure(kz, pk.dane_owner("ivan@keys.test"), "OPENPGPKEY", [copies["ivan@keys.test"]])
    assert_secure(kz, pk.dane_owner("Iv@keys.test", lower=True), "OPENPGPKEY",
                  [copies["Iv@keys.test"]])
    assert len(kz.records()) == 4
    assert pw.pw_json("keys", "list", "jo@keys.test") == []

    # Text output and standard input; all lines good: exit 0.
    p = subprocess.run([binary(), "-c", pw.conf_path, "keys", "publish", "--batch", "-"],
                       input="hana@keys.test %s\n" % paths["hana@keys.test"],
                       capture_output=True, text=True, timeout=60, env=daemon_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("published 1 key(s) for 1 address(es), 0 refused;"), p.stdout
