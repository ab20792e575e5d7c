"""DNS primaries for the key directory tests: one DNSSEC-signed zone on 127.0.0.1:<port> that
a TSIG key may update (OPENPGPKEY and SMIMEA under _openpgpkey and _smimecert) and transfer,
plus an unbound.conf that validates it. Primary holds what is the same for every server
(looking through DNS, updates of the test's own); KeyZone is Knot, bind.py and pdns.py hold
BIND and PowerDNS.

Knot offers three ways to deny proof of non-existence, chosen with mode:
  nsec        plain NSEC: the chain names every owner
  nsec3       NSEC3 with RFC 9276 parameters (iterations 0, empty salt)
  onlinesign  Knot's mod-onlinesign: answers are signed on the fly and a missing name gets
              an NSEC "black lie" that covers only that name
"""

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from . import net

TTL = 2


class Primary:
    """What the key directory tests need of any DNS primary serving `zone` on 127.0.0.1:<port>
    with a TSIG key that may update OPENPGPKEY/SMIMEA and transfer the zone. Subclasses
    (Knot here, BIND in bind.py, PowerDNS in pdns.py) write their config and start the server;
    looking at the zone goes through DNS only, so it is the same for all."""

    kind = None

    def __init__(self, workdir, zone="keys.test"):
        self.dir = workdir
        self.zone = zone
        self.port = None
        self.proc = None
        self.unbound_conf = os.path.join(workdir, "unbound.conf")
        self.tsig_name = "pw-keydir"
        self.tsig_algorithm = "hmac-sha256"
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.trust_anchor = None
        os.makedirs(workdir, exist_ok=True)

    def write_zone_file(self, path, extra=()):
        """The zone every primary starts from (SOA, NS, two A records) plus extra lines."""
        z = self.zone
        lines = ["$TTL %d" % TTL,
                 "%s. IN SOA ns.%s. hostmaster.%s. 1 60 60 600 %d" % (z, z, z, TTL),
                 "%s. IN NS ns.%s." % (z, z),
                 "ns.%s. IN A 127.0.0.1" % z,
                 "www.%s. IN A 127.0.0.1" % z]
        lines += list(extra)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _check_running(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("%s exited with %s; see %s" % (self.kind, self.proc.returncode,
                                                               self.log_path))

    def _signed_soa(self):
        self._check_running()
        try:
            r = self.query(self.zone + ".", "SOA", dnssec=True)
        except Exception:
            return False
        return any(rr.rdtype == dns.rdatatype.RRSIG for rr in r.answer)

    def _wait_signed(self, timeout=20):
        net.wait_until(self._signed_soa, timeout, interval=0.05,
                       what="%s serving %s signed (see %s)" % (self.kind, self.zone,
                                                              self.log_path))
        self.trust_anchor = self._fetch_ksk()
        self._write_unbound_conf()

    def _fetch_ksk(self):
        r = self.query(self.zone + ".", "DNSKEY")
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.DNSKEY:
                for rd in rrset:
                    if rd.flags == 257:
                        return "%s. IN DNSKEY %s" % (self.zone, rd.to_text())
        raise RuntimeError("no KSK served for %s" % self.zone)

    def _write_unbound_conf(self):
        ta = os.path.join(self.dir, "ta.key")
        with open(ta, "w") as f:
            f.write(self.trust_anchor + "\n")
        lines = ["server:",
                 "    verbosity: 0",
                 "    username: \"\"",
                 "    chroot: \"\"",
                 "    directory: \"%s\"" % self.dir,
                 "    do-not-query-localhost: no",
                 "    do-ip6: no",
                 "    module-config: \"validator iterator\"",
                 "    qname-minimisation: no",
                 "    local-zone: \"test.\" nodefault",
                 "    trust-anchor-file: \"%s\"" % ta,
                 "stub-zone:",
                 "    name: \"%s\"" % self.zone,
                 "    stub-addr: 127.0.0.1@%d" % self.port]
        with open(self.unbound_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- what postwarden needs ---------------------------------------------

    def keydir_options(self):
        """Config keys (section_key form) for a postwarden that updates this zone."""
        return {"keydir_dns_server": "127.0.0.1:%d" % self.port,
                "keydir_zones": self.zone,
                "keydir_tsig_name": self.tsig_name,
                "keydir_tsig_algorithm": self.tsig_algorithm,
                "keydir_tsig_secret": self.tsig_secret,
                "keydir_ttl": "60"}

    # -- looking --------------------------------------------------------------

    def query(self, name, rtype, dnssec=False, timeout=2.0, tcp=True):
        q = dns.message.make_query(name, rtype, want_dnssec=dnssec)
        q.flags &= ~dns.flags.RD
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def rdatas(self, name, rtype):
        """The RDATA (wire bytes) the server gives for name/type, as a sorted list."""
        r = self.query(name, rtype)
        out = []
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rtype):
                out += [rd.to_wire() for rd in rrset]
        return sorted(out)

    def _keyring(self):
        return dns.tsigkeyring.from_text({self.tsig_name: self.tsig_secret})

    def axfr(self):
        """The zone's transfer with TSIG, as the list of its messages."""
        return list(dns.query.xfr("127.0.0.1", self.zone, port=self.port,
                                  keyring=self._keyring(), keyname=self.tsig_name,
                                  keyalgorithm=self.tsig_algorithm + ".", relativize=False))

    def records(self):
        """Every OPENPGPKEY/SMIMEA record in the zone (AXFR with TSIG): {(owner, type): [rdata]}."""
        out = {}
        for msg in self.axfr():
            for rrset in msg.answer:
                if rrset.rdtype in (dns.rdatatype.OPENPGPKEY, dns.rdatatype.SMIMEA):
                    key = (rrset.name.to_text().rstrip(".").lower(),
                           dns.rdatatype.to_text(rrset.rdtype))
                    out.setdefault(key, []).extend(rd.to_wire() for rd in rrset)
        return {k: sorted(v) for k, v in out.items()}

    def unbound_host(self, name, rtype, timeout=30):
        return subprocess.run(["unbound-host", "-C", self.unbound_conf, "-v", "-t", rtype, name],
                              capture_output=True, text=True, timeout=timeout)

    def send_update(self, build):
        """Send an RFC 2136 update signed with the directory's key; build(u) fills it in.
        Returns the rcode, or "BADKEY" when the server does not know the key."""
        u = dns.update.UpdateMessage(self.zone, keyring=self._keyring(), keyname=self.tsig_name,
                                     keyalgorithm=self.tsig_algorithm + ".")
        build(u)
        try:
            r = dns.query.tcp(u, "127.0.0.1", port=self.port, timeout=5)
        except dns.tsig.PeerBadKey:
            return "BADKEY"
        return r.rcode()

    def update(self, owner, rtype, rdata_text, keyname=None, delete_any=False):
        """Send an RFC 2136 update with dnspython (for ACL checks); returns the rcode."""
        def build(u):
            if delete_any:
                u.delete(owner + ".")
            else:
                u.add(owner + ".", 60, rtype, rdata_text)
        return self.send_update(build)

    def edit(self, remove=(), add=()):
        """Change the zone behind postwarden's back, with an update of the test's own.

        remove: (owner, type) pairs to delete; add: (owner, ttl, type, rdata-text) tuples."""
        def build(u):
            for owner, rtype in remove:
                u.delete(owner + ".", rtype)
            for owner, ttl, rtype, rdata in add:
                u.add(owner + ".", ttl, rtype, rdata)
        rc = self.send_update(build)
        if rc != dns.rcode.NOERROR:
            raise RuntimeError("%s refused the test's update: %s" % (self.kind, rc))
        # A server that signs after answering the update (BIND's inline signing) serves the
        # change a moment later: wait for it.
        for owner, rtype in remove:
            self.wait_rdatas(owner + ".", rtype, [])
        for owner, _, rtype, _ in add:
            net.wait_until(lambda: self.rdatas(owner + ".", rtype), 10, interval=0.05,
                           what="%s serving the test's %s at %s" % (self.kind, rtype, owner))

    def reset(self):
        """Remove every OPENPGPKEY/SMIMEA record, so that a test starts from an empty directory."""
        have = self.records()
        if have:
            Primary.edit(self, remove=list(have))
        net.wait_until(lambda: self.records() == {}, 10, interval=0.05,
                       what="%s's zone emptied of keys" % self.kind)

    def wait_records(self, want, timeout=10):
        """Wait until the transfer holds exactly want (as records() gives it); return it."""
        deadline = time.monotonic() + timeout
        while True:
            have = self.records()
            if have == want or time.monotonic() > deadline:
                return have
            time.sleep(0.05)

    def wait_rdatas(self, name, rtype, want, timeout=10):
        """Wait until the server answers exactly want (sorted list of wire RDATA) at name."""
        want = sorted(want)
        deadline = time.monotonic() + timeout
        while True:
            have = self.rdatas(name, rtype)
            if have == want or time.monotonic() > deadline:
                return have
            time.sleep(0.05)


class KeyZone(Primary):
    """One knotd serving `zone` for the key directory."""

    kind = "knot"

    def __init__(self, workdir, zone="keys.test", mode="nsec"):
        assert mode in ("nsec", "nsec3", "onlinesign")
        super().__init__(workdir, zone)
        self.mode = mode
        self.conf = os.path.join(workdir, "knot.conf")
        self.log_path = os.path.join(workdir, "knot.log")
        self.zone_path = os.path.join(workdir, "zones", zone + ".zone")
        # A unix socket path has at most 107 bytes: the control socket gets a short one.
        self.sockdir = tempfile.mkdtemp(prefix="pwk", dir="/tmp")
        self.sock = os.path.join(self.sockdir, "knot.sock")

    # -- lifecycle --------------------------------------------------------

    def _signing(self):
        if self.mode == "onlinesign":
            return ("    module: mod-onlinesign/pw\n")
        return ("    dnssec-signing: on\n"
                "    dnssec-policy: pw\n")

    def _write_conf(self):
        nsec3 = "on" if self.mode == "nsec3" else "off"
        text = """\
server:
    rundir: {d}/run
    listen: 127.0.0.1@{port}
    user: root:root
database:
    storage: {d}/db
control:
    listen: {sock}
log:
  - target: {d}/knot.log
    any: info
key:
  - id: {key}
    algorithm: {alg}
    secret: {secret}
acl:
  - id: keydir-update
    key: {key}
    action: update
    update-type: [OPENPGPKEY, SMIMEA]
    update-owner: name
    update-owner-match: sub
    update-owner-name: [_openpgpkey, _smimecert]
  - id: keydir-transfer
    key: {key}
    action: transfer
keystore:
  - id: ks
    config: {d}/keys
policy:
  - id: pw
    algorithm: ecdsap256sha256
    keystore: ks
    ksk-lifetime: 0
    zsk-lifetime: 0
    rrsig-lifetime: 30d
    rrsig-refresh: 7d
    nsec3: {nsec3}
    nsec3-iterations: 0
    nsec3-salt-length: 0
    nsec3-opt-out: off
    dnskey-ttl: {ttl}
    zone-max-ttl: {ttl}
mod-onlinesign:
  - id: pw
    policy: pw
template:
  - id: default
    storage: {d}/zones
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
    semantic-checks: off
zone:
  - domain: {zone}
    acl: [keydir-update, keydir-transfer]
{signing}""".format(d=self.dir, port=self.port, key=self.tsig_name, alg=self.tsig_algorithm,
                    secret=self.tsig_secret, ttl=TTL, nsec3=nsec3, zone=self.zone,
                    signing=self._signing(), sock=self.sock)
        with open(self.conf, "w") as f:
            f.write(text)

    def _write_zone(self, extra=()):
        self.write_zone_file(self.zone_path, extra)

    def start(self, extra_records=()):
        for sub in ("run", "db", "keys", "zones"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.port = net.free_port()
        self._write_conf()
        self._write_zone(extra_records)
        self.proc = subprocess.Popen(["knotd", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "knotd.stderr"), "w"))
        self._wait_signed()
        return self

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def knotc(self, *args):
        r = subprocess.run(["knotc", "-c", self.conf, "-b"] + list(args), capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0 or "error" in r.stdout.lower():
            raise RuntimeError("knotc %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def edit(self, remove=(), add=()):
        """Change the zone out of band, through knotc's zone transaction (no ACL involved).

        remove: (owner, type) pairs to delete; add: (owner, ttl, type, rdata-text) tuples."""
        self.knotc("zone-begin", self.zone)
        try:
            for owner, rtype in remove:
                self.knotc("zone-unset", self.zone, owner + ".", rtype)
            for owner, ttl, rtype, rdata in add:
                self.knotc("zone-set", self.zone, owner + ".", str(ttl), rtype, rdata)
            self.knotc("zone-commit", self.zone)
        except Exception:
            subprocess.run(["knotc", "-c", self.conf, "-b", "zone-abort", self.zone],
                           capture_output=True, timeout=30)
            raise

