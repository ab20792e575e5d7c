"""BIND 9 (Debian's named) as the key directory's primary, for the tests: a private named on
127.0.0.1:<port> with its own config and working directory, no control channel, and one
dynamic zone that the directory's TSIG key may update (OPENPGPKEY under _openpgpkey, SMIMEA
under _smimecert, by update-policy) and transfer. The zone is signed inline by a
dnssec-policy (one ECDSA P-256 CSK): updates go to the unsigned copy, named signs them a
moment after its answer, so the tests wait for what they look at.

sig-signing-signatures is raised from 10 to 2000: named applies a change to the signed copy
in steps of that many signatures, and an update that arrives while an earlier one is still
being applied in steps is lost from the signed zone for good (BIND 9.18.49: of three
updates of 30 names each, sent one after the other, the records of one never appear).
2000 signatures cover the largest update postwarden sends (60 KB, at most a few hundred
names, about three signatures per name), so every update is applied in one step.

The configuration written here is the one docs/keydir.md shows.
"""

import os
import shutil
import subprocess

from . import net
from .keyzone import TTL, Primary

CONF = """\
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
logging {{
    channel file {{ file "{d}/named.log"; severity info; print-time yes; print-category yes; }};
    category default {{ file; }};
}};
key "{key}" {{
    algorithm {alg};
    secret "{secret}";
}};
dnssec-policy "keydir" {{
    keys {{ csk lifetime unlimited algorithm ecdsap256sha256; }};
    dnskey-ttl {ttl};
    max-zone-ttl 3600;
}};
zone "{zone}" {{
    type primary;
    file "{d}/{zone}.zone";
    key-directory "{d}/keys";
    dnssec-policy "keydir";
    inline-signing yes;
    sig-signing-signatures 2000;
    update-policy {{
        grant {key} wildcard *._openpgpkey.{zone}. OPENPGPKEY;
        grant {key} wildcard *._smimecert.{zone}. SMIMEA;
    }};
    allow-transfer {{ key {key}; }};
}};
"""


class BindZone(Primary):
    """One named serving `zone` for the key directory."""

    kind = "bind"

    def __init__(self, workdir, zone="keys.test"):
        super().__init__(workdir, zone)
        self.conf = os.path.join(workdir, "named.conf")
        self.log_path = os.path.join(workdir, "named.log")

    def _write_conf(self):
        with open(self.conf, "w") as f:
            f.write(CONF.format(d=self.dir, port=self.port, key=self.tsig_name,
                                alg=self.tsig_algorithm, secret=self.tsig_secret, ttl=TTL,
                                zone=self.zone))

    def start(self):
        os.makedirs(os.path.join(self.dir, "keys"), exist_ok=True)
        self.port = net.free_port()
        self._write_conf()
        self.write_zone_file(os.path.join(self.dir, self.zone + ".zone"))
        # Debian's AppArmor profile for /usr/sbin/named (enforced on a Debian 12 machine,
        # not in a container) lets it read only /etc/bind and /var/{lib,cache}/bind; a copy
        # of the binary is not bound to that profile and may use the test's directory.
        named = os.path.join(self.dir, "named")
        shutil.copy2(shutil.which("named") or "/usr/sbin/named", named)
        # -f: foreground with the configured logging; running as root, named keeps its user.
        self.proc = subprocess.Popen([named, "-f", "-4", "-n", "1", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "named.stderr"), "w"))
        self._wait_signed()
        return self

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None
