"""Durability with PostgreSQL and several nodes: while clients send small messages,
(1) one of two nodes sharing a database is killed with SIGKILL and restarted, several times;
(2) the PostgreSQL server itself is restarted ("immediate": no checkpoint, crash recovery;
"fast": sessions ended) under a running node. Afterwards every message that got a 250
reaches the MX (a recording sink); duplicates are allowed and reported (run with -s).

While the database is away serve must not accept a message under the wrong guarantee:
its refusals are 451 4.3.0 with a text naming the database, and it reconnects by itself.
"""

import collections
import re
import smtplib
import threading
import time

from pwtest import net
from pwtest import nodes as pw_nodes
from pwtest.mailcheck import message, sender_addr, uniq

TAG_RE = re.compile(rb"Subject: (nodes-\d{5})")
QID_RE = re.compile(rb"\(postwarden\) with E?SMTPS? id ([A-Za-z0-9]+)")
CLIENTS = 4


class Load:
    """CLIENTS threads sending TOTAL messages, client c to relays[c % len(relays)], one
    transaction at a time, reconnecting after errors. accepted: tags that got a 250;
    refusals: (code, text) of every 4xx answer."""

    def __init__(self, relays, sender, rcpt, total):
        self.relays = relays
        self.sender, self.rcpt, self.total = sender, rcpt, total
        self.accepted = []
        self.refusals = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(c,), daemon=True)
                        for c in range(CLIENTS)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def _client(self, c):
        i, conn = c, None
        while i < self.total and not self.stop.is_set():
            try:
                if conn is None:
                    relay = self.relays[c % len(self.relays)]
                    conn = smtplib.SMTP(relay.listen_addr, relay.port, timeout=15)
                    conn.ehlo("client.example.test")
                tag = "nodes-%05d" % i
                conn.sendmail(self.sender, [self.rcpt], message(self.sender, [self.rcpt], tag))
                self.accepted.append(tag)   # only after the final 250
                i += CLIENTS
            except smtplib.SMTPResponseException as e:
                self.refusals.append((e.smtp_code, e.smtp_error.decode(errors="replace")))
                try:
                    conn.rset()
                except (OSError, smtplib.SMTPException):
                    conn = None
                time.sleep(0.1)
            except smtplib.SMTPRecipientsRefused as e:
                for code, text in e.recipients.values():
                    self.refusals.append((code, text.decode(errors="replace")))
                conn = None
                time.sleep(0.1)
            except (OSError, smtplib.SMTPException):
                conn = None
                time.sleep(0.05)
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                pass

    def wait_for(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.accepted) < min(n, self.total) and time.monotonic() < deadline:
            time.sleep(0.02)

    def join(self, timeout=600):
        for th in self.threads:
            th.join(timeout)
        self.stop.set()
        assert not any(th.is_alive() for th in self.threads), "a client did not finish"


def _tags(sink):
    return [m.group(1).decode() for msg in list(sink.messages)
            for m in [TAG_RE.search(msg.data)] if m]


def _assert_all_delivered(load, sink, relays, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not set(load.accepted) <= set(_tags(sink)):
        time.sleep(1)
    missing = set(load.accepted) - set(_tags(sink))
    assert not missing, "%d accepted messages not delivered, e.g. %s (queues: %s)" % (
        len(missing), sorted(missing)[:5], [r.queue()[:2] for r in relays])
    time.sleep(2)   # late duplicates
    per_qid = collections.Counter(QID_RE.search(m.data).group(1) for m in list(sink.messages))
    per_tag = collections.Counter(_tags(sink))
    return sum(n - 1 for n in per_qid.values()), sum(n - 1 for n in per_tag.values())


def _setup(make_relay, zones, smtp_server, postgres, names):
    sink = smtp_server("sink")
    dom = zones.mx("example.test", uniq("crn"), sink.addr)
    zones.publish()
    url, pwfile = pw_nodes.shared_database(postgres)
    relays = [make_relay(database_url=url, database_password_file=pwfile, server_node=n)
              for n in names]
    s = sender_addr()
    relays[0].pw("user", "add", s, check=True)
    relays[0].pw("user", "guarantee", s, "off", check=True)
    return sink, relays, s, "many@" + dom


def test_sigkill_of_one_node_under_load_loses_nothing(make_relay, zones, smtp_server,
                                                       postgres):
    kills, total = 3, 900
    sink, (a, b), s, r = _setup(make_relay, zones, smtp_server, postgres,
                                ["node-a", "node-b"])
    load = Load([a, b], s, r, total).start()
    try:
        for _ in range(kills):
            load.wait_for(len(load.accepted) + 120)
            a.kill()
            time.sleep(0.3)
            a.start()
        load.join()
    finally:
        load.stop.set()
    assert len(load.accepted) == total
    dups, resends = _assert_all_delivered(load, sink, [a, b])
    print("\ntwo nodes, %d SIGKILLs of node-a: %d accepted, %d deliveries, relay duplicates "
          "%d, client resends %d, refusals %d" % (kills, len(load.accepted),
                                                  len(sink.messages), dups, resends,
                                                  len(load.refusals)))
    assert a.starts == kills + 1 and b.starts == 1
    # node-b never delivered node-a's messages, which stay in node-a's spool
    ids_a = {l.split("id=")[1].split()[0] for l in a.log_lines("smtpd_received")}
    assert not ids_a & {d["id"] for d in b.deliveries()}


def _restart_under_load(make_relay, zones, smtp_server, postgres, mode):
    restarts, total = 2, 700
    sink, (a,), s, r = _setup(make_relay, zones, smtp_server, postgres, ["node-a"])
    load = Load([a], s, r, total).start()
    outages = []
    try:
        for _ in range(restarts):
            load.wait_for(len(load.accepted) + 150)
            t0 = time.monotonic()
            postgres.stop(mode=mode)
            time.sleep(1.5)     # away long enough for mail to run into it
            postgres.start()
            outages.append(time.monotonic() - t0)
        load.join()
    finally:
        load.stop.set()
        if not postgres.running():
            postgres.start()
    assert len(load.accepted) == total
    dups, resends = _assert_all_delivered(load, sink, [a])
    codes = collections.Counter(code for code, _ in load.refusals)
    print("\nPostgreSQL %s restart x%d (away %s s): %d accepted, %d deliveries, relay "
          "duplicates %d, client resends %d, refusals %s, e.g. %s" % (
              mode, restarts, ", ".join("%.1f" % o for o in outages), len(load.accepted),
              len(sink.messages), dups, resends, dict(codes), load.refusals[:2]))
    assert a.alive() and a.starts == 1             # no restart of serve was needed
    assert len(a.log_lines("db_reconnected")) >= restarts
    # every refusal says what is wrong; none is a 5xx
    for code, text in load.refusals:
        assert code in (421, 451, 452), (code, text)
        if code == 451:
            assert text.startswith("4.3.0") and "database" in text, text
    assert codes[451] > 0, "no message ran into the outage: %s" % load.refusals


def test_postgres_immediate_restart_under_load_loses_nothing(make_relay, zones, smtp_server,
                                                              postgres):
    _restart_under_load(make_relay, zones, smtp_server, postgres, "immediate")


def test_postgres_fast_restart_under_load_loses_nothing(make_relay, zones, smtp_server,
                                                         postgres):
    _restart_under_load(make_relay, zones, smtp_server, postgres, "fast")
