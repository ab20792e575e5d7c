"""Several postwarden nodes on one PostgreSQL database: a fresh migrated database, relays that share it, a TCP forwarder that can cut one
node off from the database, and reading the timestamps of log lines.

The forwarder is a fake only in the sense that it stands for the network: PostgreSQL and
postwarden are the real programs on either side of it.
"""

import calendar
import os
import re
import select
import socket
import subprocess
import threading
import time

from . import relay as pw_relay

# -- the schema ------------------------------------------------------------------------

def migrate(url, pwfile, workdir):
    """Bring the database of url to postwarden's schema with `postwarden db migrate` (the
    operator's step on PostgreSQL: serve refuses an older schema)."""
    os.makedirs(workdir, exist_ok=True)
    conf = os.path.join(workdir, "migrate.conf")
    with open(conf, "w") as f:
        f.write("[server]\nstate_dir = %s\n\n[database]\nurl = %s\npassword_file = %s\n" % (
            os.path.join(workdir, "state"), url, pwfile))
    r = subprocess.run([pw_relay.binary(), "-c", conf, "db", "migrate"], capture_output=True,
                       text=True, env=pw_relay.daemon_env(), timeout=60)
    if r.returncode != 0:
        raise RuntimeError("postwarden db migrate exited %d: %s" % (r.returncode, r.stderr))


def password_file(postgres):
    """A password file for the postwarden role that matches any host, port and database
    (the fixture's names its own database and port; nodes reach new databases, some
    through a forwarder on another port)."""
    path = os.path.join(postgres.dir, "pgpass-any")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("*:*:*:%s:%s\n" % (postgres.user, postgres.password))
    return path


def shared_database(postgres):
    """A fresh database with postwarden's schema: (url, password_file)."""
    url = postgres.new_database("nodes")
    pwfile = password_file(postgres)
    migrate(url, pwfile, os.path.join(postgres.dir, "migrate-" + url.rsplit("/", 1)[1]))
    return url, pwfile


# -- log lines -------------------------------------------------------------------------

STAMP_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) ")


def stamp(line):
    """Unix time of a log line's timestamp (whole seconds, UTC), or None."""
    m = STAMP_RE.match(line)
    if not m:
        return None
    return calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ"))


def events(relay, event):
    """(time, line) of the relay's log lines of event, oldest first."""
    return [(stamp(l), l) for l in relay.log_lines(event) if stamp(l) is not None]


# -- the network between a node and the database ----------------------------------------

class Forwarder:
    """TCP forwarder 127.0.0.1:<port> -> (host, port). cut() stops every byte both ways
    and holds the connections open, as a network that went silent (nothing is refused,
    nothing arrives); new connections are accepted and get nothing either. heal() closes
    what the cut held (those connections are broken) and forwards new ones again."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.frozen = False
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _accept(self):
        c, _ = self.lsock.accept()
        with self.lock:
            if self.frozen:
                self.pairs.append((c, None))
                return
        try:
            s = socket.create_connection(self.target, timeout=5)
        except OSError:
            c.close()
            return
        with self.lock:
            self.pairs.append((c, s))

    def _run(self):
        while not self.stopping:
            with self.lock:
                socks = [self.lsock]
                if not self.frozen:
                    for a, b in self.pairs:
                        socks += [a, b] if b is not None else [a]
            r, _, _ = select.select(socks, [], [], 0.05)
            for s in r:
                if s is self.lsock:
                    self._accept()
                    continue
                with self.lock:
                    if self.frozen:
                        continue
                    pair = next((p for p in self.pairs if s in p), None)
                if pair is None:
                    continue
                other = pair[1] if s is pair[0] else pair[0]
                try:
                    data = s.recv(65536)
                    if data and other is not None:
                        other.sendall(data)
                except OSError:
                    data = b""
                if not data:
                    self._drop(pair)

    def _drop(self, pair):
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        for s in pair:
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            self.frozen = True

    def heal(self):
        with self.lock:
            held, self.pairs = self.pairs, []
            self.frozen = False
        for pair in held:
            for s in pair:
                if s is not None:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.heal()
        self.lsock.close()
