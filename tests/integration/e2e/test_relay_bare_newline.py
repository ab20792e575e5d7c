"""SMTP smuggling through the relay: a "." next to a bare CR or bare LF in message data.

A client sends, after DATA, text with a fake end of data (every variant: "\\r.\\r\\n",
"\\r.\\r", "\\n.\\n", "\\r\\n.\\n", "\\n.\\r\\n") followed by a forged transaction, then the
real end. Receivers that end lines at a bare CR, at a bare LF or only at CRLF (scripted:
no real program ends lines at a bare CR) must each get exactly ONE message per message
sent, in both [relay] bare_newline modes, and never a bare CR or bare LF on the wire.
The control case shows the receivers would be fooled by the same octets sent directly.
"""

import socket
import time

import pytest

from pwtest import net
from pwtest.mailcheck import uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

VARIANTS = [b"\r.\r\n", b"\r.\r", b"\n.\n", b"\r\n.\n", b"\n.\r\n"]
EOLS = ("cr", "lf", "crlf")


def payload(variant, tag):
    """Message data with a fake end (variant) and a forged second transaction after it."""
    return (b"From: <a@other.test>\r\nSubject: " + tag.encode() + b"\r\n\r\ntext" + variant +
            b"MAIL FROM:<x@evil.example>\r\nRCPT TO:<victim@evil.example>\r\nDATA\r\n"
            b"Subject: forged\r\n\r\nforged\r\n.\r\n")


class RawClient:
    """Sends octets as given: smtplib would turn bare CR and LF into CRLF."""

    def __init__(self, addr, port):
        self.sock = socket.create_connection((addr, port), timeout=20)
        self.buf = b""
        assert self.reply().startswith(b"220")
        assert self.cmd(b"EHLO client.example.test").startswith(b"250")

    def reply(self):
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if line[3:4] == b" ":
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return line
            d = self.sock.recv(65536)
            if not d:
                raise EOFError(self.buf)
            self.buf += d

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def transaction(self, sender, rcpts, data):
        """MAIL, RCPT..., DATA, data; returns the reply to the data's end."""
        assert self.cmd(b"MAIL FROM:<%s>" % sender.encode()).startswith(b"250")
        for r in rcpts:
            assert self.cmd(b"RCPT TO:<%s>" % r.encode()).startswith(b"250")
        assert self.cmd(b"DATA").startswith(b"354")
        self.sock.sendall(data)
        return self.reply()

    def close(self):
        try:
            self.cmd(b"QUIT")
        finally:
            self.sock.close()


def bare(raw):
    """True when raw holds a CR not before LF or an LF not after CR."""
    return b"\r" in raw.replace(b"\r\n", b"") or b"\n" in raw.replace(b"\r\n", b"")


@pytest.fixture
def receivers(smtp_server, zones):
    """One receiver per line-end rule, each the MX of a domain of its own: {eol: (srv, rcpt)}."""
    out = {}
    for eol in EOLS:
        srv = smtp_server("notls", eol=eol, hostname="mx-%s.example.test" % eol)
        dom = zones.mx("example.test", uniq("eol%s" % eol), srv.addr)
        out[eol] = (srv, "user@" + dom)
    zones.publish()
    return out


def settle(srv, n):
    """Wait for n messages, then a moment more: no further message may come."""
    srv.wait_for_messages(n, timeout=30)
    time.sleep(1.5)
    return list(srv.messages)


def check_receiver(eol, srv, tags):
    msgs = settle(srv, len(tags))
    assert len(msgs) == len(tags), (eol, msgs)
    got = []
    for m in msgs:
        assert m.mail_from != "x@evil.example", (eol, m)
        assert "victim@evil.example" not in m.rcpts, (eol, m)
        assert not bare(m.raw), (eol, m.raw)
        got += [t for t in tags if b"Subject: %s\r\n" % t.encode() in m.data]
    assert sorted(got) == sorted(tags), (eol, got)   # each message once, none lost
    cmds = srv.all_commands()
    assert not [c for c in cmds if "evil.example" in c], (eol, cmds)
    assert len([c for c in cmds if c.upper().startswith("MAIL")]) == len(tags), (eol, cmds)


def test_smuggled_end_is_content_after_normalising(make_relay, receivers):
    relay = make_relay()
    rcpts = [receivers[e][1] for e in EOLS]
    c = RawClient(relay.listen_addr, relay.port)
    tags = []
    for i, v in enumerate(VARIANTS):
        tag = "variant%d" % i
        tags.append(tag)
        reply = c.transaction("a@other.test", rcpts, payload(v, tag))
        assert reply.startswith(b"250 2.0.0"), (v, reply)
    c.close()
    for eol in EOLS:
        srv, _ = receivers[eol]
        check_receiver(eol, srv, tags)
        for m in srv.messages:
            # the smuggled commands arrived as lines of the one message
            assert b"MAIL FROM:<x@evil.example>" in m.data, (eol, m.data)
    relay.wait_queue_empty()


def test_smuggling_is_refused_in_reject_mode(make_relay, receivers):
    relay = make_relay(relay_bare_newline="reject")
    rcpts = [receivers[e][1] for e in EOLS]
    c = RawClient(relay.listen_addr, relay.port)
    for v in VARIANTS:
        reply = c.transaction("a@other.test", rcpts, payload(v, "refused"))
        assert reply == b"550 5.5.2 Error: bare <CR> or <LF> received", (v, reply)
    # control: a clean message on the same connection is accepted and delivered once
    reply = c.transaction("a@other.test", rcpts, payload(b"\r\n", "clean"))
    assert reply.startswith(b"250 2.0.0"), reply
    c.close()
    for eol in EOLS:
        srv, _ = receivers[eol]
        check_receiver(eol, srv, ["clean"])
    relay.wait_queue_empty()


@pytest.mark.parametrize("eol,variant", [("cr", b"\r.\r\n"), ("cr", b"\r.\r"),
                                         ("lf", b"\n.\n"), ("lf", b"\r\n.\n")])
def test_control_receivers_are_fooled_by_the_raw_octets(smtp_server, eol, variant):
    """The same octets sent straight to the receiver give it two messages: the receivers
    are as weak as the test needs them to be."""
    srv = smtp_server("notls", eol=eol)
    c = RawClient(srv.addr, srv.port)
    c.transaction("a@other.test", ["user@example.test"], payload(variant, "direct"))
    c.reply()   # the reply to the smuggled transaction's end
    c.close()
    msgs = net.wait_until(lambda: srv.messages if len(srv.messages) >= 2 else None, 10,
                          what="two messages")
    assert msgs[1].mail_from == "x@evil.example"
