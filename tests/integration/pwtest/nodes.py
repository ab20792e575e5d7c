"""Several postwarden nodes on one PostgreSQL database, for the tests of issue "several
nodes": a fresh migrated database, relays that share it, a TCP forwarder that can cut one
node off from the database, and reading the timestamps of log lines.

The forwarder is a fake only in the sense that it stands for the network: PostgreSQL and
postwarden are the real programs on either side of it.
"""

import calendar
import os
import re
import select
import socket
import threading
import time

from . import relay as pw_relay

SCHEMA_C = os.path.join(pw_relay.REPO_ROOT, "src", "core", "schema.c")


# -- the schema ------------------------------------------------------------------------

def _c_strings(text):
    """The concatenated C string literals of text (a migration's source)."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', text):
        out.append(re.sub(r"\\(.)", lambda e: {"n": "\n", "t": "\t"}.get(e.group(1),
                                                                        e.group(1)),
                          m.group(1)))
    return "".join(out)


def _split_top(body):
    """Split an initializer list at its top-level commas (outside string literals)."""
    parts, cur, in_str, esc = [], [], False, False
    for ch in body:
        if in_str:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        if ch == "," and not in_str:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def postgres_migrations():
    """postwarden's PostgreSQL migrations, read from src/core/schema.c."""
    src = open(SCHEMA_C).read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    macros = {m.group(1): _c_strings(m.group(2)) for m in re.finditer(
        r"#define (SCHEMA_\w+)((?:.*\\\n)*.*)", src)}
    body = src[src.index("postgres_migrations[] = {") + 25:]
    body = body[:body.index("};")]
    out = []
    for part in _split_top(body):
        name = part.strip()
        out.append(macros[name] if name in macros else _c_strings(part))
    return out


def migrate(postgres, url, relay=None):
    """Bring the database of url to postwarden's schema: `postwarden db migrate` when the
    program has it, else the migrations of schema.c applied with psql the way db.c does
    (each one in a transaction with its version)."""
    if relay is not None:
        r = relay.pw("db", "migrate")
        if r.returncode == 0:
            return
    dbname = url.rsplit("/", 1)[1]
    for v, sql in enumerate(postgres_migrations(), 1):
        postgres.psql("BEGIN; %s; CREATE TABLE IF NOT EXISTS postwarden_schema (version "
                      "integer NOT NULL); DELETE FROM postwarden_schema; INSERT INTO "
                      "postwarden_schema VALUES (%d); COMMIT;" % (sql, v), tcp=True,
                      password=postgres.password,
                      dbname=dbname)


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
    migrate(postgres, url)
    return url, password_file(postgres)


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
