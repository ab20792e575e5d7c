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

from . import net

_HEAD = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    log_format pw '$remote_addr $server_port $host "$request" $status $body_bytes_sent';
    access_log {d}/access.log pw;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ }}
    default_type application/octet-stream;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen {addr}:443 ssl default_server;
        listen {addr}:80 default_server;
        server_name _;
        return 404;
    }}
"""

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
        self.conf = os.path.join(workdir, "nginx.conf")
        self.log_path = os.path.join(workdir, "error.log")
        self.access_log = os.path.join(workdir, "access.log")
        self.proc = None

    def site(self, names, redirect_http=False):
        """Add a site; returns its docroot (created)."""
        docroot = os.path.join(self.dir, "site%d" % (len(self.sites) + 1))
        os.makedirs(docroot, exist_ok=True)
        self.sites.append(Site(names, docroot, redirect_http))
        return docroot

    def _config(self):
        text = _HEAD.format(d=self.dir, cert=self.cert.chain_path, key=self.cert.key_path,
                            addr=self.addr)
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
        return text + "}\n"

    def start(self, timeout=15):
        net.ensure_loopback_addr(self.addr)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        # nginx's workers run as nobody and must reach the docroots.
        os.chmod(self.dir, 0o755)
        with open(self.conf, "w") as f:
            f.write(self._config())
        for p in (self.log_path, self.access_log):
            open(p, "a").close()
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf, "-e",
                                      self.log_path],
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
