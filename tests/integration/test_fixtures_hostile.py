"""Each hostile MX behaves as described in pwtest.hostile, checked with smtplib and ssl."""

import smtplib
import socket
import ssl

import pytest

from pwtest import ca as pw_ca


def _client_ctx(min_v=None, max_v=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if min_v:
        ctx.minimum_version = min_v
    if max_v:
        ctx.maximum_version = max_v
    return ctx


def _ehlo(srv):
    s = smtplib.SMTP(srv.addr, srv.port, timeout=10)
    s.ehlo("client.example.test")
    return s


def test_notls_offers_no_starttls_and_records_plaintext(smtp_server):
    srv = smtp_server("notls")
    s = _ehlo(srv)
    assert not s.has_extn("starttls")
    with pytest.raises(smtplib.SMTPNotSupportedError):
        s.starttls()
    assert not srv.body_received
    s.sendmail("a@other.test", ["b@example.test"], b"Subject: plain\r\n\r\nsecret\r\n")
    s.quit()
    m = srv.wait_for_messages(1)[0]
    assert srv.body_received and m.tls_version is None and b"secret" in m.data


def test_454_refuses_starttls(smtp_server):
    srv = smtp_server("454")
    s = _ehlo(srv)
    assert s.has_extn("starttls")
    code, msg = s.docmd("STARTTLS")
    assert code == 454
    s.quit()
    assert not srv.body_received and srv.messages == []


def test_garbage_after_ready_breaks_handshake(smtp_server):
    srv = smtp_server("garbage")
    s = _ehlo(srv)
    with pytest.raises((ssl.SSLError, OSError, smtplib.SMTPServerDisconnected)):
        s.starttls(context=_client_ctx())
    s.close()
    assert not srv.body_received


@pytest.mark.parametrize("mode,version,tlsv", [
    ("tls10", "TLSv1", ssl.TLSVersion.TLSv1),
    ("tls11", "TLSv1.1", ssl.TLSVersion.TLSv1_1),
])
def test_old_tls_only(smtp_server, mode, version, tlsv):
    srv = smtp_server(mode)
    # A client that allows old versions gets exactly that version ...
    s = _ehlo(srv)
    s.starttls(context=_client_ctx(tlsv, tlsv, "ALL:@SECLEVEL=0"))
    assert s.sock.version() == version
    s.quit()
    # ... a client with a TLS 1.2 floor cannot connect.
    s = _ehlo(srv)
    with pytest.raises((ssl.SSLError, OSError)):
        s.starttls(context=_client_ctx(ssl.TLSVersion.TLSv1_2))
    s.close()
    assert not srv.body_received


def test_weak_cipher_only(smtp_server):
    srv = smtp_server("weak")
    s = _ehlo(srv)
    s.starttls(context=_client_ctx(ciphers="ALL:eNULL:@SECLEVEL=0"))
    assert s.sock.version() == "TLSv1.2"
    assert "NULL" in s.sock.cipher()[0], s.sock.cipher()
    s.quit()
    s = _ehlo(srv)
    with pytest.raises((ssl.SSLError, OSError)):
        s.starttls(context=_client_ctx())
    s.close()


def test_anonymous_cipher_only(smtp_server):
    srv = smtp_server("anon")
    s = _ehlo(srv)
    s.starttls(context=_client_ctx(ciphers="aNULL:@SECLEVEL=0"))
    assert s.sock.getpeercert(binary_form=True) is None
    s.quit()
    s = _ehlo(srv)
    with pytest.raises((ssl.SSLError, OSError)):
        s.starttls(context=_client_ctx())
    s.close()


def test_starttls_response_injection(smtp_server):
    srv = smtp_server("inject")
    with socket.create_connection((srv.addr, srv.port), timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO client.example.test\r\n")
        while True:
            line = f.readline()
            if line.startswith(b"250 "):
                break
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline() == b"220 Go ahead\r\n"
        # The injected reply is already there before any TLS byte was sent.
        assert f.readline() == b"250 injected\r\n"
    assert not srv.body_received


def test_sink_records_envelope_and_tls(smtp_server):
    srv = smtp_server("sink")
    s = _ehlo(srv)
    s.starttls(context=_client_ctx())
    s.ehlo("client.example.test")
    s.sendmail("a@other.test", ["b@example.test", "c@example.test"],
               b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n")
    s.quit()
    m = srv.wait_for_messages(1)[0]
    assert m.mail_from == "a@other.test"
    assert m.rcpts == ["b@example.test", "c@example.test"]
    assert m.tls_version == "TLSv1.3" and m.tls_cipher
    assert b"\r\n.leading dot\r\n" in m.data
    assert m.helo == "client.example.test"
    assert srv.messages_for("c@example.test") == [m]


def test_dane_mismatch_server_presents_other_key(smtp_server, test_ca, tmp_path):
    published = test_ca.issue("mx-dane.example.test", stem="published")
    other = test_ca.self_signed("mx-dane.example.test", stem="served")
    srv = smtp_server("sink", cert=other, hostname="mx-dane.example.test")
    s = _ehlo(srv)
    s.starttls(context=_client_ctx())
    der = s.sock.getpeercert(binary_form=True)
    s.quit()
    served = pw_ca.Cert.__new__(pw_ca.Cert)
    from cryptography import x509
    served.cert = x509.load_der_x509_certificate(der)
    assert served.tlsa_311() == other.tlsa_311()
    assert served.tlsa_311() != published.tlsa_311()


def test_servers_share_mx_port(smtp_server, mx_port):
    a = smtp_server("sink")
    b = smtp_server("notls")
    assert a.port == b.port == mx_port and a.addr != b.addr
