"""The downgrade memory end to end: a receiver that offered STARTTLS with a certificate valid
for its name (from the test CA, trusted through [relay] ca_file) stops offering it. The next
message is deferred for [downgrade] defer_for instead of going out in plaintext, the operator
is told once (log line, metric, mail to alert_to), and after defer_for the message goes out as
the sender's (opportunistic) policy allows. `tls-history` shows the record, `forget` resets it;
a receiver that never offered TLS is not deferred.
"""

import time

import pytest

from pwtest import net, prom
from pwtest.mailcheck import message, sender_addr, uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

DEFER_FOR = 6
ALERT_TO = "ops-downgrade@other.test"


def _user(relay, addr, guarantee):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


def _deliveries(relay, rcpt):
    return [d for d in relay.deliveries() if d.get("rcpt") == rcpt]


def _alerts_logged(relay):
    return [l for l in relay.log_lines("tls_downgrade") if "event=tls_downgrade " in l]


@pytest.fixture
def dg_relay(make_relay, test_ca):
    port = net.free_port("127.0.0.1")
    r = make_relay(relay_ca_file=test_ca.cert_path, relay_retry_min="1s",
                   relay_retry_max="1s", downgrade_defer_for="%ds" % DEFER_FOR,
                   downgrade_alert_to=ALERT_TO, metrics_listen="127.0.0.1:%d" % port)
    r.metrics_port = port
    return r


def test_stripped_starttls_is_deferred_alerted_once_then_sent(dg_relay, zones, smtp_server,
                                                               pf_notify):
    relay = dg_relay
    label = uniq("dg")
    host = "mx-%s.example.test" % label
    mx = smtp_server("sink", hostname=host)
    dom = zones.mx("example.test", label, mx.addr)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "off")
    r1, r2 = "first@" + dom, "second@" + dom

    # 1. valid TLS: delivered and remembered
    relay.send(s, [r1], message(s, [r1], "over tls"))
    assert mx.wait_for_messages(1, timeout=30)[0].tls
    h = relay.pw_json("tls-history", dom)
    assert h["tls"] and h["cert_valid"] and h["tls_version"].startswith("TLS"), h
    assert h["last_good"] > 0 and h["downgrade_since"] == 0 and h["mx"] == host, h

    # 2. the same address now offers no STARTTLS (an attacker stripping it)
    addr = mx.addr
    mx.stop()
    plain = smtp_server("notls", addr=addr, hostname=host)
    t0 = time.monotonic()
    relay.send(s, [r2], message(s, [r2], "after the downgrade"))
    d = net.wait_until(lambda: _deliveries(relay, r2), 30, what="first attempt")[0]
    assert d["outcome"] == "deferred", d
    assert "downgrade" in d["reason"], d
    h = relay.pw_json("tls-history", dom)
    assert h["downgrade_since"] > 0 and "no TLS" in h["downgrade"], h
    assert h["tls_version"].startswith("TLS"), h        # the good sighting stays on record

    # nothing went out in plaintext within defer_for, though it was retried
    net.wait_until(lambda: len(_deliveries(relay, r2)) >= 3, DEFER_FOR, what="retries")
    assert plain.messages == [] and not plain.body_received

    # 3. after defer_for: sent in plaintext, as opportunistic policy allows
    got = plain.wait_for_messages(1, timeout=DEFER_FOR + 30)[0]
    assert not got.tls and got.rcpts == [r2]
    assert time.monotonic() - t0 >= DEFER_FOR - 1
    d = net.wait_until(lambda: [x for x in _deliveries(relay, r2)
                                if x["outcome"] == "delivered"], 30, what="delivered")[0]
    assert d["tls"] == "none", d

    # told once: one log line, metric 1, one mail to alert_to
    assert len(_alerts_logged(relay)) == 1, _alerts_logged(relay)
    assert prom.sample(relay.metrics_port, "postwarden_tls_downgrades_total") == 1
    alert = pf_notify.wait_for_message(ALERT_TO, timeout=60)
    assert ("TLS downgrade at %s" % dom).encode() in alert
    assert b"no TLS" in alert and host.encode() in alert
    time.sleep(2)
    assert len(pf_notify.messages(ALERT_TO)) == 1

    # the record now says what was seen; the next message is not deferred again
    h = relay.pw_json("tls-history", dom)
    assert not h["tls"] and h["last_good"] == 0 and h["downgrade_since"] == 0, h
    text = relay.pw("tls-history", dom, check=True).stdout
    assert "TLS:           none" in text and dom in text

    # 4. forget resets it
    out = relay.pw("tls-history", "forget", dom, check=True).stdout
    assert "forgot" in out
    assert relay.pw_json("tls-history", dom)["record"] is None
    assert "nothing remembered" in relay.pw("tls-history", dom, check=True).stdout


def test_receiver_that_never_offered_tls_is_not_deferred(dg_relay, zones, smtp_server):
    relay = dg_relay
    label = uniq("dgctl")
    mx = smtp_server("notls", hostname="mx-%s.example.test" % label)
    dom = zones.mx("example.test", label, mx.addr)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "off")
    for i in range(2):
        r = "c%d@%s" % (i, dom)
        relay.send(s, [r], message(s, [r], "plain %d" % i))
        assert not mx.wait_for_messages(i + 1, timeout=30)[i].tls
        d = net.wait_until(lambda: _deliveries(relay, r), 30, what="attempt")[0]
        assert d["outcome"] == "delivered", d
    h = relay.pw_json("tls-history", dom)
    assert not h["tls"] and h["last_good"] == 0 and h["downgrade_since"] == 0, h
    assert _alerts_logged(relay) == []
    assert prom.sample(relay.metrics_port, "postwarden_tls_downgrades_total") == 0


def test_invalid_certificate_after_valid_one_is_a_downgrade(dg_relay, zones, smtp_server,
                                                           test_ca):
    """The same name, now with a certificate for another name: deferred (within defer_for)."""
    relay = dg_relay
    label = uniq("dgcert")
    host = "mx-%s.example.test" % label
    mx = smtp_server("sink", hostname=host)
    dom = zones.mx("example.test", label, mx.addr)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "off")
    r1, r2 = "a@" + dom, "b@" + dom
    relay.send(s, [r1], message(s, [r1], "valid"))
    mx.wait_for_messages(1, timeout=30)
    addr = mx.addr
    mx.stop()
    wrong = smtp_server("sink", addr=addr, hostname=host,
                        cert=test_ca.issue("someone-else.example.test"))
    relay.send(s, [r2], message(s, [r2], "wrong certificate"))
    d = net.wait_until(lambda: _deliveries(relay, r2), 30, what="first attempt")[0]
    assert d["outcome"] == "deferred" and "not valid for the MX name" in d["reason"], d
    assert wrong.messages == []
    assert len(_alerts_logged(relay)) == 1

    # a sender with the guarantee is not deferred by the memory: the guarantee alone decides
    # (TLS without DANE, certificate unchecked), so it goes at once
    g, r3 = sender_addr(), "g@" + dom
    _user(relay, g, "on")
    relay.send(g, [r3], message(g, [r3], "guarantee"))
    got = wrong.wait_for_messages(1, timeout=30)[0]
    assert got.rcpts == [r3] and got.tls
    assert len(_alerts_logged(relay)) == 1
    assert not [x for x in _deliveries(relay, r3) if x["outcome"] == "deferred"]
