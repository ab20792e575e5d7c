"""postwarden migrate contacts: address books copied from a CardDAV server (Radicale 3 as
both the old provider and the new one), from Microsoft Graph (a scripted server: no real
one exists here), and from exported files (vCard, Google CSV, Outlook CSV)."""

import http.client
import http.server
import json
import os
import subprocess
import threading

import pytest

from pwtest import net
from pwtest.radicale import Radicale, postwarden
from pwtest.secrets import secrets_found

SRC_PW = "s3cret-Old-Pass"
DST_PW = "n3w-Pass-Dst"

PHOTO = ("/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP" + "A" * 300 + "//2Q==")

CARDS = {
    # vCard 3.0, non-ASCII name, a photo folded over many lines
    "joerg.vcf": ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:joerg\r\nFN:J\u00f6rg Stra\u00dfer\r\n"
                  "N:Stra\u00dfer;J\u00f6rg;;;\r\nEMAIL;TYPE=INTERNET:joerg@example.de\r\n"
                  "PHOTO;ENCODING=b;TYPE=JPEG:" + PHOTO[:40] + "\r\n"
                  + "".join(" " + PHOTO[i:i + 74] + "\r\n" for i in range(40, len(PHOTO), 74))
                  + "END:VCARD\r\n"),
    # vCard 4.0 with a CJK name
    "li.vcf": ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:li\r\nFN:\u674e\u5c0f\u9f99\r\n"
               "N:\u674e;\u5c0f\u9f99;;;\r\nTEL;TYPE=cell:+86 10 1234\r\nEND:VCARD\r\n"),
    # a vCard 4.0 group
    "group4.vcf": ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:group4\r\nKIND:group\r\nFN:Family\r\n"
                   "MEMBER:urn:uuid:li\r\nEND:VCARD\r\n"),
}
WORK_CARDS = {
    # Apple's group form in vCard 3.0
    "team.vcf": ("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:team\r\nFN:Team\r\nN:Team;;;;\r\n"
                 "X-ADDRESSBOOKSERVER-KIND:group\r\n"
                 "X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:joerg\r\nEND:VCARD\r\n"),
    "ana.vcf": ("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:ana\r\nFN:Ana L\u00f3pez\r\n"
                "ORG:Caf\u00e9 S.A.\r\nEND:VCARD\r\n"),
}


@pytest.fixture
def servers(workdir):
    src = Radicale(workdir, {"alice": SRC_PW}, encryption="plain", name="src")
    dst = Radicale(workdir, {"bob": DST_PW}, encryption="bcrypt", name="dst")
    yield src, dst
    src.stop()
    dst.stop()


def fill_source(src):
    src.make_book("alice", "friends", "Freunde \u00e9t\u00e9")
    src.make_book("alice", "work", "Work")
    for name, card in CARDS.items():
        src.put("alice", "friends", name, card.encode())
    for name, card in WORK_CARDS.items():
        src.put("alice", "work", name, card.encode())


def run(args, src_pw=SRC_PW, dst_pw=DST_PW, cwd=None, config=None):
    """Run migrate contacts with the passwords on descriptors; (rc, json lines, stderr)."""
    fds, keep = [], []
    for pw in (src_pw, dst_pw):
        if pw is None:
            fds.append(None)
            continue
        r, w = os.pipe()
        os.write(w, pw.encode() + b"\n")
        os.close(w)
        fds.append(r)
        keep.append(r)
    cmd = [postwarden()] + (["-c", config] if config else []) + ["migrate", "contacts"]
    cmd += args + ["--allow-private", "--json"]
    if fds[0] is not None:
        cmd += ["--password-fd", str(fds[0])]
    cmd += ["--to-password-fd", str(fds[1])]
    p = subprocess.run(cmd, pass_fds=keep, capture_output=True, text=True, timeout=120,
                       cwd=cwd)
    for fd in keep:
        os.close(fd)
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    return p.returncode, lines, p.stderr


def carddav_args(src, dst):
    return ["--from", "carddav", "--from-url", src.url, "--from-user", "alice",
            "--to-url", dst.url, "--to-user", "bob"]


def test_carddav_copy_exact_and_second_run_adds_nothing(servers):
    src, dst = servers
    fill_source(src)
    rc, lines, err = run(carddav_args(src, dst))
    assert rc == 0, err
    summary = lines[-1]
    assert summary["event"] == "summary"
    assert summary["address_books"] == 2
    assert summary["sync_collection_books"] == 2     # Radicale offers RFC 6578
    assert summary["copied"] == len(CARDS) + len(WORK_CARDS)
    assert summary["failed"] == 0 and summary["not_copied"] == []
    assert dst.books("bob") == ["friends", "work"]
    # card by card, byte for byte (3.0 and 4.0, photo, both group forms, non-ASCII)
    for book in ("friends", "work"):
        s, d = src.cards("alice", book), dst.cards("bob", book)
        assert sorted(s) == sorted(d)
        for name in s:
            assert s[name] == d[name], name
    # the display name went along
    st, _, body = dst.request("bob", "PROPFIND", "/bob/friends/",
                              b'<propfind xmlns="DAV:"><prop><displayname/></prop></propfind>',
                              {"Depth": "0"})
    assert "Freunde \u00e9t\u00e9" in body.decode()

    # a second run adds nothing; a card added at the source since is the only one copied
    rc, lines, err = run(carddav_args(src, dst))
    assert rc == 0, err
    assert lines[-1]["copied"] == 0
    assert lines[-1]["existing"] == len(CARDS) + len(WORK_CARDS)
    src.put("alice", "work", "new.vcf",
            b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:new\r\nFN:New\r\nEND:VCARD\r\n")
    rc, lines, err = run(carddav_args(src, dst))
    assert rc == 0 and lines[-1]["copied"] == 1, (lines, err)
    assert len(dst.cards("bob", "work")) == len(WORK_CARDS) + 1


def test_carddav_wrong_password_is_a_clear_error(servers):
    src, dst = servers
    fill_source(src)
    rc, lines, err = run(carddav_args(src, dst), src_pw="not-the-password")
    assert rc == 1
    assert "old address book" in err and "user name or password" in err, err
    assert lines[-1]["copied"] == 0
    # the destination's password wrong: said about the new address book
    rc, lines, err = run(carddav_args(src, dst), dst_pw="wrong")
    assert rc == 1 and "new address book" in err and "password" in err, err
    assert dst.books("bob") == []
    # control: the right passwords work
    rc, lines, err = run(carddav_args(src, dst))
    assert rc == 0 and lines[-1]["copied"] == len(CARDS) + len(WORK_CARDS), err


def test_no_secrets_left_behind(servers, workdir):
    """Nothing of the source (address, user, password) is stored: after a run with a
    configuration (state dir, log file, database; the destination from [migrate]
    carddav_destination), neither the output nor any file under the state dir names them."""
    src, dst = servers
    fill_source(src)
    state = os.path.join(workdir, "state")
    os.makedirs(state)
    conf = os.path.join(workdir, "postwarden.conf")
    with open(conf, "w") as f:
        f.write("[server]\nstate_dir = %s\nlog_file = %s/postwarden.log\n"
                "[migrate]\ncarddav_destination = %s\n" % (state, state, dst.url))
    args = ["--from", "carddav", "--from-url", src.url, "--from-user", "alice",
            "--to-user", "bob"]
    rc, lines, err = run(args, config=conf, cwd=state)
    assert rc == 0 and lines[-1]["copied"] == len(CARDS) + len(WORK_CARDS), err
    assert dst.books("bob") == ["friends", "work"]     # found through carddav_destination
    secrets = [SRC_PW, DST_PW, "alice", "127.0.0.1:%d" % src.port]
    out = json.dumps(lines) + err
    for secret in secrets:
        assert secret not in out, secret
    # a database and a log there too, as serve would leave them
    subprocess.run([postwarden(), "-c", conf, "db", "migrate"], capture_output=True,
                   timeout=60)

    assert os.listdir(state)
    assert secrets_found(state, secrets) == []
    # control: the search finds a secret where there is one
    with open(os.path.join(state, "control"), "w") as f:
        f.write(SRC_PW)
    assert secrets_found(state, secrets) == [(os.path.join(state, "control"), SRC_PW)]


# -- Microsoft Graph (a scripted server) --------------------------------------------------

GRAPH_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.test-token"


def graph_contact(i):
    return {"id": "AAMkAD%04d" % i, "displayName": "K\u00e4the %d" % i, "givenName": "K\u00e4the",
            "surname": "Nr%d" % i,
            "emailAddresses": [{"name": "K", "address": "kaethe%d@example.org" % i}],
            "businessPhones": ["+49 30 %d" % i], "homePhones": [], "mobilePhone": None,
            "companyName": "ACME" if i % 2 else None, "birthday": "1970-01-%02dT00:00:00Z"
            % (i % 28 + 1), "homeAddress": {"street": "Hauptstr. %d" % i, "city": "Berlin"}}


class GraphServer:
    """/me/contacts in pages of 3 with @odata.nextLink; the bearer token is checked."""

    def __init__(self, contacts):
        self.contacts = contacts
        self.requests = []
        self.throttle = 0      # answer this many requests of page 2 with 429 first
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append(self.path)
                if self.headers.get("Authorization") != "Bearer " + GRAPH_TOKEN:
                    self._send(401, {"error": {"code": "InvalidAuthenticationToken"}})
                    return
                skip = int(self.path.split("skip=")[1]) if "skip=" in self.path else 0
                if skip == 3 and outer.throttle > 0:
                    outer.throttle -= 1
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                page = {"value": outer.contacts[skip:skip + 3]}
                if skip + 3 < len(outer.contacts):
                    page["@odata.nextLink"] = "%sv1.0/me/contacts?$top=3&$skip=%d" % (
                        outer.url, skip + 3)
                self._send(200, page)

            def _send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = net.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def graph():
    g = GraphServer([graph_contact(i) for i in range(8)] + [{"id": "nothing"}])
    yield g
    g.stop()


def graph_args(graph, dst):
    return ["--from", "outlook", "--from-url", graph.url + "v1.0/me/contacts?$top=3",
            "--to-url", dst.url, "--to-user", "bob", "--to-book", "outlook"]


def test_graph_contacts_with_paging(servers, graph):
    _, dst = servers
    graph.throttle = 1     # a throttled page is retried after Retry-After
    rc, lines, err = run(graph_args(graph, dst), src_pw=GRAPH_TOKEN)
    # the contact with nothing in it is reported, not copied
    assert rc == 1, err
    s = lines[-1]
    assert s["copied"] == 8 and s["failed"] == 1, s
    assert s["not_copied"][0]["reason"].startswith("a contact with no name")
    assert graph.throttle == 0
    assert len([p for p in graph.requests if "skip=" in p]) == 3   # page 2 twice, page 3
    cards = dst.cards("bob", "outlook")
    assert len(cards) == 8
    card = cards["AAMkAD0003.vcf"].decode()
    assert "VERSION:4.0\r\n" in card and "FN:K\u00e4the 3\r\n" in card
    assert "EMAIL:kaethe3@example.org\r\n" in card and "ORG:ACME\r\n" in card
    assert "BDAY:19700104\r\n" in card and "ADR;TYPE=home:;;Hauptstr. 3;Berlin;;;\r\n" in card
    # again: nothing new
    rc, lines, err = run(graph_args(graph, dst), src_pw=GRAPH_TOKEN)
    assert lines[-1]["copied"] == 0 and lines[-1]["existing"] == 8
    # a refused token is said so
    rc, lines, err = run(graph_args(graph, dst), src_pw="expired")
    assert rc == 1 and "refused the token" in err and "401" in err, err


# -- files --------------------------------------------------------------------------------

GOOGLE_CSV = (
    "\ufeffName,Given Name,Additional Name,Family Name,Nickname,Birthday,Notes,"
    "E-mail 1 - Type,E-mail 1 - Value,E-mail 2 - Type,E-mail 2 - Value,"
    "Phone 1 - Type,Phone 1 - Value,Organization 1 - Name,Organization 1 - Title\r\n"
    "Fran\u00e7oise Dupont,Fran\u00e7oise,,Dupont,Fanfan,1985-07-14,\"Met in Lyon,\n2019\","
    "* Home,f@example.fr ::: f2@example.fr,Work,fd@work.example,Mobile,+33 6 12,"
    "Soci\u00e9t\u00e9 G,CEO\r\n"
    ",,,,,,,,,,,,,,\r\n"
    ",\u00d8ystein,,Berg,,,,,,,,,+47 22,,\r\n")

OUTLOOK_CSV = (
    "First Name,Middle Name,Last Name,Title,Suffix,Nickname,E-mail Address,"
    "E-mail 2 Address,Mobile Phone,Home Phone,Business Phone,Company,Job Title,Notes\r\n"
    "Ma\u0142gorzata,,W\u00f3jcik,,,,mw@example.pl,,+48 600,,+48 22,Firma,Dyrektor,\r\n"
    "Sam,,Lee,,Jr.,,sam@example.com,sam2@example.com,,+1 555,,,,\"a \"\"quoted\"\" note\"\r\n")


def file_args(kind, path, dst):
    return ["--from", kind, "--from-file", path, "--to-url", dst.url, "--to-user", "bob",
            "--to-book", "imported"]


def test_google_and_outlook_csv(servers, workdir):
    _, dst = servers
    g = os.path.join(workdir, "google.csv")
    o = os.path.join(workdir, "outlook.csv")
    open(g, "w", encoding="utf-8").write(GOOGLE_CSV)
    open(o, "w", encoding="utf-8").write(OUTLOOK_CSV)
    rc, lines, err = run(file_args("google-csv", g, dst), src_pw=None)
    assert rc == 0 and lines[-1]["copied"] == 2, (lines, err)
    rc, lines, err = run(file_args("outlook-csv", o, dst), src_pw=None)
    assert rc == 0 and lines[-1]["copied"] == 2, (lines, err)
    cards = [c.decode() for c in dst.cards("bob", "imported").values()]
    fr = [c for c in cards if "Dupont" in c][0]
    assert "FN:Fran\u00e7oise Dupont\r\n" in fr and "N:Dupont;Fran\u00e7oise;;;\r\n" in fr
    assert "EMAIL:f@example.fr\r\nEMAIL:f2@example.fr\r\nEMAIL:fd@work.example\r\n" in fr
    assert "NOTE:Met in Lyon\\,\\n2019\r\n" in fr and "ORG:Soci\u00e9t\u00e9 G\r\n" in fr
    assert "TITLE:CEO\r\n" in fr and "BDAY:1985-07-14\r\n" in fr
    assert any("FN:\u00d8ystein Berg\r\n" in c for c in cards)
    mw = [c for c in cards if "W\u00f3jcik" in c][0]
    assert "TEL;TYPE=cell:+48 600\r\n" in mw and "TEL;TYPE=work:+48 22\r\n" in mw
    assert "ORG:Firma\r\n" in mw and "TITLE:Dyrektor\r\n" in mw
    sam = [c for c in cards if "FN:Sam Lee" in c][0]
    assert "N:Lee;Sam;;;Jr.\r\n" in sam and 'NOTE:a "quoted" note\r\n' in sam
    # importing the same file again adds nothing
    rc, lines, err = run(file_args("outlook-csv", o, dst), src_pw=None)
    assert rc == 0 and lines[-1]["copied"] == 0 and lines[-1]["existing"] == 2


def test_vcard_file_import(servers, workdir):
    _, dst = servers
    path = os.path.join(workdir, "export.vcf")
    with open(path, "wb") as f:
        for card in list(CARDS.values()) + list(WORK_CARDS.values()):
            f.write(card.encode())
    rc, lines, err = run(file_args("vcard", path, dst), src_pw=None)
    assert rc == 0, err
    assert lines[-1]["copied"] == len(CARDS) + len(WORK_CARDS)
    got = dst.cards("bob", "imported")
    # Named by UID and sent byte for byte: the destination holds each card exactly as it
    # holds the same card PUT directly (Radicale re-serialises some cards, in both cases).
    dst.make_book("bob", "reference", "reference")
    for name, card in list(CARDS.items()) + list(WORK_CARDS.items()):
        dst.put("bob", "reference", name, card.encode())
        assert got[name] == dst.get("bob", "reference", name), name
    assert got["li.vcf"] == CARDS["li.vcf"].encode()     # one it keeps as sent
    # a broken file is refused with a reason, and nothing is written
    bad = os.path.join(workdir, "bad.vcf")
    open(bad, "w").write("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n")
    rc, lines, err = run(file_args("vcard", bad, dst), src_pw=None)
    assert rc == 1 and "no END:VCARD" in err, err


# -- broken and hostile sources (scripted) -------------------------------------------------

class HostileDav:
    """A 'CardDAV server' that answers every PROPFIND in one bad way."""

    def __init__(self, mode):
        outer = self
        self.mode = mode

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_PROPFIND(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                if outer.mode == "redirect-loop":
                    self.send_response(301)
                    self.send_header("Location", "/loop%d/" % len(self.path))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.mode == "huge":
                    body = (b'<?xml version="1.0"?><multistatus xmlns="DAV:"><response>'
                            b'<href>/' + b"a" * (17 * 1024 * 1024) + b'</href></response>'
                            b'</multistatus>')
                elif outer.mode == "entities":
                    body = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
                            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                            b'<multistatus xmlns="DAV:">&b;</multistatus>')
                else:  # "html": a login page instead of XML
                    body = b"<html><body><form>Sign in</form></body></html>"
                self.send_response(207)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.port = net.free_port()
        self.url = "http://127.0.0.1:%d/dav/" % self.port
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.mark.parametrize("mode,words", [
    ("huge", "response body over"),
    ("entities", "DOCTYPE"),
    ("redirect-loop", "redirects"),
    ("html", "not a DAV multistatus"),
])
def test_broken_source_is_refused_with_a_reason(servers, mode, words):
    _, dst = servers
    h = HostileDav(mode)
    try:
        rc, lines, err = run(["--from", "carddav", "--from-url", h.url, "--from-user", "alice",
                              "--to-url", dst.url, "--to-user", "bob"])
    finally:
        h.stop()
    assert rc == 1 and "old address book" in err and words in err, err
    assert lines[-1]["copied"] == 0 and dst.books("bob") == []


def test_progress_on_a_terminal_and_no_password_source(servers):
    """On a terminal: one progress line rewritten in place, then the summary in words.
    Without a descriptor and without a terminal to ask on, the command says so."""
    import pty
    src, dst = servers
    fill_source(src)
    master, slave = pty.openpty()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, SRC_PW.encode() + b"\n")
    os.write(w2, DST_PW.encode() + b"\n")
    os.close(w1)
    os.close(w2)
    p = subprocess.Popen([postwarden(), "migrate", "contacts"] + carddav_args(src, dst)
                         + ["--allow-private", "--password-fd", str(r1),
                            "--to-password-fd", str(r2)],
                         pass_fds=(r1, r2), stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert p.wait(60) == 0, p.stderr.read()
    os.close(master)
    os.close(r1)
    os.close(r2)
    text = out.decode()
    assert "\raddress books 1  cards 3  copied 3" in text, text
    assert "address books: 2, cards: 5, copied: 5, already there: 0, not copied: 0" in text
    # no descriptor and no controlling terminal: a clear error, nothing done
    r, w = os.pipe()
    os.write(w, DST_PW.encode() + b"\n")
    os.close(w)
    p = subprocess.run([postwarden(), "migrate", "contacts"] + carddav_args(src, dst)
                       + ["--allow-private", "--to-password-fd", str(r)], pass_fds=(r,),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       start_new_session=True)
    os.close(r)
    assert p.returncode == 1 and "terminal" in p.stderr, p.stderr


class NoSyncProxy:
    """In front of Radicale: every request passes, except that the sync-collection report
    fails with 500 (a server that announces RFC 6578 and then breaks it)."""

    def __init__(self, backend_port):
        outer = self
        self.sync_refused = 0

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if self.command == "REPORT" and body and b"sync-collection" in body:
                    outer.sync_refused += 1
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                c = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=30)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection")}
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "connection",
                                         "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                c.close()

            do_GET = do_PUT = do_PROPFIND = do_REPORT = do_MKCOL = _any

        self.port = net.free_port()
        self.url = "http://127.0.0.1:%d/" % self.port
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_carddav_listing_falls_back_to_propfind(servers):
    src, dst = servers
    fill_source(src)
    proxy = NoSyncProxy(src.port)
    try:
        rc, lines, err = run(["--from", "carddav", "--from-url", proxy.url, "--from-user",
                              "alice", "--to-url", dst.url, "--to-user", "bob"])
    finally:
        proxy.stop()
    assert rc == 0, err
    assert proxy.sync_refused == 2          # tried for each book, then PROPFIND Depth 1
    assert lines[-1]["sync_collection_books"] == 0
    assert lines[-1]["copied"] == len(CARDS) + len(WORK_CARDS)
    for book in ("friends", "work"):
        assert src.cards("alice", book) == dst.cards("bob", book)


def test_destination_collection_in_the_way(servers):
    """A collection at the destination with the address book's name that is not an address
    book: said of the new address book, and nothing written into it."""
    src, dst = servers
    fill_source(src)
    st, _, _ = dst.request("bob", "MKCALENDAR", "/bob/friends/")   # a calendar
    assert st == 201
    rc, lines, err = run(carddav_args(src, dst))
    assert rc == 1 and "new address book" in err and "not an address book" in err, err
    assert "old address book" not in err
    assert lines[-1]["copied"] == 0
