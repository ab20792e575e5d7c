"""Certificate Transparency test logs: the model (entries, Merkle tree, signed tree heads)
and its two published forms, RFC 6962 (served by pwtest.ctlog_server) and the Static CT
API (files written by StaticLog.publish and served by nginx, pwtest.ctlog_server.StaticNginx).

No CT log is packaged in Debian, so the monitor's tests run against these. Everything here
follows the specifications byte for byte; nothing is taken from a CT implementation.

Typical use::

    ca = CTTestCA()                              # a CA issuing real certificates
    log = Log(name="rfc6962 test log")           # ECDSA P-256 key; key="rsa" for RSA-2048
    log.add_cert(ca.issue(["www.example.test"]))
    pre, final = ca.issue_precert(["mail.example.test"])
    log.add_precert(pre)                         # precert_entry: issuer key hash + TBS
    log.add_cert(final)                          # same serial, SCT list, same TBS minus it
    sth = log.sth()                              # signed tree head of the whole log

Byte layouts (RFC 6962 3.1-3.5, TLS presentation language, big-endian):

    ASN.1Cert          = u24 length || DER
    MerkleTreeLeaf     = u8 version(0) || u8 leaf_type(0 = timestamped_entry)
                         || TimestampedEntry
    TimestampedEntry   = u64 timestamp(ms) || u16 entry_type (0 x509, 1 precert)
                         || signed_entry || u16 extensions length || extensions
      x509_entry       : signed_entry = ASN.1Cert(leaf certificate)
      precert_entry    : signed_entry = issuer_key_hash[32] (SHA-256 of the issuer's DER
                         SubjectPublicKeyInfo) || u24 length || TBSCertificate DER without
                         the poison extension
    leaf hash          = SHA-256(0x00 || MerkleTreeLeaf); node = SHA-256(0x01 || l || r)
    get-entries extra_data:
      x509_entry       : u24 length || ASN.1Cert... (certificate_chain)
      precert_entry    : ASN.1Cert(precertificate) || u24 length || ASN.1Cert... (chain)
    TreeHeadSignature  = u8 version(0) || u8 signature_type(1 = tree_hash)
                         || u64 timestamp || u64 tree_size || root[32]
    DigitallySigned    = u8 hash(4 = sha256) || u8 sig(3 ecdsa, 1 rsa) || u16 len || sig
                         (ECDSA: DER Ecdsa-Sig-Value; RSA: PKCS#1 v1.5 over SHA-256)
    log_id             = SHA-256(DER SubjectPublicKeyInfo of the log key)

Static CT API (c2sp.org/static-ct-api, tlog-tiles, signed-note, tlog-checkpoint):

    checkpoint         = "<origin>\\n<size>\\n<base64 root>\\n" "\\n"
                         "\\u2014 <origin> <base64(key_id[4] || RFC6962NoteSignature)>\\n"
    key_id             = SHA-256(origin || 0x0A || 0x05 || log_id)[:4]
    RFC6962NoteSignature = u64 timestamp || DigitallySigned (of the TreeHeadSignature)
    tile/<L>/<N>[.p/<W>]   32-byte hashes; level-L hash i of tile N is
                         MTH(D[(N*256+i)*256**L : (N*256+i+1)*256**L])
    tile/data/<N>[.p/<W>]  TileLeaf records, one per entry:
                         TimestampedEntry || (precert: ASN.1Cert precertificate)
                         || u16 length || SHA-256(issuer DER)... (certificate_chain)
      In a static log the TimestampedEntry extensions are the leaf_index extension:
      u16 8 || u8 0 (leaf_index) || u16 5 || u40 index, so leaves differ from the
      RFC 6962 twin even for the same certificates.
    issuer/<hex SHA-256 of DER>   the issuer certificate, DER
    <N> is written in 3-digit groups, all but the last prefixed "x": 1234067 -> x001/x234/067
"""

import base64
import datetime
import gzip
import hashlib
import ipaddress
import json
import os
import struct
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

X509_ENTRY = 0
PRECERT_ENTRY = 1
POISON_OID = "1.3.6.1.4.1.11129.2.4.3"
SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"
TILE_WIDTH = 256


# -- TLS encoding helpers ------------------------------------------------------------------

def u8(v):
    return struct.pack(">B", v)


def u16(v):
    return struct.pack(">H", v)


def u24(v):
    return struct.pack(">I", v)[1:]


def u40(v):
    return struct.pack(">Q", v)[3:]


def u64(v):
    return struct.pack(">Q", v)


def asn1cert(der):
    """RFC 6962 ASN.1Cert: opaque<1..2^24-1>."""
    return u24(len(der)) + der


def b64(data):
    return base64.b64encode(data).decode()


def sha256(data):
    return hashlib.sha256(data).digest()


# -- DER: drop one extension from a TBSCertificate ----------------------------------------

def _der_len(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_read(buf, pos):
    """Read one TLV at pos: returns (tag, header_length, content_start, end)."""
    tag = buf[pos]
    ln = buf[pos + 1]
    if ln < 0x80:
        return tag, pos + 2, pos + 2 + ln
    nb = ln & 0x7F
    length = int.from_bytes(buf[pos + 2:pos + 2 + nb], "big")
    start = pos + 2 + nb
    return tag, start, start + length


def _der_items(buf):
    pos, out = 0, []
    while pos < len(buf):
        tag, start, end = _der_read(buf, pos)
        out.append((tag, buf[pos:end], buf[start:end]))
        pos = end
    return out


def _oid_der(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return b"\x06" + _der_len(len(body)) + body


def tbs_without_extension(tbs_der, oid=POISON_OID):
    """The DER TBSCertificate tbs_der with the extension oid removed (RFC 6962 3.2: the
    precert_entry's TBS is the precertificate's without the poison extension)."""
    _, start, end = _der_read(tbs_der, 0)
    want = _oid_der(oid)
    fields = []
    for tag, whole, content in _der_items(tbs_der[start:end]):
        if tag == 0xA3:  # [3] EXPLICIT Extensions
            _, es, ee = _der_read(content, 0)
            kept = [w for _, w, c in _der_items(content[es:ee]) if not c.startswith(want)]
            seq = b"".join(kept)
            seq = b"\x30" + _der_len(len(seq)) + seq
            whole = b"\xa3" + _der_len(len(seq)) + seq
        fields.append(whole)
    body = b"".join(fields)
    return b"\x30" + _der_len(len(body)) + body


# -- the test CA ---------------------------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CTTestCA:
    """A root CA (ECDSA P-256) issuing leaf certificates and precertificate/certificate
    pairs. Everything is kept in memory as DER; write_pem() writes files for openssl.

    issue(dns_names, ips=(), cn=None, key=None) -> leaf DER
    issue_precert(dns_names, ips=(), cn=None) -> (precertificate DER, final DER)
    spki_sha256(der) -> SHA-256 of a certificate's SubjectPublicKeyInfo (the key pin)
    """

    __test__ = False

    def __init__(self, name="postwarden CT test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.not_before = now - datetime.timedelta(hours=1)
        self.not_after = now + datetime.timedelta(days=90)
        b = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
        b = b.not_valid_before(self.not_before).not_valid_after(now + datetime.timedelta(
            days=3650)).serial_number(x509.random_serial_number())
        b = b.public_key(self.key.public_key())
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                            critical=False)
        self.cert = b.sign(self.key, hashes.SHA256())
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.issuer_key_hash = sha256(self.spki)
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())

    def _builder(self, dns_names, ips, cn, key, serial):
        cn = cn or (dns_names[0] if dns_names else "no name")
        b = x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
        b = b.not_valid_before(self.not_before).not_valid_after(self.not_after)
        b = b.serial_number(serial).public_key(key.public_key())
        san = [x509.DNSName(n) for n in dns_names]
        san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        return b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)

    def issue(self, dns_names, ips=(), cn=None, key=None):
        """A leaf certificate (DER) for dns_names (SAN dNSName), ips (SAN iPAddress) and
        subject CN cn (default: the first name). key: a private key to certify (default:
        one shared leaf key, which keeps issuing cheap)."""
        key = key or self._leaf_key
        b = self._builder(list(dns_names), ips, cn, key, x509.random_serial_number())
        return b.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def issue_precert(self, dns_names, ips=(), cn=None, key=None):
        """(precertificate DER, final certificate DER): the precertificate carries the
        critical poison extension, the final certificate the same serial and fields and an
        SCT list extension (dummy SCT bytes) in the poison's place."""
        key = key or self._leaf_key
        serial = x509.random_serial_number()
        b = self._builder(list(dns_names), ips, cn, key, serial)
        pre = b.add_extension(x509.PrecertPoison(), critical=True).sign(
            self.key, hashes.SHA256())
        sct = x509.UnrecognizedExtension(x509.ObjectIdentifier(SCT_LIST_OID),
                                         b"\x04\x0c\x00\x0a" + b"\x00\x08dummySCT")
        final = b.add_extension(sct, critical=False).sign(self.key, hashes.SHA256())
        enc = serialization.Encoding.DER
        return pre.public_bytes(enc), final.public_bytes(enc)

    @staticmethod
    def spki_sha256(der):
        c = x509.load_der_x509_certificate(der)
        return sha256(c.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def write_pem(self, path, der):
        with open(path, "wb") as f:
            f.write(x509.load_der_x509_certificate(der).public_bytes(
                serialization.Encoding.PEM))
        return path


# -- entries -------------------------------------------------------------------------------

class Entry:
    """One log entry. kind: X509_ENTRY or PRECERT_ENTRY; cert: the leaf certificate or the
    precertificate as submitted (DER, or any bytes for a garbage entry); chain: issuer
    DERs; timestamp: ms since the epoch; tbs and issuer_key_hash for precert entries;
    extensions: the TimestampedEntry extensions (b"" in RFC 6962 logs)."""

    __slots__ = ("kind", "cert", "chain", "timestamp", "tbs", "issuer_key_hash",
                 "extensions")

    def __init__(self, kind, cert, chain, timestamp, tbs=None, issuer_key_hash=None,
                 extensions=b""):
        self.kind, self.cert, self.chain, self.timestamp = kind, cert, chain, timestamp
        self.tbs, self.issuer_key_hash, self.extensions = tbs, issuer_key_hash, extensions

    def signed_entry(self):
        if self.kind == X509_ENTRY:
            return asn1cert(self.cert)
        return self.issuer_key_hash + u24(len(self.tbs)) + self.tbs

    def timestamped_entry(self):
        return (u64(self.timestamp) + u16(self.kind) + self.signed_entry()
                + u16(len(self.extensions)) + self.extensions)

    def leaf_input(self):
        """The MerkleTreeLeaf (RFC 6962 3.4), get-entries' leaf_input."""
        return b"\x00\x00" + self.timestamped_entry()

    def leaf_hash(self):
        return sha256(b"\x00" + self.leaf_input())

    def extra_data(self):
        """get-entries' extra_data (RFC 6962 4.6)."""
        chain = b"".join(asn1cert(c) for c in self.chain)
        chain = u24(len(chain)) + chain
        if self.kind == X509_ENTRY:
            return chain
        return asn1cert(self.cert) + chain

    def tile_leaf(self):
        """The static-ct-api TileLeaf of this entry."""
        out = self.timestamped_entry()
        if self.kind == PRECERT_ENTRY:
            out += asn1cert(self.cert)
        fps = b"".join(sha256(c) for c in self.chain)
        return out + u16(len(fps)) + fps


# -- Merkle tree (RFC 6962 2.1) ------------------------------------------------------------

def node_hash(left, right):
    return sha256(b"\x01" + left + right)


EMPTY_ROOT = sha256(b"")


def _split(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class MerkleTree:
    """Leaf hashes with RFC 6962 2.1 tree hashes and proofs; hashes of complete aligned
    subtrees are cached, so roots and proofs of a growing tree stay cheap."""

    def __init__(self, leaves=()):
        self.leaves = list(leaves)
        self._cache = {}

    def append(self, leaf_hash):
        self.leaves.append(leaf_hash)

    def mth(self, lo, hi):
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        full = n & (n - 1) == 0 and lo % n == 0
        if full and (lo, n) in self._cache:
            return self._cache[(lo, n)]
        k = _split(n)
        h = node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
        if full:
            self._cache[(lo, n)] = h
        return h

    def root(self, size=None):
        return self.mth(0, len(self.leaves) if size is None else size)

    def inclusion_path(self, m, size):
        """PATH(m, D[0:size]) of RFC 6962 2.1.1."""
        return self._path(m, 0, size)

    def _path(self, m, lo, hi):
        n = hi - lo
        if n <= 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def consistency_proof(self, m, size):
        """PROOF(m, D[0:size]) of RFC 6962 2.1.2 (empty when m == size or m == 0)."""
        if m <= 0 or m >= size:
            return []
        return self._subproof(m, 0, size, True)

    def _subproof(self, m, lo, hi, whole):
        n = hi - lo
        if m == n:
            return [] if whole else [self.mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self.mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


# -- the log --------------------------------------------------------------------------------

class SignedTreeHead:
    """tree_size, timestamp (ms), root (32 bytes), signature (DigitallySigned bytes)."""

    def __init__(self, tree_size, timestamp, root, signature):
        self.tree_size, self.timestamp, self.root = tree_size, timestamp, root
        self.signature = signature

    def json(self):
        return {"tree_size": self.tree_size, "timestamp": self.timestamp,
                "sha256_root_hash": b64(self.root),
                "tree_head_signature": b64(self.signature)}


def tree_head_input(tree_size, timestamp, root):
    """The TreeHeadSignature structure that is signed (RFC 6962 3.5)."""
    return b"\x00\x01" + u64(timestamp) + u64(tree_size) + root


class LogKey:
    """A log's signing key: kind "ec" (P-256) or "rsa" (2048 bits)."""

    def __init__(self, kind="ec"):
        self.kind = kind
        if kind == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.log_id = sha256(self.spki)

    def digitally_signed(self, data):
        """TLS DigitallySigned: hash sha256(4), signature ecdsa(3) or rsa(1), u16, sig."""
        if self.kind == "rsa":
            sig = self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
            return b"\x04\x01" + u16(len(sig)) + sig
        sig = self.private.sign(data, ec.ECDSA(hashes.SHA256()))
        return b"\x04\x03" + u16(len(sig)) + sig


def verify_digitally_signed(spki_der, data, ds):
    """True when ds (DigitallySigned bytes) is a valid signature of data by spki_der."""
    from cryptography.exceptions import InvalidSignature
    if len(ds) < 4 or ds[0] != 4 or struct.unpack(">H", ds[2:4])[0] != len(ds) - 4:
        return False
    pub = serialization.load_der_public_key(spki_der)
    try:
        if ds[1] == 1 and isinstance(pub, rsa.RSAPublicKey):
            pub.verify(ds[4:], data, padding.PKCS1v15(), hashes.SHA256())
        elif ds[1] == 3 and isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(ds[4:], data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


class Log:
    """An append-only CT log: entries, Merkle tree, signed tree heads.

    Log(name, key="ec"|"rsa"|LogKey, static=False): static=True puts the leaf_index
    extension into every TimestampedEntry (static-ct-api requires it).
    add_cert(der, chain=None) / add_precert(precert_der, chain=None) / add_raw(bytes):
        append one entry (chain defaults to [ca.der] of the CA given to the constructor,
        or nothing); add_raw logs arbitrary bytes as an x509_entry (garbage DER that the
        tree covers correctly). Each returns the entry's index.
    sth(size=None, timestamp=None, key=None): a SignedTreeHead of the first size entries,
        signed by the log key (or by key, e.g. an impostor LogKey to forge one).
    root(size), inclusion_path(index, size), consistency_proof(m, n): RFC 6962 2.1.
    The log is thread-safe for one writer and many readers (self.lock).
    """

    def __init__(self, name="postwarden test log", key="ec", ca=None, static=False):
        self.name = name
        self.key = key if isinstance(key, LogKey) else LogKey(key)
        self.ca = ca
        self.static = static
        self.entries = []
        self.tree = MerkleTree()
        self.index = {}  # leaf hash -> first index holding it (get-proof-by-hash)
        self.lock = threading.RLock()
        self._clock = int(time.time() * 1000) - 3600 * 1000

    @property
    def log_id(self):
        return self.key.log_id

    @property
    def spki(self):
        return self.key.spki

    def size(self):
        return len(self.entries)

    def _timestamp(self):
        self._clock += 1
        return self._clock

    def _append(self, kind, cert, chain, tbs=None, ikh=None, timestamp=None):
        with self.lock:
            if chain is None:
                chain = [self.ca.der] if self.ca else []
            idx = len(self.entries)
            ext = (u8(0) + u16(5) + u40(idx)) if self.static else b""
            ts = self._timestamp() if timestamp is None else timestamp
            e = Entry(kind, cert, list(chain), ts, tbs, ikh, ext)
            self.entries.append(e)
            lh = e.leaf_hash()
            self.tree.append(lh)
            self.index.setdefault(lh, idx)
            return idx

    def add_cert(self, der, chain=None):
        return self._append(X509_ENTRY, der, chain)

    def add_raw(self, data, chain=None):
        return self._append(X509_ENTRY, data, chain)

    def add_precert(self, der, chain=None, issuer_spki=None):
        """issuer_spki: the DER SPKI of the issuer (default: the CA's)."""
        cert = x509.load_der_x509_certificate(der)
        tbs = tbs_without_extension(cert.tbs_certificate_bytes, POISON_OID)
        ikh = sha256(issuer_spki) if issuer_spki else self.ca.issuer_key_hash
        return self._append(PRECERT_ENTRY, der, chain, tbs, ikh)

    def fill(self, n, pool):
        """Append n x509 entries cycling through the DERs in pool (cheap bulk growth)."""
        for i in range(n):
            self.add_cert(pool[i % len(pool)])

    def root(self, size=None):
        with self.lock:
            return self.tree.root(size)

    def inclusion_path(self, index, size):
        with self.lock:
            return self.tree.inclusion_path(index, size)

    def consistency_proof(self, m, n):
        with self.lock:
            return self.tree.consistency_proof(m, n)

    def sth(self, size=None, timestamp=None, key=None):
        with self.lock:
            size = self.size() if size is None else size
            root = self.tree.root(size)
            if timestamp is None:
                timestamp = max(self._timestamp(), int(time.time() * 1000))
        sig = (key or self.key).digitally_signed(tree_head_input(size, timestamp, root))
        return SignedTreeHead(size, timestamp, root, sig)

    def fork(self, replace_from, pool):
        """A second log with the same key and the same first replace_from entries, then
        entries from pool up to the same size: a split view of the same size."""
        other = Log(self.name, self.key, self.ca, self.static)
        other._clock = self._clock
        with self.lock:
            for e in self.entries[:replace_from]:
                other._append(e.kind, e.cert, e.chain, e.tbs, e.issuer_key_hash,
                              e.timestamp)
            for i in range(self.size() - replace_from):
                other.add_cert(pool[i % len(pool)])
        return other


# -- the static-ct-api form -----------------------------------------------------------------

def tile_path(level, n, width=None):
    """tile/<L>/<N>[.p/<W>] with N in x-prefixed 3-digit groups; level may be "data"."""
    groups = []
    while True:
        groups.append("%03d" % (n % 1000))
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    parts = ["x" + g for g in groups[:-1]] + [groups[-1]]
    p = "tile/%s/%s" % (level, "/".join(parts))
    if width is not None and width != TILE_WIDTH:
        p += ".p/%d" % width
    return p


def key_id(origin, log_id):
    """static-ct-api note key ID: SHA-256(origin || 0x0A || 0x05 || log_id)[:4]."""
    return sha256(origin.encode() + b"\n\x05" + log_id)[:4]


def checkpoint_text(origin, sth, log_id, sig_override=None):
    """The signed checkpoint note for sth (one RFC6962NoteSignature line)."""
    body = "%s\n%d\n%s\n" % (origin, sth.tree_size, b64(sth.root))
    sig = u64(sth.timestamp) + (sig_override if sig_override is not None else sth.signature)
    return body + "\n\u2014 %s %s\n" % (origin, b64(key_id(origin, log_id) + sig))


class StaticLog:
    """Writes a static-ct-api log's files for a Log (made with static=True) into docroot.

    StaticLog(log, docroot, origin, gzip_data=False): origin is the submission prefix
    without scheme and trailing slash (e.g. "127.0.0.1:20123/static"), also the key name.
    gzip_data=True writes data tiles gzip-compressed; the nginx fixture then sends them
    with Content-Encoding: gzip (the spec lets logs do so without negotiation).
    publish(size=None) -> SignedTreeHead: writes every tile a checkpoint of that size needs
        (full and partial, all levels, data tiles, issuers) and then the checkpoint.
        Partial tiles of earlier checkpoints stay, as the spec wants.
    Misbehaviour (files changed after publish): forge_checkpoint(), corrupt_tile(level, n,
        width=None, index=0), remove_tile(level, n, width=None), write_checkpoint(sth)
        (e.g. a smaller, validly signed tree).
    """

    def __init__(self, log, docroot, origin, gzip_data=False):
        self.log, self.docroot, self.origin = log, docroot, origin
        self.gzip_data = gzip_data
        self.published = None
        os.makedirs(docroot, exist_ok=True)

    def path(self, rel):
        return os.path.join(self.docroot, rel)

    def _write(self, rel, data):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)

    def tile_hashes(self, level, n, width):
        span = TILE_WIDTH ** level
        t = self.log.tree
        return b"".join(t.mth((n * TILE_WIDTH + i) * span, (n * TILE_WIDTH + i + 1) * span)
                        for i in range(width))

    def data_tile(self, n, width):
        es = self.log.entries[n * TILE_WIDTH:n * TILE_WIDTH + width]
        return b"".join(e.tile_leaf() for e in es)

    def tiles_for(self, size):
        """[(level, n, width)] of every tile a tree of size needs ("data" for data)."""
        out = []
        level = 0
        while size // TILE_WIDTH ** level:
            count = size // TILE_WIDTH ** level
            for n in range(count // TILE_WIDTH):
                out.append((level, n, TILE_WIDTH))
            if count % TILE_WIDTH:
                out.append((level, count // TILE_WIDTH, count % TILE_WIDTH))
            level += 1
        out += [("data", n, w) for (lv, n, w) in out if lv == 0]
        return out

    def publish(self, size=None, sth=None):
        with self.log.lock:
            size = self.log.size() if size is None else size
            for level, n, w in self.tiles_for(size):
                rel = tile_path(level, n, w)
                if os.path.exists(self.path(rel)):
                    continue  # tiles are immutable
                if level == "data":
                    data = self.data_tile(n, w)
                    if self.gzip_data:
                        data = gzip.compress(data, mtime=0)
                else:
                    data = self.tile_hashes(level, n, w)
                self._write(rel, data)
            for e in self.log.entries[:size]:
                for c in e.chain:
                    rel = "issuer/" + hashlib.sha256(c).hexdigest()
                    if not os.path.exists(self.path(rel)):
                        self._write(rel, c)
            sth = sth or self.log.sth(size)
        self.write_checkpoint(sth)
        return sth

    def write_checkpoint(self, sth, sig_override=None):
        self.published = sth
        self._write("checkpoint", checkpoint_text(self.origin, sth, self.log.log_id,
                                                  sig_override).encode())

    def forge_checkpoint(self, impostor=None):
        """Re-sign the published tree head with another key (same key ID and name)."""
        sth = self.published
        bad = (impostor or LogKey(self.log.key.kind)).digitally_signed(
            tree_head_input(sth.tree_size, sth.timestamp, sth.root))
        self.write_checkpoint(sth, sig_override=bad)

    def corrupt_tile(self, level, n, width=None, index=0):
        """Flip one byte of hash (or data-tile byte) index of a published tile."""
        p = self.path(tile_path(level, n, width))
        with open(p, "rb") as f:
            data = bytearray(f.read())
        if level == "data" and self.gzip_data:
            data = bytearray(gzip.decompress(bytes(data)))
        pos = index * 32 if level != "data" else index
        data[pos] ^= 0x01
        out = bytes(data)
        if level == "data" and self.gzip_data:
            out = gzip.compress(out, mtime=0)
        self._write(tile_path(level, n, width), out)

    def remove_tile(self, level, n, width=None):
        os.unlink(self.path(tile_path(level, n, width)))


# -- the log list ---------------------------------------------------------------------------

def _iso(ts=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts or time.time()))


def log_list_entry(log, state="usable", url=None, submission_url=None,
                   monitoring_url=None, mmd=86400, description=None):
    """One v3 log list entry: url for RFC 6962 logs, submission_url and monitoring_url for
    tiled logs. state: usable, qualified, readonly, retired, rejected, pending."""
    now = int(time.time())
    e = {"description": description or log.name, "log_id": b64(log.log_id),
         "key": b64(log.spki), "mmd": mmd,
         "state": {state: {"timestamp": _iso(now - 86400)}},
         "temporal_interval": {"start_inclusive": _iso(now - 365 * 86400),
                               "end_exclusive": _iso(now + 365 * 86400)}}
    if state == "readonly":
        sth = log.sth()
        e["state"]["readonly"]["final_tree_head"] = {
            "sha256_root_hash": b64(sth.root), "tree_size": sth.tree_size}
    if url is not None:
        e["url"] = url
    else:
        e["submission_url"] = submission_url
        e["monitoring_url"] = monitoring_url
    return e


def write_log_list(path, rfc_logs=(), tiled_logs=(), skipped=True):
    """Write a v3 log list (one operator) to path and return it as a dict.

    rfc_logs: [(Log, url)], tiled_logs: [(Log, submission_url, monitoring_url)], all
    "usable". skipped=True adds a retired RFC 6962 log and a rejected tiled log (fresh keys,
    unreachable URLs on 127.0.0.1:9) that a monitor must skip; their ids are in
    result["_skipped_ids"] (not part of the file).
    """
    logs = [log_list_entry(lg, url=u) for lg, u in rfc_logs]
    tiled = [log_list_entry(lg, submission_url=s, monitoring_url=m)
             for lg, s, m in tiled_logs]
    skipped_ids = []
    if skipped:
        old = Log("retired test log")
        logs.append(log_list_entry(old, state="retired", url="http://127.0.0.1:9/retired/"))
        bad = Log("rejected test log")
        tiled.append(log_list_entry(bad, state="rejected",
                                    submission_url="http://127.0.0.1:9/rejected/",
                                    monitoring_url="http://127.0.0.1:9/rejected/"))
        skipped_ids = [b64(old.log_id), b64(bad.log_id)]
    doc = {"version": "postwarden-test-1", "log_list_timestamp": _iso(),
           "operators": [{"name": "postwarden tests", "email": ["ct@example.test"],
                          "logs": logs, "tiled_logs": tiled}]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    doc["_skipped_ids"] = skipped_ids
    return doc
