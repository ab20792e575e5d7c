"""The Dovecot fixture (pwtest/dovecot.py) does what the migration tests rely on: logins,
TLS with the test CA, master users, OAuth logins checked by a token introspection
endpoint, quota refusal, switched-off capabilities, special-use
folders under configurable names, the doveadm HTTP API, restart and cut connections.
Each feature is checked against a control where the opposite must hold."""

import imaplib
import os
import shutil
import socket
import ssl

import pytest

from pwtest import ca as pw_ca
from pwtest import dovecot as pw_dovecot
from pwtest import mailbox as pw_mailbox
from pwtest import net as pw_net


def caps_after_login(conn):
    typ, data = conn.capability()
    assert typ == "OK"
    return set(data[0].decode().upper().split())


def special_use(conn):
    """{special-use flag: mailbox name (Unicode)} from LIST ... RETURN (SPECIAL-USE)."""
    typ, data = conn._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
    assert typ == "OK"
    typ, lines = conn._untagged_response(typ, data, "LIST")
    out = {}
    for line in lines:
        if not line:
            continue
        flags, _, name = pw_dovecot.parse_list_line(line)
        for f in flags:
            if f not in ("\\HasNoChildren", "\\HasChildren", "\\Noselect",
                         "\\NonExistent", "\\Subscribed"):
                out[f] = name
    return out


def test_login_and_wrong_password(make_dovecot):
    d = make_dovecot("src", users={"alice": "pw-alice", "bob": "pw-bob"})
    c = d.login("alice")
    assert c.select("INBOX")[0] == "OK"
    c.logout()
    c = d.connect()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login("alice", "pw-bob")
    c.shutdown()


def test_tls_imaps_and_starttls_with_test_ca(make_dovecot, workdir):
    d = make_dovecot("src", hostname="imap.src.test")
    c = d.login(mode="imaps")
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    c.logout()
    c = d.connect()
    assert "STARTTLS" in c.capabilities
    c.starttls(ssl_context=d._sni_context())
    c.login("user", "secret")
    c.logout()
    # Control: a client trusting another CA refuses the certificate.
    other = pw_ca.TestCA(os.path.join(workdir, "other-ca"), name="another CA")
    ctx = ssl.create_default_context(cafile=other.cert_path)
    raw = socket.create_connection((d.addr, d.imaps_port), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="imap.src.test")
    raw.close()


def test_no_tls_offers_no_starttls(make_dovecot):
    d = make_dovecot("plain", tls=False)
    c = d.connect()
    assert "STARTTLS" not in c.capabilities
    c.login("user", "secret")
    c.logout()


def test_master_user_logs_in_as_the_user(make_dovecot):
    d = make_dovecot("dst", users={"alice": "pw-alice"}, master_users={"admin": "pw-admin"})
    c = d.login("alice", master=("admin", "pw-admin"))
    assert c.append("INBOX", None, None, b"Subject: by master\r\n\r\nhi\r\n")[0] == "OK"
    c.logout()
    c = d.login("alice")
    c.select("INBOX")
    assert c.search(None, "ALL")[1][0].split() == [b"1"]
    c.logout()
    # Control: the master's name with a wrong password, or the user's own password given
    # for the master login, is refused.
    for pw in ("wrong", "pw-alice"):
        c = d.connect()
        with pytest.raises(imaplib.IMAP4.error):
            c.login("alice*admin", pw)
        c.shutdown()


@pytest.mark.parametrize("mode", ["post", "get"])
def test_oauth2_logins_are_checked_by_the_introspection_endpoint(make_dovecot, mode):
    from pwtest import oauth2 as pw_oauth2
    intro = pw_oauth2.Introspection({"tok-alice": "alice", "tok-old": None}).start()
    try:
        d = make_dovecot("src", users={"alice": "pw-alice", "bob": "pw-bob"},
                         oauth2_introspection_url=intro.url(),
                         oauth2_introspection_mode=mode,
                         # no growing delay after each refusal (anvil's auth penalty)
                         extra_conf="service anvil {\n  unix_listener anvil-auth-penalty "
                                    "{\n    mode = 0\n  }\n}")

        def auth(mech, user, token):
            c = d.connect()
            if mech == "OAUTHBEARER":
                ir = "n,a=%s,\x01auth=Bearer %s\x01\x01" % (user, token)
            else:
                ir = "user=%s\x01auth=Bearer %s\x01\x01" % (user, token)
            try:
                # the first (empty) challenge takes the initial response; an error
                # challenge is answered with the dummy %x01
                return c.authenticate(mech, lambda ch: b"\x01" if ch else ir.encode())[0]
            except imaplib.IMAP4.error as e:
                return str(e)
            finally:
                c.shutdown()
        for mech in ("OAUTHBEARER", "XOAUTH2"):
            assert auth(mech, "alice", "tok-alice") == "OK"
        # controls: an inactive or unknown token, and a valid token for another user,
        # are refused; the password still logs in, a token as the password does not
        assert "AUTHENTICATIONFAILED" in auth("OAUTHBEARER", "alice", "tok-old")
        assert "AUTHENTICATIONFAILED" in auth("XOAUTH2", "alice", "tok-nobody")
        assert "AUTHENTICATIONFAILED" in auth("OAUTHBEARER", "bob", "tok-alice")
        d.login("alice").logout()
        c = d.connect()
        with pytest.raises(imaplib.IMAP4.error):
            c.login("alice", "tok-alice")
        c.shutdown()
        assert {m for m, _ in intro.asked} == {mode.upper()}
        assert set(intro.tokens_asked()) == {"tok-alice", "tok-old", "tok-nobody"}
    finally:
        intro.stop()


def test_quota_full_refuses_append(make_dovecot):
    d = make_dovecot("dst", quota_bytes=60 * 1024)
    c = d.login()
    small = b"Subject: small\r\n\r\n" + b"x" * 1000 + b"\r\n"
    assert c.append("INBOX", None, None, small)[0] == "OK"    # control: room left
    big = b"Subject: big\r\n\r\n" + b"y" * (80 * 1024) + b"\r\n"
    typ, data = c.append("INBOX", None, None, big)
    assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
    assert "QUOTA" in caps_after_login(c)
    c.logout()


def test_capability_switches(make_dovecot):
    full = make_dovecot("full")
    c = full.login()
    caps = caps_after_login(c)
    c.logout()
    assert {"MULTIAPPEND", "LITERAL+", "COMPRESS=DEFLATE", "SPECIAL-USE"} <= caps

    bare = make_dovecot("bare", no_capability=("MULTIAPPEND", "LITERAL+"), compress=False)
    c = bare.connect()
    assert "LITERAL+" not in c.capabilities and "MULTIAPPEND" not in c.capabilities
    c.login("user", "secret")
    caps = caps_after_login(c)
    assert not caps & {"MULTIAPPEND", "LITERAL+", "COMPRESS=DEFLATE"}
    assert "SPECIAL-USE" in caps and "UIDPLUS" in caps
    # COMPRESS is really off, not only unannounced.
    tag = c._new_tag()
    c.send(tag + b" COMPRESS DEFLATE\r\n")
    line = c._get_line()
    while not line.startswith(tag):
        line = c._get_line()
    assert line.split()[1] in (b"BAD", b"NO")
    c.logout()


@pytest.mark.parametrize("preset,expect", [
    ("outlook", {"\\Sent": "Sent Items", "\\Trash": "Deleted Items", "\\Junk": "Junk Email"}),
    ("german", {"\\Sent": "Gesendet", "\\Drafts": "Entw\u00fcrfe", "\\Trash": "Papierkorb"}),
    ("gmail", {"\\All": "[Gmail]/All Mail", "\\Sent": "[Gmail]/Sent Mail",
               "\\Junk": "[Gmail]/Spam"}),
    ("dots", {"\\Sent": "Sent", "\\Archive": "Archive"}),
])
def test_special_use_folders(make_dovecot, preset, expect):
    opts = {"outlook": {"special_use": pw_dovecot.OUTLOOK},
            "german": {"special_use": pw_dovecot.GERMAN},
            "gmail": {"gmail": True},
            "dots": {"separator": "."}}[preset]
    d = make_dovecot("src", **opts)
    c = d.login()
    got = special_use(c)
    for flag, name in expect.items():
        assert got.get(flag) == name, got
    # Subscribed at first login (auto = subscribe).
    subs = [pw_dovecot.parse_list_line(line)[2] for line in c.lsub()[1] if line]
    assert expect["\\Sent"] in subs
    # Control: a name not configured carries no flag.
    assert "Sent" not in got.values() or preset == "dots"
    c.logout()


def test_dot_separator_and_nested_folders(make_dovecot):
    d = make_dovecot("src", separator=".")
    c = d.login()
    assert c.create("Projekte.2024")[0] == "OK"
    line = [x for x in c.list()[1] if x.endswith(b"2024")][0]
    assert b'"." Projekte.2024' in line
    c.logout()


def test_doveadm_http_api(make_dovecot):
    d = make_dovecot("dst", users={"alice": "pw"}, doveadm_http=True)
    status, answer = d.doveadm_http([["mailboxList", {"user": "alice"}, "t1"]])
    assert status == 200
    assert answer[0][0] == "doveadmResponse" and answer[0][2] == "t1"
    assert {"mailbox": "Sent"} in answer[0][1]
    # Control: a wrong API key is refused.
    status, _ = d.doveadm_http([["mailboxList", {"user": "alice"}, "t1"]], api_key="nope")
    assert status == 401


def test_restart_keeps_mail_and_cut_connections(make_dovecot):
    d = make_dovecot("src")
    c = d.login()
    c.append("INBOX", None, None, b"Subject: kept\r\n\r\nbody\r\n")
    c.select("INBOX")
    assert d.cut_connections() >= 1
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        c.noop()
        c.noop()
    port = d.port
    d.restart()
    assert d.port == port
    c = d.login()
    c.select("INBOX")
    assert len(c.search(None, "ALL")[1][0].split()) == 1
    # kick: a logged-in session is disconnected by doveadm.
    d.kick("user")
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        for _ in range(50):
            c.noop()
    d.stop()
    assert not d.running()
    with pytest.raises(OSError):
        socket.create_connection((d.addr, d.port), timeout=2)


# -- the mailbox filler and the fidelity comparison -----------------------------------------

def test_fill_copy_compare_and_controls(make_dovecot):
    src = make_dovecot("src", special_use=pw_dovecot.OUTLOOK)
    dst = make_dovecot("dst", special_use=pw_dovecot.GERMAN, separator=".")
    s, d = src.login(), dst.login()
    info = pw_mailbox.fill(s, count=150, seed=7)
    assert info["messages"] == 150
    folders = pw_mailbox.list_folders(s)
    assert "Projekte/2024/Q1" in folders and "\u65e5\u672c\u8a9e" in folders
    subs = pw_mailbox.list_folders(s, subscribed=True)
    assert "Projekte" in subs and "Projekte/2024/Q1" not in subs
    msgs = [m for f in info["folders"] for m in pw_mailbox.read_folder(s, f)]
    assert len(msgs) == 150
    assert any(m.keywords - {"$Forwarded"} for m in msgs)
    assert any("\\Seen" not in m.flags for m in msgs) and any("\\Flagged" in m.flags
                                                               for m in msgs)
    assert any("\\Draft" in m.flags for m in msgs)
    assert min(m.date for m in msgs) < 1262304000          # before 2010
    sizes = sorted(m.size for m in msgs)
    assert sizes[len(sizes) // 2] < 20000 and sizes[-1] > 100000
    # The exact reference copy, into other special-use names and another separator.
    pw_mailbox.copy_exact(s, d)
    assert pw_mailbox.compare(s, d) == []
    assert "Gesendet" in pw_mailbox.list_folders(d)
    # Controls: each change at the destination is found, once.
    inbox = pw_mailbox.read_folder(d, "INBOX")
    m = inbox[0]
    pw_mailbox.set_flag(d, "INBOX", m.uid, "\\Flagged", "\\Flagged" not in m.flags)
    diffs = pw_mailbox.compare(s, d)
    assert [x.kind for x in diffs] == ["flags"], diffs
    pw_mailbox.set_flag(d, "INBOX", m.uid, "\\Flagged", "\\Flagged" in m.flags)
    pw_mailbox.set_flag(d, "INBOX", m.uid, "Projekt-Y")
    assert [x.kind for x in pw_mailbox.compare(s, d)] == ["keywords"]
    pw_mailbox.set_flag(d, "INBOX", m.uid, "Projekt-Y", False)
    d.unsubscribe('"Projekte"')
    assert [x.kind for x in pw_mailbox.compare(s, d)] == ["subscription"]
    d.subscribe('"Projekte"')
    d.select('"INBOX"')
    d.uid("STORE", str(inbox[1].uid), "+FLAGS", "(\\Deleted)")
    d.expunge()
    d.close()
    diffs = pw_mailbox.compare(s, d)
    assert [x.kind for x in diffs] == ["missing"], diffs
    # The lost message comes back with an added header: its bytes differ (not missing,
    # not extra); a second, exact copy of it is a duplicate.
    gone = inbox[1]
    s.select('"INBOX"', readonly=True)
    typ, data = s.uid("FETCH", "1:*", "(BODY.PEEK[])")
    bodies = [x[1] for x in data if isinstance(x, tuple)]
    s.close()
    body = [b for b in bodies if gone.msgid.encode() in b.split(b"\r\n\r\n", 1)[0]][0]
    altered = body.replace(b"\r\n\r\n", b"\r\nX-TUID: abc\r\n\r\n", 1)
    d.append('"INBOX"', None, None, altered)
    kinds = set(x.kind for x in pw_mailbox.compare(s, d))
    assert "bytes" in kinds and not kinds & {"missing", "extra", "duplicate"}, kinds
    d.append('"INBOX"', None, None, bodies[0])
    kinds = [x.kind for x in pw_mailbox.compare(s, d)]
    assert kinds.count("duplicate") == 1 and "bytes" in kinds, kinds
    s.logout()
    d.logout()


def test_gmail_layout_and_special_use_misplacement(make_dovecot):
    src = make_dovecot("gmail", gmail=True)
    s = src.login()
    info = pw_mailbox.fill(s, count=40, seed=3, gmail=True)
    all_mail = pw_mailbox.read_folder(s, "[Gmail]/All Mail")
    assert len(all_mail) == 40
    labelled = sum(n for f, n in info["per_folder"].items() if f != "[Gmail]/All Mail")
    assert 0 < labelled < 40                      # some archived: in All Mail only
    # A copy that keeps "Sent Items" as a folder of its own is caught as misplaced.
    out = make_dovecot("outlook", special_use=pw_dovecot.OUTLOOK)
    dst = make_dovecot("dst")
    o, d = out.login(), dst.login()
    pw_mailbox.fill(o, count=30, seed=5)
    pw_mailbox.copy_exact(o, d, mapping={"Sent Items": "Sent Items"})
    kinds = [x.kind for x in pw_mailbox.compare(o, d)]
    assert kinds == ["special-use"], kinds


def test_fill_with_a_20mb_message(make_dovecot):
    src = make_dovecot("src")
    s = src.login()
    pw_mailbox.fill(s, count=3, seed=2, large=True)
    assert max(m.size for m in pw_mailbox.read_folder(s, "INBOX")) >= 20 * 1024 * 1024
    s.logout()


def test_doveadm_http_backup_with_imapc(make_dovecot):
    """doveadm backup -R with imapc through the HTTP API (imapc settings in the
    destination's configuration) copies a filled mailbox exactly but for special use."""
    src = make_dovecot("src", users={"alice": "pw-a"}, special_use=pw_dovecot.OUTLOOK)
    imapc = ("imapc_host = 127.0.0.1\nimapc_port = %d\nimapc_user = alice\n"
             "imapc_password = pw-a\nimapc_features = rfc822.size fetch-headers\n" % src.port)
    dst = make_dovecot("dst", users={"bob": "pw-b"}, doveadm_http=True, extra_conf=imapc)
    s = src.login("alice")
    pw_mailbox.fill(s, count=40, seed=11)
    status, answer = dst.doveadm_http([["backup", {"user": "bob", "reverseSync": True,
                                                   "destination": ["imapc:"]}, "b1"]])
    assert status == 200 and answer[0][0] == "doveadmResponse", answer
    d = dst.login("bob")
    kinds = pw_mailbox.summary(pw_mailbox.compare(s, d))
    assert {k: v for k, v in kinds.items() if v} == {"special-use": 3}, kinds


def test_instance_dies_with_the_test_process(workdir):
    """A Dovecot whose test process is killed (no stop()) goes away by itself."""
    import subprocess
    import sys
    import time
    code = ("import sys, time; sys.path.insert(0, %r)\n"
            "from pwtest import dovecot\n"
            "d = dovecot.Dovecot(%r).start()\n"
            "print(d.proc.pid, d.base_dir, flush=True)\n"
            "time.sleep(600)\n" % (os.path.dirname(os.path.abspath(__file__)),
                                   os.path.join(workdir, "orphan")))
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid, base_dir = p.stdout.readline().split()
    pid = int(pid)
    assert pw_net.pid_alive(pid)
    p.kill()
    p.wait()
    deadline = time.monotonic() + 15
    while pw_net.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pw_net.pid_alive(pid)
    shutil.rmtree(base_dir, ignore_errors=True)
