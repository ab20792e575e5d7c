"""Prometheus metrics of serve ([metrics] listen): the exposition text is parsed strictly
(a small parser here, independent of postwarden's), and the counters must move by exactly
what the test did: mail through the relay to real Postfix MX hosts, a message held by the
guarantee at an MX without STARTTLS, key searches through the API."""

import http.client
import math
import os
import re
import shutil
import socket
import tempfile
import time

import pytest

from pwtest import keys as pk
from pwtest import net
from pwtest.mailcheck import message, rcpt_states, sender_addr, uniq
from pwtest.searchrun import api_get

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- a strict parser of the text exposition format 0.0.4 ---------------------------------

class FormatError(AssertionError):
    pass


def _unescape(s, quote):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                raise FormatError("dangling backslash in %r" % s)
            n = s[i + 1]
            if n == "\\":
                out.append("\\")
            elif n == "n":
                out.append("\n")
            elif n == '"' and quote:
                out.append('"')
            else:
                raise FormatError("bad escape \\%s in %r" % (n, s))
            i += 2
        else:
            if c == '"' and quote:
                raise FormatError("unescaped quote in %r" % s)
            out.append(c)
            i += 1
    return "".join(out)


def _value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("+", ""))
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", s):
        raise FormatError("bad value %r" % s)
    return float(s)


def _labels(text):
    """'a="x",b="y\\"z"' -> {"a": "x", "b": 'y"z'}; strict about quotes and commas."""
    labels, i = {}, 0
    while i < len(text):
        m = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"").match(text, i)
        if not m:
            raise FormatError("bad label at %r" % text[i:])
        j = m.end()
        raw = []
        while True:
            if j >= len(text):
                raise FormatError("unterminated label value in %r" % text)
            if text[j] == "\\":
                raw.append(text[j:j + 2])
                j += 2
                continue
            if text[j] == '"':
                break
            raw.append(text[j])
            j += 1
        name = m.group(1)
        if name in labels:
            raise FormatError("label %s twice" % name)
        labels[name] = _unescape("".join(raw), True)
        i = j + 1
        if i < len(text):
            if text[i] != ",":
                raise FormatError("expected a comma in %r" % text)
            i += 1
    return labels


def _family_of(sample, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix) and types.get(sample[:-len(suffix)]) == "histogram":
            return sample[:-len(suffix)]
    return sample


def parse(text):
    """Parse the whole exposition; returns {family: {"type", "help", "samples": {(name,
    labels tuple): value}}}. Raises FormatError on anything the format does not allow."""
    if not text.endswith("\n"):
        raise FormatError("the text must end with a newline")
    fams, types, done, current = {}, {}, set(), None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not NAME.match(name):
                raise FormatError("bad name in %r" % line)
            f = fams.setdefault(name, {"type": None, "help": None, "samples": {}})
            if kind == "HELP":
                if f["help"] is not None:
                    raise FormatError("HELP twice for %s" % name)
                f["help"] = _unescape(arg, False)
            else:
                if f["type"] is not None or f["samples"]:
                    raise FormatError("TYPE twice or after samples for %s" % name)
                if arg not in TYPES:
                    raise FormatError("bad type %r" % arg)
                f["type"] = types[name] = arg
            continue
        if line.startswith("#") or line == "":
            raise FormatError("unexpected line %r" % line)
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?", line)
        if not m:
            raise FormatError("bad sample line %r" % line)
        name, labels, value = m.group(1), _labels(m.group(3) or ""), _value(m.group(4))
        fam = _family_of(name, types)
        if fam not in types:
            raise FormatError("sample %s before its TYPE" % name)
        if fam != current:
            if fam in done:
                raise FormatError("samples of %s are not together" % fam)
            if current:
                done.add(current)
            current = fam
        key = (name, tuple(sorted(labels.items())))
        if key in fams[fam]["samples"]:
            raise FormatError("duplicate sample %r" % (key,))
        fams[fam]["samples"][key] = value
    for name, f in fams.items():
        _check_family(name, f)
    return fams


def _check_family(name, f):
    if f["type"] is None:
        raise FormatError("%s has no TYPE" % name)
    if f["type"] == "counter":
        if not name.endswith("_total"):
            raise FormatError("counter %s does not end in _total" % name)
        for k, v in f["samples"].items():
            if v < 0 or math.isnan(v):
                raise FormatError("counter %r is %r" % (k, v))
    if f["type"] != "histogram":
        return
    series = {}
    for (sname, labels), v in f["samples"].items():
        rest = tuple(x for x in labels if x[0] != "le")
        series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        s = series[rest]
        if sname == name + "_bucket":
            le = dict(labels).get("le")
            if le is None:
                raise FormatError("bucket without le in %s" % name)
            s["buckets"].append((_value(le), v))
        elif sname == name + "_sum":
            s["sum"] = v
        elif sname == name + "_count":
            s["count"] = v
        else:
            raise FormatError("sample %s in histogram %s" % (sname, name))
    for rest, s in series.items():
        b = sorted(s["buckets"])
        if not b or b[-1][0] != math.inf:
            raise FormatError("%s%r has no +Inf bucket" % (name, rest))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise FormatError("%s%r buckets are not cumulative" % (name, rest))
        if s["count"] is None or s["sum"] is None or s["count"] != b[-1][1]:
            raise FormatError("%s%r: _count must equal the +Inf bucket" % (name, rest))


def value(fams, name, default=0.0, **labels):
    """A sample's value (default when the series does not exist yet)."""
    fam = _family_of(name, {n: f["type"] for n, f in fams.items()})
    key = (name, tuple(sorted(labels.items())))
    return fams[fam]["samples"].get(key, default)


# -- the parser itself ---------------------------------------------------------------------

GOOD = (
    '# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\na_total{r="x\\"y\\\\z\\n"} 3\n'
    '# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n'
)


def test_parser_accepts_good_and_refuses_bad():
    f = parse(GOOD)
    assert value(f, "a_total", r='x"y\\z\n') == 3
    assert f["a_total"]["help"] == "A \\ b\n."
    assert value(f, "h_count") == 2
    for bad in (GOOD[:-1],                                    # no final newline
                GOOD.replace("a_total{", "a_total {"),        # space before labels
                GOOD.replace('r="x', 'r=x'),                  # unquoted
                GOOD.replace('\\"y', '"y'),                   # unescaped quote
                GOOD.replace("h_count 2", "h_count 3"),       # count != +Inf bucket
                GOOD.replace('h_bucket{le="+Inf"} 2\n', ""),  # no +Inf
                GOOD.replace("# TYPE a_total counter\n", ""),  # no TYPE
                GOOD + "a_total{r=\"q\"} 1\n",                # family split
                GOOD.replace("} 3", "} three")):
        with pytest.raises(FormatError):
            parse(bad)


# -- serve -----------------------------------------------------------------------------------

def scrape(port, path="/metrics", method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def metrics(port):
    status, ctype, body = scrape(port)
    assert status == 200 and ctype == CONTENT_TYPE, (status, ctype)
    return parse(body.decode("utf-8"))


def wait_metric(port, pred, timeout=60, what="metrics"):
    deadline = time.monotonic() + timeout
    while True:
        m = metrics(port)
        if pred(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.3)


def listening_ports(pid):
    """TCP ports the process listens on (its socket inodes in /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                col = line.split()
                if col[3] == "0A" and col[9] in inodes:
                    ports.add(int(col[1].rsplit(":", 1)[1], 16))
    return ports


def wait_started(relay, timeout=20):
    """The fixture waits for the SMTP port; serve binds the API and metrics ports after it
    and logs event=start once every listener is bound."""
    deadline = time.monotonic() + timeout
    while not relay.log_lines("start"):
        assert time.monotonic() < deadline and relay.alive(), relay.log()[-2000:]
        time.sleep(0.05)
    return relay


@pytest.fixture
def mrelay(make_relay):
    port = net.free_port("127.0.0.1")
    r = make_relay(metrics_listen="127.0.0.1:%d" % port, keysearch_sources="local",
                   api_tokens="tok")
    r.metrics_port = port
    return wait_started(r)


def _user(relay, addr, guarantee):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


def test_metrics_off_by_default(relay):
    """Without [metrics] listen serve listens on the relay and API ports, nothing else."""
    wait_started(relay)
    assert relay.log_lines("metrics_listen") == []
    assert listening_ports(relay.proc.pid) == {relay.port, relay.api_port}
    # control: the same measurement sees the metrics port when it is configured
    out = relay.pw("config", check=True).stdout
    assert "[metrics]\n" in out and "\nlisten = \n" in out


def test_metrics_listener_is_seen(mrelay):
    assert listening_ports(mrelay.proc.pid) == {mrelay.port, mrelay.api_port,
                                                mrelay.metrics_port}
    assert len(mrelay.log_lines("metrics_listen")) == 1


def test_metrics_http_paths_methods_and_bounds(mrelay):
    p = mrelay.metrics_port
    assert scrape(p, "/")[0] == 404
    assert scrape(p, "/metrics/x")[0] == 404
    assert scrape(p, "/metrics", "POST")[0] == 405
    assert scrape(p, "/metrics", "DELETE")[0] == 405
    # headers past the bound are refused without an answer of metrics
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert b"postwarden_messages_accepted_total" not in got
    assert got == b"" or got.split(b" ")[1] in (b"400", b"413", b"431"), got[:200]
    # control: a normal request right after is answered
    assert metrics(p)["postwarden_messages_accepted_total"]["type"] == "counter"


def test_metrics_count_deliveries_and_held(mrelay, zones, pf_tls, pf_plain, pf_notify):
    r, p, n = mrelay, mrelay.metrics_port, 3
    good = zones.mx("example.test", uniq("mgood"), pf_tls.addr)
    plain = zones.mx("insecure.test", uniq("mplain"), pf_plain.addr)
    zones.publish()
    m0 = metrics(p)
    s_off, s_on = sender_addr(), sender_addr()
    _user(r, s_off, "off")
    _user(r, s_on, "on")
    rcpts = ["m%d@%s" % (i, good) for i in range(n)]
    for rc in rcpts:
        assert r.send(s_off, [rc], message(s_off, [rc], "counted")) == {}
    for rc in rcpts:
        pf_tls.wait_for_message(rc, timeout=60)
    r.wait_queue_empty()
    m1 = metrics(p)
    d = lambda name, **kw: value(m1, name, **kw) - value(m0, name, **kw)  # noqa: E731
    assert d("postwarden_messages_accepted_total") == n
    assert d("postwarden_recipients_delivered_total") == n
    # serve's database work: at least the guarantee look-up and the delivery state per
    # message, and time spent on it; both only grow
    assert d("postwarden_db_statements_total", connection="serve") >= 2 * n
    assert d("postwarden_db_statement_seconds_total", connection="serve") > 0
    assert m1["postwarden_db_statements_total"]["type"] == "counter"
    versions = {dict(k[1]).get("version"): v
                for k, v in m1["postwarden_deliveries_tls_total"]["samples"].items()}
    assert sum(versions.values()) == n and set(versions) <= {"TLSv1.2", "TLSv1.3"}, versions
    assert d("postwarden_deliveries_dane_total", outcome="none") == n
    assert m1["postwarden_recipients_held_total"]["samples"] == {}
    assert value(m1, "postwarden_queue_recipients", state="queued") == 0

    # Guarantee on, an MX without STARTTLS: held, and the sender is told (one delivery more).
    rc = "held@" + plain
    r.send(s_on, [rc], message(s_on, [rc], "held"))
    r.wait_queue(lambda q: any(x["sender"] == s_on and rcpt_states(x).get(rc) == "held"
                               for x in q), timeout=60, what="held recipient")
    pf_notify.wait_for_message(s_on, timeout=60)
    m2 = wait_metric(p, lambda m: value(m, "postwarden_recipients_delivered_total") ==
                     value(m1, "postwarden_recipients_delivered_total") + 1,
                     what="the notification's delivery")
    assert value(m2, "postwarden_messages_accepted_total") == \
        value(m1, "postwarden_messages_accepted_total") + 1      # the notification is ours
    held = m2["postwarden_recipients_held_total"]["samples"]
    assert held == {("postwarden_recipients_held_total", (("reason", "no_starttls"),)): 1.0}
    assert not pf_plain.messages(rc)
    assert value(m2, "postwarden_queue_recipients", state="held") == 1
    age = value(m2, "postwarden_queue_oldest_age_seconds", state="held")
    assert 0 <= age < 300
    assert value(m2, "postwarden_queue_oldest_age_seconds", state="queued") == 0


@pytest.fixture
def gpg():
    home = tempfile.mkdtemp(prefix="pwm", dir="/tmp")
    g = pk.GnuPG(home)
    yield g
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


def test_metrics_keysearch_per_source(mrelay, gpg, workdir):
    r, p = mrelay, mrelay.metrics_port
    fpr = gpg.make_key("kim@keys.test")
    path = os.path.join(workdir, "kim.asc")
    with open(path, "wb") as f:
        f.write(gpg.export(fpr))
    r.pw("user", "add", "kim@keys.test", check=True)
    r.pw("keys", "publish", "kim@keys.test", path, check=True)
    m0 = metrics(p)

    def search(addr):
        st, _, body, _ = api_get("127.0.0.1", r.api_port, "/v1/keys/search?email=" + addr,
                                 token="tok")
        assert st == 200, body

    search("kim@keys.test")
    search("nobody@keys.test")
    m1 = metrics(p)
    d = lambda name, **kw: value(m1, name, **kw) - value(m0, name, **kw)  # noqa: E731
    assert d("postwarden_keysearch_source_requests_total", source="local") == 2
    assert d("postwarden_keysearch_source_hits_total", source="local") == 1
    assert d("postwarden_keysearch_source_errors_total", source="local") == 0
    assert d("postwarden_keysearch_source_duration_seconds_count", source="local") == 2
    assert value(m1, "postwarden_keysearch_source_duration_seconds_bucket", source="local",
                 le="+Inf") == value(m0, "postwarden_keysearch_source_duration_seconds_bucket",
                                     source="local", le="+Inf") + 2
    # no other source was configured, so none shows up
    srcs = {dict(k[1])["source"]
            for k in m1["postwarden_keysearch_source_requests_total"]["samples"]}
    assert srcs == {"local"}


def test_metrics_dane_pass_agrees_with_the_delivery_log(mrelay, zones, pf_tls):
    r, p = mrelay, mrelay.metrics_port
    dom = zones.mx("example.test", uniq("mdane"), pf_tls.addr, tlsa=[pf_tls.cert.tlsa_311()],
                   mx_host="mx1.example.test")
    zones.publish()
    s, rc = sender_addr(), "dane@" + dom
    _user(r, s, "on")
    m0 = metrics(p)
    r.send(s, [rc], message(s, [rc], "dane metrics"))
    pf_tls.wait_for_message(rc, timeout=60)
    r.wait_queue_empty()
    m1 = metrics(p)
    assert value(m1, "postwarden_deliveries_dane_total", outcome="pass") == \
        value(m0, "postwarden_deliveries_dane_total", outcome="pass") + 1
    # every delivered line of the log is counted once, by its TLS version and DANE outcome
    done = [d for d in r.deliveries()
            if d.get("event") == "delivery" and d.get("outcome") == "delivered"]
    assert value(m1, "postwarden_recipients_delivered_total") == len(done)
    assert value(m1, "postwarden_deliveries_dane_total", outcome="pass") == \
        len([d for d in done if d["dane"] == "pass"])
    for v in {d["tls"] for d in done}:
        assert value(m1, "postwarden_deliveries_tls_total", version=v) == \
            len([d for d in done if d["tls"] == v])


def test_metrics_keydir_pending_and_update_errors(make_relay, gpg, workdir):
    """Keys published while the primary DNS server is away: serve's first pass fails for each
    pending name, and the metrics say how many names wait and how many updates failed."""
    mport = net.free_port("127.0.0.1")
    r = make_relay(start=False, metrics_listen="127.0.0.1:%d" % mport,
                   keydir_dns_server="127.0.0.1:%d" % net.free_port("127.0.0.1"),
                   keydir_zones="keys.test", keydir_tsig_name="pw",
                   keydir_tsig_secret="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", keydir_ttl="60")
    fpr = gpg.make_key("lou@keys.test")
    path = os.path.join(workdir, "lou.asc")
    with open(path, "wb") as f:
        f.write(gpg.export(fpr))
    r.pw("user", "add", "lou@keys.test", check=True)
    r.pw("keys", "publish", "lou@keys.test", path)     # the update fails: the name stays pending
    wait_started(r.start())
    # the gauge is set when the pass is over, after every failure of it was counted
    m = wait_metric(mport, lambda m: value(m, "postwarden_keydir_pending_names") > 0,
                    what="a failed key directory pass")
    failed = len(r.log_lines("keydir_pending"))
    assert failed >= 1
    assert value(m, "postwarden_keydir_update_errors_total") == failed
    assert value(m, "postwarden_keydir_pending_names") == failed


def test_metrics_port_taken_stops_serve(make_relay):
    """A metrics address that cannot be bound is a start-up error, named in the log."""
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        r = make_relay(start=False, metrics_listen="127.0.0.1:%d" % port)
        try:
            r.start(timeout=20)     # the SMTP port, bound first, may accept for a moment
        except RuntimeError:
            pass
        assert r.proc.wait(20) == 1
        r.proc = None
        assert "[metrics] listen: cannot listen on 127.0.0.1:%d" % port in r.log()
    finally:
        blocker.close()
