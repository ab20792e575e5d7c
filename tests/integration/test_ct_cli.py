"""postwarden ct list / show / ack: the CT monitor's findings as the operator reads them,
on the suite's engine (SQLite, and PostgreSQL in the second pass). The findings are
written here as the monitor stores them (schema 4: ct_findings, ct_sightings, ct_logs)."""
import json
import time

import pytest

pytestmark = pytest.mark.engines


def _store(relay, identity, names, verdict, reason, sightings):
    db = relay.database
    db.execute("INSERT INTO ct_findings (identity, names, issuer, serial, spki_sha256, "
               "not_before, not_after, verdict, reason, first_seen) VALUES "
               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (identity, names, "CN=Test CA", "0a1b", "ab" * 32, 1760000000, 1790000000,
                verdict, reason, int(time.time())))
    fid = db.value("SELECT id FROM ct_findings WHERE names = ?", (names,))
    for log_id, idx, precert in sightings:
        db.execute("INSERT INTO ct_sightings (log_id, idx, finding_id, precert, seen) "
                   "VALUES (?, ?, ?, ?, ?)", (log_id, idx, fid, precert, int(time.time())))
    return fid


def test_list_show_ack_findings(make_relay):
    relay = make_relay(start=False)
    relay.pw("db", "migrate", check=True)
    r = relay.pw("ct", "list", check=True)
    assert "no certificates found" in r.stdout
    relay.database.execute("INSERT INTO ct_logs (log_id, url, api) VALUES (?, ?, ?)",
                           ("bG9nMQ==", "https://ct.example/log1/", "rfc6962"))
    ok = _store(relay, b"\x01" * 32, "mail.example.org", "expected",
                "expected key from an allowed issuer", [("bG9nMQ==", 7, 1)])
    bad = _store(relay, b"\x02" * 32, "mail.example.org, www.example.org", "unknown_key",
                 "the certificate's key is none of [ctmon] expected_keys",
                 [("bG9nMQ==", 8, 1), ("bG9nMQ==", 9, 0), ("bG9nMg==", 3, 0)])
    every = relay.pw_json("ct", "list")
    assert [f["id"] for f in every] == [bad, ok]
    unexpected = relay.pw_json("ct", "list", "--unexpected")
    assert [f["id"] for f in unexpected] == [bad]
    assert unexpected[0]["verdict"] == "unknown_key" and unexpected[0]["acked"] is False
    text = relay.pw("ct", "list", "--unexpected", check=True).stdout
    assert "unknown_key" in text and "www.example.org" in text and "expected " not in text
    shown = relay.pw_json("ct", "show", str(bad))
    assert shown["reason"].startswith("the certificate's key")
    seen = {(s["log_id"], s["index"], s["precert"]) for s in shown["seen_in"]}
    assert seen == {("bG9nMQ==", 8, True), ("bG9nMQ==", 9, False), ("bG9nMg==", 3, False)}
    assert any(s["log_url"] == "https://ct.example/log1/" for s in shown["seen_in"])
    text = relay.pw("ct", "show", str(bad), check=True).stdout
    assert "https://ct.example/log1/ entry 8 (precertificate)" in text
    # ack: marked, once; the time of the first ack is kept
    r = relay.pw("ct", "ack", str(bad), check=True)
    assert "acknowledged" in r.stdout
    first = relay.database.value("SELECT acked FROM ct_findings WHERE id = ?", (bad,))
    assert first is not None
    time.sleep(1.1)
    relay.pw("ct", "ack", str(bad), check=True)
    assert relay.database.value("SELECT acked FROM ct_findings WHERE id = ?", (bad,)) == first
    assert relay.pw_json("ct", "show", str(bad))["acked"] is True
    # unknown ids and bad usage
    r = relay.pw("ct", "show", "999999")
    assert r.returncode == 1 and "no finding 999999" in r.stderr
    r = relay.pw("ct", "ack", "999999")
    assert r.returncode == 1 and "no finding 999999" in r.stderr
    for args in (["ct"], ["ct", "show"], ["ct", "show", "x"], ["ct", "ack", "-1"],
                 ["ct", "list", "extra"], ["ct", "nonsense"]):
        assert relay.pw(*args).returncode == 2, args
