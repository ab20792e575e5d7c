"""Keys for the key search tests, made once per session by GnuPG in a private GNUPGHOME:
usable keys, revoked keys, expired keys, keys for another address, and the DNS records
(OPENPGPKEY, SMIMEA) and WKD files that publish them.

The key search must accept a key only for a valid user ID equal to the searched address,
not revoked, not expired: every kind here exists to be refused or accepted for a reason.
"""

import os
import shutil
import subprocess
import tempfile

from . import keys as pk


class TestKey:
    """One key: fingerprint, armored and binary export, the user IDs it carries."""

    __test__ = False

    def __init__(self, fpr, armored, binary, uids, algo):
        self.fpr = fpr
        self.armored = armored
        self.binary = binary
        self.uids = list(uids)
        self.algo = algo

    def openpgpkey_rdata(self):
        """OPENPGPKEY RDATA in generic zone-file syntax (\\# len hex)."""
        return "\\# %d %s" % (len(self.binary), self.binary.hex())


class KeyFactory:
    """A GNUPGHOME under /tmp (short: the agent's socket lives in it) making test keys."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="pwks", dir="/tmp")
        os.chmod(self.home, 0o700)
        self.gpg = pk.GnuPG(self.home)
        self._cache = {}

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"],
                       capture_output=True, timeout=20)
        shutil.rmtree(self.home, ignore_errors=True)

    def _export(self, fpr, uids, algo):
        return TestKey(fpr, self.gpg.export(fpr, armor=True).decode(),
                       self.gpg.export(fpr, armor=False), uids, algo)

    def _gen(self, uids, algo="ed25519", expire="1y", faked_time=None):
        pre = ["--faked-system-time", faked_time] if faked_time else []
        self.gpg.run(*(pre + ["--quick-gen-key", uids[0], algo, "cert,sign", expire]))
        out = self.gpg.run("--with-colons", "--list-keys", uids[0]).stdout.decode()
        fprs = [l.split(":")[9] for l in out.splitlines() if l.startswith("fpr:")]
        fpr = fprs[0]
        sub = "cv25519" if algo == "ed25519" else algo
        self.gpg.run(*(pre + ["--quick-add-key", fpr, sub, "encr", expire]))
        for u in uids[1:]:
            self.gpg.run(*(pre + ["--quick-add-uid", fpr, u]))
        return fpr

    def good(self, addr, *more_uids, algo="ed25519", name="Test"):
        """A usable key whose first user ID is "<name> <addr>" (cached per arguments)."""
        k = ("good", addr, more_uids, algo, name)
        if k not in self._cache:
            uids = ["%s <%s>" % (name, addr)] + list(more_uids)
            fpr = self._gen(uids, algo=algo)
            self._cache[k] = self._export(fpr, uids, algo)
        return self._cache[k]

    def revoked(self, addr):
        """A key for addr that is revoked (its own revocation certificate imported)."""
        k = ("revoked", addr)
        if k not in self._cache:
            uids = ["Revoked <%s>" % addr]
            fpr = self._gen(uids)
            rev = os.path.join(self.home, "openpgp-revocs.d", fpr + ".rev")
            with open(rev) as f:
                text = f.read().replace(":-----BEGIN", "-----BEGIN")
            self.gpg.run("--import", input=text.encode())
            self._cache[k] = self._export(fpr, uids, "ed25519")
        return self._cache[k]

    def expired(self, addr):
        """A key for addr made in 2020 that expired a year later."""
        k = ("expired", addr)
        if k not in self._cache:
            uids = ["Expired <%s>" % addr]
            fpr = self._gen(uids, faked_time="20200101T000000")
            self._cache[k] = self._export(fpr, uids, "ed25519")
        return self._cache[k]

    def validity(self, key):
        """GnuPG's validity letter of the primary key in key's export (r, e, -, u...)."""
        out = self.gpg.run("--with-colons", "--import-options", "show-only", "--import",
                           input=key.binary).stdout.decode()
        for line in out.splitlines():
            if line.startswith("pub:"):
                return line.split(":")[1]
        return None


def smimea_rdata(der):
    """SMIMEA `3 0 0 <DER>`: the whole certificate, which a sender needs to encrypt."""
    return "3 0 0 " + der.hex()


def wkd_files(docroot, addr, data, advanced=True):
    """Write data (binary key) as the WKD file for addr under docroot, with the policy
    file; returns the file's path. advanced: .well-known/openpgpkey/<domain>/hu/<hash>,
    else the direct layout .well-known/openpgpkey/hu/<hash>."""
    local, domain = addr.rsplit("@", 1)
    base = os.path.join(docroot, ".well-known", "openpgpkey")
    if advanced:
        base = os.path.join(base, domain.lower())
    os.makedirs(os.path.join(base, "hu"), exist_ok=True)
    open(os.path.join(base, "policy"), "a").close()
    path = os.path.join(base, "hu", pk.wkd_hash(local))
    with open(path, "wb") as f:
        f.write(data)
    return path
