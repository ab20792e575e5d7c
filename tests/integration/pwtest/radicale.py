"""Radicale 3 (Debian's radicale) as a CardDAV server on a loopback port, for the address
book migration tests: htpasswd users (plain or bcrypt), its storage in a directory of the
test's own, and a small client to fill and read address books (MKCOL, PUT, GET, PROPFIND).

The server is a child that the kernel kills when the test process ends (PR_SET_PDEATHSIG),
and stop() ends it at the end of the test."""

import base64
import ctypes
import http.client
import os
import re
import signal
import subprocess
import sys

from . import net

PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Radicale:
    def __init__(self, workdir, users, encryption="plain", name="radicale"):
        """users: {name: password}. encryption: "plain" or "bcrypt" (python3-bcrypt)."""
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.users = dict(users)
        self.port = net.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.log = os.path.join(self.dir, "radicale.log")
        htpasswd = os.path.join(self.dir, "htpasswd")
        with open(htpasswd, "w") as f:
            for u, p in users.items():
                if encryption == "bcrypt":
                    import bcrypt
                    p = bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
                f.write("%s:%s\n" % (u, p))
        conf = os.path.join(self.dir, "config")
        with open(conf, "w") as f:
            f.write("[server]\nhosts = 127.0.0.1:%d\n"
                    "[auth]\ntype = htpasswd\nhtpasswd_filename = %s\n"
                    "htpasswd_encryption = %s\ndelay = 0\n"
                    "[storage]\nfilesystem_folder = %s\n"
                    "[rights]\ntype = owner_only\n"
                    "[logging]\nlevel = warning\n"
                    % (self.port, htpasswd, encryption, os.path.join(self.dir, "collections")))
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", "-m", "radicale", "--config", conf],
            stdout=self._logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            env={"PATH": "/usr/bin:/bin", "HOME": self.dir})
        net.wait_port("127.0.0.1", self.port, timeout=20, proc=self.proc)

    def stop(self):
        net.stop_process(self.proc)
        self._logf.close()

    # -- a small client -----------------------------------------------------------------

    def request(self, user, method, path, body=None, headers=None):
        """One request as user; returns (status, headers dict, body bytes)."""
        h = dict(headers or {})
        token = base64.b64encode(("%s:%s" % (user, self.users[user])).encode()).decode()
        h["Authorization"] = "Basic " + token
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def make_book(self, user, name, displayname):
        body = ('<?xml version="1.0"?><d:mkcol xmlns:d="DAV:" '
                'xmlns:c="urn:ietf:params:xml:ns:carddav"><d:set><d:prop><d:resourcetype>'
                '<d:collection/><c:addressbook/></d:resourcetype><d:displayname>%s'
                '</d:displayname></d:prop></d:set></d:mkcol>' % displayname).encode()
        st, _, data = self.request(user, "MKCOL", "/%s/%s/" % (user, name), body,
                                   {"Content-Type": "application/xml"})
        assert st == 201, (st, data)

    def put(self, user, book, name, card):
        st, _, data = self.request(user, "PUT", "/%s/%s/%s" % (user, book, name), card,
                                   {"Content-Type": "text/vcard"})
        assert st in (201, 204), (st, data)

    def get(self, user, book, name):
        st, _, data = self.request(user, "GET", "/%s/%s/%s" % (user, book, name))
        assert st == 200, (st, data)
        return data

    def _propfind(self, user, path):
        st, _, data = self.request(user, "PROPFIND", path,
                                   b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop>'
                                   b'<resourcetype/></prop></propfind>', {"Depth": "1"})
        assert st == 207, (st, data)
        return [h for h in re.findall(r"<(?:\w+:)?href>([^<]*)</(?:\w+:)?href>", data.decode())
                if h.rstrip("/") != path.rstrip("/")]

    def books(self, user):
        """Names of user's address books."""
        return sorted(h.rstrip("/").rsplit("/", 1)[-1] for h in self._propfind(user, "/%s/" % user))

    def cards(self, user, book):
        """{resource name: bytes} of every card in a book."""
        out = {}
        for h in self._propfind(user, "/%s/%s/" % (user, book)):
            name = h.rsplit("/", 1)[-1]
            out[name] = self.get(user, book, name)
        return out


def postwarden():
    return os.environ.get("POSTWARDEN", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build", "asan",
        "postwarden"))


if __name__ == "__main__":
    sys.exit("a fixture module, not a program")
