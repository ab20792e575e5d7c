"""postwarden migrate mail between two real Dovecot 2.3 instances on loopback.

The source has what a real mailbox has: Outlook's special-use names ("Sent Items" must land
in the destination's Sent), nested and non-ASCII folders, subscriptions, custom keywords,
old INTERNALDATEs, 8-bit and large messages. After a copy every folder is compared over
IMAP: message bytes, flags and keywords, INTERNALDATE and subscriptions, 0 differences.
A second run copies nothing; a run after connections were cut completes the copy with no
duplicate; wrong passwords, a full destination and a folder that cannot be opened are
reported with what to do; neither the source address nor the passwords are stored.
"""

import imaplib
import json
import os
import re
import subprocess
import threading
import time

import pytest

from pwtest import dovecot, mailbox, relay
from pwtest.secrets import any_file_holds, secrets_found

SRC_USER, SRC_PW = "alice.old", "0ld-Pa55word!"
DST_USER, DST_PW = "alice", "n3w-Pa55word!"
HOST = "imap.example.test"


def conf(workdir, test_ca, extra=""):
    path = os.path.join(workdir, "pw.conf")
    with open(path, "w") as f:
        f.write("[server]\nstate_dir = %s/state\n\n[migrate]\nca_file = %s\n"
                "hosts = %s=127.0.0.1\nconnections = 3\n%s" % (workdir, test_ca.cert_path,
                                                               HOST, extra))
        if "allow_private" not in extra:
            f.write("allow_private = on\n")
    return path


def migrate(cfg, src, dst, *more, src_pw=SRC_PW, dst_pw=DST_PW, background=False,
            src_port=None):
    """Run migrate mail with the passwords on descriptors; the parsed last JSON line."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, src_pw.encode() + b"\n")
    os.write(w2, dst_pw.encode() + b"\n")
    os.close(w1)
    os.close(w2)
    cmd = [relay.binary(), "-c", cfg, "migrate", "mail",
           "--from", "imaps://%s:%d" % (HOST, src_port or src.imaps_port), "--from-user", SRC_USER,
           "--to", "imaps://%s:%d" % (HOST, dst.imaps_port), "--to-user", DST_USER,
           "--password-fd", str(r1), "--to-password-fd", str(r2), "--json"] + list(more)
    p = subprocess.Popen(cmd, pass_fds=(r1, r2), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=relay.daemon_env())
    os.close(r1)
    os.close(r2)
    if background:
        return p
    return finish(p)


def finish(p):
    out, err = p.communicate(timeout=600)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    done = lines[-1] if lines and lines[-1].get("event") == "done" else None
    return p.returncode, done, lines, err


def fill(d, n_inbox=40, big=0):
    """A realistic small mailbox at d for SRC_USER."""
    m = d.login(SRC_USER, SRC_PW)
    folders = ["Work", "Work/Projects", "Work/Projects/2019", dovecot.utf7_encode("Reisen ü"),
               dovecot.utf7_encode("日本語"), "A&-B"]
    for f in folders:
        m.create('"%s"' % f)
    m.subscribe('"Work/Projects"')
    m.subscribe('"%s"' % dovecot.utf7_encode("日本語"))
    dates = ['"01-Jan-1999 10:00:00 +0100"', '"29-Feb-2004 23:59:59 -0500"',
             '"15-Jul-2020 08:30:00 +0000"']
    for i in range(n_inbox):
        flags = ["()", "(\\Seen)", "(\\Seen \\Answered $Forwarded)", "(\\Flagged Project_X)",
                 "($Label1 $Junk custom-kw)"][i % 5]
        body = ("Message-ID: <inbox-%d@example.org>\r\nFrom: a@example.org\r\n"
                "Subject: message %d\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\nGr\u00fc\u00dfe %d\r\n" % (i, i, i))
        m.append("INBOX", flags, dates[i % 3], body.encode())
    m.append('"Sent Items"', "(\\Seen)", dates[0],
             b"Message-ID: <sent-1@example.org>\r\nSubject: sent\r\n\r\nsent\r\n")
    m.append('"Deleted Items"', "(\\Seen \\Deleted)", dates[1],
             b"Message-ID: <del-1@example.org>\r\n\r\ntrash\r\n")
    m.append('"Work/Projects/2019"', "(kw1 kw2)", dates[2],
             b"Subject: no message id\r\n\r\nsame\r\n")
    # two identical messages: both must arrive, once each
    m.append('"Work/Projects/2019"', "(kw1 kw2)", dates[2],
             b"Subject: no message id\r\n\r\nsame\r\n")
    m.append('"%s"' % dovecot.utf7_encode("日本語"), "()", dates[0],
             "Message-ID: <jp@example.org>\r\n\r\n\u65e5\u672c\r\n".encode())
    if big:
        blob = b"Message-ID: <big@example.org>\r\nSubject: big\r\n\r\n" + \
            (b"x" * 998 + b"\r\n") * (big // 1000)
        m.append('"Work"', "(\\Seen)", dates[1], blob)
    m.logout()


def snapshot(d, user, pw, mapping=None):
    """{folder: sorted [(bytes, flags, internaldate)]} and the set of subscribed names."""
    m = d.login(user, pw)
    out = {}
    typ, lines = m.list()
    subs = set()
    for line in m.lsub()[1]:
        if line:
            subs.add(dovecot.parse_list_line(line)[2])
    for line in lines:
        flags, sep, name = dovecot.parse_list_line(line)
        if "\\Noselect" in flags or "\\NonExistent" in flags:
            continue
        typ, count = m.select('"%s"' % dovecot.utf7_encode(name), readonly=True)
        key = mapping.get(name, name) if mapping else name
        out.setdefault(key, [])
        if int(count[0]) == 0:
            continue
        typ, data = m.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        msgs = []
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta = item[0].decode()
            fl = re.search(r"FLAGS \(([^)]*)\)", meta).group(1).split()
            fl = tuple(sorted(f for f in fl if f != "\\Recent"))
            date = imaplib.Internaldate2tuple(item[0])
            msgs.append((item[1], fl, time.mktime(date)))
        out[key].extend(msgs)
        out[key].sort()
    m.logout()
    return out, subs


OUTLOOK_TO_DEFAULT = {"Sent Items": "Sent", "Deleted Items": "Trash", "Junk Email": "Junk"}


def assert_same(src, dst):
    s, s_subs = snapshot(src, SRC_USER, SRC_PW, OUTLOOK_TO_DEFAULT)
    d, d_subs = snapshot(dst, DST_USER, DST_PW)
    assert sum(len(v) for v in s.values()) > 0
    for folder, msgs in s.items():
        assert folder in d, "folder %r missing at the destination" % folder
        assert len(d[folder]) == len(msgs), "folder %r: %d messages, expected %d" % (
            folder, len(d[folder]), len(msgs))
        for a, b in zip(msgs, d[folder]):
            assert a == b, "folder %r differs: %r vs %r" % (folder, a[1:], b[1:])
    mapped = {OUTLOOK_TO_DEFAULT.get(x, x) for x in s_subs}
    assert mapped <= d_subs, "subscriptions lost: %r" % (mapped - d_subs)
    return s


def test_copy_is_exact_and_a_second_run_copies_nothing(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, big=20 * 1000 * 1000)
    cfg = conf(workdir, test_ca)
    # the source is on loopback, where postwarden does not compress unless told to: the
    # first run goes through COMPRESS=DEFLATE, the second without
    rc, done, lines, err = migrate(cfg, src, dst, "--compress")
    assert rc == 0, err
    assert done["state"] == "done" and done["failed"] == 0
    assert any(l.get("event") == "progress" for l in lines)
    snap = assert_same(src, dst)
    total = sum(len(v) for v in snap.values())
    assert done["messages_copied"] == total
    by_name = {f["folder"]: f for f in done["folders"]}
    assert by_name["Sent Items"]["destination"] == "Sent"
    assert by_name["Deleted Items"]["destination"] == "Trash"
    # the same job again, and a new job: nothing copied, nothing duplicated
    rc, again, _, err = migrate(cfg, src, dst, "--job", str(done["job"]))
    assert rc == 0, err
    assert again["messages_copied"] == 0
    rc, fresh, _, err = migrate(cfg, src, dst)
    assert rc == 0, err
    assert fresh["messages_copied"] == 0
    assert sum(f["already_there"] for f in fresh["folders"]) == total
    assert_same(src, dst)
    # a new message at the source: the delta run copies exactly that one
    m = src.login(SRC_USER, SRC_PW)
    m.append("INBOX", "(\\Seen late)", None, b"Message-ID: <late@example.org>\r\n\r\nlate\r\n")
    m.logout()
    rc, delta, _, err = migrate(cfg, src, dst, "--job", str(done["job"]))
    assert rc == 0 and delta["messages_copied"] == 1, err
    assert_same(src, dst)


def test_without_multiappend_literal_plus_and_compress(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK,
                  compress=False, no_capability=("MULTIAPPEND", "LITERAL+"))
    dst = dovecots("dst", users={DST_USER: DST_PW}, compress=False,
                  no_capability=("MULTIAPPEND", "LITERAL+"))
    assert "MULTIAPPEND" not in dst.capability() and "LITERAL+" not in dst.capability()
    fill(src, n_inbox=15)
    rc, done, _, err = migrate(conf(workdir, test_ca), src, dst)
    assert rc == 0, err
    assert_same(src, dst)


def test_wrong_password_says_what_to_do(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW})
    dst = dovecots("dst", users={DST_USER: DST_PW})
    cfg = conf(workdir, test_ca)
    rc, done, _, err = migrate(cfg, src, dst, src_pw="wrong")
    assert rc == 1
    assert done["state"] == "failed"
    assert "old provider" in done["error"] and "app password" in done["error"]
    rc, done, _, err = migrate(cfg, src, dst, dst_pw="wrong")
    assert rc == 1 and "destination" in done["error"]
    # control: the right passwords work
    rc, done, _, err = migrate(cfg, src, dst)
    assert rc == 0, err


def test_source_on_a_private_address_is_refused_by_default(dovecots, workdir, test_ca):
    """A migration is done on a user's behalf: an old provider on loopback (here) or any
    private address is refused unless [migrate] allow_private is on; the destination, the
    provider's own server, is not checked."""
    src = dovecots("src", users={SRC_USER: SRC_PW})
    dst = dovecots("dst", users={DST_USER: DST_PW})
    rc, done, _, err = migrate(conf(workdir, test_ca, "allow_private = off\n"), src, dst)
    assert rc == 1
    assert done["state"] == "failed"
    assert "private or local address" in done["error"], done
    assert "old provider" in done["error"]
    # control: allowed, the same job copies
    rc, done, _, err = migrate(conf(workdir, test_ca, "allow_private = on\n"), src, dst)
    assert rc == 0, err


def test_full_destination_is_reported_and_resumable(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW})
    dst = dovecots("dst", users={DST_USER: DST_PW}, quota_bytes=200 * 1024)
    fill(src, n_inbox=5, big=400 * 1000)
    rc, done, _, err = migrate(conf(workdir, test_ca), src, dst)
    assert rc == 1
    text = json.dumps(done)
    assert "full" in text and "quota" in text


def test_cut_connections_then_run_again(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=1500)
    cfg = conf(workdir, test_ca)
    p = migrate(cfg, src, dst, "--compress", background=True)  # a compressed stream cut
    time.sleep(1.0)
    assert p.poll() is None, "the job ended before the cut"
    src.cut_connections()
    time.sleep(0.3)
    dst.cut_connections()
    rc, done, _, err = finish(p)
    assert done is not None, err[-3000:]
    rc, again, _, err = migrate(cfg, src, dst, "--job", str(done["job"]))
    assert rc == 0, err
    assert_same(src, dst)


def test_restarted_source_then_run_again(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=1500)
    cfg = conf(workdir, test_ca)
    p = migrate(cfg, src, dst, "--compress", background=True)  # a compressed stream cut
    time.sleep(1.0)
    assert p.poll() is None, "the job ended before the restart"
    src.restart()
    rc, done, _, err = finish(p)
    assert done is not None, err[-3000:]
    rc, again, _, err = migrate(cfg, src, dst, "--job", str(done["job"]))
    assert rc == 0, err
    assert_same(src, dst)


def test_folder_that_cannot_be_opened_does_not_stop_the_others(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW})
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=5)
    m = src.login(SRC_USER, SRC_PW)
    m.create('"Broken"')
    m.append('"Broken"', "()", None, b"Subject: x\r\n\r\nx\r\n")
    m.logout()
    broken = None
    for root, dirs, files in os.walk(src.home(SRC_USER)):
        for d in dirs:
            if d in (".Broken", "Broken"):
                broken = os.path.join(root, d)
    assert broken, "the maildir of Broken was not found"
    os.chmod(broken, 0)
    try:
        rc, done, _, err = migrate(conf(workdir, test_ca), src, dst)
    finally:
        os.chmod(broken, 0o700)
    assert rc == 1
    by_name = {f["folder"]: f for f in done["folders"]}
    assert "error" in by_name["Broken"]
    assert by_name["INBOX"]["copied"] == 5 and "error" not in by_name["INBOX"]


def test_no_address_user_or_password_is_kept(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW})
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=3)
    rc, done, lines, err = migrate(conf(workdir, test_ca), src, dst)
    assert rc == 0, err
    state = os.path.join(workdir, "state")
    found = secrets_found(state, (SRC_PW, DST_PW, SRC_USER, HOST, str(src.imaps_port)))
    assert not found, found
    # control: the job itself is there, under the destination user
    assert any_file_holds(state, DST_USER)
    for secret in (SRC_PW, DST_PW):
        assert secret not in err and secret not in json.dumps(lines)


def test_delete_source_removes_only_verified_messages(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=12)
    add_big(src, 3 * 1000 * 1000)  # verified with its body streamed, then deleted
    before, _ = snapshot(src, SRC_USER, SRC_PW, OUTLOOK_TO_DEFAULT)
    # a message already at the destination with the same Message-ID, size and date but other
    # bytes is matched by the copy, yet fails verification: it must stay at the source (a
    # small one and one large enough to be hashed as a stream)
    m = src.login(SRC_USER, SRC_PW)
    m.create('"Keep"')
    m.append('"Keep"', "()", '"01-Jan-2001 10:00:00 +0000"', b"Message-ID: <k@x>\r\n\r\nAAAA\r\n")
    m.append('"Keep"', "()", '"01-Jan-2001 10:00:00 +0000"',
             b"Message-ID: <kb@x>\r\n\r\n" + b"A" * 998 + (b"\r\n" + b"A" * 998) * 2000)
    m.logout()
    m = dst.login(DST_USER, DST_PW)
    m.create('"Keep"')
    m.append('"Keep"', "()", '"01-Jan-2001 10:00:00 +0000"', b"Message-ID: <k@x>\r\n\r\nBBBB\r\n")
    m.append('"Keep"', "()", '"01-Jan-2001 10:00:00 +0000"',
             b"Message-ID: <kb@x>\r\n\r\n" + b"A" * 998 + (b"\r\n" + b"A" * 998) * 1999 +
             b"\r\n" + b"B" * 998)
    m.logout()
    rc, done, _, err = migrate(conf(workdir, test_ca), src, dst, "--delete-source")
    after_src, _ = snapshot(src, SRC_USER, SRC_PW, OUTLOOK_TO_DEFAULT)
    after_dst, _ = snapshot(dst, DST_USER, DST_PW)
    for folder, msgs in before.items():
        assert after_dst[folder] == msgs, folder
        assert after_src[folder] == [], "%s still has messages at the source" % folder
    assert len(after_src["Keep"]) == 2, "an unverified message was deleted"
    by_name = {f["folder"]: f for f in done["folders"]}
    assert "not found intact" in by_name["Keep"]["error"]
    assert rc == 1


def test_gmail_labels_become_folders_and_all_mail_only_adds_archived_mail(dovecots, workdir,
                                                                          test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, gmail=True)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    m = src.login(SRC_USER, SRC_PW)
    m.create('"Work"')
    m.create('"[Gmail]/Important"')
    msgs = [("INBOX", b"Message-ID: <g1@x>\r\n\r\none\r\n"),
            ("Work", b"Message-ID: <g2@x>\r\n\r\ntwo\r\n"),
            ('"[Gmail]/Sent Mail"', b"Message-ID: <g3@x>\r\n\r\nthree\r\n")]
    date = '"02-Mar-2015 12:00:00 +0000"'
    for box, body in msgs:
        m.append(box, "(\\Seen)", date, body)
        m.append('"[Gmail]/All Mail"', "(\\Seen)", date, body)   # All Mail repeats them
    m.append('"[Gmail]/Important"', "()", date, msgs[0][1])
    m.append('"[Gmail]/Starred"', "(\\Flagged)", date, msgs[1][1])
    archived = b"Message-ID: <only-archived@x>\r\n\r\narchived\r\n"
    m.append('"[Gmail]/All Mail"', "(\\Seen)", date, archived)
    m.logout()
    cfg = conf(workdir, test_ca)
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, SRC_PW.encode() + b"\n")
    os.write(w2, DST_PW.encode() + b"\n")
    os.close(w1)
    os.close(w2)
    p = subprocess.run([relay.binary(), "-c", cfg, "migrate", "mail", "--from", "gmail",
                        "--from-host", "%s:%d" % (HOST, src.imaps_port), "--from-user", SRC_USER,
                        "--to", "imaps://%s:%d" % (HOST, dst.imaps_port), "--to-user", DST_USER,
                        "--password-fd", str(r1), "--to-password-fd", str(r2), "--json"],
                       pass_fds=(r1, r2), capture_output=True, text=True, timeout=300,
                       env=relay.daemon_env())
    assert p.returncode == 0, p.stderr
    got, _ = snapshot(dst, DST_USER, DST_PW)
    bodies = {k: [x[0] for x in v] for k, v in got.items()}
    assert bodies["INBOX"] == [msgs[0][1]]
    assert bodies["Work"] == [msgs[1][1]]
    assert bodies["Sent"] == [msgs[2][1]]
    assert bodies["Archive"] == [archived], "All Mail must add only what no label holds"
    assert not any(k.startswith("[Gmail]") for k in got), sorted(got)


def test_starttls_source_and_master_user_destination(dovecots, workdir, test_ca):
    src = dovecots("src", users={SRC_USER: SRC_PW}, imaps=False)
    dst = dovecots("dst", users={DST_USER: "unknown-to-the-job"},
                  master_users={"migrator": "master-secret"})
    fill(src, n_inbox=4)
    cfg = conf(workdir, test_ca)
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, SRC_PW.encode() + b"\n")
    os.write(w2, b"master-secret\n")
    os.close(w1)
    os.close(w2)
    p = subprocess.run([relay.binary(), "-c", cfg, "migrate", "mail",
                        "--from", "imap://%s:%d" % (HOST, src.port), "--from-user", SRC_USER,
                        "--to", "imaps://%s:%d" % (HOST, dst.imaps_port), "--to-user", DST_USER,
                        "--master-user", "migrator", "--password-fd", str(r1),
                        "--to-password-fd", str(r2), "--json"],
                       pass_fds=(r1, r2), capture_output=True, text=True, timeout=300,
                       env=relay.daemon_env())
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout.splitlines()[-1])
    assert done["state"] == "done" and done["messages_copied"] == 7  # 4 + 2 + 1 (fill)
    log = open(src.log_path).read()
    assert "user=<%s>" % SRC_USER in log and "TLS" in log


@pytest.mark.parametrize("layout", ["outlook", "german"])
def test_realistic_mailbox_has_no_difference(dovecots, workdir, test_ca, layout):
    """The fixtures' filler and fidelity check: 20 folders, a realistic size mix with a
    20 MB message, keywords, old dates, subscriptions; 0 differences, also after a second
    run, which copies nothing."""
    src = dovecots("src", users={SRC_USER: SRC_PW},
                  special_use=dovecot.OUTLOOK if layout == "outlook" else dovecot.GERMAN)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    s = src.login(SRC_USER, SRC_PW)
    filled = mailbox.fill(s, count=400, seed=7, large=(layout == "outlook"))
    s.logout()
    cfg = conf(workdir, test_ca)
    rc, done, _, err = migrate(cfg, src, dst)
    assert rc == 0, err
    assert done["messages_copied"] == filled["messages"]
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    diffs = mailbox.compare(s, d)
    assert mailbox.summary(diffs) == mailbox.summary([]), diffs[:10]
    s.logout()
    d.logout()
    rc, again, _, err = migrate(cfg, src, dst)
    assert rc == 0 and again["messages_copied"] == 0, err
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    assert mailbox.compare(s, d) == []


# -- large messages, streamed ----------------------------------------------------------------

BIG_CONF = "max_message_size = 64M\n"


def add_big(d, size, folder="Work", flags="(\\Seen $Label1 big-kw)",
            date='"02-Mar-2001 11:12:13 +0200"', seed=0):
    """A message of about size bytes with keywords and an old date; lines of text that vary
    (not one repeated line, which DEFLATE would shrink to nothing)."""
    m = d.login(SRC_USER, SRC_PW)
    head = b"Message-ID: <big-%d-%d@example.org>\r\nSubject: big\r\n\r\n" % (size, seed)
    lines = [b"%08d %s\r\n" % (i, (b"%x" % (i * 2654435761 + seed)) * 8) for i in range(256)]
    block = b"".join(lines)
    m.append('"%s"' % folder, flags, date, head + block * (size // len(block)))
    m.logout()


def run_measured(cfg, src, dst, *more, port=None):
    """migrate, with the peak resident memory (VmHWM, kB) of the postwarden process read
    from /proc while it runs: (rc, done, hwm_kb)."""
    p = migrate(cfg, src, dst, *more, background=True, src_port=port)
    hwm = 0
    while p.poll() is None:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.02)
    rc, done, _, err = finish(p)
    return rc, done, hwm, err


def assert_no_difference(src, dst):
    s, d = src.login(SRC_USER, SRC_PW), dst.login(DST_USER, DST_PW)
    diffs = mailbox.compare(s, d, OUTLOOK_TO_DEFAULT)
    s.logout()
    d.logout()
    assert mailbox.summary(diffs) == mailbox.summary([]), diffs[:10]


def test_large_message_is_streamed_in_bounded_memory(dovecots, workdir, test_ca):
    """A 30 MB message goes from the FETCH literal into the APPEND literal piece by piece:
    the copy is exact and postwarden's peak memory grows by far less than the message.
    Control: the same job without the big message gives the baseline (the tests run the
    sanitizer build, whose own memory dominates; a release build is also held to an
    absolute 28 MB, its floor being about 21 MB)."""
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=20)
    add_big(src, 2 * 1000 * 1000, folder="INBOX", flags="(kw-two)")  # streamed, small
    cfg = conf(workdir, test_ca, BIG_CONF)
    rc, base, hwm_base, err = run_measured(cfg, src, dst, "--compress")
    assert rc == 0, err
    assert_no_difference(src, dst)
    add_big(src, 30 * 1000 * 1000)
    rc, done, hwm_big, err = run_measured(cfg, src, dst, "--compress", "--job",
                                          str(base["job"]))
    assert rc == 0, err
    assert done["messages_copied"] == 1 and done["failed"] == 0
    assert_no_difference(src, dst)
    grew = hwm_big - hwm_base
    print("VmHWM without the 30 MB message %d kB, with it %d kB" % (hwm_base, hwm_big))
    # held whole, the message alone would add 30,000 kB (and more, as its buffer grows)
    assert grew < 8 * 1024, "peak memory grew by %d kB for a 30 MB message" % grew
    # a release build's own floor, with no big message, is about 21 MB (libraries, TLS,
    # the workers' stacks): with the 30 MB message it must stay below the message itself
    if "/asan/" not in relay.binary():
        assert hwm_big < 28 * 1024, "peak memory %d kB" % hwm_big


def test_large_message_without_literal_plus(dovecots, workdir, test_ca):
    """Without LITERAL+ the APPEND of a streamed message waits for the go-ahead before the
    body; flags, keywords and the date arrive all the same."""
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK,
                  compress=False, no_capability=("MULTIAPPEND", "LITERAL+"))
    dst = dovecots("dst", users={DST_USER: DST_PW}, compress=False,
                  no_capability=("MULTIAPPEND", "LITERAL+"))
    assert "LITERAL+" not in dst.capability()
    fill(src, n_inbox=10)
    add_big(src, 5 * 1000 * 1000)
    add_big(src, 3 * 1000 * 1000, folder="INBOX", flags="()", seed=1)
    rc, done, _, err = migrate(conf(workdir, test_ca, BIG_CONF), src, dst)
    assert rc == 0, err
    assert done["failed"] == 0
    assert_no_difference(src, dst)


class CuttingProxy:
    """A TCP relay to a server that cuts its connections once `after` bytes have come from
    the server through any one of them, and from then on refuses new ones (closes them at
    once): a source lost for good in the middle of a message."""

    def __init__(self, port, after):
        import socket
        self.port_to, self.after, self.cut = port, after, False
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.cut:
                c.close()
                continue
            s = socket.create_connection(("127.0.0.1", self.port_to))
            self.socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, True), daemon=True).start()

    def _pump(self, a, b, counted):
        import socket
        n = 0
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
                n += len(data)
                if counted and n > self.after:
                    self.cut = True
                    break
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.lsock.close()


def test_cut_in_the_middle_of_a_streamed_message_then_run_again(dovecots, workdir, test_ca):
    """The source is lost for good while a 30 MB message streams: the destination keeps no
    part of it, the job does not count it, and the next run copies it, once."""
    src = dovecots("src", users={SRC_USER: SRC_PW}, special_use=dovecot.OUTLOOK)
    dst = dovecots("dst", users={DST_USER: DST_PW})
    fill(src, n_inbox=10)
    add_big(src, 30 * 1000 * 1000)
    proxy = CuttingProxy(src.imaps_port, after=12 * 1000 * 1000)
    cfg = conf(workdir, test_ca, BIG_CONF)
    try:
        rc, done, _, err = migrate(cfg, src, dst, src_port=proxy.port)
    finally:
        proxy.close()
    assert proxy.cut, "the connection was not cut: %r %s" % (done, err[-2000:])
    # the destination saw the APPEND begin and break off in its literal: the message was
    # streaming (held whole, it would not have been appended before it was all read)
    cut = re.search(r"While APPENDing: 1 msgs, \d+ secs, (\d+)/(\d+) bytes", dst.log())
    assert cut and 0 < int(cut.group(1)) < int(cut.group(2)), dst.log()[-2000:]
    assert rc != 0 and done is not None, err[-3000:]
    work = {f["folder"]: f for f in done["folders"]}["Work"]
    assert work["copied"] == 0, work
    d = dst.login(DST_USER, DST_PW)
    typ, data = d.select('"Work"', readonly=True)
    assert typ == "OK" and int(data[0]) == 0, "a part of the message was stored"
    d.logout()
    rc, again, _, err = migrate(cfg, src, dst, "--job", str(done["job"]))
    assert rc == 0, err
    assert {f["folder"]: f for f in again["folders"]}["Work"]["copied"] == 1
    assert_no_difference(src, dst)   # 0 missing, 0 duplicates
