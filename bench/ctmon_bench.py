#!/usr/bin/python3
"""CT monitor benchmark: entries per second (and per core of CPU used) from the start of a
log to its last entry verified and matched, on a local static-ct-api log (tiles served from
files by nginx on loopback) and its RFC 6962 twin (the tests' Python log server), with
certspotter 0.16 on the RFC 6962 twin in the same run, and the ratio.

    /usr/bin/python3 bench/ctmon_bench.py [--entries N] [--parallel P] [--rate R]
                                          [--binary PATH]

By default the logs hold 1,000,000 entries (the size the figures in docs/ctmon.md are for;
building them takes a few minutes), fetched with [ctmon] parallel = 4 requests in flight
and requests_per_second = 10000 (the most the setting takes: not the limit). Both logs
hold the same N entries: certificates of about 1.2 kB (RSA-2048 key, five DNS
names) cycling through a pool, with a few certificates for the watched domain among them.
Time is wall time of one `postwarden ct check --log ID` (start = backfill), CPU is its user
plus system time (GNU time), memory its peak RSS. certspotter runs until it logs that it
finished the log's entries. The RFC 6962 server is Python: on that twin both monitors wait
for it, so the per-core figures are what compares them.
"""

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from pwtest import ctlog                                     # noqa: E402
from pwtest.ctlog_server import RFC6962Server, StaticNginx  # noqa: E402

WATCH = ".bench.example"


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def build_logs(n, work):
    """The two logs with n entries each; returns (ca, rfc_log, static_log, matches)."""
    ca = ctlog.CTTestCA()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pool = [ca.issue(["h%d.a.bench-other.test" % i, "h%d.b.bench-other.test" % i,
                      "h%d.c.bench-other.test" % i, "h%d.d.bench-other.test" % i,
                      "h%d.e.bench-other.test" % i], key=key) for i in range(200)]
    watched = [ca.issue(["www.bench.example", "mail.bench.example"], key=key)
               for _ in range(3)]
    rfc, static = ctlog.Log("bench rfc6962", "ec", ca), ctlog.Log("bench static", "ec", ca,
                                                                  static=True)
    at = {n // 7: watched[0], n // 2: watched[1], n - 3: watched[2]}
    for lg in (rfc, static):
        for i in range(n):
            lg.add_cert(at.get(i) or pool[i % len(pool)])
    return ca, rfc, static, sorted(at)


def timed(cmd, **kw):
    """Run cmd under GNU time: (CompletedProcess, wall s, cpu s, peak RSS KiB)."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S %M"] + cmd, capture_output=True,
                       text=True, **kw)
    wall = time.monotonic() - t0
    m = re.search(r"TIME ([\d.]+) ([\d.]+) (\d+)", r.stderr)
    return r, wall, float(m.group(1)) + float(m.group(2)), int(m.group(3))


def run_postwarden(binary, work, name, log_list, log_id, parallel, rate):
    d = os.path.join(work, "postwarden-" + name)
    os.makedirs(d)
    conf = os.path.join(d, "postwarden.conf")
    with open(conf, "w") as f:
        f.write("[server]\nstate_dir = %s\nlog_level = warn\n[ctmon]\nlog_list = %s\n"
                "watch = %s\nallow_private = on\nstart = backfill\nparallel = %d\n"
                "requests_per_second = %d\n" % (d, log_list, WATCH, parallel, rate))
    subprocess.run([binary, "-c", conf, "db", "migrate"], check=True, capture_output=True)
    r, wall, cpu, rss = timed([binary, "-c", conf, "ct", "check", "--log", log_id])
    if r.returncode != 0:
        raise SystemExit("postwarden failed: %s %s" % (r.stdout, r.stderr[-2000:]))
    return r.stdout, wall, cpu, rss


def run_certspotter(work, log_list, url):
    d = os.path.join(work, "certspotter")
    os.makedirs(d)
    with open(os.path.join(d, "watch"), "w") as f:
        f.write(WATCH + "\n")
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-f", "TIME %U %S %M", "certspotter", "-logs",
                          log_list, "-watchlist", os.path.join(d, "watch"), "-state_dir",
                          os.path.join(d, "state"), "-stdout", "-verbose"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = "finished downloading entries from %s" % url
    lines = []
    for line in p.stderr:
        lines.append(line)
        if done in line:
            break
    wall = time.monotonic() - t0
    subprocess.run(["pkill", "-TERM", "-P", str(p.pid)])
    out, rest = p.communicate(timeout=60)
    m = re.search(r"TIME ([\d.]+) ([\d.]+) (\d+)", rest)
    found = len(re.findall(r"Log Entry = \d+ @ %s" % re.escape(url), out))
    return found, wall, float(m.group(1)) + float(m.group(2)), int(m.group(3))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entries", type=int, default=1000000,
                   help="entries in each log (default 1,000,000)")
    p.add_argument("--parallel", type=int, default=4,
                   help="[ctmon] parallel: requests in flight per log (default 4)")
    p.add_argument("--rate", type=int, default=10000,
                   help="[ctmon] requests_per_second per log (default 10000, the most "
                   "it takes: not the limit)")
    p.add_argument("--binary", default=os.path.join(REPO, "build", "rel", "postwarden"))
    p.add_argument("--json", default=os.path.join(REPO, "build", "bench", "ctmon.json"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="postwarden-ctbench-")
    log("building two logs of %d entries in %s" % (args.entries, work))
    ca, rfc_log, static_log, matches = build_logs(args.entries, work)
    docroot = os.path.join(work, "static")
    nginx = StaticNginx(os.path.join(work, "nginx"), docroot)
    os.makedirs(nginx.dir, exist_ok=True)
    static = ctlog.StaticLog(static_log, docroot, "%s:%d" % (nginx.addr, nginx.port), False)
    static.publish()
    server = RFC6962Server(rfc_log, max_batch=1000)
    server.publish()
    server.start()
    nginx.start()
    log_list = os.path.join(work, "log_list.json")
    ctlog.write_log_list(log_list, rfc_logs=[(rfc_log, server.url)],
                         tiled_logs=[(static_log, "http://%s/" % static.origin, nginx.url)],
                         skipped=False)
    results = {"entries": args.entries, "matching_entries": len(matches),
               "parallel": args.parallel, "requests_per_second": args.rate}
    log("postwarden runs with [ctmon] parallel = %d, requests_per_second = %d"
        % (args.parallel, args.rate))
    try:
        for name, lg in (("static", static_log), ("rfc6962", rfc_log)):
            lid = base64.b64encode(lg.log_id).decode()
            out, wall, cpu, rss = run_postwarden(args.binary, work, name, log_list, lid,
                                                 args.parallel, args.rate)
            m = re.search(r"(\d+) matching", out)
            results["postwarden_" + name] = {
                "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                "entries_per_second": round(args.entries / wall),
                "entries_per_cpu_second": round(args.entries / max(cpu, 0.01)),
                "peak_rss_mib": round(rss / 1024, 1), "matching": int(m.group(1))}
            log("postwarden %s: %s" % (name, results["postwarden_" + name]))
        found, wall, cpu, rss = run_certspotter(work, log_list, server.url)
        results["certspotter_rfc6962"] = {
            "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "entries_per_second": round(args.entries / wall),
            "entries_per_cpu_second": round(args.entries / max(cpu, 0.01)),
            "peak_rss_mib": round(rss / 1024, 1), "matching": found}
        log("certspotter rfc6962: %s" % results["certspotter_rfc6962"])
    finally:
        server.stop()
        nginx.stop()
    pw, cs = results["postwarden_rfc6962"], results["certspotter_rfc6962"]
    results["ratio_per_core_rfc6962"] = round(pw["entries_per_cpu_second"] /
                                             cs["entries_per_cpu_second"], 2)
    print("%-22s %10s %12s %14s %10s %9s" % ("", "seconds", "entries/s", "entries/CPU-s",
                                              "peak MiB", "matching"))
    for k in ("postwarden_static", "postwarden_rfc6962", "certspotter_rfc6962"):
        r = results[k]
        print("%-22s %10.2f %12d %14d %10.1f %9d" % (k, r["seconds"], r["entries_per_second"],
                                                     r["entries_per_cpu_second"],
                                                     r["peak_rss_mib"], r["matching"]))
    print("postwarden / certspotter per core on the RFC 6962 twin: %.2f"
          % results["ratio_per_core_rfc6962"])
    print("%d entries per log; postwarden with [ctmon] parallel = %d, requests_per_second = %d"
          % (args.entries, args.parallel, args.rate))
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
