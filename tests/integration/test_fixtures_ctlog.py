"""The CT test logs (pwtest.ctlog, pwtest.ctlog_server) are right: checked here from the
wire (HTTP answers, files nginx serves) with verifiers written independently of the
module's tree code (the iterative algorithms of RFC 9162 2.1.3.2 and 2.1.4.2, a stack
for roots), signatures checked with cryptography, certificates with openssl."""

import base64
import gzip
import hashlib
import json
import os
import struct
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pwtest import ctlog
from pwtest import ctlog_server

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url, headers=None):
    """(status, headers, body) of a GET, without proxies and without decoding gzip."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _json(url, headers=None):
    status, _, body = _get(url, headers)
    assert status == 200, (url, status, body)
    return json.loads(body)


# -- independent verifiers ---------------------------------------------------------------

def _h(data):
    return hashlib.sha256(data).digest()


def _node(a, b):
    return _h(b"\x01" + a + b)


def root_from_leaves(leaves):
    """RFC 6962 tree hash by a stack of complete subtrees (no recursion, no splitting)."""
    if not leaves:
        return _h(b"")
    stack = []  # (height, hash)
    for lh in leaves:
        item = (0, lh)
        while stack and stack[-1][0] == item[0]:
            item = (item[0] + 1, _node(stack.pop()[1], item[1]))
        stack.append(item)
    h = stack.pop()[1]
    while stack:
        h = _node(stack.pop()[1], h)
    return h


def verify_inclusion(leaf_hash, index, size, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, root1, root2, proof):
    """RFC 9162 2.1.4.2."""
    if first == second:
        return not proof and root1 == root2
    if first == 0 or first > second or not proof:
        return False
    if first & (first - 1) == 0:
        proof = [root1] + list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def verify_sth(spki, size, timestamp, root, ds):
    """Verify a DigitallySigned tree head signature from its bytes alone."""
    hash_alg, sig_alg, ln = struct.unpack(">BBH", ds[:4])
    assert hash_alg == 4 and ln == len(ds) - 4
    signed = struct.pack(">BBQQ", 0, 1, timestamp, size) + root
    pub = serialization.load_der_public_key(spki)
    try:
        if sig_alg == 3:
            assert isinstance(pub, ec.EllipticCurvePublicKey)
            pub.verify(ds[4:], signed, ec.ECDSA(hashes.SHA256()))
        else:
            assert sig_alg == 1 and isinstance(pub, rsa.RSAPublicKey)
            pub.verify(ds[4:], signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sth_ok(spki, sth):
    return verify_sth(spki, sth["tree_size"], sth["timestamp"],
                      base64.b64decode(sth["sha256_root_hash"]),
                      base64.b64decode(sth["tree_head_signature"]))


class _Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, n):
        assert self.p + n <= len(self.d), "truncated"
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def num(self, n):
        return int.from_bytes(self.take(n), "big")

    def vec(self, n):
        return self.take(self.num(n))


def parse_timestamped_entry(r):
    """Read a TimestampedEntry; returns (dict, its bytes)."""
    start = r.p
    e = {"timestamp": r.num(8), "type": r.num(2)}
    if e["type"] == 0:
        e["cert"] = r.vec(3)
    else:
        assert e["type"] == 1
        e["issuer_key_hash"] = r.take(32)
        e["tbs"] = r.vec(3)
    e["extensions"] = r.vec(2)
    return e, r.d[start:r.p]


def parse_leaf_input(data):
    r = _Reader(data)
    assert r.take(2) == b"\x00\x00"  # v1, timestamped_entry
    e, _ = parse_timestamped_entry(r)
    assert r.p == len(data)
    return e


def parse_extra_data(kind, data):
    r = _Reader(data)
    pre = r.vec(3) if kind == 1 else None
    chain_bytes = _Reader(r.vec(3))
    chain = []
    while chain_bytes.p < len(chain_bytes.d):
        chain.append(chain_bytes.vec(3))
    assert r.p == len(data)
    return pre, chain


def parse_data_tile(data):
    """[(timestamped entry dict, MerkleTreeLeaf bytes, precert or None, fingerprints)]."""
    r, out = _Reader(data), []
    while r.p < len(data):
        e, te = parse_timestamped_entry(r)
        pre = r.vec(3) if e["type"] == 1 else None
        fps = r.vec(2)
        assert len(fps) % 32 == 0
        out.append((e, b"\x00\x00" + te, pre, [fps[i:i + 32] for i in range(0, len(fps), 32)]))
    return out


def fetch_all_entries(url, size, ask=50, headers=None):
    """Every entry of the first size leaves via get-entries, asking ask at a time and
    following up when the log returns fewer; returns (entries, largest batch served)."""
    out, biggest = [], 0
    while len(out) < size:
        end = min(len(out) + ask, size) - 1
        got = _json(url + "ct/v1/get-entries?start=%d&end=%d" % (len(out), end),
                    headers)["entries"]
        assert got, "empty get-entries answer"
        biggest = max(biggest, len(got))
        out += got
    return out, biggest


def leaf_hashes(entries):
    return [_h(b"\x00" + base64.b64decode(e["leaf_input"])) for e in entries]


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca():
    return ctlog.CTTestCA()


@pytest.fixture(scope="module")
def certs(ca):
    """Leaf certs, one precert/final pair, reused by the logs of this module."""
    leaves = [ca.issue(["host%d.example.test" % i, "alt%d.example.test" % i],
                       ips=["192.0.2.%d" % (i + 1)]) for i in range(12)]
    leaves.append(ca.issue([], ips=["2001:db8::1"], cn="cn-only.example.test"))
    pre, final = ca.issue_precert(["mail.example.test", "smtp.example.test"])
    return leaves, pre, final


def _filled_log(ca, certs, n=300, key="ec", static=False):
    leaves, pre, final = certs
    log = ctlog.Log("test log", key, ca, static=static)
    log.add_precert(pre)
    log.add_cert(final)
    log.fill(n - 2, leaves)
    return log


@pytest.fixture
def rfc_server(ca, certs):
    srv = ctlog_server.RFC6962Server(_filled_log(ca, certs), max_batch=32).start()
    yield srv
    srv.stop()


# -- certificates ---------------------------------------------------------------------------

def _openssl_text(path):
    r = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text", "-serial"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_certificates_parse_with_openssl(tmp_path, ca, certs):
    leaves, pre, final = certs
    leaf_txt = _openssl_text(ca.write_pem(str(tmp_path / "leaf.pem"), leaves[3]))
    assert "DNS:host3.example.test, DNS:alt3.example.test, IP Address:192.0.2.4" in leaf_txt
    assert "CN = host3.example.test" in leaf_txt
    assert "CT Precertificate Poison" not in leaf_txt
    pre_txt = _openssl_text(ca.write_pem(str(tmp_path / "pre.pem"), pre))
    fin_txt = _openssl_text(ca.write_pem(str(tmp_path / "final.pem"), final))
    assert "CT Precertificate Poison: critical" in pre_txt
    assert "CT Precertificate SCTs" not in pre_txt
    assert "CT Precertificate SCTs" in fin_txt and "Poison" not in fin_txt
    serial = [ln for ln in pre_txt.splitlines() if ln.startswith("serial=")]
    assert serial and serial == [ln for ln in fin_txt.splitlines()
                                 if ln.startswith("serial=")]
    r = subprocess.run(["openssl", "verify", "-CAfile",
                        ca.write_pem(str(tmp_path / "ca.pem"), ca.der),
                        str(tmp_path / "final.pem")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_precert_tbs_is_final_tbs_without_sct_list(certs):
    _, pre, final = certs
    p, f = x509.load_der_x509_certificate(pre), x509.load_der_x509_certificate(final)
    stripped = ctlog.tbs_without_extension(p.tbs_certificate_bytes)
    assert stripped == ctlog.tbs_without_extension(f.tbs_certificate_bytes,
                                                   ctlog.SCT_LIST_OID)
    assert stripped != p.tbs_certificate_bytes
    assert ctlog.tbs_without_extension(stripped) == stripped  # nothing left to remove
    # the stripped TBS is still a certificate body cryptography reads (re-wrapped)
    assert len(stripped) < len(p.tbs_certificate_bytes)


# -- RFC 6962 server -----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["ec", "rsa"])
def test_rfc6962_entries_hash_to_signed_root(ca, certs, key):
    log = _filled_log(ca, certs, n=150, key=key)
    srv = ctlog_server.RFC6962Server(log, max_batch=16).start()
    try:
        sth = _json(srv.url + "ct/v1/get-sth")
        assert sth["tree_size"] == 150
        assert sth_ok(log.spki, sth)
        entries, biggest = fetch_all_entries(srv.url, 150, ask=40)
        assert biggest == 16  # asked for 40, the log returned fewer
        assert len(entries) == 150
        assert root_from_leaves(leaf_hashes(entries)) == base64.b64decode(
            sth["sha256_root_hash"])
        # the first entries are the precertificate and its final certificate
        _, pre, final = certs
        e0 = parse_leaf_input(base64.b64decode(entries[0]["leaf_input"]))
        assert e0["type"] == 1 and e0["issuer_key_hash"] == _h(ca.spki)
        assert e0["tbs"] == ctlog.tbs_without_extension(
            x509.load_der_x509_certificate(final).tbs_certificate_bytes, ctlog.SCT_LIST_OID)
        assert e0["extensions"] == b""
        p, chain = parse_extra_data(1, base64.b64decode(entries[0]["extra_data"]))
        assert p == pre and chain == [ca.der]
        e1 = parse_leaf_input(base64.b64decode(entries[1]["leaf_input"]))
        assert e1["type"] == 0 and e1["cert"] == final
        _, chain = parse_extra_data(0, base64.b64decode(entries[1]["extra_data"]))
        assert chain == [ca.der]
        roots = _json(srv.url + "ct/v1/get-roots")["certificates"]
        assert [base64.b64decode(c) for c in roots] == [ca.der]
    finally:
        srv.stop()


def test_rfc6962_proofs_verify(rfc_server):
    srv, log = rfc_server, rfc_server.log
    entries, _ = fetch_all_entries(srv.url, 300, ask=100)
    hashes_ = leaf_hashes(entries)
    checked = 0
    for size in (1, 2, 7, 64, 65, 255, 256, 300):
        root = root_from_leaves(hashes_[:size])
        for idx in sorted({0, size // 2, size - 1}):
            q = "ct/v1/get-proof-by-hash?hash=%s&tree_size=%d" % (
                urllib.request.quote(base64.b64encode(hashes_[idx]).decode()), size)
            p = _json(srv.url + q)
            # repeated certificates differ by timestamp, so the first match is idx
            assert p["leaf_index"] == idx
            path = [base64.b64decode(x) for x in p["audit_path"]]
            assert verify_inclusion(hashes_[idx], idx, size, path, root)
            assert not verify_inclusion(hashes_[idx], idx, size, path, _h(b"other"))
            checked += 1
        for first in (1, 3, 64, size // 2, size - 1):
            if not 0 < first < size:
                continue
            c = _json(srv.url + "ct/v1/get-sth-consistency?first=%d&second=%d"
                      % (first, size))["consistency"]
            proof = [base64.b64decode(x) for x in c]
            r1 = root_from_leaves(hashes_[:first])
            assert verify_consistency(first, size, r1, root, proof), (first, size)
            assert not verify_consistency(first, size, _h(b"x"), root, proof)
            checked += 1
    assert checked > 30
    assert log.root() == root_from_leaves(hashes_)


def test_rfc6962_log_grows_consistently(rfc_server, certs):
    srv = rfc_server
    old = _json(srv.url + "ct/v1/get-sth")
    srv.log.fill(45, certs[0])
    # not yet published: the old head and no entry past it
    assert _json(srv.url + "ct/v1/get-sth")["tree_size"] == 300
    assert _get(srv.url + "ct/v1/get-entries?start=300&end=310")[0] == 400
    srv.publish()
    new = _json(srv.url + "ct/v1/get-sth")
    assert new["tree_size"] == 345 and sth_ok(srv.log.spki, new)
    assert new["timestamp"] > old["timestamp"]
    c = _json(srv.url + "ct/v1/get-sth-consistency?first=300&second=345")["consistency"]
    assert verify_consistency(300, 345, base64.b64decode(old["sha256_root_hash"]),
                              base64.b64decode(new["sha256_root_hash"]),
                              [base64.b64decode(x) for x in c])
    entries, _ = fetch_all_entries(srv.url, 345, ask=100)
    assert root_from_leaves(leaf_hashes(entries)) == base64.b64decode(
        new["sha256_root_hash"])


def test_misbehaviour_forged_sth(rfc_server):
    srv = rfc_server
    assert sth_ok(srv.log.spki, _json(srv.url + "ct/v1/get-sth"))
    srv.forge_sth = True
    bad = _json(srv.url + "ct/v1/get-sth")
    assert bad["sha256_root_hash"] == ctlog.b64(srv.log.root())
    assert not sth_ok(srv.log.spki, bad)
    srv.forge_sth = False
    assert sth_ok(srv.log.spki, _json(srv.url + "ct/v1/get-sth"))


def test_misbehaviour_broken_consistency(rfc_server):
    srv = rfc_server
    r1, r2 = srv.log.root(100), srv.log.root(300)
    q = srv.url + "ct/v1/get-sth-consistency?first=100&second=300"
    good = [base64.b64decode(x) for x in _json(q)["consistency"]]
    assert verify_consistency(100, 300, r1, r2, good)
    srv.break_consistency = True
    bad = [base64.b64decode(x) for x in _json(q)["consistency"]]
    assert len(bad) == len(good) and bad != good
    assert not verify_consistency(100, 300, r1, r2, bad)


@pytest.mark.parametrize("mode", ["client", "alternate", "header", "port"])
def test_misbehaviour_split_view(rfc_server, certs, mode):
    srv = rfc_server
    fork = srv.log.fork(250, certs[0][5:])
    srv.split(fork, mode)
    if mode == "alternate":
        a, b = _json(srv.url + "ct/v1/get-sth"), _json(srv.url + "ct/v1/get-sth")
        url_b, hdr_b = srv.url, None
    elif mode == "client":  # urllib opens one connection per request
        a, b = _json(srv.url + "ct/v1/get-sth"), _json(srv.url + "ct/v1/get-sth")
        assert _json(srv.url + "ct/v1/get-sth") == a
        url_b, hdr_b = None, None
    elif mode == "header":
        hdr_b = {"X-CT-View": "b"}
        a, b = _json(srv.url + "ct/v1/get-sth"), _json(srv.url + "ct/v1/get-sth", hdr_b)
        url_b = srv.url
    else:
        hdr_b = None
        a, b = _json(srv.url + "ct/v1/get-sth"), _json(srv.split_url + "ct/v1/get-sth")
        url_b = srv.split_url
    assert a["tree_size"] == b["tree_size"] == 300
    assert a["sha256_root_hash"] != b["sha256_root_hash"]
    assert sth_ok(srv.log.spki, a) and sth_ok(srv.log.spki, b)
    if url_b is None:  # "client": one keep-alive connection stays in its view
        _client_view_is_stable(srv, a, b)
    elif mode != "alternate":  # the second view's entries and proofs are its own
        entries, _ = fetch_all_entries(url_b, 300, ask=100, headers=hdr_b)
        assert root_from_leaves(leaf_hashes(entries)) == base64.b64decode(
            b["sha256_root_hash"])
        c = _json(url_b + "ct/v1/get-sth-consistency?first=250&second=300",
                  hdr_b)["consistency"]
        assert verify_consistency(250, 300, srv.log.root(250),
                                  base64.b64decode(b["sha256_root_hash"]),
                                  [base64.b64decode(x) for x in c])


def _client_view_is_stable(srv, a, b):
    """Over one keep-alive connection every get-sth answer is the same view."""
    import http.client
    seen = []
    for _ in range(2):
        conn = http.client.HTTPConnection(srv.addr, srv.port, timeout=10)
        roots = set()
        for _ in range(3):
            conn.request("GET", srv.prefix + "ct/v1/get-sth")
            roots.add(json.loads(conn.getresponse().read())["sha256_root_hash"])
        conn.close()
        assert len(roots) == 1
        seen.append(roots.pop())
    assert sorted(seen) == sorted([a["sha256_root_hash"], b["sha256_root_hash"]])


def test_misbehaviour_shrinking_tree(rfc_server):
    srv = rfc_server
    srv.shrink_to(280)
    s = _json(srv.url + "ct/v1/get-sth")
    assert s["tree_size"] == 280 and sth_ok(srv.log.spki, s)
    assert s["sha256_root_hash"] == ctlog.b64(srv.log.root(280))


def test_misbehaviour_entries_not_hashing_to_root(rfc_server, ca):
    srv = rfc_server
    forged = ca.issue(["www.victim.test"])
    srv.altered = {5: forged, 7: None, 0: None}
    sth = _json(srv.url + "ct/v1/get-sth")
    entries, _ = fetch_all_entries(srv.url, 300, ask=100)
    hs = leaf_hashes(entries)
    assert root_from_leaves(hs) != base64.b64decode(sth["sha256_root_hash"])
    assert [i for i in range(300) if hs[i] != srv.log.tree.leaves[i]] == [0, 5, 7]
    assert parse_leaf_input(base64.b64decode(entries[5]["leaf_input"]))["cert"] == forged
    srv.altered = {}
    entries, _ = fetch_all_entries(srv.url, 300, ask=100)
    assert root_from_leaves(leaf_hashes(entries)) == base64.b64decode(
        sth["sha256_root_hash"])


def test_misbehaviour_rate_limit(rfc_server):
    srv = rfc_server
    srv.rate_limit(3, retry_after=2)
    for _ in range(3):
        status, headers, _ = _get(srv.url + "ct/v1/get-sth")
        assert status == 429 and headers["Retry-After"] == "2"
    assert _get(srv.url + "ct/v1/get-sth")[0] == 200


def test_garbage_der_entry_is_covered_by_the_tree(rfc_server):
    srv = rfc_server
    idx = srv.log.add_raw(b"\x30\x82\xff\xffgarbage, not DER")
    srv.publish()
    sth = _json(srv.url + "ct/v1/get-sth")
    entries, _ = fetch_all_entries(srv.url, idx + 1, ask=100)
    assert root_from_leaves(leaf_hashes(entries)) == base64.b64decode(
        sth["sha256_root_hash"])
    raw = parse_leaf_input(base64.b64decode(entries[idx]["leaf_input"]))["cert"]
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(raw)
    x509.load_der_x509_certificate(  # control: its neighbour parses
        parse_leaf_input(base64.b64decode(entries[idx - 1]["leaf_input"]))["cert"])


# -- static-ct-api log ---------------------------------------------------------------------

def parse_checkpoint(text):
    """(origin, size, root, [(name, key id, signature bytes)])."""
    body, sep, sigs = text.partition("\n\n")
    assert sep and text.endswith("\n")
    origin, size, root = body.split("\n")
    lines = []
    for ln in sigs.rstrip("\n").split("\n"):
        assert ln.startswith("\u2014 ")
        name, s = ln[2:].rsplit(" ", 1)
        raw = base64.b64decode(s)
        lines.append((name, raw[:4], raw[4:]))
    return origin, int(size), base64.b64decode(root), lines


def checkpoint_ok(text, origin, log_id, spki):
    o, size, root, sigs = parse_checkpoint(text)
    want_id = _h(origin.encode() + b"\n\x05" + log_id)[:4]
    for name, kid, sig in sigs:
        if name == origin and kid == want_id:
            ts = struct.unpack(">Q", sig[:8])[0]
            return o == origin and verify_sth(spki, size, ts, root, sig[8:])
    return False


def _tiles_from_nginx(url, size):
    """All level-0 hashes of a tree of size, fetched from nginx at the spec's paths."""
    out = b""
    for n in range((size + 255) // 256):
        w = min(256, size - n * 256)
        status, _, body = _get(url + ctlog.tile_path(0, n, w))
        assert status == 200 and len(body) == 32 * w
        out += body
    return [out[i:i + 32] for i in range(0, len(out), 32)]


@pytest.fixture
def static_site(tmp_path, ca, certs):
    log = _filled_log(ca, certs, n=300, static=True)
    docroot = str(tmp_path / "docroot")
    ng = ctlog_server.StaticNginx(str(tmp_path / "nginx"), docroot)
    os.makedirs(ng.dir)
    st = ctlog.StaticLog(log, docroot, "%s:%d/static" % (ng.addr, ng.port))
    st.publish()
    ng.start()
    yield st, ng
    ng.stop()


def test_static_log_tiles_hash_to_signed_checkpoint(static_site, ca, certs):
    st, ng = static_site
    status, headers, body = _get(ng.url + "checkpoint")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert checkpoint_ok(text, st.origin, st.log.log_id, st.log.spki)
    origin, size, root, _ = parse_checkpoint(text)
    assert origin.endswith(":%d/static" % ng.port) and size == 300
    leaves = _tiles_from_nginx(ng.url, size)
    assert root_from_leaves(leaves) == root
    # level 1: a partial tile of width 1 holding the hash of the full level-0 tile 0
    status, _, l1 = _get(ng.url + "tile/1/000.p/1")
    assert status == 200 and l1 == root_from_leaves(leaves[:256])
    # data tiles: TileLeaf records hashing to the level-0 tiles, with leaf_index extension
    recs = []
    for n, w in ((0, 256), (1, 44)):
        status, _, data = _get(ng.url + ctlog.tile_path("data", n, w))
        assert status == 200
        recs += parse_data_tile(data)
    assert [_h(b"\x00" + mtl) for _, mtl, _, _ in recs] == leaves
    for i, (e, _, pre, fps) in enumerate(recs):
        assert e["extensions"] == b"\x00" + struct.pack(">H", 5) + i.to_bytes(5, "big")
        assert fps == [_h(ca.der)]
        assert (pre is not None) == (e["type"] == 1)
    assert recs[0][2] == certs[1] and recs[1][0]["cert"] == certs[2]
    status, headers, issuer = _get(ng.url + "issuer/" + hashlib.sha256(ca.der).hexdigest())
    assert status == 200 and issuer == ca.der
    assert headers["Content-Type"] == "application/pkix-cert"


def test_static_log_grows_and_keeps_partial_tiles(static_site, certs):
    st, ng = static_site
    old = st.published
    st.log.fill(300, certs[0])
    st.publish()
    _, _, body = _get(ng.url + "checkpoint")
    _, size, root, _ = parse_checkpoint(body.decode())
    assert size == 600
    leaves = _tiles_from_nginx(ng.url, 600)
    assert root_from_leaves(leaves) == root
    assert root_from_leaves(leaves[:300]) == old.root
    # the old checkpoint's partial tiles stay next to the new full ones
    for p in ("tile/0/001.p/44", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/1",
              "tile/1/000.p/2", "tile/data/001.p/44", "tile/data/001"):
        assert _get(ng.url + p)[0] == 200, p
    assert _get(ng.url + "tile/0/003")[0] == 404  # control: no tile beyond the tree


def test_static_log_gzip_data_tiles(tmp_path, ca, certs):
    log = _filled_log(ca, certs, n=40, static=True)
    docroot = str(tmp_path / "docroot")
    ng = ctlog_server.StaticNginx(str(tmp_path / "nginx"), docroot, gzip_data=True)
    os.makedirs(ng.dir)
    st = ctlog.StaticLog(log, docroot, "%s:%d" % (ng.addr, ng.port), gzip_data=True)
    st.publish()
    ng.start()
    try:
        status, headers, body = _get(ng.url + "tile/data/000.p/40")
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        recs = parse_data_tile(gzip.decompress(body))
        assert [_h(b"\x00" + m) for _, m, _, _ in recs] == log.tree.leaves
        status, headers, body = _get(ng.url + "tile/0/000.p/40")
        assert status == 200 and headers.get("Content-Encoding") is None
        assert len(body) == 40 * 32
    finally:
        ng.stop()


def test_static_misbehaviour(static_site):
    st, ng = static_site
    good = _get(ng.url + "checkpoint")[2].decode()
    assert checkpoint_ok(good, st.origin, st.log.log_id, st.log.spki)
    assert not checkpoint_ok(good, st.origin + "x", st.log.log_id, st.log.spki)
    st.forge_checkpoint()
    forged = _get(ng.url + "checkpoint")[2].decode()
    assert parse_checkpoint(forged)[:3] == parse_checkpoint(good)[:3]
    assert not checkpoint_ok(forged, st.origin, st.log.log_id, st.log.spki)
    # a level-0 tile that disagrees with the root
    st.corrupt_tile(0, 1, 44, index=3)
    leaves = _tiles_from_nginx(ng.url, 300)
    assert root_from_leaves(leaves) != st.published.root
    # a data tile that disagrees with its level-0 tile
    st.corrupt_tile("data", 0, index=200)
    recs = parse_data_tile(_get(ng.url + "tile/data/000")[2])
    assert [_h(b"\x00" + m) for _, m, _, _ in recs] != leaves[:256]
    # a missing tile; and a full tile withheld with only a partial one present
    st.remove_tile("data", 1, 44)
    assert _get(ng.url + "tile/data/001.p/44")[0] == 404
    st.log.fill(300, [st.log.entries[2].cert])
    st.publish()
    st.remove_tile(0, 1)
    assert _get(ng.url + "tile/0/001")[0] == 404
    assert _get(ng.url + "tile/0/001.p/44")[0] == 200
    # a smaller tree, validly signed
    st.write_checkpoint(st.log.sth(200))
    cp = _get(ng.url + "checkpoint")[2].decode()
    assert checkpoint_ok(cp, st.origin, st.log.log_id, st.log.spki)
    assert parse_checkpoint(cp)[1] == 200


def test_tile_paths_and_sets_follow_the_spec(tmp_path):
    assert ctlog.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert ctlog.tile_path(3, 5, 17) == "tile/3/005.p/17"
    assert ctlog.tile_path("data", 1000, 256) == "tile/data/x001/000"
    assert ctlog.tile_path("data", 999, 1) == "tile/data/999.p/1"
    st = ctlog.StaticLog(ctlog.Log(static=True), str(tmp_path), "o")
    # a tree of size 256: one full level-0 tile and a level-1 partial tile of width 1
    assert st.tiles_for(256) == [(0, 0, 256), (1, 0, 1), ("data", 0, 256)]
    assert st.tiles_for(255) == [(0, 0, 255), ("data", 0, 255)]
    assert st.tiles_for(0) == []


def test_static_log_70000_entries_levels(tmp_path, ca, certs):
    t0 = time.monotonic()
    log = ctlog.Log("big", "ec", ca, static=True)
    log.fill(70000, [certs[0][0]])
    st = ctlog.StaticLog(log, str(tmp_path / "docroot"), "127.0.0.1/big")
    st.publish()
    tiles = st.tiles_for(70000)
    kinds = {}
    for level, n, w in tiles:
        kinds.setdefault(level, []).append((n, w))
    assert len([x for x in kinds[0] if x[1] == 256]) == 273 and kinds[0][-1] == (273, 112)
    assert kinds[1] == [(0, 256), (1, 17)] and kinds[2] == [(0, 1)] and 3 not in kinds

    def read(level, n, w):
        with open(st.path(ctlog.tile_path(level, n, w)), "rb") as f:
            d = f.read()
        return [d[i:i + 32] for i in range(0, len(d), 32)]

    leaves = []
    for n, w in kinds[0]:
        leaves += read(0, n, w)
    assert len(leaves) == 70000
    l1 = read(1, 0, 256) + read(1, 1, 17)
    assert l1 == [root_from_leaves(leaves[i * 256:(i + 1) * 256]) for i in range(273)]
    assert read(2, 0, 1) == [root_from_leaves(l1[:256])]
    assert root_from_leaves(leaves) == st.published.root
    assert checkpoint_ok(open(st.path("checkpoint")).read(), "127.0.0.1/big", log.log_id,
                         log.spki)
    assert time.monotonic() - t0 < 20


# -- log list ------------------------------------------------------------------------------

def test_log_list_and_bundle(tmp_path):
    logs = ctlog_server.CTTestLogs(str(tmp_path), names=("www.example.test",),
                                   filler=5, key="rsa").start()
    try:
        with open(logs.log_list_path) as f:
            doc = json.load(f)
        op = doc["operators"][0]
        usable = [lg for lg in op["logs"] + op["tiled_logs"] if "usable" in lg["state"]]
        skipped = [lg for lg in op["logs"] + op["tiled_logs"]
                   if set(lg["state"]) & {"retired", "rejected"}]
        assert len(usable) == 2 and len(skipped) == 2
        assert sorted(lg["log_id"] for lg in skipped) == sorted(logs.log_list["_skipped_ids"])
        for lg in op["logs"] + op["tiled_logs"]:
            assert base64.b64decode(lg["log_id"]) == _h(base64.b64decode(lg["key"]))
        rfc = [lg for lg in op["logs"] if "usable" in lg["state"]][0]
        tiled = [lg for lg in op["tiled_logs"] if "usable" in lg["state"]][0]
        sth = _json(rfc["url"] + "ct/v1/get-sth")
        assert sth["tree_size"] == 5 + 3 and sth_ok(base64.b64decode(rfc["key"]), sth)
        cp = _get(tiled["monitoring_url"] + "checkpoint")[2].decode()
        origin = tiled["submission_url"].split("://", 1)[1].rstrip("/")
        assert checkpoint_ok(cp, origin, base64.b64decode(tiled["log_id"]),
                             base64.b64decode(tiled["key"]))
        rfc_idx = [i for i, _ in logs.found["www.example.test"]]
        entries, _ = fetch_all_entries(rfc["url"], 8)
        kinds = [parse_leaf_input(base64.b64decode(entries[i]["leaf_input"]))["type"]
                 for i in rfc_idx]
        assert kinds == [0, 1, 0]
    finally:
        logs.stop()


# -- TLS -------------------------------------------------------------------------------------

def test_both_logs_over_tls(tmp_path, test_ca, ca, certs):
    import ssl
    cert = test_ca.issue("ctlog.example.test")
    ctx = ssl.create_default_context(cafile=test_ca.cert_path)
    ctx.check_hostname = False  # the servers are reached by address

    def get(url):
        with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
            return r.read()

    log = _filled_log(ca, certs, n=10)
    srv = ctlog_server.RFC6962Server(log, cert=cert).start()
    slog = _filled_log(ca, certs, n=10, static=True)
    ng = ctlog_server.StaticNginx(str(tmp_path / "nginx"), str(tmp_path / "docroot"),
                                  cert=cert)
    os.makedirs(ng.dir)
    st = ctlog.StaticLog(slog, ng.docroot, "%s:%d" % (ng.addr, ng.port))
    st.publish()
    ng.start()
    try:
        assert srv.url.startswith("https://") and ng.url.startswith("https://")
        assert sth_ok(log.spki, json.loads(get(srv.url + "ct/v1/get-sth")))
        assert checkpoint_ok(get(ng.url + "checkpoint").decode(), st.origin, slog.log_id,
                             slog.spki)
        with pytest.raises(OSError):  # control: plain HTTP client refused
            _get(srv.url.replace("https", "http") + "ct/v1/get-sth")
    finally:
        srv.stop()
        ng.stop()
