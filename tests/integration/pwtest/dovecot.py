"""Private Dovecot 2.3 instances (Debian's dovecot-imapd) as IMAP servers for the migration
tests and the migration benchmark.

Each instance has its own configuration file, base_dir (sockets; a short directory under
/tmp, since a unix socket path has at most 107 bytes), state_dir, log file and mail homes
under its working directory; nothing of the system's /etc/dovecot or /var/lib/dovecot is
read or written. The master runs in the foreground (`dovecot -F -c CONF`) in a session of
its own and gets SIGTERM when the test process dies, so no instance outlives its test run.

When the tests run as root the master runs as root (as Dovecot expects), the login and
internal processes as Debian's dovenull and dovecot users, and every mailbox belongs to
`nobody` (Dovecot refuses mail access as uid 0). Run as another user, the whole instance
runs as that user.

Features, each a constructor argument:
  users          {name: password}; passwd-file users ({PLAIN} passwords)
  master_users   {name: password}; log in as "user*master" with the master's password
  ca             a pwtest.ca.TestCA: TLS with a certificate for hostname from it; then the
                 plain IMAP port offers STARTTLS and imaps=True opens an implicit-TLS port
  separator      "/" (maildir LAYOUT=fs, names may contain ".") or "." (maildir++)
  special_use    {"\\Sent": "Sent Items", ...}: the special-use folders of the inbox
                 namespace (created and subscribed at first login); None: English defaults;
                 gmail=True: Gmail's "[Gmail]/..." names with "[Gmail]/All Mail" as \\All
  quota_bytes    a per-user storage limit (quota plugin, count backend); None: no quota
  no_capability  capabilities not announced, e.g. ("MULTIAPPEND", "LITERAL+")
  compress       load imap_zlib (COMPRESS=DEFLATE); False: not offered
  doveadm_http   the doveadm HTTP API on a loopback port with an API key
  oauth2_introspection_url
                 an http URL: OAUTHBEARER and XOAUTH2 logins are checked by an oauth2
                 passdb that asks this token introspection endpoint (RFC 7662 style, see
                 pwtest/oauth2.py) whether the token is active and whose it is; the users'
                 passwords still work with PLAIN and LOGIN. None (the default): no OAuth
  oauth2_introspection_mode
                 "post" (token=... in a form body, the default) or "get" (the token
                 appended to the URL)
Custom keywords are always allowed (maildir keeps up to 26 per mailbox).
"""

import base64
import ctypes
import http.client
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time

from . import logs, net

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"

ENGLISH = {"\\Sent": "Sent", "\\Drafts": "Drafts", "\\Trash": "Trash", "\\Junk": "Junk",
           "\\Archive": "Archive"}
GERMAN = {"\\Sent": "Gesendet", "\\Drafts": "Entw\u00fcrfe", "\\Trash": "Papierkorb",
          "\\Junk": "Spam", "\\Archive": "Archiv"}
OUTLOOK = {"\\Sent": "Sent Items", "\\Drafts": "Drafts", "\\Trash": "Deleted Items",
           "\\Junk": "Junk Email", "\\Archive": "Archive"}
GMAIL = {"\\All": "[Gmail]/All Mail", "\\Sent": "[Gmail]/Sent Mail",
         "\\Drafts": "[Gmail]/Drafts", "\\Trash": "[Gmail]/Trash", "\\Junk": "[Gmail]/Spam",
         "\\Flagged": "[Gmail]/Starred"}

# What Dovecot 2.3.19 announces after login with its built-in imap_capability (read from a
# running instance); no_capability removes entries from this list.
DEFAULT_CAPABILITY = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
    "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE").split()

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _stop_with_parent():
    """In the child before exec: SIGTERM when the test process dies without stop()."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _utf7_quote(name):
    """A mailbox name as a quoted string for dovecot.conf."""
    return '"%s"' % name.replace("\\", "\\\\").replace('"', '\\"')


def _accounts():
    """(mail uid, mail gid, login user, internal user, internal group) for this process."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        return nobody.pw_uid, nobody.pw_gid, "dovenull", "dovecot", "dovecot"
    me = pwd.getpwuid(os.geteuid())
    return me.pw_uid, me.pw_gid, me.pw_name, me.pw_name, me.pw_name


class Dovecot:
    """One Dovecot 2.3 instance on 127.0.0.1; see the module text for the features."""

    def __init__(self, workdir, users=None, master_users=None, ca=None,
                 hostname="imap.example.test", imaps=True, separator="/",
                 special_use=None, gmail=False, quota_bytes=None, no_capability=(),
                 compress=True, doveadm_http=False, extra_conf="", name=None,
                 oauth2_introspection_url=None, oauth2_introspection_mode="post"):
        self.dir = os.path.abspath(workdir)
        self.name = name or os.path.basename(self.dir.rstrip("/")) or "dovecot"
        self.users = dict(users if users is not None else {"user": "secret"})
        self.master_users = dict(master_users or {})
        self.ca = ca
        self.hostname = hostname
        self.tls = ca is not None
        self.want_imaps = imaps and self.tls
        self.separator = separator
        if gmail:
            special_use = GMAIL
        self.special_use = dict(special_use if special_use is not None else ENGLISH)
        self.quota_bytes = quota_bytes
        self.no_capability = tuple(c.upper() for c in no_capability)
        self.compress = compress
        self.want_http = doveadm_http
        self.oauth2_url = oauth2_introspection_url
        self.oauth2_mode = oauth2_introspection_mode
        self.extra_conf = extra_conf
        self.addr = "127.0.0.1"
        self.port = None           # plain IMAP (with STARTTLS when TLS is on)
        self.imaps_port = None
        self.http_port = None
        self.api_key = secrets.token_hex(16)
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.state_dir = os.path.join(self.dir, "state")
        self.home_root = os.path.join(self.dir, "home")
        self.base_dir = None
        self.cert = None
        self.proc = None
        self.mail_uid, self.mail_gid, self._login_user, self._internal_user, \
            self._internal_group = _accounts()

    # -- configuration ---------------------------------------------------------

    def home(self, user):
        return os.path.join(self.home_root, user)

    def capability(self):
        """The post-login capability list this instance announces."""
        caps = [c for c in DEFAULT_CAPABILITY if c not in self.no_capability]
        if self.compress and "COMPRESS=DEFLATE" not in self.no_capability:
            caps.append("COMPRESS=DEFLATE")
        if self.quota_bytes is not None:
            caps.append("QUOTA")
        return caps

    def _write_users(self):
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u, p in self.users.items():
                extra = ""
                if self.quota_bytes is not None:
                    extra = "userdb_quota_rule=*:storage=%dB" % self.quota_bytes
                f.write("%s:{PLAIN}%s:%d:%d::%s::%s\n" % (u, p, self.mail_uid, self.mail_gid,
                                                         self.home(u), extra))
        with open(os.path.join(self.dir, "masters"), "w") as f:
            for u, p in self.master_users.items():
                f.write("%s:{PLAIN}%s\n" % (u, p))
        for name in ("users", "masters"):
            os.chmod(os.path.join(self.dir, name), 0o644)

    def _namespace(self):
        if self.separator == "/":
            location = "maildir:~/Maildir:LAYOUT=fs"
        elif self.separator == ".":
            location = "maildir:~/Maildir"
        else:
            raise ValueError("separator must be / or .")
        lines = ["mail_location = " + location,
                 "namespace inbox {", "  inbox = yes", "  separator = " + self.separator]
        for flag, mbox in self.special_use.items():
            if self.separator != "/":
                mbox = mbox.replace("/", self.separator)
            lines += ["  mailbox %s {" % _utf7_quote(mbox), "    special_use = " + flag,
                      "    auto = subscribe", "  }"]
        lines.append("}")
        return lines

    def _tls(self):
        if not self.tls:
            return ["ssl = no"]
        # the CA keeps one certificate per name for the session; its default file stem is
        # unique per name (a stem per server would let another name overwrite the files)
        self.cert = self.ca.issue(self.hostname)
        lines = ["ssl = yes", "ssl_cert = <" + self.cert.chain_path,
                 "ssl_key = <" + self.cert.key_path, "ssl_min_protocol = TLSv1.2"]
        if os.path.exists("/usr/share/dovecot/dh.pem"):
            lines.append("ssl_dh = </usr/share/dovecot/dh.pem")
        return lines

    def _plugins(self):
        mail, imap, plugin = [], [], []
        if self.quota_bytes is not None:
            mail.append("quota")
            imap.append("imap_quota")
            # The count backend counts as it goes; vsizes are what it needs.
            plugin += ["  quota = count:User quota", "  quota_vsizes = yes"]
        if self.compress:
            imap.append("imap_zlib")
        lines = ["mail_plugins = $mail_plugins " + " ".join(mail),
                 "protocol imap {",
                 "  mail_plugins = $mail_plugins " + " ".join(imap),
                 # An explicit list: the plugins' own additions (QUOTA, COMPRESS) are
                 # then not made, so it names them itself.
                 "  imap_capability = " + " ".join(self.capability()),
                 "}"]
        if plugin:
            lines += ["plugin {"] + plugin + ["}"]
        return lines

    def _services(self):
        imaps_port = self.imaps_port if self.want_imaps else 0
        lines = ["service imap-login {",
                 "  inet_listener imap {", "    address = " + self.addr,
                 "    port = %d" % self.port, "  }",
                 "  inet_listener imaps {", "    address = " + self.addr,
                 "    port = %d" % imaps_port, "    ssl = yes", "  }",
                 "}"]
        if self.want_http:
            lines += ["doveadm_api_key = " + self.api_key,
                      "service doveadm {", "  inet_listener http {",
                      "    address = " + self.addr, "    port = %d" % self.http_port,
                      "    ssl = no", "  }", "}"]
        return lines

    def _write_oauth2(self):
        """The oauth2 passdb's settings file: introspection only (no tokeninfo URL), the
        token active when the answer's "active" is true, the user from "username"."""
        path = os.path.join(self.dir, "oauth2.conf.ext")
        with open(path, "w") as f:
            f.write("introspection_url = %s\n" % self.oauth2_url +
                    "introspection_mode = %s\n" % self.oauth2_mode +
                    "force_introspection = yes\n"
                    "username_attribute = username\n"
                    "active_attribute = active\n"
                    "active_value = true\n"
                    "timeout_msecs = 10000\n")
        os.chmod(path, 0o644)
        return path

    def _auth(self):
        users = os.path.join(self.dir, "users")
        mechs = "plain login" + (" oauthbearer xoauth2" if self.oauth2_url else "")
        lines = ["auth_mechanisms = " + mechs, "disable_plaintext_auth = no",
                 "auth_verbose = yes", "auth_master_user_separator = *"]
        if self.master_users:
            lines += ["passdb {", "  driver = passwd-file",
                      "  args = " + os.path.join(self.dir, "masters"),
                      "  master = yes", "  pass = yes", "}"]
        if self.oauth2_url:
            # tokens are checked only by the introspection endpoint, passwords only by
            # the users file
            lines += ["passdb {", "  driver = oauth2", "  mechanisms = oauthbearer xoauth2",
                      "  args = " + self._write_oauth2(), "}"]
        lines += ["passdb {", "  driver = passwd-file", "  args = " + users]
        if self.oauth2_url:
            lines.append("  mechanisms = plain login")
        lines += ["}", "userdb {", "  driver = passwd-file", "  args = " + users, "}"]
        return lines

    def _write_conf(self):
        lines = [
            "# private test instance %s" % self.name,
            "protocols = imap",
            "listen = " + self.addr,
            "base_dir = " + self.base_dir,
            "state_dir = " + self.state_dir,
            "instance_name = pwtest-" + self.name,
            "log_path = " + self.log_path,
            "info_log_path = " + self.log_path,
            "log_timestamp = \"%Y-%m-%d %H:%M:%S \"",
            "default_login_user = " + self._login_user,
            "default_internal_user = " + self._internal_user,
            "default_internal_group = " + self._internal_group,
            "first_valid_uid = %d" % min(self.mail_uid, 500),
            "first_valid_gid = %d" % min(self.mail_gid, 500),
            "mail_max_userip_connections = 200",
            # A refused login answers at once (the tests try wrong passwords on purpose).
            "auth_failure_delay = 0",
            "mail_fsync = optimized",
            "imap_logout_format = in=%i out=%o",
        ]
        lines += self._auth() + self._namespace() + self._tls() + self._plugins()
        lines += self._services()
        if self.extra_conf:
            lines.append(self.extra_conf)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _setup(self):
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        os.makedirs(self.home_root, exist_ok=True)
        net.make_traversable(self.dir)
        if os.geteuid() == 0:
            os.chown(self.home_root, self.mail_uid, self.mail_gid)
        if self.port is None:
            self.port = net.free_port(self.addr)
            self.imaps_port = net.free_port(self.addr)
            if self.want_http:
                self.http_port = net.free_port(self.addr)
        self._write_users()

    # -- lifecycle -------------------------------------------------------------

    def start(self, timeout=20):
        """Write the configuration and start the master; return once it accepts IMAP."""
        self._setup()
        self.base_dir = tempfile.mkdtemp(prefix="pwdc-", dir="/tmp")
        os.chmod(self.base_dir, 0o755)
        self._write_conf()
        log = open(self.log_path, "a")
        log.write("== dovecot start %s ==\n" % time.strftime("%H:%M:%S"))
        log.flush()
        try:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True,
                                         preexec_fn=_stop_with_parent)
        finally:
            log.close()
        try:
            net.wait_port(self.addr, self.port, timeout=timeout, proc=self.proc)
            if self.want_imaps:
                net.wait_port(self.addr, self.imaps_port, timeout=timeout, proc=self.proc)
            if self.want_http:
                net.wait_port(self.addr, self.http_port, timeout=timeout, proc=self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError("dovecot did not start: %s\n%s" % (e, self.log()[-3000:]))
        return self

    def children(self):
        """Pids of the master's child processes (imap, imap-login, auth, ...)."""
        if self.proc is None:
            return []
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                out.append(int(entry))
        return out

    def _comm(self, pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                return f.read().strip()
        except OSError:
            return ""

    def stop(self):
        """Stop the master and wait until none of its processes is left."""
        if self.proc is None:
            return
        kids = self.children()
        net.stop_process(self.proc, 15)
        self.proc = None
        # A mail process with a client still connected outlives its master (and keeps the
        # log and stats processes alive): test instances keep nothing worth waiting for.
        for p in kids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        net.wait_until(lambda: not any(net.pid_alive(p) for p in kids), 10,
                       interval=0.02, what="dovecot processes to exit")
        if self.base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def restart(self):
        """Stop and start again: same ports, users and mail; every connection is cut."""
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kick(self, user="*"):
        """Disconnect the logged-in sessions of user (a mask: "*" is everyone) with
        `doveadm kick`; returns doveadm's output."""
        return self.doveadm("kick", user, check=False).stdout

    def cut_connections(self):
        """Cut every client connection at once: SIGKILL to every imap and imap-login
        process (the client sees the TCP connection reset or closed mid-command)."""
        n = 0
        for pid in self.children():
            if self._comm(pid) in ("imap", "imap-login"):
                try:
                    os.kill(pid, signal.SIGKILL)
                    n += 1
                except ProcessLookupError:
                    pass
        return n

    def log(self):
        return logs.read(self.log_path)

    # -- doveadm ---------------------------------------------------------------

    def doveadm(self, *args, options=None, check=True, timeout=600):
        """Run `doveadm -c CONF [-o k=v ...] ARGS...` against this instance."""
        cmd = [DOVEADM, "-c", self.conf_path]
        for k, v in (options or {}).items():
            cmd += ["-o", "%s=%s" % (k, v)]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("doveadm %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                              r.stdout, r.stderr))
        return r

    def http_url(self):
        return "http://%s:%d/doveadm/v1" % (self.addr, self.http_port)

    def doveadm_http(self, commands, timeout=600, api_key=None):
        """POST commands ([[name, {params}, tag], ...]) to the doveadm HTTP API; returns
        (status, decoded JSON answer or None)."""
        key = self.api_key if api_key is None else api_key
        body = json.dumps(commands).encode()
        # http.client, not urllib: Dovecot 2.3 never answers a refused request that says
        # "Connection: close" (urllib always does); curl and this get the 401 at once.
        conn = http.client.HTTPConnection(self.addr, self.http_port, timeout=timeout)
        try:
            conn.request("POST", "/doveadm/v1", body=body, headers={
                "Content-Type": "application/json",
                "Authorization": "X-Dovecot-API " + base64.b64encode(key.encode()).decode()})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, data.decode(errors="replace")

    # -- clients ---------------------------------------------------------------

    def ssl_context(self):
        """A client context that trusts the test CA and checks the host name."""
        ctx = ssl.create_default_context(cafile=self.ca.cert_path)
        return ctx

    def connect(self, mode="plain", timeout=30):
        """An imaplib connection (not logged in): mode "plain", "starttls" or "imaps"."""
        if mode == "imaps":
            c = imaplib.IMAP4_SSL(self.addr, self.imaps_port, ssl_context=self._sni_context(),
                                  timeout=timeout)
            return c
        c = imaplib.IMAP4(self.addr, self.port, timeout=timeout)
        if mode == "starttls":
            c.starttls(ssl_context=self._sni_context())
        return c

    def _sni_context(self):
        """The CA context, checking the certificate against self.hostname although the
        connection goes to 127.0.0.1."""
        ctx = self.ssl_context()
        hostname = self.hostname
        orig = ctx.wrap_socket

        def wrap(sock, *a, **kw):
            kw["server_hostname"] = hostname
            return orig(sock, *a, **kw)
        ctx.wrap_socket = wrap
        return ctx

    def login(self, user=None, password=None, mode="plain", master=None, timeout=30):
        """A logged-in imaplib connection as user (the first user by default); with
        master=(name, password), as "user*name" with the master's password."""
        user = user or next(iter(self.users))
        c = self.connect(mode, timeout=timeout)
        if master:
            c.login("%s*%s" % (user, master[0]), master[1])
        else:
            c.login(user, self.users[user] if password is None else password)
        return c

    def url(self, mode="plain"):
        """imap://127.0.0.1:PORT or imaps://127.0.0.1:PORT."""
        if mode == "imaps":
            return "imaps://%s:%d" % (self.addr, self.imaps_port)
        return "imap://%s:%d" % (self.addr, self.port)


def start(workdir, name, **kw):
    """Start a Dovecot in workdir/name with its log registered; stop it with stop()."""
    d = Dovecot(os.path.join(workdir, name), name=name, **kw)
    logs.register("dovecot-" + name, d.log_path)
    d.start()
    return d


def stop(d):
    d.stop()
    logs.unregister("dovecot-" + d.name)


def utf7_encode(name):
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def utf7_decode(name):
    """The Unicode name of a modified UTF-7 mailbox name."""
    def dec(m):
        s = m.group(1)
        if not s:
            return "&"
        s = s.replace(",", "/")
        s += "=" * (-len(s) % 4)
        return base64.b64decode(s).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", dec, name)


_LIST_RE = re.compile(rb'^\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.*)$')


def parse_list_line(line):
    """(flags, separator, Unicode name) of one LIST/LSUB answer line from imaplib (bytes,
    or a (prefix, literal) tuple when the name came as a literal)."""
    if isinstance(line, tuple):
        line = line[0].rsplit(b" ", 1)[0] + b" " + b'"' + line[1].replace(
            b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    m = _LIST_RE.match(line)
    if not m:
        raise ValueError("unparsable LIST line %r" % line)
    flags = m.group(1).decode().split()
    sep = None if m.group(2) == b"NIL" else m.group(2)[1:-1].replace(b"\\", b"")[:1].decode()
    name = m.group(3)
    if name.startswith(b'"'):
        name = re.sub(rb'\\(.)', rb'\1', name[1:-1])
    return flags, sep, utf7_decode(name.decode())
