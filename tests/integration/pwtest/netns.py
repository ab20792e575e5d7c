"""A private network namespace for key lookup tests, and the authoritative DNS inside it.

GnuPG's dirmngr resolves through /etc/resolv.conf and verifies WKD servers only against
/etc/ssl/certs/ca-certificates.crt. Neither can be pointed elsewhere, so the lookup tests
run dirmngr (and the servers it talks to) in a network namespace of their own:

  - `ip netns add pw-XXXX`, loopback up, 127.0.0.2/8 added to lo (with 127.0.0.1 only,
    glibc's AI_ADDRCONFIG finds no usable address and getaddrinfo fails);
  - /etc/netns/pw-XXXX/resolv.conf says `nameserver 127.0.0.1`: `ip netns exec` binds it
    over /etc/resolv.conf for every process started in the namespace;
  - commands that must trust the test CA run in a private mount namespace as well
    (`unshare --mount --propagation private`) where the CA bundle is bind-mounted over
    /etc/ssl/certs/ca-certificates.crt; the host's file is never touched.

NsKnot is Knot DNS on 127.0.0.1:53 inside the namespace, serving one DNSSEC-signed zone
that a TSIG key may update (OPENPGPKEY and SMIMEA records), as postwarden's key directory
does. Its zone-file and wait logic follow pwtest/dns.py, which is bound to a host port.
"""

import base64
import os
import secrets
import shutil
import signal
import subprocess
import time

from . import net

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Run "$@" after binding $0 over the system CA bundle (in the private mount namespace).
_BIND_CA = 'mount --bind "$0" %s && exec "$@"' % SYSTEM_CA_BUNDLE


class NetNS:
    """One network namespace with loopback 127.0.0.1 and 127.0.0.2 and its own resolv.conf."""

    def __init__(self, nameserver="127.0.0.1", extra_addrs=("127.0.0.2",)):
        self.name = "pw-" + secrets.token_hex(4)
        self.etc_dir = os.path.join("/etc/netns", self.name)
        self.nameserver = nameserver
        self.extra_addrs = tuple(extra_addrs)
        self.created = False
        self._procs = []

    def create(self):
        _run(["ip", "netns", "add", self.name])
        self.created = True
        os.makedirs(self.etc_dir, exist_ok=True)
        with open(os.path.join(self.etc_dir, "resolv.conf"), "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:2\n" % self.nameserver)
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        for a in self.extra_addrs:
            self.run(["ip", "addr", "add", a + "/8", "dev", "lo"], check=True)
        return self

    def argv(self, cmd, ca_bundle=None):
        """The argv that runs cmd in this namespace (with ca_bundle as the system CA file)."""
        base = ["ip", "netns", "exec", self.name]
        if ca_bundle is None:
            return base + list(cmd)
        return base + ["unshare", "--mount", "--propagation", "private",
                       "sh", "-c", _BIND_CA, ca_bundle] + list(cmd)

    def run(self, cmd, ca_bundle=None, check=False, timeout=60, **kw):
        """subprocess.run(cmd) inside the namespace; text output captured by default."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        r = subprocess.run(self.argv(cmd, ca_bundle), timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("in netns %s: %s exited %d\nstdout: %s\nstderr: %s" % (
                self.name, " ".join(cmd), r.returncode, r.stdout, r.stderr))
        return r

    def popen(self, cmd, ca_bundle=None, **kw):
        """subprocess.Popen(cmd) inside the namespace; the process is killed by delete()."""
        p = subprocess.Popen(self.argv(cmd, ca_bundle), **kw)
        self._procs.append(p)
        return p

    def pids(self):
        """Process ids running in the namespace (daemons spawned by commands run here)."""
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split() if p.isdigit()]

    def delete(self):
        """Stop what still runs in the namespace, then remove it and its /etc/netns dir."""
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
        for p in self._procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.created:
            # Daemons the tests started here by way of other programs (dirmngr, gpg-agent).
            for sig in (signal.SIGTERM, signal.SIGKILL):
                left = self.pids()
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 3
                while left and self.pids() and time.monotonic() < deadline:
                    time.sleep(0.05)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self.created = False
        shutil.rmtree(self.etc_dir, ignore_errors=True)


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s exited %d: %s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                    r.stderr))
    return r


class NsKnot:
    """knotd on 127.0.0.1:53 in a NetNS, serving one signed zone updatable with a TSIG key.

    records: initial ("owner", "TYPE", "rdata") tuples (owner relative to the zone, "@" or
    absolute). The TSIG key (name, algorithm, secret) may add and delete OPENPGPKEY and
    SMIMEA records anywhere in the zone, in one ACL rule (Knot checks each record of an
    update against one rule at a time).
    """

    TTL = 2

    def __init__(self, netns, workdir, zone="example.test", records=(),
                 tsig_name="pw-keydir", tsig_algorithm="hmac-sha256"):
        self.ns = netns
        self.dir = workdir
        self.zone = zone
        self.records = list(records)
        self.tsig_name = tsig_name
        self.tsig_algorithm = tsig_algorithm
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.conf = os.path.join(workdir, "knot.conf")
        self.log_path = os.path.join(workdir, "knot.log")
        self.proc = None
        self.server = "127.0.0.1:53"

    def _write(self):
        for sub in ("run", "db", "keys", "zones"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        d = self.dir
        with open(self.conf, "w") as f:
            f.write("""\
server:
    rundir: {d}/run
    listen: 127.0.0.1@53
    user: root:root
database:
    storage: {d}/db
control:
    listen: {d}/run/knot.sock
log:
  - target: {d}/knot.log
    any: info
key:
  - id: {kn}
    algorithm: {ka}
    secret: {ks}
acl:
  - id: keydir-update
    key: {kn}
    action: update
    update-type: [OPENPGPKEY, SMIMEA]
keystore:
  - id: ks
    config: {d}/keys
policy:
  - id: fast
    algorithm: ecdsap256sha256
    keystore: ks
    ksk-lifetime: 0
    zsk-lifetime: 0
    nsec3: off
    dnskey-ttl: {ttl}
    zone-max-ttl: 3600
template:
  - id: default
    storage: {d}/zones
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: {z}
    dnssec-signing: on
    dnssec-policy: fast
    acl: keydir-update
""".format(d=d, kn=self.tsig_name, ka=self.tsig_algorithm, ks=self.tsig_secret,
           ttl=self.TTL, z=self.zone))
        z = self.zone
        lines = ["$TTL %d" % self.TTL,
                 "%s. IN SOA ns.%s. hostmaster.%s. 1 60 60 600 %d" % (z, z, z, self.TTL),
                 "%s. IN NS ns.%s." % (z, z),
                 "ns.%s. IN A 127.0.0.1" % z]
        for owner, rtype, rdata in self.records:
            lines.append("%s %d IN %s %s" % (self.absolute(owner), self.TTL, rtype, rdata))
        with open(os.path.join(self.dir, "zones", z + ".zone"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def absolute(self, owner):
        if owner == "@":
            return self.zone + "."
        if owner.endswith("."):
            return owner
        return "%s.%s." % (owner, self.zone)

    def start(self, timeout=20):
        self._write()
        self.proc = self.ns.popen(["knotd", "-c", self.conf], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(self.dir, "knotd.stderr"), "w"))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("knotd exited with %s; see %s" % (self.proc.returncode,
                                                                      self.log_path))
            if self._signed_soa():
                return self
            if time.monotonic() > deadline:
                raise TimeoutError("knotd in %s serves no signed %s; see %s"
                                   % (self.ns.name, self.zone, self.log_path))
            time.sleep(0.1)

    def _signed_soa(self):
        r = self.dig(self.zone + ".", "SOA", "+dnssec", "+timeout=1", "+retry=0")
        return (r.returncode == 0 and "status: NOERROR" in r.stdout and
                any(f.split()[3:4] == ["RRSIG"] for f in r.stdout.splitlines()))

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None

    def dig(self, name, rtype, *opts):
        """kdig @127.0.0.1 inside the namespace (full output)."""
        return self.ns.run(["kdig", "@127.0.0.1", "-p", "53", "-t", rtype, name] + list(opts),
                           timeout=20)

    def answer(self, name, rtype, *opts):
        """[(owner, type, rdata)] of the answer section for name/rtype (kdig +short-like)."""
        r = self.dig(name, rtype, "+noall", "+answer", "+nocrypto", *opts)
        out = []
        for line in r.stdout.splitlines():
            f = line.split(None, 4)
            if len(f) == 5 and not line.startswith(";"):
                out.append((f[0], f[3], f[4]))
        return out

    def records_of_type(self, rtype):
        """{owner: [rdata]} of every rtype record in the zone, read through knotc."""
        r = subprocess.run(["knotc", "-c", self.conf, "zone-read", self.zone],
                           capture_output=True, text=True, timeout=20)
        out = {}
        for line in r.stdout.splitlines():
            # "[example.test.] owner ttl TYPE rdata"
            f = line.split(None, 4)
            if len(f) == 5 and f[3] == rtype:
                out.setdefault(f[1].lower(), []).append(f[4])
        return out

    def nsupdate(self, commands):
        """Send an RFC 2136 update with knsupdate (signed with the TSIG key) from inside
        the namespace; commands are knsupdate lines such as 'add NAME TTL TYPE RDATA'."""
        script = ["server 127.0.0.1 53",
                  "zone %s." % self.zone,
                  "key %s:%s %s" % (self.tsig_algorithm, self.tsig_name, self.tsig_secret)]
        script += list(commands) + ["send", "answer"]
        r = self.ns.run(["knsupdate"], input="\n".join(script) + "\n", timeout=20)
        if r.returncode != 0 or "status: NOERROR" not in r.stdout:
            raise RuntimeError("knsupdate failed (%d)\nstdout: %s\nstderr: %s"
                               % (r.returncode, r.stdout, r.stderr))
        return r
