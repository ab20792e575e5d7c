"""How the CT monitor fetches a log's entries: several requests in flight ([ctmon]
parallel), at most requests_per_second started per second, the whole log paused after a
429 with Retry-After, answers that arrive out of order or short still checked strictly in
index order; and `ct backfill`'s progress on standard error (a bar on a terminal, rate and
ETA lines otherwise)."""
import os
import pty
import re
import select
import subprocess
import time

import pytest

from pwtest import relay as pw_relay
from pwtest.ctmon import logs_running, monitor, rfc_id, static_id

FAST = "10000"     # requests per second high enough not to be the limit


@pytest.fixture
def logs(workdir):
    with logs_running(workdir, names=("www.example.test", "mx.example.test"), filler=120,
                      max_batch=7) as t:
        yield t


def entries_requests(logs):
    return [(int(q["start"][0]), int(q["end"][0])) for p, q, _ in logs.rfc.requests
            if p.endswith("get-entries")]


def assert_found_all(relay, logs, r):
    """The round verified the whole log and found exactly the expected certificates."""
    assert r.returncode == 0, r.stderr
    size = logs.rfc_log.size()
    # per name: a certificate, and a precertificate with its final certificate (one finding)
    assert "verified to %d entries; %d checked, 6 matching, 4 new findings" % (size, size) \
        in r.stdout, r.stdout
    found = relay.pw_json("ct", "list")
    assert sorted(f["names"] for f in found) == ["mx.example.test"] * 2 + \
        ["www.example.test"] * 2
    rows = relay.database.rows("SELECT tree_size, next_index FROM ct_logs WHERE log_id = ?",
                               (rfc_id(logs),))
    assert (rows[0]["tree_size"], rows[0]["next_index"]) == (size, size)


@pytest.mark.parametrize("parallel", [4, 1])
def test_requests_in_flight_are_at_most_parallel(make_relay, logs, parallel):
    logs.rfc.delay = 0.05       # long enough for requests to overlap
    relay = monitor(make_relay, logs, ctmon_parallel=str(parallel),
                    ctmon_requests_per_second=FAST)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert_found_all(relay, logs, r)
    if parallel == 1:
        assert logs.rfc.peak_in_flight == 1
    else:
        assert 1 < logs.rfc.peak_in_flight <= parallel, logs.rfc.peak_in_flight


def test_out_of_order_and_short_answers_are_checked_in_order(make_relay, logs):
    # every third request answers late, so later ones overtake it; and every answer is
    # short by a varying amount, so that gaps are asked again
    logs.rfc.delay = lambda start, end: 0.3 if (start // 7) % 3 == 0 else 0.0
    logs.rfc.shorten = lambda start, end: start + (start % 5)
    relay = monitor(make_relay, logs, ctmon_parallel="4", ctmon_requests_per_second=FAST)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert_found_all(relay, logs, r)
    answered = logs.rfc.answered
    assert answered != sorted(answered), "the answers never came out of order"
    # every entry was asked for, none skipped: the ranges asked cover 0 .. size-1
    covered = set()
    for start, end in entries_requests(logs):
        covered.update(range(start, end + 1))
    assert covered >= set(range(logs.rfc_log.size()))
    # restart: nothing new, nothing reported twice
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert "0 checked, 0 matching, 0 new" in r.stdout
    assert len(relay.pw_json("ct", "list")) == 4


def test_entries_that_do_not_hash_to_the_root_report_nothing_with_parallel(make_relay, logs):
    # control for the test above: the parallel path still checks the root before reporting
    logs.rfc.delay = lambda start, end: 0.2 if (start // 7) % 2 == 0 else 0.0
    logs.rfc.altered = {logs.found["www.example.test"][0][0]: None}
    relay = monitor(make_relay, logs, ctmon_parallel="4", ctmon_requests_per_second=FAST)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert r.returncode != 0
    assert "ALERT entries_mismatch" in r.stderr
    assert relay.pw_json("ct", "list") == []


def test_request_rate_is_limited_per_log(make_relay, logs):
    relay = monitor(make_relay, logs, ctmon_parallel="4", ctmon_requests_per_second="5")
    t0 = time.monotonic()
    r = relay.pw("ct", "check", "--log", rfc_id(logs), timeout=120)
    took = time.monotonic() - t0
    assert_found_all(relay, logs, r)
    n = len(logs.rfc.requests)
    assert n > 15, n
    # a bucket of 5 tokens refilled at 5 per second: n requests need (n - 5) / 5 seconds
    assert took >= (n - 5) / 5.0, (n, took)


def test_429_with_retry_after_pauses_the_whole_log(make_relay, logs):
    logs.rfc.delay = 0.25       # without the pause, requests would go on during it
    logs.rfc.rate_limit_entries(7 * 3, retry_after=2)
    relay = monitor(make_relay, logs, ctmon_parallel="4", ctmon_requests_per_second=FAST)
    r = relay.pw("ct", "check", "--log", rfc_id(logs))
    assert_found_all(relay, logs, r)
    t429 = logs.rfc.limited_at
    assert t429 is not None
    times = logs.rfc.request_times
    # requests sent before the 429 reached the monitor may arrive just after it; none is
    # started from then until Retry-After has passed
    during = [t - t429 for t in times if t429 + 0.5 < t < t429 + 2 - 0.05]
    assert during == [], during
    after = [t - t429 for t in times if t >= t429 + 2 - 0.05]
    assert after, "nothing was asked after the pause"
    # the refused range was asked again
    asked = entries_requests(logs)
    assert len([a for a in asked if a[0] == 21]) >= 2, asked


def test_static_log_with_parallel_tiles(make_relay, workdir):
    # three full data tiles and a partial one, fetched ahead, each exactly once
    with logs_running(workdir, names=("www.example.test",), filler=3 * 256 + 40,
                      gzip_data=True) as t:
        relay = monitor(make_relay, t, ctmon_parallel="4", ctmon_requests_per_second=FAST)
        r = relay.pw("ct", "check", "--log", static_id(t))
        assert r.returncode == 0, r.stderr
        size = t.static_log.size()
        assert "verified to %d entries; %d checked, 3 matching, 2 new findings" % (size, size) \
            in r.stdout, r.stdout
        tiles = [a for a in t.nginx.accesses() if "/tile/data/" in a]
        paths = [a.split('"')[1] for a in tiles]
        assert len(paths) == 4 and len(set(paths)) == 4, paths
        assert any(".p/" in p for p in paths), paths


# ---- backfill's progress -------------------------------------------------------------------

PROGRESS_LINE = re.compile(r"backfill: (\d+)/(\d+) entries \((\d+)%\), \d+ entries/s, ETA [\d:?]+")


def test_backfill_without_a_terminal_prints_rate_and_eta_lines(make_relay, logs):
    relay = monitor(make_relay, logs, ctmon_requests_per_second=FAST)
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    r = relay.pw("ct", "backfill", "--log", rfc_id(logs), "--from", "10", check=True)
    assert "\r" not in r.stderr
    lines = [PROGRESS_LINE.search(x) for x in r.stderr.splitlines()]
    lines = [m for m in lines if m]
    assert lines, r.stderr
    total = logs.rfc_log.size() - 10
    assert (int(lines[-1].group(1)), int(lines[-1].group(2))) == (total, total)
    assert lines[-1].group(3) == "100"
    # control: a check (not a backfill) prints no progress
    r = relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    assert not PROGRESS_LINE.search(r.stderr)


def test_backfill_without_a_terminal_writes_a_line_every_ten_seconds(make_relay, logs):
    # about 13 s of backfill: one line after about 10 s, then the last one
    logs.rfc.delay = 0.7
    relay = monitor(make_relay, logs, ctmon_requests_per_second=FAST, ctmon_parallel="1")
    t0 = time.monotonic()
    p = subprocess.Popen([pw_relay.binary(), "-c", relay.conf_path, "ct", "backfill", "--log",
                          rfc_id(logs), "--from", "0"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=pw_relay.daemon_env(), cwd=relay.dir)
    seen = []
    for line in p.stderr:
        m = PROGRESS_LINE.search(line)
        if m:
            seen.append((time.monotonic() - t0, int(m.group(1)), int(m.group(2))))
    assert p.wait(timeout=60) == 0
    total = logs.rfc_log.size()
    assert len(seen) >= 2, seen
    assert seen[-1][1:] == (total, total), seen
    assert 0 < seen[0][1] < total and seen[0][0] >= 9.5, seen   # not before ~10 s


def run_in_pty(argv, env, cwd, timeout=60):
    """Run argv with standard error on a pseudo-terminal; (exit code, what it wrote)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:        # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    return p.wait(timeout=timeout), out.decode(errors="replace")


def test_backfill_on_a_terminal_draws_a_bar_in_place(make_relay, logs):
    logs.rfc.delay = 0.05       # a few redraws
    relay = monitor(make_relay, logs, ctmon_requests_per_second=FAST, ctmon_parallel="2")
    relay.pw("ct", "check", "--log", rfc_id(logs), check=True)
    rc, out = run_in_pty([pw_relay.binary(), "-c", relay.conf_path, "ct", "backfill",
                          "--log", rfc_id(logs), "--from", "0"], pw_relay.daemon_env(),
                         relay.dir)
    assert rc == 0, out
    total = logs.rfc_log.size()
    bars = re.findall(r"\r\[([#.]+)\] (\d+)/(\d+) +(\d+)% \d+ entries/s ETA [\d:?]+", out)
    assert len(bars) >= 2, out
    assert bars[0][1] == "0" and bars[-1][1:] == (str(total), str(total), "100"), bars
    assert bars[-1][0] == "#" * len(bars[-1][0])
    assert not PROGRESS_LINE.search(out)
