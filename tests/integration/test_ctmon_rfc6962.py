"""The CT monitor against an RFC 6962 test log (pwtest.ctlog: real certificates and
precertificates from a test CA, a real Merkle tree, tree heads signed by the log's key):
`postwarden ct check` and `ct backfill` verify every tree head, proof and entry before a
finding is stored, resume where they stopped, and store an alert for each misbehaviour."""
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pwtest.ctmon import logs_running, monitor, rfc_id

pytestmark = pytest.mark.engines


@pytest.fixture
def logs(workdir):
    with logs_running(workdir, names=("www.example.test",), filler=30, max_batch=7) as t:
        yield t


def position(relay, logs):
    rows = relay.database.rows("SELECT tree_size, next_index FROM ct_logs WHERE log_id = ?",
                               (rfc_id(logs),))
    return (rows[0]["tree_size"], rows[0]["next_index"]) if rows else None


def alerts(relay):
    return [r["kind"] for r in relay.database.rows("SELECT kind FROM ct_alerts ORDER BY id")]


def test_backfill_finds_certificate_and_precertificate_once(make_relay, logs):
    relay = monitor(make_relay, logs)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert r.returncode == 0, r.stderr
    size = logs.rfc_log.size()
    assert "verified to %d entries; %d checked, 3 matching, 2 new findings" % (size, size) in r.stdout
    found = relay.pw_json("ct", "list")
    assert len(found) == 2, found           # the certificate, and the pre/final pair as one
    assert all(f["names"] == "www.example.test" for f in found)
    assert all(f["verdict"] == "unknown_key" for f in found)   # no expected_keys set
    pair = max(found, key=lambda f: f["id"])
    seen = relay.pw_json("ct", "show", str(pair["id"]))["seen_in"]
    rfc_idx = [i for i, _ in logs.found["www.example.test"]]
    assert sorted((s["index"], s["precert"]) for s in seen) == [(rfc_idx[1], True),
                                                                  (rfc_idx[2], False)]
    assert position(relay, logs) == (size, size)
    # the log answered in batches of 7: the monitor followed up until the signed size
    asked = [q for p, q, _ in logs.rfc.requests if p.endswith("get-entries")]
    assert len(asked) >= size // 7, asked
    # nothing new: a second round checks nothing and stores nothing twice
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert "0 checked, 0 matching, 0 new" in r.stdout
    assert len(relay.pw_json("ct", "list")) == 2


def test_resumes_with_consistency_proof_and_judges_keys(make_relay, logs):
    leaf_pin = logs.ca.spki_sha256(logs.ca.issue(["x.other.test"])).hex()
    relay = monitor(make_relay, logs, ctmon_expected_keys=leaf_pin)
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    before = logs.rfc_log.size()
    other_key = ec.generate_private_key(ec.SECP256R1())
    logs.add(logs.ca.issue(["mail.example.test"], key=other_key))
    logs.add(logs.ca.issue(["unrelated.other.test"]))
    logs.publish()
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert "2 checked, 1 matching, 1 new findings" in r.stdout, r.stdout
    asked = [q for p, q, _ in logs.rfc.requests if p.endswith("get-sth-consistency")]
    assert asked and asked[-1] == {"first": [str(before)], "second": [str(before + 2)]}, asked
    verdicts = {f["names"]: f["verdict"] for f in relay.pw_json("ct", "list")}
    assert verdicts == {"www.example.test": "expected", "mail.example.test": "unknown_key"}
    unexpected = relay.pw_json("ct", "list", "--unexpected")
    assert [f["names"] for f in unexpected] == ["mail.example.test"]


def test_first_contact_at_the_end_then_new_entries(make_relay, logs):
    relay = monitor(make_relay, logs, ctmon_start="end")
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    size = logs.rfc_log.size()
    assert "verified to %d entries; 0 checked" % size in r.stdout
    assert relay.pw_json("ct", "list") == []
    assert any(p.endswith("get-proof-by-hash") for p, _, _ in logs.rfc.requests)
    logs.add(logs.ca.issue(["new.example.test"]))
    logs.publish()
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert "1 checked, 1 matching, 1 new findings" in r.stdout, r.stdout
    assert [f["names"] for f in relay.pw_json("ct", "list")] == ["new.example.test"]


def test_backfill_from_an_index(make_relay, logs):
    relay = monitor(make_relay, logs, ctmon_start="end")
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    first = logs.found["www.example.test"][0][0]
    r = relay.pw("ct", "backfill", "--log", rfc_id(logs), "--from", str(first))
    assert r.returncode == 0, r.stderr
    assert "3 matching, 2 new findings" in r.stdout, r.stdout
    assert relay.pw("ct", "backfill", "--log", rfc_id(logs)).returncode == 2


@pytest.mark.parametrize("misbehaviour,kind", [
    ("forge_sth", "bad_signature"),
    ("break_consistency", "inconsistent"),
    ("split", "split_view"),
    ("shrink", "shrunk"),
    ("altered", "entries_mismatch"),
])
def test_misbehaviour_is_an_alert_and_the_log_is_not_advanced(make_relay, logs, misbehaviour,
                                                              kind):
    relay = monitor(make_relay, logs)
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    verified = position(relay, logs)
    found = len(relay.pw_json("ct", "list"))
    new_name = "late.example.test"
    if misbehaviour == "forge_sth":
        logs.rfc.forge_sth = True
    elif misbehaviour == "break_consistency":
        logs.add(logs.ca.issue([new_name]))
        logs.publish()
        logs.rfc.break_consistency = True
    elif misbehaviour == "split":
        fork = logs.rfc_log.fork(logs.rfc_log.size() - 3, [logs.ca.issue(["f.other.test"])])
        logs.rfc.split(fork, mode="alternate")
        relay.pw("ct", "check", "--log", rfc_id(logs))     # one of the two views: the one already verified, or not
    elif misbehaviour == "shrink":
        logs.rfc.shrink_to(logs.rfc_log.size() - 5)
    elif misbehaviour == "altered":
        idx = logs.rfc_log.size()
        logs.add(logs.ca.issue([new_name]))
        logs.publish()
        logs.rfc.altered = {idx: None}
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    if misbehaviour == "split" and kind not in alerts(relay):
        r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert r.returncode == 1, r.stdout
    assert "ALERT %s" % kind in r.stderr, r.stderr
    assert kind in alerts(relay)
    assert position(relay, logs) == verified
    # nothing from entries that were not verified is reported
    assert len(relay.pw_json("ct", "list")) == found
    evidence = relay.database.value("SELECT evidence FROM ct_alerts WHERE kind = ?", (kind,))
    assert evidence


def test_rate_limited_log_is_asked_again_after_retry_after(make_relay, logs):
    relay = monitor(make_relay, logs)
    # two 429s asking for 1 s each: the round waits and goes on
    logs.rfc.rate_limit(2, retry_after=1)
    t0 = time.monotonic()
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "3 matching, 2 new findings" in r.stdout
    assert took >= 2.0, took                # it did wait as the log asked
    sth = [p for p, _, _ in logs.rfc.requests if p.endswith("get-sth")]
    assert len(sth) == 3, sth               # asked twice more, not given up
    # a longer Retry-After is honoured, not replaced by the 1 s of the first back-off
    logs.add(logs.ca.issue(["unrelated.other.test"]))
    logs.publish()
    logs.rfc.rate_limit(1, retry_after=3)
    t0 = time.monotonic()
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert time.monotonic() - t0 >= 2.9
    # a log that keeps refusing: an error after four tries, never an alert
    logs.rfc.rate_limit(100, retry_after=1)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert r.returncode == 1 and "429" in r.stderr and "ALERT" not in r.stderr, r.stderr
    assert alerts(relay) == []
    # Retry-After longer than the round waits: it ends now, the next round asks again
    logs.rfc.rate_limit(1, retry_after=3600)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert r.returncode == 1 and "429" in r.stderr, r.stderr
    logs.rfc.rate_limit(0)
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
