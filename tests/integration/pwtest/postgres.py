"""A private PostgreSQL 15 server for the tests, as an unprivileged user on loopback.

Debian's postgresql-15 binaries (initdb, postgres) build and run a cluster of our own in a
temporary directory: TCP on 127.0.0.1:<free port> with scram-sha-256 passwords, the unix
socket in a short directory of its own (trusted, reachable only by root and the server's
user), a role and a database for postwarden whose password sits in a PGPASSFILE-format file.

Nothing here touches Debian's system clusters (pg_lsclusters' "main"): whether one runs on
5432 or not, this server has its own port, socket directory and data directory.

The server runs as the `postgres` system user (or `nobody`) because postgres refuses to run
as root; every directory it uses is owned by that user and every parent is traversable.
"""

import ctypes
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from . import logs, net

PG_BIN = "/usr/lib/postgresql/15/bin"
PSQL = "/usr/bin/psql"
SUPERUSER = "postgres"

# A test machine's settings. fsync and synchronous_commit stay on: the relay's durability
# tests must see what a real server does across a restart.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "50",
    "shared_buffers": "16MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "password_encryption": "'scram-sha-256'",
    "ssl": "off",
    # Segments as files in the data directory: /dev/shm is not writable for the server's user
    # in every root the tests run in (a fresh chroot refused it).
    "dynamic_shared_memory_type": "mmap",
    "max_wal_size": "256MB",
    "logging_collector": "off",
    "log_destination": "'stderr'",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_timezone": "'UTC'",
    "timezone": "'UTC'",
}


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _stop_with_parent():
    """In the child before exec: a fast shutdown when the test process dies without stop().

    Runs after the switch to the server's user (a change of credentials clears the setting);
    the postmaster's own children watch the postmaster and follow it."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


def _run_user():
    """The (name, uid, gid) the server runs as: root may not run postgres."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, pw.pw_uid, pw.pw_gid
    raise RuntimeError("neither a postgres nor a nobody user exists")


def processes_in(data_dir):
    """Pids of live processes whose working directory is data_dir.

    The postmaster chdirs into its data directory and every backend inherits that, so this
    finds the whole server (backends are their own process group leaders, so a process
    group does not)."""
    want = os.path.realpath(data_dir)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            continue
        if cwd == want and net.pid_alive(int(entry)):
            pids.append(int(entry))
    return pids


class Postgres:
    """One PostgreSQL 15 server with a role and a database for postwarden.

    Attributes for clients: host, port, user, dbname, password, password_file (lines of
    host:port:db:user:password, mode 0600), url(). psql() runs SQL as the superuser over
    the unix socket, or over TCP as the postwarden role (tcp=True)."""

    def __init__(self, workdir, user="postwarden", dbname="postwarden"):
        self.dir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "postgres.log")
        self.password_file = os.path.join(workdir, "pgpass")
        self.host = "127.0.0.1"
        self.port = None
        self.user = user
        self.dbname = dbname
        self.password = secrets.token_hex(16)
        self.socket_dir = None
        self.proc = None
        self._db_created = False
        self.run_as, self._uid, self._gid = _run_user()
        self.startup_seconds = {}   # the last start(): "initdb", "start", "setup", "total"

    # -- running things as the server's user ---------------------------------

    def _as_server_user(self):
        if os.geteuid() != 0:
            return {}
        return {"user": self._uid, "group": self._gid, "extra_groups": []}

    def _server_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C", "TZ": "UTC"})
        return env

    def _owned_dir(self, path, mode=0o700):
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        if os.geteuid() == 0:
            os.chown(path, self._uid, self._gid)

    # -- lifecycle ------------------------------------------------------------

    def start(self):
        """initdb (once), start the server, create the role and the database."""
        os.makedirs(self.dir, exist_ok=True)
        # Only the parents: the server refuses a data directory others may enter.
        net.make_traversable(os.path.dirname(os.path.abspath(self.data_dir)))
        os.chmod(self.dir, 0o755)
        fresh = not os.path.exists(os.path.join(self.data_dir, "PG_VERSION"))
        took = {}
        t0 = time.monotonic()
        if fresh:
            self._initdb()
            took["initdb"] = time.monotonic() - t0
        if self.port is None:
            self.port = net.free_port(self.host)
        t1 = time.monotonic()
        self._start_server()
        took["start"] = time.monotonic() - t1
        if fresh:
            t1 = time.monotonic()
            self._create_role_and_db()
            took["setup"] = time.monotonic() - t1
        took["total"] = time.monotonic() - t0
        self.startup_seconds = took
        with open(self.log_path, "a") as f:
            f.write("== started in %s ==\n" % ", ".join("%s %.2fs" % kv for kv in took.items()))
        return self

    def _initdb(self):
        self._owned_dir(self.data_dir)
        # --no-sync: a crash during initdb only loses a cluster the test would redo anyway;
        # the running server keeps fsync on.
        cmd = [os.path.join(PG_BIN, "initdb"), "-D", self.data_dir, "-U", SUPERUSER,
               "--encoding=UTF8", "--locale=C", "--auth-local=trust",
               "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"]
        r = subprocess.run(cmd, cwd=self.data_dir, env=self._server_env(),
                           capture_output=True, text=True, **self._as_server_user())
        with open(self.log_path, "a") as f:
            f.write("== initdb ==\n%s%s" % (r.stdout, r.stderr))
        if r.returncode != 0:
            raise RuntimeError("initdb failed (%s): %s%s" % (self.data_dir, r.stdout, r.stderr))
        self._write_hba()
        with open(os.path.join(self.data_dir, "postgresql.conf"), "a") as f:
            f.write("\n# postwarden tests\n")
            for k, v in SETTINGS.items():
                f.write("%s = %s\n" % (k, v))
            # In every process title, so ps shows which test server a backend belongs to.
            f.write("cluster_name = 'pwtest-%s'\n" % os.path.basename(self.dir))

    def _write_hba(self):
        # The socket's directory is mode 0700 and owned by the server's user, so "trust"
        # there admits only root and that user; TCP always asks for a password.
        text = ("local all all trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n")
        with open(os.path.join(self.data_dir, "pg_hba.conf"), "w") as f:
            f.write(text)

    def _start_server(self):
        # A short directory of its own: a socket path has at most 107 bytes.
        self.socket_dir = tempfile.mkdtemp(prefix="pwpg-", dir="/tmp")
        self._owned_dir(self.socket_dir)
        cmd = [os.path.join(PG_BIN, "postgres"), "-D", self.data_dir,
               "-p", str(self.port), "-c", "unix_socket_directories=" + self.socket_dir]
        log = open(self.log_path, "a")
        log.write("== postgres start %s ==\n" % time.strftime("%H:%M:%S"))
        log.flush()
        try:
            self.proc = subprocess.Popen(cmd, cwd=self.data_dir, env=self._server_env(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True,
                                         preexec_fn=_stop_with_parent,
                                         **self._as_server_user())
        finally:
            log.close()
        try:
            self._wait_ready(timeout=30)
        except Exception:
            self.stop(mode="immediate")
            raise

    def _wait_ready(self, timeout):
        """Wait until the postmaster says "ready" in postmaster.pid (as pg_ctl -w does)."""
        pidfile = os.path.join(self.data_dir, "postmaster.pid")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with %s at start-up:\n%s"
                                   % (self.proc.returncode, self.log()[-3000:]))
            try:
                with open(pidfile) as f:
                    lines = f.read().splitlines()
                if len(lines) >= 8 and lines[0].strip() == str(self.proc.pid) \
                        and lines[7].strip() == "ready":
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise TimeoutError("postgres not ready after %.0fs:\n%s" % (timeout, self.log()[-3000:]))

    def _create_role_and_db(self):
        # One psql for both (each -c is its own transaction: CREATE DATABASE needs that).
        self.psql(["CREATE ROLE %s LOGIN PASSWORD '%s'" % (self.user, self.password),
                   "CREATE DATABASE %s OWNER %s" % (self.dbname, self.user)])
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # "*" for the database: the same role's fresh databases (new_database) too.
            f.write("%s:%d:*:%s:%s\n" % (self.host, self.port, self.user, self.password))
        os.chmod(self.password_file, 0o600)
        self._db_created = True

    def stop(self, mode="fast"):
        """Stop the server; return only when no process of it is left.

        mode "fast" (SIGINT: roll back sessions, checkpoint) or "immediate" (SIGQUIT: no
        checkpoint, crash recovery at the next start). A server that has not gone after
        30 seconds, and any process still in its data directory, is killed."""
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        net.stop_process(self.proc, 30, sig)
        self.proc = None
        self._kill_leftovers()
        if self.socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None

    def _kill_leftovers(self):
        # Backends notice their postmaster's death by themselves; wait a little, then kill.
        try:
            net.wait_until(lambda: not processes_in(self.data_dir), 5, interval=0.02,
                           what="postgres processes to exit")
        except TimeoutError:
            for pid in processes_in(self.data_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            net.wait_until(lambda: not processes_in(self.data_dir), 10, interval=0.02,
                           what="killed postgres processes to exit")

    def restart(self, mode="fast"):
        """Stop and start again with the same data directory on the same port."""
        self.stop(mode=mode)
        self.start()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- clients ---------------------------------------------------------------

    def url(self):
        """The postwarden role's URL; its password is in password_file, never in the URL."""
        return "postgresql://%s@%s:%d/%s" % (self.user, self.host, self.port, self.dbname)

    def new_database(self, prefix="pw", template=None):
        """A new database owned by the postwarden role, empty or a copy of the database
        template (whose URL or name is given); its URL (password in password_file, which
        libpq matches by host and port whatever the database)."""
        self._ndb = getattr(self, "_ndb", 0) + 1
        name = "%s_%d_%d" % (prefix, os.getpid(), self._ndb)
        sql = "CREATE DATABASE %s OWNER %s" % (name, self.user)
        if template:
            sql += " TEMPLATE %s" % template.rsplit("/", 1)[-1]
        self.psql(sql)
        return "postgresql://%s@%s:%d/%s" % (self.user, self.host, self.port, name)

    def local_url(self, url):
        """The database of url over the unix socket (the socket directory is the server
        user's, mode 0700: for root only, then trusted without a password)."""
        return "postgresql://%s@/%s?host=%s&port=%d" % (self.user, url.rsplit("/", 1)[1],
                                                         self.socket_dir, self.port)

    def conninfo(self, user=None, dbname=None):
        """libpq keyword/value connection string for TCP (the postwarden role's by default)."""
        return "host=%s port=%d dbname=%s user=%s sslmode=disable connect_timeout=5" % (
            self.host, self.port, dbname or self.dbname, user or self.user)

    def psql_run(self, sql, tcp=False, user=None, password=None, dbname=None):
        """Run sql with /usr/bin/psql (unaligned, tuples only, stop on the first error);
        a list of statements runs each in a transaction of its own.

        tcp=False: as the superuser over the unix socket (dbname defaults to postwarden's
        once it exists). tcp=True: over TCP as user (default: the postwarden role) with
        password_file, or with password when given. Returns the CompletedProcess."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"PGCONNECT_TIMEOUT": "5", "PGSSLMODE": "disable"})
        if tcp:
            target = self.conninfo(user, dbname)
            if password is not None:
                env["PGPASSWORD"] = password
                env["PGPASSFILE"] = os.devnull
            else:
                env["PGPASSFILE"] = self.password_file
        else:
            if dbname is None:
                dbname = self.dbname if self._db_created else "postgres"
            target = "host=%s port=%d dbname=%s user=%s" % (self.socket_dir, self.port,
                                                            dbname, user or SUPERUSER)
        cmd = [PSQL, "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", target]
        for statement in [sql] if isinstance(sql, str) else sql:
            cmd += ["-c", statement]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)

    def psql(self, sql, **kw):
        """psql_run() that returns the output stripped and raises when psql fails."""
        r = self.psql_run(sql, **kw)
        if r.returncode != 0:
            raise RuntimeError("psql failed (%d): %s\nSQL: %s" % (r.returncode,
                                                                  r.stderr.strip(), sql))
        return r.stdout.strip()

    def log(self):
        return logs.read(self.log_path)
