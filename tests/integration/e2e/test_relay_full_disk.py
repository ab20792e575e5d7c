"""A full disk must not stop the relay, nor crash a command-line tool.

state_dir is a small tmpfs (the tests run as root). Mail flows in while deliveries are held
at the receiver; the file system is filled to the last byte, the held deliveries finish
(their results cannot be written), new mail meets the full disk. serve must stay up, answer
"452 4.3.1 Insufficient system storage", log the condition once, and when space is freed
deliver every message it accepted, exactly once, with no restart.
"""

import errno
import os
import smtplib
import subprocess
import threading
import time

import pytest

from pwtest import database as pw_database
from pwtest import net
from pwtest.mailcheck import uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

TMPFS_SIZE = "8m"


def mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % TMPFS_SIZE, "tmpfs",
                    path], check=True)


def umount(path):
    subprocess.run(["umount", "-l", path], check=False)


def fill(path):
    """Write a file until the file system is full; returns its path."""
    filler = os.path.join(path, "filler")
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    # the last partial blocks too
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler


class Flow(threading.Thread):
    """Sends one message per connection until stopped; records the outcome of each."""

    def __init__(self, relay, rcpt):
        super().__init__(daemon=True)
        self.relay, self.rcpt = relay, rcpt
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted, self.refused = [], []     # tags; (tag, code, text)

    def send_one(self, tag):
        msg = ("From: <a@other.test>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nflowing\r\n" %
               (self.rcpt, tag)).encode()
        try:
            with smtplib.SMTP(self.relay.listen_addr, self.relay.port, timeout=30,
                              local_hostname="client.example.test") as s:
                s.sendmail("a@other.test", [self.rcpt], msg)
            return None
        except smtplib.SMTPSenderRefused as e:
            return (e.smtp_code, e.smtp_error.decode())
        except smtplib.SMTPDataError as e:
            return (e.smtp_code, e.smtp_error.decode())

    def run(self):
        n = 0
        while not self.stop.is_set():
            tag = "flow-%d" % n
            n += 1
            err = self.send_one(tag)
            with self.lock:
                if err is None:
                    self.accepted.append(tag)
                else:
                    self.refused.append((tag, err[0], err[1]))
            time.sleep(0.05)

    def counts(self):
        with self.lock:
            return len(self.accepted), list(self.refused)


def tags_of(srv):
    out = []
    for m in list(srv.messages):
        for line in m.data.split(b"\r\n"):
            if line.startswith(b"Subject: flow-"):
                out.append(line[len(b"Subject: "):].decode())
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pw_database.sqlite_only("the tmpfs that fills up holds SQLite's database file; a "
                         "PostgreSQL server keeps its data elsewhere")
def test_full_disk_answers_452_and_recovers_without_restart(make_relay, smtp_server, zones):
    gate = threading.Event()
    srv = smtp_server("notls", gate=gate)
    rcpt = "user@" + zones.mx("example.test", uniq("full"), srv.addr)
    zones.publish()
    relay = make_relay(start=False, relay_retry_min="1s", relay_retry_max="2s")
    mount_tmpfs(relay.state_dir)
    flow = Flow(relay, rcpt)
    filler = None
    try:
        relay.start()
        flow.start()
        # mail flows; deliveries are held at the receiver (in flight)
        net.wait_until(lambda: flow.counts()[0] >= 8 and len(srv.connections) > 0, 60,
                       what="mail flowing and deliveries in flight")
        filler = fill(relay.state_dir)
        gate.set()          # the held deliveries finish now, on a full disk
        net.wait_until(lambda: [r for r in flow.counts()[1] if r[1] == 452], 30,
                       what="a 452 while the disk is full")
        time.sleep(3)       # deliveries end, the scheduler polls, mail keeps coming
        assert relay.alive(), relay.log()[-3000:]
        with smtplib.SMTP(relay.listen_addr, relay.port, timeout=30) as s:
            s.ehlo("client.example.test")
            code, text = s.mail("a@other.test")
            assert (code, text) == (452, b"4.3.1 Insufficient system storage"), (code, text)
        # a command-line tool on the full disk says so and exits non-zero (serve keeps going)
        cli = relay.pw("user", "add", "full-%s@other.test" % uniq())
        assert cli.returncode != 0, cli
        assert "full" in cli.stderr and "postwarden:" in cli.stderr, cli.stderr
        assert "AddressSanitizer" not in cli.stderr and "runtime error" not in cli.stderr
        assert relay.alive()
        os.unlink(filler)
        filler = None
        # recovery by itself: new mail is accepted again
        refused_before = len(flow.counts()[1])
        accepted_before = flow.counts()[0]
        net.wait_until(lambda: flow.counts()[0] >= accepted_before + 5, 60,
                       what="mail accepted again after space came back")
        flow.stop.set()
        flow.join(60)
        # a declared SIZE larger than the room left gets 452 too, without a condition
        with smtplib.SMTP(relay.listen_addr, relay.port, timeout=30) as s:
            s.ehlo("client.example.test")
            assert s.mail("a@other.test", ["SIZE=20000000"])[0] == 452
            assert s.mail("a@other.test", ["SIZE=2000"])[0] == 250
        accepted, refused = list(flow.accepted), list(flow.refused)
        relay.wait_queue_empty(timeout=60)
        delivered = tags_of(srv)
        # every accepted message delivered exactly once; nothing refused with 250 lost
        missing = sorted(set(accepted) - set(delivered))
        dups = sorted({t for t in delivered if delivered.count(t) > 1})
        assert not missing, missing
        assert not dups, dups
        assert set(delivered) <= set(accepted) | {t for t, c, _ in refused if c == 451}
        assert relay.alive() and relay.starts == 1
        assert all(c in (452, 451) for _, c, _ in refused), refused
        assert all(t.startswith("4.3.1 Insufficient system storage")
                   for _, c, t in refused if c == 452), refused
        log = relay.log()
        assert log.count("event=storage_short") == 1, relay.log_lines("storage_short")
        assert log.count("event=storage_recovered") == 1, relay.log_lines("storage_recovered")
        print("accepted=%d refused=%d (452: %d, 451: %d) refused_after_free=%d "
              "results_pending=%d rows_pending=%d" % (
                  len(accepted), len(refused), len([r for r in refused if r[1] == 452]),
                  len([r for r in refused if r[1] == 451]),
                  len(refused) - refused_before, log.count("event=results_written"),
                  log.count("event=queue_rows_written")))
    finally:
        flow.stop.set()
        gate.set()
        if filler:
            os.unlink(filler)
        relay.stop()
        umount(relay.state_dir)


@pw_database.sqlite_only("another process holds SQLite's database-wide write lock, which "
                         "PostgreSQL does not have")
def test_locked_database_keeps_serving_and_writes_rows_later(make_relay, smtp_server, zones):
    """Another process holds the database's write lock past the busy timeout (10 s): the
    message whose rows cannot be written is still accepted (its spool file is durable), serve
    stays up, and once the lock is gone the rows are written and the message delivered once."""
    import sqlite3
    srv = smtp_server("notls")
    rcpt = "user@" + zones.mx("example.test", uniq("locked"), srv.addr)
    zones.publish()
    relay = make_relay()
    msg = "From: <a@other.test>\r\nSubject: flow-%s\r\n\r\nbody\r\n"
    relay.send("a@other.test", [rcpt], msg % "before")
    srv.wait_for_messages(1)
    # its removal (file, then rows) is done by the queue's worker: let it finish first, so
    # that the lock below meets the commit of the next message, not this removal
    relay.wait_queue_empty()
    # the message is on its way (data sent, final dot not yet) when the lock is taken
    c = smtplib.SMTP(relay.listen_addr, relay.port, timeout=90,
                     local_hostname="client.example.test")
    c.ehlo()
    assert c.mail("a@other.test")[0] == 250 and c.rcpt(rcpt)[0] == 250
    c.putcmd("data")
    assert c.getreply()[0] == 354
    c.send((msg % "locked").encode())
    con = sqlite3.connect(os.path.join(relay.state_dir, "postwarden.db"), isolation_level=None,
                          timeout=30)
    con.execute("BEGIN IMMEDIATE")
    try:
        c.send(b".\r\n")
        net.wait_until(lambda: "event=queue_rows_pending" in relay.log(), 40,
                       what="rows that cannot be written")
        assert relay.alive()
    finally:
        con.execute("ROLLBACK")
        con.close()
    code, text = c.getreply()
    assert code == 250, (code, text)     # the spool file is durable: accepted
    c.quit()
    srv.wait_for_messages(2, timeout=60)
    time.sleep(1.5)
    assert sorted(tags_of(srv)) == ["flow-before", "flow-locked"], tags_of(srv)
    relay.wait_queue_empty(timeout=60)
    log = relay.log()
    assert "locked" in relay.log_lines("storage_short")[0]
    assert log.count("event=storage_short") == 1, relay.log_lines("storage_short")
    assert "event=queue_rows_written" in log
    assert relay.alive() and relay.starts == 1
    net.wait_until(lambda: "event=storage_recovered" in relay.log(), 30, what="the end logged")
