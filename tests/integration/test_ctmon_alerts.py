"""The CT monitor's alerts on the channels other than mail, its health alerts and a log
list given as a URL: the webhook gets each finding's JSON once, retried with backoff after
errors; the hook command gets certspotter's variables and the JSON on standard input;
`ct watch --foreground` prints the JSON lines; a stopped log and an unreachable log list
are alerts; a second node delivers nothing twice. The webhook receiver and the server of
the log list are small HTTP servers of the test: they are the endpoints a provider runs."""
import http.server
import json
import os
import signal
import socketserver
import subprocess
import threading
import time

import pytest

from pwtest import net
from pwtest import relay as pw_relay
from pwtest.ctlog_server import CTTestLogs

pytestmark = pytest.mark.engines

HEX64 = set("0123456789abcdef")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_ctx = None

    def finish_request(self, request, client_address):
        if self.ssl_ctx is not None:   # TLS in the connection's own thread
            request = self.ssl_ctx.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


class Endpoint:
    """A loopback HTTP server: POSTs are recorded (time, JSON document, status answered),
    GET /log_list.json serves .log_list (bytes). fail(id) -> how many more times a POST
    of document id is answered 500."""

    def __init__(self, cert=None):
        self.cert = cert
        self.port = net.free_port("127.0.0.1")
        self.posts = []
        self.fail_first = 0
        self.log_list = None
        self.lock = threading.Lock()
        ep = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _answer(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/log_list.json" and ep.log_list is not None:
                    self._answer(200, ep.log_list)
                else:
                    self._answer(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                doc = json.loads(self.rfile.read(n))
                with ep.lock:
                    key = (doc["kind"], doc["id"])
                    earlier = sum(1 for p in ep.posts if p["key"] == key)
                    status = 500 if earlier < ep.fail_first else 200
                    ep.posts.append({"t": time.monotonic(), "key": key, "doc": doc,
                                     "status": status,
                                     "ctype": self.headers.get("Content-Type")})
                self._answer(status, b"{}")

        self.server = _Server(("127.0.0.1", self.port), Handler)
        if cert is not None:
            self.server.ssl_ctx = cert.server_context()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        if self.cert is not None:
            return "https://localhost:%d/" % self.port
        return "http://127.0.0.1:%d/" % self.port

    def docs(self, kind=None, ok_only=True):
        with self.lock:
            return [p["doc"] for p in self.posts if (not ok_only or p["status"] == 200)
                    and (kind is None or p["doc"]["kind"] == kind)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def logs(workdir):
    t = CTTestLogs(os.path.join(workdir, "ct"), names=("www.example.test",), filler=10).start()
    yield t
    t.stop()


@pytest.fixture
def endpoint():
    e = Endpoint()
    yield e
    e.stop()


def monitor_options(logs, **extra):
    o = dict(ctmon_log_list=logs.log_list_path, ctmon_watch=".example.test",
             ctmon_allow_private="on", ctmon_start="backfill", ctmon_interval="1s")
    o.update(extra)
    return o


def unexpected_ids(relay):
    return sorted(f["id"] for f in relay.pw_json("ct", "list", "--unexpected"))


def check_finding_document(doc, logs):
    assert doc["kind"] == "finding"
    assert doc["names"] == ["www.example.test"]
    assert doc["verdict"] != "expected" and doc["reason"]
    assert len(doc["spki_sha256"]) == 64 and set(doc["spki_sha256"]) <= HEX64
    assert len(doc["tbs_sha256"]) == 64 and set(doc["tbs_sha256"]) <= HEX64
    assert doc["not_before"] < doc["not_after"]
    assert doc["not_after_rfc3339"].endswith("Z")
    assert "CT test CA" in doc["issuer"]
    found = {i for pair in logs.found["www.example.test"] for i in pair}
    assert doc["seen_in"] and all(s["index"] in found for s in doc["seen_in"])
    static = logs.nginx.url if logs.nginx.url.endswith("/") else logs.nginx.url + "/"
    assert {s["log_url"] for s in doc["seen_in"]} <= {logs.rfc.url, static}


def test_webhook_gets_each_finding_once_after_two_errors_with_backoff(make_relay, logs,
                                                                     endpoint):
    endpoint.fail_first = 2      # every document: 500, 500, then 200
    relay = make_relay(**monitor_options(logs, ctmon_webhook=endpoint.url))
    net.wait_until(lambda: len(unexpected_ids(relay)) == 2, 60, what="two findings")
    ids = unexpected_ids(relay)
    net.wait_until(lambda: sorted(d["id"] for d in endpoint.docs("finding")) == ids, 60,
                   what="each finding delivered")
    for fid in ids:
        tries = [p for p in endpoint.posts if p["key"] == ("finding", fid)]
        assert [p["status"] for p in tries] == [500, 500, 200]
        assert all(p["ctype"] == "application/json" for p in tries)
        # backoff: the third try waits for the second failure's 2 s (whole seconds)
        assert tries[1]["t"] > tries[0]["t"] and tries[2]["t"] - tries[1]["t"] >= 1.0
        print("finding %d: gaps between tries %.2f s, %.2f s" % (
            fid, tries[1]["t"] - tries[0]["t"], tries[2]["t"] - tries[1]["t"]))
        check_finding_document(tries[2]["doc"], logs)
    # later rounds deliver nothing again
    rounds = len(relay.log_lines("ct_round"))
    net.wait_until(lambda: len(relay.log_lines("ct_round")) >= rounds + 4, 30,
                   what="more rounds")
    assert len([p for p in endpoint.posts if p["doc"]["kind"] == "finding"]) == 3 * len(ids)
    rows = relay.database.rows("SELECT item_id, attempts, done FROM ct_deliveries "
                               "WHERE channel = 'webhook' AND item = 'finding'")
    assert sorted(r["item_id"] for r in rows) == ids
    assert all(r["attempts"] == 3 and r["done"] for r in rows)


def test_hook_gets_certspotter_variables_and_json_on_stdin(make_relay, logs, workdir):
    out = os.path.join(workdir, "hook-out")
    os.makedirs(out)
    script = os.path.join(workdir, "hook.sh")
    with open(script, "w") as f:
        # the first run of each finding fails (exit 3): the hook is run again later
        f.write("#!/bin/sh\nk=\"$POSTWARDEN_KIND-${FINDING_ID:-$ALERT_ID}\"\n"
                "if [ ! -e \"%s/$k.failed\" ]; then touch \"%s/$k.failed\"; exit 3; fi\n"
                "env > \"%s/$k.env\"\ncat > \"%s/$k.json\"\n" % (out, out, out, out))
    os.chmod(script, 0o755)
    relay = make_relay(**monitor_options(logs, ctmon_hook=script))
    net.wait_until(lambda: len(unexpected_ids(relay)) == 2, 60, what="two findings")
    ids = unexpected_ids(relay)
    net.wait_until(lambda: all(os.path.exists(os.path.join(out, "finding-%d.json" % i))
                               for i in ids), 60, what="the hook ran for each finding")
    time.sleep(1)   # the hook's cat has finished writing
    for fid in ids:
        env = dict(l.split("=", 1) for l in open(os.path.join(out, "finding-%d.env" % fid))
                   .read().splitlines() if "=" in l)
        doc = json.load(open(os.path.join(out, "finding-%d.json" % fid)))
        assert doc["id"] == fid
        check_finding_document(doc, logs)
        assert env["EVENT"] == "discovered_cert"
        assert env["FINDING_ID"] == str(fid)
        assert env["PUBKEY_SHA256"] == doc["spki_sha256"]
        assert env["TBS_SHA256"] == doc["tbs_sha256"]
        assert env["ISSUER_DN"] == doc["issuer"]
        assert env["SERIAL"] == doc["serial"]
        assert env["DNS_NAMES"] == "www.example.test"
        assert env["NOT_BEFORE_UNIXTIME"] == str(doc["not_before"])
        assert env["NOT_AFTER_RFC3339"] == doc["not_after_rfc3339"]
        assert env["NOT_BEFORE"].endswith("+0000 UTC")
        assert "www.example.test" in env["SUMMARY"]
        assert env["LOG_URI"] == doc["seen_in"][0]["log_url"]
        assert env["ENTRY_INDEX"] == str(doc["seen_in"][0]["index"])
        assert env["VERDICT"] == doc["verdict"]
    rows = relay.database.rows("SELECT attempts, done, last_error FROM ct_deliveries "
                               "WHERE channel = 'hook' AND item = 'finding'")
    assert len(rows) == 2 and all(r["attempts"] == 2 and r["done"] for r in rows)
    assert relay.log_lines("ct_alert_delivery_failed")
    assert "status 3" in relay.log_lines("ct_alert_delivery_failed")[0]


def watch_proc(relay):
    return subprocess.Popen([pw_relay.binary(), "-c", relay.conf_path, "ct", "watch",
                             "--foreground"], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(relay.dir, "watch.err"), "w"),
                            env=pw_relay.daemon_env(), cwd=relay.dir, text=True)


def read_lines(proc, n, timeout):
    lines, box = [], {}

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if len(lines) >= n:
                break
        box["done"] = True
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    return lines


def stop_watch(proc, relay):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(20)
    err = open(os.path.join(relay.dir, "watch.err")).read()
    assert "AddressSanitizer" not in err and "runtime error:" not in err, err
    return rc, err


def test_watch_foreground_prints_json_lines_and_leaves_mail_to_serve(make_relay, logs):
    relay = make_relay(start=False, **monitor_options(logs, ctmon_alert_to="ct@other.test"))
    relay.pw("db", "migrate", check=True)
    proc = watch_proc(relay)
    try:
        lines = read_lines(proc, 2, 60)
    finally:
        rc, err = stop_watch(proc, relay)
    assert rc == 0, err
    assert len(lines) == 2 and all(l.endswith("\n") for l in lines)
    docs = [json.loads(l) for l in lines]
    assert sorted(d["id"] for d in docs) == unexpected_ids(relay)
    for d in docs:
        check_finding_document(d, logs)
    # mail: its rows wait for serve, nothing was sent (no relay runs)
    rows = relay.database.rows("SELECT done FROM ct_deliveries WHERE channel = 'mail'")
    assert len(rows) == 2 and all(r["done"] is None for r in rows)
    assert "ct-watch" in err   # the node it ran as


def test_stale_log_is_one_health_alert(make_relay, logs, endpoint):
    relay = make_relay(**monitor_options(logs, ctmon_webhook=endpoint.url,
                                         ctmon_stale_after="3s"))
    net.wait_until(lambda: len(endpoint.docs("finding")) == 2, 60, what="findings")
    assert endpoint.docs("alert") == []      # control: a good log is no alert
    logs.rfc.down = True
    net.wait_until(lambda: endpoint.docs("alert"), 90, what="the stale log's alert")
    alert = endpoint.docs("alert")[0]
    assert alert["alert"] == "log_stale" and alert["class"] == "health"
    assert alert["log_url"] == logs.rfc.url and "no good answer" in alert["message"]
    rounds = len(relay.log_lines("ct_log_error"))
    net.wait_until(lambda: len(relay.log_lines("ct_log_error")) >= rounds + 2, 60,
                   what="more failed rounds")
    assert len(endpoint.docs("alert")) == 1   # one episode, one alert
    # the log answers again: the episode ends (resolved), and no new alert comes of it
    logs.rfc.down = False
    net.wait_until(lambda: relay.database.value(
        "SELECT resolved FROM ct_alerts WHERE kind = 'log_stale'") is not None, 60,
        what="the episode resolved")
    assert len(endpoint.docs("alert")) == 1


def test_log_list_from_url_kept_and_unreachable_alert(make_relay, logs, endpoint):
    endpoint.log_list = open(logs.log_list_path, "rb").read()
    list_url = endpoint.url + "log_list.json"
    relay = make_relay(**monitor_options(logs, ctmon_log_list=list_url,
                                         ctmon_webhook=endpoint.url,
                                         ctmon_stale_after="2s"))
    net.wait_until(lambda: len(unexpected_ids(relay)) == 2, 60,
                   what="findings from the logs of the fetched list")
    cached = os.path.join(relay.state_dir, "ct-log-list.json")
    assert open(cached, "rb").read() == endpoint.log_list
    assert relay.database.rows("SELECT id FROM ct_alerts") == []   # control
    # the URL goes away: a restart still watches with the kept copy, and it is an alert
    relay.stop()
    endpoint.log_list = None          # 404 from now on
    logs.rfc_log.add_cert(logs.ca.issue(["new.example.test"]))
    logs.publish()
    relay.start()
    net.wait_until(lambda: any(d["alert"] == "log_list_stale" for d in endpoint.docs("alert")),
                   60, what="the log list alert")
    alert = [d for d in endpoint.docs("alert") if d["alert"] == "log_list_stale"][0]
    assert alert["class"] == "health" and list_url in alert["message"]
    assert "last good copy" in alert["message"]
    assert relay.log_lines("ct_log_list_cached")
    net.wait_until(lambda: any("new.example.test" in f["names"]
                               for f in relay.pw_json("ct", "list")), 60,
                   what="a new certificate found with the kept list")


def test_second_node_does_not_redeliver(make_relay, logs, endpoint):
    relay = make_relay(start=False, **monitor_options(logs, ctmon_webhook=endpoint.url))
    relay.pw("db", "migrate", check=True)
    # serve and ct watch (a node of its own) on one database, both delivering webhooks
    relay.start()
    proc = watch_proc(relay)
    try:
        net.wait_until(lambda: len(endpoint.docs("finding")) >= 2, 60, what="findings")
        logs.rfc_log.add_cert(logs.ca.issue(["late.example.test"]))
        logs.publish()
        net.wait_until(lambda: len(endpoint.docs("finding")) >= 3, 60, what="a late finding")
        time.sleep(5)
    finally:
        rc, err = stop_watch(proc, relay)
    assert rc == 0, err
    assert "event=ctmon_start" in err          # control: the second node did run
    posted = sorted(d["id"] for d in endpoint.docs("finding"))
    assert posted == unexpected_ids(relay) and len(posted) == 3
    assert len(endpoint.posts) == len(endpoint.docs())   # every POST a first delivery


def test_log_list_and_webhook_over_https(make_relay, logs, test_ca):
    """The log list fetched and the webhook POSTed over TLS, verified with [ctmon] ca_file."""
    endpoint = Endpoint(cert=test_ca.issue("localhost", stem="ct-endpoint"))
    try:
        endpoint.log_list = open(logs.log_list_path, "rb").read()
        relay = make_relay(**monitor_options(logs, ctmon_log_list=endpoint.url + "log_list.json",
                                             ctmon_webhook=endpoint.url,
                                             ctmon_ca_file=test_ca.cert_path))
        net.wait_until(lambda: len(endpoint.docs("finding")) == 2, 60,
                       what="findings over https")
        for d in endpoint.docs("finding"):
            check_finding_document(d, logs)
        assert relay.log_lines("ct_log_list") and not relay.log_lines("ct_log_list_error")
    finally:
        endpoint.stop()


def test_growing_backlog_is_one_health_alert(make_relay, logs, endpoint):
    pool = [logs.ca.issue(["bulk%d.other.test" % i]) for i in range(10)]
    logs.rfc.entries_down = True          # tree heads answer, entries do not
    logs.rfc_log.fill(1100, pool)
    logs.rfc.publish()
    relay = make_relay(**monitor_options(logs, ctmon_webhook=endpoint.url))
    stop = threading.Event()

    def grow():                           # the log keeps growing between rounds
        while not stop.wait(2):
            logs.rfc_log.fill(5, pool)
            logs.rfc.publish()
    t = threading.Thread(target=grow, daemon=True)
    t.start()
    try:
        net.wait_until(lambda: [d for d in endpoint.docs("alert")
                                if d["alert"] == "backlog_growing"], 180,
                       what="the backlog alert")
    finally:
        stop.set()
        t.join()
    alert = [d for d in endpoint.docs("alert") if d["alert"] == "backlog_growing"][0]
    assert alert["class"] == "health" and alert["log_url"] == logs.rfc.url
    assert json.loads(alert["evidence"])["next_index"] == 0
    # entries come back: the log catches up, the episode ends with no second alert
    logs.rfc.entries_down = False
    net.wait_until(lambda: relay.database.value(
        "SELECT resolved FROM ct_alerts WHERE kind = 'backlog_growing'") is not None, 90,
        what="the backlog episode resolved")
    assert len([d for d in endpoint.docs("alert") if d["alert"] == "backlog_growing"]) == 1
    assert not [d for d in endpoint.docs("alert") if d["alert"] == "log_stale"]
