"""Real-peer test infrastructure for postwarden's integration tests.

Each module starts one kind of peer on loopback: a test CA (ca), Knot DNS with
signed, unsigned and bogus zones plus an unbound.conf for libunbound (dns),
private Postfix instances as receiving MX and as sending MTA (postfix),
misbehaving SMTP servers (hostile) and the relay under test (relay).
"""
