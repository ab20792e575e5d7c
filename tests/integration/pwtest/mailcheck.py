"""Helpers for end-to-end tests: publishing MX hosts in the test zones and reading
notifications (multipart/report delivery status).

Sender addresses live in other.test, whose MX is the pf_notify Postfix: notifications to
senders arrive there. Recipient domains are names inside the test zones (e.g.
good.example.test), each with its own MX host mx-<label>.<zone> on its own 127.0.0.X.
"""

import email
import email.policy
import re
import uuid

from . import relay as pw_relay


def uniq(prefix="u"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:8])


class Zones:
    """Collects records per zone for one test and publishes them in Knot."""

    def __init__(self, knot, mx_port):
        self.knot = knot
        self.mx_port = mx_port
        self.records = {}

    def mx(self, zone, label, addr, tlsa=(), mx_host=None, aaaa=None):
        """Domain <label>.<zone> with MX <mx_host or mx-label.zone> at addr; TLSA records
        are published for port 25 and for the test MX port. Returns the domain."""
        domain = "%s.%s" % (label, zone)
        host = mx_host or "mx-%s.%s" % (label, zone)
        recs = self.records.setdefault(zone, [])
        recs.append((domain + ".", "MX", "10 %s." % host))
        if (host + ".", "A", addr) not in recs:
            recs.append((host + ".", "A", addr))
        for t in tlsa:
            for port in sorted({25, self.mx_port}):
                recs.append(("_%d._tcp.%s." % (port, host), "TLSA", t))
        return domain

    def raw(self, zone, name, rtype, rdata):
        self.records.setdefault(zone, []).append((name, rtype, rdata))

    def publish(self):
        for zone, recs in self.records.items():
            self.knot.set_zone(zone, recs)


def sender_addr():
    return "%s@other.test" % uniq("alice")


def message(mail_from, rcpts, subject="hello", headers=(), body="test message\r\n"):
    return pw_relay.make_message(mail_from, rcpts, subject=subject, headers=headers, body=body)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def report_parts(raw):
    """(message, human text, delivery-status text) of a multipart/report notification."""
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    human = None
    status = None
    for part in msg.iter_parts():
        ct = part.get_content_type()
        if ct == "text/plain" and human is None:
            human = part.get_content()
        elif ct in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                status = "\n".join(p.as_string() for p in payload)
            else:
                status = part.get_payload(decode=True).decode("utf-8", "replace")
    assert human is not None, "no text/plain part"
    assert status is not None, "no delivery-status part"
    return msg, human, status


def status_per_recipient(status_text):
    """{recipient: status} from a delivery-status body."""
    out = {}
    rcpt = None
    for line in status_text.splitlines():
        m = re.match(r"(?i)(?:final|original)-recipient:\s*rfc822;\s*<?([^>\s]+)>?", line)
        if m and line.lower().startswith("final"):
            rcpt = m.group(1).lower()
        m = re.match(r"(?i)status:\s*(\S+)", line)
        if m and rcpt:
            out[rcpt] = m.group(1)
    return out


def queue_message(relay, sender):
    """The queue entry of the message from sender (exactly one expected)."""
    msgs = [m for m in relay.queue() if m["sender"] == sender]
    assert len(msgs) == 1, relay.queue()
    return msgs[0]


def rcpt_states(entry):
    return {r["address"]: r["state"] for r in entry["recipients"]}
