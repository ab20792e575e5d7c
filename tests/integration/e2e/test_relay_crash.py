"""Durability: the relay is killed with SIGKILL several times while a client sends small
messages. After the last restart every message that got a 250 reaches the MX (a recording
sink); nothing accepted is lost.

Duplicates are counted and printed per kill (run pytest with -s to see them). Two kinds are
told apart by the relay's queue ID in its Received: field:
  - relay duplicates: one queued message delivered twice, i.e. the relay was killed between
    the receiver's 250 and the recipient's "delivered" row (the window item 9 narrows);
  - client resends: the client got no 250 for a message the relay had already made durable,
    and sent it again as a new message (inherent in SMTP, RFC 1047; not the relay's doing).
PW_CRASH_KILLS and PW_CRASH_TOTAL make the run longer for a measurement."""

import collections
import os
import re
import smtplib
import threading
import time

import pytest

from pwtest.mailcheck import message, sender_addr, uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

TOTAL = int(os.environ.get("PW_CRASH_TOTAL", "2000"))
KILLS = int(os.environ.get("PW_CRASH_KILLS", "4"))
CLIENTS = int(os.environ.get("PW_CRASH_CLIENTS", "4"))   # concurrent senders
DEST_MAX = 20   # deliveries in flight to one destination (SCHED_DEST_MAX in relay_sched.c)
TAG_RE = re.compile(rb"Subject: (crash-\d{5})")
QID_RE = re.compile(rb"\(postwarden\) with E?SMTPS? id ([A-Za-z0-9]+)")


def _sender(relay_ref, s, r, accepted, stop, first):
    """Send messages first, first + CLIENTS, ... below TOTAL one transaction at a time,
    reconnecting after crashes."""
    i = first
    conn = None
    while i < TOTAL and not stop.is_set():
        try:
            if conn is None:
                relay = relay_ref[0]
                conn = smtplib.SMTP(relay.listen_addr, relay.port, timeout=10)
                conn.ehlo("client.example.test")
            tag = "crash-%05d" % i
            conn.sendmail(s, [r], message(s, [r], tag))
            accepted.append(tag)   # only after the final 250
            i += CLIENTS
        except (OSError, smtplib.SMTPException):
            try:
                if conn is not None:
                    conn.close()
            except OSError:
                pass
            conn = None
            time.sleep(0.05)
    if conn is not None:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            pass


def test_sigkill_loses_no_accepted_message(make_relay, zones, smtp_server):
    sink = smtp_server("sink")
    dom = zones.mx("example.test", uniq("crash"), sink.addr)
    zones.publish()
    relay = make_relay()
    s, r = sender_addr(), "many@" + dom
    relay.pw("user", "add", s, check=True)
    relay.pw("user", "guarantee", s, "off", check=True)

    accepted = []
    stop = threading.Event()
    ref = [relay]
    threads = [threading.Thread(target=_sender, args=(ref, s, r, accepted, stop, c), daemon=True)
               for c in range(CLIENTS)]
    for th in threads:
        th.start()
    try:
        for _ in range(KILLS):
            before = len(accepted)
            deadline = time.monotonic() + 30
            # Kill while mail is flowing: wait for some fresh 250s first.
            while len(accepted) < min(before + 150, TOTAL) and time.monotonic() < deadline:
                time.sleep(0.02)
            relay.kill()
            time.sleep(0.3)
            relay.start()
        for th in threads:
            th.join(600)
    finally:
        stop.set()
    assert not any(th.is_alive() for th in threads), "a client did not finish"
    assert len(accepted) == TOTAL

    def seen_tags():
        return {m.group(1).decode() for msg in list(sink.messages)
                for m in [TAG_RE.search(msg.data)] if m}

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if set(accepted) <= seen_tags():
            break
        time.sleep(1)
    missing = set(accepted) - seen_tags()
    assert not missing, "%d accepted messages not delivered, e.g. %s (queue: %s)" % (
        len(missing), sorted(missing)[:5], relay.queue()[:3])
    time.sleep(2)   # let late deliveries (duplicates) arrive before counting them
    relay_dups, resends = _count_duplicates(list(sink.messages))
    print("\ncrash test: %d kills, %d messages accepted, %d deliveries; relay duplicates %d "
          "(%.2f per kill), client resends %d (%.2f per kill)" % (
              KILLS, len(accepted), len(sink.messages), relay_dups, relay_dups / KILLS,
              resends, resends / KILLS))
    # A bound that holds whatever the timing: only a transaction whose final dot was out can
    # be delivered twice, and at most SCHED_DEST_MAX (20) run to one destination at a time.
    # Losing recorded results (e.g. results written only at shutdown) would break it.
    assert relay_dups <= KILLS * DEST_MAX, "%d relay duplicates in %d kills" % (relay_dups,
                                                                               KILLS)
    assert relay.starts == KILLS + 1


def _count_duplicates(messages):
    """(relay duplicates, client resends) among the sink's messages (see the module doc)."""
    per_qid = collections.Counter()
    qids_per_tag = collections.defaultdict(set)
    for msg in messages:
        tag, qid = TAG_RE.search(msg.data), QID_RE.search(msg.data)
        assert tag and qid, "a delivered message without its tag or queue ID"
        per_qid[qid.group(1)] += 1
        qids_per_tag[tag.group(1)].add(qid.group(1))
    relay_dups = sum(n - 1 for n in per_qid.values())
    resends = sum(len(q) - 1 for q in qids_per_tag.values())
    return relay_dups, resends


def test_duplicate_count_tells_relay_duplicates_from_resends():
    """Control for the counting above: made-up deliveries with known duplicates."""
    class M:
        def __init__(self, tag, qid):
            self.data = (b"Received: from c ([127.0.0.1])\r\n\tby h (postwarden) with ESMTP id "
                         + qid + b";\r\nSubject: " + tag + b"\r\n\r\nx\r\n")
    msgs = [M(b"crash-00001", b"AAAA"), M(b"crash-00001", b"AAAA"),   # relay duplicate
            M(b"crash-00002", b"BBBB"), M(b"crash-00002", b"CCCC"),   # client resend
            M(b"crash-00003", b"DDDD")]
    assert _count_duplicates(msgs) == (1, 1)
