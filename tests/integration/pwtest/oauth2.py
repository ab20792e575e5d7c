"""A scripted OAuth 2.0 token introspection endpoint (RFC 7662 style) on loopback, for a
Dovecot whose oauth2 passdb checks OAUTHBEARER and XOAUTH2 logins against it.

No real OAuth provider is packaged in Debian, and Dovecot needs nothing more of one than
this: for a known, active token the answer is {"active": true, "username": USER}, for
anything else {"active": false}. The token comes as a form body (introspection_mode = post:
token=...) or at the end of the URL (introspection_mode = get: .../introspect?token=...).
Every token asked about is recorded, so a test can show that the server really checked it.
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import net

MAX_BODY = 16384


class Introspection:
    """tokens: {token: username} of the active tokens; inactive ({token: None}) and
    unknown tokens are answered {"active": false}."""

    def __init__(self, tokens, addr="127.0.0.1"):
        self.tokens = dict(tokens)
        self.asked = []           # (method, token) in the order Dovecot asked
        self.lock = threading.Lock()
        self.addr = addr
        self.port = None
        self.httpd = None
        self.thread = None

    def url(self):
        """The introspection_url for Dovecot (with mode "get" the token is appended)."""
        return "http://%s:%d/introspect?token=" % (self.addr, self.port)

    def answer(self, method, token):
        with self.lock:
            self.asked.append((method, token))
        user = self.tokens.get(token) if token else None
        return {"active": True, "username": user} if user else {"active": False}

    def start(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _token(self, query):
                values = urllib.parse.parse_qs(query, keep_blank_values=True).get("token")
                return values[-1] if values and values[-1] else None

            def do_GET(self):
                query = urllib.parse.urlsplit(self.path).query
                self._reply(outer.answer("GET", self._token(query)))

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n > MAX_BODY:
                    self.send_error(413)
                    return
                body = self.rfile.read(n).decode("ascii", "replace")
                self._reply(outer.answer("POST", self._token(body)))

        self.port = net.free_port(self.addr)
        self.httpd = ThreadingHTTPServer((self.addr, self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def tokens_asked(self):
        with self.lock:
            return [t for _, t in self.asked]
