"""`keys sync` decides which records are the directory's by the zone they are in, so a zone of
one label ("kz", where `<hash>._openpgpkey.kz` is the owner) and a zone several labels deep are
repaired alike: stray records removed, missing ones added, records of others left alone, and a
second run finds nothing to do."""

import os
import shutil
import tempfile

import pytest

from pwtest import keys as pk
from pwtest import logs as pw_logs
from pwtest.keyzone import KeyZone
from pwtest.relay import Relay

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines


@pytest.fixture
def gpg():
    home = tempfile.mkdtemp(prefix="pwg", dir="/tmp")
    g = pk.GnuPG(home)
    yield g
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("zone", ["kz", "keys.mail.corp.test"])
def test_sync_repairs_zone_of_any_depth(workdir, gpg, zone):
    kz = KeyZone(os.path.join(workdir, "knot"), zone=zone, mode="nsec")
    pw_logs.register("knot-sync-" + zone, kz.log_path)
    kz.start()
    try:
        pw_dir = os.path.join(workdir, "pw")
        os.makedirs(pw_dir)
        pw = Relay(pw_dir, 25, kz.unbound_conf, **kz.keydir_options())
        addr = "dave@" + zone
        pw.pw("user", "add", addr, check=True)
        fpr = gpg.make_key(addr)
        path = os.path.join(workdir, "d.asc")
        with open(path, "wb") as f:
            f.write(gpg.export(fpr))
        pw.pw("keys", "publish", addr, path, check=True)
        owner = pk.dane_owner(addr)
        want = kz.records()
        assert list(want) == [(owner, "OPENPGPKEY")]

        stray = pk.dane_owner("ghost@" + zone)
        foreign = "other." + zone      # an OPENPGPKEY the directory did not put there
        kz.edit(remove=[(owner, "OPENPGPKEY")],
                add=[(stray, 60, "OPENPGPKEY", "AQIDBA=="), (foreign, 60, "OPENPGPKEY", "BQYHCA==")])

        out = pw.pw_json("keys", "sync")
        assert out["error"] is None
        changes = {(c["action"], c["name"], c["type"]) for c in out["changes"] if c["where"] == "dns"}
        assert changes == {("add", owner, "OPENPGPKEY"), ("remove", stray, "OPENPGPKEY")}
        have = kz.records()
        assert have[(owner, "OPENPGPKEY")] == want[(owner, "OPENPGPKEY")]
        assert (stray, "OPENPGPKEY") not in have
        assert have[(foreign, "OPENPGPKEY")] == [b"\x05\x06\x07\x08"], "not ours: left alone"
        assert pw.pw_json("keys", "sync")["changes"] == [], "in step now"
    finally:
        kz.stop()
        pw_logs.unregister("knot-sync-" + zone)
