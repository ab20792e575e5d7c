"""The command line: exit codes, config errors with FILE:LINE, accounts round trip."""
import json
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("POSTWARDEN", os.path.join(ROOT, "build", "asan", "postwarden"))


def pw(tmp_path, *args, conf=None):
    cmd = [BIN]
    if conf is not None:
        cmd += ["-c", str(conf)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    return subprocess.run(cmd + list(args), cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=60)


def write_conf(tmp_path, text):
    path = tmp_path / "postwarden.conf"
    path.write_text(text)
    return path


def test_help_and_usage_exit_codes(tmp_path):
    r = pw(tmp_path, "--help")
    assert r.returncode == 0 and "tls-check" in r.stdout
    assert pw(tmp_path, "nonsense").returncode == 2
    assert pw(tmp_path, "user").returncode == 2
    r = pw(tmp_path, "user", "--help")
    assert r.returncode == 0 and "guarantee ADDR on|off" in r.stdout


@pytest.mark.parametrize("text,line,words", [
    ("[relay]\nlisten = nowhere\n", 2, "is not an address:port"),
    ("[server]\n\nstate_dir = x\ncolour = blue\n", 4, 'unknown key "colour"'),
    ("[guarantee]\nlanguage = fr\n", 2, "not one of the allowed values"),
    ("[relay]\ntrusted_networks = 10.0.0.0/40\n", 2, "CIDR"),
])
def test_config_errors_stop_with_file_and_line(tmp_path, text, line, words):
    conf = write_conf(tmp_path, text)
    r = pw(tmp_path, "user", "list", conf=conf)
    assert r.returncode == 1
    assert f"{conf}:{line}: " in r.stderr and words in r.stderr
    assert not (tmp_path / "var").exists(), "nothing may be created from a bad config"


def test_config_found_in_working_directory(tmp_path):
    write_conf(tmp_path, "[server]\nstate_dir = ./state\n")
    assert pw(tmp_path, "user", "add", "a@example.test").returncode == 0
    assert (tmp_path / "state" / "postwarden.db").exists()


def test_accounts_round_trip(tmp_path):
    conf = write_conf(tmp_path, "[guarantee]\ndefault = on\n")
    assert pw(tmp_path, "user", "add", "anna@example.test", "--alias", "info@example.test",
              conf=conf).returncode == 0
    r = pw(tmp_path, "user", "add", "bob@example.test", "--alias", "INFO@example.test", conf=conf)
    assert r.returncode == 1 and "already belongs" in r.stderr
    users = json.loads(pw(tmp_path, "user", "list", "--json", conf=conf).stdout)
    assert [u["address"] for u in users] == ["anna@example.test"]
    assert users[0]["aliases"] == ["info@example.test"]
    assert users[0]["guarantee_active"] is True

    r = pw(tmp_path, "user", "guarantee", "info@example.test", "off", "--for", "30m", conf=conf)
    assert r.returncode == 0 and "event=guarantee" in r.stderr, "exceptions are logged"
    shown = json.loads(pw(tmp_path, "user", "show", "anna@example.test", "--json", conf=conf).stdout)
    assert shown["guarantee_active"] is False and shown["guarantee_off_until"] > 0
    assert pw(tmp_path, "user", "guarantee", "anna@example.test", "on", "--for", "1m",
              conf=conf).returncode == 2
    assert pw(tmp_path, "user", "del", "info@example.test", conf=conf).returncode == 0
    assert json.loads(pw(tmp_path, "user", "list", "--json", conf=conf).stdout) == []


def test_every_config_key_is_documented(tmp_path):
    """postwarden config prints the key tables; the man page must describe each key."""
    r = pw(tmp_path, "config")
    assert r.returncode == 0
    man = open(os.path.join(ROOT, "docs", "postwarden.conf.5")).read()
    section = None
    keys = 0
    for line in r.stdout.splitlines():
        if line.startswith("["):
            section = line
            assert f".SH {section}" in man, f"{section} missing from postwarden.conf(5)"
        elif line and not line.startswith("#"):
            key = line.split(" = ")[0]
            keys += 1
            assert f".B {key} =" in man, f"{section} {key} missing from postwarden.conf(5)"
    assert keys >= 20


def test_sources_write_only_to_postwardens_own_stderr():
    """The C library's stderr stream goes to /dev/null (it is where libraries print their debug
    lines); postwarden's own messages use pw_stderr. A message written to plain stderr would
    vanish, so no source outside log.c may name it."""
    offenders = []
    for top, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            path = os.path.join(top, name)
            if not name.endswith((".c", ".h")) or path.endswith(os.path.join("lib", "log.c")):
                continue
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    code = line.split("/*")[0].split("//")[0]
                    if line.lstrip().startswith("*"):
                        continue  # inside a comment
                    if re.search(r"\bstderr\b", code):
                        offenders.append("%s:%d: %s" % (path, n, line.strip()))
    assert offenders == []


def test_only_the_storage_layer_talks_to_the_engines():
    """Every module reaches the database through src/lib/db.h: only the engines
    (src/lib/db_sqlite.c, src/lib/db_pg.c) name SQLite's or libpq's API. Control: the
    engines themselves do."""
    offenders = []
    engines = {os.path.join("lib", "db_sqlite.c"): r"\bsqlite3_",
               os.path.join("lib", "db_pg.c"): r"\bPQ[a-z]"}
    seen = dict.fromkeys(engines, False)
    for top, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            path = os.path.join(top, name)
            if not name.endswith((".c", ".h")):
                continue
            with open(path) as f:
                text = f.read()
            own = [k for k in engines if path.endswith(k)]
            if own:
                seen[own[0]] = re.search(engines[own[0]], text) is not None
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if line.lstrip().startswith(("*", "/*")):
                    continue
                if re.search(r"\bsqlite3_|\bPQ[a-z]|<sqlite3\.h>|<libpq-fe\.h>", line):
                    offenders.append("%s:%d: %s" % (path, n, line.strip()))
    assert offenders == []
    assert all(seen.values()), seen
