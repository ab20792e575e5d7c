"""The CT monitor inside serve: it follows the RFC 6962 test log every [ctmon] interval
under the log's lease, and mails each unexpected certificate and each log misbehaviour,
once, through the relay itself to a real Postfix (the fixture pf_notify, MX of
other.test)."""
import email
import email.policy
import os
import time

import pytest

from pwtest import net
from pwtest.ctlog_server import CTTestLogs

pytestmark = pytest.mark.engines

TO = "ct-alerts@other.test"


@pytest.fixture
def logs(workdir):
    t = CTTestLogs(os.path.join(workdir, "ct"), names=("www.example.test",), filler=10).start()
    yield t
    t.stop()


def subjects(pf_notify):
    out = []
    for raw in pf_notify.messages(TO):
        m = email.message_from_bytes(raw if isinstance(raw, bytes) else raw.encode(),
                                     policy=email.policy.default)
        out.append((str(m["Subject"]), m.get_content()))
    return out


def test_serve_mails_each_unexpected_certificate_once_and_log_alerts(make_relay, zones, logs,
                                                                     pf_notify):
    zones.publish()
    relay = make_relay(ctmon_log_list=logs.log_list_path, ctmon_watch=".example.test",
                       ctmon_allow_private="on", ctmon_start="backfill", ctmon_interval="1s",
                       ctmon_alert_to=TO)
    pf_notify.wait_for_message(TO, timeout=60, count=2)
    got = subjects(pf_notify)
    assert [s for s, _ in got] == ["[postwarden] unexpected certificate for www.example.test"] * 2
    ids = sorted(f["id"] for f in relay.pw_json("ct", "list"))
    for _, body in got:
        assert "the certificate's key is none of [ctmon] expected_keys" in body
        assert any("postwarden ct ack %d" % i in body for i in ids), body
    # later rounds find nothing new and mail nothing again
    rounds = len(relay.log_lines("ct_round"))
    net.wait_until(lambda: len(relay.log_lines("ct_round")) >= rounds + 2, 20,
                   what="two more rounds")
    assert len(pf_notify.messages(TO)) == 2
    # a log that misbehaves: one alert mail with the evidence; the log is not advanced
    logs.rfc.forge_sth = True
    pf_notify.wait_for_message(TO, timeout=60, count=3)
    subject, body = subjects(pf_notify)[-1]
    assert subject == "[postwarden] CT log misbehaved: bad_signature", subject
    assert "Evidence:" in body and "tree_head_signature" in body
    time.sleep(3)
    assert len(pf_notify.messages(TO)) == 3   # the same alert is not mailed again...
    kinds = relay.database.rows("SELECT kind, alerted FROM ct_alerts")
    assert all(k["alerted"] for k in kinds) and {k["kind"] for k in kinds} == {"bad_signature"}
