#!/usr/bin/python3
"""Key directory benchmark: publish N OpenPGP keys (default 10,000) for N accounts into a
DNSSEC-signed Knot zone and time it until the last record is served SECURE; beside it, the
time ldns-signzone needs to sign a zone file holding the same records.

  keys       one Ed25519 + Curve25519 key per address user00000@bench.test ...; made once
             by bench/keygen.c (librnp) and cached in build/bench/keys/ (not timed)
  accounts   inserted straight into the accounts and addresses tables (sqlite3, or psql
             on PostgreSQL), in one transaction (the schema is created first by the
             postwarden binary); not timed
  engines    the whole publish runs once per database engine (--engines, default SQLite
             and a private PostgreSQL 15), each against a fresh Knot zone
  Knot       the integration tests' KeyZone fixture: zone bench.test signed with
             ECDSAP256SHA256 (NSEC), incremental signing, TSIG-signed RFC 2136 updates
             allowed for OPENPGPKEY/SMIMEA
  publish    one `postwarden keys publish --batch LIST` process: checks and stores every
             key, then sends all records in UPDATE messages of up to 60 KB

The clock starts when the publishing process is started and stops when both the process
has exited (every UPDATE answered) and a validating resolver (unbound-host against the
zone's trust anchor) reports the last name in publishing order "(secure)" with the
expected record (polled every 0.1 s: Knot directly until it serves the name, then
unbound-host). Afterwards every record is checked by zone transfer
(exact RDATA, nothing else under _openpgpkey), and 100 random names through unbound-host
(secure, exact RDATA).

Peak memory: the publishing process's maximum RSS (getrusage of the child, the same
figure as its VmHWM) and knotd's VmHWM (/proc/PID/status) at the end.

ldns-signzone: a zone file with the same SOA, NS and N OPENPGPKEY records (RDATA as
stored by postwarden), a KSK and a ZSK made by ldns-keygen (ECDSAP256SHA256); timed with
NSEC and with NSEC3 (-n -t 0, no salt: RFC 9276).

Prints a table and writes build/bench/keydir.json. Exit status 0 only if every check passed.
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

from pwtest import keys as pk             # noqa: E402
from pwtest import postgres as pw_postgres  # noqa: E402
from pwtest import relay as pw_relay      # noqa: E402
from pwtest.keyzone import KeyZone        # noqa: E402

import bench_peers as bp                  # noqa: E402
import dns.rdatatype                      # noqa: E402

ZONE = "bench.test"
SAMPLE = 100
TIME = "/usr/bin/time"    # GNU time (Debian package "time")
POLL_INTERVAL = 0.1


class BenchFailure(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def address(i):
    return "user%05d@%s" % (i, ZONE)


# -- keys ------------------------------------------------------------------------------------

def build_keygen(outdir):
    """Compile bench/keygen.c into outdir (again only when the source is newer)."""
    src = os.path.join(HERE, "keygen.c")
    exe = os.path.join(outdir, "keygen")
    if os.path.exists(exe) and os.path.getmtime(exe) >= os.path.getmtime(src):
        return exe
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "librnp"], capture_output=True,
                           text=True, check=True).stdout.split()
    cmd = ["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
           "-Wstrict-prototypes", "-Wmissing-prototypes", "-o", exe, src] + flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchFailure("building the key generator failed:\n%s%s" % (r.stdout, r.stderr))
    return exe


def make_keys(keygen, keydir, n, jobs):
    """Keys 0..n-1 in keydir (kept between runs); returns their paths."""
    os.makedirs(keydir, exist_ok=True)
    paths = [os.path.join(keydir, "user%05d.pgp" % i) for i in range(n)]
    missing = sum(1 for p in paths if not os.path.exists(p))
    if missing:
        log("generating %d keys with librnp into %s (once; not timed)" % (missing, keydir))
        t0 = time.monotonic()
        step = (n + jobs - 1) // jobs
        procs = [subprocess.Popen([keygen, keydir, ZONE, str(a), str(min(step, n - a))],
                                  stdout=subprocess.DEVNULL)
                 for a in range(0, n, step)]
        if any(p.wait() != 0 for p in procs):
            raise BenchFailure("the key generator failed")
        log("keys generated in %.1fs" % (time.monotonic() - t0))
    return paths


# -- measuring a child process -------------------------------------------------------------

def spawn_measured(cmd, workdir, **kw):
    """Start cmd under GNU time, which reports its CPU time and maximum RSS. (The rusage
    of a child of this script would not do: a forked child's RSS before exec, a copy of
    this Python process, counts towards its ru_maxrss.) Returns (Popen, stats file)."""
    fd, stats = tempfile.mkstemp(prefix="time-", dir=workdir)
    os.close(fd)
    return subprocess.Popen([TIME, "-f", "%U %S %M", "-o", stats] + list(cmd), **kw), stats


def read_stats(path):
    """{user, system (CPU seconds), maxrss_kb} from the file GNU time wrote."""
    with open(path) as f:
        last = f.read().strip().splitlines()[-1].split()
    return {"user": float(last[0]), "system": float(last[1]), "maxrss_kb": int(last[2])}


# -- postwarden -------------------------------------------------------------------------------

def pg_dbname(relay):
    return relay.sections["database"]["url"].rsplit("/", 1)[1]


def make_accounts(relay, n, pg=None):
    """The schema by the binary, then n accounts and addresses in one SQL transaction
    (the same rows `postwarden user add` writes, without a process per account)."""
    if pg is not None:
        relay.pw("db", "migrate", check=True)
        # address(i) in SQL: user%05d@ZONE
        addr = "'user' || lpad(i::text, 5, '0') || '@%s'" % ZONE
        pg.psql(["INSERT INTO accounts (id, primary_addr, guarantee, created) SELECT i + 1, "
                 "%s, 0, %d FROM generate_series(0, %d) i" % (addr, int(time.time()), n - 1),
                 "INSERT INTO addresses (addr, account_id, is_primary) SELECT %s, i + 1, 1 "
                 "FROM generate_series(0, %d) i" % (addr, n - 1),
                 "SELECT setval(pg_get_serial_sequence('accounts', 'id'), %d)" % n],
                dbname=pg_dbname(relay))
    else:
        relay.pw("user", "list", check=True)
        db = sqlite3.connect(os.path.join(relay.state_dir, "postwarden.db"))
        now = int(time.time())
        with db:
            db.executemany("INSERT INTO accounts (id, primary_addr, guarantee, created) "
                           "VALUES (?, ?, 0, ?)", ((i + 1, address(i), now) for i in range(n)))
            db.executemany("INSERT INTO addresses (addr, account_id, is_primary) "
                           "VALUES (?, ?, 1)", ((address(i), i + 1) for i in range(n)))
        db.close()
    listed = relay.pw_json("user", "show", address(n - 1))
    if address(n - 1) not in json.dumps(listed):
        raise BenchFailure("the inserted account %s is not visible to postwarden: %s" % (
            address(n - 1), listed))


def stored_rows(relay, pg):
    """(owner, owner_lc, data) of every stored OpenPGP copy."""
    sql = "SELECT owner, owner_lc, %s FROM keydir_keys WHERE rrtype = 61"
    if pg is not None:
        out = pg.psql(sql % "encode(data, 'hex')", dbname=pg_dbname(relay))
        return [(o, lc, bytes.fromhex(h)) for o, lc, h in
                (line.split("|") for line in out.splitlines() if line)]
    db = sqlite3.connect(os.path.join(relay.state_dir, "postwarden.db"))
    rows = list(db.execute(sql % "data"))
    db.close()
    return rows


def stored_records(relay, pg=None):
    """{owner: minimised key} of every stored OpenPGP copy, both owner names."""
    out = {}
    for owner, owner_lc, data in stored_rows(relay, pg):
        for o in (owner, owner_lc):
            if o:
                if o in out and out[o] != bytes(data):
                    raise BenchFailure("two keys stored for %s" % o)
                out[o] = bytes(data)
    return out


def secure_answer(kz, owner):
    """(secure, rdata text) of unbound-host's answer for owner OPENPGPKEY."""
    r = kz.unbound_host(owner, "OPENPGPKEY")
    return "(secure)" in r.stdout, r.stdout


def unbound_rdata(text):
    """The RDATA unbound-host printed, as bytes ("has OPENPGPKEY record" lines in RFC 3597
    hex, or "has RR type 61 record" ones), or None."""
    rds = []
    for line in text.splitlines():
        m = re.search(r"has (?:OPENPGPKEY|TYPE61|RR type 61) record(.*)", line)
        if m:
            body = re.sub(r"\(secure\)|\(insecure\)|\(BOGUS.*", "", m.group(1)).strip()
            body = body.replace("\\#", "").split()
            if body and body[0].isdigit() and len(body) > 1:
                body = body[1:]
            hexstr = "".join(body)
            try:
                rds.append(bytes.fromhex(hexstr))
            except ValueError:
                try:
                    rds.append(base64.b64decode(hexstr, validate=True))
                except ValueError:
                    return None
    return sorted(rds)


class SecurePoller(threading.Thread):
    """Watches for the last name: every POLL_INTERVAL a direct query to Knot (cheap, in
    this process); once Knot serves a record there, unbound-host until it answers
    (secure) with a record. Starting a validating resolver every poll from the start
    would take CPU from the publishing process on a small machine. t_secure is the wall
    clock at the start of the first secure answer."""

    def __init__(self, kz, owner, err_path):
        super().__init__(daemon=True)
        self.kz = kz
        self.owner = owner
        self.err_path = err_path
        self.err_at = 0
        self.t_first_update = None
        self.t_served = None
        self.t_secure = None
        self.text = None
        self.polls = 0
        self._stop_ev = threading.Event()

    def first_update(self):
        """Note when the publishing process logged its first answered UPDATE: the end
        of checking and storing, roughly (to within one poll)."""
        if self.t_first_update is not None:
            return
        with open(self.err_path, "rb") as f:
            f.seek(max(0, self.err_at - 64))
            data = f.read()
        self.err_at += len(data) - min(64, self.err_at)
        if b"event=keydir_update" in data:
            self.t_first_update = time.time()

    def served(self):
        try:
            return bool(self.kz.rdatas(self.owner, "OPENPGPKEY"))
        except Exception:  # noqa: BLE001 - Knot busy: ask again at the next poll
            return False

    def run(self):
        while not self._stop_ev.is_set():
            self.first_update()
            t = time.time()
            if self.t_served is None and self.served():
                self.t_served = t
            if self.t_served is not None:
                ok, text = secure_answer(self.kz, self.owner)
                self.polls += 1
                if ok and unbound_rdata(text):
                    self.t_secure, self.text = t, text
                    return
            self._stop_ev.wait(POLL_INTERVAL)

    def stop(self):
        self._stop_ev.set()
        self.join(60)


def idle_rss(relay):
    """Maximum RSS of a postwarden command that publishes nothing (`user show`): the part
    of the peak that the binary and its libraries take whatever the number of keys."""
    proc, stats = spawn_measured([pw_relay.binary(), "-c", relay.conf_path, "user", "show",
                                  address(0)], relay.dir, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=pw_relay.daemon_env())
    proc.wait()
    return read_stats(stats)["maxrss_kb"]


def publish(args, relay, kz, paths, owners):
    """The measured part; returns the figures."""
    batch = os.path.join(relay.dir, "batch.txt")
    with open(batch, "w") as f:
        for i, p in enumerate(paths):
            f.write("%s %s\n" % (address(i), p))
    last_owner = max(owners)   # pending names are reconciled in owner order
    knot_pid = kz.proc.pid
    knot_rss0 = bp._status_kb(knot_pid, "VmRSS")
    knot_hwm0 = bp._status_kb(knot_pid, "VmHWM")
    knot_cpu0 = bp._cpu_ticks(knot_pid)
    cmd = (args.wrap.split() if args.wrap else []) + [
        pw_relay.binary(), "-c", relay.conf_path, "keys", "publish", "--batch", batch, "--json"]
    out_path = os.path.join(relay.dir, "publish.out")
    err_path = os.path.join(relay.dir, "publish.err")
    poller = SecurePoller(kz, last_owner, err_path)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.time()
        proc, stats = spawn_measured(cmd, relay.dir, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=relay.dir,
                                     env=pw_relay.daemon_env())
        poller.start()
        proc.wait()
        t_exit = time.time()
    ru = read_stats(stats)
    poller.join(args.secure_timeout)
    poller.stop()
    with open(out_path) as f:
        stdout = f.read()
    with open(err_path) as f:
        stderr = f.read()
    if proc.returncode != 0:
        raise BenchFailure("keys publish --batch exited %d:\n%s\n%s" % (
            proc.returncode, stdout[-2000:], stderr[-3000:]))
    res = json.loads(stdout)
    if res["published"] != len(paths) or res["pending"] or res["refused"]:
        raise BenchFailure("keys publish --batch: %s" % json.dumps(res)[:2000])
    if poller.t_secure is None:
        raise BenchFailure("%s not served secure within %ds of the end of publishing" % (
            last_owner, args.secure_timeout))
    # The figure the issue asks for: until the last record is SECURE in DNS. The process may
    # still be writing WKD files then (they come after the DNS names); process_seconds says.
    t_end = poller.t_secure
    updates = [pw_relay.parse_kv(l) for l in stderr.splitlines() if "event=keydir_update" in l]
    n = len(paths)
    r = {
        "keys": n,
        "seconds": round(t_end - t0, 3),
        "keys_per_s": round(n / (t_end - t0), 1),
        "process_seconds": round(t_exit - t0, 3),
        "last_secure_seconds": round(poller.t_secure - t0, 3),
        "first_update_seconds": (round(poller.t_first_update - t0, 3)
                                 if poller.t_first_update else None),
        "last_owner": last_owner,
        "last_served_seconds": round(poller.t_served - t0, 3),
        "resolver_polls": poller.polls,
        "names_updated": res["done"],
        "update_messages": len(updates),
        "update_bytes": sum(int(u.get("bytes", 0)) for u in updates),
        "cpu_user_seconds": ru["user"],
        "cpu_system_seconds": ru["system"],
        "peak_rss_kb": ru["maxrss_kb"],
        "idle_rss_kb": idle_rss(relay),
        "knotd_vmhwm_kb": bp._status_kb(knot_pid, "VmHWM"),
        "knotd_vmhwm_before_kb": knot_hwm0,
        "knotd_rss_before_kb": knot_rss0,
        "knotd_rss_after_kb": bp._status_kb(knot_pid, "VmRSS"),
        "knotd_cpu_seconds": round((bp._cpu_ticks(knot_pid) - knot_cpu0) / bp.TICK, 2),
    }
    log("published %d keys: process %.2fs, last name secure at %.2fs; %d UPDATE messages; "
        "postwarden peak RSS %s, knotd VmHWM %s" % (
            n, r["process_seconds"], r["last_secure_seconds"], r["update_messages"],
            fmt_mem(r["peak_rss_kb"]), fmt_mem(r["knotd_vmhwm_kb"])))
    return r


def verify(kz, relay, owners, n, seed, pg=None):
    """Every record by AXFR equals the store; SAMPLE random names secure with exact RDATA."""
    want = stored_records(relay, pg)
    if sorted(want) != sorted(owners):
        missing = set(owners) - set(want)
        raise BenchFailure("the store has %d OpenPGP names, want %d (e.g. missing %s)" % (
            len(want), len(owners), sorted(missing)[:3]))
    have = kz.records()
    bad = [o for o in want if have.get((o, "OPENPGPKEY")) != [want[o]]]
    extra = [k for k in have if k[0] not in want]
    if bad or extra or len(have) != len(want):
        raise BenchFailure("zone transfer: %d records differ (e.g. %s), %d unexpected (e.g. %s)"
                           % (len(bad), bad[:3], len(extra), extra[:3]))
    rng = random.Random(seed)
    sample = rng.sample(sorted(want), min(SAMPLE, len(want)))
    problems = []
    for o in sample:
        ok, text = secure_answer(kz, o)
        rd = unbound_rdata(text)
        if not ok:
            problems.append("%s: not secure: %s" % (o, text.strip()[:200]))
        elif rd != [want[o]]:
            problems.append("%s: unbound-host RDATA differs: %s" % (o, text.strip()[:200]))
        elif kz.rdatas(o, "OPENPGPKEY") != [want[o]]:
            problems.append("%s: Knot serves other RDATA" % o)
    if problems:
        raise BenchFailure("validated sample: %d of %d failed:\n  %s" % (
            len(problems), len(sample), "\n  ".join(problems[:10])))
    log("checked: %d records by zone transfer, %d random names secure with exact RDATA" % (
        len(have), len(sample)))
    return {"axfr_records": len(have), "sample_secure": len(sample)}, want


# -- Knot signing the whole zone --------------------------------------------------------------

def knot_full_sign(base, records):
    """knotd started on a zone file that already holds every record: seconds until it
    serves the zone signed (the KeyZone fixture waits for a signed SOA), and its VmHWM."""
    extra = ["%s. 60 IN OPENPGPKEY %s" % (o, base64.b64encode(records[o]).decode())
             for o in sorted(records)]
    kz = KeyZone(os.path.join(base, "knot-full"), zone=ZONE, mode="nsec")
    t0 = time.monotonic()
    try:
        kz.start(extra_records=extra)
        secs = time.monotonic() - t0
        probe = max(records)
        r = kz.query(probe + ".", "OPENPGPKEY", dnssec=True)
        types = {rrset.rdtype for rrset in r.answer}
        if types != {dns.rdatatype.OPENPGPKEY, dns.rdatatype.RRSIG}:
            raise BenchFailure("knotd (full signing) does not serve %s signed: %s" % (probe, r))
        hwm = bp._status_kb(kz.proc.pid, "VmHWM")
    finally:
        kz.stop()
    log("knotd loaded and signed a zone file of %d records in %.2fs" % (len(records), secs))
    return {"records": len(records), "seconds": round(secs, 3), "vmhwm_kb": hwm}


# -- ldns-signzone ------------------------------------------------------------------------------

def ldns_zone(d, records):
    """Zone file with the fixture's SOA/NS/A records and every OPENPGPKEY record."""
    path = os.path.join(d, ZONE + ".zone")
    with open(path, "w") as f:
        f.write("$ORIGIN %s.\n$TTL 60\n" % ZONE)
        f.write("@ IN SOA ns.%s. hostmaster.%s. 1 60 60 600 60\n" % (ZONE, ZONE))
        f.write("@ IN NS ns.%s.\nns IN A 127.0.0.1\nwww IN A 127.0.0.1\n" % ZONE)
        for owner in sorted(records):
            f.write("%s. 60 IN OPENPGPKEY %s\n" % (owner, base64.b64encode(
                records[owner]).decode()))
    return path


def run_timed(cmd, cwd):
    """Run cmd; (wall seconds, max RSS kB, CPU seconds)."""
    t0 = time.monotonic()
    proc, stats = spawn_measured(cmd, cwd, cwd=cwd, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise BenchFailure("%s failed:\n%s%s" % (" ".join(cmd), out.decode(), err.decode()))
    ru = read_stats(stats)
    return wall, ru["maxrss_kb"], ru["user"] + ru["system"]


def ldns_sign(base, records, repeat):
    """Time ldns-signzone (NSEC, then NSEC3) on the same records; the best of repeat."""
    d = os.path.join(base, "ldns")
    os.makedirs(d)
    zone = ldns_zone(d, records)
    keys = []
    for ksk in (True, False):
        out = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256"] + (["-k"] if ksk else [])
                             + [ZONE], cwd=d, capture_output=True, text=True, check=True)
        keys.append(out.stdout.strip())
    r = {"records": len(records), "zone_bytes": os.path.getsize(zone)}
    for label, extra in (("nsec", []), ("nsec3", ["-n", "-t", "0"])):
        runs = []
        for _ in range(repeat):
            signed = zone + ".signed"
            if os.path.exists(signed):
                os.unlink(signed)
            runs.append(run_timed(["ldns-signzone"] + extra + ["-f", signed, zone] + keys, d))
        best = min(runs)
        with open(signed) as f:
            text = f.read()
        rrsigs = sum(1 for line in text.splitlines()
                     if line.split()[3:5] == ["RRSIG", "OPENPGPKEY"])
        if rrsigs != len(records):
            raise BenchFailure("ldns-signzone %s: %d OPENPGPKEY signatures, want %d" % (
                label, rrsigs, len(records)))
        r[label] = {"seconds": round(best[0], 3), "all_seconds": [round(x[0], 3) for x in runs],
                    "peak_rss_kb": best[1], "cpu_seconds": round(best[2], 2),
                    "signed_bytes": len(text)}
        log("ldns-signzone %s: %d records signed in %.2fs" % (label, len(records), best[0]))
    return r


# -- report ------------------------------------------------------------------------------------

def fmt_mem(kb):
    return "%.1f MiB" % (kb / 1024.0) if isinstance(kb, (int, float)) else "-"


def print_table(pw, kf, ld):
    rows = [("what", "records", "seconds", "records/s", "peak memory")]
    rows.append(("postwarden publish -> last record SECURE (Knot, NSEC)", str(pw["keys"]),
                 "%.2f" % pw["seconds"], "%.1f" % pw["keys_per_s"],
                 "postwarden %s, knotd %s" % (fmt_mem(pw["peak_rss_kb"]),
                                               fmt_mem(pw["knotd_vmhwm_kb"]))))
    rows.append(("knotd: load + sign the same zone file (NSEC)", str(kf["records"]),
                 "%.2f" % kf["seconds"], "%.1f" % (kf["records"] / kf["seconds"]),
                 "knotd %s" % fmt_mem(kf["vmhwm_kb"])))
    for label in ("nsec", "nsec3"):
        x = ld[label]
        rows.append(("ldns-signzone, %s" % label.upper(), str(ld["records"]),
                     "%.2f" % x["seconds"], "%.1f" % (ld["records"] / x["seconds"]),
                     fmt_mem(x["peak_rss_kb"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print()
    for j, r in enumerate(rows):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(
            zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("  ratio postwarden / ldns-signzone: %.2f (NSEC), %.2f (NSEC3)" % (
        pw["seconds"] / ld["nsec"]["seconds"], pw["seconds"] / ld["nsec3"]["seconds"]))
    first = pw["first_update_seconds"]
    print("  postwarden: process %.2fs (CPU %.2fs user + %.2fs system; checking and storing "
          "the keys took about %s), last name secure at %.2fs; %d UPDATE messages, %d bytes; "
          "knotd CPU during publishing %.2fs (ldns-signzone CPU %.2fs)" % (
              pw["process_seconds"], pw["cpu_user_seconds"], pw["cpu_system_seconds"],
              "%.1fs" % first if first else "?", pw["last_secure_seconds"],
              pw["update_messages"], pw["update_bytes"], pw["knotd_cpu_seconds"],
              ld["nsec"]["cpu_seconds"]))
    print("  postwarden peak RSS %s, of which %s for a command that publishes nothing; "
          "knotd VmHWM %s before publishing" % (
              fmt_mem(pw["peak_rss_kb"]), fmt_mem(pw["idle_rss_kb"]),
              fmt_mem(pw["knotd_vmhwm_before_kb"])))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=10000, help="number of keys and accounts "
                   "(default 10000, at most 100000)")
    p.add_argument("--keygen-jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel key generators for keys not cached yet")
    p.add_argument("--ldns-repeat", type=int, default=1,
                   help="ldns-signzone runs per mode; the fastest is reported (default 1)")
    p.add_argument("--secure-timeout", type=int, default=120,
                   help="fail when the last name is not secure this many seconds after "
                        "publishing ended")
    p.add_argument("--seed", type=int, default=1, help="seed of the validated sample")
    p.add_argument("--binary", default=os.path.join(REPO, "build", "rel", "postwarden"))
    p.add_argument("--keydir", default=os.path.join(REPO, "build", "bench", "keys"),
                   help="cache of generated keys")
    p.add_argument("--json", default=os.path.join(REPO, "build", "bench", "keydir.json"))
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument("--engines", default="sqlite,postgresql",
                   help="database engines to publish with, comma-separated (sqlite, postgresql)")
    p.add_argument("--wrap", metavar="CMD", help="run the publishing process under CMD, e.g. "
                   "\"perf record -g -o /tmp/perf.data\" (its time and memory then count)")
    args = p.parse_args()
    if not 1 <= args.keys <= 100000:
        p.error("--keys must be between 1 and 100000")
    return args


def run_engine(args, base, engine, pg, paths, owners):
    """Accounts, publish and checks on one engine, against a fresh Knot zone."""
    kz = None
    try:
        kz = KeyZone(os.path.join(base, "knot-" + engine), zone=ZONE, mode="nsec")
        kz.start()
        log("%s: Knot on 127.0.0.1:%d serves %s signed (ECDSAP256SHA256, NSEC)" % (
            engine, kz.port, ZONE))
        d = os.path.join(base, "pw-" + engine)
        os.makedirs(d)
        db = {}
        if pg is not None:
            db = {"database_url": pg.new_database("keydir"),
                  "database_password_file": pg.password_file}
        relay = pw_relay.Relay(d, 25, kz.unbound_conf, hostname="relay.bench.test",
                               server_log_level="info", **kz.keydir_options(), **db)
        t0 = time.monotonic()
        make_accounts(relay, args.keys, pg)
        log("%d accounts inserted in %.2fs (not timed)" % (args.keys, time.monotonic() - t0))
        res = publish(args, relay, kz, paths, owners)
        res["engine"] = engine
        res["checks"], records = verify(kz, relay, owners, args.keys, args.seed, pg)
        return res, records
    finally:
        if kz:
            kz.stop()


def main():
    args = parse_args()
    if not os.access(args.binary, os.X_OK):
        print("keydir_bench: %s not found; run `make VARIANT=rel all`" % args.binary,
              file=sys.stderr)
        return 2
    for tool in ("knotd", "unbound-host", "ldns-signzone", "ldns-keygen", "cc", "pkg-config",
                 TIME):
        if shutil.which(tool) is None:
            print("keydir_bench: %s is missing (make deps-test)" % tool, file=sys.stderr)
            return 2
    busy = bp.cpu_times()
    time.sleep(1)
    busy2 = bp.cpu_times()
    idle_busy = (busy2[0] - busy[0]) / max(busy2[1] - busy[1], 1)
    if idle_busy > 0.15:
        log("warning: the machine is %.0f%% busy before the benchmark starts; figures will "
            "be low and noisy" % (100 * idle_busy))
    bench_dir = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(bench_dir, exist_ok=True)
    keygen = build_keygen(bench_dir)
    paths = make_keys(keygen, args.keydir, args.keys, max(1, args.keygen_jobs))
    owners = [pk.dane_owner(address(i)) for i in range(args.keys)]

    base = tempfile.mkdtemp(prefix="postwarden-keydir-bench-")
    log("work directory %s" % base)
    snap = os.path.join(base, "postwarden")
    shutil.copy2(args.binary, snap)   # the tree's build may be replaced meanwhile
    os.environ["POSTWARDEN"] = snap
    with open(snap, "rb") as f:
        binary_info = {"path": args.binary, "sha256": hashlib.sha256(f.read()).hexdigest(),
                       "mtime": datetime.datetime.fromtimestamp(
                           os.stat(args.binary).st_mtime).isoformat(timespec="seconds")}
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                       "busy_before_start": round(idle_busy, 3)},
           "binary": binary_info, "keys": args.keys, "zone": ZONE}
    failed = None
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    pg = None
    try:
        if "postgresql" in engines:
            pg = pw_postgres.Postgres(os.path.join(base, "postgres"))
            pg.start()
            os.environ["PGPASSFILE"] = pg.password_file
            log("PostgreSQL 15 on 127.0.0.1:%d" % pg.port)
        records = None
        for engine in engines:
            res, records = run_engine(args, base, engine, pg if engine == "postgresql" else None,
                                      paths, owners)
            out["postwarden" if engine == "sqlite" else "postwarden_" + engine] = res
        out["knot_full_sign"] = knot_full_sign(base, records)
        out["ldns_signzone"] = ldns_sign(base, records, args.ldns_repeat)
        pw = out.get("postwarden") or out.get("postwarden_postgresql")
        ld = out["ldns_signzone"]
        out["ratio_nsec"] = round(pw["seconds"] / ld["nsec"]["seconds"], 3)
        out["ratio_nsec3"] = round(pw["seconds"] / ld["nsec3"]["seconds"], 3)
        print_table(pw, out["knot_full_sign"], ld)
        if "postwarden" in out and "postwarden_postgresql" in out:
            a, b = out["postwarden"], out["postwarden_postgresql"]
            out["pg_vs_sqlite"] = round(b["seconds"] / a["seconds"], 3)
            print("  engines: SQLite %.2fs (%.0f keys/s), PostgreSQL %.2fs (%.0f keys/s): "
                  "PostgreSQL takes %.2fx SQLite's time" % (
                      a["seconds"], a["keys_per_s"], b["seconds"], b["keys_per_s"],
                      out["pg_vs_sqlite"]))
    except BenchFailure as e:
        failed = str(e)
        log("FAILED: %s" % e)
    finally:
        if pg:
            pg.stop()
    out["failed"] = failed
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("  JSON: %s" % args.json)
    if failed:
        print("\nkeydir_bench: FAILED (work directory kept: %s)" % base)
        return 1
    if args.keep:
        print("  work directory kept: %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
