"""Several nodes on one PostgreSQL database: two `postwarden serve` with their own node
names and state_dirs share a fresh database. Mail goes through both to a real Postfix MX,
each node delivering what its own spool holds; `queue release` and `queue delete` typed
with one node's configuration reach a message held on the other, which carries them out
within 2 seconds; the lease "keydir" is held by one node at a time and taken over after
its holder is killed or cut off from the database (a TCP forwarder the test can silence).
"""

import os
import socket
import time

import pytest

from pwtest import net
from pwtest import nodes as pw_nodes
from pwtest.mailcheck import message, rcpt_states, sender_addr, uniq
from pwtest.relay import parse_kv

LEASE_TAKEOVER = 30     # the issue's bound: another node takes over within 30 s


def _keydir_lease(relay, event):
    """The relay's log lines of a lease event for the key directory's lease (serve holds
    others too, such as the TLS reports')."""
    return [l for l in relay.log_lines(event) if "lease=keydir" in l]


@pytest.fixture
def two_nodes(make_relay, postgres):
    """Factory: two_nodes(**options) -> (A, B), started, on one fresh database."""
    def make(start=True, a_options=None, **options):
        url, pwfile = pw_nodes.shared_database(postgres)
        common = dict(database_url=url, database_password_file=pwfile, **options)
        a = make_relay(start=start, server_node="node-a", **dict(common, **(a_options or {})))
        b = make_relay(start=start, server_node="node-b", **common)
        a.db_name = b.db_name = url.rsplit("/", 1)[1]
        return a, b
    return make


def _user(relay, addr, guarantee):
    relay.pw("user", "add", addr, check=True)
    relay.pw("user", "guarantee", addr, guarantee, check=True)


def _received_ids(relay):
    return {parse_kv(l)["id"] for l in relay.log_lines("smtpd_received")}


def _sql(postgres, relay, sql):
    return postgres.psql(sql, tcp=True, dbname=relay.db_name, password=postgres.password)


def _held_on(relay, sender, rcpt, timeout=60):
    q = relay.wait_queue(lambda q: any(x["sender"] == sender and
                                       rcpt_states(x).get(rcpt) == "held" for x in q),
                         timeout=timeout, what="held recipient")
    return [x for x in q if x["sender"] == sender][0]


def _hold_on(sender_node, seen_from, zones, smtp_server, local, subject):
    """A message sent through sender_node to a receiver without STARTTLS, from a sender
    with the guarantee on: held there. (sender, rcpt, receiver, its queue entry as
    seen_from lists it)."""
    srv = smtp_server("notls")
    dom = zones.mx("example.test", uniq(local), srv.addr)
    zones.publish()
    s, r = sender_addr(), local + "@" + dom
    _user(seen_from, s, "on")
    sender_node.send(s, [r], message(s, [r], subject))
    return s, r, srv, _held_on(seen_from, s, r)


def test_mail_through_both_nodes_each_delivers_its_own(two_nodes, zones, pf_tls, postgres):
    a, b = two_nodes()
    dom = zones.mx("example.test", uniq("nodes"), pf_tls.addr)
    zones.publish()
    s = sender_addr()
    _user(a, s, "off")
    rcpt = "both@" + dom
    for i in range(4):
        a.send(s, [rcpt], message(s, [rcpt], "via a %d" % i))
        b.send(s, [rcpt], message(s, [rcpt], "via b %d" % i))
    pf_tls.wait_for_message(rcpt, timeout=60, count=8)
    a.wait_queue_empty()
    ids_a, ids_b = _received_ids(a), _received_ids(b)
    assert len(ids_a) == 4 and len(ids_b) == 4 and not ids_a & ids_b
    # each node delivered exactly what its own spool held
    assert {d["id"] for d in a.deliveries()} == ids_a
    assert {d["id"] for d in b.deliveries()} == ids_b
    time.sleep(2)
    assert len(pf_tls.messages(rcpt)) == 8
    # both nodes keep their row in nodes: pid, version, a heartbeat of the last seconds
    rows = _sql(postgres, a, "SELECT name, pid, version <> '', "
                "extract(epoch from now())::bigint - heartbeat FROM nodes ORDER BY name")
    got = [r.split("|") for r in rows.splitlines()]
    assert [g[0] for g in got] == ["node-a", "node-b"]
    assert [int(g[1]) for g in got] == [a.proc.pid, b.proc.pid]
    assert all(g[2] == "t" and 0 <= int(g[3]) <= 10 for g in got), got
    # what `postwarden status` makes of them, from either node
    st = a.pw_json("status")
    assert [(n["name"], n["stale"]) for n in st["nodes"]] == [("node-a", False),
                                                               ("node-b", False)]
    leases = {l["name"]: l for l in st["leases"]}
    assert leases["keydir"]["holder"] in ("node-a", "node-b")
    assert not leases["keydir"]["expired"]


def test_release_typed_on_a_is_carried_out_by_b(two_nodes, zones, smtp_server, postgres):
    a, b = two_nodes()
    s, r, srv, entry = _hold_on(b, a, zones, smtp_server, "held", "held on b")
    # entry is what node A's command line sees
    assert entry["node"] == "node-b"
    assert not srv.body_received
    listing = a.pw("queue", "list", check=True).stdout
    assert "node node-b" in listing
    t0 = time.monotonic()
    out = a.pw("queue", "release", entry["id"], check=True)
    assert "released" in out.stdout
    m = srv.wait_for_messages(1, timeout=10)[0]
    took = time.monotonic() - t0
    print("\nrelease typed on node-a, delivered by node-b after %.2f s" % took)
    assert took <= 2.0, took
    assert b"Subject: held on b" in m.data and m.rcpts == [r]
    # the sink stores before it answers: node-b logs the delivery a moment later
    net.wait_until(lambda: entry["id"] in {d["id"] for d in b.deliveries()
                                           if d.get("outcome") == "delivered"}, 10,
                   interval=0.1, what="node-b's delivery line")
    assert not [d for d in a.deliveries() if d["id"] == entry["id"]]
    b.wait_queue_empty()


def test_delete_typed_on_a_is_carried_out_by_b(two_nodes, zones, smtp_server):
    a, b = two_nodes()
    s, r, srv, entry = _hold_on(b, a, zones, smtp_server, "gone", "delete me")
    qid = entry["id"]
    spool_b = os.path.join(b.state_dir, "queue", qid)
    assert os.path.exists(spool_b)
    assert not os.path.exists(os.path.join(a.state_dir, "queue", qid))
    t0 = time.monotonic()
    out = a.pw("queue", "delete", qid, check=True)
    assert "node node-b" in out.stdout
    net.wait_until(lambda: not os.path.exists(spool_b), 5, interval=0.05,
                   what="node-b to remove its spool file")
    took = time.monotonic() - t0
    print("\ndelete typed on node-a, carried out by node-b after %.2f s" % took)
    assert took <= 2.0, took
    net.wait_until(lambda: qid not in a.queue_ids(), 3, interval=0.1, what="rows gone")
    assert any("requested=elsewhere" in l and qid in l for l in b.log_lines("queue_delete"))
    time.sleep(2)
    assert not srv.body_received          # deleted, never delivered
    # control: a message of node A's own spool is deleted by the command at once
    a.send(s, [r], message(s, [r], "local"))
    qa = _held_on(a, s, r)["id"]
    assert os.path.exists(os.path.join(a.state_dir, "queue", qa))
    out = a.pw("queue", "delete", qa, check=True)
    assert not os.path.exists(os.path.join(a.state_dir, "queue", qa))
    assert qa not in a.queue_ids()
    # node-b is gone (its disk lost): a plain delete waits for it, --force removes the rows
    b.send(s, [r], message(s, [r], "stranded"))
    qb = _held_on(a, s, r)["id"]
    b.stop()
    a.pw("queue", "delete", qb, check=True)
    time.sleep(2.5)
    assert [x["recipients"][0]["state"] for x in a.queue() if x["id"] == qb] == ["deleted"]
    a.pw("queue", "delete", "--force", qb, check=True)
    assert qb not in a.queue_ids()


# -- the lease "keydir" ----------------------------------------------------------------

def _holder(postgres, relay):
    return _sql(postgres, relay, "SELECT holder FROM leases WHERE name = 'keydir'")


def _passes(relay):
    """Times of the key directory passes the relay started (it acted)."""
    return [t for t, _ in pw_nodes.events(relay, "keydir_pass")]


def test_keydir_lease_taken_over_after_sigkill(two_nodes, postgres):
    a, b = two_nodes(start=False)
    a.start()
    net.wait_until(lambda: _keydir_lease(a, "lease_acquired"), 10,
                   what="node-a to take the lease")
    b.start()
    net.wait_until(lambda: b.log_lines("keydir_standby"), 10, what="node-b to stand by")
    net.wait_until(lambda: _passes(a), 10, what="a pass of node-a")
    assert _holder(postgres, a) == "node-a"
    time.sleep(5)
    assert not _keydir_lease(b, "lease_acquired") and not _passes(b)   # one node acts
    t_kill = time.time()
    a.kill()
    net.wait_until(lambda: _keydir_lease(b, "lease_acquired"), LEASE_TAKEOVER + 5, interval=0.2,
                   what="node-b to take the lease over")
    took = time.time() - t_kill
    print("\nlease keydir: node-b took over %.1f s after SIGKILL of node-a" % took)
    assert took <= LEASE_TAKEOVER, took
    assert _holder(postgres, b) == "node-b"
    net.wait_until(lambda: _passes(b), 5, what="node-b to act")
    # the restarted node-a does not take it back while node-b holds it
    a.start()
    time.sleep(6)
    assert _holder(postgres, b) == "node-b"
    assert len(_keydir_lease(a, "lease_acquired")) == 1
    # a clean stop releases it: node-a takes it within a renewal interval or two
    t_stop = time.time()
    b.stop()
    net.wait_until(lambda: len(_keydir_lease(a, "lease_acquired")) == 2, 15, interval=0.2,
                   what="node-a to take the released lease")
    print("lease keydir: released by a clean stop, taken by node-a after %.1f s" %
          (time.time() - t_stop))
    assert _holder(postgres, a) == "node-a"


def _banner_within(relay, timeout):
    """Does the relay send its SMTP greeting within timeout seconds?"""
    try:
        with socket.create_connection((relay.listen_addr, relay.port), timeout=timeout) as c:
            return c.recv(100).startswith(b"220")
    except OSError:
        return False


def test_keydir_lease_network_cut_never_two_holders(two_nodes, postgres):
    """node-a reaches PostgreSQL through a forwarder; the test silences it. node-a must stop
    acting before its lease can expire; node-b takes over; never both at once."""
    fwd = pw_nodes.Forwarder(postgres.host, postgres.port)
    try:
        url, pwfile = pw_nodes.shared_database(postgres)
        a, b = two_nodes(start=False)
        # two_nodes made a database of its own: point both at this one, node-a via fwd
        a.set("database_url", url.replace(":%d/" % postgres.port, ":%d/" % fwd.port))
        b.set("database_url", url)
        a.db_name = b.db_name = url.rsplit("/", 1)[1]
        a.start()
        net.wait_until(lambda: _keydir_lease(a, "lease_acquired"), 10, what="node-a's lease")
        b.start()
        net.wait_until(lambda: _passes(a), 10, what="a pass of node-a")
        assert _holder(postgres, b) == "node-a"
        t_cut = time.time()
        fwd.cut()
        banners = []    # does node-a's loop still answer SMTP during the cut?
        deadline = time.time() + LEASE_TAKEOVER + 5
        while not _keydir_lease(b, "lease_acquired") and time.time() < deadline:
            banners.append(_banner_within(a, 1.0))
            time.sleep(0.5)
        assert _keydir_lease(b, "lease_acquired"), "node-b did not take the lease over"
        took = time.time() - t_cut
        print("\nnetwork cut: node-b took the lease over %.1f s after the cut; node-a "
              "answered %d of %d SMTP connections within 1 s during the cut" % (
                  took, sum(banners), len(banners)))
        assert took <= LEASE_TAKEOVER, took
        net.wait_until(lambda: _passes(b), 5, what="node-b to act")
        time.sleep(3)
        t_heal = time.time()
        fwd.heal()
        net.wait_until(lambda: _keydir_lease(a, "lease_lost"), 20, interval=0.2,
                       what="node-a to notice it lost the lease")
        t_lost = pw_nodes.stamp(_keydir_lease(a, "lease_lost")[0])
        print("node-a logged lease_lost %.0f s after the cut (%.0f s after the network "
              "came back)" % (t_lost - t_cut, t_lost - t_heal))
        time.sleep(5)
        t_b = pw_nodes.stamp(_keydir_lease(b, "lease_acquired")[0])
        # node-a acted last before the cut; nothing of node-a after node-b took over
        assert all(t <= t_cut + 1 for t in _passes(a)), (_passes(a), t_cut)
        assert all(t < t_b for t in _passes(a)), (_passes(a), t_b)
        assert _holder(postgres, b) == "node-b"
        assert len(_keydir_lease(a, "lease_acquired")) == 1
        lost = _keydir_lease(a, "lease_lost")[0]
        assert "holder=node-b" in lost or "error=" in lost
    finally:
        fwd.stop()


# -- no double DNS update ---------------------------------------------------------------

@pytest.fixture
def knot_primary(workdir):
    """A Knot primary for keys.test that takes the key directory's TSIG-signed updates."""
    from pwtest import logs as pw_logs
    from pwtest.keyzone import KeyZone
    z = KeyZone(os.path.join(workdir, "keyzone"), zone="keys.test", mode="nsec")
    pw_logs.register("keyzone", z.log_path)
    try:
        z.start()
        yield z
    finally:
        z.stop()
        pw_logs.unregister("keyzone")


def _mark_names(postgres, relay, first, n):
    """Store n keys directly (as publish stores them): the trigger marks their names
    pending, and only the timer of serve publishes them. Returns {(owner, type): [data]}."""
    from pwtest import keys as pk
    want, values = {}, []
    for i in range(first, first + n):
        addr = "u%d@keys.test" % i
        owner = pk.dane_owner(addr)
        data = os.urandom(300)
        want[(owner, "OPENPGPKEY")] = [data]
        values.append("((SELECT id FROM accounts LIMIT 1), '%s', 'openpgp', 'F%d', 'EDDSA', "
                      "255, 0, 0, 0, '\\x%s'::bytea, 61, '%s')" % (addr, i, data.hex(), owner))
    _sql(postgres, relay, "INSERT INTO keydir_keys(account_id, addr, kind, fingerprint, "
         "algorithm, bits, created, expires, published, data, rrtype, owner) VALUES " +
         ", ".join(values))
    return want


def _updated_names(relay):
    return sum(int(parse_kv(l)["names"]) for l in relay.log_lines("keydir_update"))


def test_one_dns_update_per_name_across_nodes_and_takeover(two_nodes, postgres, knot_primary):
    """Names marked pending while two nodes run are published by the lease holder alone,
    each once; after the holder is killed, the new holder publishes the next ones."""
    kz = knot_primary
    opts = dict(kz.keydir_options(), keydir_retry_interval="10s")
    a, b = two_nodes(start=False, **opts)
    a.start()
    net.wait_until(lambda: _keydir_lease(a, "lease_acquired"), 10, what="node-a's lease")
    b.start()
    a.pw("user", "add", "many@keys.test", check=True)
    want = _mark_names(postgres, a, 0, 30)
    assert kz.wait_records(want, timeout=30) == want
    time.sleep(12)          # one more pass of each node's timer
    assert _updated_names(a) == 30 and _updated_names(b) == 0
    assert _sql(postgres, a, "SELECT count(*) FROM keydir_pending") == "0"
    # the holder dies; the other node takes over and publishes what is marked next
    a.kill()
    net.wait_until(lambda: _keydir_lease(b, "lease_acquired"), LEASE_TAKEOVER + 5, interval=0.2,
                   what="node-b to take the lease over")
    more = _mark_names(postgres, b, 30, 10)
    want.update(more)
    assert kz.wait_records(want, timeout=30) == want
    time.sleep(12)
    assert _updated_names(a) == 30 and _updated_names(b) == 10
    # what Knot saw: one update message per keydir_update line, none twice
    sent = len(a.log_lines("keydir_update")) + len(b.log_lines("keydir_update"))
    ddns = [l for l in open(kz.log_path).read().splitlines() if "DDNS, finished" in l]
    print("\nno double update: node-a %d names, node-b %d names; %d update messages sent, "
          "Knot finished %d" % (_updated_names(a), _updated_names(b), sent, len(ddns)))
    assert len(ddns) == sent


def test_rows_lost_by_the_server_are_indexed_again_after_reconnect(two_nodes, zones, smtp_server,
                                                                     postgres):
    """A failover to a standby that lagged takes back rows the node had committed. Here the
    loss is made by hand (the rows deleted behind the node's back) and the server restarted:
    once the node's connection is back it indexes its spool again, and the held message is
    in the queue once more, with its recipient held again at the next attempt. Control:
    before the restart the rows stay gone (nothing re-indexes without a reconnect)."""
    a, b = two_nodes()
    qid = _hold_on(a, a, zones, smtp_server, "lost", "rows lost")[3]["id"]
    _sql(postgres, a, "DELETE FROM messages WHERE id = '%s'" % qid)
    time.sleep(3)
    assert qid not in {x["id"] for x in a.queue()}
    postgres.restart("immediate")
    net.wait_until(lambda: a.log_lines("queue_reindex"), 60, what="node-a's re-index")
    entry = a.wait_queue(lambda q: any(x["id"] == qid for x in q), timeout=30,
                         what="the message indexed again")
    assert [x for x in entry if x["id"] == qid][0]["node"] == "node-a"
    assert any(parse_kv(l).get("id") == qid for l in a.log_lines("queue_recovered"))
    assert not b.log_lines("queue_recovered")      # node-b's spool holds nothing of it


# -- the CT monitor: one node per log ------------------------------------------------------

def test_ct_logs_followed_by_one_node_and_taken_over_after_sigkill(two_nodes, workdir):
    """Each CT log is followed under a lease of its own: one node reads it; after that
    node is killed, the other takes over within the lease's bound and goes on from the
    stored position (the entry added meanwhile is found once)."""
    from pwtest.ctlog_server import CTTestLogs
    logs = CTTestLogs(os.path.join(workdir, "ct"), names=("www.example.test",),
                      filler=10).start()
    try:
        a, b = two_nodes(start=False, ctmon_log_list=logs.log_list_path,
                         ctmon_watch=".example.test", ctmon_allow_private="on",
                         ctmon_start="backfill", ctmon_interval="1s")
        a.start()
        net.wait_until(lambda: len(a.log_lines("ct_round")) >= 2, 20, what="node-a's rounds")
        b.start()
        time.sleep(4)
        assert a.log_lines("ct_round") and not b.log_lines("ct_round")
        assert len(a.pw_json("ct", "list")) == 2
        t_kill = time.time()
        a.kill()
        logs.add(logs.ca.issue(["late.example.test"]))
        logs.publish()
        net.wait_until(lambda: b.log_lines("ct_round"), LEASE_TAKEOVER + 5, interval=0.2,
                       what="node-b to follow the logs")
        took = time.time() - t_kill
        print("\nct logs: node-b followed them %.1f s after SIGKILL of node-a" % took)
        assert took <= LEASE_TAKEOVER + 2, took
        net.wait_until(lambda: len(b.pw_json("ct", "list")) == 3, 10,
                       what="the new certificate found by node-b")
        names = sorted(f["names"] for f in b.pw_json("ct", "list"))
        assert names == ["late.example.test", "www.example.test", "www.example.test"]
    finally:
        logs.stop()
