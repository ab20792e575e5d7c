"""Knot serves the test zones; libunbound (unbound-host with the generated unbound.conf)
sees signed zones as secure, the unsigned zone as insecure and the bogus zone as BOGUS."""

import time


def _mx_records(zone):
    return [("@", "MX", "10 mx1.%s." % zone), ("mx1", "A", "127.0.0.2"),
            ("mx1", "AAAA", "::1"),
            ("_25._tcp.mx1", "TLSA", "3 1 1 " + "ab" * 32),
            ("@", "TXT", '"v=spf1 -all"')]


def test_signed_zone_validates_secure(knot):
    knot.set_zone("example.test", _mx_records("example.test"))
    r = knot.unbound_host("example.test", "MX")
    assert r.returncode == 0, r.stderr
    assert "mail is handled by 10 mx1.example.test. (secure)" in r.stdout, r.stdout + r.stderr
    r = knot.unbound_host("mx1.example.test", "A")
    assert "has address 127.0.0.2 (secure)" in r.stdout, r.stdout + r.stderr
    r = knot.unbound_host("_25._tcp.mx1.example.test", "TLSA")
    assert "(secure)" in r.stdout and "BOGUS" not in r.stdout, r.stdout + r.stderr
    r = knot.unbound_host("example.test", "TXT")
    assert "v=spf1 -all" in r.stdout and "(secure)" in r.stdout, r.stdout


def test_second_signed_zone_validates_secure(knot):
    knot.set_zone("other.test", _mx_records("other.test"))
    r = knot.unbound_host("other.test", "MX")
    assert "(secure)" in r.stdout, r.stdout + r.stderr


def test_unsigned_zone_is_insecure(knot):
    knot.set_zone("insecure.test", _mx_records("insecure.test"))
    r = knot.unbound_host("insecure.test", "MX")
    assert "mail is handled by 10 mx1.insecure.test. (insecure)" in r.stdout, \
        r.stdout + r.stderr
    assert "(secure)" not in r.stdout


def test_bogus_zone_is_bogus(knot):
    knot.set_zone("bogus.test", _mx_records("bogus.test"))
    r = knot.unbound_host("bogus.test", "MX")
    assert "BOGUS" in r.stdout, r.stdout + r.stderr
    assert "validation failure" in r.stdout + r.stderr
    r = knot.unbound_host("mx1.bogus.test", "A")
    assert "BOGUS" in r.stdout, r.stdout + r.stderr


def test_nonexistent_name_in_signed_zone_is_secure_nxdomain(knot):
    knot.set_zone("example.test", _mx_records("example.test"))
    r = knot.unbound_host("nothere.example.test", "MX")
    assert "NXDOMAIN" in r.stdout and "(secure)" in r.stdout, r.stdout + r.stderr


def test_set_zone_replaces_records_at_once(knot):
    t0 = time.monotonic()
    knot.set_zone("example.test", [("mx1", "A", "127.0.0.5")])
    knot.set_zone("example.test", [("mx1", "A", "127.0.0.6"), ("mx2", "A", "127.0.0.7")])
    elapsed = time.monotonic() - t0
    ans = knot.query("mx1.example.test.", "A", dnssec=True)
    texts = [rr.to_text() for rrset in ans.answer for rr in rrset]
    assert "127.0.0.6" in texts and "127.0.0.5" not in texts
    assert any(t.startswith("A 13 3") for t in texts), "A record not signed: %s" % texts
    r = knot.unbound_host("mx2.example.test", "A")
    assert "127.0.0.7 (secure)" in r.stdout, r.stdout + r.stderr
    # Signing happens well under a second per change.
    assert elapsed < 2.0, elapsed


def test_unbound_conf_names_every_zone(knot):
    text = open(knot.unbound_conf).read()
    for z in knot.zones:
        assert 'name: "%s"' % z in text
    assert "stub-addr: 127.0.0.1@%d" % knot.port in text
    assert "do-not-query-localhost: no" in text
    assert text.count("trust-anchor-file:") == len(knot.signed) + len(knot.bogus)
