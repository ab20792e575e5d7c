"""PowerDNS Authoritative (pdns_server with the gsqlite3 backend) as the key directory's
primary, for the tests: a private pdns_server on 127.0.0.1:<port> with its own config
directory and SQLite database (schema from pdns-backend-sqlite3), RFC 2136 updates on, and
one zone that the directory's TSIG key may update (TSIG-ALLOW-DNSUPDATE) and transfer
(TSIG-ALLOW-AXFR, and no address may transfer without the key). `pdnsutil secure-zone`
gives the zone a key; PowerDNS signs every answer as it sends it (live signing).

PowerDNS has no per-type update rights of its own: the key may change any record of the
zone (a Lua update policy could narrow it; the tests keep the plain setup docs/keydir.md
shows). Its caches keep their defaults: an update empties them for the zone.
"""

import os
import sqlite3
import subprocess

from . import net
from .keyzone import TTL, Primary

SCHEMAS = ("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
           "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")

CONF = """\
launch=gsqlite3
gsqlite3-database={d}/pdns.sqlite3
gsqlite3-dnssec=yes
local-address=127.0.0.1
local-port={port}
socket-dir={d}
daemon=no
guardian=no
write-pid=no
dnsupdate=yes
allow-dnsupdate-from=127.0.0.0/8
allow-axfr-ips=
security-poll-suffix=
loglevel=6
"""


class PdnsZone(Primary):
    """One pdns_server serving `zone` for the key directory."""

    kind = "powerdns"

    def __init__(self, workdir, zone="keys.test"):
        super().__init__(workdir, zone)
        self.conf = os.path.join(workdir, "pdns.conf")
        self.log_path = os.path.join(workdir, "pdns.log")

    def pdnsutil(self, *args):
        r = subprocess.run(["pdnsutil", "--config-dir=" + self.dir] + list(args),
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("pdnsutil %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def _create_db(self):
        schema = next(p for p in SCHEMAS if os.path.exists(p))
        db = sqlite3.connect(os.path.join(self.dir, "pdns.sqlite3"))
        with open(schema) as f:
            db.executescript(f.read())
        db.close()

    def _load_zone(self):
        z = self.zone
        path = os.path.join(self.dir, z + ".zone")
        self.write_zone_file(path)
        self.pdnsutil("load-zone", z, path)
        self.pdnsutil("secure-zone", z)
        self.pdnsutil("import-tsig-key", self.tsig_name, self.tsig_algorithm, self.tsig_secret)
        self.pdnsutil("set-meta", z, "TSIG-ALLOW-DNSUPDATE", self.tsig_name)
        self.pdnsutil("set-meta", z, "TSIG-ALLOW-AXFR", self.tsig_name)
        # Each update raises the serial, so that secondaries see the change.
        self.pdnsutil("set-meta", z, "SOA-EDIT-DNSUPDATE", "INCREASE")
        self.pdnsutil("rectify-zone", z)

    def start(self):
        self.port = net.free_port()
        with open(self.conf, "w") as f:
            f.write(CONF.format(d=self.dir, port=self.port))
        self._create_db()
        self._load_zone()
        # pdns_server logs to standard error when it is not a daemon.
        self.proc = subprocess.Popen(["pdns_server", "--config-dir=" + self.dir],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "w"))
        self._wait_signed()
        return self

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None
