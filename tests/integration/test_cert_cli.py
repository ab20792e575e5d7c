"""postwarden cert: TLSA, CAA and fingerprints for the provider's own certificates, checked
against hashes computed here with python3-cryptography, against dnspython's parser, and
(TLSA) by the relay's own DANE check against the Postfix fixture."""
import base64
import hashlib
import json
import os
import subprocess

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pwtest.mailcheck import message, sender_addr, uniq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("POSTWARDEN", os.path.join(ROOT, "build", "asan", "postwarden"))


def cert_cmd(*args, cwd=None):
    r = subprocess.run([BIN, "cert"] + list(args), capture_output=True, text=True,
                       cwd=cwd, timeout=60)
    assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def spki_sha256(public_key):
    return hashlib.sha256(public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


def records(stdout):
    """The non-comment lines as (owner, type, rdata)."""
    out = []
    for line in stdout.splitlines():
        if line and not line.startswith(";"):
            owner, cls, rtype, rdata = line.split(None, 3)
            assert cls == "IN"
            out.append((owner, rtype, rdata))
    return out


def test_tlsa_for_a_chain_names_server_key_and_issuing_ca_key(test_ca):
    c = test_ca.issue("mx9.example.test", "smtp9.example.test")
    r = cert_cmd("tlsa", c.chain_path)
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    assert recs[0] == ("_25._tcp.mx9.example.test.", "TLSA", c.tlsa_311())
    ca_hash = spki_sha256(test_ca.ca.cert.public_key()).hex()
    assert recs[1] == ("_25._tcp.mx9.example.test.", "TLSA", "2 1 1 " + ca_hash)
    assert len(recs) == 2
    # each line is a TLSA record a DNS library reads back
    for _, _, rdata in recs:
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TLSA, rdata)
    r = cert_cmd("tlsa", c.cert_path, "--port", "465", "--host", "SMTP9.example.test")
    assert records(r.stdout) == [("_465._tcp.smtp9.example.test.", "TLSA", c.tlsa_311())]


def test_tlsa_next_key_from_request_or_public_key_and_never_a_private_key(test_ca, workdir):
    c = test_ca.issue("mx8.example.test")
    nxt = ec.generate_private_key(ec.SECP256R1())
    want = "3 1 1 " + spki_sha256(nxt.public_key()).hex()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "mx8.example.test")])).sign(nxt, hashes.SHA256())
    paths = {
        "csr": (csr.public_bytes(serialization.Encoding.PEM), "next.csr"),
        "pub": (nxt.public_key().public_bytes(serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo), "next.pub"),
        "der": (nxt.public_key().public_bytes(serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo), "next.der"),
    }
    for kind, (data, name) in paths.items():
        p = os.path.join(workdir, name)
        with open(p, "wb") as f:
            f.write(data)
        r = cert_cmd("tlsa", c.cert_path, p)
        assert r.returncode == 0, (kind, r.stderr)
        recs = records(r.stdout)
        assert recs == [("_25._tcp.mx8.example.test.", "TLSA", c.tlsa_311()),
                        ("_25._tcp.mx8.example.test.", "TLSA", want)], kind
        assert "RFC 7671" in r.stdout and "next key" in r.stdout
    r = cert_cmd("tlsa", c.cert_path, c.key_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("postwarden: ") and "private key" in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr


def test_tlsa_and_fingerprints_refuse_what_is_not_a_certificate(workdir):
    cases = {"empty": b"", "garbage": b"not a certificate\n",
             "big": b"-----BEGIN CERTIFICATE-----\n" + b"A" * (2 << 20)}
    for name, data in cases.items():
        p = os.path.join(workdir, name)
        with open(p, "wb") as f:
            f.write(data)
        for cmd in (["tlsa", p], ["fingerprints", p]):
            r = cert_cmd(*cmd)
            assert r.returncode == 1, (name, cmd, r)
            assert r.stderr.startswith("postwarden: ") and len(r.stderr.splitlines()) == 1, \
                (name, r.stderr)
    r = cert_cmd("tlsa", os.path.join(workdir, "missing.pem"))
    assert r.returncode == 1 and "cannot read" in r.stderr
    assert cert_cmd("tlsa").returncode == 2
    assert cert_cmd("nonsense").returncode == 2


def test_fingerprints_are_those_users_compare(test_ca):
    c = test_ca.issue("mx7.example.test")
    r = cert_cmd("fingerprints", "--json", c.cert_path, test_ca.cert_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    for entry, cert in zip(got, (c.cert, test_ca.ca.cert)):
        fp = cert.fingerprint(hashes.SHA256())
        assert entry["certificate_sha256"] == ":".join("%02X" % b for b in fp)
        spki = spki_sha256(cert.public_key())
        assert entry["public_key_sha256"] == spki.hex()
        assert entry["public_key_sha256_base64"] == base64.b64encode(spki).decode()
    assert got[0]["host"] == "mx7.example.test" and got[1]["host"] is None
    text = cert_cmd("fingerprints", c.cert_path).stdout
    assert got[0]["certificate_sha256"] in text and got[0]["public_key_sha256"] in text


def test_caa_records_parse_and_refuse_unsafe_values():
    r = cert_cmd("caa", "example.org", "--ca", "letsencrypt.org", "--ca", "sectigo.com",
                 "--account", "https://acme-v02.api.letsencrypt.org/acme/acct/42",
                 "--methods", "dns-01,http-01", "--iodef", "mailto:security@example.org")
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    parsed = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CAA, rd)
              for _, t, rd in recs if t == "CAA"]
    assert len(parsed) == len(recs) == 4
    assert all(owner == "example.org." for owner, _, _ in recs)
    issue = [p for p in parsed if p.tag == b"issue"]
    assert [p.value.split(b";")[0] for p in issue] == [b"letsencrypt.org", b"sectigo.com"]
    assert b"accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42" in issue[0].value
    assert b"validationmethods=dns-01,http-01" in issue[0].value
    # no wildcard certificates unless asked for
    assert [p.value for p in parsed if p.tag == b"issuewild"] == [b";"]
    assert [p.value for p in parsed if p.tag == b"iodef"] == [b"mailto:security@example.org"]
    r = cert_cmd("caa", "example.org", "--ca", "letsencrypt.org", "--wildcard")
    tags = [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.CAA, rd).tag
            for _, _, rd in records(r.stdout)]
    assert tags == [b"issue", b"issuewild"]
    for bad in (["--ca", "lets encrypt"], ["--ca", "x.org", "--account", "https://a;b"],
                ["--ca", "x.org", "--iodef", "http://x.org/report"],
                ["--ca", "x.org", "--account", 'https://a"b'], []):
        r = cert_cmd("caa", "example.org", *bad)
        assert r.returncode == 1 and r.stdout == "", (bad, r)
        assert r.stderr.startswith("postwarden: "), r.stderr


def test_published_tlsa_record_is_what_the_relay_verifies(relay, zones, pf_tls):
    """The record printed for the MX's certificate, published in the signed zone, makes
    the relay's DANE check pass on a real delivery to Postfix."""
    r = cert_cmd("tlsa", pf_tls.cert.chain_path, "--host", "mx1.example.test")
    assert r.returncode == 0, r.stderr
    ee = [rd for _, _, rd in records(r.stdout) if rd.startswith("3 1 1 ")]
    assert len(ee) == 1
    dom = zones.mx("example.test", uniq("certtlsa"), pf_tls.addr, tlsa=ee,
                   mx_host="mx1.example.test")
    zones.publish()
    s, rcpt = sender_addr(), "dane@" + dom
    relay.pw("user", "add", s, check=True)
    relay.pw("user", "guarantee", s, "on", check=True)
    relay.send(s, [rcpt], message(s, [rcpt], "cert tlsa"))
    pf_tls.wait_for_message(rcpt, timeout=30)
    d = [x for x in relay.deliveries() if x.get("rcpt") == rcpt]
    assert d[-1]["dane"] == "pass" and d[-1]["outcome"] == "delivered", d
