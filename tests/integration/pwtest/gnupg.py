"""GnuPG as the key directory's client: keys to publish, and lookups by DANE and WKD.

Each GnuPG instance is a fresh GNUPGHOME under /tmp with a short name (gpg-agent's and
dirmngr's sockets live there when there is no /run/user/<uid>, and a Unix socket path is
limited to 108 bytes). Every command runs inside a pwtest.netns.NetNS, with the test CA as
the system CA bundle, so the dirmngr that gpg starts resolves through the namespace's DNS
and trusts the namespace's web server. stop() ends gpg-agent and dirmngr with
`gpgconf --kill all` under the same GNUPGHOME.

Every command and its output are appended to commands.log, dirmngr logs to dirmngr.log;
both are meant to be registered with pwtest.logs.
"""

import os
import shutil
import tempfile


class Key:
    """One public key from `gpg --with-colons --list-sigs`."""

    def __init__(self, validity, keyid, expires):
        self.validity = validity
        self.keyid = keyid
        self.expires = expires
        self.fpr = None
        self.uids = []       # [(validity, user id)]
        self.sigs = []       # [(issuer key id, signature class)] on user IDs
        self.subkeys = []    # [(validity, key id)]

    def third_party_sigs(self):
        """Signatures on user IDs not made by the key itself (certifications)."""
        return [s for s in self.sigs if s[0].upper() != self.keyid.upper()]

    def __repr__(self):
        return "Key(fpr=%s validity=%s uids=%r sigs=%r)" % (self.fpr, self.validity,
                                                           self.uids, self.sigs)


def _unescape(field):
    """Undo gpg's \\xNN escaping in colon listings."""
    out = bytearray()
    i = 0
    b = field.encode()
    while i < len(b):
        if b[i:i + 2] == b"\\x" and i + 4 <= len(b):
            out.append(int(b[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return out.decode("utf-8", "replace")


def parse_colons(text):
    """[Key] from `--with-colons` output of --list-keys/--list-sigs/--show-keys."""
    keys = []
    cur = None
    in_sub = False
    for line in text.splitlines():
        f = line.split(":")
        kind = f[0]
        if kind == "pub":
            cur = Key(f[1], f[4], f[6])
            keys.append(cur)
            in_sub = False
        elif cur is None:
            continue
        elif kind == "fpr" and not in_sub and cur.fpr is None:
            cur.fpr = f[9]
        elif kind == "uid":
            cur.uids.append((f[1], _unescape(f[9])))
        elif kind == "sig" and not in_sub:
            cur.sigs.append((f[4], f[10]))
        elif kind == "sub":
            cur.subkeys.append((f[1], f[4]))
            in_sub = True
    return keys


class GnuPG:
    """A GNUPGHOME whose gpg runs inside netns, trusting ca_bundle for HTTPS."""

    def __init__(self, netns, ca_bundle, prefix="pwg-"):
        self.ns = netns
        self.ca_bundle = ca_bundle
        self.home = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.chmod(self.home, 0o700)
        self.cmd_log = os.path.join(self.home, "commands.log")
        self.dirmngr_log = os.path.join(self.home, "dirmngr.log")
        with open(os.path.join(self.home, "dirmngr.conf"), "w") as f:
            f.write("log-file %s\nverbose\ndebug-level advanced\nno-use-tor\n"
                    "disable-ipv6\n" % self.dirmngr_log)
        with open(os.path.join(self.home, "gpg.conf"), "w") as f:
            f.write("no-greeting\n")
        for p in (self.cmd_log, self.dirmngr_log):
            open(p, "a").close()

    def env(self):
        e = dict(os.environ)
        e["GNUPGHOME"] = self.home
        e.pop("GPG_AGENT_INFO", None)
        e["LC_ALL"] = "C"
        return e

    def run(self, *args, input=None, check=True, timeout=60, text=True):
        """gpg --batch ARGS in the namespace; returns the CompletedProcess."""
        cmd = ["gpg", "--homedir", self.home, "--batch", "--no-tty", "--yes"] + list(args)
        r = self.ns.run(cmd, ca_bundle=self.ca_bundle, input=input, env=self.env(),
                        timeout=timeout, text=text)
        with open(self.cmd_log, "a") as f:
            out = r.stdout if text else r.stdout.decode("utf-8", "replace")
            err = r.stderr if text else r.stderr.decode("utf-8", "replace")
            f.write("$ %s\n[exit %d]\n--- stdout\n%s\n--- stderr\n%s\n" % (
                " ".join(cmd), r.returncode, out[:20000], err))
        if check and r.returncode != 0:
            raise AssertionError("gpg %s exited %d\nstderr: %s" % (" ".join(args),
                                                                   r.returncode, r.stderr))
        return r

    # -- keys of the publishing side -----------------------------------------

    def gen_key(self, uid, algo="ed25519"):
        """Create a key (no passphrase) with primary user ID uid; return its fingerprint.
        algo: ed25519 (with a cv25519 subkey) or rsaNNNN (with an RSA subkey)."""
        self.run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", uid,
                 algo, "cert,sign", "1y")
        fpr = self.fingerprint(uid)
        sub = "cv25519" if algo == "ed25519" else algo
        self.run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-add-key", fpr,
                 sub, "encr", "1y")
        return fpr

    def fingerprint(self, ident):
        keys = self.keys(ident)
        if len(keys) != 1:
            raise AssertionError("expected one key for %r, got %r" % (ident, keys))
        return keys[0].fpr

    def certify(self, fpr, signer_fpr, uid):
        """Sign uid of key fpr with the key signer_fpr (a third-party certification)."""
        self.run("--passphrase", "", "--pinentry-mode", "loopback", "--default-key",
                 signer_fpr, "--quick-sign-key", fpr, uid)

    def export(self, ident, path, armor=False, options=None):
        """Export the public key ident to path (binary unless armor)."""
        args = ["--export-options", options] if options else []
        if armor:
            args.append("--armor")
        r = self.run(*(args + ["--export", ident]), text=False)
        if not r.stdout:
            raise AssertionError("gpg exported nothing for %s" % ident)
        with open(path, "wb") as f:
            f.write(r.stdout)
        return path

    def wkd_hash(self, addr):
        """The WKD hash gpg computes for addr (`--with-wkd-hash`): the hu/ file name."""
        r = self.run("--with-wkd-hash", "--list-keys", addr)
        domain = addr.rpartition("@")[2].lower()
        for line in r.stdout.splitlines():
            w = line.strip()
            if w.endswith("@" + domain) and len(w.split("@")[0]) == 32 and " " not in w:
                return w.split("@")[0]
        raise AssertionError("gpg printed no WKD hash for %s:\n%s" % (addr, r.stdout))

    def export_dane(self, ident):
        """(owner name, rdata hex) pairs of `--export-options export-dane --export`."""
        r = self.run("--export-options", "export-dane", "--export", ident)
        return parse_dane_export(r.stdout)

    # -- the looking-up side --------------------------------------------------

    def locate(self, addr, mechanisms, options=None):
        """`gpg --auto-key-locate clear,MECHANISMS --locate-keys addr`; returns the
        CompletedProcess (gpg exits 0 even when it found nothing: read keys())."""
        args = ["--auto-key-locate", "clear," + mechanisms]
        if options:
            args += ["--keyserver-options", options]
        return self.run(*(args + ["--locate-keys", addr]), check=False, timeout=60)

    def keys(self, ident=None):
        """[Key] in the keyring (optionally those matching ident), with signatures."""
        args = ["--with-colons", "--fixed-list-mode", "--list-sigs"]
        if ident:
            args.append(ident)
        r = self.run(*args, check=False)
        return parse_colons(r.stdout)

    def show_keys(self, data):
        """[Key] in data (bytes: binary or armored keys), without importing them."""
        r = self.run("--with-colons", "--fixed-list-mode", "--with-sig-list", "--show-keys",
                     input=data, text=False, check=False)
        return parse_colons(r.stdout.decode("utf-8", "replace"))

    def stop(self, remove=True):
        """Stop gpg-agent and dirmngr of this home; remove the home if remove."""
        try:
            self.ns.run(["gpgconf", "--homedir", self.home, "--kill", "all"], env=self.env(),
                        timeout=20)
        except Exception:
            pass
        if remove:
            shutil.rmtree(self.home, ignore_errors=True)


def parse_dane_export(text):
    """[(owner, rdata_hex)] from gpg's export-dane output:

        $ORIGIN _openpgpkey.example.test.
        ; <fingerprint>
        ; <user id>
        <hash> TYPE61 \\# <len> (
                <hex>
                ...
                )
    The owner is returned absolute and lowercased: <hash>._openpgpkey.<domain>.
    """
    out = []
    origin = None
    cur = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("$ORIGIN"):
            origin = s.split()[1]
        elif " TYPE61 " in s:
            owner = s.split()[0]
            if not owner.endswith("."):
                owner = owner + "." + (origin or "")
            cur = [owner.lower(), []]
            rest = s.split("(", 1)[1] if "(" in s else ""
            cur[1].append(rest)
            if ")" in s:
                out.append((cur[0], "".join(cur[1]).replace(")", "").replace(" ", "")))
                cur = None
        elif cur is not None:
            cur[1].append(s)
            if ")" in s:
                hexdata = "".join(cur[1]).replace(")", "").replace(" ", "").replace("\t", "")
                out.append((cur[0], hexdata.lower()))
                cur = None
    return out
