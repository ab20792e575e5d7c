"""The CT monitor against a static-ct-api test log served by nginx (checkpoint, hash tiles,
data tiles full and partial, gzip'd or not): the same checks as for RFC 6962 logs, the
extension proven by recomputing the root from the tiles."""
import base64
import os

import pytest

from pwtest.ctlog_server import CTTestLogs

pytestmark = pytest.mark.engines


def make_logs(workdir, **kw):
    return CTTestLogs(os.path.join(workdir, "ct"), names=("www.example.test",), **kw).start()


def monitor(make_relay, logs, start="backfill"):
    relay = make_relay(start=False, ctmon_log_list=logs.log_list_path,
                       ctmon_watch=".example.test", ctmon_allow_private="on", ctmon_start=start)
    relay.pw("db", "migrate", check=True)
    return relay


def static_id(logs):
    return base64.b64encode(logs.static_log.log_id).decode()


def sightings(relay, logs):
    return sorted(r["idx"] for r in relay.database.rows(
        "SELECT idx FROM ct_sightings WHERE log_id = ?", (static_id(logs),)))


@pytest.mark.parametrize("gzip_data", [False, True])
def test_static_log_backfill_and_growth(make_relay, workdir, gzip_data):
    logs = make_logs(workdir, filler=300, gzip_data=gzip_data)   # a full tile and a partial
    try:
        relay = monitor(make_relay, logs)
        r = relay.pw("ct", "check", "--log", static_id(logs))
        assert r.returncode == 0, r.stderr
        size = logs.static_log.size()
        assert "verified to %d entries; %d checked, 3 matching, 2 new findings" % (size, size) \
            in r.stdout, r.stdout
        assert sightings(relay, logs) == sorted(s for _, s in logs.found["www.example.test"])
        logs.add(logs.ca.issue(["mail.example.test"]))
        logs.publish()
        r = relay.pw("ct", "check", "--log", static_id(logs), check=True)
        assert "1 checked, 1 matching, 1 new findings" in r.stdout, r.stdout
    finally:
        logs.stop()


def test_static_log_start_at_end_uses_hash_tiles(make_relay, workdir):
    logs = make_logs(workdir, filler=600)
    try:
        relay = monitor(make_relay, logs, start="end")
        r = relay.pw("ct", "check", "--log", static_id(logs), check=True)
        assert "0 checked" in r.stdout
        logs.add(logs.ca.issue(["new.example.test"]))
        logs.publish()
        r = relay.pw("ct", "check", "--log", static_id(logs), check=True)
        assert "1 checked, 1 matching, 1 new findings" in r.stdout, r.stdout
    finally:
        logs.stop()


@pytest.mark.parametrize("misbehaviour,kind", [("forge", "bad_signature"),
                                               ("corrupt", "entries_mismatch")])
def test_static_log_misbehaviour(make_relay, workdir, misbehaviour, kind):
    logs = make_logs(workdir, filler=20)
    try:
        relay = monitor(make_relay, logs)
        relay.pw("ct", "check", "--log", static_id(logs), check=True)
        before = relay.database.rows("SELECT tree_size, next_index FROM ct_logs WHERE "
                                     "log_id = ?", (static_id(logs),))
        idx = logs.static_log.size()
        logs.add(logs.ca.issue(["late.example.test"]))
        logs.publish()
        if misbehaviour == "forge":
            logs.static.forge_checkpoint()
        else:
            # a byte inside the new entry's certificate (the tile ends with its chain
            # fingerprints, which the leaf hash does not cover)
            logs.static.corrupt_tile("data", 0, idx + 1, index=-100)
        r = relay.pw("ct", "check", "--log", static_id(logs))
        assert r.returncode == 1 and "ALERT %s" % kind in r.stderr, (r.stdout, r.stderr)
        after = relay.database.rows("SELECT tree_size, next_index FROM ct_logs WHERE "
                                    "log_id = ?", (static_id(logs),))
        assert after == before
        assert "late.example.test" not in relay.pw("ct", "list").stdout
    finally:
        logs.stop()
