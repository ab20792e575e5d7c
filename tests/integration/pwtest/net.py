"""Loopback helpers: free ports, extra 127.0.0.X addresses, waiting for listeners; and
the fixtures' process helpers (is a pid alive, stop a server, let its user reach a directory)."""

import os
import random
import signal
import socket
import subprocess
import threading
import time

_added = set()


# Ports handed out for servers come from below the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 on Debian): a port the kernel chose
# for bind(0) can be taken a moment later as the local port of an outgoing connection (a
# client of PostgreSQL, of an MX), before the server that was meant to get it binds it.
SERVER_PORTS = (20000, 32768)


# Handed-out ports walk the range from a random start and are never handed out twice in one
# run: a test asks for several ports before any server binds them, so a port that is merely
# free (not yet bound) could otherwise be returned twice and the second server fail to listen.
_handed_out = set()
_next_port = [random.randrange(*SERVER_PORTS)]


def _candidate_ports():
    """Yield each port of SERVER_PORTS once, starting after the last one handed out."""
    low, high = SERVER_PORTS
    for _ in range(high - low):
        port = _next_port[0]
        _next_port[0] = low + (port + 1 - low) % (high - low)
        if port not in _handed_out:
            yield port


def free_port(host="127.0.0.1"):
    """Return a TCP port that is free on host right now (and UDP too, for DNS), never one
    returned before in this run."""
    for port in _candidate_ports():
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, port))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((host, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


def free_port_on(hosts):
    """Return one port that is free on every address in hosts (MX servers share one port)."""
    for _ in range(50):
        port = free_port(hosts[0])
        ok = True
        for h in hosts[1:]:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((h, port))
            except OSError:
                ok = False
                break
        if ok:
            return port
    raise RuntimeError("no common free port found")


def ensure_loopback_addr(addr):
    """Configure addr (127.0.0.X) on lo: Postfix refuses addresses not on an interface."""
    if addr == "127.0.0.1" or addr in _added:
        return
    out = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"],
                 capture_output=True, text=True, check=True).stdout
    if " %s/" % addr not in out:
        subprocess.run(["ip", "addr", "add", "%s/8" % addr, "dev", "lo"],
                   capture_output=True, text=True)
    _added.add(addr)


def wait_port(host, port, timeout=10.0, proc=None):
    """Wait until host:port accepts a TCP connection; fail early if proc exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %s:%d"
                       % (proc.returncode, host, port))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on %s:%d after %.0fs" % (host, port, timeout))


def wait_until(pred, timeout, interval=0.1, what="condition"):
    """Poll pred() until it returns a true value; return that value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pid_alive(pid):
    """True while pid runs; a zombie counts as gone (init reaps orphans only now and then)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def make_traversable(path):
    """Let a server running as another user reach below path: add o+x to path and to
    every parent of it that lacks it (tests run as root in private 0700 directories)."""
    p = os.path.abspath(path)
    while p not in ("/", ""):
        st = os.stat(p)
        if not st.st_mode & 0o001:
            os.chmod(p, st.st_mode | 0o001)
        p = os.path.dirname(p)


def stop_process(proc, timeout=10, sig=signal.SIGTERM):
    """Send proc sig if it still runs; kill it when it has not gone within timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ThreadedListener:
    """A TCP listener on (addr, port) serving each connection in a thread of its own.

    Subclasses call _listen_init first, keep self.lock (a Lock or Condition), and provide
    _new_conn(sock, peer) -> connection object (with a .sock) and _serve(conn).
    """
    backlog = 128
    conn_timeout = 60

    def _listen_init(self, addr, port):
        self.addr, self.port = addr, port
        self.connections = []
        self._sock = None
        self._thread = None
        self._serving = []
        self._stopping = False

    def start(self):
        ensure_loopback_addr(self.addr)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.addr, self.port))
        s.listen(self.backlog)
        self._sock = s
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="listener-%s:%d" % (self.addr, self.port))
        self._thread.start()
        return self

    def stop(self):
        self._stopping = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        if self._thread is not None:
            self._thread.join(5)
        with self.lock:
            conns = list(self.connections)
        # Shut each connection down before closing it: a close alone frees the descriptor
        # while its thread may still be reading it (OpenSSL keeps the number), and the next
        # socket the test opens gets that number, so the thread would read the test's bytes.
        for c in conns:
            try:
                socket.socket.shutdown(c.sock, socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 3
        for t in self._serving:
            t.join(max(0.0, deadline - time.monotonic()))
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, peer = self._sock.accept()
            except OSError:
                return
            sock.settimeout(self.conn_timeout)
            c = self._new_conn(sock, peer)
            with self.lock:
                self.connections.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._serving.append(t)
            t.start()
