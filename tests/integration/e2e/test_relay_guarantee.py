"""The relay end to end against real peers: Knot (DNSSEC), Postfix MX hosts, hostile MX
servers. Each test says who received the message, who did not, and what the sender was told.
"""

import smtplib
import subprocess
import time

import pytest

from pwtest import net
from pwtest.mailcheck import (message, queue_message, rcpt_states, report_parts,
                              sender_addr, status_per_recipient, uniq)

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

HOSTILE_MODES = ("notls", "454", "garbage", "tls10", "tls11", "weak", "anon", "inject")


def _user(relay, addr, guarantee):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


def _assert_no_more_mail(receiver, rcpt, count, wait=3.0):
    time.sleep(wait)
    assert len(receiver.messages(rcpt)) == count, receiver.messages(rcpt)


# -- guarantee off ----------------------------------------------------------------

def test_guarantee_off_delivers_over_tls_to_postfix(relay, zones, pf_tls):
    dom = zones.mx("example.test", uniq("good"), pf_tls.addr)
    zones.publish()
    s, r = sender_addr(), "bob@" + dom
    _user(relay, s, "off")
    assert relay.send(s, [r], message(s, [r], "plain tls")) == {}
    got = pf_tls.wait_for_message(r, timeout=30)
    proto, cipher = pf_tls.tls_of(got)
    assert proto in ("TLSv1.2", "TLSv1.3"), proto
    assert b"Subject: plain tls" in got
    relay.wait_queue_empty()
    d = [x for x in relay.deliveries() if x.get("rcpt") == r]
    assert d and d[-1]["outcome"] == "delivered" and d[-1]["tls"] == proto


def test_guarantee_off_without_starttls_delivers_in_plaintext(relay, zones, pf_plain,
                                                             pf_notify):
    dom = zones.mx("insecure.test", uniq("plain"), pf_plain.addr)
    zones.publish()
    s, r = sender_addr(), "carol@" + dom
    _user(relay, s, "off")
    relay.send(s, [r], message(s, [r], "plaintext ok"))
    got = pf_plain.wait_for_message(r, timeout=30)
    assert pf_plain.tls_of(got) is None
    relay.wait_queue_empty()
    assert pf_notify.messages(s) == []


# -- guarantee on ------------------------------------------------------------------

def test_guarantee_on_stops_every_bad_mx_and_notifies_once(relay, zones, pf_tls, pf_notify,
                                                          smtp_server, test_ca):
    good_dom = zones.mx("example.test", uniq("good"), pf_tls.addr)
    bad = {}
    servers = {}
    for mode in HOSTILE_MODES:
        srv = smtp_server(mode)
        servers[mode] = srv
        dom = zones.mx("example.test", uniq(mode), srv.addr)
        bad["rcpt-%s@%s" % (mode, dom)] = "mx-" + dom
    # DANE mismatch: the zone publishes a TLSA for a key the server does not use.
    published = test_ca.issue("mx-dane.example.test", stem="dane-published")
    dane_srv = smtp_server("sink", cert=test_ca.issue("mx-dane.example.test", "x.example.test",
                                                      stem="dane-served"))
    servers["dane"] = dane_srv
    dom = zones.mx("example.test", uniq("dane"), dane_srv.addr, tlsa=[published.tlsa_311()])
    bad["rcpt-dane@" + dom] = "mx-" + dom
    # BOGUS DNSSEC: the MX itself would be fine.
    bogus_dom = zones.mx("bogus.test", uniq("bogus"), pf_tls.addr)
    bad["rcpt-bogus@" + bogus_dom] = None
    zones.publish()

    s = sender_addr()
    good = "good@" + good_dom
    _user(relay, s, "on")
    rcpts = [good] + list(bad)
    assert relay.send(s, rcpts, message(s, rcpts, "guarantee on")) == {}

    got = pf_tls.wait_for_message(good, timeout=60)
    assert pf_tls.tls_of(got)[0] in ("TLSv1.2", "TLSv1.3")
    note = pf_notify.wait_for_message(s, timeout=90)
    _assert_no_more_mail(pf_notify, s, 1)

    # No stopped recipient got anything, and no hostile server saw a body.
    assert pf_tls.messages("rcpt-bogus@" + bogus_dom) == []
    for mode, srv in servers.items():
        assert not srv.body_received, "%s server received a message body" % mode
        assert srv.messages == []

    # The queue holds every stopped recipient.
    entry = queue_message(relay, s)
    states = rcpt_states(entry)
    for r in bad:
        assert states.get(r) == "held", (r, states)
    assert states.get(good, "delivered") == "delivered"

    # One notification: null sender, MAILER-DAEMON, 5.7.10 per stopped recipient.
    msg, human, status = report_parts(note)
    assert msg["Return-Path"].strip() == "<>"
    assert msg["From"].addresses[0].addr_spec.lower() == "mailer-daemon@relay.example.test"
    per = status_per_recipient(status)
    assert set(per) == {r.lower() for r in bad}, per
    assert all(v == "5.7.10" for v in per.values()), per
    assert good not in human
    for r, mx in bad.items():
        assert r in human, r
        if mx:
            assert mx in human, mx
    assert entry["id"] in human
    assert "postwarden queue release %s" % entry["id"] in human
    for word in ("TLS", "STARTTLS"):
        assert word in human


def test_dane_ee_match_delivers(relay, zones, pf_tls):
    cert_tlsa = pf_tls.cert.tlsa_311()
    dom = zones.mx("example.test", uniq("daneee"), pf_tls.addr, tlsa=[cert_tlsa],
                   mx_host="mx1.example.test")
    zones.publish()
    s, r = sender_addr(), "dane@" + dom
    _user(relay, s, "on")
    relay.send(s, [r], message(s, [r], "dane-ee"))
    pf_tls.wait_for_message(r, timeout=30)
    relay.wait_queue_empty()
    d = [x for x in relay.deliveries() if x.get("rcpt") == r]
    assert d[-1]["dane"] == "pass" and d[-1]["outcome"] == "delivered", d


def test_dane_ta_match_delivers(relay, zones, pf_tls, test_ca):
    dom = zones.mx("example.test", uniq("daneta"), pf_tls.addr, tlsa=[test_ca.tlsa_201()],
                   mx_host="mx1.example.test")
    zones.publish()
    s, r = sender_addr(), "danta@" + dom
    _user(relay, s, "on")
    relay.send(s, [r], message(s, [r], "dane-ta"))
    pf_tls.wait_for_message(r, timeout=30)
    d = [x for x in relay.deliveries() if x.get("rcpt") == r]
    assert d[-1]["dane"] == "pass", d


def test_null_mx_bounces(relay, zones, pf_notify):
    dom = "%s.example.test" % uniq("nullmx")
    zones.raw("example.test", dom + ".", "MX", "0 .")
    zones.publish()
    s, r = sender_addr(), "nobody@" + dom
    _user(relay, s, "off")
    relay.send(s, [r], message(s, [r], "to a null MX"))
    note = pf_notify.wait_for_message(s, timeout=60)
    msg, human, status = report_parts(note)
    per = status_per_recipient(status)
    assert per.get(r) == "5.1.10", per
    assert r in human
    relay.wait_queue_empty()


def test_guarantee_off_for_a_while(relay, zones, smtp_server, pf_notify):
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq("notls"), srv.addr)
    zones.publish()
    s, r = sender_addr(), "x@" + dom
    _user(relay, s, "on")
    relay.pw("user", "guarantee", s, "off", "--for", "1m", check=True)
    # --for only goes with off.
    assert relay.pw("user", "guarantee", s, "on", "--for", "1m").returncode == 2
    relay.send(s, [r], message(s, [r], "while off"))
    m = srv.wait_for_messages(1, timeout=30)[0]
    assert m.tls_version is None and m.rcpts == [r]
    relay.wait_queue_empty()
    assert pf_notify.messages(s) == []

    # A short pause ends by itself: the guarantee is back on.
    relay.pw("user", "guarantee", s, "off", "--for", "2s", check=True)
    time.sleep(3)
    relay.send(s, [r], message(s, [r], "back on"))
    pf_notify.wait_for_message(s, timeout=60)
    assert len(srv.messages) == 1 and srv.body_received


def test_queue_release_sends_held_recipient_once(relay, zones, smtp_server, pf_notify):
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq("rel"), srv.addr)
    zones.publish()
    s, r = sender_addr(), "held@" + dom
    _user(relay, s, "on")
    relay.send(s, [r], message(s, [r], "release me"))
    entry = relay.wait_queue(lambda q: any(x["sender"] == s and rcpt_states(x).get(r) == "held"
                                           for x in q), timeout=60, what="held recipient")
    qid = [x for x in entry if x["sender"] == s][0]["id"]
    pf_notify.wait_for_message(s, timeout=60)
    assert not srv.body_received
    relay.pw("queue", "release", qid, check=True)
    m = srv.wait_for_messages(1, timeout=30)[0]
    assert m.rcpts == [r] and b"Subject: release me" in m.data
    relay.wait_queue_empty()
    time.sleep(3)
    assert len(srv.messages) == 1
    # The message is gone: a second release fails and sends nothing.
    assert relay.pw("queue", "release", qid).returncode == 1
    time.sleep(1)
    assert len(srv.messages) == 1


def test_tls_required_no_header_lifts_the_guarantee(relay, zones, smtp_server, pf_notify):
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq("tlsrpt"), srv.addr)
    zones.publish()
    s, r = sender_addr(), "report@" + dom
    _user(relay, s, "on")
    relay.send(s, [r], message(s, [r], "tls report", headers=["TLS-Required: No"]))
    m = srv.wait_for_messages(1, timeout=30)[0]
    assert m.tls_version is None and m.rcpts == [r]
    relay.wait_queue_empty()
    assert pf_notify.messages(s) == []


def test_german_notification(make_relay, zones, smtp_server, pf_notify):
    relay = make_relay(guarantee_language="de")
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq("de"), srv.addr)
    zones.publish()
    s, r = sender_addr(), "empfaenger@" + dom
    _user(relay, s, "on")
    relay.send(s, [r], message(s, [r], "auf deutsch"))
    note = pf_notify.wait_for_message(s, timeout=60)
    msg, human, status = report_parts(note)
    assert status_per_recipient(status) == {r: "5.7.10"}
    assert r in human and "postwarden queue release" in human
    low = human.lower()
    assert any(w in low for w in ("empfänger", "verschlüssel", "zugestellt", "nachricht")), human
    assert "could not" not in low and "recipient" not in low, human
    assert not srv.body_received


def test_guarantee_default_on_for_new_accounts(make_relay, zones, smtp_server, pf_notify):
    relay = make_relay(guarantee_default="on")
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq("defon"), srv.addr)
    zones.publish()
    s, r = sender_addr(), "d@" + dom
    relay.pw("user", "add", s, check=True)
    relay.send(s, [r], message(s, [r], "default on"))
    pf_notify.wait_for_message(s, timeout=60)
    assert not srv.body_received


# -- who may use the relay --------------------------------------------------------------

def test_untrusted_client_gets_554(make_relay, zones, pf_tls):
    relay = make_relay(relay_trusted_networks="127.0.0.1/32")
    net.ensure_loopback_addr("127.0.0.9")
    dom = zones.mx("example.test", uniq("trust"), pf_tls.addr)
    zones.publish()
    s, r = sender_addr(), "t@" + dom
    codes = []
    try:
        relay.send(s, [r], message(s, [r], "untrusted"), source_address=("127.0.0.9", 0))
    except smtplib.SMTPConnectError as e:
        codes.append(e.smtp_code)
    except smtplib.SMTPRecipientsRefused as e:
        codes += [c for c, _ in e.recipients.values()]
    except smtplib.SMTPSenderRefused as e:
        codes.append(e.smtp_code)
    except smtplib.SMTPResponseException as e:
        codes.append(e.smtp_code)
    assert 554 in codes, codes
    # The trusted address still relays.
    relay.pw("user", "add", s, check=True)
    assert relay.send(s, [r], message(s, [r], "trusted")) == {}
    pf_tls.wait_for_message(r, timeout=30)
    assert len(pf_tls.messages(r)) == 1


# -- Postfix in front ------------------------------------------------------------------

def test_postfix_sender_in_front_of_the_relay(relay, zones, pf_tls, pf_sender):
    dom = zones.mx("example.test", uniq("front"), pf_tls.addr)
    zones.publish()
    s, r = sender_addr(), "end2end@" + dom
    relay.pw("user", "add", s, check=True)
    pf_sender.set_relayhost("[127.0.0.1]:%d" % relay.port)
    out = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % pf_sender.port,
                          "--from", s, "--to", r, "--header", "Subject: through postfix"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    got = pf_tls.wait_for_message(r, timeout=60)
    assert b"Subject: through postfix" in got
    assert pf_tls.tls_of(got)[0] in ("TLSv1.2", "TLSv1.3")
    net.wait_until(lambda: any(r in l for l in pf_sender.sent_lines()), 20,
                   what="the sending Postfix to log status=sent")
