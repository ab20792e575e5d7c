"""Durability: the relay is killed with SIGKILL several times while a client sends small
messages. After the last restart every message that got a 250 reaches the MX (a recording
sink) or is still queued; nothing accepted is lost."""

import re
import smtplib
import threading
import time

from pwtest.mailcheck import message, sender_addr, uniq

TOTAL = 2000
KILLS = 4


def _sender(relay_ref, s, r, accepted, stop):
    """Send TOTAL messages one transaction at a time, reconnecting after crashes."""
    i = 0
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
            i += 1
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
    th = threading.Thread(target=_sender, args=(ref, s, r, accepted, stop), daemon=True)
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
        th.join(600)
    finally:
        stop.set()
    assert not th.is_alive(), "the client did not finish"
    assert len(accepted) == TOTAL

    def seen_tags():
        return {m.group(1).decode() for msg in list(sink.messages)
                for m in [re.search(rb"Subject: (crash-\d{5})", msg.data)] if m}

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if set(accepted) <= seen_tags():
            break
        time.sleep(1)
    missing = set(accepted) - seen_tags()
    if missing:
        # Whatever has not arrived must at least still be queued.
        queued = sum(len([x for x in m["recipients"] if x["state"] in ("queued", "deferred")])
                     for m in relay.queue())
        assert len(missing) <= queued, "%d accepted messages lost (%d still queued), e.g. %s" % (
            len(missing), queued, sorted(missing)[:5])
    assert relay.starts == KILLS + 1
