"""Can the published addresses be enumerated? The same keys are published into a zone
signed three ways, then walked the way an attacker would:

  NSEC        follow the chain of next names: every key's owner name appears.
  NSEC3       (RFC 9276: no iterations, no salt) collect the hashed owner names with
              random queries, then hash a dictionary of common local-parts: every
              published local-part in the dictionary is found, the others are not.
  onlinesign  Knot's mod-onlinesign answers with minimal "black lie" NSEC records: the walk
              learns nothing.
"""

import base64
import os
import random
import shutil
import tempfile

import dns.dnssec
import dns.name
import dns.rdatatype
import pytest

from pwtest import keys as pk
from pwtest import logs as pw_logs
from pwtest.keyzone import KeyZone
from pwtest.relay import Relay

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ZONE = "keys.test"
DICTIONARY = ["admin", "alice", "bob", "contact", "info", "office", "sales", "support"]
PUBLISHED = ["alice", "info", "sales", "k7q2-unlisted-h9"]


@pytest.fixture(scope="module")
def key_files():
    """One OpenPGP key per published local-part (made once for the three zones)."""
    home = tempfile.mkdtemp(prefix="pwe", dir="/tmp")
    g = pk.GnuPG(home)
    out = {}
    for lp in PUBLISHED:
        fpr = g.make_key("%s@%s" % (lp, ZONE))
        out[lp] = g.export(fpr)
    yield out
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


def walk_nsec(kz, limit=200):
    """Follow NSEC next names from the apex; return every name learned."""
    apex = dns.name.from_text(ZONE)
    name, seen = apex, set()
    for _ in range(limit):
        r = kz.query(name, "NSEC", dnssec=True)
        nxt = None
        for rrset in r.answer + r.authority:
            if rrset.rdtype == dns.rdatatype.NSEC:
                nxt = rrset[0].next
                break
        if nxt is None or nxt == apex or nxt in seen or len(nxt.labels) > 12:
            break
        seen.add(nxt)
        name = nxt
    return {n.to_text().rstrip(".").lower() for n in seen}


def collect_nsec3(kz, queries=60):
    """Hashed owner names learned from NSEC3 records in answers to random names."""
    hashes = set()
    rnd = random.Random(7)
    for i in range(queries):
        parent = ZONE if i % 2 else "_openpgpkey." + ZONE
        q = "%08x.%s" % (rnd.getrandbits(32), parent)
        r = kz.query(q, "A", dnssec=True)
        for rrset in r.authority:
            if rrset.rdtype == dns.rdatatype.NSEC3:
                hashes.add(rrset.name.labels[0].decode().upper())
                for rd in rrset:
                    hashes.add(base64.b32hexencode(rd.next).decode().rstrip("=").upper())
    return hashes


def guess(hashes, words):
    """Owner names of dictionary local-parts whose NSEC3 hash was collected."""
    found = set()
    for w in words:
        owner = pk.dane_owner("%s@%s" % (w, ZONE))
        if dns.dnssec.nsec3_hash(owner + ".", "", 0, 1).upper() in hashes:
            found.add(owner)
    return found


@pytest.mark.parametrize("mode", ["nsec", "nsec3", "onlinesign"])
def test_enumeration(workdir, key_files, mode):
    kz = KeyZone(os.path.join(workdir, "knot-" + mode), zone=ZONE, mode=mode)
    pw_logs.register("knot-enum", kz.log_path)
    kz.start()
    try:
        d = os.path.join(workdir, "pw")
        os.makedirs(d, exist_ok=True)
        pw = Relay(d, 25, kz.unbound_conf, **kz.keydir_options())
        owners = set()
        for lp, data in key_files.items():
            addr = "%s@%s" % (lp, ZONE)
            path = os.path.join(d, lp + ".asc")
            with open(path, "wb") as f:
                f.write(data)
            pw.pw("user", "add", addr, check=True)
            pw.pw("keys", "publish", addr, path, check=True)
            owner = pk.dane_owner(addr)
            owners.add(owner)
            # Published, and resolvable for someone who knows the address.
            r = kz.unbound_host(owner, "OPENPGPKEY")
            assert "(secure)" in r.stdout and "has OPENPGPKEY" in r.stdout.replace(
                "has OPENPGPKEY record", "has OPENPGPKEY"), r.stdout

        if mode == "nsec3":
            hashes = collect_nsec3(kz)
            revealed = guess(hashes, DICTIONARY) & owners
            expected = {pk.dane_owner("%s@%s" % (w, ZONE)) for w in PUBLISHED
                        if w in DICTIONARY}
            # The chain itself gives away how many names there are.
            print("nsec3: %d hashed names collected, dictionary of %d recovers %d of %d key "
                  "owners" % (len(hashes), len(DICTIONARY), len(revealed), len(owners)))
            assert revealed == expected
        else:
            walked = walk_nsec(kz)
            revealed = walked & owners
            print("%s: walk learned %d names, %d of %d key owners"
                  % (mode, len(walked), len(revealed), len(owners)))
            if mode == "nsec":
                assert revealed == owners
            else:
                assert revealed == set()
                assert not any("_openpgpkey" in n for n in walked)
    finally:
        kz.stop()
        pw_logs.unregister("knot-enum")
