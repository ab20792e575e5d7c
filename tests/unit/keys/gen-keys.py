#!/usr/bin/python3
"""gen-keys.py - make the OpenPGP keys and X.509 certificates the key unit tests check.

Usage: gen-keys.py OUTDIR [names]

Keys are made with GnuPG in a private GNUPGHOME inside OUTDIR (no passphrase, loopback
pinentry); certificates with python3-cryptography. With "names" only the key with several
user IDs is made, plus GnuPG's own WKD hashes (wkd.txt) and DANE records (dane.txt) for it.
Everything is exported as the files the tests read; nothing outside OUTDIR is touched.
"""
import datetime
import os
import subprocess
import sys
import time

OUT = sys.argv[1]
GNUPGHOME = os.path.join(OUT, "g")
ENV = dict(os.environ, GNUPGHOME=GNUPGHOME, LC_ALL="C")
GPG = ["gpg", "--batch", "--yes", "--no-tty", "--quiet", "--passphrase", "",
       "--pinentry-mode", "loopback"]


def gpg(*args, stdin=None, check=True):
    """Run gpg in the private home; returns stdout bytes."""
    r = subprocess.run(GPG + list(args), env=ENV, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if check and r.returncode != 0:
        sys.stderr.write("gpg %s failed: %s\n" % (" ".join(args), r.stderr.decode()))
        sys.exit(1)
    return r.stdout


def fpr_of(uid):
    """Fingerprint of the primary key carrying exactly uid."""
    for line in gpg("--with-colons", "--list-keys", "=" + uid).decode().splitlines():
        if line.startswith("fpr:"):
            return line.split(":")[9]
    sys.exit("no key for " + uid)


def genkey(uid, algo, usage, expire, enc=None, faked=None):
    """Make a primary key (and an encryption subkey if enc) and return its fingerprint."""
    extra = ["--faked-system-time", faked] if faked else []
    gpg(*extra, "--quick-gen-key", uid, algo, usage, expire)
    fpr = fpr_of(uid)
    if enc:
        gpg(*extra, "--quick-add-key", fpr, enc, "encr", expire)
    return fpr


def export(name, *what, secret=False, armor=False):
    opts = ["--armor"] if armor else []
    data = gpg(*opts, "--export-secret-keys" if secret else "--export", *what)
    if not data:
        sys.exit("empty export for " + name)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return data


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def openpgp_keys():
    """The OpenPGP cases of test_keys.c."""
    ed = genkey("Alice <alice@example.org>", "ed25519", "cert,sign", "never", "cv25519")
    export("ed25519.pgp", ed)
    export("ed25519.asc", ed, armor=True)
    export("secret.asc", ed, secret=True, armor=True)
    export("secret.pgp", ed, secret=True)
    write("subkeys-secret.pgp", gpg("--export-secret-subkeys", ed))

    rsa = genkey("Rosa <rosa@example.org>", "rsa3072", "cert,sign", "never", "rsa3072")
    export("rsa3072.pgp", rsa)
    weak = genkey("Walt <walt@example.org>", "rsa1024", "cert,sign", "never", "rsa1024")
    export("rsa1024.pgp", weak)
    sign = genkey("Sid <sid@example.org>", "ed25519", "cert,sign", "never")
    export("signonly.pgp", sign)

    rev = genkey("Rex <rex@example.org>", "ed25519", "cert,sign", "never", "cv25519")
    with open(os.path.join(GNUPGHOME, "openpgp-revocs.d", rev + ".rev"), "rb") as f:
        cert = f.read().replace(b":-----BEGIN", b"-----BEGIN")
    gpg("--import", stdin=cert)
    export("revoked.pgp", rev)

    old = genkey("Olga <olga@example.org>", "ed25519", "cert,sign", "1d", "cv25519",
                 faked="20200101T000000!")
    export("expired.pgp", old)
    soon = genkey("Sue <sue@example.org>", "ed25519", "cert,sign", "2d", "cv25519")
    export("expiring.pgp", soon)

    # Encryption subkey that expired in 2020; then a new one next to it.
    ivy = genkey("Ivy <ivy@example.org>", "ed25519", "cert,sign", "never",
                 faked="20200101T000000!")
    gpg("--faked-system-time", "20200101T000010!", "--quick-add-key", ivy, "cv25519", "encr",
        "1d")
    export("oldsub.pgp", ivy)
    gpg("--quick-add-key", ivy, "cv25519", "encr", "never")
    export("renewed.pgp", ivy)

    # Bob certifies Carol's key: a third-party signature that must not be published.
    bob = genkey("Bob <bob@example.net>", "ed25519", "cert,sign", "never")
    carol = genkey("Carol <carol@example.org>", "ed25519", "cert,sign", "never", "cv25519")
    gpg("-u", bob, "--quick-sign-key", carol, "Carol <carol@example.org>")
    export("certified.pgp", carol)
    export("bob.pgp", bob)

    # Dave has a foreign user ID and superseded self-signatures (expiry changed twice).
    # GnuPG replaces a self-signature when the expiry changes: importing the older export
    # afterwards puts the superseded one back, as a keyserver merge would.
    past = "%d" % (time.time() - 3600)
    dave = genkey("Dave <dave@example.org>", "ed25519", "cert,sign", "never", "cv25519",
                  faked=past)
    gpg("--faked-system-time", past, "--quick-add-uid", dave,
        "Dave at work <dave@work.example>")
    gpg("--faked-system-time", past, "--quick-add-uid", dave, "dave.second@Example.ORG")
    older = gpg("--export", dave)
    gpg("--quick-set-expire", dave, "5y")
    gpg("--import", stdin=older)
    export("foreign.pgp", dave)

    # Erin has a photo ID (a user attribute packet).
    erin = genkey("Erin <erin@example.org>", "ed25519", "cert,sign", "never", "cv25519")
    jpeg = os.path.join(OUT, "p.jpg")
    write("p.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
          b"\xff\xd9")
    gpg("--command-fd", "0", "--edit-key", erin, "addphoto", "save",
        stdin=("%s\n" % jpeg).encode())
    export("photo.pgp", erin)

    write("two.pgp", open(os.path.join(OUT, "ed25519.pgp"), "rb").read() +
          open(os.path.join(OUT, "rsa3072.pgp"), "rb").read())
    write("two.asc", gpg("--armor", "--export", ed, rsa))
    with open(os.path.join(OUT, "fingerprints.txt"), "w") as f:
        for name, fp in (("ed25519", ed), ("rsa3072", rsa), ("bob", bob), ("carol", carol),
                         ("dave", dave), ("erin", erin)):
            f.write("%s %s\n" % (name, fp))


def names_key():
    """A key with user IDs whose local-parts differ in case, and GnuPG's names for them."""
    fp = genkey("Joe <Joe.Doe@Example.ORG>", "ed25519", "cert,sign", "never")
    for uid in ("hugh@example.com", "Mixed Case <MiXeD.Case@Example.NET>",
                "plus <first+tag@sub.example.com>"):
        gpg("--quick-add-uid", fp, uid)
    write("wkd.txt", gpg("--with-wkd-hash", "--with-colons", "--list-keys", fp))
    dane = b""
    for addr in ("Joe.Doe@Example.ORG", "hugh@example.com", "MiXeD.Case@Example.NET",
                 "first+tag@sub.example.com"):
        dane += gpg("--export-options", "export-dane", "--export", "=" + addr) + b"\n"
        # GnuPG prints the record of the primary user ID, plus one per matching user ID.
    write("dane.txt", dane)
    write("wkd-list.txt", gpg("--with-wkd-hash", "--list-keys", fp))


def certificates():
    """S/MIME cases: a test CA and leaf certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keys Test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - day).not_valid_after(now + 3650 * day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    rsa2048 = rsa.generate_private_key(65537, 2048)

    def leaf(name, key, sans=(), subject_email=None, start=None, end=None, ku="enc",
             eku=True):
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, "Leaf " + name)]
        if subject_email:
            attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, subject_email))
        b = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(start or now - day).not_valid_after(end or now + 365 * day))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.RFC822Name(s) for s in sans]), critical=False)
        enc = ku == "enc"
        agree = enc and isinstance(key, ec.EllipticCurvePrivateKey)
        b = b.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=enc and not agree, data_encipherment=False,
            key_agreement=agree, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        write("smime-%s.pem" % name, cert.public_bytes(pem))
        return cert

    good = leaf("good", rsa2048, sans=["alice@example.org", "alice.alias@example.org"])
    write("smime-good.der", good.public_bytes(serialization.Encoding.DER))
    leaf("ec", ec.generate_private_key(ec.SECP256R1()), sans=["alice@example.org"])
    leaf("subject", rsa2048, subject_email="Alice@Example.ORG")
    leaf("other", rsa2048, sans=["bob@example.net"])
    leaf("expired", rsa2048, sans=["alice@example.org"],
         start=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
         end=datetime.datetime(2020, 6, 1, tzinfo=datetime.timezone.utc))
    leaf("soon", rsa2048, sans=["alice@example.org"], end=now + 2 * day)
    leaf("rsa1024", rsa.generate_private_key(65537, 1024), sans=["alice@example.org"])
    leaf("signonly", rsa2048, sans=["alice@example.org"], ku="sign")
    leaf("ed25519", ed25519.Ed25519PrivateKey.generate(), sans=["alice@example.org"],
         ku="sign")
    keypem = rsa2048.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    write("smime-withkey.pem", good.public_bytes(pem) + keypem)
    write("smime-keyonly.pem", keypem)
    write("smime-keyonly.der", rsa2048.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write("smime-two.pem", good.public_bytes(pem) + ca.public_bytes(pem))
    write("smime-ca.pem", ca.public_bytes(pem))


def main():
    os.makedirs(GNUPGHOME, mode=0o700, exist_ok=True)
    try:
        if len(sys.argv) > 2 and sys.argv[2] == "names":
            names_key()
        else:
            openpgp_keys()
            certificates()
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=ENV, check=False)


main()
