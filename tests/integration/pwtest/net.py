"""Loopback helpers: free ports, extra 127.0.0.X addresses, waiting for listeners."""

import socket
import subprocess
import time

_added = set()


def free_port(host="127.0.0.1"):
    """Return a TCP port that is free on host right now (and UDP too, for DNS)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind((host, port))
        except OSError:
            continue
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
