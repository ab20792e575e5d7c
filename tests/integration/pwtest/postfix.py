"""Private Postfix instances: a TLS-capable receiving MX and a sending MTA.

Each instance has its own config_directory, queue_directory and data_directory under a
temporary directory, chroot off, one explicit ADDR:PORT smtpd listener and a maillog_file
(there is no syslog here). Several receivers may listen on different 127.0.0.X with the
same port, as real MX hosts do.

The receiver stores every message in one catch-all maildir <base>/mail/all/ (virtual(8)
delivery, one file per recipient, each with a "Delivered-To: <rcpt>" header), so a test can
read what one recipient got; smtpd's Received: header records the TLS protocol and cipher of
the session.
"""

import email.parser
import email.policy
import fcntl
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess

from . import logs, net

SYSTEM_MAIN_CF = "/etc/postfix/main.cf"
NOBODY = pwd.getpwnam("nobody")
POSTFIX = pwd.getpwnam("postfix")


def _postconf(conf_dir, *args):
    r = subprocess.run(["postconf", "-c", conf_dir] + list(args),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("postconf %s failed: %s" % (" ".join(args), r.stderr))
    return r.stdout


def _edit_alternate_dirs(conf_dir, add):
    """Add (or remove) conf_dir in the system main.cf's alternate_config_directories.

    Postfix's set-gid tools (postqueue, postdrop) accept a private config directory only
    when the default main.cf lists it. The edit is idempotent and locked against other
    test runs editing the same file.
    """
    if not os.path.exists(SYSTEM_MAIN_CF):
        return
    with open("/run/lock/postwarden-test-postfix.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cur = subprocess.run(["postconf", "-h", "alternate_config_directories"],
                             capture_output=True, text=True).stdout.strip()
        dirs = [d for d in re.split(r"[\s,]+", cur) if d]
        if add and conf_dir not in dirs:
            dirs.append(conf_dir)
        elif not add and conf_dir in dirs:
            dirs.remove(conf_dir)
        else:
            return
        if dirs:
            subprocess.run(["postconf", "-e", "alternate_config_directories = " + " ".join(dirs)],
                           check=True)
        else:
            subprocess.run(["postconf", "-X", "alternate_config_directories"], check=True)


class PostfixInstance:
    """Common part: directories, main.cf/master.cf, start/stop, log."""

    role = "postfix"

    def __init__(self, basedir, addr, port, hostname):
        self.base = basedir
        self.addr = addr
        self.port = port
        self.hostname = hostname
        self.conf_dir = os.path.join(basedir, "conf")
        self.queue_dir = os.path.join(basedir, "queue")
        self.data_dir = os.path.join(basedir, "data")
        self.log_path = os.path.join(basedir, "maillog")
        self.running = False

    def _settings(self):
        return {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "meta_directory": "/etc/postfix",
            "shlib_directory": "/usr/lib/postfix",
            "command_directory": "/usr/sbin",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "maillog_file": self.log_path,
            "maillog_file_prefixes": os.path.dirname(self.log_path),
            "inet_interfaces": "all",
            "inet_protocols": "ipv4",
            "myhostname": self.hostname,
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "smtpd_peername_lookup": "no",
            "smtpd_error_sleep_time": "0",
            "smtpd_banner": "$myhostname ESMTP $mail_name",
            "smtp_dns_support_level": "disabled",
            "biff": "no",
            "syslog_name": "postfix-" + self.role,
        }

    def _setup(self):
        for d in (self.conf_dir, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        # postfix (the user) must traverse every parent of its directories.
        net.make_traversable(self.base)
        os.chown(self.data_dir, POSTFIX.pw_uid, POSTFIX.pw_gid)
        shutil.copy("/etc/postfix/master.cf", os.path.join(self.conf_dir, "master.cf"))
        with open(os.path.join(self.conf_dir, "main.cf"), "w") as f:
            for k, v in self._settings().items():
                f.write("%s = %s\n" % (k, v))
        _postconf(self.conf_dir, "-F", "*/*/chroot = n")
        _postconf(self.conf_dir, "-MX", "smtp/inet")
        svc = "%s:%d" % (self.addr, self.port)
        _postconf(self.conf_dir, "-M", "%s/inet=%s inet n - n - - smtpd" % (svc, svc))

    def start(self):
        net.ensure_loopback_addr(self.addr)
        self._setup()
        _edit_alternate_dirs(self.conf_dir, True)
        r = subprocess.run(["postfix", "-c", self.conf_dir, "start"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (%s): %s%s\n%s" % (
                self.conf_dir, r.stdout, r.stderr, self.log()))
        self.running = True
        net.wait_port(self.addr, self.port, timeout=15)
        return self

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        """Kill the instance's process group (master and children) and wait for the master.

        `postfix stop` takes about two seconds per instance; test instances keep no state
        worth a graceful shutdown."""
        if not self.running:
            return
        pid = self.master_pid()
        if pid:
            try:
                pgid = os.getpgid(pid)
                if pgid != os.getpgid(0):
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            net.wait_until(lambda: not net.pid_alive(pid), 10, interval=0.02,
                           what="Postfix master %d to exit" % pid)
        else:
            subprocess.run(["postfix", "-c", self.conf_dir, "abort"], capture_output=True)
        _edit_alternate_dirs(self.conf_dir, False)
        self.running = False

    def log(self):
        return logs.read(self.log_path)

    def queue(self):
        """The instance's queue as a list of dicts (postqueue -j)."""
        import json
        r = subprocess.run(["postqueue", "-c", self.conf_dir, "-j"],
                           capture_output=True, text=True)
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def flush(self):
        subprocess.run(["postqueue", "-c", self.conf_dir, "-f"], capture_output=True)


def tls_of(message):
    """(protocol, cipher) from the newest Received: header Postfix wrote, or None (no TLS)."""
    hdr = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = re.search(rb"^Received:(.*?)(?=^\S)", hdr + b"\nX", re.M | re.S)
    if not m:
        return None
    t = re.search(rb"\(using (\S+) with cipher (\S+)", m.group(1))
    if not t:
        return None
    return t.group(1).decode(), t.group(2).decode()


class Receiver(PostfixInstance):
    """A receiving MX accepting mail for any domain, with or without STARTTLS."""

    role = "receiver"

    def __init__(self, basedir, addr, port, hostname, cert=None):
        super().__init__(basedir, addr, port, hostname)
        self.cert = cert
        self.mail_dir = os.path.join(basedir, "mail")

    def _settings(self):
        s = super()._settings()
        vdom = os.path.join(self.conf_dir, "vdomains")
        s.update({
            "virtual_mailbox_domains": "regexp:" + vdom,
            "virtual_mailbox_maps": "static:all/",
            "virtual_mailbox_base": self.mail_dir,
            "virtual_uid_maps": "static:%d" % NOBODY.pw_uid,
            "virtual_gid_maps": "static:%d" % NOBODY.pw_gid,
            "virtual_mailbox_limit": "0",
            "message_size_limit": "0",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
        })
        if self.cert is not None:
            s.update({
                "smtpd_tls_security_level": "may",
                "smtpd_tls_cert_file": self.cert.chain_path,
                "smtpd_tls_key_file": self.cert.key_path,
                "smtpd_tls_received_header": "yes",
                "smtpd_tls_loglevel": "1",
            })
        else:
            s["smtpd_tls_security_level"] = "none"
        return s

    def _setup(self):
        super()._setup()
        with open(os.path.join(self.conf_dir, "vdomains"), "w") as f:
            f.write("/./ OK\n")
        os.makedirs(self.mail_dir, exist_ok=True)
        os.chown(self.mail_dir, NOBODY.pw_uid, NOBODY.pw_gid)

    def _all(self):
        """[(delivered_to, bytes)] for every stored message, oldest first."""
        files = glob.glob(os.path.join(self.mail_dir, "all", "new", "*"))
        files.sort(key=lambda p: (os.stat(p).st_mtime_ns, p))
        out = []
        for p in files:
            with open(p, "rb") as f:
                data = f.read()
            head = data.split(b"\n\n", 1)[0]
            m = re.search(rb"^Delivered-To: *(\S+)", head, re.M)
            out.append(((m.group(1).decode().lower() if m else ""), data))
        return out

    def messages(self, rcpt):
        """Every message delivered to rcpt so far, oldest first, as bytes."""
        rcpt = rcpt.lower()
        return [d for r, d in self._all() if r == rcpt]

    def recipients(self):
        """Every address that got a message here (sorted, unique)."""
        return sorted({r for r, _ in self._all()})

    def wait_for_message(self, rcpt, timeout=20, count=1):
        """Wait until rcpt has at least count messages; return the count-th (bytes)."""
        msgs = net.wait_until(lambda: len(self.messages(rcpt)) >= count and
                              self.messages(rcpt), timeout,
                              what="message %d for %s at %s:%d" % (count, rcpt, self.addr,
                                                                   self.port))
        return msgs[count - 1]

    @staticmethod
    def parse(message):
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(message)

    @staticmethod
    def tls_of(message):
        return tls_of(message)

    def clear(self):
        """Forget every delivered message."""
        for p in glob.glob(os.path.join(self.mail_dir, "all", "new", "*")):
            os.unlink(p)


class Sender(PostfixInstance):
    """The sending MTA: accepts submissions and relays all mail to relayhost."""

    role = "sender"

    def __init__(self, basedir, addr, port, relayhost, hostname="sender.example.test"):
        super().__init__(basedir, addr, port, hostname)
        self.relayhost = relayhost

    def _settings(self):
        s = super()._settings()
        s.update({
            "relayhost": self.relayhost,
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "message_size_limit": "0",
        })
        return s

    def set_relayhost(self, relayhost):
        self.relayhost = relayhost
        _postconf(self.conf_dir, "-e", "relayhost = " + relayhost)
        subprocess.run(["postfix", "-c", self.conf_dir, "reload"], capture_output=True)

    def sent_lines(self):
        """maillog lines of successful relay deliveries (status=sent)."""
        return [l for l in self.log().splitlines() if "status=sent" in l]
