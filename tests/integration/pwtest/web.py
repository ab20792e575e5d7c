"""nginx serving a Web Key Directory tree over HTTPS inside a network namespace.

The docroot is what postwarden's [keydir] wkd_dir points at: it holds
.well-known/openpgpkey/<domain>/hu/<hash> and .well-known/openpgpkey/<domain>/policy
(the advanced method, served as https://openpgpkey.<domain>/). nginx runs in the
foreground with its own prefix, config and temp paths (pwtest.nginxconf), so nothing of the
system's nginx (/etc/nginx, /var/lib/nginx, /run/nginx.pid) is used.
"""

import os
import subprocess
import time

from . import net, nginxconf

# The server block; the rest of the configuration is pwtest.nginxconf's.
SERVER = """\
    server {{
        listen {addr}:{port} ssl;
        server_name {hostnames};
        root {docroot};
        location /.well-known/openpgpkey/ {{
            default_type application/octet-stream;
            add_header Access-Control-Allow-Origin * always;
        }}
    }}
"""


class Nginx:
    """One nginx in netns on addr:port with TLS (a pwtest.ca.Cert) and docroot."""

    def __init__(self, netns, workdir, cert, docroot, hostnames, addr="127.0.0.2", port=443):
        self.ns = netns
        self.dir = workdir
        self.cert = cert
        self.docroot = docroot
        self.hostnames = list(hostnames)
        self.addr = addr
        self.port = port
        self.conf = os.path.join(workdir, nginxconf.CONF)
        self.log_path = nginxconf.error_log(workdir)
        self.access_log = nginxconf.access_log(workdir)
        self.proc = None

    def start(self, timeout=15):
        os.makedirs(self.docroot, exist_ok=True)
        nginxconf.write(self.dir, SERVER.format(
            addr=self.addr, port=self.port, hostnames=" ".join(self.hostnames),
            docroot=self.docroot), cert=self.cert)
        self.proc = self.ns.popen(nginxconf.argv(self.dir),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(self.dir, "nginx.stderr"), "w"))
        deadline = time.monotonic() + timeout
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited with %s; see %s and %s/nginx.stderr"
                                   % (self.proc.returncode, self.log_path, self.dir))
            if time.monotonic() > deadline:
                raise TimeoutError("nginx does not listen on %s:%d in %s"
                                   % (self.addr, self.port, self.ns.name))
            time.sleep(0.05)
        return self

    def _listening(self):
        r = self.ns.run(["ss", "-Hltn", "src", "%s:%d" % (self.addr, self.port)], timeout=10)
        return r.returncode == 0 and r.stdout.strip() != ""

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None

    def get(self, url, ca_bundle):
        """Fetch url from inside the namespace (its DNS, its 127.0.0.2), verifying the
        server against ca_bundle only; returns (http_status, body bytes)."""
        r = self.ns.run(["/usr/bin/python3", "-c", _FETCH, url, ca_bundle], text=False,
                        timeout=20)
        if r.returncode != 0:
            raise RuntimeError("fetching %s failed (%d): %s" % (
                url, r.returncode, r.stderr.decode(errors="replace")))
        code, _, body = r.stdout.partition(b"\n")
        return int(code), body


# Run in the namespace by get(): prints the status line, then the body.
_FETCH = """
import ssl, sys, urllib.error, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    resp = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10)
    code, body = resp.status, resp.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
sys.stdout.buffer.write(b"%d\\n" % code + body)
"""
