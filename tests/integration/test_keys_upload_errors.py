"""Every kind of broken key upload gets postwarden's own sentence and nothing else: no line a
library prints (librnp's "[armored_src_read() ...]" debug lines, OpenSSL's error queue) reaches
standard error, and nothing is stored."""

import base64
import os
import re
import shutil
import tempfile

import pytest

from pwtest import keys as pk
from pwtest.relay import Relay

# Relay, key directory or key search: `make integration` runs these on both engines.
pytestmark = pytest.mark.engines

ADDR = "upload@keys.test"
# postwarden's sentences and its own log lines; nothing else may appear.
OWN_LINE = re.compile(r"^(postwarden: \S|\d{4}-\d\d-\d\dT[\d:]+Z postwarden\[\d+\]: (info|warn|error): )")


@pytest.fixture(scope="module")
def material():
    """A real key and certificate, made once, from which the broken uploads are cut."""
    home = tempfile.mkdtemp(prefix="pwu", dir="/tmp")
    g = pk.GnuPG(home)
    fpr = g.make_key(ADDR)
    out = {"armored": g.export(fpr), "binary": g.export(fpr, armor=False),
           "secret": g.export_secret(fpr)}
    out["pem"], out["der"] = pk.make_smime_cert(ADDR)
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)
    return out


def _armor(body, kind="PGP PUBLIC KEY BLOCK", headers=""):
    return ("-----BEGIN %s-----\n%s\n%s\n-----END %s-----\n" % (kind, headers, body, kind)).encode()


def broken_uploads(m):
    """name -> bytes: one of each way an upload can be damaged."""
    armored = m["armored"].decode()
    lines = armored.splitlines()
    body_b64 = base64.b64encode(m["binary"]).decode()
    pem = m["pem"].decode().splitlines()
    return {
        "armor body not base64": _armor("mDMEZ****notbase64***\n"),
        "armor body with a stray character": _armor(body_b64[:40] + "!" + body_b64[41:]),
        "armor cut in the middle": "\n".join(lines[:len(lines) // 2]).encode(),
        "armor without its end line": "\n".join(lines[:-1]).encode() + b"\n",
        "armor with binary bytes in the body": _armor(body_b64[:60] + "\x00\xff\x01" + body_b64[60:]),
        "armor of the wrong kind": _armor(body_b64, kind="PGP MESSAGE"),
        "empty armor": _armor(""),
        "binary cut short": m["binary"][: len(m["binary"]) // 3],
        "binary with a broken packet length": b"\x99\xff\xff" + m["binary"][3:],
        "binary with a flipped byte": m["binary"][:20] + bytes([m["binary"][20] ^ 0xFF])
        + m["binary"][21:],
        "random bytes": bytes((i * 131 + 7) % 256 for i in range(600)),
        "text that is no key": b"hello, this is not a key\n" * 10,
        "empty file": b"",
        "secret key": m["secret"],
        "PEM body not base64": ("\n".join(pem[:1] + ["****"] + pem[-1:]) + "\n").encode(),
        "PEM cut in the middle": ("\n".join(pem[: len(pem) // 2]) + "\n").encode(),
        "DER cut short": m["der"][: len(m["der"]) // 2],
        "DER with a broken length": m["der"][:1] + bytes([m["der"][1] ^ 0x7F]) + m["der"][2:],
    }


CASES = ["armor body not base64", "armor body with a stray character", "armor cut in the middle",
         "armor without its end line", "armor with binary bytes in the body",
         "armor of the wrong kind", "empty armor", "binary cut short",
         "binary with a broken packet length", "binary with a flipped byte", "random bytes",
         "text that is no key", "empty file", "secret key", "PEM body not base64",
         "PEM cut in the middle", "DER cut short", "DER with a broken length"]


@pytest.fixture
def pw(workdir):
    r = Relay(workdir, 25, "/nonexistent")
    r.pw("user", "add", ADDR, check=True)
    return r


def test_the_cases_cover_every_broken_upload(material):
    assert sorted(CASES) == sorted(broken_uploads(material))


@pytest.mark.parametrize("case", CASES)
def test_broken_upload_prints_only_postwardens_sentence(pw, material, case):
    data = broken_uploads(material)[case]
    path = os.path.join(pw.dir, "upload.key")
    with open(path, "wb") as f:
        f.write(data)
    r = pw.pw("keys", "publish", ADDR, path)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert lines, "a refusal must say why"
    assert all(OWN_LINE.match(l) for l in lines), "foreign lines on stderr:\n" + r.stderr
    assert ".cpp:" not in r.stderr, r.stderr
    assert r.stdout == ""
    assert pw.pw_json("keys", "list") == []


def test_a_good_upload_still_passes(pw, material):
    """Control: the same command with the undamaged key is accepted, so the refusals above are
    the damage's doing."""
    path = os.path.join(pw.dir, "good.asc")
    with open(path, "wb") as f:
        f.write(material["armored"])
    r = pw.pw("keys", "publish", ADDR, path)
    assert r.returncode in (0, 3), r.stderr
    assert [k["address"] for k in pw.pw_json("keys", "list")] == [ADDR]
