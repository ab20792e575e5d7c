"""The relay fixture: config file per the contract, start/wait/stop/kill, CLI runs, SMTP
sending and log parsing, exercised with a stand-in daemon (a Python SMTP sink that reads
the same config) so the machinery is proven independently of the relay's state."""

import configparser
import os
import stat
import sys
import textwrap

from pwtest import relay as pw_relay

STAND_IN = textwrap.dedent('''\
    #!{python}
    import configparser, json, os, signal, sys, time
    sys.path.insert(0, {pwtest_dir!r})
    from pwtest import hostile
    args = sys.argv[1:]
    assert args[0] == "-c"
    cp = configparser.ConfigParser()
    cp.read(args[1])
    cmd = args[2:]
    if cmd == ["serve"]:
        host, port = cp["relay"]["listen"].rsplit(":", 1)
        srv = hostile.SmtpServer(host, int(port), mode="notls").start()
        if cp["api"].get("listen"):     # the fixture waits for the API port as well
            import socket
            ahost, aport = cp["api"]["listen"].rsplit(":", 1)
            api = socket.create_server((ahost, int(aport)))
        print("info: event=start asan=%s" % os.environ.get("ASAN_OPTIONS"), file=sys.stderr,
              flush=True)
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        n = 0
        while True:
            time.sleep(0.05)
            if len(srv.messages) > n:
                m = srv.messages[n]
                n += 1
                print('info: event=delivery id=Q%d rcpt=%s mx=mx1.example.test '
                      'addr=127.0.0.2 tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 dane=none '
                      'outcome=delivered reason="250 2.0.0 \\\\"ok\\\\" queued"'
                      % (n, m.rcpts[0]), file=sys.stderr, flush=True)
    elif cmd[:2] == ["queue", "list"]:
        print(json.dumps([{{"id": "Q1", "sender": "a@other.test", "received": 1,
                           "size": 10, "recipients": []}}]))
    elif cmd[:1] == ["user"]:
        print(" ".join(cmd))
        sys.exit(0 if len(cmd) >= 3 else 2)
    else:
        sys.exit(2)
''')


def _stand_in(tmp_path, monkeypatch):
    p = tmp_path / "postwarden"
    p.write_text(STAND_IN.format(python=sys.executable,
                                 pwtest_dir=os.path.dirname(os.path.abspath(__file__))))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("POSTWARDEN", str(p))
    return str(p)


def test_binary_defaults_to_asan_build(monkeypatch):
    monkeypatch.delenv("POSTWARDEN", raising=False)
    assert pw_relay.binary() == os.path.join(pw_relay.REPO_ROOT, "build", "asan", "postwarden")
    assert os.path.isfile(os.path.join(pw_relay.REPO_ROOT, "Makefile"))
    monkeypatch.setenv("POSTWARDEN", "build/rel/postwarden")
    assert pw_relay.binary() == os.path.join(pw_relay.REPO_ROOT, "build", "rel", "postwarden")


def test_config_follows_the_contract(make_relay, knot, mx_port, tmp_path, monkeypatch):
    _stand_in(tmp_path, monkeypatch)
    r = make_relay(start=False, guarantee_language="de",
                   relay_trusted_networks="127.0.0.1/32", relay_notify_relay="127.0.0.4:25")
    cp = configparser.ConfigParser()
    cp.read(r.conf_path)
    assert cp["server"]["state_dir"] == r.state_dir and os.path.isdir(r.state_dir)
    assert cp["server"]["hostname"] == "relay.example.test"
    assert cp["relay"]["listen"] == "127.0.0.1:%d" % r.port
    assert cp["relay"]["remote_port"] == str(mx_port)
    assert cp["relay"]["trusted_networks"] == "127.0.0.1/32"
    assert cp["relay"]["notify_relay"] == "127.0.0.4:25"
    assert cp["dns"]["unbound_config"] == knot.unbound_conf
    assert cp["guarantee"]["language"] == "de"


def test_start_send_cli_log_stop(make_relay, tmp_path, monkeypatch):
    _stand_in(tmp_path, monkeypatch)
    r = make_relay()
    assert r.alive()
    assert r.send("a@other.test", ["b@example.test"],
                  pw_relay.make_message("a@other.test", ["b@example.test"])) == {}
    res = r.pw("user", "add", "a@other.test", "--alias", "b@other.test")
    assert res.returncode == 0 and res.stdout.strip() == "user add a@other.test --alias b@other.test"
    assert r.pw("user").returncode == 2
    assert r.queue_ids() == ["Q1"]
    from pwtest import net
    net.wait_until(lambda: r.deliveries(), 10, what="delivery log line")
    d = r.deliveries()[0]
    assert d["rcpt"] == "b@example.test" and d["outcome"] == "delivered"
    assert d["reason"] == '250 2.0.0 "ok" queued' and d["tls"] == "TLSv1.3"
    assert "detect_leaks=0" in r.log()
    assert r.stop() == 0 and not r.alive()


def test_kill_and_restart(make_relay, tmp_path, monkeypatch):
    _stand_in(tmp_path, monkeypatch)
    r = make_relay()
    r.kill()
    assert not r.alive()
    r.start()
    assert r.alive() and r.starts == 2
    assert r.log().count("==== start") == 2


def test_parse_kv():
    line = ('2026-01-01T00:00:00Z info: event=delivery id=ABC rcpt=x@y.test tls=none '
            'reason="TLS is required, but \\"STARTTLS\\" was not offered" outcome=held')
    kv = pw_relay.parse_kv(line)
    assert kv["event"] == "delivery" and kv["id"] == "ABC" and kv["outcome"] == "held"
    assert kv["reason"] == 'TLS is required, but "STARTTLS" was not offered'
