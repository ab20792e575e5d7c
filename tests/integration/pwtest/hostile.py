"""Small SMTP servers in Python, well-behaved or hostile, on 127.0.0.X:PORT.

One class, SmtpServer, with a `mode` saying how it treats STARTTLS:

  "sink"      STARTTLS offered and done with the given context (the recording sink; with a
              certificate that does not match the published TLSA it is the DANE-mismatch MX)
  "notls"     (a) STARTTLS not offered (and refused with 502 if tried anyway)
  "454"       (b) STARTTLS offered, answered "454 4.7.0 TLS not available"
  "garbage"   (c) "220 Ready to start TLS", then bytes that are not TLS, then close
  "tls10"     (d) only TLS 1.0 (SECLEVEL=0);  "tls11": only TLS 1.1
  "weak"      (e) only TLS 1.2 with NULL-encryption cipher suites (the local OpenSSL is built
              without 3DES and RC4, so "weak" means a suite that does not encrypt at all);
              "anon": only TLS 1.2 anonymous (unauthenticated) suites
  "inject"    (f) STARTTLS answered "220 Go ahead\\r\\n250 injected\\r\\n" in one write, then TLS

An `eol` says where the server ends a line, commands and data alike: "lf" (at LF, a CR
before it dropped; the default, like most MTAs), "crlf" (only at CRLF: bare CR and LF are
part of the line) or "cr" (at CRLF, at a bare LF and at a bare CR, as some gateways do: the
receiver that SMTP smuggling with "\r.\r" fools). No real program ends lines at a bare CR,
so these scripted receivers stand in for them.

Every server records per connection what happened, and per message the envelope, the data,
the raw octets of the data as received, and the TLS version/cipher in use (None: plaintext). `body_received` says whether any
message data was ever received, so a test can assert that no plaintext attempt happened.
"""

import socket
import ssl
import threading
import time

from . import net

MODES = ("sink", "notls", "454", "garbage", "tls10", "tls11", "weak", "anon", "inject")
MAX_LINE = 4096
EOLS = ("lf", "crlf", "cr")


class Message:
    """One message as received: envelope, data, TLS details."""

    def __init__(self, conn, mail_from, rcpts, data, raw=b""):
        self.raw = raw
        self.peer = conn.peer
        self.helo = conn.helo
        self.mail_from = mail_from
        self.rcpts = list(rcpts)
        self.data = data
        self.tls_version = conn.tls_version
        self.tls_cipher = conn.tls_cipher

    @property
    def tls(self):
        return self.tls_version is not None

    def __repr__(self):
        return "<Message from=%s to=%s tls=%s %d bytes>" % (
            self.mail_from, self.rcpts, self.tls_version, len(self.data))


class Conn:
    """Per-connection state and a line reader that survives the switch to TLS."""

    def __init__(self, server, sock, peer):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.buf = b""
        self.helo = None
        self.tls_version = None
        self.tls_cipher = None
        self.commands = []
        self.error = None
        self.eol = server.eol
        self.raw = []           # the octets of the lines read, with their line ends

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _more(self):
        if len(self.buf) > MAX_LINE:
            raise ValueError("line too long")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _split(self):
        """(line, octets used) of the first line in buf per self.eol, or None."""
        if self.eol == "crlf":
            i = self.buf.find(b"\r\n")
            return None if i < 0 else (self.buf[:i], i + 2)
        if self.eol == "lf":
            i = self.buf.find(b"\n")
            return None if i < 0 else (self.buf[:i].rstrip(b"\r"), i + 1)
        ends = [i for i in (self.buf.find(b"\r"), self.buf.find(b"\n")) if i >= 0]
        if not ends:
            return None
        i = min(ends)
        if self.buf[i:i + 1] == b"\r":
            if i + 1 == len(self.buf):
                return None     # a CRLF may be on its way
            if self.buf[i + 1:i + 2] == b"\n":
                return self.buf[:i], i + 2
        return self.buf[:i], i + 1

    def readline(self):
        while True:
            got = self._split()
            if got is not None:
                break
            self._more()
        line, used = got
        self.raw.append(self.buf[:used])
        self.buf = self.buf[used:]
        return line


class SmtpServer(net.ThreadedListener):
    """A threaded SMTP server; start() binds addr:port, stop() closes everything."""

    def __init__(self, addr, port, mode="sink", cert=None, hostname=None, max_size=0,
                 ehlo_extra=(), eol="lf", gate=None):
        if mode not in MODES:
            raise ValueError("unknown mode %s" % mode)
        if eol not in EOLS:
            raise ValueError("unknown eol %s" % eol)
        self.eol = eol
        self.gate = gate        # a threading.Event: hold the reply to each message until set
        self._listen_init(addr, port)
        self.mode = mode
        self.cert = cert
        self.hostname = hostname or "mx.%s.test" % mode
        self.max_size = max_size
        self.ehlo_extra = list(ehlo_extra)
        self.messages = []
        self.body_received = False
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self._ctx = self._make_context()

    # -- TLS contexts per mode ------------------------------------------

    def _make_context(self):
        if self.mode in ("notls", "454", "garbage"):
            return None
        if self.mode == "anon":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("aNULL:!eNULL:@SECLEVEL=0")
            return ctx
        if self.cert is None:
            raise ValueError("mode %s needs a certificate" % self.mode)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert.chain_path, self.cert.key_path)
        if self.mode in ("tls10", "tls11"):
            v = ssl.TLSVersion.TLSv1 if self.mode == "tls10" else ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            ctx.minimum_version = ctx.maximum_version = v
        elif self.mode == "weak":
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers("eNULL:@SECLEVEL=0")
        return ctx

    def _new_conn(self, sock, peer):
        return Conn(self, sock, peer)

    # -- queries from tests ---------------------------------------------

    def wait_for_messages(self, n=1, timeout=20):
        """Wait until n messages arrived; return the list of messages."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s server %s:%d got %d of %d messages" % (
                        self.mode, self.addr, self.port, len(self.messages), n))
                self.cond.wait(left)
            return list(self.messages)

    def messages_for(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt.lower() in [r.lower() for r in m.rcpts]]

    def all_commands(self):
        with self.lock:
            return [cmd for c in self.connections for cmd in c.commands]

    def reset(self):
        with self.lock:
            self.messages = []
            self.connections = []
            self.body_received = False

    # -- the session ----------------------------------------------------

    def _serve(self, c):
        try:
            self._session(c)
        except (EOFError, OSError, ValueError, ssl.SSLError) as e:
            c.error = repr(e)
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def _ehlo_lines(self, c):
        ext = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.max_size:
            ext.append("SIZE %d" % self.max_size)
        else:
            ext.append("SIZE")
        if self.mode != "notls" and c.tls_version is None:
            ext.append("STARTTLS")
        ext += self.ehlo_extra
        lines = [self.hostname] + ext
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                       for i, l in enumerate(lines))

    def _starttls(self, c):
        """Handle STARTTLS per mode; return False when the session must end."""
        if self.mode == "notls":
            c.send("502 5.5.1 STARTTLS not implemented\r\n")
            return True
        if c.tls_version is not None:
            c.send("503 5.5.1 TLS already active\r\n")
            return True
        if self.mode == "454":
            c.send("454 4.7.0 TLS not available due to local problem\r\n")
            return True
        if self.mode == "garbage":
            c.send("220 2.0.0 Ready to start TLS\r\n")
            c.sock.settimeout(5)
            try:
                c.sock.recv(4096)  # the ClientHello
            except OSError:
                pass
            c.send(b"this is not a TLS ServerHello\r\n\x00\x01\x02garbage\r\n")
            return False
        if self.mode == "inject":
            c.send("220 Go ahead\r\n250 injected\r\n")
        else:
            c.send("220 2.0.0 Ready to start TLS\r\n")
        c.buf = b""  # plaintext sent ahead of the handshake is discarded, as Postfix does
        tls = self._ctx.wrap_socket(c.sock, server_side=True)
        c.sock = tls
        c.tls_version = tls.version()
        c.tls_cipher = tls.cipher()[0]
        c.helo = None
        return True

    def _data(self, c):
        lines = []
        size = 0
        while True:
            line = c.readline()
            if line == b".":
                break
            with self.lock:
                self.body_received = True
            if line.startswith(b"."):
                line = line[1:]
            size += len(line) + 2
            lines.append(line)
        return b"\r\n".join(lines) + b"\r\n", size

    def _session(self, c):
        c.send("220 %s ESMTP test server\r\n" % self.hostname)
        mail_from = None
        rcpts = []
        while True:
            line = c.readline()
            cmd = line.decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            with self.lock:
                c.commands.append(cmd)
            if verb in ("EHLO", "HELO"):
                c.helo = cmd[5:].strip()
                mail_from, rcpts = None, []
                if verb == "EHLO":
                    c.send(self._ehlo_lines(c))
                else:
                    c.send("250 %s\r\n" % self.hostname)
            elif verb == "STARTTLS":
                if not self._starttls(c):
                    return
            elif verb == "MAIL":
                mail_from = cmd[5:].strip()
                if mail_from.upper().startswith("FROM:"):
                    mail_from = mail_from[5:].strip()
                mail_from = mail_from.split(" ", 1)[0].strip("<>")
                rcpts = []
                c.send("250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                if mail_from is None:
                    c.send("503 5.5.1 need MAIL first\r\n")
                    continue
                r = cmd[5:].strip()
                if r.upper().startswith("TO:"):
                    r = r[3:].strip()
                rcpts.append(r.split(" ", 1)[0].strip("<>"))
                c.send("250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                if not rcpts:
                    c.send("503 5.5.1 need RCPT first\r\n")
                    continue
                c.send("354 End data with <CR><LF>.<CR><LF>\r\n")
                c.raw = []
                data, _ = self._data(c)
                if self.gate is not None:
                    self.gate.wait(120)
                with self.cond:
                    self.messages.append(Message(c, mail_from, rcpts, data, b"".join(c.raw)))
                    self.cond.notify_all()
                c.send("250 2.0.0 Ok: queued as %d\r\n" % len(self.messages))
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                c.send("250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                c.send("250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                c.send("221 2.0.0 Bye\r\n")
                return
            else:
                c.send("502 5.5.2 Error: command not recognized\r\n")


class SilentMx:
    """A broken peer: an MX that accepts connections and never says a word (a server that
    hangs). SilentMx(addr, port); .addr; .close()."""

    def __init__(self, addr, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.conns = []
        self.addr = addr
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
