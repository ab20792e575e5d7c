"""postwarden for the key search tests: `keys search` on the command line and `serve` with
the HTTP API, plus a small API client and readers for the search JSON.

Web sources are found by name (WKD: openpgpkey.<domain> and <domain>). The test zones
carry A records for those names, and the process also gets a private /etc/hosts with the
same names (a private mount namespace: `unshare --mount` + `mount --bind`, the host's file
is never touched), so the names resolve whether the HTTP client asks DNS or the system.

The JSON readers below are the one place that knows the field names of docs/keysearch.md.
"""

import http.client
import json
import subprocess
import time

from . import net
from . import relay as pw_relay

# Run "$@" after binding $0 over /etc/hosts (in the private mount namespace).
_BIND_HOSTS = 'mount --bind "$0" /etc/hosts && exec "$@"'


def write_hosts(path, names):
    """A hosts file: localhost plus {name: address}."""
    with open(path, "w") as f:
        f.write("127.0.0.1 localhost\n")
        for name, addr in sorted(names.items()):
            f.write("%s %s\n" % (addr, name))
    return path


def wrap(argv, hosts_file):
    if not hosts_file:
        return list(argv)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _BIND_HOSTS,
            hosts_file] + list(argv)


def sanitizer_report(text):
    return "ERROR: AddressSanitizer" in text or "runtime error:" in text


class Searcher(pw_relay.Relay):
    """A pwtest Relay whose CLI and daemon run with a private /etc/hosts, with the API."""

    def __init__(self, workdir, remote_port, unbound_config, hosts_file=None, api=True,
                 prefix=(), **options):
        """hosts_file: the private /etc/hosts; prefix: argv run before postwarden's (e.g.
        `ip netns exec NAME`)."""
        self.hosts_file = hosts_file
        self.prefix = list(prefix)
        super().__init__(workdir, remote_port, unbound_config, **options)
        self.api_port = None
        if api and "listen" not in self.sections.get("api", {}):
            self.api_port = net.free_port("127.0.0.1")
            self.set("api_listen", "127.0.0.1:%d" % self.api_port)
            self.write_conf()
        elif api:
            self.api_port = int(self.sections["api"]["listen"].rsplit(":", 1)[1])

    def start(self, timeout=20):
        self.write_conf()
        log = open(self.log_path, "a")
        argv = self.prefix + wrap([pw_relay.binary(), "-c", self.conf_path, "serve"],
                                  self.hosts_file)
        log.write("==== start %d: %s\n" % (self.starts + 1, " ".join(argv)))
        log.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=pw_relay.daemon_env(), cwd=self.dir)
        log.close()
        self.starts += 1
        try:
            net.wait_port(self.listen_addr, self.port, timeout=timeout, proc=self.proc)
            if self.api_port:
                net.wait_port("127.0.0.1", self.api_port, timeout=timeout, proc=self.proc)
        except Exception as e:
            raise RuntimeError("%s\n--- postwarden log ---\n%s" % (e, self.log()[-4000:]))
        return self

    def pw(self, *args, check=False, timeout=60):
        argv = self.prefix + wrap([pw_relay.binary(), "-c", self.conf_path] +
                                  [str(a) for a in args], self.hosts_file)
        r = subprocess.run(argv, capture_output=True, text=True, env=pw_relay.daemon_env(),
                           timeout=timeout, cwd=self.dir)
        with open(self.log_path, "a") as f:
            f.write("$ postwarden %s\n[exit %d]\n--- stdout\n%s\n--- stderr\n%s\n"
                    % (" ".join(map(str, args)), r.returncode, r.stdout[:20000], r.stderr))
        assert not sanitizer_report(r.stderr), r.stderr
        if check and r.returncode != 0:
            raise AssertionError("postwarden %s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r

    def search(self, addr, *extra, expect_rc=None):
        """`keys search ADDR --json EXTRA`; returns (exit code, parsed JSON or None)."""
        r = self.pw("keys", "search", addr, "--json", *extra)
        if expect_rc is not None:
            assert r.returncode == expect_rc, \
                "keys search %s exited %d, expected %d\nstdout: %s\nstderr: %s" % (
                    addr, r.returncode, expect_rc, r.stdout, r.stderr)
        try:
            j = json.loads(r.stdout)
        except ValueError:
            j = None
        return r.returncode, j

    def api(self, path, token=None, timeout=30):
        """GET path on the API; returns (status, headers dict, body bytes, seconds)."""
        return api_get("127.0.0.1", self.api_port, path, token, timeout)


def api_get(host, port, path, token=None, timeout=30, conn=None):
    """One GET with an optional bearer token; returns (status, headers, body, seconds)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer %s" % token
    t = time.monotonic()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    dt = time.monotonic() - t
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    if own:
        conn.close()
    return resp.status, hdrs, body, dt


# -- reading the search JSON ------------------------------------------------------------

def _first(d, *names, default=None):
    for n in names:
        if isinstance(d, dict) and n in d:
            return d[n]
    return default


def norm_fpr(s):
    return (s or "").replace(" ", "").replace(":", "").upper()


def keys_of(j):
    """The list of distinct keys of a search result."""
    return _first(j, "keys", "results", default=[]) or []


def key_id(k):
    """Fingerprint (OpenPGP) or certificate SHA-256 (S/MIME), normalised."""
    return norm_fpr(_first(k, "fingerprint", "fpr", "sha256", "cert_sha256", "id"))


def key_type(k):
    return _first(k, "type", "kind")


def key_data(k):
    """The armored key or PEM certificate."""
    return _first(k, "key", "armored", "content", "pem", "data")


def key_sources(k):
    """{source name: trust} of every source that returned k."""
    out = {}
    for s in _first(k, "sources", "found_by", default=[]) or []:
        if isinstance(s, str):
            out[s] = None
        else:
            out[_first(s, "source", "name")] = _first(s, "trust", "trust_level", "level")
    return out


def key_trust(k):
    """The key's own (best) trust, or the best of its sources."""
    return _first(k, "trust", "trust_level")


def recommended_id(j):
    """Fingerprint of the recommended key (or None)."""
    r = _first(j, "recommended", "recommendation")
    if r is None:
        return None
    if isinstance(r, dict):
        return key_id(r)
    if isinstance(r, int) and not isinstance(r, bool):
        ks = keys_of(j)
        return key_id(ks[r]) if 0 <= r < len(ks) else None
    return norm_fpr(r)


def statuses(j):
    """{source: status object} of a search result (several servers of one source: the
    source name maps to the list of their objects' statuses joined by ',')."""
    out = {}
    for s in _first(j, "status", "statuses", "sources", default=[]) or []:
        name = _first(s, "source", "name")
        out.setdefault(name, []).append(s)
    return out


def status_of(j, source):
    """The status strings of source (one per server; usually one)."""
    return [_first(s, "status", "state") for s in statuses(j).get(source, [])]


def ids(j):
    return sorted(key_id(k) for k in keys_of(j))
