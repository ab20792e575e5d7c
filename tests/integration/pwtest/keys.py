"""Public keys for the key directory tests: OpenPGP keys made by GnuPG in a private
GNUPGHOME, S/MIME certificates made with python3-cryptography, and the names they are
published under (computed here independently of postwarden)."""

import base64
import datetime
import hashlib
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def dane_owner(address, label="_openpgpkey", lower=False):
    """hex(SHA-256(local-part))[:56].<label>.<domain> (RFC 7929 / RFC 8162)."""
    local, domain = address.rsplit("@", 1)
    if lower:
        local = local.lower()
    return "%s.%s.%s" % (hashlib.sha256(local.encode()).hexdigest()[:56], label, domain.lower())


def zbase32(data):
    bits = "".join("{:08b}".format(b) for b in data)
    return "".join(ZBASE32[int(bits[i:i + 5].ljust(5, "0"), 2)] for i in range(0, len(bits), 5))


def wkd_hash(local):
    return zbase32(hashlib.sha1(local.lower().encode()).digest())


def dearmor(text):
    """Binary bytes of an ASCII-armored block (OpenPGP or PEM)."""
    lines = text.strip().splitlines()
    body = []
    started = False
    for line in lines[1:-1]:
        if not started:
            if line.strip() == "" or ":" not in line:
                started = True
            if line.strip() == "" or ":" in line:
                continue
        if line.startswith("="):
            continue
        body.append(line.strip())
    return base64.b64decode("".join(body))


class GnuPG:
    """A GNUPGHOME of its own (short path: the agent's socket lives in it)."""

    def __init__(self, home):
        self.home = home
        os.makedirs(home, mode=0o700, exist_ok=True)

    def run(self, *args, input=None, check=True):
        env = dict(os.environ, GNUPGHOME=self.home)
        r = subprocess.run(["gpg", "--batch", "--yes", "--pinentry-mode", "loopback",
                            "--passphrase", ""] + list(args), input=input,
                           capture_output=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("gpg %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        return r

    def make_key(self, *addresses, expire="1y"):
        """An ed25519 key with a cv25519 encryption subkey and one user ID per address;
        returns the fingerprint."""
        self.run("--quick-gen-key", "Test <%s>" % addresses[0], "ed25519", "cert,sign", expire)
        fpr = self.fingerprint(addresses[0])
        self.run("--quick-add-key", fpr, "cv25519", "encr", expire)
        for a in addresses[1:]:
            self.run("--quick-add-uid", fpr, "Test <%s>" % a)
        return fpr

    def fingerprint(self, address):
        out = self.run("--with-colons", "--list-keys", "<%s>" % address).stdout.decode()
        for line in out.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise KeyError(address)

    def export(self, fpr, armor=True):
        return self.run(*(["--armor"] if armor else []), "--export", fpr).stdout

    def export_secret(self, fpr):
        return self.run("--armor", "--export-secret-keys", fpr).stdout

    def uids_of(self, data):
        """The user IDs in key data, as GnuPG reads them (not imported)."""
        out = self.run("--with-colons", "--import-options", "show-only", "--import",
                       input=data).stdout.decode()
        return [line.split(":")[9] for line in out.splitlines() if line.startswith("uid:")]

    def dane_owner(self, fpr):
        """The OPENPGPKEY owner GnuPG itself prints (export-dane), without the trailing dot."""
        out = self.run("--export-options", "export-dane", "--export", fpr).stdout.decode()
        for line in out.splitlines():
            if "OPENPGPKEY" in line or "TYPE61" in line:
                return line.split()[0].rstrip(".").lower()
        raise RuntimeError("no DANE record printed: %s" % out)


def make_smime_cert(address, days=365):
    """A self-signed S/MIME certificate for address; returns (pem bytes, der bytes)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            cert.public_bytes(serialization.Encoding.DER))
