"""The test CA: issued certificates verify against it, TLSA RDATA is what OpenSSL says, and
each name set keeps its own files."""

import hashlib
import socket
import ssl
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def _openssl_spki_sha256(cert_path):
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-pubkey"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def _openssl_cert_sha256(cert_path):
    der = subprocess.run(["openssl", "x509", "-in", cert_path, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def test_tlsa_311_is_sha256_of_spki(test_ca):
    c = test_ca.issue("mx1.example.test")
    assert c.tlsa_311() == "3 1 1 " + _openssl_spki_sha256(c.cert_path)
    other = test_ca.issue("mx2.example.test")
    assert other.tlsa_311() != c.tlsa_311()


def test_tlsa_201_is_sha256_of_ca_cert(test_ca):
    assert test_ca.tlsa_201() == "2 0 1 " + _openssl_cert_sha256(test_ca.cert_path)


def test_issued_cert_verifies_and_self_signed_does_not(test_ca):
    good = test_ca.issue("mx1.example.test")
    r = subprocess.run(["openssl", "verify", "-CAfile", test_ca.cert_path, good.cert_path],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    selfsigned = test_ca.self_signed("mx1.example.test")
    r = subprocess.run(["openssl", "verify", "-CAfile", test_ca.cert_path,
                        selfsigned.cert_path], capture_output=True, text=True)
    assert r.returncode != 0


def _files_say(cert):
    """(DNS names, public key matches the key file) of what cert's files hold now."""
    with open(cert.cert_path, "rb") as f:
        c = x509.load_pem_x509_certificate(f.read())
    with open(cert.key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    names = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    return (sorted(names.get_values_for_type(x509.DNSName)),
            c.public_key().public_bytes(pem, spki) == key.public_key().public_bytes(pem, spki))


def test_name_sets_under_one_stem_keep_their_own_files(test_ca):
    both = test_ca.issue("a.stem.example.test", "b.stem.example.test", stem="shared")
    one = test_ca.issue("a.stem.example.test", stem="shared")
    assert one.cert_path != both.cert_path and one.key_path != both.key_path
    assert _files_say(one) == (["a.stem.example.test"], True)
    # the first set asked again (its names in another order): the same files, still its own
    again = test_ca.issue("a.stem.example.test", "b.stem.example.test", "a.stem.example.test")
    assert again is both
    assert _files_say(both) == (["a.stem.example.test", "b.stem.example.test"], True)
    # another validity is another certificate, with files of its own
    longer = test_ca.issue("a.stem.example.test", days=60, stem="shared")
    assert longer.cert_path not in (one.cert_path, both.cert_path)
    assert _files_say(one) == (["a.stem.example.test"], True)


def test_server_context_serves_chain_for_hostname(test_ca):
    cert = test_ca.issue("mx9.example.test")
    srv = cert.server_context()
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        try:
            with srv.wrap_socket(conn, server_side=True) as t:
                t.recv(1)
        except (ssl.SSLError, OSError):
            pass

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    cli = ssl.create_default_context(cafile=test_ca.cert_path)
    with socket.create_connection(("127.0.0.1", port)) as s:
        with cli.wrap_socket(s, server_hostname="mx9.example.test") as t:
            assert t.getpeercert()["subject"] == ((("commonName", "mx9.example.test"),),)
            t.sendall(b"x")
    th.join(5)
    lsock.close()
