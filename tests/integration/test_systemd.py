"""serve under a service manager: the sd_notify protocol (READY=1 once the listeners accept,
STOPPING=1 on SIGTERM) against a datagram socket the test owns, and the unit file as
systemd-analyze verify sees it."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from pwtest import net
from pwtest import relay as pw_relay

UNIT = os.path.join(pw_relay.REPO_ROOT, "etc", "postwarden.service")


@pytest.fixture
def notify_dir():
    # sun_path holds 108 bytes: keep the socket's path short.
    d = tempfile.mkdtemp(prefix="pwn", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _socket(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(addr)
    return s


def _start(relay, notify_socket):
    """Start serve with NOTIFY_SOCKET set, without waiting for its port."""
    relay.write_conf()
    env = pw_relay.daemon_env()
    env["NOTIFY_SOCKET"] = notify_socket
    log = open(relay.log_path, "a")
    relay.proc = subprocess.Popen([pw_relay.binary(), "-c", relay.conf_path, "serve"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                  cwd=relay.dir)
    log.close()
    return relay.proc


def _recv(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode()
    except socket.timeout:
        return None


def _banner(addr, port):
    with socket.create_connection((addr, port), timeout=5) as c:
        c.settimeout(10)
        return c.recv(512)


def _ready_then_stopping(relay, sock, notify_socket):
    proc = _start(relay, notify_socket)
    got = _recv(sock, 30)
    assert got is not None, "no READY=1\n" + relay.log()[-3000:]
    # At the moment READY=1 arrives, the SMTP port accepts and greets.
    assert "READY=1" in got.split("\n"), got
    assert _banner(relay.listen_addr, relay.port).startswith(b"220 "), "no greeting"
    assert relay.log_lines("start"), "READY=1 before the start line"
    assert proc.poll() is None
    assert _recv(sock, 0.5) is None, "a second message before SIGTERM"
    proc.send_signal(signal.SIGTERM)
    got = _recv(sock, 15)
    assert got is not None and "STOPPING=1" in got.split("\n"), got
    assert proc.wait(15) == 0
    relay.proc = None


def test_ready_after_listen_and_stopping_on_sigterm(make_relay, notify_dir):
    relay = make_relay(start=False)
    path = os.path.join(notify_dir, "notify")
    with _socket(path) as sock:
        _ready_then_stopping(relay, sock, path)


def test_ready_on_an_abstract_socket(make_relay):
    relay = make_relay(start=False)
    name = "pw-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
    with _socket("\0" + name) as sock:
        _ready_then_stopping(relay, sock, "@" + name)


def test_no_ready_when_a_port_cannot_be_bound(make_relay, notify_dir):
    """Control: serve that cannot bind its SMTP port exits without READY=1."""
    relay = make_relay(start=False)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((relay.listen_addr, relay.port))
    blocker.listen(1)
    path = os.path.join(notify_dir, "notify")
    try:
        with _socket(path) as sock:
            proc = _start(relay, path)
            assert proc.wait(30) != 0
            relay.proc = None
            assert _recv(sock, 0.5) is None
    finally:
        blocker.close()


def test_without_notify_socket_serve_runs(relay):
    """No NOTIFY_SOCKET (a plain start): nothing is sent and nothing complains."""
    assert _banner(relay.listen_addr, relay.port).startswith(b"220 ")
    assert relay.log_lines("sd_notify") == []


def _analyze():
    exe = shutil.which("systemd-analyze")
    # make check installs it (scripts/install-deps.sh); missing is a failure, not a skip
    assert exe is not None, "systemd-analyze is not installed (Debian package systemd)"
    return exe


def _verify(exe, unit_text, d):
    """systemd-analyze verify of unit_text with ExecStart pointing at the built binary (the
    check wants an executable there); returns its exit status and output."""
    path = os.path.join(d, "postwarden.service")
    with open(path, "w") as f:
        f.write(unit_text.replace("/usr/local/sbin/postwarden", pw_relay.binary()))
    r = subprocess.run([exe, "verify", "--man=no", path], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_unit_verifies(notify_dir):
    exe = _analyze()
    with open(UNIT) as f:
        text = f.read()
    assert "\nType=notify\n" in text and "\nUser=postwarden\n" in text
    assert "\nExecReload" not in text       # serve has no reload
    rc, out = _verify(exe, text, notify_dir)
    assert rc == 0 and out == "", out
    # control: a misspelled key and a bad value are reported
    rc, out = _verify(exe, text.replace("ProtectSystem=strict", "ProtectSystme=strict")
                      .replace("Type=notify", "Type=notifyy"), notify_dir)
    assert "ProtectSystme" in out and "notifyy" in out, out


def test_unit_port_and_user_match_the_docs():
    """The unit and README agree on the user, the config path and the state directory."""
    with open(UNIT) as f:
        unit = f.read()
    with open(os.path.join(pw_relay.REPO_ROOT, "README.md")) as f:
        readme = f.read()
    assert "-c /etc/postwarden/postwarden.conf serve" in unit
    assert "## Running in production" in readme
    for s in ("/etc/postwarden/postwarden.conf", "/var/lib/postwarden", "postwarden.service",
              "journalctl -u postwarden", "[metrics]"):
        assert s in readme, s


# -- the unit's privileges, without systemd: setpriv gives serve what the unit gives it -----

PRIV_ADDR = "127.0.83.25"       # port 25 on an address of its own: nothing else uses it


def _setpriv(with_cap):
    exe = shutil.which("setpriv")
    assert exe is not None, "setpriv is not installed (Debian package util-linux)"
    argv = [exe, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--no-new-privs"]
    if with_cap:
        argv += ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
                 "--bounding-set=-all,+net_bind_service"]
    else:
        argv += ["--inh-caps=-all", "--bounding-set=-all"]
    return argv


def _start_unprivileged(relay, with_cap):
    relay.sections["relay"]["listen"] = "%s:25" % PRIV_ADDR
    relay.port, relay.listen_addr = 25, PRIV_ADDR
    relay.write_conf()
    for d in (relay.dir, os.path.dirname(relay.sections["dns"]["unbound_config"])):
        net.make_traversable(d)
    for root, dirs, files in os.walk(relay.state_dir):
        for n in dirs + files + [""]:
            os.chown(os.path.join(root, n), 65534, 65534)
    log = open(relay.log_path, "a")
    relay.proc = subprocess.Popen(_setpriv(with_cap) + [pw_relay.binary(), "-c",
                                                        relay.conf_path, "serve"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  env=pw_relay.daemon_env(), cwd=relay.dir)
    log.close()
    return relay.proc


def test_unprivileged_with_the_capability_binds_port_25(make_relay):
    relay = make_relay(start=False)
    proc = _start_unprivileged(relay, with_cap=True)
    net.wait_port(PRIV_ADDR, 25, timeout=30, proc=proc)
    assert _banner(PRIV_ADDR, 25).startswith(b"220 ")
    with open("/proc/%d/status" % proc.pid) as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines())
    assert status["Uid"].split()[0] == "65534"
    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapEff"], 16) == 1 << 10      # CAP_NET_BIND_SERVICE only
    assert relay.stop() == 0


def test_unprivileged_without_the_capability_cannot_bind_port_25(make_relay):
    """Control: the same start without the capability fails at the port."""
    relay = make_relay(start=False)
    proc = _start_unprivileged(relay, with_cap=False)
    assert proc.wait(30) != 0
    relay.proc = None
    assert "cannot listen" in relay.log() or "Permission denied" in relay.log(), \
        relay.log()[-2000:]
