"""nginx serving Web Key Directory sites for the key search tests, on the host's loopback.

WKD URLs carry no port, so nginx listens on ADDR:443 (and ADDR:80 for the redirect case)
of an address of its own; the test zones' A records for openpgpkey.<domain> and <domain>
point there. One nginx holds every site, told apart by server name (SNI and Host), each
with a docroot of its own; one certificate from the test CA covers every name.

A site may redirect every request to http:// on the same name (port 80), where the same
files are served plainly: a client that followed the redirect would find the key, and the
plain server's access log shows whether anyone came.
"""

import os
import subprocess
import time

from . import net, nginxconf

# Requests for unknown names (the first server is the default) get 404.
_DEFAULT = """\
    server {{
        listen {addr}:443 ssl default_server;
        listen {addr}:80 default_server;
        server_name _;
        return 404;
    }}
"""

# The access log names the port and the Host of each request (accesses_to() reads them).
_LOG_FORMAT = '$remote_addr $server_port $host "$request" $status $body_bytes_sent'

_SITE = """\
    server {{
        listen {addr}:443 ssl;
        server_name {names};
        root {docroot};
        location / {{
            {body}
        }}
    }}
"""

_PLAIN = """\
    server {{
        listen {addr}:80;
        server_name {names};
        root {docroot};
    }}
"""


class Site:
    """One WKD site: host names, a docroot, and whether it redirects to plain http."""

    def __init__(self, names, docroot, redirect_http=False):
        self.names = list(names)
        self.docroot = docroot
        self.redirect_http = redirect_http


class WkdNginx:
    """nginx on addr:443 (+ :80) for a set of Sites, with cert (a pwtest.ca.Cert)."""

    def __init__(self, workdir, addr, cert):
        self.dir = workdir
        self.addr = addr
        self.cert = cert
        self.sites = []
        self.conf = os.path.join(workdir, nginxconf.CONF)
        self.log_path = nginxconf.error_log(workdir)
        self.access_log = nginxconf.access_log(workdir)
        self.proc = None

    def site(self, names, redirect_http=False):
        """Add a site; returns its docroot (created)."""
        docroot = os.path.join(self.dir, "site%d" % (len(self.sites) + 1))
        os.makedirs(docroot, exist_ok=True)
        self.sites.append(Site(names, docroot, redirect_http))
        return docroot

    def _servers(self):
        text = _DEFAULT.format(addr=self.addr)
        for s in self.sites:
            if s.redirect_http:
                body = "return 302 http://$host$request_uri;"
            else:
                body = ("default_type application/octet-stream; "
                        "add_header Access-Control-Allow-Origin * always;")
            text += _SITE.format(addr=self.addr, names=" ".join(s.names), docroot=s.docroot,
                                 body=body)
            if s.redirect_http:
                text += _PLAIN.format(addr=self.addr, names=" ".join(s.names),
                                      docroot=s.docroot)
        return text

    def _config(self):
        return nginxconf.render(self.dir, self._servers(), cert=self.cert,
                                log_format=_LOG_FORMAT, connections=256)

    def start(self, timeout=15):
        net.ensure_loopback_addr(self.addr)
        os.makedirs(self.dir, exist_ok=True)
        # nginx's workers run as nobody and must reach the docroots.
        os.chmod(self.dir, 0o755)
        nginxconf.write_text(self.dir, self._config())
        self.proc = subprocess.Popen(nginxconf.argv(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "nginx.stderr"), "w"))
        deadline = time.monotonic() + timeout
        for port in (443, 80):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("nginx exited with %s; see %s/nginx.stderr"
                                       % (self.proc.returncode, self.dir))
                try:
                    net.wait_port(self.addr, port, timeout=0.2, proc=self.proc)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise
        return self

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None

    def accesses(self):
        """Access log lines: 'addr port host "request" status bytes'."""
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def accesses_to(self, host, port=None):
        out = []
        for line in self.accesses():
            f = line.split()
            if len(f) >= 3 and f[2] == host and (port is None or f[1] == str(port)):
                out.append(line)
        return out
