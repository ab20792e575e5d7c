"""MTA-STS as a sender (RFC 8461), end to end: Knot publishes the _mta-sts TXT records
(signed zone), nginx serves the policies over HTTPS with a certificate from the test CA
(trusted by the relay through [relay] ca_file), and scripted MX hosts present certificates
from the same CA (valid, expired). Each test says who got the message and who did not.
"""

import json
import os
import subprocess
import time

import pytest

from pwtest import net, nginxconf, prom
from pwtest.mailcheck import (message, queue_message, rcpt_states, report_parts,
                              sender_addr, status_per_recipient, uniq)

pytestmark = pytest.mark.engines

SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name mta-sts.{domain};
        root {root};
        location = /.well-known/mta-sts.txt {{
{extra}
        }}
    }}
"""


def policy(mode, *mx, max_age=86400):
    return "version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n" % (
        mode, "".join("mx: %s\r\n" % m for m in mx), max_age)


class PolicyWeb:
    """nginx on 127.0.0.1 serving https://mta-sts.DOMAIN/.well-known/mta-sts.txt for each
    domain: a policy text, a redirect, a slow answer (limit_rate) or 50 MB."""

    def __init__(self, workdir, test_ca):
        self.dir = os.path.join(workdir, "policyweb")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = test_ca
        self.port = net.free_port("127.0.0.1")
        self.sites = {}
        self.proc = None

    def site(self, domain, text=None, redirect=None, slow=False, big=False):
        root = os.path.join(self.dir, "root", domain)
        os.makedirs(os.path.join(root, ".well-known"), exist_ok=True)
        path = os.path.join(root, ".well-known", "mta-sts.txt")
        extra = ""
        if big:
            with open(path, "wb") as f:
                f.truncate(50 * 1024 * 1024)
        elif text is not None:
            self.set_policy(domain, text)
        if redirect:
            extra = "            return 301 %s;" % redirect
        if slow:
            extra = "            limit_rate 4;"
        self.sites[domain] = (root, extra)

    def set_policy(self, domain, text):
        root = os.path.join(self.dir, "root", domain)
        with open(os.path.join(root, ".well-known", "mta-sts.txt"), "w") as f:
            f.write(text)

    def start(self):
        cert = self.ca.issue(*["mta-sts." + d for d in sorted(self.sites)],
                             stem="policyweb-" + uniq())
        servers = "".join(SERVER.format(port=self.port, domain=d, root=root, extra=extra)
                          for d, (root, extra) in self.sites.items())
        nginxconf.write(self.dir, servers, cert=cert, default_type="text/plain")
        self.proc = subprocess.Popen(nginxconf.argv(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            r = subprocess.run(["ss", "-Hltn", "src", "127.0.0.1:%d" % self.port],
                               capture_output=True, text=True)
            if r.stdout.strip():
                break
            assert self.proc.poll() is None, "nginx exited"
            assert time.monotonic() < deadline, "nginx does not listen"
            time.sleep(0.05)

    def requests(self):
        with open(nginxconf.access_log(self.dir)) as f:
            return [l for l in f if "/.well-known/mta-sts.txt" in l]

    def stop(self):
        if self.proc is not None:
            net.stop_process(self.proc)
            self.proc = None


@pytest.fixture
def policy_web(workdir, test_ca):
    webs = []

    def make():
        w = PolicyWeb(workdir, test_ca)
        webs.append(w)
        return w
    yield make
    for w in webs:
        w.stop()


def sts_relay(make_relay, test_ca, web, domains, **options):
    """A relay that trusts the test CA and finds the policy hosts of domains on nginx."""
    r = make_relay(start=False, relay_ca_file=test_ca.cert_path, relay_retry_min="1s",
                   relay_retry_max="2s", **options)
    r.sections["mta_sts"] = {
        "hosts": ", ".join("mta-sts.%s=127.0.0.1" % d for d in domains),
        "port": str(web.port), "allow_private": "on", "fetch_timeout": "3s"}
    r.start()
    return r


def sts_domain(zones, smtp_server, label, mode_txt_id, cert_days=30, mx_host=None, tlsa=(),
               ehlo_extra=()):
    """A domain in the signed zone with one sink MX (certificate from the test CA for its
    name) and, when mode_txt_id, the _mta-sts TXT record with that id."""
    dom = "%s.example.test" % label
    host = mx_host or "mx-%s.example.test" % label
    srv = smtp_server("sink", hostname=host, cert=_cert(smtp_server, host, cert_days),
                      ehlo_extra=ehlo_extra)
    zones.mx("example.test", label, srv.addr, mx_host=host, tlsa=tlsa)
    if mode_txt_id:
        zones.raw("example.test", "_mta-sts.%s." % dom, "TXT", '"v=STSv1; id=%s"' % mode_txt_id)
    return dom, host, srv


_CA = {}


def _cert(smtp_server, host, days):
    return _CA["ca"].issue(host, days=days, stem="%s-%d" % (host, days))


@pytest.fixture(autouse=True)
def _ca(test_ca):
    _CA["ca"] = test_ca


def deliveries_for(relay, rcpt):
    return [d for d in relay.deliveries() if d.get("rcpt") == rcpt]


def wait_delivery(relay, rcpt, outcome, timeout=40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = [x for x in deliveries_for(relay, rcpt) if x.get("outcome") == outcome]
        if d:
            return d[-1]
        time.sleep(0.2)
    raise AssertionError("no %s delivery for %s: %s" % (outcome, rcpt,
                                                        deliveries_for(relay, rcpt)))


def vm_hwm_kb(relay):
    with open("/proc/%d/status" % relay.proc.pid) as f:
        return int([l for l in f if l.startswith("VmHWM")][0].split()[1])


def user(relay, addr, guarantee="off"):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


# -- enforce ------------------------------------------------------------------------

def test_enforce_matching_mx_gets_mail_mismatch_is_deferred(make_relay, zones, smtp_server,
                                                            policy_web, test_ca):
    good, good_host, good_srv = sts_domain(zones, smtp_server, uniq("stsok"), "1")
    bad, bad_host, bad_srv = sts_domain(zones, smtp_server, uniq("stsmx"), "1")
    plain, _, plain_srv = sts_domain(zones, smtp_server, uniq("nosts"), None, cert_days=-1)
    zones.publish()
    web = policy_web()
    web.site(good, policy("enforce", good_host))
    web.site(bad, policy("enforce", "mx.elsewhere.test", "*.other.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [good, bad])
    for guarantee in ("off", "on"):
        s = sender_addr()
        user(relay, s, guarantee)
        rg, rb, rp = "a@" + good, "b@" + bad, "c@" + plain
        relay.send(s, [rg, rb, rp], message(s, [rg, rb, rp], "enforce " + guarantee))
        wait_delivery(relay, rg, "delivered")
        # control: no policy, so an expired certificate still gets the mail
        wait_delivery(relay, rp, "delivered")
        d = wait_delivery(relay, rb, "deferred")
        assert d["reason"].startswith("MTA-STS policy of " + bad), d
        assert "does not match" in d["reason"], d
        assert d["status"].startswith("4.7."), d
        # deferred for every sender: not held under the guarantee
        states = rcpt_states(queue_message(relay, s))
        assert states[rb] == "deferred", states
    assert good_srv.messages_for("a@" + good)
    assert bad_srv.messages == [] and not bad_srv.body_received
    # the policy was fetched once and then taken from the cache
    assert len(web.requests()) == 2, web.requests()
    j = json.loads(relay.pw("tls-check", bad, "--json").stdout)
    assert j["mta_sts"]["mode"] == "enforce" and j["mta_sts"]["source"] == "cache"
    assert j["mta_sts"]["mx"] == ["mx.elsewhere.test", "*.other.test"]
    assert j["verdict"] == "defer" and j["reason_code"] == "sts_mx_mismatch", j
    text = relay.pw("tls-check", good).stdout
    assert "MTA-STS: mode enforce, id 1, max_age 86400, from the cache" in text, text


def test_enforce_expired_certificate_defers_then_bounces_5_7(make_relay, zones, smtp_server,
                                                            policy_web, test_ca, pf_notify):
    dom, host, srv = sts_domain(zones, smtp_server, uniq("stsexp"), "7", cert_days=-1)
    zones.publish()
    web = policy_web()
    web.site(dom, policy("enforce", "*.example.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom], relay_queue_lifetime="60s")
    s = sender_addr()
    user(relay, s, "on")
    r = "x@" + dom
    relay.send(s, [r], message(s, [r], "expired cert"))
    d = wait_delivery(relay, r, "deferred")
    assert d["reason"].startswith("MTA-STS policy of " + dom), d
    assert "not valid for its name" in d["reason"], d
    assert rcpt_states(queue_message(relay, s))[r] == "deferred"
    d = wait_delivery(relay, r, "bounced", timeout=120)
    assert d["status"] == "5.7.10", d
    assert srv.messages == [] and not srv.body_received
    note = pf_notify.wait_for_message(s, timeout=60)
    msg, human, status = report_parts(note)
    assert status_per_recipient(status)[r.lower()] == "5.7.10"
    assert "MTA-STS" in human, human


# -- testing, none ----------------------------------------------------------------------

def test_testing_and_none_deliver_despite_bad_certificate(make_relay, zones, smtp_server,
                                                          policy_web, test_ca):
    tst, _, tst_srv = sts_domain(zones, smtp_server, uniq("ststest"), "1", cert_days=-1)
    non, _, non_srv = sts_domain(zones, smtp_server, uniq("stsnone"), "1", cert_days=-1)
    enf, _, enf_srv = sts_domain(zones, smtp_server, uniq("stsenf"), "1", cert_days=-1)
    zones.publish()
    web = policy_web()
    web.site(tst, policy("testing", "*.example.test"))
    web.site(non, policy("none"))
    web.site(enf, policy("enforce", "*.example.test"))   # control: same cert, enforced
    web.start()
    mport = net.free_port("127.0.0.1")
    relay = sts_relay(make_relay, test_ca, web, [tst, non, enf],
                      metrics_listen="127.0.0.1:%d" % mport)
    s = sender_addr()
    user(relay, s, "off")
    rt, rn, re_ = "t@" + tst, "n@" + non, "e@" + enf
    relay.send(s, [rt, rn, re_], message(s, [rt, rn, re_], "testing"))
    wait_delivery(relay, rt, "delivered")
    wait_delivery(relay, rn, "delivered")
    wait_delivery(relay, re_, "deferred")
    assert tst_srv.messages_for(rt) and non_srv.messages_for(rn)
    assert enf_srv.messages == []
    fails = [l for l in relay.log_lines("mta_sts_failure")]
    assert any("mode=testing" in l and tst in l for l in fails), fails
    assert not any(non in l for l in fails), fails
    assert prom.sample(mport, "postwarden_mta_sts_policy_fetches_total", result="ok") == 3
    assert prom.sample(mport, "postwarden_mta_sts_failures_total", mode="testing") >= 1
    assert prom.sample(mport, "postwarden_mta_sts_failures_total", mode="enforce") >= 1


# -- policy changes and broken policy servers -----------------------------------------------

def test_txt_id_change_refetches_and_uses_new_mode(make_relay, zones, smtp_server, policy_web,
                                                   test_ca):
    label = uniq("stsid")
    dom, host, srv = sts_domain(zones, smtp_server, label, "1")
    zones.publish()
    web = policy_web()
    web.site(dom, policy("testing", "mx.elsewhere.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom])
    s = sender_addr()
    user(relay, s, "off")
    r1 = "one@" + dom
    relay.send(s, [r1], message(s, [r1], "first"))
    wait_delivery(relay, r1, "delivered")          # testing: delivered despite the mismatch
    assert len(web.requests()) == 1
    # the receiver switches to enforce under a new id
    web.set_policy(dom, policy("enforce", "mx.elsewhere.test"))
    r2 = "two@" + dom
    relay.send(s, [r2], message(s, [r2], "second, same id"))
    wait_delivery(relay, r2, "delivered")          # control: same id, cached testing policy
    assert len(web.requests()) == 1
    zones.raw("example.test", "_mta-sts.%s." % dom, "TXT", '"v=STSv1; id=2"')
    zones.records["example.test"] = [x for x in zones.records["example.test"]
                                     if x[2] != '"v=STSv1; id=1"']
    zones.publish()
    time.sleep(3)   # the TXT's TTL in the resolver's cache
    r3 = "three@" + dom
    relay.send(s, [r3], message(s, [r3], "third, new id"))
    d = wait_delivery(relay, r3, "deferred")
    assert "does not match" in d["reason"], d
    assert len(web.requests()) == 2
    assert not srv.messages_for(r3)


def test_policy_is_refreshed_before_it_expires(make_relay, zones, smtp_server, policy_web,
                                               test_ca):
    dom, host, srv = sts_domain(zones, smtp_server, uniq("stsage"), "1")
    zones.publish()
    web = policy_web()
    web.site(dom, policy("enforce", host, max_age=8))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom])
    s = sender_addr()
    user(relay, s, "off")
    r1, r2, r3 = "one@" + dom, "two@" + dom, "three@" + dom
    relay.send(s, [r1], message(s, [r1], "first"))
    wait_delivery(relay, r1, "delivered")
    relay.send(s, [r2], message(s, [r2], "second, young policy"))
    wait_delivery(relay, r2, "delivered")
    assert len(web.requests()) == 1                 # control: fresh, from the cache
    time.sleep(5)                                   # past half of max_age, not expired
    relay.send(s, [r3], message(s, [r3], "third, old policy"))
    wait_delivery(relay, r3, "delivered")
    net.wait_until(lambda: len(web.requests()) == 2, 10, what="background refresh")
    assert len(relay.log_lines("mta_sts_fetched")) == 2


@pytest.mark.parametrize("kind", ["redirect", "slow", "big"])
def test_broken_policy_server_is_a_fetch_error(make_relay, zones, smtp_server, policy_web,
                                               test_ca, kind):
    dom, host, srv = sts_domain(zones, smtp_server, uniq("stsbrk"), "1")
    zones.publish()
    web = policy_web()
    if kind == "redirect":
        # the target would serve an enforce policy that keeps the mail back
        target = uniq("ststarget") + ".example.test"
        web.site(target, policy("enforce", "mx.elsewhere.test"))
        web.site(dom, redirect="https://mta-sts.%s:%d/.well-known/mta-sts.txt"
                 % (target, web.port))
    elif kind == "slow":
        web.site(dom, policy("enforce", "mx.elsewhere.test") + "x" * 64)
        web.site(dom, slow=True)
    else:
        web.site(dom, big=True)
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom])
    s = sender_addr()
    user(relay, s, "off")
    r = "r@" + dom
    hwm0 = vm_hwm_kb(relay)
    t0 = time.monotonic()
    relay.send(s, [r], message(s, [r], "broken " + kind))
    # no valid policy: delivered as without MTA-STS, and the failure is logged
    wait_delivery(relay, r, "delivered")
    fails = relay.log_lines("mta_sts_fetch_failed")
    assert fails and dom in fails[-1], fails
    want = {"redirect": "redirect", "slow": "timeout", "big": "too-big"}[kind]
    assert want in fails[-1], fails
    if kind == "slow":
        assert time.monotonic() - t0 >= 3
    if kind == "big":
        # the body stopped at 64 KiB: the relay's peak memory grew by far less than 50 MB
        assert vm_hwm_kb(relay) - hwm0 < 16 * 1024, (hwm0, vm_hwm_kb(relay))
    assert relay.alive()


def test_fetch_error_keeps_the_cached_policy(make_relay, zones, smtp_server, policy_web,
                                             test_ca):
    dom, host, srv = sts_domain(zones, smtp_server, uniq("stskeep"), "1")
    zones.publish()
    web = policy_web()
    web.site(dom, policy("enforce", "mx.elsewhere.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom])
    s = sender_addr()
    user(relay, s, "off")
    r1 = "one@" + dom
    relay.send(s, [r1], message(s, [r1], "first"))
    wait_delivery(relay, r1, "deferred")
    # new id, but the policy host is gone: the cached enforce policy still applies (5.1)
    web.stop()
    zones.records["example.test"] = [x for x in zones.records["example.test"]
                                     if x[2] != '"v=STSv1; id=1"']
    zones.raw("example.test", "_mta-sts.%s." % dom, "TXT", '"v=STSv1; id=2"')
    zones.publish()
    time.sleep(3)
    r2 = "two@" + dom
    relay.send(s, [r2], message(s, [r2], "second"))
    d = wait_delivery(relay, r2, "deferred")
    assert "does not match" in d["reason"], d
    assert relay.log_lines("mta_sts_fetch_failed")
    assert srv.messages == []


# -- DANE wins ------------------------------------------------------------------------------

def test_dane_decides_where_both_are_published(make_relay, zones, smtp_server, policy_web,
                                               test_ca):
    label = uniq("stsdane")
    host = "mx-%s.example.test" % label
    cert = test_ca.issue(host, stem=host + "-dane")
    srv = smtp_server("sink", hostname=host, cert=cert)
    dom = zones.mx("example.test", label, srv.addr, mx_host=host, tlsa=[cert.tlsa_311()])
    zones.raw("example.test", "_mta-sts.%s." % dom, "TXT", '"v=STSv1; id=1"')
    # control: the same policy without TLSA keeps the mail back
    ctl, _, ctl_srv = sts_domain(zones, smtp_server, uniq("stsnodane"), "1")
    zones.publish()
    web = policy_web()
    web.site(dom, policy("enforce", "mx.elsewhere.test"))
    web.site(ctl, policy("enforce", "mx.elsewhere.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [dom, ctl])
    s = sender_addr()
    user(relay, s, "off")
    r, rc = "d@" + dom, "c@" + ctl
    relay.send(s, [r, rc], message(s, [r, rc], "dane wins"))
    d = wait_delivery(relay, r, "delivered")
    assert d.get("dane") == "pass", d
    assert srv.messages_for(r)
    wait_delivery(relay, rc, "deferred")
    assert ctl_srv.messages == []


# -- TLS reports ------------------------------------------------------------------------

def _sts_counts(relay):
    """{(domain, policy type, mx, result): count} of today's `tlsrpt show --json`."""
    out = {}
    for r in relay.pw_json("tlsrpt", "show", "--day",
                           time.strftime("%Y-%m-%d", time.gmtime())):
        k = (r["policy-domain"], r["policy-type"], r["mx-host"], r["result-type"])
        out[k] = out.get(k, 0) + r["count"]
    return out


def test_tls_report_counts_sessions_under_a_policy(make_relay, zones, smtp_server, policy_web,
                                                   test_ca):
    """Sessions under an MTA-STS policy are counted as policy type sts: a testing policy's
    expired certificate as certificate-expired and an MX outside a testing policy as
    validation-failure (the mail still goes, each session counted once), an enforce policy
    met as a success, a policy server that cannot be read as sts-policy-fetch-error; a domain
    without a policy stays no-policy-found (control)."""
    tst, tst_host, tst_srv = sts_domain(zones, smtp_server, uniq("rpttest"), "1", cert_days=-1)
    enf, enf_host, enf_srv = sts_domain(zones, smtp_server, uniq("rptenf"), "1")
    brk, brk_host, brk_srv = sts_domain(zones, smtp_server, uniq("rptbrk"), "1")
    non, non_host, non_srv = sts_domain(zones, smtp_server, uniq("rptnone"), None)
    mis, mis_host, mis_srv = sts_domain(zones, smtp_server, uniq("rptmis"), "1")
    zones.publish()
    web = policy_web()
    web.site(tst, policy("testing", "*.example.test"))
    web.site(mis, policy("testing", "mx.elsewhere.test"))
    web.site(enf, policy("enforce", enf_host))
    web.site(brk, redirect="https://elsewhere.test/.well-known/mta-sts.txt")
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [tst, enf, brk, mis])
    s = sender_addr()
    user(relay, s, "off")
    rcpts = ["t@" + tst, "e@" + enf, "b@" + brk, "n@" + non, "m@" + mis]
    relay.send(s, rcpts, message(s, rcpts, "reports"))
    for r in rcpts:
        wait_delivery(relay, r, "delivered")
    want = {
        (tst, "sts", tst_host, "certificate-expired"): 1,
        (enf, "sts", enf_host, "success"): 1,
        (brk, "sts", brk_host, "sts-policy-fetch-error"): 1,
        (non, "no-policy-found", non_host, "success"): 1,
        (mis, "sts", mis_host, "validation-failure"): 1,     # MX not in a testing policy
    }
    counts = net.wait_until(
        lambda: (lambda c: c if all(c.get(k) == v for k, v in want.items()) else None)(
            _sts_counts(relay)), 40, interval=1, what="TLS outcome counts %s" % want)
    mine = {k: v for k, v in counts.items() if k[0] in (tst, enf, brk, non, mis)}
    assert mine == want, mine
    # the policy string of the sts rows is the policy as served, line by line
    rows = relay.pw_json("tlsrpt", "show", "--day", time.strftime("%Y-%m-%d", time.gmtime()))
    enf_row = [r for r in rows if r["policy-domain"] == enf][0]
    assert "mode: enforce" in json.dumps(enf_row), enf_row


# -- REQUIRETLS ---------------------------------------------------------------------------

def test_requiretls_goes_to_a_host_that_met_an_enforce_policy(make_relay, zones, smtp_server,
                                                              policy_web, test_ca):
    """A REQUIRETLS message (asked for by the Require-TLS: yes header) goes to an MX host that
    met an enforce policy and offers REQUIRETLS, with REQUIRETLS on MAIL; under a testing
    policy the same host is not enough (no DANE either): bounced 5.7.30 (control)."""
    enf, _, enf_srv = sts_domain(zones, smtp_server, uniq("rtenf"), "1",
                                 ehlo_extra=("REQUIRETLS",))
    tst, _, tst_srv = sts_domain(zones, smtp_server, uniq("rttst"), "1",
                                 ehlo_extra=("REQUIRETLS",))
    zones.publish()
    web = policy_web()
    web.site(enf, policy("enforce", "*.example.test"))
    web.site(tst, policy("testing", "*.example.test"))
    web.start()
    relay = sts_relay(make_relay, test_ca, web, [enf, tst])
    s = sender_addr()
    user(relay, s, "off")
    re_, rt = "a@" + enf, "b@" + tst
    for r in (re_, rt):
        relay.send(s, [r], message(s, [r], "requiretls", headers=("Require-TLS: yes",)))
    wait_delivery(relay, re_, "delivered")
    mails = [c for c in enf_srv.all_commands() if c.upper().startswith("MAIL")]
    assert mails and mails[-1].upper().endswith(" REQUIRETLS"), mails
    d = wait_delivery(relay, rt, "bounced")
    assert d["status"] == "5.7.30", d
    assert tst_srv.messages == []
