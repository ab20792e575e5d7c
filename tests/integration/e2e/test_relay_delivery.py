"""How the relay talks to the next hop: DSN parameters passed on, no second host after a
connection lost behind the final dot, PIPELINING and SIZE, connection reuse and TLS session
resumption (and what the guarantee allows of them), one notification per message and event.

The MX hosts here are small recording servers (Recorder) whose behaviour each test chooses.
"""

import socket
import ssl
import threading
import time

import pytest

from pwtest import net
from pwtest.mailcheck import (message, report_parts, sender_addr, status_per_recipient,
                              uniq)

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

# The end of the hostile pool: mx_port is free there, and these tests use no smtp_server.
POOL = ["127.0.0.%d" % i for i in range(39, 29, -1)]


class Conn:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.buf = b""
        self.tls = None          # TLS version, or None
        self.resumed = False
        self.commands = []
        self.pipelined_mail = []  # per MAIL: were RCPT/DATA already there before the reply?

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def readline(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 8192:
                raise ValueError("line too long")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def peek_more(self, wait):
        """Collect what the client sends within `wait` seconds without an answer."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
            if chunk:
                self.buf += chunk
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        finally:
            self.sock.settimeout(30)


class Recorder(net.ThreadedListener):
    """An SMTP server that records everything. Options choose its behaviour."""

    def __init__(self, addr, port, cert=None, pipelining=True, size=None, dsn=False,
                 drop_after_dot=False, reject_rcpt=(), data_354_always=False,
                 hostname="mx.recorder.test"):
        self._listen_init(addr, port)
        self.pipelining, self.size, self.dsn = pipelining, size, dsn
        self.drop_after_dot = drop_after_dot
        self.reject_rcpt = reject_rcpt   # substrings: RCPT containing one gets 550
        self.data_354_always = data_354_always
        self.hostname = hostname
        self.ctx = None
        if cert is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert.chain_path, cert.key_path)
        self.messages = []       # (mail line, [rcpt lines], data)
        self.lone_dots = 0
        self.lock = threading.Condition()

    conn_timeout = 30

    def _new_conn(self, sock, peer):
        return Conn(sock, peer)

    def wait_messages(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("got %d of %d messages" % (len(self.messages), n))
                self.lock.wait(left)
            return list(self.messages)

    def commands(self, verb=None):
        with self.lock:
            cmds = [x for c in self.connections for x in c.commands]
        return [x for x in cmds if verb is None or x.upper().startswith(verb)]

    def _ehlo(self, c):
        ext = ["8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.pipelining:
            ext.append("PIPELINING")
        if self.size is not None:
            ext.append("SIZE %d" % self.size if self.size else "SIZE")
        if self.dsn:
            ext.append("DSN")
        if self.ctx is not None and c.tls is None:
            ext.append("STARTTLS")
        lines = [self.hostname] + ext
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", x)
                       for i, x in enumerate(lines))

    def _serve(self, c):
        try:
            self._session(c)
        except (EOFError, OSError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def _session(self, c):
        c.send("220 %s ESMTP recorder\r\n" % self.hostname)
        mail, rcpts = None, []
        while True:
            cmd = c.readline().decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            with self.lock:
                c.commands.append(cmd)
            if verb == "EHLO":
                mail, rcpts = None, []
                c.send(self._ehlo(c))
            elif verb == "HELO":
                c.send("250 %s\r\n" % self.hostname)
            elif verb == "STARTTLS" and self.ctx is not None and c.tls is None:
                c.send("220 2.0.0 go ahead\r\n")
                c.buf = b""
                c.sock = self.ctx.wrap_socket(c.sock, server_side=True)
                c.tls = c.sock.version()
                c.resumed = c.sock.session_reused
            elif verb == "MAIL":
                c.peek_more(0.3)
                c.pipelined_mail.append(b"RCPT" in c.buf.upper())
                mail, rcpts = cmd, []
                c.send("250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                if mail is None:
                    c.send("503 5.5.1 need MAIL\r\n")
                elif any(x in cmd for x in self.reject_rcpt):
                    c.send("550 5.1.1 no such user\r\n")
                else:
                    rcpts.append(cmd)
                    c.send("250 2.1.5 ok\r\n")
            elif verb == "DATA":
                if not rcpts and not self.data_354_always:
                    c.send("554 5.5.1 no valid recipients\r\n")
                    continue
                c.send("354 go on\r\n")
                lines = []
                while True:
                    line = c.readline()
                    if line == b".":
                        break
                    lines.append(line[1:] if line.startswith(b".") else line)
                if not rcpts:
                    with self.lock:
                        self.lone_dots += 1 if not lines else 0
                    c.send("554 5.5.1 no valid recipients\r\n")
                    continue
                with self.lock:
                    self.messages.append((mail, rcpts, b"\r\n".join(lines)))
                    self.lock.notify_all()
                if self.drop_after_dot:
                    c.sock.close()
                    return
                c.send("250 2.0.0 queued\r\n")
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                c.send("250 2.0.0 ok\r\n")
            elif verb == "NOOP":
                c.send("250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                c.send("221 2.0.0 bye\r\n")
                return
            else:
                c.send("502 5.5.2 unknown\r\n")


@pytest.fixture
def recorder(mx_port, test_ca):
    """Factory: recorder(tls=False, **options) -> a started Recorder on its own address."""
    started = []
    pool = list(POOL)

    def make(tls=False, **kw):
        addr = pool.pop(0)
        cert = test_ca.issue("mx-%s.example.test" % addr.replace(".", "-")) if tls else None
        r = Recorder(addr, mx_port, cert=cert, **kw).start()
        r.cert = cert
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


def _user(relay, addr, guarantee):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


def _deliveries(relay, rcpt):
    return [d for d in relay.deliveries() if d.get("rcpt") == rcpt]


def _wait_outcome(relay, rcpt, timeout=30):
    return net.wait_until(lambda: _deliveries(relay, rcpt), timeout,
                          what="a delivery attempt for %s" % rcpt)[-1]


# -- DSN parameters are passed on xtext-encoded ------------------------------------

def test_envid_and_orcpt_are_passed_on_xtext_encoded(relay, zones, recorder):
    mx = recorder(dsn=True)
    dom = zones.mx("example.test", uniq("xtext"), mx.addr)
    zones.publish()
    s, r = sender_addr(), "dsn@" + dom
    _user(relay, s, "off")
    with relay.smtp() as c:
        c.sendmail(s, [r], message(s, [r], "xtext"),
                   mail_options=["ENVID=a+2Bb+3Dc+20d"],
                   rcpt_options=["NOTIFY=FAILURE", "ORCPT=rfc822;x+2By+3D+20z@example.org"])
    mx.wait_messages(1)
    mail = mx.commands("MAIL")[0]
    rcpt = mx.commands("RCPT")[0]
    assert "ENVID=a+2Bb+3Dc+20d" in mail.split(), mail
    assert "ORCPT=rfc822;x+2By+3D+20z@example.org" in rcpt.split(), rcpt
    assert "NOTIFY=FAILURE" in rcpt.split(), rcpt


# -- connection lost after the final dot --------------------------------------------

def test_connection_lost_after_dot_defers_instead_of_next_mx(relay, zones, recorder):
    dropper = recorder(drop_after_dot=True)
    backup = recorder()
    label = uniq("dotdrop")
    dom = "%s.example.test" % label
    zones.raw("example.test", dom + ".", "MX", "10 mx1-%s.example.test." % label)
    zones.raw("example.test", dom + ".", "MX", "20 mx2-%s.example.test." % label)
    zones.raw("example.test", "mx1-%s.example.test." % label, "A", dropper.addr)
    zones.raw("example.test", "mx2-%s.example.test." % label, "A", backup.addr)
    zones.publish()
    s, r = sender_addr(), "once@" + dom
    _user(relay, s, "off")
    relay.send(s, [r], message(s, [r], "maybe delivered"))
    dropper.wait_messages(1)
    d = _wait_outcome(relay, r)
    assert d["outcome"] == "deferred" and d["status"] == "4.4.2", d
    assert d["mx"] == "mx1-%s.example.test" % label, d
    time.sleep(2)
    assert backup.messages == [] and backup.connections == [], "the message went to a second MX"
    assert len(dropper.messages) == 1


# -- PIPELINING -----------------------------------------------------------------------

def test_pipelining_sends_mail_rcpt_data_in_one_go(relay, zones, recorder, pf_notify):
    mx = recorder(pipelining=True, reject_rcpt=("nobody@",))
    dom = zones.mx("example.test", uniq("pipe"), mx.addr)
    zones.publish()
    s = sender_addr()
    good, bad = "yes@" + dom, "nobody@" + dom
    _user(relay, s, "off")
    relay.send(s, [good, bad], message(s, [good, bad], "pipelined"))
    mail, rcpts, data = mx.wait_messages(1)[0]
    assert [x.split()[1] for x in rcpts] == ["TO:<%s>" % good], rcpts
    assert b"Subject: pipelined" in data
    assert mx.connections[0].pipelined_mail == [True]
    note = pf_notify.wait_for_message(s, timeout=60)
    _, human, status = report_parts(note)
    assert status_per_recipient(status) == {bad: "5.1.1"}
    assert _wait_outcome(relay, bad)["outcome"] == "bounced"


def test_without_pipelining_commands_wait_for_replies(relay, zones, recorder):
    mx = recorder(pipelining=False, reject_rcpt=("nobody@",))
    dom = zones.mx("example.test", uniq("nopipe"), mx.addr)
    zones.publish()
    s = sender_addr()
    good, bad = "yes@" + dom, "nobody@" + dom
    _user(relay, s, "off")
    relay.send(s, [bad, good], message(s, [bad, good], "one by one"))
    mail, rcpts, data = mx.wait_messages(1)[0]
    assert len(rcpts) == 1 and good in rcpts[0]
    assert mx.connections[0].pipelined_mail == [False]
    assert _wait_outcome(relay, bad)["outcome"] == "bounced"


@pytest.mark.parametrize("data_354_always", [False, True])
def test_pipelining_all_recipients_rejected(relay, zones, recorder, data_354_always):
    mx = recorder(pipelining=True, reject_rcpt=("@",), data_354_always=data_354_always)
    dom = zones.mx("example.test", uniq("allrej"), mx.addr)
    zones.publish()
    s = sender_addr()
    r1, r2 = "a@" + dom, "b@" + dom
    _user(relay, s, "off")
    relay.send(s, [r1, r2], message(s, [r1, r2], "nobody home"))
    for r in (r1, r2):
        d = _wait_outcome(relay, r)
        assert d["outcome"] == "bounced" and d["status"] == "5.1.1", d
    assert mx.messages == []
    # The DATA reply was read and the session ended cleanly: RSET (reuse) or QUIT follows.
    net.wait_until(lambda: any(x.upper() in ("QUIT", "RSET") for x in mx.commands()), 10,
                   what="QUIT or RSET after the refused transaction")
    if data_354_always:
        assert mx.lone_dots == 1
    assert not [l for l in relay.log_lines() if "timeout" in l and dom in l]


# -- SIZE ------------------------------------------------------------------------------

def test_size_is_announced_and_a_too_large_message_bounces_at_once(relay, zones, recorder,
                                                                   pf_notify):
    mx = recorder(size=3000)
    dom = zones.mx("example.test", uniq("size"), mx.addr)
    zones.publish()
    s = sender_addr()
    small, large = "small@" + dom, "large@" + dom
    _user(relay, s, "off")
    msg = message(s, [small], "small one")
    relay.send(s, [small], msg)
    data = mx.wait_messages(1)[0][2]
    assert b"Subject: small one" in data
    # the spool copy: what arrived (a Received: field added) with its last CRLF
    assert "SIZE=%d" % (len(data) + 2) in mx.commands("MAIL")[0].split(), mx.commands("MAIL")
    relay.send(s, [large], message(s, [large], "large one", body=("z" * 70 + "\r\n") * 60))
    d = _wait_outcome(relay, large)
    assert d["outcome"] == "bounced" and d["status"] == "5.3.4", d
    note = pf_notify.wait_for_message(s, timeout=60)
    assert status_per_recipient(report_parts(note)[2]) == {large: "5.3.4"}
    assert len(mx.commands("MAIL")) == 1 and len(mx.commands("DATA")) == 1


# -- one notification per message and event ---------------------------------------------

def test_one_notification_when_jobs_finish_in_different_rounds(make_relay, zones, recorder,
                                                               pf_notify):
    relay = make_relay(relay_max_deliveries="1")
    a = recorder(tls=False)
    b = recorder(tls=False)
    dom_a = zones.mx("example.test", uniq("rounda"), a.addr)
    dom_b = zones.mx("example.test", uniq("roundb"), b.addr)
    zones.publish()
    s = sender_addr()
    ra, rb = "one@" + dom_a, "two@" + dom_b
    _user(relay, s, "on")
    relay.send(s, [ra, rb], message(s, [ra, rb], "two rounds"))
    note = pf_notify.wait_for_message(s, timeout=60)
    time.sleep(3)
    assert len(pf_notify.messages(s)) == 1
    per = status_per_recipient(report_parts(note)[2])
    assert per == {ra: "5.7.10", rb: "5.7.10"}, per
    assert a.messages == [] and b.messages == []


# -- connection reuse and TLS session resumption -------------------------------------------

def _send_one_after_another(relay, s, rcpts, mx):
    for i, r in enumerate(rcpts):
        relay.send(s, [r], message(s, [r], "reuse %d" % i))
        mx.wait_messages(i + 1)


def test_connection_is_reused_for_the_next_job(relay, zones, recorder):
    mx = recorder(tls=True)
    dom = zones.mx("example.test", uniq("reuse"), mx.addr)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "on")
    rcpts = ["r%d@%s" % (i, dom) for i in range(5)]
    _send_one_after_another(relay, s, rcpts, mx)
    assert len(mx.connections) == 1, [c.commands for c in mx.connections]
    c = mx.connections[0]
    assert c.tls in ("TLSv1.2", "TLSv1.3")
    assert [x.upper() for x in c.commands].count("RSET") == 4
    assert [x.upper() for x in c.commands].count("STARTTLS") == 1
    for r in rcpts:
        d = _wait_outcome(relay, r)
        assert d["outcome"] == "delivered" and d["tls"] == c.tls, d
    # Idle connections are closed after a few seconds, politely.
    net.wait_until(lambda: "QUIT" in [x.upper() for x in c.commands], 10,
                   what="QUIT on the idle connection")


def test_guarantee_never_reuses_a_plaintext_connection(relay, zones, recorder, pf_notify):
    mx = recorder(tls=False)
    dom = zones.mx("example.test", uniq("plainreuse"), mx.addr)
    zones.publish()
    s_off, s_on = sender_addr(), sender_addr()
    _user(relay, s_off, "off")
    _user(relay, s_on, "on")
    r1, r2 = "first@" + dom, "second@" + dom
    relay.send(s_off, [r1], message(s_off, [r1], "plaintext is fine"))
    mx.wait_messages(1)
    net.wait_until(lambda: relay.log_lines("mta_idle"), 5, what="the connection kept idle")
    relay.send(s_on, [r2], message(s_on, [r2], "needs tls"))
    d = _wait_outcome(relay, r2)
    assert d["outcome"] == "held", d
    pf_notify.wait_for_message(s_on, timeout=60)
    assert len(mx.messages) == 1
    assert not any(r2 in rc for _, rcs, _ in mx.messages for rc in rcs)


def test_new_connection_resumes_the_tls_session(relay, zones, recorder):
    mx = recorder(tls=True)
    dom = zones.mx("example.test", uniq("resume"), mx.addr)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "on")
    r1, r2 = "a@" + dom, "b@" + dom
    relay.send(s, [r1], message(s, [r1], "full handshake"))
    mx.wait_messages(1)
    net.wait_until(lambda: "QUIT" in [x.upper() for x in mx.connections[0].commands], 10,
                   what="the idle connection closed")
    relay.send(s, [r2], message(s, [r2], "resumed"))
    mx.wait_messages(2)
    assert len(mx.connections) == 2
    assert not mx.connections[0].resumed and mx.connections[1].resumed
    assert _wait_outcome(relay, r2)["outcome"] == "delivered"


def test_no_resumption_with_dane(relay, zones, recorder):
    mx = recorder(tls=True)
    label = uniq("daneres")
    host = "mx-%s.example.test" % mx.addr.replace(".", "-")
    dom = zones.mx("example.test", label, mx.addr, tlsa=[mx.cert.tlsa_311()], mx_host=host)
    zones.publish()
    s = sender_addr()
    _user(relay, s, "on")
    r1, r2 = "a@" + dom, "b@" + dom
    relay.send(s, [r1], message(s, [r1], "dane one"))
    mx.wait_messages(1)
    net.wait_until(lambda: "QUIT" in [x.upper() for x in mx.connections[0].commands], 10,
                   what="the idle connection closed")
    relay.send(s, [r2], message(s, [r2], "dane two"))
    mx.wait_messages(2)
    assert len(mx.connections) == 2 and not mx.connections[1].resumed
    for r in (r1, r2):
        d = _wait_outcome(relay, r)
        assert d["outcome"] == "delivered" and d["dane"] == "pass", d
