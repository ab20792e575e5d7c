"""postwarden's database as the tests see it, whichever engine holds it.

A Database is a URL ("sqlite:PATH" or "postgresql://...") with its password file. Tests read
(and, to set up a situation, write) rows with rows()/execute(), written once with SQLite's
"?" placeholders: on SQLite through the sqlite3 module, on PostgreSQL through psql with the
values written in as literals (no Python driver is needed), each row as a dict.

fresh() gives every test its own database on the engine the suite runs on: None (SQLite in
the caller's state_dir) unless the conftest set FACTORY (PW_TEST_DB=postgresql), which makes
a database with postwarden's schema already migrated (as an operator runs `postwarden db
migrate` before serve on PostgreSQL).
"""

import json
import os
import re
import sqlite3
import subprocess

from . import postgres as pw_postgres

# Set by the conftest with PW_TEST_DB=postgresql: a function returning a fresh Database.
FACTORY = None


class Database:
    def __init__(self, url, password_file=None, local_url=None):
        """local_url: the same PostgreSQL database over the server's unix socket, for
        postwarden run in a network namespace of its own (which has no way to the
        server's loopback port)."""
        self.url = url
        self.password_file = password_file
        self.local_url = local_url

    @property
    def engine(self):
        return "sqlite" if self.url.startswith("sqlite:") else "postgresql"

    def config(self, local=False):
        """The [database] section's keys for this database (local: by unix socket)."""
        kv = {"url": self.local_url if local and self.local_url else self.url}
        if self.password_file:
            kv["password_file"] = self.password_file
        return kv

    def rows(self, sql, params=()):
        """The rows of a query as dicts (column name -> value)."""
        if self.engine == "sqlite":
            con = sqlite3.connect("file:%s?mode=ro" % self.url[len("sqlite:"):], uri=True,
                                  timeout=10)
            try:
                con.row_factory = sqlite3.Row
                return [dict(r) for r in con.execute(sql, params).fetchall()]
            finally:
                con.close()
        out = self._psql("SELECT coalesce(json_agg(q), '[]') FROM (%s) q" % sql, params)
        return json.loads(out)

    def value(self, sql, params=()):
        """The first column of the first row (None without a row)."""
        r = self.rows(sql, params)
        return next(iter(r[0].values())) if r else None

    def execute(self, sql, params=()):
        """Run a statement that changes rows."""
        self.execute_many(sql, [params])

    def execute_many(self, sql, seq):
        """Run a statement once per parameter tuple of seq, in one transaction."""
        if self.engine == "sqlite":
            con = sqlite3.connect(self.url[len("sqlite:"):], timeout=10)
            try:
                with con:
                    con.executemany(sql, seq)
            finally:
                con.close()
            return
        self._psql("BEGIN;\n%s;\nCOMMIT" % ";\n".join(_bind(sql, p) for p in seq))

    def _psql(self, sql, params=()):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"PGPASSFILE": self.password_file or os.devnull, "PGCONNECT_TIMEOUT": "5"})
        cmd = [pw_postgres.PSQL, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-d", self.url]
        text = _bind(sql, params)
        r = subprocess.run(cmd, input=text + ";\n", env=env, capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s\nSQL: %s" % (r.stderr.strip(), text[:2000]))
        return r.stdout.strip()


def _literal(v):
    """A PostgreSQL literal of a Python value (standard_conforming_strings is on)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return "'\\x%s'" % bytes(v).hex()       # bytea's hex input
    return "'%s'" % str(v).replace("'", "''")


def _bind(sql, params):
    """sql with each "?" replaced by the literal of the next parameter."""
    it = iter(params)
    return re.sub(r"\?", lambda m: _literal(next(it)), sql)


def suite_engine():
    """The engine the suite runs postwarden on: "sqlite" (default) or "postgresql"."""
    return os.environ.get("PW_TEST_DB", "sqlite")


def sqlite_only(why):
    """Mark a test that is about SQLite itself: skipped when the suite runs on PostgreSQL."""
    import pytest
    return pytest.mark.skipif(suite_engine() != "sqlite",
                              reason="about SQLite only: %s" % why)


def fresh():
    """A new database on the suite's engine, or None: SQLite in the caller's state_dir."""
    return FACTORY() if FACTORY is not None else None


def of_state_dir(state_dir, database=None):
    """The Database a postwarden with this state_dir and [database] uses."""
    if database is not None:
        return database
    return Database("sqlite:" + os.path.join(state_dir, "postwarden.db"))
