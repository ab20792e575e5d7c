"""REQUIRETLS (RFC 8689) end to end.

In: the listener offers REQUIRETLS only after STARTTLS, takes `MAIL FROM:<...> REQUIRETLS`
over TLS and refuses it in the clear (530 5.7.10); the flag stays with the message across a
restart. Postfix 3.7 in front does not speak REQUIRETLS (it refuses the parameter), so a
user's client asks for it with the header `Require-TLS: yes`, which passes through Postfix.

Out: a REQUIRETLS message goes to an MX host authenticated by DANE that offers REQUIRETLS,
with REQUIRETLS on its MAIL command; to a DANE host without REQUIRETLS, or one offering
REQUIRETLS without DANE, it bounces with 5.7.30 and the notification says why. No packaged
MTA offers REQUIRETLS, so those MX hosts are the scripted servers of pwtest/hostile.py.
"""

import smtplib
import subprocess

import pytest

from pwtest import net
from pwtest.mailcheck import message, report_parts, sender_addr, status_per_recipient, uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines


@pytest.fixture
def rt_relay(make_relay, test_ca):
    cert = test_ca.issue("relay.example.test", stem="relay-listener")
    return make_relay(relay_tls_cert=cert.chain_path, relay_tls_key=cert.key_path,
                      relay_retry_min="1s", relay_retry_max="1s")


def _user(relay, addr):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, "off", check=True)


def _mx(zones, smtp_server, label, dane=True, requiretls=True):
    host = "mx-%s.example.test" % label
    extra = ("REQUIRETLS",) if requiretls else ()
    mx = smtp_server("sink", hostname=host, ehlo_extra=extra)
    tlsa = (mx.cert.tlsa_311(),) if dane else ()
    dom = zones.mx("example.test", label, mx.addr, tlsa=tlsa)
    zones.publish()
    return mx, dom, host


def _send_requiretls(relay, s, r, subject):
    with relay.smtp() as c:
        c.starttls()
        c.ehlo("client.example.test")
        assert c.has_extn("requiretls")
        c.sendmail(s, [r], message(s, [r], subject), mail_options=["REQUIRETLS"])


def _mail_commands(mx):
    return [c for c in mx.all_commands() if c.upper().startswith("MAIL")]


# -- in -------------------------------------------------------------------------------

def test_listener_offers_requiretls_only_after_starttls(rt_relay):
    with rt_relay.smtp() as c:
        assert c.has_extn("starttls")
        assert not c.has_extn("requiretls")
        code, text = c.mail("a@other.test", ["REQUIRETLS"])
        assert code == 530 and b"5.7.10" in text, (code, text)
        c.rset()
        c.starttls()
        c.ehlo("client.example.test")
        assert c.has_extn("requiretls")
        assert not c.has_extn("starttls")
        code, text = c.mail("a@other.test", ["REQUIRETLS"])
        assert code == 250, (code, text)
        code, text = c.docmd("RSET")
        code, text = c.mail("a@other.test", ["REQUIRETLS=yes"])
        assert code == 501, (code, text)


def test_relay_without_certificate_never_offers_requiretls(make_relay):
    relay = make_relay()
    with relay.smtp() as c:
        assert not c.has_extn("requiretls")
        code, _ = c.mail("a@other.test", ["REQUIRETLS"])
        assert code == 530


# -- out --------------------------------------------------------------------------------

def test_dane_mx_with_requiretls_gets_it_passed_on(rt_relay, zones, smtp_server):
    mx, dom, _ = _mx(zones, smtp_server, uniq("rtok"))
    s, r = sender_addr(), "rt@" + dom
    _user(rt_relay, s)
    _send_requiretls(rt_relay, s, r, "requiretls ok")
    got = mx.wait_for_messages(1, timeout=30)[0]
    assert got.tls and got.rcpts == [r]
    mails = _mail_commands(mx)
    assert mails and mails[-1].upper().endswith(" REQUIRETLS"), mails
    d = net.wait_until(lambda: [x for x in rt_relay.deliveries() if x.get("rcpt") == r], 30,
                       what="the delivery line")[-1]
    assert d["outcome"] == "delivered" and d["dane"] == "pass", d


def test_ordinary_message_does_not_carry_requiretls(rt_relay, zones, smtp_server):
    """The control: the same MX, a message without REQUIRETLS."""
    mx, dom, _ = _mx(zones, smtp_server, uniq("rtctl"))
    s, r = sender_addr(), "plain@" + dom
    _user(rt_relay, s)
    rt_relay.send(s, [r], message(s, [r], "ordinary"))
    mx.wait_for_messages(1, timeout=30)
    assert all("REQUIRETLS" not in m.upper() for m in _mail_commands(mx))


@pytest.mark.parametrize("dane,requiretls,why", [
    (True, False, "does not support REQUIRETLS"),
    (False, True, "authenticated neither by DNSSEC-signed TLSA records"),
])
def test_unfit_mx_bounces_with_5_7_30(rt_relay, zones, smtp_server, pf_notify, dane,
                                      requiretls, why):
    mx, dom, host = _mx(zones, smtp_server, uniq("rtno"), dane=dane, requiretls=requiretls)
    s, r = sender_addr(), "nort@" + dom
    _user(rt_relay, s)
    _send_requiretls(rt_relay, s, r, "requiretls refused")
    note = pf_notify.wait_for_message(s, timeout=60)
    _, human, status = report_parts(note)
    assert status_per_recipient(status) == {r: "5.7.30"}
    assert why in " ".join(human.split()), human
    assert host in human and "REQUIRETLS" in human
    assert mx.messages == [] and not mx.body_received
    assert _mail_commands(mx) == []


def test_requiretls_survives_a_restart(rt_relay, zones, smtp_server):
    label = uniq("rtrs")
    mx, dom, host = _mx(zones, smtp_server, label)
    addr, cert = mx.addr, mx.cert
    mx.stop()                         # not reachable: the message waits in the queue
    s, r = sender_addr(), "later@" + dom
    _user(rt_relay, s)
    _send_requiretls(rt_relay, s, r, "after restart")
    net.wait_until(lambda: [x for x in rt_relay.deliveries() if x.get("rcpt") == r], 30,
                   what="a deferred attempt")
    rt_relay.stop()
    rt_relay.start()
    mx2 = smtp_server("sink", addr=addr, hostname=host, cert=cert, ehlo_extra=("REQUIRETLS",))
    rt_relay.pw("queue", "flush", check=True)
    mx2.wait_for_messages(1, timeout=60)
    assert _mail_commands(mx2)[-1].upper().endswith(" REQUIRETLS")


# -- Postfix in front ----------------------------------------------------------------

def test_postfix_in_front_refuses_requiretls_header_passes(rt_relay, zones, smtp_server,
                                                          pf_sender, pf_notify):
    """Postfix 3.7 does not know REQUIRETLS: the parameter is refused at Postfix, and the
    Require-TLS: yes header is what reaches postwarden (over STARTTLS from Postfix)."""
    good, gdom, _ = _mx(zones, smtp_server, uniq("rtpf"))
    bad, bdom, _ = _mx(zones, smtp_server, uniq("rtpfno"), requiretls=False)
    s = sender_addr()
    _user(rt_relay, s)
    pf_sender.set_relayhost("[127.0.0.1]:%d" % rt_relay.port)
    with smtplib.SMTP("127.0.0.1", pf_sender.port, timeout=30) as c:
        c.ehlo("client.example.test")
        assert not c.has_extn("requiretls")
        code, text = c.mail(s, ["REQUIRETLS"])
        assert code == 555, (code, text)
    r1, r2 = "hdr@" + gdom, "hdr@" + bdom
    for r in (r1, r2):
        out = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % pf_sender.port,
                              "--from", s, "--to", r, "--header", "Require-TLS: yes",
                              "--header", "Subject: asked by header"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
    got = good.wait_for_messages(1, timeout=60)[0]
    assert got.tls and _mail_commands(good)[-1].upper().endswith(" REQUIRETLS")
    note = pf_notify.wait_for_message(s, timeout=60)
    _, human, status = report_parts(note)
    assert status_per_recipient(status) == {r2: "5.7.30"}
    assert bad.messages == []
    assert any("tls=TLS" in l for l in rt_relay.log_lines("smtpd_received")), \
        "Postfix did not use STARTTLS to the relay"


# -- TLS-Required: No -----------------------------------------------------------------

def test_requiretls_wins_over_tls_required_no(rt_relay, zones, smtp_server):
    """REQUIRETLS and "TLS-Required: No" on one message: the header is ignored (the sender's
    guarantee stays); the control without REQUIRETLS: the header lifts the guarantee."""
    mx, dom, _ = _mx(zones, smtp_server, uniq("rtno"))
    mx.stop()                         # both messages wait in the queue
    s = sender_addr()
    rt_relay.pw("user", "add", s, check=True)
    rt_relay.pw("user", "guarantee", s, "on", check=True)
    r1, r2 = "both@" + dom, "onlyno@" + dom
    with rt_relay.smtp() as c:
        c.starttls()
        c.ehlo("client.example.test")
        c.sendmail(s, [r1], message(s, [r1], "both", headers=["TLS-Required: No"]),
                   mail_options=["REQUIRETLS"])
        c.sendmail(s, [r2], message(s, [r2], "only no", headers=["TLS-Required: No"]))
    q = rt_relay.wait_queue(lambda q: len(q) == 2, what="both messages queued")
    both = [m for m in q if r1 in str(m)][0]
    only = [m for m in q if r2 in str(m)][0]
    assert both["guarantee"] and not both["tls_required_no"], both
    assert not only["guarantee"] and only["tls_required_no"], only
