"""postwarden audit DOMAIN: the provider's domain checked as an outsider would, against
the real fixtures: Knot serving the signed zone example.test (and the unsigned
insecure.test) with MX, TLSA, CAA, _mta-sts and _smtp._tls records, and Postfix MX hosts
with STARTTLS on port 25 (and 465 with implicit TLS, 587 with STARTTLS) on their own
127.0.0.2XX addresses, with certificates from the test CA. Each case asserts the status of
every line of the report, so a line that appears, disappears or changes status fails it.
"""
import json
import os
import subprocess
import time

import pytest

from pwtest import logs as pw_logs
from pwtest import postfix as pw_postfix
from pwtest import relay as pw_relay
from pwtest import wkdsite

# Port 25 and its neighbours on addresses no other fixture hands out.
ADDR_GOOD = "127.0.0.211"
ADDR_EXPIRED = "127.0.0.212"
ADDR_SOON = "127.0.0.213"
ADDR_OLDTLS = "127.0.0.214"
ADDR_WEB = "127.0.0.215"

MX = "mx.audit.example.test"
DOMAIN = "audit.example.test"
STS_HOST = "mta-sts." + DOMAIN
STS_URL = "https://%s/.well-known/mta-sts.txt" % STS_HOST
GOOD_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 604800\r\n" % MX


class MailHost(pw_postfix.Receiver):
    """A Postfix MX on addr:25 that also offers 465 (implicit TLS) and 587 (STARTTLS),
    as one provider's mail host does; old_tls: Postfix's default protocols, which accept
    TLS 1.1 (and 1.0) too."""

    def __init__(self, basedir, addr, hostname, cert, old_tls=False):
        super().__init__(basedir, addr, 25, hostname, cert=cert)
        self.old_tls = old_tls

    def _settings(self):
        s = super()._settings()
        if not self.old_tls:
            # Postfix on Debian 12 still accepts TLS 1.1 unless told otherwise
            s.update({"smtpd_tls_protocols": ">=TLSv1.2",
                      "smtpd_tls_mandatory_protocols": ">=TLSv1.2"})
        return s

    def _setup(self):
        super()._setup()
        for port, opts in ((465, " -o smtpd_tls_wrappermode=yes"), (587, "")):
            svc = "%s:%d" % (self.addr, port)
            pw_postfix._postconf(self.conf_dir, "-M", "%s/inet=%s inet n - n - - smtpd%s"
                                 % (svc, svc, opts))


def _mail_host(session_dir, name, addr, cert, old_tls=False):
    h = MailHost(os.path.join(session_dir, name), addr, MX, cert, old_tls=old_tls)
    pw_logs.register(name, h.log_path)
    h.start()
    return h


@pytest.fixture(scope="module")
def good_cert(test_ca):
    return test_ca.issue(MX, stem="audit-good")


@pytest.fixture(scope="module")
def mail_host(session_dir, good_cert):
    h = _mail_host(session_dir, "audit-good", ADDR_GOOD, good_cert)
    yield h
    h.stop()
    pw_logs.unregister("audit-good")


def audit_unbound_conf(knot, workdir):
    """The Knot fixture's unbound.conf, with the parent zone "test." answered locally (no
    CAA, as a real TLD answers) instead of asked of root servers the tests cannot reach:
    CAA tree climbing (RFC 8659) goes up to the TLD. The test zones stay transparent."""
    with open(knot.unbound_conf) as f:
        text = f.read()
    local = ['    local-zone: "test." static']
    local += ['    local-zone: "%s." transparent' % z for z in knot.zones]
    text = text.replace('    local-zone: "test." nodefault', "\n".join(local))
    assert 'local-zone: "test." static' in text
    path = os.path.join(workdir, "audit-unbound.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


class PolicyNginx(wkdsite.WkdNginx):
    """nginx for the domain's web site and its MTA-STS policy host, serving files as
    text/plain, the media type RFC 8461 3.3 requires of the policy."""

    def _config(self):
        return super()._config().replace("application/octet-stream", "text/plain")


@pytest.fixture(scope="module")
def web(session_dir, test_ca):
    """nginx on ADDR_WEB:443 for DOMAIN and STS_HOST; web.policy(text) replaces the
    policy file (None removes it)."""
    cert = test_ca.issue(DOMAIN, STS_HOST, stem="audit-web")
    ng = PolicyNginx(os.path.join(session_dir, "audit-nginx"), ADDR_WEB, cert)
    docroot = ng.site([DOMAIN, STS_HOST])
    os.makedirs(os.path.join(docroot, ".well-known"), exist_ok=True)
    os.chmod(docroot, 0o755)
    os.chmod(os.path.join(docroot, ".well-known"), 0o755)
    path = os.path.join(docroot, ".well-known", "mta-sts.txt")

    def policy(text):
        if text is None:
            if os.path.exists(path):
                os.unlink(path)
            return
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    ng.policy = policy
    ng.tls_cert = cert
    ng.start()
    yield ng
    ng.stop()


@pytest.fixture
def audit(make_relay, knot, workdir, test_ca, web):
    """Run `postwarden audit` with the test resolver and a migrated database; the test CA
    is the one CA OpenSSL trusts (SSL_CERT_FILE) unless trust_test_ca=False."""
    relay = make_relay(start=False, dns_unbound_config=audit_unbound_conf(knot, workdir))
    relay.pw("db", "migrate", check=True)
    web.policy(GOOD_POLICY)

    def run(domain, *extra, trust_test_ca=True):
        env = pw_relay.daemon_env()
        if trust_test_ca:
            env["SSL_CERT_FILE"] = test_ca.cert_path
        r = subprocess.run([pw_relay.binary(), "-c", relay.conf_path, "audit", domain,
                            "--json"] + list(extra), capture_output=True, text=True,
                           env=env, timeout=120)
        assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
        assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["domain"] == domain
        for line in doc["lines"]:
            assert line["status"] in ("pass", "warn", "fail")
            assert line["todo"].endswith("."), line
        failed = any(line["status"] == "fail" for line in doc["lines"])
        assert r.returncode == (1 if failed else 0), (r.returncode, doc)
        return doc, r
    run.relay = relay
    return run


def statuses(doc):
    """{(check, subject): status} of a report; a duplicate line would be a bug."""
    out = {}
    for line in doc["lines"]:
        key = (line["check"], line["subject"])
        assert key not in out, ("line twice", key)
        out[key] = line["status"]
    return out


def line(doc, check, subject):
    return next(l for l in doc["lines"] if l["check"] == check and l["subject"] == subject)


def zone_records(domain, addr, tlsa, caa=('0 issue "letsencrypt.org"',), sts=True, rpt=True,
                 mx_host=MX, web=None):
    """The domain's records: MX, the MX host's address and TLSA for 25, 465 and 587, CAA,
    the MTA-STS and TLS-RPT records; web: the policy host mta-sts.DOMAIN on nginx, with its
    TLSA record for 443."""
    recs = [(domain + ".", "MX", "10 %s." % mx_host), (mx_host + ".", "A", addr)]
    for port in (25, 465, 587):
        for t in tlsa:
            recs.append(("_%d._tcp.%s." % (port, mx_host), "TLSA", t))
    for c in caa:
        recs.append((domain + ".", "CAA", c))
    if sts:
        recs.append(("_mta-sts.%s." % domain, "TXT", '"v=STSv1; id=20261205T000000"'))
    if sts and web is not None:
        recs += [("mta-sts.%s." % domain, "A", web.addr),
                 ("_443._tcp.mta-sts.%s." % domain, "TLSA", web.tls_cert.tlsa_311())]
    if rpt:
        recs.append(("_smtp._tls.%s." % domain, "TXT",
                     '"v=TLSRPTv1; " "rua=mailto:tlsrpt@%s"' % domain))
    return recs


def host_lines(addr, status_by_port, mx_host=MX):
    """The lines of one mail host: 25 and 587 with STARTTLS, 465, 993 not answering."""
    out = {}
    for port, st in status_by_port.items():
        subj = "%s[%s]:%d" % (mx_host, addr, port)
        if port == 993:
            out[("connect", subj)] = st
            continue
        if port in (25, 587):
            out[("starttls", subj)] = "pass"
        for check, s in st.items():
            out[(check, subj)] = s
    return out


ALL_PASS = {"tls": "pass", "certificate": "pass", "tlsa": "pass"}


def policy_lines(status="pass"):
    """The lines of the policy host: 443 (TLS, certificate, TLSA) and the policy."""
    out = {(c, "%s[%s]:443" % (STS_HOST, ADDR_WEB)): "pass"
           for c in ("tls", "certificate", "tlsa")}
    out[("mta-sts-policy", STS_URL)] = status
    return out


def test_everything_right_passes(knot, audit, mail_host, good_cert, test_ca, web):
    domain = "audit.example.test"
    knot.set_zone("example.test", zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()],
                                               web=web))
    doc, r = audit(domain)
    want = {("dnssec", domain): "pass", ("mx", domain): "pass", ("caa", domain): "pass",
            ("caa-ct", domain): "pass",
            ("mta-sts", "_mta-sts." + domain): "pass",
            ("tls-rpt", "_smtp._tls." + domain): "pass"}
    want.update(host_lines(ADDR_GOOD, {25: ALL_PASS, 465: ALL_PASS, 587: ALL_PASS,
                                       993: "pass"}))
    want.update(policy_lines())
    assert statuses(doc) == want, doc
    assert r.returncode == 0 and doc["result"] == "pass"
    assert "mode enforce" in line(doc, "mta-sts-policy", STS_URL)["found"]
    assert "matches TLSA 3 1 1" in line(doc, "tlsa", "%s[%s]:25" % (MX, ADDR_GOOD))["found"]
    assert "not answering" in line(doc, "connect", "%s[%s]:993" % (MX, ADDR_GOOD))["found"]
    # the text form says the same, one line per finding
    env = dict(pw_relay.daemon_env(), SSL_CERT_FILE=test_ca.cert_path)
    text = subprocess.run([pw_relay.binary(), "-c", audit.relay.conf_path, "audit", domain],
                          capture_output=True, text=True, env=env, timeout=120)
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("\nPASS ") == len(want) and "0 failed" in text.stdout


def test_certificate_from_an_untrusted_ca(knot, audit, mail_host, good_cert, web):
    """The same hosts when the test CA is not trusted: a warning on port 25 (DANE senders
    do not care, MTA-STS senders do), a failure where clients connect (465, 587)."""
    domain = "audit.example.test"
    knot.set_zone("example.test", zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()],
                                               web=web))
    doc, r = audit(domain, trust_test_ca=False)
    got = statuses(doc)
    for port, st in ((25, "warn"), (465, "fail"), (587, "fail")):
        subj = "%s[%s]:%d" % (MX, ADDR_GOOD, port)
        assert got[("certificate", subj)] == st, doc
        assert "chain not trusted" in line(doc, "certificate", subj)["found"]
        assert got[("tlsa", subj)] == "pass"
    # MTA-STS senders refuse a policy they cannot trust
    assert got[("mta-sts-policy", STS_URL)] == "fail"
    assert r.returncode == 1


def test_tlsa_not_matching_the_served_certificate_fails(knot, audit, mail_host, test_ca):
    domain = "audit.example.test"
    other = test_ca.issue("other-key.audit.example.test", stem="audit-other")
    recs = zone_records(domain, ADDR_GOOD, [other.tlsa_311()])
    knot.set_zone("example.test", recs)
    doc, r = audit(domain)
    bad = {"tls": "pass", "certificate": "pass", "tlsa": "fail"}
    want = host_lines(ADDR_GOOD, {25: bad, 465: bad, 587: bad, 993: "pass"})
    got = statuses(doc)
    assert {k: got.get(k) for k in want} == want, doc
    assert r.returncode == 1
    assert "none of the 1 TLSA" in line(doc, "tlsa", "%s[%s]:25" % (MX, ADDR_GOOD))["found"]


def test_missing_tlsa_caa_mta_sts_tls_rpt_warn(knot, audit, mail_host):
    domain = "audit.example.test"
    knot.set_zone("example.test", zone_records(domain, ADDR_GOOD, [], caa=(), sts=False,
                                               rpt=False))
    doc, r = audit(domain)
    nothing = {"tls": "pass", "certificate": "pass", "tlsa": "warn"}
    want = {("dnssec", domain): "pass", ("mx", domain): "pass", ("caa", domain): "warn",
            ("caa-ct", domain): "pass",
            ("mta-sts", "_mta-sts." + domain): "warn",
            ("tls-rpt", "_smtp._tls." + domain): "warn"}
    want.update(host_lines(ADDR_GOOD, {25: nothing, 465: nothing, 587: nothing,
                                       993: "pass"}))
    assert statuses(doc) == want, doc
    assert r.returncode == 0 and doc["result"] == "warn"


def test_malformed_or_doubled_policy_records_fail(knot, audit, mail_host, good_cert):
    domain = "audit.example.test"
    recs = zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()], sts=False, rpt=False)
    recs += [("_mta-sts." + domain + ".", "TXT", '"v=STSv1; id=not-alnum"'),
             ("_smtp._tls." + domain + ".", "TXT", '"v=TLSRPTv1; rua=mailto:a@x.test"'),
             ("_smtp._tls." + domain + ".", "TXT", '"v=TLSRPTv1; rua=mailto:b@x.test"')]
    knot.set_zone("example.test", recs)
    doc, r = audit(domain)
    got = statuses(doc)
    assert got[("mta-sts", "_mta-sts." + domain)] == "fail"
    assert got[("tls-rpt", "_smtp._tls." + domain)] == "fail"
    assert "2 records" in line(doc, "tls-rpt", "_smtp._tls." + domain)["found"]
    assert r.returncode == 1


def test_unsigned_zone_fails_dnssec_and_tlsa(knot, audit, mail_host, good_cert):
    domain = "audit.insecure.test"
    mx_host = "mx.audit.insecure.test"
    knot.set_zone("insecure.test", zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()],
                                                mx_host=mx_host, sts=False))
    doc, r = audit(domain)
    # the certificate is for mx.audit.example.test: its names do not cover this host
    unsigned = {"tls": "pass", "certificate": "fail", "tlsa": "fail"}
    want = {("dnssec", domain): "fail", ("mx", domain): "pass", ("caa", domain): "warn",
            ("caa-ct", domain): "pass",
            ("mta-sts", "_mta-sts." + domain): "warn",
            ("tls-rpt", "_smtp._tls." + domain): "pass"}
    want.update(host_lines(ADDR_GOOD, {25: unsigned, 465: unsigned, 587: unsigned,
                                       993: "pass"}, mx_host=mx_host))
    assert statuses(doc) == want, doc
    assert "without DNSSEC" in line(doc, "tlsa", "%s[%s]:25" % (mx_host, ADDR_GOOD))["found"]
    assert r.returncode == 1


def test_mx_port_25_not_answering_fails(knot, audit):
    domain = "audit.example.test"
    # an address where nothing listens
    knot.set_zone("example.test", zone_records(domain, "127.0.0.219", []))
    doc, r = audit(domain)
    got = statuses(doc)
    assert got[("connect", "%s[127.0.0.219]:25" % MX)] == "fail"
    # the other ports only "not answering", with TLSA published nowhere
    for port in (465, 587, 993):
        assert got[("connect", "%s[127.0.0.219]:%d" % (MX, port))] == "pass"
    assert r.returncode == 1


@pytest.mark.parametrize("days,addr,status", [(-1, ADDR_EXPIRED, "fail"),
                                              (10, ADDR_SOON, "warn"),
                                              (60, ADDR_SOON, "pass")])
def test_certificate_expiry(knot, audit, test_ca, session_dir, web, days, addr, status):
    cert = test_ca.issue(MX, days=days, stem="audit-days%d" % days)
    name = "audit-days%d" % days
    h = _mail_host(session_dir, name, addr, cert)
    try:
        domain = "audit.example.test"
        knot.set_zone("example.test", zone_records(domain, addr, [cert.tlsa_311()], web=web))
        doc, r = audit(domain)
    finally:
        h.stop()
        pw_logs.unregister(name)
    got = statuses(doc)
    for port in (25, 465, 587):
        assert got[("certificate", "%s[%s]:%d" % (MX, addr, port))] == status, doc
        # DANE-EE does not look at the dates (RFC 7671 5.1): the record still matches
        assert got[("tlsa", "%s[%s]:%d" % (MX, addr, port))] == "pass", doc
    assert r.returncode == (1 if status == "fail" else 0)


def test_tls_1_0_accepted_warns(knot, audit, test_ca, session_dir, web):
    cert = test_ca.issue(MX, stem="audit-oldtls")
    h = _mail_host(session_dir, "audit-oldtls", ADDR_OLDTLS, cert, old_tls=True)
    try:
        domain = "audit.example.test"
        knot.set_zone("example.test", zone_records(domain, ADDR_OLDTLS, [cert.tlsa_311()],
                                                   web=web))
        doc, r = audit(domain)
    finally:
        h.stop()
        pw_logs.unregister("audit-oldtls")
    got = statuses(doc)
    for port in (25, 465, 587):
        subj = "%s[%s]:%d" % (MX, ADDR_OLDTLS, port)
        assert got[("tls", subj)] == "warn", doc
        assert "TLSv1" in line(doc, "tls", subj)["found"]
    assert r.returncode == 0


def test_web_and_rfc6186_srv_hosts(knot, audit, mail_host, good_cert, test_ca, web):
    """443 on the domain (nginx; TLSA not matching) and on mta-sts.DOMAIN; 465 where
    _submissions._tcp points, 587 not offered by its SRV record, 993 on the MX host (no
    _imaps._tcp record)."""
    domain = DOMAIN
    other = test_ca.issue("other-key.audit.example.test", stem="audit-other")
    recs = zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()], web=web)
    recs += [(domain + ".", "A", ADDR_WEB),
             ("_443._tcp.%s." % domain, "TLSA", other.tlsa_311()),
             ("_submissions._tcp.%s." % domain, "SRV", "0 1 465 %s." % MX),
             ("_submissions._tcp.%s." % domain, "SRV", "1 1 465 %s." % MX),
             ("_submission._tcp.%s." % domain, "SRV", "0 0 0 .")]
    knot.set_zone("example.test", recs)
    doc, r = audit(domain)
    want = {("dnssec", domain): "pass", ("mx", domain): "pass", ("caa", domain): "pass",
            ("caa-ct", domain): "pass", ("mta-sts", "_mta-sts." + domain): "pass",
            ("tls-rpt", "_smtp._tls." + domain): "pass",
            ("srv", "_submission._tcp." + domain): "pass"}
    want.update(host_lines(ADDR_GOOD, {25: ALL_PASS, 465: ALL_PASS, 993: "pass"}))
    want.update({(c, "%s[%s]:443" % (domain, ADDR_WEB)): st
                 for c, st in (("tls", "pass"), ("certificate", "pass"), ("tlsa", "fail"))})
    want.update(policy_lines())
    assert statuses(doc) == want, doc
    assert r.returncode == 1


@pytest.mark.parametrize("policy,status,words", [
    (GOOD_POLICY.replace("enforce", "testing"), "warn", "mode testing"),
    (GOOD_POLICY.replace("mx: " + MX, "mx: *.elsewhere.test"), "fail", "is not covered"),
    (GOOD_POLICY.replace("mx: " + MX, "mx: *.audit.example.test"), "pass", "mode enforce"),
    ("version: STSv1\nmode: enforce\nmx: %s\n" % MX, "fail", "malformed"),
    ("<html>not a policy</html>", "fail", "malformed"),
    (None, "fail", "HTTP status 404")])
def test_mta_sts_policy(knot, audit, mail_host, good_cert, web, policy, status, words):
    knot.set_zone("example.test", zone_records(DOMAIN, ADDR_GOOD, [good_cert.tlsa_311()],
                                               web=web))
    web.policy(policy)
    doc, r = audit(DOMAIN)
    got = statuses(doc)
    assert got[("mta-sts-policy", STS_URL)] == status, doc
    assert words in line(doc, "mta-sts-policy", STS_URL)["found"]
    assert r.returncode == (1 if status == "fail" else 0)


def _finding(db, n, names, issuer, not_after):
    db.execute("INSERT INTO ct_findings (identity, names, issuer, serial, spki_sha256, "
               "not_before, not_after, verdict, reason, first_seen) VALUES "
               "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (bytes([n]) * 32, names, issuer, "%02x" % n, "ab" * 32,
                int(time.time()) - 86400, not_after, "unknown_key", "test", int(time.time())))
    return db.value("SELECT id FROM ct_findings WHERE names = ?", (names,))


def test_ct_finding_from_a_ca_caa_does_not_allow_fails(knot, audit, mail_host, good_cert,
                                                       web):
    domain = "audit.example.test"
    knot.set_zone("example.test", zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()],
                                               web=web))
    db = audit.relay.database
    year = int(time.time()) + 365 * 86400
    # allowed by CAA; expired (may predate today's CAA); another domain altogether
    _finding(db, 1, "mx.audit.example.test", "/C=US/O=Let's Encrypt/CN=R10", year)
    _finding(db, 2, "old.audit.example.test", "/C=GB/O=Sectigo Limited/CN=Sectigo DV",
             int(time.time()) - 86400)
    _finding(db, 3, "mail.other.test", "/C=GB/O=Sectigo Limited/CN=Sectigo DV", year)
    doc, r = audit(domain)
    assert statuses(doc)[("caa-ct", domain)] == "pass", doc
    assert "1 valid certificates" in line(doc, "caa-ct", domain)["found"]
    assert r.returncode == 0
    # a current certificate for a name under the domain from a CA that CAA does not name
    bad = _finding(db, 4, "*.audit.example.test, audit.example.test",
                   "/C=GB/O=Sectigo Limited/CN=Sectigo DV", year)
    doc, r = audit(domain)
    assert statuses(doc)[("caa-ct", domain)] == "fail", doc
    found = line(doc, "caa-ct", domain)["found"]
    assert ("finding %d" % bad) in found and "sectigo.com" in found, found
    assert r.returncode == 1
    # the same CA allowed by CAA (for wildcards too): consistent again
    knot.set_zone("example.test", zone_records(
        domain, ADDR_GOOD, [good_cert.tlsa_311()], web=web,
        caa=('0 issue "letsencrypt.org"', '0 issue "sectigo.com"',
             '0 issuewild "sectigo.com"')))
    doc, r = audit(domain)
    assert statuses(doc)[("caa-ct", domain)] == "pass", doc
    assert "2 valid certificates" in line(doc, "caa-ct", domain)["found"]


def test_ct_finding_from_an_unknown_issuer_warns(knot, audit, mail_host, good_cert, web):
    domain = "audit.example.test"
    knot.set_zone("example.test", zone_records(domain, ADDR_GOOD, [good_cert.tlsa_311()],
                                               web=web))
    _finding(audit.relay.database, 5, "mx.audit.example.test", "/CN=postwarden test CA",
             int(time.time()) + 86400)
    doc, r = audit(domain)
    assert statuses(doc)[("caa-ct", domain)] == "warn", doc
    assert "issuer_caa" in line(doc, "caa-ct", domain)["todo"]
    assert r.returncode == 0


def test_usage_errors_exit_2(audit):
    relay = audit.relay
    assert relay.pw("audit").returncode == 2
    assert relay.pw("audit", "a.test", "b.test").returncode == 2
    assert relay.pw("audit", "user@example.test").returncode == 2
    assert relay.pw("audit", "--bogus").returncode == 2
