"""SMTP in: `postwarden serve` talking to smtplib and raw sockets.

Trusted and untrusted clients, the ESMTP extensions, DSN parameters in the queue, the
limits and their replies, STARTTLS (and that plaintext pipelined behind it is dropped),
message data handling, and durability: a message that got its 250 survives SIGKILL.

Delivery must not empty the queue under our feet, so the relay's resolver is pointed at a
closed port: every lookup fails and recipients stay queued or deferred.
"""

import datetime
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pwtest import database as pw_database  # noqa: E402
from pwtest import net  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOSTNAME = "relay.smtpd.test"


def binary():
    p = os.environ.get("POSTWARDEN", "build/asan/postwarden")
    return p if os.path.isabs(p) else os.path.join(REPO, p)


def make_cert(directory):
    """A self-signed ECDSA certificate for HOSTNAME; returns (cert_path, key_path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), False)
            .sign(key, hashes.SHA256()))
    cp, kp = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp


class Serve:
    """One `postwarden serve` with its own state directory, and its own database on the
    suite's engine (pwtest.database)."""

    def __init__(self, tmp_path, user=None, **relay_keys):
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "postwarden.conf")
        self.log_path = os.path.join(self.dir, "serve.log")
        self.port = net.free_port()
        self.proc = None
        dead = net.free_port()
        unbound = os.path.join(self.dir, "unbound.conf")
        with open(unbound, "w") as f:
            f.write('server:\n  do-not-query-localhost: no\n  module-config: "iterator"\n'
                    '  local-zone: "test." nodefault\n'
                    'stub-zone:\n  name: "."\n  stub-addr: 127.0.0.1@%d\n' % dead)
        relay = {"listen": "127.0.0.1:%d" % self.port, "trusted_networks": "127.0.0.1/32",
                 "retry_min": "1h", "retry_max": "2h"}
        relay.update({k: str(v) for k, v in relay_keys.items()})
        fresh = pw_database.fresh()
        self.database = pw_database.of_state_dir(self.state, fresh)
        with open(self.conf, "w") as f:
            f.write("[server]\nstate_dir = %s\nhostname = %s\nlog_level = debug\n"
                    "log_file = %s\n" % (self.state, HOSTNAME, self.log_path))
            if user:
                f.write("user = %s\n" % user)
            f.write("\n[relay]\n")
            for k, v in relay.items():
                f.write("%s = %s\n" % (k, v))
            f.write("\n[dns]\nunbound_config = %s\n" % unbound)
            if fresh is not None:
                f.write("\n[database]\n%s" % "".join("%s = %s\n" % kv
                                                     for kv in fresh.config().items()))
            # The key search API of serve gets a port of its own: tests run side by side.
            f.write("\n[api]\nlisten = 127.0.0.1:%d\n" % net.free_port())

    def start(self):
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
        self.proc = subprocess.Popen([binary(), "-c", self.conf, "serve"], cwd=self.dir,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        net.wait_port("127.0.0.1", self.port, timeout=20, proc=self.proc)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(15)
        else:
            rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def message(self, mid):
        m = self.database.rows("SELECT * FROM messages WHERE id = ?", (mid,))
        r = self.database.rows("SELECT * FROM recipients WHERE msg_id = ? ORDER BY idx", (mid,))
        return (m[0] if m else None), r

    def ids(self):
        return {r["id"] for r in self.database.rows("SELECT id FROM messages")}

    def spool(self, mid):
        """The message data of a spool file (the envelope trailer stripped)."""
        with open(os.path.join(self.state, "queue", mid), "rb") as f:
            raw = f.read()
        jlen = int(raw[-9:-1], 16)
        return raw[:len(raw) - 17 - jlen]

    def cli(self, *args):
        return subprocess.run([binary(), "-c", self.conf] + list(args), capture_output=True,
                              text=True, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))

    def smtp(self, **kw):
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=20, **kw)


@pytest.fixture
def serve(tmp_path):
    started = []

    def make(**keys):
        s = Serve(tmp_path / ("r%d" % len(started)), **keys)
        started.append(s)
        return s.start()
    yield make
    for s in started:
        s.kill() if s.proc is None else s.stop()


def queued_id(reply):
    code, text = reply
    assert code == 250, reply
    text = text.decode()
    assert "queued as " in text, text
    return text.rsplit(" ", 1)[1]


def send(s, sender, rcpts, body, mail_options=(), rcpt_options=()):
    """One transaction on an open smtplib connection; returns the queue ID."""
    s.ehlo_or_helo_if_needed()
    code, _ = s.mail(sender, list(mail_options))
    assert code == 250
    for r in rcpts:
        assert s.rcpt(r, list(rcpt_options))[0] == 250
    return queued_id(s.data(body))


class Raw:
    """A line-level SMTP client for what smtplib will not send."""

    def __init__(self, port, source=None):
        self.sock = socket.socket()
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError(self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def reply(self):
        """A whole (multi-line) reply as a list of lines."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, data):
        self.send(data + "\r\n")
        return self.reply()

    def closed(self, wait=5):
        """True when the server closed the connection (after any pending data)."""
        self.sock.settimeout(wait)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, ConnectionResetError):
            return False


def test_trusted_client_gets_mail_queued(serve):
    r = serve()
    with r.smtp() as s:
        mid = send(s, "anna@sender.test", ["bob@rcpt.test", "carl@rcpt.test"],
                   b"Subject: hi\r\n\r\nhello\r\n")
    # the 250 came after the data and rows were stored: both are there right now
    m, rc = r.message(mid)
    assert m["sender"] == "anna@sender.test"
    assert [x["addr"] for x in rc] == ["bob@rcpt.test", "carl@rcpt.test"]
    assert m["size"] == len(r.spool(mid))
    assert r.spool(mid).endswith(b"Subject: hi\r\n\r\nhello\r\n")
    assert "event=start listen=127.0.0.1:%d" % r.port in r.log()


def test_untrusted_client_is_refused_at_connect(serve):
    r = serve()
    c = Raw(r.port, source="127.0.0.9")
    assert c.line() == "554 5.7.1 %s relay access denied" % HOSTNAME
    assert c.closed()
    assert "event=smtpd_reject client=127.0.0.9 reason=untrusted" in r.log()


def test_ehlo_and_simple_commands(serve):
    r = serve()
    c = Raw(r.port)
    assert c.reply()[0].startswith("220 %s " % HOSTNAME)
    assert c.cmd("MAIL FROM:<a@b.test>")[0].startswith("503 5.5.1")
    ehlo = c.cmd("EHLO client.test")
    assert ehlo[0] == "250-" + HOSTNAME
    kws = {x[4:] for x in ehlo[1:]}
    assert {"PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
            "DSN"} <= kws
    assert "STARTTLS" not in kws        # no certificate configured
    assert c.cmd("VRFY bob")[0].startswith("252 ")
    assert c.cmd("HELP")[0].startswith("214 ")
    assert c.cmd("NOOP")[0] == "250 2.0.0 Ok"
    assert c.cmd("RCPT TO:<a@b.test>")[0].startswith("503 5.5.1")
    assert c.cmd("DATA")[0].startswith("503 5.5.1")
    assert c.cmd("MAIL FROM:<a@b.test>")[0] == "250 2.1.0 Ok"
    assert c.cmd("MAIL FROM:<a@b.test>")[0].startswith("503 5.5.1")
    assert c.cmd("DATA")[0].startswith("554 5.5.1")
    assert c.cmd("RSET")[0] == "250 2.0.0 Ok"
    assert c.cmd("RCPT TO:<a@b.test>")[0].startswith("503")
    assert c.cmd("QUIT")[0].startswith("221 2.0.0")
    c = Raw(r.port)     # a fresh error count
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[0].startswith("502 5.5.1")
    assert c.cmd("EXPN list")[0].startswith("502 5.5.1")
    assert c.cmd("FROB")[0].startswith("500 5.5.2")
    assert c.cmd("MAIL FROM:<a b@c.test>")[0].startswith("501 5.1.7")
    assert c.cmd("MAIL FROM:<a@c.test> FOO=1")[0].startswith("555 5.5.4")
    assert c.cmd("QUIT")[0].startswith("221 2.0.0")
    assert c.closed()


def test_dsn_and_8bit_parameters_are_kept(serve):
    r = serve()
    with r.smtp() as s:
        s.ehlo()
        code, _ = s.docmd("MAIL FROM:<s@sender.test> RET=HDRS ENVID=QQ+2B123 BODY=8BITMIME")
        assert code == 250
        assert s.docmd("RCPT TO:<a@rcpt.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;orig+2Ba@x.test")[0] == 250
        assert s.docmd("RCPT TO:<b@rcpt.test> NOTIFY=NEVER")[0] == 250
        assert s.docmd("RCPT TO:<c@rcpt.test>")[0] == 250
        mid = queued_id(s.data("Subject: 8bit\r\n\r\ngr\u00fc\u00dfe\r\n".encode()))
    # SMTPUTF8 transaction with UTF-8 addresses (smtplib only sends ASCII commands)
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<j\u00f6rg@s\u00e4nder.test> SMTPUTF8")[0].startswith("250")
    assert c.cmd("RCPT TO:<m\u00fcller@rcpt.test>")[0].startswith("250")
    assert c.cmd("DATA")[0].startswith("354")
    mid2 = c.cmd("Subject: u\r\n\r\nx\r\n.")[0].rsplit(" ", 1)[1]
    # without SMTPUTF8 a UTF-8 address is refused
    assert c.cmd("MAIL FROM:<j\u00f6rg@s\u00e4nder.test>")[0].startswith("553 5.6.7")
    c.cmd("QUIT")
    m, rc = r.message(mid)
    assert (m["envid"], m["ret"], m["body"], m["smtputf8"]) == ("QQ+123", "HDRS", "8BITMIME", 0)
    assert rc[0]["notify"] == "FAILURE,DELAY" and rc[0]["orcpt"] == "rfc822;orig+a@x.test"
    assert rc[1]["notify"] == "NEVER" and rc[1]["orcpt"] is None
    assert rc[2]["notify"] is None
    assert all(x["state"] in ("queued", "deferred") for x in rc)
    m2, rc2 = r.message(mid2)
    assert m2["smtputf8"] == 1 and m2["sender"] == "j\u00f6rg@s\u00e4nder.test"
    assert rc2[0]["addr"] == "m\u00fcller@rcpt.test"


def test_data_is_unstuffed_normalised_and_gets_received(serve):
    r = serve()
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.send("MAIL FROM:<a@s.test>\r\nRCPT TO:<b@r.test>\r\nDATA\r\n")      # pipelined
    assert [c.reply()[0][:3] for _ in range(3)] == ["250", "250", "354"]
    c.send(b"Subject: dots\r\n\r\n..leading dot\r\nbare lf\n.\nstill data\r\n.x\r\n.\r\n")
    mid = c.reply()[0].rsplit(" ", 1)[1]
    data = r.spool(mid)
    head, body = data.split(b"Subject: dots\r\n", 1)
    assert head.startswith(b"Received: from client.test ([127.0.0.1])\r\n\tby %s (postwarden)"
                           b" with ESMTP id %s\r\n\tfor <b@r.test>;" % (HOSTNAME.encode(),
                                                                        mid.encode()))
    # a "." line next to a bare LF is content, not the end (no smuggling)
    assert body == b"\r\n.leading dot\r\nbare lf\r\n\r\nstill data\r\nx\r\n"
    assert c.cmd("QUIT")[0].startswith("221")


# Every variant of a "." line next to a bare line end, each followed by a smuggled command.
SMUGGLE_VARIANTS = [b"\r.\r\n", b"\r.\r", b"\n.\n", b"\r\n.\n", b"\n.\r\n"]


def _bare_newline_session(r, variants):
    """Send one message per variant on one connection; return the replies to the dots."""
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    replies = []
    for v in variants:
        assert c.cmd("MAIL FROM:<a@s.test>")[0].startswith("250")
        assert c.cmd("RCPT TO:<b@r.test>")[0].startswith("250")
        assert c.cmd("DATA")[0].startswith("354")
        c.send(b"Subject: smuggle\r\n\r\ntext" + v + b"MAIL FROM:<x@evil.example>\r\n"
               b"RCPT TO:<victim@r.test>\r\nDATA\r\nforged\r\n.\r\n")
        replies.append(c.reply())
    # nothing more came back: the smuggled commands were data, the session is in step
    assert c.cmd("NOOP")[0].startswith("250")
    assert c.cmd("QUIT")[0].startswith("221")
    return replies


def test_bare_newlines_are_normalised_into_one_message(serve):
    r = serve()
    replies = _bare_newline_session(r, SMUGGLE_VARIANTS)
    assert all(len(x) == 1 and x[0].startswith("250 2.0.0") for x in replies), replies
    for reply in replies:
        data = r.spool(reply[0].rsplit(" ", 1)[1])
        body = data.split(b"Subject: smuggle\r\n\r\n", 1)[1]
        # the fake end became an empty content line; every line end is CRLF
        assert body == (b"text\r\n\r\nMAIL FROM:<x@evil.example>\r\nRCPT TO:<victim@r.test>"
                        b"\r\nDATA\r\nforged\r\n"), body
        assert b"\r" not in data.replace(b"\r\n", b"") and b"\n" not in data.replace(b"\r\n", b"")
    assert len(r.ids()) == len(SMUGGLE_VARIANTS)


def test_bare_newlines_are_refused_in_reject_mode(serve):
    r = serve(bare_newline="reject")
    replies = _bare_newline_session(r, SMUGGLE_VARIANTS)
    assert all(x == ["550 5.5.2 Error: bare <CR> or <LF> received"] for x in replies), replies
    assert r.ids() == set()
    # control: the same connection style with CRLF only is accepted
    with r.smtp() as s:
        mid = send(s, "a@s.test", ["b@r.test"], b"Subject: fine\r\n\r\n.dot\r\n")
    assert r.ids() == {mid}
    assert "reason=bare_newline" in r.log()


def test_limits(serve):
    r = serve(max_message_size="2K", max_recipients=3)
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@s.test> SIZE=4096")[0].startswith("552 5.3.4")
    assert c.cmd("MAIL FROM:<a@s.test> SIZE=100")[0].startswith("250")
    for i in range(3):
        assert c.cmd("RCPT TO:<r%d@r.test>" % i)[0].startswith("250")
    assert c.cmd("RCPT TO:<r9@r.test>")[0] == "452 4.5.3 Error: too many recipients"
    assert c.cmd("DATA")[0].startswith("354")
    # too big: read to the end, refused after the dot, the session goes on
    c.send(("x" * 70 + "\r\n") * 40 + ".\r\n")
    assert c.reply()[0].startswith("552 5.3.4")
    # a message line over 998 characters
    c.cmd("MAIL FROM:<a@s.test>")
    c.cmd("RCPT TO:<r@r.test>")
    c.cmd("DATA")
    c.send("y" * 999 + "\r\nshort\r\n.\r\n")
    assert c.reply()[0].startswith("500 5.5.2")
    # exactly 998 is fine
    c.cmd("MAIL FROM:<a@s.test>")
    c.cmd("RCPT TO:<r@r.test>")
    c.cmd("DATA")
    c.send("z" * 998 + "\r\n.\r\n")
    mid = c.reply()[0].rsplit(" ", 1)[1]
    assert r.spool(mid).endswith(b"z" * 998 + b"\r\n")
    # command lines: 512 with CRLF, longer only for MAIL/RCPT parameters, never over 4096
    assert c.cmd("NOOP " + "n" * 505)[0].startswith("250")
    assert c.cmd("NOOP " + "n" * 506)[0].startswith("500 5.5.2")
    assert c.cmd("RSET " + "n" * 5000)[0] == "500 5.5.2 Error: line too long"
    assert c.cmd("NOOP")[0].startswith("250")
    assert c.cmd("QUIT")[0].startswith("221")


def test_too_many_errors(serve):
    r = serve()
    c = Raw(r.port)
    c.reply()
    replies = [c.cmd("BOGUS %d" % i)[0] for i in range(9)]
    assert all(x.startswith("500") for x in replies)
    c.send("BOGUS 10\r\n")
    assert c.reply()[0].startswith("500")
    assert c.reply()[0].startswith("421 4.7.0")
    assert c.closed()


def test_max_connections(serve):
    r = serve(max_connections=2)
    time.sleep(0.5)     # the start-up probe's session must be gone
    a, b = Raw(r.port), Raw(r.port)
    assert a.reply()[0].startswith("220") and b.reply()[0].startswith("220")
    c = Raw(r.port)
    assert c.line() == "421 4.7.0 %s too many connections" % HOSTNAME
    assert c.closed()
    a.cmd("QUIT")
    assert a.closed()
    d = Raw(r.port)
    assert d.reply()[0].startswith("220")


def test_command_timeout(serve):
    r = serve(command_timeout="1s")
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    t0 = time.monotonic()
    assert c.line() == "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME
    assert 0.5 < time.monotonic() - t0 < 5
    assert c.closed()


def test_starttls(serve, tmp_path):
    cert, key = make_cert(str(tmp_path))
    r = serve(tls_cert=cert, tls_key=key)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False      # smtplib would check "127.0.0.1"; the chain is verified
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with r.smtp() as s:
        s.ehlo()
        assert s.has_extn("starttls")
        s.starttls(context=ctx)
        s.ehlo()
        assert not s.has_extn("starttls")
        mid = send(s, "a@s.test", ["b@r.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    data = r.spool(mid)
    assert b"with ESMTPS id " + mid.encode() in data
    assert b"(using TLSv1." in data


def test_starttls_drops_pipelined_plaintext(serve, tmp_path):
    cert, key = make_cert(str(tmp_path))
    r = serve(tls_cert=cert, tls_key=key)
    c = Raw(r.port)
    c.reply()
    c.cmd("EHLO client.test")
    # an attacker's command behind STARTTLS, in the same packet
    c.send("STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\n")
    assert c.reply()[0].startswith("220 2.0.0")
    assert c.buf == b""
    ctx = ssl.create_default_context(cafile=cert)
    c.sock = ctx.wrap_socket(c.sock, server_hostname=HOSTNAME)
    assert c.cmd("EHLO client.test")[0] == "250-" + HOSTNAME
    # had the MAIL counted, RCPT would be accepted
    assert c.cmd("RCPT TO:<b@r.test>")[0].startswith("503 5.5.1")
    assert c.cmd("STARTTLS")[0].startswith("554")
    c.cmd("QUIT")


def test_guarantee_and_tls_required_no(serve):
    r = serve()
    assert r.cli("user", "add", "g@sender.test").returncode == 0
    assert r.cli("user", "guarantee", "g@sender.test", "on").returncode == 0
    with r.smtp() as s:
        on = send(s, "g@sender.test", ["a@r.test"], b"Subject: a\r\n\r\nx\r\n")
        no = send(s, "g@sender.test", ["a@r.test"],
                  b"Subject: b\r\nTls-Required:  NO\r\n\r\nx\r\n")
        other = send(s, "h@sender.test", ["a@r.test"], b"Subject: c\r\n\r\nx\r\n")
        null = send(s, "", ["a@r.test"], b"Subject: d\r\n\r\nx\r\n")
    assert r.message(on)[0]["guarantee"] == 1
    m = r.message(no)[0]
    assert (m["guarantee"], m["tls_required_no"]) == (0, 1)
    assert r.message(other)[0]["guarantee"] == 0
    m = r.message(null)[0]
    assert (m["sender"], m["guarantee"]) == ("", 0)


def test_sigterm_and_busy_port(serve, tmp_path):
    r = serve()
    # a second relay on the same port cannot bind: exit 1 with a clear message
    other = Serve(tmp_path / "second")
    with open(other.conf) as f:
        conf = f.read().replace("127.0.0.1:%d" % other.port, "127.0.0.1:%d" % r.port)
    with open(other.conf, "w") as f:
        f.write(conf)
    p = subprocess.run([binary(), "-c", other.conf, "serve"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert p.returncode == 1
    assert "cannot listen on 127.0.0.1:%d" % r.port in p.stderr + other.log()
    # an open session does not keep SIGTERM from ending the relay
    c = Raw(r.port)
    c.reply()
    t0 = time.monotonic()
    assert r.stop() == 0
    assert time.monotonic() - t0 < 5
    assert "event=stop signal=TERM" in r.log()


def test_250_survives_sigkill(serve):
    r = serve()
    for _ in range(3):
        with r.smtp() as s:
            mid = send(s, "a@s.test", ["b@r.test"], b"Subject: k\r\n\r\nkill me\r\n")
            r.kill()
        r.start()
        m, rc = r.message(mid)
        assert m is not None and len(rc) == 1, mid
        assert r.spool(mid).endswith(b"kill me\r\n")


def test_crash_loses_no_accepted_message(serve):
    """~2000 messages over parallel connections while the relay is SIGKILLed repeatedly."""
    r = serve(max_connections=50)
    total, workers = 2000, 8
    accepted, lock = [], threading.Lock()
    counter = {"next": 0}
    stop = time.monotonic() + 50

    def worker():
        s = None
        while time.monotonic() < stop:
            with lock:
                if counter["next"] >= total:
                    break
                n = counter["next"]
                counter["next"] += 1
            while time.monotonic() < stop:
                try:
                    if s is None:
                        s = smtplib.SMTP("127.0.0.1", r.port, local_hostname="c.test", timeout=10)
                        s.ehlo()
                    s.mail("load@s.test")
                    s.rcpt("n%d@r.test" % n)
                    code, text = s.data(b"Subject: load %d\r\n\r\nmessage %d\r\n" % (n, n))
                    if code == 250:
                        with lock:
                            accepted.append(text.decode().rsplit(" ", 1)[1])
                        break
                    s.rset()
                except (OSError, smtplib.SMTPException):
                    s = None
                    time.sleep(0.05)
        if s is not None:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    kills = 0
    while any(t.is_alive() for t in threads) and time.monotonic() < stop:
        time.sleep(1.0)
        if counter["next"] < total:
            r.kill()
            kills += 1
            r.start()
    for t in threads:
        t.join()
    r.stop()
    r.start()
    assert kills >= 3
    assert len(accepted) == total, "only %d of %d messages accepted in time" % (len(accepted), total)
    ids = r.ids()
    missing = [m for m in accepted if m not in ids]
    assert not missing, "%d accepted messages lost, e.g. %s" % (len(missing), missing[:5])
    for mid in accepted[::97]:
        assert r.spool(mid).startswith(b"Received: ")
    assert not os.listdir(os.path.join(r.state, "queue", "tmp"))


def test_postfix_relays_through_serve(serve, tmp_path, pf_sender):
    """Postfix as the client, as in production: STARTTLS, SIZE, BODY, ORCPT."""
    cert, key = make_cert(str(tmp_path))
    r = serve(tls_cert=cert, tls_key=key)
    pf_sender.set_relayhost("[127.0.0.1]:%d" % r.port)
    rcpt = "pf-%d@rcpt.test" % os.getpid()
    with smtplib.SMTP(pf_sender.addr, pf_sender.port, timeout=20) as s:
        s.sendmail("anna@sender.test", [rcpt], "Subject: via postfix\r\n\r\nhello\r\n")

    def queued():
        return r.database.value("SELECT msg_id FROM recipients WHERE addr = ?", (rcpt,))
    mid = net.wait_until(queued, 30, what="the message from Postfix in the queue")
    m, rc = r.message(mid)
    assert m["sender"] == "anna@sender.test"
    assert rc[0]["orcpt"] == "rfc822;" + rcpt
    data = r.spool(mid)
    assert data.startswith(b"Received: from %s ([127.0.0.1])\r\n\t(using TLSv1."
                           % pf_sender.hostname.encode())
    assert b"with ESMTPS id " + mid.encode() in data
    assert data.endswith(b"hello\r\n")


def test_serve_gives_up_root_for_the_configured_user(tmp_path):
    """Started as root with [server] user = nobody, serve binds its ports, hands state_dir to
    nobody and runs as nobody from then on; mail is still accepted and queued, and the spool
    file belongs to nobody. Without root the setting is only noted in the log."""
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="pw-priv-")
    os.chmod(base, 0o755)      # the unprivileged process must reach state_dir by its path
    r = Serve(os.path.join(base, "r"), user="nobody")
    os.chmod(r.dir, 0o755)
    try:
        r.cli("user", "add", "anna@example.test")     # as root: serve hands the files over
        r.start()
        # The ports accept connections once bound, a moment before root is given up: wait
        # for serve to say it is done before looking.
        deadline = time.monotonic() + 10
        while "event=privileges" not in r.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        with open("/proc/%d/status" % r.proc.pid) as f:
            uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
        if os.geteuid() != 0:
            assert uids[0] == str(os.geteuid()) and "not root" in r.log()
            return
        assert uids == [str(nobody.pw_uid)] * 4, uids
        assert "event=privileges user=nobody" in r.log()
        with r.smtp() as c:
            c.sendmail("anna@example.test", ["bob@example.org"], b"Subject: x\r\n\r\nbody\r\n")
        ids = r.ids()
        assert len(ids) == 1
        spool = os.path.join(r.state, "queue", ids.pop())
        assert os.stat(spool).st_uid == nobody.pw_uid
        if r.database.engine == "sqlite":
            assert os.stat(os.path.join(r.state, "postwarden.db")).st_uid == nobody.pw_uid
    finally:
        r.stop()
        shutil.rmtree(base, ignore_errors=True)
