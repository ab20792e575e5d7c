"""TLS reporting (RFC 8460) end to end: a day of deliveries to fixture domains with known
TLS outcomes (valid DANE to Postfix, no STARTTLS at Postfix, a DANE mismatch at a scripted
server), counted by the relay; then the day's reports, checked field by field as they
arrive: by mail at a real Postfix (the gzip'd attachment decoded from the stored message)
and POSTed to an HTTPS receiver the test runs. A day is reported once; a domain without
_smtp._tls gets nothing.
"""

import datetime
import email
import email.policy
import gzip
import http.server
import ipaddress
import json
import socketserver
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pwtest import net, prom
from pwtest.ca import Cert
from pwtest.mailcheck import message, sender_addr, uniq

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

# The HTTPS report receiver's address: in the hostile pool's upper end, which the three
# smtp_server()s of these tests never reach.
RECEIVER_ADDR = "127.0.0.38"
MSGS = 3


def _ip_cert(test_ca, ip):
    """A server certificate for an IP address (the receiver is reached by IP literal)."""
    priv = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
         .issuer_name(test_ca.ca.cert.subject)
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .serial_number(x509.random_serial_number()).public_key(priv.public_key())
         .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                        critical=False)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                        critical=False))
    cert = b.sign(test_ca.key, hashes.SHA256())
    return Cert(cert, priv, test_ca.directory, "tlsrpt-receiver-" + ip, chain=[test_ca.ca.cert])


class ReportReceiver:
    """An HTTPS server that keeps every POST: (path, content type, body)."""

    def __init__(self, addr, cert):
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.port = net.free_port(addr)
        self.httpd = Server((addr, self.port), Handler)
        self.httpd.socket = cert.server_context().wrap_socket(self.httpd.socket,
                                                              server_side=True)
        self.url = "https://%s:%d" % (addr, self.port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self, path):
        with self.lock:
            return [(ct, b) for p, ct, b in self.posts if p == path]


@pytest.fixture
def receiver(test_ca):
    r = ReportReceiver(RECEIVER_ADDR, _ip_cert(test_ca, RECEIVER_ADDR))
    yield r
    r.stop()


def _today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def _counts(relay, day):
    """{(domain, policy type, mx, result): count} of `tlsrpt show --json`."""
    out = {}
    for r in relay.pw_json("tlsrpt", "show", "--day", day):
        k = (r["policy-domain"], r["policy-type"], r["mx-host"], r["result-type"])
        out[k] = out.get(k, 0) + r["count"]
    return out


def _report_of_mail(raw):
    """(message, report JSON, attachment file name) of a TLS report mail."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "tlsrpt"
    att = [p for p in msg.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"]
    assert len(att) == 1, [p.get_content_type() for p in msg.iter_parts()]
    return msg, json.loads(gzip.decompress(att[0].get_payload(decode=True))), att[0].get_filename()


def _policy(report, ptype):
    ps = [p for p in report["policies"] if p["policy"]["policy-type"] == ptype]
    assert len(ps) == 1, report["policies"]
    return ps[0]


def test_day_of_deliveries_reported_by_mail_and_https(make_relay, zones, pf_tls, pf_plain,
                                                      smtp_server, test_ca, receiver):
    relay = make_relay(tlsrpt_organization="Relay Test Org",
                       tlsrpt_contact="tls-reports@other.test",
                       tlsrpt_allow_private="on", relay_ca_file=test_ca.ca.cert_path,
                       relay_retry_min="1h")
    # where the reports go: a mailbox at Postfix (pf_tls), and the HTTPS receiver
    rua_dom = zones.mx("example.test", uniq("rua"), pf_tls.addr, mx_host="mx1.example.test")
    # valid DANE: Postfix with a TLSA record for its key
    dane_dom = zones.mx("example.test", uniq("dane"), pf_tls.addr,
                        tlsa=[pf_tls.cert.tlsa_311()], mx_host="mx1.example.test")
    # no STARTTLS: Postfix without TLS
    plain_dom = zones.mx("example.test", uniq("plain"), pf_plain.addr)
    # DANE mismatch: the zone publishes a TLSA record for a key the server does not use
    published = test_ca.issue("mx-rptbad.example.test", stem="rpt-published")
    # (another name set: issue() gives the same certificate for the same names)
    bad_srv = smtp_server("sink", cert=test_ca.issue("mx-rptbad.example.test",
                                                     "x.example.test", stem="rpt-served"))
    bad_dom = zones.mx("example.test", uniq("rptbad"), bad_srv.addr,
                       tlsa=[published.tlsa_311()])
    bad_host = "mx-%s" % bad_dom
    # control: delivered over TLS like the others, but asks for no reports
    quiet_dom = zones.mx("example.test", uniq("quiet"), pf_tls.addr, mx_host="mx1.example.test")
    rua = {}
    for dom in (dane_dom, plain_dom, bad_dom):
        label = dom.split(".")[0]
        rua[dom] = ("tlsrpt-%s@%s" % (label, rua_dom), "/tlsrpt/" + label)
        zones.raw("example.test", "_smtp._tls.%s." % dom, "TXT",
                  '"v=TLSRPTv1; rua=mailto:%s,%s%s"' % (rua[dom][0], receiver.url,
                                                       rua[dom][1]))
    zones.publish()

    s = sender_addr()
    for i in range(MSGS):
        for dom in (dane_dom, plain_dom, bad_dom):
            r = "user%d@%s" % (i, dom)
            assert relay.send(s, [r], message(s, [r], "tlsrpt %d" % i)) == {}
    relay.send(s, ["q@" + quiet_dom], message(s, ["q@" + quiet_dom], "quiet"))
    for i in range(MSGS):
        pf_tls.wait_for_message("user%d@%s" % (i, dane_dom), timeout=60)
        pf_plain.wait_for_message("user%d@%s" % (i, plain_dom), timeout=60)
    pf_tls.wait_for_message("q@" + quiet_dom, timeout=60)

    day = _today()
    want = {
        (dane_dom, "tlsa", "mx1.example.test", "success"): MSGS,
        (plain_dom, "no-policy-found", "mx-" + plain_dom, "starttls-not-supported"): MSGS,
        (bad_dom, "tlsa", bad_host, "tlsa-invalid"): MSGS,
        (quiet_dom, "tlsa", "mx1.example.test", "success"): 1,
    }
    # the counts reach the database in batches, within seconds
    counts = net.wait_until(lambda: (lambda c: c if all(c.get(k) == v for k, v in want.items())
                                     else None)(_counts(relay, day)),
                            40, interval=1, what="TLS outcome counts %s" % want)
    for k in counts:
        assert k in want, "unexpected count %s" % (k,)
    assert not bad_srv.body_received

    # dry run: what would be sent, nothing sent
    dry = json.loads(relay.pw("tlsrpt", "send", "--day", day, "--dry-run", check=True).stdout)
    assert dry["day"] == day
    dry_reports = {r["policy-domain"]: r for r in dry["reports"]}
    assert set(dry_reports) == {dane_dom, plain_dom, bad_dom}
    assert quiet_dom in dry["no-report"]
    assert dry_reports[dane_dom]["rua"] == ["mailto:" + rua[dane_dom][0],
                                            receiver.url + rua[dane_dom][1]]
    time.sleep(1)
    assert receiver.posts == []

    out = relay.pw("tlsrpt", "send", "--day", day, check=True).stdout
    assert "3 report(s) sent" in out, out

    for dom in (dane_dom, plain_dom, bad_dom):
        addr, path = rua[dom]
        raw = pf_tls.wait_for_message(addr, timeout=60)
        msg, rep, fname = _report_of_mail(raw)
        # RFC 8460 5.3: subject, headers, file name
        assert msg["Subject"] == ("Report Domain: %s Submitter: relay.example.test "
                                  "Report-ID: <%s>" % (dom, rep["report-id"]))
        assert msg["TLS-Report-Domain"] == dom
        assert msg["TLS-Report-Submitter"] == "relay.example.test"
        assert msg["From"].addresses[0].addr_spec == "postmaster@relay.example.test"
        start = int(datetime.datetime.strptime(day, "%Y-%m-%d").replace(
            tzinfo=datetime.timezone.utc).timestamp())
        assert fname == "relay.example.test!%s!%d!%d.json.gz" % (dom, start, start + 86399)
        # the same report by HTTPS
        posts = net.wait_until(lambda: receiver.bodies(path), 30, interval=0.5,
                               what="POST to %s" % path)
        assert len(posts) == 1
        assert posts[0][0] == "application/tlsrpt+gzip"
        assert json.loads(gzip.decompress(posts[0][1])) == rep
        assert rep == dry_reports[dom]["report"]

        assert rep["organization-name"] == "Relay Test Org"
        assert rep["contact-info"] == "tls-reports@other.test"
        assert rep["date-range"] == {"start-datetime": day + "T00:00:00Z",
                                     "end-datetime": day + "T23:59:59Z"}
        assert len(rep["policies"]) == 1, rep["policies"]
        pol = rep["policies"][0]
        assert pol["policy"]["policy-domain"] == dom
        if dom == dane_dom:
            assert pol["policy"]["policy-type"] == "tlsa"
            assert pol["policy"]["policy-string"] == [pf_tls.cert.tlsa_311()]
            assert pol["policy"]["mx-host"] == "mx1.example.test"
            assert pol["summary"] == {"total-successful-session-count": MSGS,
                                      "total-failure-session-count": 0}
            assert pol["failure-details"] == []
            continue
        fd = pol["failure-details"]
        assert len(fd) == 1, fd
        assert fd[0]["failed-session-count"] == MSGS
        assert fd[0]["sending-mta-ip"].startswith("127.")
        assert pol["summary"] == {"total-successful-session-count": 0,
                                  "total-failure-session-count": MSGS}
        if dom == plain_dom:
            assert pol["policy"]["policy-type"] == "no-policy-found"
            assert pol["policy"]["policy-string"] == []
            assert pol["policy"]["mx-host"] == "mx-" + plain_dom
            assert fd[0]["result-type"] == "starttls-not-supported"
            assert fd[0]["receiving-mx-hostname"] == "mx-" + plain_dom
            assert fd[0]["receiving-ip"] == pf_plain.addr
        else:
            assert pol["policy"]["policy-type"] == "tlsa"
            assert pol["policy"]["policy-string"] == [published.tlsa_311()]
            assert pol["policy"]["mx-host"] == bad_host
            assert fd[0]["result-type"] == "tlsa-invalid"
            assert fd[0]["receiving-mx-hostname"] == bad_host
            assert fd[0]["receiving-ip"] == bad_srv.addr

    # once: a second run sends nothing
    out = relay.pw("tlsrpt", "send", "--day", day, check=True).stdout
    assert "0 report(s) sent" in out, out
    time.sleep(3)
    for dom in (dane_dom, plain_dom, bad_dom):
        assert len(pf_tls.messages(rua[dom][0])) == 1
        assert len(receiver.bodies(rua[dom][1])) == 1
    # the domain without _smtp._tls got nothing: looked up once, recorded, nothing sent
    assert len(receiver.posts) == 3
    assert relay.database.value("SELECT result FROM tlsrpt_sent WHERE policy_domain = ?",
                                (quiet_dom,)) == "no record"
    for dom in (dane_dom, plain_dom, bad_dom):
        res = relay.database.value("SELECT result FROM tlsrpt_sent WHERE policy_domain = ?",
                                   (dom,))
        assert "mailto:%s queued" % rua[dom][0] in res and " ok 201" in res, res


def test_serve_sends_yesterdays_reports_once_after_send_at(make_relay, zones, pf_tls,
                                                           test_ca, receiver):
    """serve's timer: yesterday's counts (written as a flush would have) are reported by
    HTTPS after send_at, under the lease; a restart does not report the day again, and
    today's counts wait for tomorrow."""
    mport = net.free_port("127.0.0.1")
    relay = make_relay(start=False, tlsrpt_allow_private="on",
                       relay_ca_file=test_ca.ca.cert_path, tlsrpt_send_at="0s",
                       metrics_listen="127.0.0.1:%d" % mport)
    dom = zones.mx("example.test", uniq("timer"), pf_tls.addr, mx_host="mx1.example.test")
    zones.raw("example.test", "_smtp._tls.%s." % dom, "TXT",
              '"v=TLSRPTv1; rua=%s/timer"' % receiver.url)
    zones.publish()
    now = datetime.datetime.now(datetime.timezone.utc)
    yesterday = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    relay.pw("db", "migrate", check=True)
    ins = ("INSERT INTO tlsrpt_counts (day, policy_domain, policy_type, policy_string, "
           "mx_host, result_type, sending_ip, receiving_ip, count) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    relay.database.execute_many(ins, [
        (yesterday, dom, "no-policy-found", "", "mx1.example.test", "", "", "", 7),
        (yesterday, dom, "no-policy-found", "", "mx1.example.test", "validation-failure",
         "127.0.0.1", "127.0.0.2", 2),
        (now.strftime("%Y-%m-%d"), dom, "no-policy-found", "", "mx1.example.test", "", "",
         "", 5)])
    relay.start()
    posts = net.wait_until(lambda: receiver.bodies("/timer"), 40, interval=0.5,
                           what="the timer's POST")
    rep = json.loads(gzip.decompress(posts[0][1]))
    assert rep["date-range"]["start-datetime"] == yesterday + "T00:00:00Z"
    assert rep["organization-name"] == "relay.example.test"    # default: hostname
    assert rep["contact-info"] == "postmaster@relay.example.test"
    pol = rep["policies"][0]
    assert pol["summary"] == {"total-successful-session-count": 7,
                              "total-failure-session-count": 2}
    assert pol["failure-details"][0]["result-type"] == "validation-failure"
    # the result is recorded once the POST's answer is back, just after the receiver has it
    sent = net.wait_until(
        lambda: (lambda rows: rows if rows and rows[0]["result"] != "sending" else None)(
            relay.database.rows("SELECT day, result FROM tlsrpt_sent WHERE policy_domain = ?",
                                (dom,))),
        20, interval=0.2, what="the report's result recorded")
    assert [r["day"] for r in sent] == [yesterday], sent
    assert "ok 201" in sent[0]["result"], sent
    assert prom.sample(mport, "postwarden_tlsrpt_reports_total", result="posted") == 1
    assert prom.sample(mport, "postwarden_tlsrpt_reports_total", result="failed") is None
    relay.stop()
    relay.start()
    time.sleep(8)     # past the first look after start
    assert len(receiver.bodies("/timer")) == 1
