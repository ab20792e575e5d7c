#!/usr/bin/python3
"""Relay benchmark: messages per second from acceptance to delivery over TLS, postwarden
against Postfix, at the same durability, to the same TLS sink.

For each message size (default 2000 x 1 kB and 300 x 100 kB):
  postwarden  build/rel/postwarden serve; the sender's account has the TLS-sending guarantee
              on; the sink's domain is a DNSSEC-signed zone served by Knot (MX -> sink).
  Postfix     a private instance with smtp_tls_security_level = encrypt and
              smtp_tls_mandatory_protocols = >=TLSv1.2, relaying everything through a static
              transport map to the sink's address (Postfix's resolver cannot see the test
              zone). Postfix fsyncs its queue files, as postwarden does.
The same client injects the same messages into each over parallel SMTP connections; the
clock runs from the first injected message to the moment the sink stored the last one
(the sink's maildir file times). Every message must arrive at the sink, intact, once, over
TLS 1.2 or newer, or the run fails.

Peak memory: postwarden's VmHWM (/proc/PID/status). Postfix: its master and every child
process, sampled every 50 ms; the largest sum of VmRSS is reported (and of Pss, which
counts shared pages once). The same sampler also runs for postwarden.

Prints a table and writes build/bench/relay.json. Exit status 0 only if every run passed.
"""

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, HERE)

from pwtest import ca as pw_ca            # noqa: E402
from pwtest import dns as pw_dns          # noqa: E402
from pwtest import net                    # noqa: E402
from pwtest import nginxconf              # noqa: E402
from pwtest import postfix as pw_postfix  # noqa: E402
from pwtest import postgres as pw_postgres  # noqa: E402
from pwtest import relay as pw_relay      # noqa: E402

import bench_peers as bp                  # noqa: E402

SINK_ADDR = "127.0.0.60"
ZONE = "bench.test"
MX_HOST = "mx." + ZONE
SENDER = "sender@" + ZONE
RCPT_COUNT = 100


class BenchFailure(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def rcpt_of(i):
    return "rcpt%d@%s" % (i % RCPT_COUNT, ZONE)


def make_messages(run, n, size):
    return [bp.make_message(run, i, size, SENDER, rcpt_of(i)) for i in range(n)]


# -- waiting for and checking what the sink got ----------------------------------------

def wait_sink(sink, n, stall_timeout, what, diag=None):
    """Wait until the sink holds n messages; fail when nothing new arrives for
    stall_timeout seconds."""
    last, last_change = -1, time.monotonic()
    while True:
        c = sink.count()
        if c >= n:
            return
        if c != last:
            last, last_change = c, time.monotonic()
        elif time.monotonic() - last_change > stall_timeout:
            extra = ("\n" + diag()) if diag else ""
            raise BenchFailure("%s: the sink has %d of %d messages and got nothing new for "
                               "%ds%s" % (what, c, n, stall_timeout, extra))
        time.sleep(0.02)


def verify_sink(sink, messages, what):
    """Every message at the sink exactly once, body intact, received over TLS >= 1.2.
    Returns (last file time in seconds, {protocol: count})."""
    expected = {m.tag: m for m in messages}
    seen = set()
    problems = []
    protos = collections.Counter()
    t_last = 0
    for path in sink.files():
        st = os.stat(path)
        t_last = max(t_last, st.st_mtime_ns)
        with open(path, "rb") as f:
            data = f.read()
        head, _, body = data.partition(b"\n\n")
        m = re.search(rb"^X-Bench-Id: *(\S+)", head, re.M)
        if not m:
            problems.append("%s: no %s header" % (os.path.basename(path), bp.BENCH_HEADER))
            continue
        tag = m.group(1).decode()
        msg = expected.get(tag)
        if msg is None:
            problems.append("unexpected message %s" % tag)
            continue
        if tag in seen:
            problems.append("message %s arrived twice" % tag)
        seen.add(tag)
        tls = pw_postfix.tls_of(data)
        if tls is None or tls[0] not in ("TLSv1.2", "TLSv1.3"):
            problems.append("message %s arrived without TLS >= 1.2 (%s)" % (tag, tls))
        else:
            protos[tls[0]] += 1
        if body != msg.body_lf:
            problems.append("message %s: body differs (%d bytes, want %d)" % (
                tag, len(body), len(msg.body_lf)))
    missing = set(expected) - seen
    if missing:
        problems.append("%d messages missing, e.g. %s" % (len(missing), sorted(missing)[:3]))
    if problems:
        raise BenchFailure("%s: the sink check failed:\n  %s" % (
            what, "\n  ".join(problems[:20])))
    return t_last / 1e9, dict(protos)


def count_sink_connections(sink, log_at, n, timeout=10):
    """Connections the sink accepted since log offset log_at. The sink's log is written
    asynchronously (postlogd), so first wait for its n delivery lines: the connection
    lines come before them."""
    deadline = time.monotonic() + timeout
    while True:
        with open(sink.log_path, "rb") as f:
            f.seek(log_at)
            lines = f.readlines()
        sent = sum(1 for l in lines if b"/virtual[" in l and b"status=sent" in l)
        if sent >= n or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    conns = sum(1 for l in lines if b"/smtpd[" in l and b": connect from " in l)
    return conns if sent >= n else "unknown (the sink log has %d of %d deliveries)" % (sent, n)


def measure(name, sink, messages, inject_host, inject_port, conns, root_pid_fn,
            stall_timeout, starttls=False, diag=None, warmup=0, reconnect=False):
    """Inject messages, wait for all of them at the sink, check them; return the figures.

    A few warm-up messages go first (not measured): they start the worker processes and
    fill the TLS session caches, so a cold start does not weigh on short runs."""
    if warmup:
        sink.clear()
        wm = [bp.make_message("warmup", i, messages[0].size, SENDER, rcpt_of(i))
              for i in range(warmup)]
        inj = bp.Injector(inject_host, inject_port, conns, starttls=starttls).run(wm)
        if inj["errors"]:
            raise BenchFailure("%s: warm-up injection errors, e.g.:\n  %s" % (
                name, "\n  ".join(inj["errors"][:5])))
        wait_sink(sink, warmup, stall_timeout, name + " (warm-up)", diag)
        time.sleep(0.5)
    sink.clear()
    log_at = os.path.getsize(sink.log_path) if os.path.exists(sink.log_path) else 0
    sampler = bp.TreeMemSampler(root_pid_fn) if root_pid_fn else None
    sink_sampler = bp.TreeMemSampler(sink.master_pid)
    for smp in (sampler, sink_sampler):
        if smp:
            smp.start()
    cpu0 = bp.cpu_times()
    own0 = os.times()
    try:
        inj = bp.Injector(inject_host, inject_port, conns, starttls=starttls,
                          reconnect=reconnect).run(messages)
        if inj["errors"]:
            raise BenchFailure("%s: %d injection errors, e.g.:\n  %s" % (
                name, len(inj["errors"]), "\n  ".join(inj["errors"][:5])))
        wait_sink(sink, len(messages), stall_timeout, name, diag)
    finally:
        cpu1 = bp.cpu_times()
        own1 = os.times()
        for smp in (sampler, sink_sampler):
            if smp:
                smp.stop()
    t_end, protos = verify_sink(sink, messages, name)
    n = len(messages)
    sink_conns = count_sink_connections(sink, log_at, n)
    elapsed = t_end - inj["t0"]
    r = {
        "messages": n,
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(n / elapsed, 1),
        "accept_seconds": round(inj["t_accepted"] - inj["t0"], 3),
        "accept_msgs_per_s": round(n / (inj["t_accepted"] - inj["t0"]), 1),
        "sink_tls": protos,
        "sink_connections": sink_conns,
        "sink_cpu_seconds": round(sink_sampler.cpu_seconds(), 2),
        "machine_cpu_busy": round((cpu1[0] - cpu0[0]) / max(cpu1[1] - cpu0[1], 1), 3),
        "client_cpu_seconds": round(own1.user + own1.system - own0.user - own0.system, 2),
    }
    # CPU the machine spent on anything but the contender, the sink and this script:
    # another job running next to the benchmark shows here.
    busy_s = (cpu1[0] - cpu0[0]) / bp.TICK
    r["other_cpu_seconds"] = round(busy_s - r["client_cpu_seconds"] - r["sink_cpu_seconds"] -
                                   (sampler.cpu_seconds() if sampler else 0), 2)
    if sampler:
        r["peak_rss_sum_kb"] = sampler.max_rss_kb
        r["peak_pss_sum_kb"] = sampler.max_pss_kb
        r["sum_vmhwm_kb"] = sampler.sum_hwm_kb()
        r["max_processes"] = sampler.max_procs
        r["mem_samples"] = sampler.samples
        r["cpu_seconds"] = round(sampler.cpu_seconds(), 2)
    log("%s: %d messages in %.2fs = %.1f msg/s (accepted in %.2fs); sink TLS %s; "
        "%s connections to the sink; CPU s: contender %s, sink %.2f, client %.2f, other %.2f; "
        "machine %.0f%% busy" % (
            name, n, elapsed, r["msgs_per_s"], r["accept_seconds"], protos, sink_conns,
            r.get("cpu_seconds", "-"), r["sink_cpu_seconds"], r["client_cpu_seconds"],
            r["other_cpu_seconds"], 100 * r["machine_cpu_busy"]))
    return r


# -- the two contenders ------------------------------------------------------------------

def db_statements(relay, n):
    """Database statements per accepted and per delivered message, from the db_stats lines
    serve logs at exit: acceptance is the queue worker's guarantee look-ups and index rows;
    delivery is everything on serve's connection (the scheduler) plus the worker's removals
    of delivered messages."""
    queue = serve = None
    for line in relay.log_lines("db_stats"):
        kv = pw_relay.parse_kv(line)
        if kv.get("connection") == "queue":
            queue = kv
        elif kv.get("connection") == "serve":
            serve = kv
    if queue is None or serve is None:
        return {}
    removal = int(queue.get("removal_statements", 0))
    accept = int(queue["statements"]) - removal
    deliver = int(serve["statements"]) + removal
    return {"statements_per_accepted": round(accept / n, 2),
            "statements_per_delivered": round(deliver / n, 2),
            "db_ms_per_message": round((int(queue["usec"]) + int(serve["usec"])) / n / 1000, 3),
            "db_ms_per_message_queue": round(int(queue["usec"]) / n / 1000, 3),
            "db_ms_per_message_serve": round(int(serve["usec"]) / n / 1000, 3)}


def run_postwarden(args, base, knot, sink, size, n, label, pg=None, sts=None):
    d = os.path.join(base, "postwarden-%s%s%s" % (label, "-pg" if pg else "",
                                                  "-sts" if sts else ""))
    os.makedirs(d)
    db = {}
    if pg is not None:
        db = {"database_url": pg.new_database("bench"), "database_password_file": pg.password_file}
        os.environ["PGPASSFILE"] = pg.password_file
    relay = pw_relay.Relay(d, sink.port, knot.unbound_conf, hostname="relay.bench.test",
                           server_log_level="info", **db)
    if pg is not None:
        relay.pw("db", "migrate", check=True)
    if sts is not None:
        sts.configure(relay)
    relay.pw("user", "add", SENDER, check=True)
    relay.pw("user", "guarantee", SENDER, "on", check=True)
    shown = relay.pw("user", "show", SENDER, "--json", check=True).stdout
    relay.start()
    pid = relay.proc.pid
    messages = make_messages("pw%s" % label, n, size)

    def diag():
        return "--- postwarden log (tail) ---\n" + "\n".join(relay.log().splitlines()[-30:])

    try:
        name = "postwarden%s %s" % (" with MTA-STS" if sts else "", label)
        r = measure(name, sink, messages, relay.listen_addr, relay.port,
                    args.connections, lambda: pid, args.stall_timeout, diag=diag,
                    warmup=args.warmup)
        r["vmhwm_kb"] = bp._status_kb(pid, "VmHWM")
        if not relay.alive():
            raise BenchFailure("postwarden exited during the run\n" + diag())
        def delivered_lines():
            ds = [pw_relay.parse_kv(l) for l in relay.log_lines("delivery")]
            return [x for x in ds if x.get("outcome") == "delivered"]

        # The sink may store a message before the relay has written its log line.
        deadline = time.monotonic() + 5
        ok = delivered_lines()
        while len(ok) < n + args.warmup and time.monotonic() < deadline:
            time.sleep(0.1)
            ok = delivered_lines()
        r["log_deliveries"] = len(ok)
        if sts is not None:
            sts.check(relay, r)
        r["log_tls"] = dict(collections.Counter(x.get("tls", "?") for x in ok))
        r["account"] = json.loads(shown) if shown.strip().startswith("{") else shown.strip()
        if len(ok) != n + args.warmup:
            log("warning: postwarden logged %d event=delivery outcome=delivered lines, "
                "want %d (%d + %d warm-up)" % (len(ok), n + args.warmup, n, args.warmup))
        try:
            q = relay.queue()
            r["queue_left"] = len(q)
        except Exception as e:  # noqa: BLE001 - reported only
            r["queue_left"] = "queue list failed: %s" % e
    finally:
        rc = relay.stop()
    r["exit_status"] = rc
    r["engine"] = "postgresql" if pg else "sqlite"
    r.update(db_statements(relay, n + args.warmup))
    return r


def run_postfix(args, base, sink, size, n, label):
    d = os.path.join(base, "postfix-%s" % label)
    os.makedirs(d)
    os.chmod(d, 0o755)
    port = net.free_port()
    pf = bp.PostfixRelay(d, "127.0.0.1", port, "[%s]:%d" % (SINK_ADDR, sink.port),
                         tuned=not args.postfix_stock)
    pf.start()
    messages = make_messages("pf%s" % label, n, size)

    def diag():
        return "--- Postfix log (tail) ---\n" + "\n".join(pf.log().splitlines()[-30:])

    try:
        r = measure("Postfix %s" % label, sink, messages, "127.0.0.1", port, args.connections,
                    pf.master_pid, args.stall_timeout, diag=diag, warmup=args.warmup)
        deadline = time.monotonic() + 5
        sent = pf.sent_lines()
        while len(sent) < n + args.warmup and time.monotonic() < deadline:
            time.sleep(0.1)
            sent = pf.sent_lines()
        r["log_sent"] = len(sent)
        if len(sent) != n + args.warmup:
            log("warning: Postfix logged %d status=sent lines, want %d (%d + %d warm-up)" % (
                len(sent), n + args.warmup, n, args.warmup))
        r["queue_left"] = len(pf.queue())
        r["settings"] = pf.settings_text()
    finally:
        pf.stop()
    return r


def run_sink_direct(args, sink, size, n, label):
    """The sink's own rate: the bench client talks TLS to it directly, over persistent
    connections and with a new connection per message (lower bounds, as the Python client
    may be the slower side)."""
    messages = make_messages("sink%s" % label, n, size)
    r = measure("sink direct %s" % label, sink, messages, SINK_ADDR, sink.port,
                args.connections, None, args.stall_timeout, starttls=True,
                warmup=args.warmup)
    messages = make_messages("sinknc%s" % label, n, size)
    r["new_connection_per_message"] = measure(
        "sink direct, new connection per message, %s" % label, sink, messages, SINK_ADDR,
        sink.port, args.connections, None, args.stall_timeout, starttls=True,
        reconnect=True)
    return r


# -- set-up and report ---------------------------------------------------------------------

def median_run(runs):
    """The run with the median rate (any failed run makes the result a failure); every
    run's rate is kept in all_msgs_per_s."""
    bad = [r for r in runs if "msgs_per_s" not in r]
    if bad:
        return bad[0]
    ordered = sorted(runs, key=lambda r: r["msgs_per_s"])
    med = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        med["all_msgs_per_s"] = [r["msgs_per_s"] for r in runs]
    return med


def machine_busy(seconds=1.0):
    """Fraction of the machine's CPU time busy over the next seconds."""
    a = bp.cpu_times()
    time.sleep(seconds)
    b = bp.cpu_times()
    return (b[0] - a[0]) / max(b[1] - a[1], 1)


class StsPolicy:
    """Every destination with an MTA-STS policy: the _mta-sts TXT record in the zone and
    nginx serving "mode: enforce" for the sink's MX over HTTPS (a certificate from the
    bench CA, which the relay trusts through [relay] ca_file, as it does for the sink)."""

    SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name mta-sts.{zone};
        root {root};
    }}
"""

    def __init__(self, base, ca):
        self.dir = os.path.join(base, "mta-sts")
        self.ca = ca
        self.port = net.free_port("127.0.0.1")
        self.proc = None

    def start(self):
        os.makedirs(os.path.join(self.dir, "root", ".well-known"), exist_ok=True)
        with open(os.path.join(self.dir, "root", ".well-known", "mta-sts.txt"), "w") as f:
            f.write("version: STSv1\r\nmode: enforce\r\nmx: %s\r\nmax_age: 86400\r\n"
                    % MX_HOST)
        cert = self.ca.issue("mta-sts." + ZONE, stem="mta-sts")
        server = self.SERVER.format(port=self.port, zone=ZONE,
                                    root=os.path.join(self.dir, "root"))
        nginxconf.write(self.dir, server, cert=cert, default_type="text/plain")
        self.proc = subprocess.Popen(
            nginxconf.argv(self.dir),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        net.wait_port("127.0.0.1", self.port, timeout=15, proc=self.proc)

    def stop(self):
        if self.proc is not None:
            net.stop_process(self.proc)
            self.proc = None

    def configure(self, relay):
        relay.set("relay_ca_file", self.ca.cert_path)
        relay.sections["mta_sts"] = {"hosts": "mta-sts.%s=127.0.0.1" % ZONE,
                                     "port": str(self.port), "allow_private": "on"}

    def check(self, relay, r):
        """The policy was fetched once, then cached, and every delivery met it."""
        fetched = relay.log_lines("mta_sts_fetched")
        failures = relay.log_lines("mta_sts_failure")
        r["mta_sts_fetches"] = len(fetched)
        r["mta_sts_failures"] = len(failures)
        if len(fetched) != 1 or failures:
            raise BenchFailure("MTA-STS run: %d policy fetches (want 1), %d failures"
                               % (len(fetched), len(failures)))


def zone_records(sts):
    recs = [("@", "MX", "10 %s." % MX_HOST), ("mx", "A", SINK_ADDR)]
    if sts:
        recs.append(("_mta-sts", "TXT", '"v=STSv1; id=bench1"'))
    return recs


def start_knot(base):
    # Realistic TTLs: with the fixtures' 2 s TTL the relay would re-resolve the MX
    # every two seconds, which a real zone does not make it do.
    pw_dns.TTL = 300
    knot = pw_dns.Knot(os.path.join(base, "knot"), signed=(ZONE,), unsigned=(), bogus=())
    knot.start()
    knot.set_zone(ZONE, zone_records(False))
    r = knot.unbound_host(MX_HOST)
    if "(secure)" not in r.stdout:
        raise BenchFailure("unbound-host does not validate %s as secure:\n%s%s" % (
            MX_HOST, r.stdout, r.stderr))
    return knot


def fmt_mem(kb):
    return "%.1f MiB" % (kb / 1024.0) if isinstance(kb, (int, float)) else "-"


def fmt_rate(r):
    if not r:
        return "-"
    return "%.1f" % r["msgs_per_s"] if "msgs_per_s" in r else "FAIL"


def sink_rates(sk):
    if not sk:
        return "-"
    nc = sk.get("new_connection_per_message")
    return "%s / %s" % (fmt_rate(sk), fmt_rate(nc))


def print_table(rows):
    hdr = ("size", "N", "postwarden msg/s", "Postfix msg/s", "ratio pw/pf",
           "postwarden peak (VmHWM)", "Postfix peak (sum RSS / sum PSS)",
           "sink direct msg/s (kept / new conn.)")
    table = [hdr]
    for row in rows:
        pw, pf, sk = row.get("postwarden"), row.get("postfix"), row.get("sink_direct")
        ratio = "%.2f" % row["ratio"] if row.get("ratio") else "-"
        pw_mem = fmt_mem(pw.get("vmhwm_kb")) if pw and "vmhwm_kb" in pw else "-"
        pf_mem = ("%s / %s" % (fmt_mem(pf["peak_rss_sum_kb"]), fmt_mem(pf["peak_pss_sum_kb"]))
                  if pf and "peak_rss_sum_kb" in pf else "-")
        table.append((row["size_label"], str(row["n"]), fmt_rate(pw), fmt_rate(pf), ratio,
                      pw_mem, pf_mem, sink_rates(sk)))
    print_columns(table)
    table = [("size", "without MTA-STS msg/s", "with MTA-STS msg/s", "with / without",
              "with MTA-STS / Postfix")]
    for row in rows:
        pws, pw = row.get("postwarden_sts"), row.get("postwarden")
        if not pws:
            continue
        table.append((row["size_label"], fmt_rate(pw), fmt_rate(pws),
                      "%.3f" % row["sts_vs_without"] if row.get("sts_vs_without") else "-",
                      "%.3f" % row["sts_vs_postfix"] if row.get("sts_vs_postfix") else "-"))
    if len(table) > 1:
        print_columns(table)
    engines = [("SQLite", "postwarden"), ("PostgreSQL", "postwarden_pg")]
    table = [("size", "engine", "msg/s", "vs SQLite", "vs Postfix", "statements/accepted",
              "statements/delivered", "database ms/message")]
    for row in rows:
        pf = row.get("postfix")
        for name, key in engines:
            r = row.get(key)
            if not r or "msgs_per_s" not in r:
                continue
            base = row.get("postwarden")
            vs_lite = ("%.2f" % (r["msgs_per_s"] / base["msgs_per_s"])
                       if base and "msgs_per_s" in base else "-")
            vs_pf = ("%.2f" % (r["msgs_per_s"] / pf["msgs_per_s"])
                     if pf and "msgs_per_s" in pf else "-")
            table.append((row["size_label"], name, fmt_rate(r), vs_lite, vs_pf,
                          str(r.get("statements_per_accepted", "-")),
                          str(r.get("statements_per_delivered", "-")),
                          str(r.get("db_ms_per_message", "-"))))
    if len(table) > 1:
        print_columns(table)


def print_columns(table):
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print()
    for j, r in enumerate(table):
        print("  ".join(c.rjust(w) if j else c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))
    print()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", type=int, default=2000, help="number of 1 kB messages (0: skip)")
    p.add_argument("--large", type=int, default=300, help="number of 100 kB messages (0: skip)")
    p.add_argument("--connections", type=int, default=10,
                   help="parallel injecting SMTP connections (default 10)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds per size, alternating postwarden and Postfix; the median "
                        "rate is reported (default 1)")
    p.add_argument("--warmup", type=int, default=50,
                   help="unmeasured messages sent first to each (default 50)")
    p.add_argument("--only", choices=("both", "postwarden", "postfix"), default="both")
    p.add_argument("--engines", default="sqlite,postgresql",
                   help="postwarden's database engines to run, comma-separated "
                        "(sqlite, postgresql)")
    p.add_argument("--no-mta-sts", action="store_true",
                   help="skip the run where the destination has an MTA-STS policy")
    p.add_argument("--no-sink-check", action="store_true",
                   help="skip measuring the sink's own rate")
    p.add_argument("--postfix-stock", action="store_true",
                   help="Postfix without TLS connection reuse and session cache")
    p.add_argument("--binary", default=os.path.join(REPO, "build", "rel", "postwarden"))
    p.add_argument("--json", default=os.path.join(REPO, "build", "bench", "relay.json"))
    p.add_argument("--stall-timeout", type=int, default=60,
                   help="fail a run when the sink gets nothing for this many seconds")
    p.add_argument("--keep", action="store_true", help="keep the working directories")
    return p.parse_args()


def main():
    args = parse_args()
    if os.geteuid() != 0:
        print("relay_bench: must run as root (private Postfix instances, loopback addresses)",
              file=sys.stderr)
        return 2
    os.environ["POSTWARDEN"] = os.path.abspath(args.binary)
    if args.only != "postfix" and not os.access(args.binary, os.X_OK):
        print("relay_bench: %s not found; run `make VARIANT=rel all`" % args.binary,
              file=sys.stderr)
        return 2
    idle_busy = machine_busy()
    if idle_busy > 0.15:
        log("warning: the machine is %.0f%% busy before the benchmark starts; figures will "
            "be low and noisy" % (100 * idle_busy))
    sizes = [(label, size, n) for label, size, n in
             (("1kB", 1024, args.small), ("100kB", 100 * 1024, args.large)) if n > 0]

    base = tempfile.mkdtemp(prefix="postwarden-bench-")       # disk: the queues
    os.chmod(base, 0o755)
    shm = tempfile.mkdtemp(prefix="postwarden-bench-sink-", dir="/dev/shm")
    os.chmod(shm, 0o755)
    log("work directory %s (queues, on disk), sink on tmpfs %s" % (base, shm))
    sink = knot = pg = sts = None
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows = []
    failed = []
    notes = [
        "Time: from the first injected message to the sink's file time of the last one.",
        "Sink: Postfix accepting mail only over TLS >= 1.2 (smtpd_tls_security_level = "
        "encrypt), queue and maildir on tmpfs.",
        "postwarden finds the sink by MX in the DNSSEC-signed zone %s (Knot); Postfix "
        "cannot see the test zone, so it reaches the sink by transport map "
        "(static:{smtp:[%s]:PORT})." % (ZONE, SINK_ADDR),
        "Postfix peak memory: largest sum over its master and all children of VmRSS "
        "(shared pages counted in each process) and of Pss, sampled every 50 ms.",
        "postwarden peak memory: VmHWM of the daemon process.",
    ]
    binary_info = None
    if args.only != "postfix":
        # A copy: the tree's build may be replaced while the benchmark runs.
        snap = os.path.join(base, "postwarden")
        shutil.copy2(args.binary, snap)
        os.environ["POSTWARDEN"] = snap
        with open(snap, "rb") as f:
            binary_info = {"path": args.binary,
                           "sha256": hashlib.sha256(f.read()).hexdigest(),
                           "mtime": datetime.datetime.fromtimestamp(
                               os.stat(args.binary).st_mtime).isoformat(timespec="seconds")}
        log("postwarden: %s (built %s)" % (args.binary, binary_info["mtime"]))
    try:
        ca = pw_ca.TestCA(os.path.join(base, "ca"))
        sink = bp.Sink(os.path.join(shm, "sink"), SINK_ADDR, net.free_port(SINK_ADDR),
                       MX_HOST, cert=ca.issue(MX_HOST, stem="sink"))
        sink.start()
        log("sink: Postfix on %s:%d" % (SINK_ADDR, sink.port))
        if args.only != "postfix" and "postgresql" in engines:
            pg = pw_postgres.Postgres(os.path.join(base, "postgres"))
            pg.start()
            log("PostgreSQL 15 on 127.0.0.1:%d (its defaults: synchronous_commit on)" % pg.port)
        if args.only != "postfix":
            knot = start_knot(base)
            log("Knot on 127.0.0.1:%d serves the signed zone %s" % (knot.port, ZONE))
        if args.only != "postfix" and not args.no_mta_sts:
            sts = StsPolicy(base, ca)
            sts.start()
            log("nginx on 127.0.0.1:%d serves the MTA-STS policy of %s" % (sts.port, ZONE))

            def run_sts(*a):
                # the TXT record only for this run: the others see a domain without policy
                knot.set_zone(ZONE, zone_records(True))
                try:
                    return run_postwarden(*a, sts=sts)
                finally:
                    knot.set_zone(ZONE, zone_records(False))
        for label, size, n in sizes:
            row = {"size_label": label, "size": size, "n": n}
            rows.append(row)
            steps = []
            if not args.no_sink_check:
                steps.append(("sink_direct", run_sink_direct, (args, sink, size, n)))
            if args.only != "postfix" and "sqlite" in engines:
                steps.append(("postwarden", run_postwarden, (args, base, knot, sink, size, n)))
            if args.only != "postfix" and sts is not None:
                steps.append(("postwarden_sts", run_sts, (args, base, knot, sink, size, n)))
            if args.only != "postfix" and "postgresql" in engines:
                steps.append(("postwarden_pg", lambda *a: run_postwarden(*a, pg=pg),
                              (args, base, knot, sink, size, n)))
            if args.only != "postwarden":
                steps.append(("postfix", run_postfix, (args, base, sink, size, n)))
            results = collections.defaultdict(list)
            for rep in range(args.repeat):
                tag = label if args.repeat == 1 else "%s-r%d" % (label, rep + 1)
                for key, fn, fargs in steps:
                    if key == "sink_direct" and rep > 0:
                        continue
                    try:
                        results[key].append(fn(*fargs, tag))
                    except Exception as e:  # noqa: BLE001 - one failed run must not hide
                        log("FAILED: %s %s: %s" % (key, tag, e))
                        results[key].append({"error": str(e)})
                        failed.append("%s %s" % (key, tag))
            for key, runs in results.items():
                row[key] = median_run(runs)
            pw, pf = row.get("postwarden"), row.get("postfix")
            pwpg = row.get("postwarden_pg")
            if pw and pf and "msgs_per_s" in pw and "msgs_per_s" in pf:
                row["ratio"] = round(pw["msgs_per_s"] / pf["msgs_per_s"], 3)
            if pwpg and pf and "msgs_per_s" in pwpg and "msgs_per_s" in pf:
                row["ratio_pg"] = round(pwpg["msgs_per_s"] / pf["msgs_per_s"], 3)
            pws = row.get("postwarden_sts")
            if pws and pw and "msgs_per_s" in pws and "msgs_per_s" in pw:
                row["sts_vs_without"] = round(pws["msgs_per_s"] / pw["msgs_per_s"], 3)
            if pws and pf and "msgs_per_s" in pws and "msgs_per_s" in pf:
                row["sts_vs_postfix"] = round(pws["msgs_per_s"] / pf["msgs_per_s"], 3)
            if pwpg and pw and "msgs_per_s" in pwpg and "msgs_per_s" in pw:
                row["pg_vs_sqlite"] = round(pwpg["msgs_per_s"] / pw["msgs_per_s"], 3)
    finally:
        if sink:
            sink.stop()
        if knot:
            knot.stop()
        if sts:
            sts.stop()
        if pg:
            pg.stop()

    print_table(rows)
    for n in notes:
        print("  " + n)
    if not args.postfix_stock:
        print("  Postfix tuned for one busy destination: smtp_tls_connection_reuse = yes "
              "(tlsproxy), smtp_tls_session_cache_database (--postfix-stock: without).")
    out = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "busy_before_start": round(idle_busy, 3)},
        "repeat": args.repeat,
        "binary": binary_info,
        "connections": args.connections,
        "postfix_tuned": not args.postfix_stock,
        "runs": rows,
        "notes": notes,
        "failed": failed,
    }
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("  JSON: %s" % args.json)
    if failed:
        print("\nrelay_bench: FAILED: %s (work directory kept: %s)" % (", ".join(failed), base))
        return 1
    if args.keep:
        print("  work directories kept: %s %s" % (base, shm))
    else:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
