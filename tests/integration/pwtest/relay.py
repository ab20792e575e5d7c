"""The relay under test: writes a postwarden.conf, runs `postwarden -c CONF serve`, runs
CLI commands against the same config, and sends mail to it with smtplib.

The binary is $POSTWARDEN, by default build/asan/postwarden relative to the repository root.
"""

import json
import os
import signal
import smtplib
import subprocess
import time

from . import database, logs, net

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def binary():
    """Path of the postwarden binary the tests run."""
    p = os.environ.get("POSTWARDEN", "build/asan/postwarden")
    if not os.path.isabs(p):
        p = os.path.join(REPO_ROOT, p)
    return p


def daemon_env():
    env = dict(os.environ)
    # Leak reports at exit would make every SIGTERM'd run look like a failure; leaks are
    # the unit tests' business.
    env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


class Relay:
    """One postwarden daemon with its own state_dir and config file."""

    def __init__(self, workdir, remote_port, unbound_config, hostname="relay.example.test",
                 listen_addr="127.0.0.1", **options):
        """options: extra config keys as section_key=value, e.g. guarantee_language="de",
        relay_trusted_networks="127.0.0.1/32", relay_notify_relay="127.0.0.2:2525"."""
        self.dir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.conf_path = os.path.join(workdir, "postwarden.conf")
        self.log_path = os.path.join(workdir, "postwarden.log")
        self.listen_addr = listen_addr
        self.port = net.free_port(listen_addr)
        # serve opens the key search API too: each relay gets its own port for it.
        self.api_port = net.free_port("127.0.0.1")
        self.proc = None
        self.starts = 0
        self.sections = {
            "server": {"state_dir": self.state_dir, "hostname": hostname,
                       "log_level": "debug"},
            "relay": {"listen": "%s:%d" % (listen_addr, self.port),
                      "remote_port": str(remote_port),
                      "connect_timeout": "5s", "command_timeout": "10s"},
            "dns": {"unbound_config": unbound_config},
            "guarantee": {},
            "api": {"listen": "127.0.0.1:%d" % self.api_port},
        }
        # The suite's engine (pwtest.database): SQLite in state_dir, or a fresh PostgreSQL
        # database with PW_TEST_DB=postgresql.
        fresh = database.fresh() if "database_url" not in options else None
        if fresh is not None:
            self.sections["database"] = fresh.config()
        self.database = database.of_state_dir(self.state_dir, fresh)
        for k, v in options.items():
            self.set(k, v)
        os.makedirs(self.state_dir, exist_ok=True)
        self.write_conf()

    def set(self, key, value):
        """Set a config key given as section_key (e.g. relay_notify_relay)."""
        section, name = key.split("_", 1)
        self.sections.setdefault(section, {})[name] = str(value)

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            for section, kv in self.sections.items():
                f.write("[%s]\n" % section)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    # -- daemon ---------------------------------------------------------

    def start(self, timeout=20):
        self.write_conf()
        log = open(self.log_path, "a")
        log.write("==== start %d: %s -c %s serve\n" % (self.starts + 1, binary(), self.conf_path))
        log.flush()
        self.proc = subprocess.Popen([binary(), "-c", self.conf_path, "serve"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=daemon_env(), cwd=self.dir)
        log.close()
        self.starts += 1
        try:
            net.wait_port(self.listen_addr, self.port, timeout=timeout, proc=self.proc)
            # the SMTP socket is listened on before the database is opened, the API's
            # only after: a test that calls the API at once must wait for it as well
            api = self.sections.get("api", {}).get("listen", "")
            if api:
                host, _, port = api.rpartition(":")
                net.wait_port(host.strip("[]"), int(port), timeout=timeout, proc=self.proc)
        except Exception as e:
            raise RuntimeError("%s\n--- relay log ---\n%s" % (e, self.log()[-4000:]))
        return self

    def stop(self, timeout=15):
        """SIGTERM and wait; return the exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL: the crash the durable queue must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return logs.read(self.log_path)

    def log_lines(self, event=None):
        lines = self.log().splitlines()
        if event:
            lines = [l for l in lines if "event=%s" % event in l]
        return lines

    def deliveries(self):
        """Parsed `event=delivery` log lines as dicts of their key=value fields."""
        return [parse_kv(l) for l in self.log_lines("delivery")]

    # -- CLI ------------------------------------------------------------

    def pw(self, *args, check=False, timeout=30):
        """Run `postwarden -c CONF ARGS...`; return the CompletedProcess (text)."""
        r = subprocess.run([binary(), "-c", self.conf_path] + [str(a) for a in args],
                           capture_output=True, text=True, env=daemon_env(), timeout=timeout,
                           cwd=self.dir)
        if check and r.returncode != 0:
            raise AssertionError("postwarden %s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r

    def pw_json(self, *args):
        r = self.pw(*(list(args) + ["--json"]), check=True)
        return json.loads(r.stdout)

    def queue(self):
        return self.pw_json("queue", "list")

    def queue_ids(self):
        return [m["id"] for m in self.queue()]

    def wait_queue(self, pred, timeout=30, what="queue state"):
        """Poll `queue list --json` until pred(queue) is true; return the queue."""
        return net.wait_until(lambda: (lambda q: q if pred(q) else None)(self.queue()),
                              timeout, interval=0.25, what=what)

    def wait_queue_empty(self, timeout=30):
        return net.wait_until(lambda: self.queue() == [], timeout, interval=0.25,
                              what="empty relay queue")

    # -- SMTP in --------------------------------------------------------

    def smtp(self, source_address=None, timeout=30):
        """An smtplib connection to the relay (EHLO done)."""
        s = smtplib.SMTP(self.listen_addr, self.port, timeout=timeout,
                         source_address=source_address, local_hostname="client.example.test")
        s.ehlo()
        return s

    def send(self, mail_from, rcpts, msg, source_address=None):
        """Send one message; returns smtplib's refused-recipients dict ({} = all accepted)."""
        if isinstance(msg, str):
            msg = msg.encode()
        with self.smtp(source_address=source_address) as s:
            return s.sendmail(mail_from, rcpts, msg)


def parse_kv(line):
    """key=value fields of one log line; values may be double-quoted."""
    out = {}
    i = 0
    n = len(line)
    while i < n:
        eq = line.find("=", i)
        if eq < 0:
            break
        ks = line.rfind(" ", 0, eq) + 1
        key = line[ks:eq]
        j = eq + 1
        if j < n and line[j] == '"':
            k = j + 1
            val = []
            while k < n and line[k] != '"':
                if line[k] == "\\" and k + 1 < n:
                    k += 1
                val.append(line[k])
                k += 1
            out[key] = "".join(val)
            i = k + 1
        else:
            sp = line.find(" ", j)
            sp = n if sp < 0 else sp
            out[key] = line[j:sp]
            i = sp
    return out


def make_message(mail_from, rcpts, subject="test", body="hello\r\n", headers=()):
    """A minimal RFC 5322 message as bytes."""
    lines = ["From: <%s>" % mail_from,
             "To: %s" % ", ".join("<%s>" % r for r in rcpts),
             "Subject: %s" % subject,
             "Message-ID: <%d.%d@client.example.test>" % (time.time_ns(), os.getpid()),
             "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())]
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
