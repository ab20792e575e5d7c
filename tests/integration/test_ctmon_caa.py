"""The CT monitor's CAA check and allowed_issuers by issuer key hash, on both log APIs: the
test CA's certificates are found in the project's test logs, and the CAA of their names is
served by Knot from the DNSSEC-signed zone example.test (RFC 8659 tree climbing through
the validating resolver). Each test asserts the exact verdicts."""
import base64
import hashlib
import os

import pytest

from pwtest.ctlog_server import CTTestLogs

pytestmark = pytest.mark.engines

CA_ID = "ca.pwtest.example"                 # the test CA's CAA identity, via issuer_caa
CA_NAME = "postwarden CT test CA"           # its CN (pwtest.ctlog.CTTestCA)
ISSUER_CAA = "%s=%s" % (CA_NAME, CA_ID)


@pytest.fixture
def caa_zone(knot):
    """put(*records): sets example.test's records (a plain string is a CAA record at the
    apex); put(..., zone="other.test") another zone's. Each zone gets back afterwards what
    it held before."""
    before = {}

    def put(*records, zone="example.test"):
        before.setdefault(zone, list(knot._base.get(zone, [])))
        knot.set_zone(zone, [r if isinstance(r, tuple) else ("@", "CAA", r) for r in records])
    yield put
    for zone, records in before.items():
        knot.set_zone(zone, records)


@pytest.fixture
def logs(workdir):
    t = CTTestLogs(os.path.join(workdir, "ct"), names=(), filler=3)
    yield t
    t.stop()


def log_id(logs, api):
    log = logs.rfc_log if api == "rfc6962" else logs.static_log
    return base64.b64encode(log.log_id).decode()


def check(make_relay, logs, api, **opts):
    """One `ct check` of the log of api from its first entry; the findings by names."""
    logs.start()
    options = dict(ctmon_log_list=logs.log_list_path, ctmon_watch=".example.test,.bogus.test",
                   ctmon_allow_private="on", ctmon_start="backfill",
                   ctmon_issuer_caa=ISSUER_CAA,
                   ctmon_expected_keys=logs.ca.spki_sha256(logs.ca.issue(["x.test"])).hex())
    options.update(opts)
    relay = make_relay(start=False, **options)
    relay.pw("db", "migrate", check=True)
    r = relay.pw("ct", "check", "--log", log_id(logs, api))
    assert r.returncode == 0, r.stdout + r.stderr
    size = (logs.rfc_log if api == "rfc6962" else logs.static_log).size()
    assert "verified to %d entries" % size in r.stdout, r.stdout   # the log advanced
    return relay, {f["names"]: f for f in relay.pw_json("ct", "list")}


def verdicts(found):
    return {n: f["verdict"] for n, f in found.items()}


APIS = ["rfc6962", "static"]


@pytest.mark.parametrize("api", APIS)
def test_caa_naming_the_issuer_is_expected_another_ca_is_not(make_relay, logs, caa_zone, api):
    caa_zone('0 issue "%s; accounturi=https://acme.example/acct/1"' % CA_ID,
             '0 iodef "mailto:hostmaster@example.test"')
    logs.add(logs.ca.issue(["www.example.test"]))
    relay, found = check(make_relay, logs, api)
    assert verdicts(found) == {"www.example.test": "expected"}
    f = found["www.example.test"]
    assert f["caa"] == "allowed"
    assert "CAA at example.test allows %s" % CA_ID in f["reason"], f["reason"]

    # the same certificate, the CAA naming another CA: an alert of its own kind
    caa_zone('0 issue "letsencrypt.org"')
    logs2 = CTTestLogs(os.path.join(relay.dir, "ct2"), names=(), filler=3)
    try:
        logs2.add(logs2.ca.issue(["www.example.test"]))
        _, found = check(make_relay, logs2, api)
    finally:
        logs2.stop()
    assert verdicts(found) == {"www.example.test": "caa_not_allowed"}
    f = found["www.example.test"]
    assert f["caa"] == "not_allowed"
    assert ("CAA at example.test does not let /CN=%s (CAA identity %s) issue for "
            "www.example.test" % (CA_NAME, CA_ID)) in f["reason"], f["reason"]
    assert '"letsencrypt.org"' in f["reason"]


def test_issuer_with_unknown_caa_identity(make_relay, logs, caa_zone):
    caa_zone('0 issue "letsencrypt.org"')
    logs.add(logs.ca.issue(["www.example.test"]))
    _, found = check(make_relay, logs, "rfc6962", ctmon_issuer_caa="")
    f = found["www.example.test"]
    assert (f["verdict"], f["caa"]) == ("caa_not_allowed", "issuer_unknown")
    assert "[ctmon] issuer_caa" in f["reason"], f["reason"]


@pytest.mark.parametrize("api", APIS)
def test_caa_found_by_climbing_and_the_first_set_rules(make_relay, logs, caa_zone, api):
    # only the parent has CAA for deep.sub; sub.example.test's own set stops the climb
    caa_zone(("@", "CAA", '0 issue "letsencrypt.org"'),
             ("sub2", "CAA", '0 issue "%s"' % CA_ID),
             ("www.sub2", "A", "192.0.2.1"))
    logs.add(logs.ca.issue(["deep.sub.example.test"]))
    logs.add(logs.ca.issue(["www.sub2.example.test"]))
    _, found = check(make_relay, logs, api)
    assert verdicts(found) == {"deep.sub.example.test": "caa_not_allowed",
                               "www.sub2.example.test": "expected"}
    assert "CAA at example.test does not let" in found["deep.sub.example.test"]["reason"]
    assert "CAA at sub2.example.test allows" in found["www.sub2.example.test"]["reason"]


def test_cname_is_followed(make_relay, logs, caa_zone):
    # alias.example.test is a CNAME to a name whose CAA allows another CA: that set rules,
    # not example.test's; a CNAME to a name without CAA climbs from alias's parent
    caa_zone('0 issue "letsencrypt.org"', ("host", "A", "192.0.2.1"), zone="other.test")
    caa_zone(("@", "CAA", '0 issue "%s"' % CA_ID),
             ("alias", "CNAME", "other.test."),
             ("alias2", "CNAME", "host.other.test."))
    logs.add(logs.ca.issue(["alias.example.test"]))
    logs.add(logs.ca.issue(["alias2.example.test"]))
    _, found = check(make_relay, logs, "rfc6962")
    assert verdicts(found) == {"alias.example.test": "caa_not_allowed",
                               "alias2.example.test": "expected"}
    assert "CAA at alias.example.test does not let" in found["alias.example.test"]["reason"]
    assert "CAA at example.test allows" in found["alias2.example.test"]["reason"]


@pytest.mark.parametrize("api", APIS)
def test_issuewild_rules_for_a_wildcard(make_relay, logs, caa_zone, api):
    caa_zone('0 issue "%s"' % CA_ID, '0 issuewild "letsencrypt.org"')
    logs.add(logs.ca.issue(["*.example.test"]))
    logs.add(logs.ca.issue(["plain.example.test"]))
    _, found = check(make_relay, logs, api)
    assert verdicts(found) == {"*.example.test": "caa_not_allowed",
                               "plain.example.test": "expected"}
    assert "issue for *.example.test" in found["*.example.test"]["reason"]


def test_issuewild_allows_the_wildcard_only(make_relay, logs, caa_zone):
    caa_zone('0 issue ";"', '0 issuewild "%s"' % CA_ID)
    logs.add(logs.ca.issue(["*.example.test"]))
    logs.add(logs.ca.issue(["plain.example.test"]))
    _, found = check(make_relay, logs, "rfc6962")
    assert verdicts(found) == {"*.example.test": "expected",
                               "plain.example.test": "caa_not_allowed"}


def test_critical_unknown_property_allows_nobody(make_relay, logs, caa_zone):
    caa_zone('0 issue "%s"' % CA_ID, '128 tbs "unknown"')
    logs.add(logs.ca.issue(["www.example.test"]))
    _, found = check(make_relay, logs, "rfc6962")
    assert verdicts(found) == {"www.example.test": "caa_not_allowed"}


def test_caa_that_cannot_be_looked_up_does_not_hold_the_log(make_relay, logs, caa_zone):
    # bogus.test fails validation: CAA is not checked, the verdict comes from the keys
    caa_zone('0 issue "%s"' % CA_ID)
    logs.add(logs.ca.issue(["www.bogus.test"]))
    logs.add(logs.ca.issue(["www.example.test"]))
    _, found = check(make_relay, logs, "rfc6962")
    assert verdicts(found) == {"www.bogus.test": "expected", "www.example.test": "expected"}
    f = found["www.bogus.test"]
    assert f["caa"] == "not_checked"
    assert "CAA not checked for www.bogus.test" in f["reason"], f["reason"]
    assert "DNSSEC" in f["reason"], f["reason"]
    assert found["www.example.test"]["caa"] == "allowed"


@pytest.mark.parametrize("api", APIS)
def test_allowed_issuers_by_key_hash(make_relay, logs, caa_zone, api):
    caa_zone('0 issue "%s"' % CA_ID)
    key_hash = logs.ca.issuer_key_hash.hex()
    logs.add(logs.ca.issue(["cert.example.test"]))                 # an X.509 entry
    pre, _ = logs.ca.issue_precert(["pre.example.test"])
    logs.add(pre, precert=True)                                    # a precertificate entry
    relay, found = check(make_relay, logs, api, ctmon_allowed_issuers="Some Other CA, " + key_hash)
    assert verdicts(found) == {"cert.example.test": "expected", "pre.example.test": "expected"}
    assert {f["issuer_key_sha256"] for f in found.values()} == {key_hash}
    shown = relay.pw("ct", "show", str(found["cert.example.test"]["id"]), check=True).stdout
    assert "issuer key:  %s" % key_hash in shown, shown
    assert "CAA:         allowed" in shown, shown
    if api == "static":
        # the issuer was fetched by its fingerprint, once for the round
        with open(logs.nginx.access_log) as f:
            fetched = [line for line in f if "/issuer/" in line]
        assert len(fetched) == 1 and hashlib.sha256(logs.ca.der).hexdigest() in fetched[0], \
            fetched


def test_static_issuer_fetched_once_per_round(make_relay, logs, caa_zone):
    caa_zone('0 issue "%s"' % CA_ID)
    for n in ("a", "b", "c"):
        logs.add(logs.ca.issue(["%s.example.test" % n]))
    _, found = check(make_relay, logs, "static",
                     ctmon_allowed_issuers=logs.ca.issuer_key_hash.hex())
    assert verdicts(found) == {"a.example.test": "expected", "b.example.test": "expected",
                               "c.example.test": "expected"}
    with open(logs.nginx.access_log) as f:
        assert len([line for line in f if "/issuer/" in line]) == 1


@pytest.mark.parametrize("api", APIS)
def test_allowed_issuers_wrong_key_hash(make_relay, logs, caa_zone, api):
    caa_zone('0 issue "%s"' % CA_ID)
    logs.add(logs.ca.issue(["cert.example.test"]))
    pre, _ = logs.ca.issue_precert(["pre.example.test"])
    logs.add(pre, precert=True)
    wrong = "00" * 32
    _, found = check(make_relay, logs, api, ctmon_allowed_issuers=wrong)
    assert verdicts(found) == {"cert.example.test": "issuer_not_allowed",
                               "pre.example.test": "issuer_not_allowed"}
    for f in found.values():
        assert f["issuer_key_sha256"] == logs.ca.issuer_key_hash.hex()
        assert "(key SHA-256 %s)" % logs.ca.issuer_key_hash.hex() in f["reason"]
