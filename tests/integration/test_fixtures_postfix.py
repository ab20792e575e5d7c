"""The Postfix peers: the TLS receiver stores mail per recipient and records the TLS
session, the plain receiver offers no STARTTLS, receivers share one port on different
addresses, and the sending Postfix relays everything to its relayhost."""

import smtplib
import subprocess
import uuid

from pwtest import net


def _swaks(*args):
    r = subprocess.run(["swaks", "--helo", "client.example.test"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return r


def _uniq(domain):
    return "u%s@%s" % (uuid.uuid4().hex[:10], domain)


def test_receiver_stores_mail_per_recipient_over_starttls(pf_tls, test_ca):
    a, b, c = _uniq("example.test"), _uniq("other.test"), _uniq("example.test")
    r = _swaks("--server", "%s:%d" % (pf_tls.addr, pf_tls.port), "--from", "s@other.test",
               "--to", "%s,%s" % (a, b), "--tls", "--tls-verify", "--tls-ca-path",
               test_ca.cert_path, "--tls-sni", "mx1.example.test",
               "--header", "Subject: fixture check")
    assert r.returncode == 0, r.stdout + r.stderr
    ma = pf_tls.wait_for_message(a, timeout=20)
    mb = pf_tls.wait_for_message(b, timeout=20)
    assert b"Subject: fixture check" in ma and b"Subject: fixture check" in mb
    assert pf_tls.messages(c) == []
    proto, cipher = pf_tls.tls_of(ma)
    assert proto in ("TLSv1.3", "TLSv1.2") and cipher, (proto, cipher)
    assert pf_tls.parse(ma)["Delivered-To"] == a
    assert a in pf_tls.recipients() and b in pf_tls.recipients()


def test_receiver_without_tls_offers_no_starttls(pf_plain):
    with smtplib.SMTP(pf_plain.addr, pf_plain.port, timeout=10) as s:
        s.ehlo("client.example.test")
        assert not s.has_extn("starttls")
    a = _uniq("example.test")
    r = _swaks("--server", "%s:%d" % (pf_plain.addr, pf_plain.port), "--from", "s@other.test",
               "--to", a)
    assert r.returncode == 0, r.stdout + r.stderr
    m = pf_plain.wait_for_message(a, timeout=20)
    assert pf_plain.tls_of(m) is None


def test_receivers_share_a_port_on_different_addresses(pf_tls, pf_plain):
    assert pf_tls.port == pf_plain.port and pf_tls.addr != pf_plain.addr
    a, b = _uniq("example.test"), _uniq("example.test")
    for srv, rcpt in ((pf_tls, a), (pf_plain, b)):
        r = _swaks("--server", "%s:%d" % (srv.addr, srv.port), "--from", "s@other.test",
                   "--to", rcpt)
        assert r.returncode == 0, r.stdout + r.stderr
    pf_tls.wait_for_message(a, timeout=20)
    pf_plain.wait_for_message(b, timeout=20)
    assert pf_tls.messages(b) == [] and pf_plain.messages(a) == []


def test_receiver_counts_messages(pf_tls):
    a = _uniq("example.test")
    for i in range(2):
        with smtplib.SMTP(pf_tls.addr, pf_tls.port, timeout=10) as s:
            s.starttls()
            s.sendmail("s@other.test", [a], b"Subject: n%d\r\n\r\nbody\r\n" % i)
    second = pf_tls.wait_for_message(a, timeout=20, count=2)
    assert len(pf_tls.messages(a)) == 2
    assert b"Subject: n" in second


def test_sending_postfix_relays_to_relayhost(pf_sender, smtp_server):
    sink = smtp_server("sink", addr="127.0.0.1", port=None)
    pf_sender.set_relayhost("[%s]:%d" % (sink.addr, sink.port))
    rcpt = _uniq("example.test")
    r = _swaks("--server", "127.0.0.1:%d" % pf_sender.port, "--from", "alice@other.test",
               "--to", rcpt, "--header", "Subject: via postfix")
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = sink.wait_for_messages(1, timeout=30)
    m = msgs[0]
    assert m.mail_from == "alice@other.test" and m.rcpts == [rcpt]
    assert b"Subject: via postfix" in m.data
    # The sending Postfix uses STARTTLS when the next hop offers it.
    assert m.tls_version in ("TLSv1.3", "TLSv1.2")
    # Postfix logs the delivery once the sink's 250 has arrived.
    net.wait_until(lambda: any(rcpt in l for l in pf_sender.sent_lines()), 10,
                   what="status=sent for %s in the sender's maillog" % rcpt)
