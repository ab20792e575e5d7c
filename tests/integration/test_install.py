"""`make install`: the release binary, the man pages, the settings page and the Roundcube
plugin land under DESTDIR/PREFIX, and the binary looks for the settings page under the PREFIX
it was built with."""

import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def make(*args):
    return subprocess.run(["nice", "-n", "19", "make", "-C", ROOT, "--no-print-directory"] +
                          list(args), capture_output=True, text=True, timeout=1200)


def files_under(d):
    return sorted(os.path.relpath(os.path.join(p, f), d)
                  for p, _, fs in os.walk(d) for f in fs)


def test_install_into_destdir(tmp_path):
    dest = str(tmp_path / "root")
    r = make("install", "DESTDIR=" + dest)
    assert r.returncode == 0, r.stdout + r.stderr
    pre = os.path.join(dest, "usr", "local")
    sbin = os.path.join(pre, "sbin", "postwarden")
    assert os.access(sbin, os.X_OK)
    with open(sbin, "rb") as a, open(os.path.join(ROOT, "build", "rel", "postwarden"),
                                     "rb") as b:
        assert a.read() == b.read()
    for src, dst in (("docs/postwarden.8", "share/man/man8/postwarden.8"),
                     ("docs/postwarden.conf.5", "share/man/man5/postwarden.conf.5")):
        with open(os.path.join(ROOT, src), "rb") as a, open(os.path.join(pre, dst), "rb") as b:
            assert a.read() == b.read(), dst
    for src, dst in (("www", "share/postwarden/www"),
                     ("contrib/roundcube/postwarden", "share/postwarden/roundcube")):
        want = files_under(os.path.join(ROOT, src))
        assert "index.html" in want or "postwarden.php" in want
        assert files_under(os.path.join(pre, dst)) == want, dst
        assert oct(os.stat(os.path.join(pre, dst, want[0])).st_mode & 0o777) == "0o644"
    # nothing outside DESTDIR/PREFIX
    assert os.listdir(dest) == ["usr"] and os.listdir(os.path.join(dest, "usr")) == ["local"]
    # the installed binary's default www_dir is the installed settings page
    c = subprocess.run([sbin, "config"], capture_output=True, text=True, timeout=30)
    assert "/usr/local/share/postwarden/www when present" in c.stdout + c.stderr


def test_prefix_moves_every_path_and_the_built_in_default(tmp_path):
    # a dry run: the paths follow PREFIX and the objects naming it are rebuilt with it
    r = make("-n", "install", "PREFIX=/opt/pwx", "DESTDIR=" + str(tmp_path))
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "%s/opt/pwx/sbin/postwarden" % tmp_path in out
    assert "%s/opt/pwx/share/man/man5/postwarden.conf.5" % tmp_path in out
    assert "-DPW_PREFIX='\"/opt/pwx\"'" in out and "src/account/acct_http.c" in out
    assert "/usr/local" not in out
