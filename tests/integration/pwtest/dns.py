"""Knot DNS serving the test zones on 127.0.0.1:<port>, and an unbound.conf for libunbound.

Three kinds of zone:
  signed    DNSSEC-signed by Knot (ECDSA P-256); the unbound.conf carries the zone's
            KSK as trust anchor, so answers validate as SECURE.
  unsigned  served without signatures and covered by no trust anchor: INSECURE.
  bogus     served without signatures, but the unbound.conf holds a DS trust anchor for
            it (a key that does not exist): every answer is BOGUS.

Tests replace a zone's records with set_zone(zone, records); the call returns once Knot
serves the new version (a generation TXT record at _pwtest-gen.<zone> is polled).
"""

import os
import subprocess
import time

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from . import net

DEFAULT_SIGNED = ("example.test", "other.test")
DEFAULT_UNSIGNED = ("insecure.test",)
DEFAULT_BOGUS = ("bogus.test",)
TTL = 2


def _abs(name, zone):
    """Make a record owner absolute: '@' is the apex, relative names get the zone appended."""
    if name == "@":
        return zone + "."
    if name.endswith("."):
        return name
    if name == zone or name.endswith("." + zone):
        return name + "."
    return "%s.%s." % (name, zone)


def record_line(rec, zone):
    """A zone-file line from ('name', 'TYPE', 'rdata') or a ready string."""
    if isinstance(rec, str):
        return rec
    name, rtype, rdata = rec
    return "%s %d IN %s %s" % (_abs(name, zone), TTL, rtype, rdata)


class Knot:
    """One knotd for the whole test session."""

    def __init__(self, workdir, signed=DEFAULT_SIGNED, unsigned=DEFAULT_UNSIGNED,
                 bogus=DEFAULT_BOGUS):
        self.dir = workdir
        self.signed = tuple(signed)
        self.unsigned = tuple(unsigned)
        self.bogus = tuple(bogus)
        self.zones = self.signed + self.unsigned + self.bogus
        self.port = None
        self.proc = None
        self.conf = os.path.join(workdir, "knot.conf")
        self.log_path = os.path.join(workdir, "knot.log")
        self.unbound_conf = os.path.join(workdir, "unbound.conf")
        self.zone_dir = os.path.join(workdir, "zones")
        self.trust_anchors = {}
        self._gen = {z: 0 for z in self.zones}
        self._base = {}

    # -- lifecycle --------------------------------------------------------

    def _write_conf(self):
        d = self.dir
        zones = []
        for z in self.zones:
            zones.append("  - domain: %s" % z)
            if z in self.signed:
                zones.append("    dnssec-signing: on")
                zones.append("    dnssec-policy: fast")
        text = """\
server:
    rundir: {d}/run
    listen: 127.0.0.1@{port}
    user: root:root
database:
    storage: {d}/db
control:
    listen: {d}/run/knot.sock
log:
  - target: {d}/knot.log
    any: info
keystore:
  - id: ks
    config: {d}/keys
policy:
  - id: fast
    algorithm: ecdsap256sha256
    keystore: ks
    ksk-lifetime: 0
    zsk-lifetime: 0
    rrsig-lifetime: 30d
    rrsig-refresh: 7d
    nsec3: off
    dnskey-ttl: {ttl}
    zone-max-ttl: {ttl}
template:
  - id: default
    storage: {d}/zones
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
{zones}
""".format(d=d, port=self.port, ttl=TTL, zones="\n".join(zones))
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        for sub in ("run", "db", "keys", "zones"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        self.port = net.free_port()
        self._write_conf()
        for z in self.zones:
            self._write_zone(z, [])
        self.proc = subprocess.Popen(["knotd", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "knotd.stderr"), "w"))
        for z in self.zones:
            self._wait_served(z, self._gen[z], timeout=20)
        for z in self.signed:
            self.trust_anchors[z] = self._fetch_ksk(z)
        self._write_unbound_conf()
        return self

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None

    # -- zone content -----------------------------------------------------

    def _write_zone(self, zone, records):
        self._gen[zone] += 1
        gen = self._gen[zone]
        lines = [
            "$TTL %d" % TTL,
            "%s. IN SOA ns.%s. hostmaster.%s. %d 60 60 600 %d" % (zone, zone, zone, gen, TTL),
            "%s. IN NS ns.%s." % (zone, zone),
            "ns.%s. IN A 127.0.0.1" % zone,
            '_pwtest-gen.%s. IN TXT "%d"' % (zone, gen),
        ]
        lines += [record_line(r, zone) for r in records]
        path = os.path.join(self.zone_dir, zone + ".zone")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
        return gen

    def set_zone(self, zone, records, wait=True):
        """Replace every record of zone (besides SOA/NS) and wait until Knot serves them.

        records: iterable of ("name", "TYPE", "rdata") with name relative to the zone,
        "@" or absolute, or ready zone-file lines.
        """
        if zone not in self.zones:
            raise KeyError("%s is not a test zone (have %s)" % (zone, ", ".join(self.zones)))
        records = list(records)
        self._base[zone] = records
        gen = self._write_zone(zone, records)
        r = subprocess.run(["knotc", "-c", self.conf, "-b", "zone-reload", zone],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("knotc zone-reload %s failed: %s%s" % (zone, r.stdout, r.stderr))
        if wait:
            self._wait_served(zone, gen, timeout=10)

    def add_records(self, zone, records):
        """Add records to what set_zone last put into zone."""
        self.set_zone(zone, self._base.get(zone, []) + list(records))

    def clear(self):
        """Empty every zone (back to SOA/NS only)."""
        for z in self.zones:
            if self._base.get(z):
                self.set_zone(z, [])

    # -- queries ----------------------------------------------------------

    def query(self, name, rtype, dnssec=False, timeout=1.0):
        """Ask Knot directly (no validation); returns the dns.message response."""
        q = dns.message.make_query(name, rtype, want_dnssec=dnssec)
        q.flags &= ~dns.flags.RD
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def _served_gen(self, zone):
        try:
            r = self.query("_pwtest-gen.%s." % zone, "TXT", dnssec=zone in self.signed)
        except Exception:
            return None
        gen = None
        signed = False
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                gen = int(b"".join(rrset[0].strings))
            elif rrset.rdtype == dns.rdatatype.RRSIG:
                signed = True
        if zone in self.signed and not signed:
            return None
        return gen

    def _wait_served(self, zone, gen, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("knotd exited with %s; see %s" % (self.proc.returncode,
                                                                      self.log_path))
            g = self._served_gen(zone)
            if g is not None and g >= gen:
                return
            time.sleep(0.05)
        raise TimeoutError("Knot does not serve generation %d of %s; see %s"
                           % (gen, zone, self.log_path))

    def _fetch_ksk(self, zone):
        r = self.query(zone + ".", "DNSKEY")
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.DNSKEY:
                for rd in rrset:
                    if rd.flags == 257:
                        return "%s. IN DNSKEY %s" % (zone, rd.to_text())
        raise RuntimeError("no KSK served for %s" % zone)

    # -- unbound.conf -----------------------------------------------------

    def _write_unbound_conf(self):
        lines = [
            "server:",
            "    verbosity: 0",
            "    val-log-level: 2",
            "    username: \"\"",
            "    chroot: \"\"",
            "    directory: \"%s\"" % self.dir,
            "    do-not-query-localhost: no",
            "    do-ip6: no",
            "    module-config: \"validator iterator\"",
            "    qname-minimisation: no",
            "    trust-anchor-signaling: no",
            "    root-key-sentinel: no",
            # The test zones sit under .test, which unbound answers locally by default.
            "    local-zone: \"test.\" nodefault",
            "    infra-host-ttl: 5",
        ]
        for z in self.signed:
            path = os.path.join(self.dir, "ta-%s.key" % z)
            with open(path, "w") as f:
                f.write(self.trust_anchors[z] + "\n")
            lines.append("    trust-anchor-file: \"%s\"" % path)
        for z in self.bogus:
            # A DS for a key the zone does not have: the chain of trust cannot be built.
            path = os.path.join(self.dir, "ta-%s.key" % z)
            with open(path, "w") as f:
                f.write("%s. IN DS 4711 13 2 %s\n" % (z, "5a" * 32))
            lines.append("    trust-anchor-file: \"%s\"" % path)
        for z in self.zones:
            lines += ["stub-zone:",
                      "    name: \"%s\"" % z,
                      "    stub-addr: 127.0.0.1@%d" % self.port]
        with open(self.unbound_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def unbound_host(self, name, rtype="A", timeout=20):
        """Run unbound-host -C <unbound.conf> -v -t TYPE name; returns CompletedProcess."""
        return subprocess.run(["unbound-host", "-C", self.unbound_conf, "-v", "-t", rtype, name],
                              capture_output=True, text=True, timeout=timeout)
