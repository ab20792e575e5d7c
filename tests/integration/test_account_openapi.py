"""docs/openapi.json against the servers: every route serve registers is described, and
every described route exists.

Registered routes are read from the sources (the acct_route calls of src/account/, the
paths the admin API compares in src/keysearch/ks_api.c, the prefixes cli_serve.c hands it
with ks_api_route, /metrics); described routes are requested on a running serve, on each
listener the path names in x-listeners, and must not meet the router's own 404 ("no such
endpoint" / "unknown endpoint") or a 405. A request for an undescribed path and one with a
method the path does not take are the controls that the check sees a missing route. The
document serve returns at GET /v1/openapi.json is docs/openapi.json itself.
"""

import base64
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import time

import pytest

from pwtest import net

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(REPO, "docs", "openapi.json")
SECRET = "openapi-test-secret-" + "y" * 16
TOKEN = "tok-openapi"
USER = "olga@example.test"
METHODS = ("get", "put", "post", "delete")
ROUTER_404 = ("no such endpoint", "unknown endpoint")


def load_doc():
    with open(DOC) as f:
        return json.load(f)


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


# -- what the sources register -----------------------------------------------------------------

def account_routes():
    """[(method, prefix, exact)] from every acct_route(h, METHODS, "PREFIX", FLAGS, ...)."""
    out = []
    pat = re.compile(r'acct_route\(\s*\w+,\s*([A-Z_|\s]+?),\s*"([^"]+)",\s*([A-Z_|\s0-9]+?),',
                     re.S)
    for path in sorted(glob.glob(os.path.join(REPO, "src", "account", "*.c"))):
        for m in pat.finditer(open(path).read()):
            methods = [x.strip()[5:].lower() for x in m.group(1).split("|")]
            exact = "ACCT_EXACT" in m.group(3)
            out += [(meth, m.group(2), exact) for meth in methods if meth != "head"]
    return out


def admin_routes():
    """[(method or None, path, exact)] of the [api] listener and /metrics."""
    out = [("get", p, True) for p in re.findall(r'strcmp\(path, "(/v1/[^"]+)"\)',
                                                read("src/keysearch/ks_api.c"))]
    out += [(None, p, False) for p in re.findall(r'ks_api_route\(\w+, "([^"]+)"',
                                                 read("src/cli/cli_serve.c"))]
    return out


def covered(doc, listener, method, prefix, exact):
    for path, item in doc["paths"].items():
        if listener not in item.get("x-listeners", []):
            continue
        if path != prefix and (exact or not path.startswith(prefix.rstrip("/") + "/")):
            continue
        if method is None or method in item:
            return True
    return False


def test_every_registered_route_is_described():
    doc = load_doc()
    routes = account_routes()
    # the parse itself: the routes every part of the account API registers are found
    for want in [("post", "/v1/session", True), ("get", "/v1/keys", False),
                 ("post", "/v1/recipients/status", True), ("get", "/v1/certificates", True),
                 ("get", "/v1/openapi.json", True), ("delete", "/v1/migrations", False)]:
        assert want in routes, (want, routes)
    missing = [r for r in routes if not covered(doc, "account", *r)]
    assert missing == [], "routes of the account listener not in docs/openapi.json: %s" % missing
    admin = admin_routes()
    assert ("get", "/v1/keys/search", True) in admin and (None, "/v1/migrations", False) in admin
    missing = [r for r in admin if not covered(doc, "api", *r)]
    assert missing == [], "routes of the admin API not in docs/openapi.json: %s" % missing
    assert '"/metrics"' in read("src/lib/metrics_http.c") and covered(doc, "metrics", "get",
                                                                       "/metrics", True)
    # the control: a route nobody described is seen as missing
    assert not covered(doc, "account", "patch", "/v1/keys", False)
    assert not covered(doc, "account", "get", "/v1/no-such-thing", True)


def test_document_is_well_formed():
    doc = load_doc()
    assert doc["openapi"].startswith("3.0.")
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    schemes = doc["components"]["securitySchemes"]
    for path, item in doc["paths"].items():
        assert path.startswith("/"), path
        assert set(item.get("x-listeners", [])) <= {"account", "api", "metrics"}, path
        assert item.get("x-listeners"), path
        for m in METHODS:
            if m not in item:
                continue
            op = item[m]
            assert op.get("responses") and op.get("summary"), (path, m)
            for req in op.get("security", []):
                assert set(req) <= set(schemes), (path, m, req)
            for p in re.findall(r"{(\w+)}", path):
                assert any(x["name"] == p and x["in"] == "path" for x in op.get("parameters", [])), \
                    (path, m, p)


# -- what the servers answer ----------------------------------------------------------------------

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def assertion(sub):
    payload = b64u(json.dumps({"sub": sub, "exp": int(time.time()) + 120}).encode())
    mac = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).digest()
    return payload + "." + b64u(mac)


def call(port, method, path, headers=None, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        err = json.loads(data).get("error", "") if data.startswith(b"{") else ""
    except ValueError:
        err = ""
    return r.status, err, data


def concrete(path):
    """A described path with its parameters filled in."""
    return (path.replace("/v1/keys/{id}", "/v1/keys/0123456789ABCDEF")
            .replace("{id}", "1"))


def exists(status, err):
    return status != 405 and not (status == 404 and err in ROUTER_404)


@pytest.fixture
def serve(make_relay):
    acct_port = net.free_port("127.0.0.1")
    metrics_port = net.free_port("127.0.0.1")
    r = make_relay(start=False, account_listen="127.0.0.1:%d" % acct_port,
                   account_sso_secret=SECRET, account_insecure_cookie="on",
                   api_tokens=TOKEN, metrics_listen="127.0.0.1:%d" % metrics_port,
                   keysearch_sources="local")
    r.start()
    net.wait_port("127.0.0.1", acct_port, timeout=20, proc=r.proc)
    net.wait_port("127.0.0.1", metrics_port, timeout=20, proc=r.proc)
    r.pw("user", "add", USER, check=True)
    r.ports = {"account": acct_port, "api": r.api_port, "metrics": metrics_port}
    return r


def test_every_described_route_exists(serve):
    doc = load_doc()
    ports = serve.ports
    st, _, data = call(ports["account"], "POST", "/v1/session/sso",
                       body=json.dumps({"assertion": assertion(USER)}))
    assert st == 200, data
    session = json.loads(data)
    c = http.client.HTTPConnection("127.0.0.1", ports["account"], timeout=30)
    c.request("POST", "/v1/session/sso", body=json.dumps({"assertion": assertion(USER)}),
              headers={"Content-Type": "application/json"})
    resp = c.getresponse()
    cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    resp.read()
    c.close()
    st, _, data = call(ports["account"], "GET", "/v1/session", {"Cookie": cookie})
    assert st == 200, data
    csrf = json.loads(data)["csrf"]
    assert session["address"] == USER
    auth = {"account": {"Cookie": cookie, "X-CSRF-Token": csrf},
            "api": {"Authorization": "Bearer " + TOKEN}, "metrics": {}}

    checked, missing = [], []
    ops = [(p, m, l) for p, item in doc["paths"].items() for m in METHODS if m in item
           for l in item["x-listeners"]]
    # signing out last: the other requests need the session
    ops.sort(key=lambda x: (x[0] == "/v1/session" and x[1] == "delete"))
    for path, method, listener in ops:
        body = "{}" if method in ("post", "put") else None
        st, err, _ = call(ports[listener], method.upper(), concrete(path), auth[listener], body)
        checked.append((listener, method, path, st))
        if not exists(st, err):
            missing.append((listener, method, path, st, err))
    assert missing == [], "described but not served: %s" % missing
    assert len(checked) >= 25, checked

    # controls: what is not there is seen as missing, on each listener
    st, err, _ = call(ports["account"], "GET", "/v1/no-such-thing", auth["account"])
    assert not exists(st, err), (st, err)
    st, err, _ = call(ports["account"], "PUT", "/v1/certificates", auth["account"], "{}")
    assert not exists(st, err), (st, err)
    st, err, _ = call(ports["api"], "GET", "/v1/no-such-thing", auth["api"])
    assert not exists(st, err), (st, err)


def test_served_document_is_docs_openapi_json(serve):
    st, _, data = call(serve.ports["account"], "GET", "/v1/openapi.json")
    assert st == 200
    assert json.loads(data) == load_doc()
