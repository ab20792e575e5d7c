"""A throw-away test CA: server certificates for MX host names, self-signed
certificates, and the TLSA RDATA a zone publishes for them.

ECDSA P-256 keys keep generation and handshakes fast.
"""

import datetime
import hashlib
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _validity(builder, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=days))


class Cert:
    """A certificate with its key, written as PEM files into a directory."""

    def __init__(self, cert, key, directory, stem, chain=()):
        self.cert = cert
        self.key = key
        self.cert_path = os.path.join(directory, stem + ".crt")
        self.key_path = os.path.join(directory, stem + ".key")
        self.chain_path = os.path.join(directory, stem + ".chain.pem")
        with open(self.cert_path, "wb") as f:
            f.write(self.cert_pem())
        with open(self.key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(self.key_path, 0o644)
        with open(self.chain_path, "wb") as f:
            f.write(self.cert_pem())
            for c in chain:
                f.write(c.public_bytes(serialization.Encoding.PEM))

    def cert_pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def der(self):
        return self.cert.public_bytes(serialization.Encoding.DER)

    def spki_der(self):
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def tlsa_311(self):
        """TLSA RDATA `3 1 1 <sha256(SPKI)>` (DANE-EE, public key, SHA-256)."""
        return "3 1 1 " + hashlib.sha256(self.spki_der()).hexdigest()

    def tlsa_301(self):
        """TLSA RDATA `3 0 1 <sha256(cert)>` (DANE-EE, full certificate)."""
        return "3 0 1 " + hashlib.sha256(self.der()).hexdigest()

    def tlsa_201(self):
        """TLSA RDATA `2 0 1 <sha256(cert)>`; meaningful for a CA certificate (DANE-TA)."""
        return "2 0 1 " + hashlib.sha256(self.der()).hexdigest()

    def server_context(self, **kw):
        """An ssl.SSLContext serving this certificate (with its chain)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.chain_path, self.key_path)
        return ctx


class TestCA:
    """A root CA that issues server certificates into directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory, name="postwarden test CA"):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.key = _key()
        b = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
        b = _validity(b, 3650).serial_number(x509.random_serial_number())
        b = b.public_key(self.key.public_key())
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                          crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                            critical=False)
        self.ca = Cert(b.sign(self.key, hashes.SHA256()), self.key, directory, "ca")
        self.cert_path = self.ca.cert_path
        self._issued = {}

    def tlsa_201(self):
        """TLSA `2 0 1` RDATA matching every certificate this CA issued."""
        return self.ca.tlsa_201()

    def issue(self, hostname, *more_names, days=30, key="ec", stem=None):
        """Issue (once per name set) a server certificate for hostname (+ SAN names).

        Its files are <stem or hostname>-<hash>.crt, .key and .chain.pem, the hash taken
        over what tells certificates apart (subject, sorted name set, days, key type): a
        stem only makes the name readable, so another name set never writes over them.
        """
        names = (hostname,) + tuple(more_names)
        k = (hostname, tuple(sorted(set(names))), days, key)
        if k in self._issued:
            return self._issued[k]
        priv = _key(key)
        b = x509.CertificateBuilder().subject_name(_name(hostname)).issuer_name(
            self.ca.cert.subject)
        if days < 0:
            now = datetime.datetime.now(datetime.timezone.utc)
            b = b.not_valid_before(now + datetime.timedelta(days=days * 2)).not_valid_after(
                now + datetime.timedelta(days=days))
        else:
            b = _validity(b, days)
        b = b.serial_number(x509.random_serial_number()).public_key(priv.public_key())
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                            critical=False)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        stem = "%s-%s" % (stem or hostname, hashlib.sha256(repr(k).encode()).hexdigest()[:12])
        c = Cert(cert, priv, self.directory, stem, chain=[self.ca.cert])
        self._issued[k] = c
        return c

    def self_signed(self, hostname, stem=None, key="ec"):
        """A self-signed certificate for hostname (not issued by this CA)."""
        priv = _key(key)
        b = x509.CertificateBuilder().subject_name(_name(hostname)).issuer_name(_name(hostname))
        b = _validity(b, 30).serial_number(x509.random_serial_number())
        b = b.public_key(priv.public_key())
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]),
                            critical=False)
        cert = b.sign(priv, hashes.SHA256())
        return Cert(cert, priv, self.directory, stem or "selfsigned-%s-%d" % (
            hostname, len(os.listdir(self.directory))))
