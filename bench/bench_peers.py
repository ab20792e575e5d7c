"""Parts of the relay benchmark that the integration fixtures do not have.

The peers themselves (test CA, Knot with a signed zone, private Postfix instances, the
relay) come from tests/integration/pwtest; this file adds what only a benchmark needs:

  Sink            a Postfix receiver that accepts mail only over TLS 1.2+ and stores it
                  in a maildir on tmpfs (its fsyncs cost nothing, so the sink's own
                  durability is not what is measured)
  PostfixRelay    the Postfix sender under comparison: everything to the sink over
                  mandatory TLS, via a static transport map
  Injector        parallel SMTP client (PIPELINING when offered) over persistent
                  connections
  TreeMemSampler  peak memory of a process tree, sampled every 50 ms
  make_message    deterministic test messages of a given size
"""

import os
import random
import socket
import ssl
import string
import threading
import time

from pwtest import postfix as pw_postfix

BENCH_HEADER = "X-Bench-Id"


# -- messages -------------------------------------------------------------------

_ALPHABET = (string.ascii_letters + string.digits + "+/").encode()


class BenchMessage:
    """One message: envelope, the bytes sent after DATA (dot-stuffed, with the final
    dot) and the body as a maildir stores it (LF line ends), for checking at the sink."""

    __slots__ = ("tag", "mail_from", "rcpt", "wire", "body_lf", "size")

    def __init__(self, tag, mail_from, rcpt, wire, body_lf, size):
        self.tag = tag
        self.mail_from = mail_from
        self.rcpt = rcpt
        self.wire = wire
        self.body_lf = body_lf
        self.size = size


def make_message(run, i, size, mail_from, rcpt):
    """A message of about size bytes (headers included) with a unique X-Bench-Id."""
    tag = "%s-%d" % (run, i)
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: relay benchmark %s\r\n"
            "Message-ID: <%s@client.bench.test>\r\n"
            "Date: %s\r\n%s: %s\r\n\r\n" % (
                mail_from, rcpt, tag, tag,
                time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                BENCH_HEADER, tag)).encode()
    rng = random.Random(tag)
    lines = []
    left = max(size - len(head), 80)
    while left > 0:
        n = min(76, max(left - 2, 1))
        lines.append(bytes(rng.choice(_ALPHABET) for _ in range(n)))
        left -= n + 2
    body = b"\r\n".join(lines) + b"\r\n"
    raw = head + body
    # Dot-stuffing: the alphabet has no '.', but stay correct if it ever changes.
    wire = b"\r\n".join((b"." + l if l.startswith(b".") else l)
                        for l in raw.split(b"\r\n")[:-1]) + b"\r\n.\r\n"
    return BenchMessage(tag, mail_from, rcpt, wire, body.replace(b"\r\n", b"\n"), len(raw))


# -- the sink -------------------------------------------------------------------

class Sink(pw_postfix.Receiver):
    """Postfix MX that takes mail only over TLS >= 1.2 and stores it (tmpfs maildir)."""

    role = "sink"

    def _settings(self):
        s = super()._settings()
        s.update({
            "smtpd_tls_security_level": "encrypt",
            "smtpd_tls_mandatory_protocols": ">=TLSv1.2",
            "smtpd_tls_loglevel": "0",
            "in_flow_delay": "0",
            "virtual_destination_concurrency_limit": "50",
            "default_destination_concurrency_limit": "50",
        })
        return s

    def new_dir(self):
        return os.path.join(self.mail_dir, "all", "new")

    def count(self):
        try:
            return len(os.listdir(self.new_dir()))
        except FileNotFoundError:
            return 0

    def files(self):
        d = self.new_dir()
        try:
            return [os.path.join(d, n) for n in os.listdir(d)]
        except FileNotFoundError:
            return []


# -- the Postfix relay under comparison -------------------------------------------

class PostfixRelay(pw_postfix.Sender):
    """Private Postfix relaying everything to nexthop ("[ADDR]:PORT") over mandatory TLS.

    tuned=True adds what a Postfix operator would switch on for throughput to one busy
    destination: TLS connection reuse (through tlsproxy) and a TLS session cache."""

    role = "bench-sender"

    def __init__(self, basedir, addr, port, nexthop, tuned=True):
        super().__init__(basedir, addr, port, relayhost="", hostname="sender.bench.test")
        self.nexthop = nexthop
        self.tuned = tuned

    def _settings(self):
        s = super()._settings()
        s.update({
            "relayhost": "",
            "transport_maps": "static:{smtp:%s}" % self.nexthop,
            "smtp_tls_security_level": "encrypt",
            "smtp_tls_mandatory_protocols": ">=TLSv1.2",
            "smtp_tls_loglevel": "1",
        })
        if self.tuned:
            s.update({
                "smtp_tls_connection_reuse": "yes",
                "smtp_tls_session_cache_database": "btree:${data_directory}/smtp_scache",
            })
        return s

    def _setup(self):
        super()._setup()
        if self.tuned:
            # Debian ships tlsproxy commented out; connection reuse needs it.
            pw_postfix._postconf(self.conf_dir, "-M",
                                 "tlsproxy/unix=tlsproxy unix - - n - 0 tlsproxy")

    def settings_text(self):
        """The non-path settings that matter for the comparison, for the report."""
        keys = ("smtp_tls_security_level", "smtp_tls_mandatory_protocols", "transport_maps",
                "smtp_tls_connection_reuse", "smtp_tls_session_cache_database")
        s = self._settings()
        return {k: s[k] for k in keys if k in s}


# -- the injecting client -----------------------------------------------------------

class SmtpError(Exception):
    pass


def _reply(f):
    """Read one (possibly multi-line) SMTP reply; return (code, text)."""
    lines = []
    while True:
        line = f.readline(4096)
        if not line:
            raise SmtpError("connection closed by server")
        lines.append(line.rstrip(b"\r\n").decode("utf-8", "replace"))
        if len(line) < 4 or line[3:4] != b"-":
            break
    try:
        code = int(lines[-1][:3])
    except ValueError:
        raise SmtpError("bad reply %r" % lines)
    return code, "\n".join(lines)


def _expect(f, want, what):
    code, text = _reply(f)
    if code // 100 != want // 100:
        raise SmtpError("%s: %s" % (what, text))
    return text


class Injector:
    """Sends messages over `conns` persistent SMTP connections in threads (with
    reconnect=True: a new connection, and TLS handshake, for every message).

    run() returns a dict with t0 (wall clock when all connections were ready and the
    first message went out), t_accepted (last 250 after DATA), accepted, errors."""

    def __init__(self, host, port, conns, starttls=False, helo="client.bench.test",
                 timeout=120, reconnect=False):
        self.reconnect = reconnect
        self.host = host
        self.port = port
        self.conns = conns
        self.starttls = starttls
        self.helo = helo
        self.timeout = timeout
        self.ctx = None
        if starttls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2

    def _open(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = sock.makefile("rb")
        _expect(f, 220, "banner")
        sock.sendall(b"EHLO %s\r\n" % self.helo.encode())
        ext = _expect(f, 250, "EHLO")
        if self.starttls:
            sock.sendall(b"STARTTLS\r\n")
            _expect(f, 220, "STARTTLS")
            sock = self.ctx.wrap_socket(sock)
            f = sock.makefile("rb")
            sock.sendall(b"EHLO %s\r\n" % self.helo.encode())
            ext = _expect(f, 250, "EHLO after STARTTLS")
        pipelining = "PIPELINING" in ext.upper()
        return sock, f, pipelining

    def _send_one(self, sock, f, pipelining, m):
        env = [b"MAIL FROM:<%s>\r\n" % m.mail_from.encode(),
               b"RCPT TO:<%s>\r\n" % m.rcpt.encode(), b"DATA\r\n"]
        if pipelining:
            sock.sendall(b"".join(env))
            replies = [_reply(f) for _ in env]
        else:
            replies = []
            for cmd in env:
                sock.sendall(cmd)
                replies.append(_reply(f))
                if replies[-1][0] >= 400:
                    break
        if len(replies) == 3 and replies[2][0] == 354:
            if replies[0][0] != 250 or replies[1][0] // 100 != 2:
                sock.sendall(b".\r\n")  # empty message to get back in step; not counted
                _reply(f)
                raise SmtpError("envelope refused: %s / %s" % (replies[0][1], replies[1][1]))
            sock.sendall(m.wire)
            code, text = _reply(f)
            if code != 250:
                raise SmtpError("message %s refused: %s" % (m.tag, text))
            return
        sock.sendall(b"RSET\r\n")
        _reply(f)
        raise SmtpError("envelope refused: %s" % " / ".join(t for _, t in replies))

    def run(self, messages):
        lock = threading.Lock()
        nxt = [0]
        res = {"accepted": 0, "errors": [], "t0": None, "t_accepted": None}
        barrier = threading.Barrier(self.conns + 1)

        def worker():
            try:
                sock, f, pipelining = self._open()
            except Exception as e:  # noqa: BLE001 - reported, the run then fails
                with lock:
                    res["errors"].append("connect: %r" % e)
                barrier.abort()
                return
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                sock.close()
                return
            try:
                while True:
                    with lock:
                        i = nxt[0]
                        if i >= len(messages):
                            break
                        nxt[0] = i + 1
                    try:
                        if self.reconnect and i >= self.conns:
                            sock.sendall(b"QUIT\r\n")
                            _reply(f)
                            sock.close()
                            sock, f, pipelining = self._open()
                        self._send_one(sock, f, pipelining, messages[i])
                        with lock:
                            res["accepted"] += 1
                    except SmtpError as e:
                        with lock:
                            res["errors"].append(str(e))
                sock.sendall(b"QUIT\r\n")
                _reply(f)
            except Exception as e:  # noqa: BLE001
                with lock:
                    res["errors"].append("session: %r" % e)
            finally:
                sock.close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.conns)]
        for t in threads:
            t.start()
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            for t in threads:
                t.join(5)
            raise SmtpError("could not open %d connections to %s:%d: %s" % (
                self.conns, self.host, self.port, res["errors"][:3]))
        res["t0"] = time.time()
        for t in threads:
            t.join()
        res["t_accepted"] = time.time()
        return res


# -- memory ---------------------------------------------------------------------------

def _status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid):
    """utime + stime of pid in clock ticks (0 if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def cpu_times():
    """(busy, total) clock ticks of the whole machine from /proc/stat (iowait is idle)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def process_tree(root):
    """root and all its descendants (pids), from /proc/*/stat."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


class TreeMemSampler(threading.Thread):
    """Every interval seconds: sum VmRSS and Pss over root_fn()'s process tree; keep the
    maximum of each sum, the largest process count, each pid's own VmHWM, and the CPU
    time each pid used since the sampler started (processes that exit lose their last
    interval)."""

    def __init__(self, root_fn, interval=0.05):
        super().__init__(daemon=True)
        self.root_fn = root_fn
        self.interval = interval
        self.max_rss_kb = 0
        self.max_pss_kb = 0
        self.max_procs = 0
        self.hwm = {}
        self.names = {}
        self.samples = 0
        self.cpu_first = {}
        self.cpu_last = {}
        self._stop_ev = threading.Event()

    def sample(self):
        root = self.root_fn()
        if not root:
            return
        pids = process_tree(root)
        rss = pss = 0
        for p in pids:
            rss += _status_kb(p, "VmRSS")
            pss += _pss_kb(p)
            t = _cpu_ticks(p)
            if p not in self.cpu_first:
                self.cpu_first[p] = t if self.samples == 0 else 0
            self.cpu_last[p] = max(self.cpu_last.get(p, 0), t)
            h = _status_kb(p, "VmHWM")
            if h > self.hwm.get(p, 0):
                self.hwm[p] = h
            if p not in self.names:
                try:
                    with open("/proc/%d/comm" % p) as f:
                        self.names[p] = f.read().strip()
                except OSError:
                    pass
        self.samples += 1
        self.max_rss_kb = max(self.max_rss_kb, rss)
        self.max_pss_kb = max(self.max_pss_kb, pss)
        self.max_procs = max(self.max_procs, len(pids))

    def run(self):
        while not self._stop_ev.is_set():
            self.sample()
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(5)
        self.sample()

    def cpu_seconds(self):
        return sum(self.cpu_last[p] - self.cpu_first[p] for p in self.cpu_last) / TICK

    def sum_hwm_kb(self):
        return sum(self.hwm.values())
