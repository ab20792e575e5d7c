"""Scripted key servers for the key search tests: one small HTTP(S) server in Python that
answers the VKS API (keys.openpgp.org), HKP lookups and Web Key Directory paths from a
script the test sets, records every request, and can sleep before answering.

    s = KeyServer("127.0.0.101", 8080).start()            # plain http
    s = KeyServer("127.0.0.102", 443, cert=c).start()     # https with a pwtest.ca.Cert
    s.answer("alice@example.test", body=armored_key)      # VKS, HKP and WKD for alice
    s.answer("bob@example.test", status=404)
    s.delay = 0.2                                         # every answer waits 200 ms
    s.requests_for("alice@example.test")                  # how often alice was asked

An address without a script gets 404. Requests are matched to addresses by their path:
  VKS  /vks/v1/by-email/<urlencoded address>
  HKP  /pks/lookup?op=get&options=mr&search=<address>&exact=on
  WKD  /.well-known/openpgpkey/[<domain>/]hu/<hash>?l=<local-part>  (the domain comes from
       the path (advanced) or the Host header (direct); the policy file is always served)
"""

import datetime
import http.server
import ipaddress
import os
import socketserver
import ssl
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import ca as pw_ca
from . import keys as pk
from . import net


def issue_cert(test_ca, *names):
    """A server certificate from test_ca (a pwtest.ca.TestCA) for host names and IP
    addresses (pwtest.ca issues DNS names only; a keyserver URL may be an address)."""
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    priv = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(test_ca.ca.cert.subject)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .serial_number(x509.random_serial_number()).public_key(priv.public_key())
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(test_ca.key, hashes.SHA256()))
    stem = "ks-%s-%d" % (names[0], len(os.listdir(test_ca.directory)))
    return pw_ca.Cert(cert, priv, test_ca.directory, stem, chain=[test_ca.ca.cert])


class Script:
    """How one address is answered."""

    def __init__(self, status=200, body=b"", content_type="application/pgp-keys",
                 delay=None, headers=()):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.delay = delay
        self.headers = list(headers)


class Request:
    """One request as received."""

    def __init__(self, kind, address, path, host, t):
        self.kind = kind          # vks | hkp | wkd | policy | other
        self.address = address    # lowercased, None when not found in the path
        self.path = path
        self.host = host
        self.time = t

    def __repr__(self):
        return "<Request %s %s %s>" % (self.kind, self.address, self.path)


def _wkd_address(parts, query, host):
    """(kind, address) of a WKD path split at '/' (after .well-known/openpgpkey)."""
    if parts and parts[-1] == "policy":
        return "policy", None
    if len(parts) == 3 and parts[1] == "hu":       # advanced: <domain>/hu/<hash>
        domain = parts[0]
    elif len(parts) == 2 and parts[0] == "hu":     # direct: hu/<hash>, domain from Host
        domain = (host or "").split(":")[0]
        if domain.startswith("openpgpkey."):
            domain = domain[len("openpgpkey."):]
    else:
        return "other", None
    local = query.get("l", [None])[0]
    if local is None or pk.wkd_hash(local) != parts[-1]:
        return "wkd", None
    return "wkd", ("%s@%s" % (local, domain)).lower()


def classify(path, host):
    """(kind, lowercased address or None) of a request path."""
    u = urllib.parse.urlsplit(path)
    q = urllib.parse.parse_qs(u.query)
    p = u.path
    if p.startswith("/vks/v1/by-email/"):
        return "vks", urllib.parse.unquote(p[len("/vks/v1/by-email/"):]).lower()
    if p == "/pks/lookup":
        s = q.get("search", [None])[0]
        if s and s.startswith("<") and s.endswith(">"):
            s = s[1:-1]
        return "hkp", s.lower() if s else None
    if p.startswith("/.well-known/openpgpkey/"):
        return _wkd_address(p[len("/.well-known/openpgpkey/"):].split("/"), q, host)
    return "other", None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pwtest-keyserver"

    def log_message(self, fmt, *args):
        self.server.owner._log("%s %s" % (self.client_address[0], fmt % args))

    def do_GET(self):
        owner = self.server.owner
        kind, addr = classify(self.path, self.headers.get("Host"))
        owner._record(Request(kind, addr, self.path, self.headers.get("Host"),
                              time.monotonic()))
        if kind == "policy":
            return self._send(Script(200, b"", "application/octet-stream"))
        script = owner.script_for(kind, addr)
        delay = script.delay if script.delay is not None else owner.delay
        if delay:
            time.sleep(delay)
        self._send(script)

    def _send(self, script):
        body = script.body
        try:
            self.send_response(script.status)
            if script.content_type:
                self.send_header("Content-Type", script.content_type)
            for k, v in script.headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (OSError, ssl.SSLError):
            pass    # the client went away (a search answered early, a command that exited)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class KeyServer:
    """A scripted VKS/HKP/WKD server on addr:port, https when cert (a pwtest.ca.Cert)."""

    def __init__(self, addr, port=None, cert=None, log_path=None):
        net.ensure_loopback_addr(addr)
        self.addr = addr
        self.port = port or net.free_port(addr)
        self.cert = cert
        self.log_path = log_path
        self.delay = 0.0
        self.scripts = {}          # (kind or None, address) -> Script
        self.requests = []
        self._lock = threading.Lock()
        self._srv = None
        self._thread = None

    @property
    def scheme(self):
        return "https" if self.cert else "http"

    @property
    def url(self):
        """Base URL (what vks_servers / hkp_servers take)."""
        default = 443 if self.cert else 80
        if self.port == default:
            return "%s://%s" % (self.scheme, self.addr)
        return "%s://%s:%d" % (self.scheme, self.addr, self.port)

    def start(self):
        self._srv = _Server((self.addr, self.port), _Handler)
        self._srv.owner = self
        if self.cert is not None:
            ctx = self.cert.server_context()
            self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True)
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    # -- script --------------------------------------------------------------

    def answer(self, address, body=b"", status=200, kind=None,
               content_type="application/pgp-keys", delay=None, headers=()):
        """Answer requests for address (of kind vks/hkp/wkd, or any kind when None)."""
        self.scripts[(kind, address.lower())] = Script(status, body, content_type, delay,
                                                       headers)

    def script_for(self, kind, address):
        if address is None:
            return Script(404, b"not found\n", "text/plain")
        s = self.scripts.get((kind, address)) or self.scripts.get((None, address))
        return s or Script(404, b"not found\n", "text/plain")

    def reset(self):
        """Forget the recorded requests."""
        with self._lock:
            self.requests = []

    # -- what happened ----------------------------------------------------------

    def _record(self, req):
        with self._lock:
            self.requests.append(req)

    def _log(self, line):
        if self.log_path:
            with self._lock, open(self.log_path, "a") as f:
                f.write("%.3f %s:%d %s\n" % (time.time(), self.addr, self.port, line))

    def requests_for(self, address, kind=None):
        """Requests that asked for address (and of kind, when given)."""
        with self._lock:
            return [r for r in self.requests
                    if r.address == address.lower() and (kind is None or r.kind == kind)]

    def key_requests(self):
        """Every request except WKD policy fetches."""
        with self._lock:
            return [r for r in self.requests if r.kind != "policy"]
