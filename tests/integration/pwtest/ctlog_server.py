"""Serving the CT test logs of pwtest.ctlog: an RFC 6962 log over HTTP (a threaded
http.server on loopback, with switches for every misbehaviour the monitor must catch) and
nginx serving a static-ct-api log's files.

RFC6962Server(log, addr="127.0.0.1", port=None, prefix="/", max_batch=100, cert=None)
    .start() / .stop(); .url is the log URL (ending in "/"), e.g. http://127.0.0.1:PORT/
    Endpoints (RFC 6962 4.3-4.7, 4.6 get-entries clamped to max_batch and to the published
    tree): <prefix>ct/v1/get-sth, get-sth-consistency?first=&second=,
    get-proof-by-hash?hash=&tree_size=, get-entries?start=&end=, get-roots.
    .publish(size=None) -> SignedTreeHead: sign and serve a new STH (the log may have grown
    with log.add_*; nothing beyond the published size is served).
    .requests: list of (path, query string, view) served so far (view "a" or "b").
    .request_times: time.monotonic() of each request's arrival, in the same order.
    .peak_in_flight: the most requests the server was answering at one time.
    .answered: the get-entries start indexes in the order their answers were sent.

Pacing switches (to see a client's parallel requests):
    delay = seconds, or a function (start, end) -> seconds: get-entries answers wait so
                            long (outside the lock, so other requests go on meanwhile)
    shorten = function (start, end) -> end: get-entries serves only start..end' (a short
                            answer, on top of max_batch)
    rate_limit_entries(start, retry_after)  the first get-entries from start on gets 429;
                            .limited_at is the time.monotonic() it was answered

Misbehaviour switches (attributes; flip them at any time, they act on the next request):
    down = True             every request is answered by closing the connection (a log
                            that is unreachable, even over connections kept alive)
    entries_down = True     get-entries is answered 503 (tree heads and proofs still are:
                            the log grows while the monitor cannot read it)
    forge_sth = True        get-sth is signed by an impostor key (same JSON, bad signature)
    break_consistency = True one hash of every non-empty consistency proof is altered
    split(fork_log, mode)   a second tree of the same size, validly signed: mode
                            "client" (every second TCP connection, counted from the
                            split() call on), "alternate" (every second get-sth request),
                            "header" (requests carrying "X-CT-View: b"), or "port"
                            (everything on .split_port, a second listener). Entries and
                            proofs follow the view for "client", "header" and "port";
                            "alternate" only swaps STHs.
    shrink_to(size)         get-sth serves a validly signed STH of a smaller tree
    altered = {index: bytes or None}  get-entries serves these leaves with other
                            certificate bytes (None: the DER's last byte flipped), so they
                            no longer hash to the root
    rate_limit(k, retry_after=1)  the next k requests get 429 with Retry-After
    garbage DER that the tree does cover: Log.add_raw(b"...") then publish().

StaticNginx(workdir, docroot, addr="127.0.0.1", port=None, gzip_data=False, cert=None)
    nginx serving docroot (a StaticLog's) on http(s)://addr:port/ ; .url.
    With gzip_data, data tiles (stored compressed) are sent with Content-Encoding: gzip.
"""

import base64
import http.server
import json
import os
import socketserver
import subprocess
import threading
import time
import urllib.parse

from . import ctlog
from . import net
from . import nginxconf


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, request, client_address, server, conn_view="a"):
        self.conn_view = conn_view  # the split view this connection sees ("client" mode)
        super().__init__(request, client_address, server)

    def log_message(self, fmt, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server.ct
        if srv.down:   # hang up without an answer, also on kept-alive connections
            self.close_connection = True
            return
        url = urllib.parse.urlsplit(self.path)
        view = "b" if self.server.view_b else self.conn_view
        if srv.split_mode == "header" and self.headers.get("X-CT-View") == "b":
            view = "b"
        try:
            status, body, headers = srv.handle(url.path, urllib.parse.parse_qs(url.query),
                                               view)
        except (KeyError, ValueError, IndexError) as e:
            status, body, headers = 400, ("bad request: %s\n" % e).encode(), {}
        self.send_response(status)
        ctype = "application/json" if status == 200 else "text/plain"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, so that a slow or
        # plain-text client cannot hold up the accept loop.
        if self.ssl_ctx is not None:
            request = self.ssl_ctx.wrap_socket(request, server_side=True)
        _Handler(request, client_address, self, self.ct.connection_view())

    def handle_error(self, request, client_address):
        pass  # clients that hang up or fail the handshake are the tests' business


class RFC6962Server:
    """An RFC 6962 log over HTTP (see the module docstring)."""

    def __init__(self, log, addr="127.0.0.1", port=None, prefix="/", max_batch=100,
                 cert=None):
        self.log = log
        self.addr = addr
        self.port = port or net.free_port(addr)
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.max_batch = max_batch
        self.cert = cert
        self.lock = threading.Lock()
        self.requests = []
        self.request_times = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.answered = []
        self.delay = 0
        self.shorten = None
        self._limit_entries = None
        self.limited_at = None
        self.sth = None
        self.forge_sth = False
        self.down = False
        self.entries_down = False
        self.break_consistency = False
        self.altered = {}
        self.split_mode = None
        self.fork_log = None
        self.fork_sth = None
        self.split_port = None
        self.shrunk_sth = None
        self._limit = 0
        self._retry_after = 1
        self._sth_count = 0
        self._conn_count = 0
        self._impostor = ctlog.LogKey(log.key.kind)
        self._servers = []

    @property
    def url(self):
        scheme = "https" if self.cert else "http"
        return "%s://%s:%d%s" % (scheme, self.addr, self.port, self.prefix)

    @property
    def split_url(self):
        scheme = "https" if self.cert else "http"
        return "%s://%s:%d%s" % (scheme, self.addr, self.split_port, self.prefix)

    def _listen(self, port, view_b):
        s = _HTTPServer((self.addr, port), _Handler)
        s.ct, s.view_b = self, view_b
        if self.cert:
            s.ssl_ctx = self.cert.server_context()
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True,
                         name="ctlog-%d" % port).start()
        self._servers.append(s)

    def start(self):
        net.ensure_loopback_addr(self.addr)
        if self.sth is None:
            self.publish()
        self._listen(self.port, False)
        return self

    def stop(self):
        for s in self._servers:
            s.shutdown()
            s.server_close()
        self._servers = []

    def publish(self, size=None):
        sth = self.log.sth(size)
        with self.lock:
            self.sth = sth
        return sth

    # -- misbehaviour ------------------------------------------------------------------
    def split(self, fork_log, mode="alternate"):
        """Serve fork_log (same size and key, other entries) as a second view."""
        self.fork_log = fork_log
        self.fork_sth = fork_log.sth(self.sth.tree_size)
        with self.lock:
            self._conn_count = 0
        self.split_mode = mode
        if mode == "port" and self.split_port is None:
            self.split_port = net.free_port(self.addr)
            self._listen(self.split_port, True)

    def connection_view(self):
        """The view a new connection sees: "b" for every second one in "client" mode."""
        with self.lock:
            self._conn_count += 1
            odd = self._conn_count % 2 == 0
        return "b" if self.split_mode == "client" and odd else "a"

    def shrink_to(self, size):
        self.shrunk_sth = self.log.sth(size)

    def rate_limit(self, k, retry_after=1):
        with self.lock:
            self._limit, self._retry_after = k, retry_after

    def rate_limit_entries(self, start, retry_after):
        with self.lock:
            self._limit_entries = (start, retry_after)

    # -- requests ----------------------------------------------------------------------
    def handle(self, path, q, view):
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return self._handle(path, q, view)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _entries_pacing(self, path, q):
        """429 or a pause for a get-entries request, as the pacing switches say."""
        if not path.endswith("/get-entries"):
            return None
        start, end = int(q["start"][0]), int(q["end"][0])
        with self.lock:
            lim = self._limit_entries
            if lim is not None and start >= lim[0]:
                self._limit_entries = None
                self.limited_at = time.monotonic()
                return 429, b"slow down\n", {"Retry-After": str(lim[1])}
        wait = self.delay(start, end) if callable(self.delay) else self.delay
        if wait:
            time.sleep(wait)
        return None

    def _handle(self, path, q, view):
        with self.lock:
            self.requests.append((path, q, view))
            self.request_times.append(time.monotonic())
            if self._limit > 0:
                self._limit -= 1
                return 429, b"slow down\n", {"Retry-After": str(self._retry_after)}
        if self.entries_down and path.endswith("/get-entries"):
            return 503, b"unavailable\n", {}
        refused = self._entries_pacing(path, q)
        if refused is not None:
            return refused
        if not path.startswith(self.prefix + "ct/v1/"):
            return 404, b"not found\n", {}
        name = path[len(self.prefix + "ct/v1/"):]
        fn = getattr(self, "_" + name.replace("-", "_"), None)
        if fn is None:
            return 404, b"not found\n", {}
        log, sth = self._view(view, name)
        return 200, json.dumps(fn(q, log, sth)).encode(), {}

    def _view(self, view, name):
        with self.lock:
            if self.split_mode and view == "b":
                return self.fork_log, self.fork_sth
            if self.split_mode == "alternate" and name == "get-sth":
                self._sth_count += 1
                if self._sth_count % 2 == 0:
                    return self.fork_log, self.fork_sth
            return self.log, self.sth

    def _get_sth(self, q, log, sth):
        if self.shrunk_sth is not None and log is self.log:
            sth = self.shrunk_sth
        if self.forge_sth:
            bad = self._impostor.digitally_signed(
                ctlog.tree_head_input(sth.tree_size, sth.timestamp, sth.root))
            sth = ctlog.SignedTreeHead(sth.tree_size, sth.timestamp, sth.root, bad)
        return sth.json()

    def _get_sth_consistency(self, q, log, sth):
        first, second = int(q["first"][0]), int(q["second"][0])
        if not 0 <= first <= second <= sth.tree_size:
            raise ValueError("sizes out of range")
        proof = log.consistency_proof(first, second)
        if self.break_consistency and proof:
            proof[-1] = bytes([proof[-1][0] ^ 1]) + proof[-1][1:]
        return {"consistency": [ctlog.b64(h) for h in proof]}

    def _get_proof_by_hash(self, q, log, sth):
        want = base64.b64decode(q["hash"][0])
        size = int(q["tree_size"][0])
        if not 0 < size <= sth.tree_size:
            raise ValueError("tree_size out of range")
        i = log.index.get(want)
        if i is None or i >= size:
            raise KeyError("hash not in tree")
        return {"leaf_index": i,
                "audit_path": [ctlog.b64(h) for h in log.inclusion_path(i, size)]}

    def _get_entries(self, q, log, sth):
        start, end = int(q["start"][0]), int(q["end"][0])
        if start < 0 or end < start or start >= sth.tree_size:
            raise ValueError("start/end out of range")
        end = min(end, sth.tree_size - 1, start + self.max_batch - 1)
        if self.shorten is not None:
            end = max(start, min(end, self.shorten(start, end)))
        out = []
        for i in range(start, end + 1):
            e = log.entries[i]
            leaf = e.leaf_input()
            if log is self.log and i in self.altered:
                repl = self.altered[i]
                if repl is None:
                    repl = e.cert[:-1] + bytes([e.cert[-1] ^ 1])
                e = ctlog.Entry(e.kind, repl, e.chain, e.timestamp, e.tbs,
                                e.issuer_key_hash, e.extensions)
                if e.kind == ctlog.PRECERT_ENTRY:
                    e.tbs = e.tbs[:-1] + bytes([e.tbs[-1] ^ 1])
                leaf = e.leaf_input()
            out.append({"leaf_input": ctlog.b64(leaf), "extra_data": ctlog.b64(e.extra_data())})
        with self.lock:
            self.answered.append(start)
        return {"entries": out}

    def _get_roots(self, q, log, sth):
        return {"certificates": [ctlog.b64(log.ca.der)] if log.ca else []}


# -- nginx for static logs -------------------------------------------------------------------

_NGINX_SERVER = """\
    server {{
        listen {addr}:{port}{ssl};
        root {docroot};
        location = /checkpoint {{
            default_type "text/plain; charset=utf-8";
            add_header Cache-Control "no-store" always;
        }}
        location /tile/data/ {{
            {data_gzip}
            add_header Cache-Control "max-age=31536000, immutable" always;
        }}
        location /tile/ {{
            add_header Cache-Control "max-age=31536000, immutable" always;
        }}
        location /issuer/ {{
            default_type application/pkix-cert;
        }}
    }}
"""

_NGINX_LOG_FORMAT = '$remote_addr "$request" $status $body_bytes_sent'


class StaticNginx:
    """nginx on addr:port serving a static-ct-api docroot (see the module docstring)."""

    def __init__(self, workdir, docroot, addr="127.0.0.1", port=None, gzip_data=False,
                 cert=None):
        self.dir, self.docroot, self.addr = workdir, docroot, addr
        self.port = port or net.free_port(addr)
        self.gzip_data, self.cert = gzip_data, cert
        self.conf = os.path.join(workdir, nginxconf.CONF)
        self.access_log = nginxconf.access_log(workdir)
        self.proc = None

    @property
    def url(self):
        return "%s://%s:%d/" % ("https" if self.cert else "http", self.addr, self.port)

    def start(self, timeout=15):
        net.ensure_loopback_addr(self.addr)
        os.makedirs(self.docroot, exist_ok=True)
        net.make_traversable(self.docroot)
        server = _NGINX_SERVER.format(
            addr=self.addr, port=self.port, docroot=self.docroot,
            ssl=" ssl" if self.cert else "",
            data_gzip='add_header Content-Encoding gzip always;' if self.gzip_data else "")
        nginxconf.write(self.dir, server, cert=self.cert, log_format=_NGINX_LOG_FORMAT,
                        connections=128)
        err = open(os.path.join(self.dir, "nginx.stderr"), "w")
        self.proc = subprocess.Popen(nginxconf.argv(self.dir),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err)
        err.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                net.wait_port(self.addr, self.port, timeout=0.2, proc=self.proc)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def stop(self):
        net.stop_process(self.proc)
        self.proc = None

    def accesses(self):
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except OSError:
            return []


# -- both test logs at once ------------------------------------------------------------------

class CTTestLogs:
    """The monitor tests' standard setup in workdir: one CA, an RFC 6962 log (server) and
    a static-ct-api log (nginx), filled with the same certificates, and a v3 log list.

    CTTestLogs(workdir, names=("www.example.test",), filler=20, key="ec",
               static_key="ec", max_batch=100, gzip_data=False).start()
    .ca (ctlog.CTTestCA), .rfc_log / .rfc (RFC6962Server), .static_log / .static
    (ctlog.StaticLog) / .nginx (StaticNginx), .log_list_path, .log_list (dict).
    Both logs hold: filler unrelated certificates, then for every name in names a leaf
    certificate, a precertificate and its final certificate (indexes in .found[name] =
    [(rfc index, static index), ...]). add(der_or_pair) appends to both and publish()
    publishes both.
    """

    def __init__(self, workdir, names=("www.example.test",), filler=20, key="ec",
                 static_key="ec", max_batch=100, gzip_data=False):
        self.dir = workdir
        self.ca = ctlog.CTTestCA()
        self.rfc_log = ctlog.Log("postwarden rfc6962 test log", key, self.ca)
        self.static_log = ctlog.Log("postwarden static test log", static_key, self.ca,
                                    static=True)
        self.docroot = os.path.join(workdir, "static-docroot")
        self.nginx = StaticNginx(os.path.join(workdir, "nginx"), self.docroot,
                                 gzip_data=gzip_data)
        os.makedirs(self.nginx.dir, exist_ok=True)
        origin = "%s:%d" % (self.nginx.addr, self.nginx.port)
        self.static = ctlog.StaticLog(self.static_log, self.docroot, origin, gzip_data)
        self.rfc = RFC6962Server(self.rfc_log, max_batch=max_batch)
        self.found = {}
        for i in range(filler):
            self.add(self.ca.issue(["filler%d.other.test" % i]))
        for n in names:
            self.found[n] = [self.add(self.ca.issue([n]))]
            pre, final = self.ca.issue_precert([n])
            self.found[n].append(self.add(pre, precert=True))
            self.found[n].append(self.add(final))
        self.log_list_path = os.path.join(workdir, "log_list.json")

    def add(self, der, precert=False):
        if precert:
            return self.rfc_log.add_precert(der), self.static_log.add_precert(der)
        return self.rfc_log.add_cert(der), self.static_log.add_cert(der)

    def publish(self):
        return self.rfc.publish(), self.static.publish()

    def start(self):
        self.publish()
        self.rfc.start()
        self.nginx.start()
        self.log_list = ctlog.write_log_list(
            self.log_list_path, rfc_logs=[(self.rfc_log, self.rfc.url)],
            tiled_logs=[(self.static_log, "http://%s/" % self.static.origin,
                         self.nginx.url)])
        return self

    def stop(self):
        self.rfc.stop()
        self.nginx.stop()
