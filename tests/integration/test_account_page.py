"""The settings page (www/) served by serve's account listener, checked in headless Chromium.

The page's HTML is checked as text first (every id unique, every form control labelled,
every text in both languages, nothing loaded from elsewhere). Then serve runs with
[account] listen on loopback and a real Dovecot as its IMAP sign-in backend, and Debian's
chromium (pwtest/browser.py, over the DevTools protocol) signs in as a user would: with
the mouse, and with the keyboard alone (Tab, Enter); switches the guarantee off for an hour
and the change is seen in the API and in `postwarden user show`; reads the page in German
and English; and on a phone-sized screen. The accessibility tree Chromium gives to screen
readers must name every control and have the page's landmarks. A message held by the
guarantee (an MX without STARTTLS) is released from the page and arrives; a key uploaded on
the page is published in DNS (Knot, DNSSEC) and shown as validating, then removed; a move
from another Dovecot is started with the form and its progress watched to 100%.

Screenshots are test artefacts: they stay, whether the test passes or fails, in
build/test-artefacts/account-page/<test>/ ($PW_ARTEFACTS overrides build/test-artefacts).
"""

import hashlib
import html.parser
import json
import os
import re
import shutil
import struct
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from pwtest import browser as pw_browser
from pwtest import dovecot, mailbox, mailcheck, net
from pwtest import keys as pk
from pwtest import logs as pw_logs
from pwtest.keyzone import KeyZone
from pwtest.relay import REPO_ROOT

WWW = os.path.join(REPO_ROOT, "www")
# The users' domain is other.test: the relay's notifications to them go to pf_notify.
USER, USER_PW = "alice@other.test", "Al1ce-Pa55word!"
OTHER, OTHER_PW = "bob@other.test", "B0b-Pa55word!"
OLD_USER, OLD_PW = "alice.old", "0ld-Pa55word!"     # at the old provider
IMAP_HOST, OLD_HOST = "imap.example.test", "old.example.test"
PHONE = (390, 844)          # CSS pixels of a common phone
CONTROLS = ("input", "select", "textarea")

needs_chromium = pytest.mark.skipif(pw_browser.binary() is None,
                                    reason="chromium is missing (scripts/install-deps.sh --test)")


# -- the HTML as text -------------------------------------------------------------------

class PageCheck(html.parser.HTMLParser):
    """Collects what the checks below need from one HTML document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = []
        self.label_for = set()
        self.controls = []          # (tag, attrs, inside a <label>)
        self.i18n_keys = set()
        self.remote = []
        self.landmarks = set()
        self._label_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        for k in ("data-i18n", "data-i18n-label"):
            if k in a:
                self.i18n_keys.add(a[k])
        if tag == "label":
            self._label_depth += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in CONTROLS:
            self.controls.append((tag, a, self._label_depth > 0))
        for k in ("src", "href", "action"):
            if re.match(r"^(https?:)?//", a.get(k) or ""):
                self.remote.append("%s %s=%s" % (tag, k, a[k]))
        if tag in ("header", "nav", "main", "footer"):
            self.landmarks.add(tag)

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_depth -= 1


def page_problems(text):
    """What is wrong with an HTML page: duplicate ids, controls without a label, remote
    resources, missing landmarks; [] when nothing is."""
    p = PageCheck()
    p.feed(text)
    p.close()
    problems = ["duplicate id %s" % i for i in sorted({i for i in p.ids if p.ids.count(i) > 1})]
    for tag, a, wrapped in p.controls:
        if a.get("type") in ("hidden", "submit", "button", "reset"):
            continue
        named = (wrapped or a.get("id") in p.label_for or a.get("aria-label")
                 or a.get("aria-labelledby"))
        if not named:
            problems.append("%s %s has no label" % (tag, a.get("id") or a.get("name")))
    problems += ["loads %s from elsewhere" % r for r in p.remote]
    problems += ["no <%s> landmark" % t for t in ("header", "nav", "main")
                 if t not in p.landmarks]
    return problems


def read_texts(lang):
    with open(os.path.join(WWW, "i18n", lang + ".json"), encoding="utf-8") as f:
        return json.load(f)


def test_page_html_is_valid_and_labelled():
    with open(os.path.join(WWW, "index.html"), encoding="utf-8") as f:
        page = f.read()
    assert page_problems(page) == []
    # control: the check finds each kind of fault
    bad = ('<header></header><main><input id="a"><p id="a"></p>'
           '<script src="https://cdn.example/x.js"></script></main>')
    assert page_problems(bad) == ["duplicate id a", "input a has no label",
                                  "loads script src=https://cdn.example/x.js from elsewhere",
                                  "no <nav> landmark"]
    assert page_problems('<nav></nav><header></header><main>'
                         '<label>Name <input name="n"></label></main>') == []


def test_page_texts_exist_in_english_and_german():
    en, de = read_texts("en"), read_texts("de")
    assert sorted(en) == sorted(de)
    p = PageCheck()
    with open(os.path.join(WWW, "index.html"), encoding="utf-8") as f:
        p.feed(f.read())
    with open(os.path.join(WWW, "app.js"), encoding="utf-8") as f:
        js = f.read()
    # keys the script asks for by name: t("key") and the advice/state families
    used = set(re.findall(r'\bt\("([a-z_.]+)"[,)]', js)) | p.i18n_keys
    used |= {"mig.advice." + o for o in ("gmail", "outlook", "icloud", "yahoo", "aol", "gmx",
                                          "webde", "other")}
    used |= {"mig.state." + s for s in ("running", "done", "partial", "failed", "cancelled",
                                         "interrupted")}
    # the code of each error answer (docs/openapi.json lists them) has its text
    with open(os.path.join(WWW, "..", "docs", "openapi.json"), encoding="utf-8") as f:
        codes = json.load(f)["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert "wrong_password" in codes
    used |= {"error.code." + c for c in codes}
    assert sorted(used - set(en)) == []
    # every text is translated: the long ones differ (names such as "Name" may not, nor
    # the name of a standard)
    same = [k for k in en if en[k] == de[k] and len(en[k]) > 12 and k != "keys.wkd"]
    assert same == []
    for k in en:   # placeholders survive translation
        assert sorted(re.findall(r"\{\w+\}", en[k])) == sorted(re.findall(r"\{\w+\}", de[k])), k


# -- the page in Chromium, served by serve ------------------------------------------------

class Site:
    def __init__(self, relay, url, imap):
        self.relay = relay
        self.url = url
        self.imap = imap

    def user(self, address):
        """postwarden's own record of the account (`postwarden user show --json`)."""
        return self.relay.pw_json("user", "show", address)


def start_site(workdir, make_relay, test_ca, users, **options):
    """serve with the account listener on loopback (plain HTTP, so the cookie without
    Secure) and a Dovecot that checks the users' passwords at sign-in and is the
    destination of their migrations; options are more config keys."""
    imap = dovecot.start(workdir, "imap", users=users, ca=test_ca, hostname=IMAP_HOST)
    port = net.free_port("127.0.0.1")
    opts = dict(guarantee_default="on", relay_trusted_networks="127.0.0.1/32",
                account_listen="127.0.0.1:%d" % port, account_www_dir=WWW,
                account_imap=imap.url(), account_insecure_cookie="on",
                migrate_destination="imaps://%s:%d" % (IMAP_HOST, imap.imaps_port),
                migrate_ca_file=test_ca.cert_path, migrate_allow_private="on",
                migrate_hosts="%s=127.0.0.1, %s=127.0.0.1" % (IMAP_HOST, OLD_HOST))
    opts.update(options)
    r = make_relay(start=False, **opts)
    r.start()
    net.wait_port("127.0.0.1", port, timeout=20, proc=r.proc)
    for a in users:
        r.pw("user", "add", a, check=True)
    return Site(r, "http://127.0.0.1:%d/" % port, imap)


@pytest.fixture
def site(workdir, make_relay, test_ca):
    s = start_site(workdir, make_relay, test_ca, {USER: USER_PW, OTHER: OTHER_PW})
    yield s
    dovecot.stop(s.imap)


@pytest.fixture
def chrome(workdir):
    b = pw_browser.Browser(workdir)
    yield b
    b.close()


@pytest.fixture
def artefacts(request):
    """This test's folder of screenshots, kept after the run."""
    base = os.environ.get("PW_ARTEFACTS") or os.path.join(REPO_ROOT, "build", "test-artefacts")
    d = os.path.join(base, "account-page", re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name))
    if os.path.isdir(d):
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
    os.makedirs(d, exist_ok=True)
    return d


def load(b, site):
    b.open(site.url)
    b.wait("document.body.dataset.ready === '1'", what="the page's script to start")


def sign_in(b, address=USER, password=USER_PW):
    b.type_into("#signin-address", address)
    b.type_into("#signin-password", password)
    b.click("#signin-submit")
    b.wait_text("#who-address", address)


def page_api(b, path):
    """(status, JSON) of GET /v1/PATH made by the page itself, with its session cookie."""
    return b.eval("fetch('v1/%s', {credentials: 'same-origin'})"
                  ".then(async r => [r.status, await r.json()])" % path)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def http_get(url):
    """(status, Content-Type, body) of a plain GET."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


@needs_chromium
def test_serve_serves_the_page_to_chromium(site, chrome, artefacts):
    status, ctype, body = http_get(site.url)
    assert status == 200 and ctype.startswith("text/html")
    with open(os.path.join(WWW, "index.html"), "rb") as f:
        assert body == f.read()
    for path, kind in (("app.js", "javascript"), ("app.css", "text/css"),
                       ("i18n/de.json", "application/json")):
        status, ctype, _ = http_get(site.url + path)
        assert status == 200 and kind in ctype, (path, status, ctype)
    assert http_get(site.url + "no-such-file.js")[0] == 404
    b = chrome
    load(b, site)
    assert b.text("#signin-h") == "Sign in"
    assert b.eval("document.getElementById('signin').hidden") is False
    assert b.eval("document.getElementById('account').hidden") is True
    # without a session only the sign-in and the public certificates are offered
    assert b.eval("[...document.querySelectorAll('nav li')].filter(e => !e.hidden).length") == 1
    b.screenshot(os.path.join(artefacts, "signin.png"))
    assert b.errors == []


@needs_chromium
@pytest.mark.engines    # the account and the queue: run on SQLite and PostgreSQL
def test_sign_in_and_switch_the_guarantee_off_for_an_hour(site, chrome, artefacts):
    b = chrome
    load(b, site)
    assert b.eval("document.getElementById('account').hidden") is True
    assert page_api(b, "guarantee")[0] == 401
    b.screenshot(os.path.join(artefacts, "signin.png"))
    sign_in(b)
    b.wait_text("#guarantee-state", "The guarantee is on.")
    assert b.eval("document.getElementById('guarantee-switch').checked") is True
    assert page_api(b, "guarantee")[1]["enabled"] is True

    before = int(time.time())
    b.click("#guarantee-off-hour")
    b.wait_text("#guarantee-state", "off until")
    after = int(time.time())
    status, g = page_api(b, "guarantee")
    # off for a while: the setting stays enabled, but it does not hold until off_until
    assert status == 200 and g["enabled"] is True and g["active"] is False
    assert before + 3600 - 5 <= g["off_until"] <= after + 3600 + 5
    assert b.eval("document.getElementById('guarantee-switch').checked") is False
    # serve's own record says the same; the other user's guarantee is untouched
    me, other = site.user(USER), site.user(OTHER)
    assert me["guarantee_active"] is False
    assert before + 3600 - 5 <= me["guarantee_off_until"] <= after + 3600 + 5
    assert other["guarantee_active"] is True
    b.screenshot(os.path.join(artefacts, "guarantee-off.png"))

    # the switch turns it back on
    b.click("#guarantee-switch")
    b.wait_text("#guarantee-state", "The guarantee is on.")
    g = page_api(b, "guarantee")[1]
    assert g["enabled"] is True and g["active"] is True and g["off_until"] is None
    assert site.user(USER)["guarantee_active"] is True
    assert b.errors == []


@needs_chromium
def test_a_wrong_password_is_refused_and_sign_out_ends_the_session(site, chrome):
    b = chrome
    load(b, site)
    b.type_into("#signin-address", USER)
    b.type_into("#signin-password", "not-" + USER_PW)
    b.click("#signin-submit")
    b.wait("document.getElementById('error').textContent.length > 0", what="an error")
    assert b.eval("document.getElementById('account').hidden") is True
    assert page_api(b, "me")[0] == 401
    # the right password then works (the control)
    sign_in(b)
    assert page_api(b, "me")[1]["address"] == USER
    # sign-out ends the session on the server too: a reload shows the sign-in form
    b.click("#signout")
    b.wait_text("#status", "You are signed out.")
    assert b.eval("document.getElementById('signin').hidden") is False
    assert page_api(b, "me")[0] == 401
    load(b, site)
    assert b.eval("document.getElementById('account').hidden") is True
    assert b.errors == []


@needs_chromium
def test_sign_in_with_the_keyboard_alone(site, chrome, artefacts):
    b = chrome
    load(b, site)
    order = []
    for _ in range(10):
        b.press("Tab")
        order.append(b.focused())
        if order[-1] == "signin-address":
            break
    # skip link, language, the certificates link, then the form
    assert order == ["skip", "lang", "a", "signin-address"], order
    b.type_text(USER)
    b.press("Tab")
    assert b.focused() == "signin-password"
    b.type_text(USER_PW)
    b.press("Enter")
    b.wait_text("#who-address", USER)
    # the focus lands on the first section, and Tab reaches its switch; space flips it
    b.wait("document.activeElement.id === 'guarantee-h'", what="focus on the guarantee")
    b.press("Tab")
    assert b.focused() == "guarantee-switch"
    b.press(" ")
    b.wait_text("#guarantee-state", "The guarantee is off")
    assert page_api(b, "guarantee")[1]["enabled"] is False
    b.screenshot(os.path.join(artefacts, "keyboard.png"), full_page=False)
    assert b.errors == []


@needs_chromium
def test_german_and_english(site, chrome, artefacts):
    b = chrome
    b.accept_language("de-DE,de,en")
    load(b, site)
    assert b.eval("document.documentElement.lang") == "de"
    assert b.text("#signin-h") == "Anmelden"
    assert b.text("h1") == "Einstellungen zur Mail-Sicherheit"
    assert b.eval("document.querySelector('label[for=signin-password]').textContent") == "Passwort"
    sign_in(b)
    b.wait_text("#guarantee-state", "Die Garantie ist an.")
    assert b.text("#held-h") == "Zurückgehaltene Nachrichten"
    b.screenshot(os.path.join(artefacts, "de.png"))

    # the switch changes the language at once, and the choice outlives a reload
    b.eval("(() => { const s = document.getElementById('lang'); s.value = 'en';"
           " s.dispatchEvent(new Event('change')); })()")
    b.wait_text("#guarantee-state", "The guarantee is on.")
    assert b.eval("document.documentElement.lang") == "en"
    assert b.text("#held-h") == "Held messages"
    load(b, site)           # a reload keeps the session (and the language)
    b.wait_text("#guarantee-state", "The guarantee is on.")
    b.screenshot(os.path.join(artefacts, "en.png"))

    # without a choice, an English browser gets English and a German one German
    b.eval("localStorage.clear()")
    b.accept_language("en-US,en")
    load(b, site)
    assert b.text("h1") == "Mail security settings"
    b.accept_language("de-AT")
    load(b, site)
    assert b.text("h1") == "Einstellungen zur Mail-Sicherheit"
    assert b.errors == []


def post_session(site, address, password):
    """(status, JSON) of a password sign-in sent straight to the API."""
    req = urllib.request.Request(site.url + "v1/session", method="POST",
                                 data=json.dumps({"address": address,
                                                  "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@needs_chromium
def test_a_wrong_password_on_the_german_page_is_said_in_german(site, chrome):
    # the API answers with the English text and a code the page translates
    st, j = post_session(site, USER, "not-" + USER_PW)
    assert (st, j) == (401, {"error": "wrong address or password", "code": "wrong_password"})
    b = chrome
    b.accept_language("de-DE,de,en")
    load(b, site)
    st, j = page_api(b, "me")
    assert st == 401 and j["code"] == "not_signed_in" and j["error"]
    assert b.eval("document.documentElement.lang") == "de"
    b.type_into("#signin-address", USER)
    b.type_into("#signin-password", "nicht-" + USER_PW)
    b.click("#signin-submit")
    b.wait("document.getElementById('error').textContent.length > 0", what="an error")
    assert b.text("#error") == read_texts("de")["error.code.wrong_password"]
    assert b.text("#error") == "Falsche Adresse oder falsches Passwort."
    # the control: the same mistake on the English page is said in English
    b.eval("(() => { const s = document.getElementById('lang'); s.value = 'en';"
           " s.dispatchEvent(new Event('change')); })()")
    b.wait("document.documentElement.lang === 'en'", what="English")
    b.type_into("#signin-password", "not-" + USER_PW)
    b.click("#signin-submit")
    b.wait_text("#error", "Wrong address or password.")
    assert b.eval("document.getElementById('account').hidden") is True
    assert b.errors == []


@needs_chromium
def test_phone_sized_screen(site, chrome, artefacts):
    b = chrome
    b.viewport(*PHONE, mobile=True, scale=2)
    load(b, site)
    sign_in(b)
    b.wait_text("#guarantee-state", "The guarantee is on.")
    b.wait("document.querySelectorAll('#certs-body tr').length > 0", what="the certificates")
    assert b.eval("window.innerWidth") == PHONE[0]
    # nothing is wider than the screen: no sideways scrolling
    assert b.eval("document.documentElement.scrollWidth") <= PHONE[0]
    # buttons are big enough for a finger and (nearly) as wide as the screen
    sizes = b.eval("[...document.querySelectorAll('button')].filter(e => e.offsetParent)"
                   ".map(e => [e.id || e.textContent, e.getBoundingClientRect().height,"
                   " e.getBoundingClientRect().width])")
    assert sizes and all(h >= 44 for _, h, _ in sizes), sizes
    assert all(w >= PHONE[0] * 0.8 for _, _, w in sizes), sizes
    # the certificates table is one block per row here, with its header hidden
    assert b.eval("getComputedStyle(document.querySelector('#certs-table td') ||"
                  " document.querySelector('#certs-table th')).display") == "block"
    path = b.screenshot(os.path.join(artefacts, "phone.png"))
    w, h = png_size(path)
    assert w == PHONE[0] * 2 and h > PHONE[1]
    # the control: on a desktop-sized screen the same table is a table
    b.viewport(1280, 900)
    assert b.eval("getComputedStyle(document.querySelector('#certs-table thead')).position") \
        != "absolute"
    assert b.errors == []


UNNAMED = """[...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.getClientRects().length > 0)
  .filter(e => !(e.labels && [...e.labels].some(l => l.textContent.trim()))
               && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.id || e.name || e.tagName)"""

# Relative luminance and contrast ratio (WCAG 2) of an element's text on the page's white.
CONTRAST = """((sel) => {
  const lum = (c) => { const v = c.match(/[\\d.]+/g).slice(0, 3).map(x => x / 255)
    .map(x => x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
    return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const e = document.querySelector(sel); const s = getComputedStyle(e);
  let bg = s.backgroundColor; let p = e;
  while (/rgba\\(.*, 0\\)|transparent/.test(bg) && p.parentElement) {
    p = p.parentElement; bg = getComputedStyle(p).backgroundColor; }
  if (/rgba\\(.*, 0\\)|transparent/.test(bg)) bg = 'rgb(255, 255, 255)';
  const a = lum(s.color), b = lum(bg);
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); })"""


@needs_chromium
def test_screen_reader_labels_landmarks_and_contrast(site, chrome):
    b = chrome
    load(b, site)
    assert b.eval(UNNAMED) == []
    sign_in(b)
    b.wait_text("#guarantee-state", "The guarantee is on.")
    b.eval("document.getElementById('mig-preset').value = 'other';"
           "document.getElementById('mig-preset').dispatchEvent(new Event('change'))")
    assert b.eval(UNNAMED) == []
    # the control: an input without a label is found
    b.eval("document.getElementById('keys').append(Object.assign("
           "document.createElement('input'), {id: 'stray'}))")
    assert b.eval(UNNAMED) == ["stray"]
    b.eval("document.getElementById('stray').remove()")

    # what a screen reader gets: Chromium's accessibility tree
    b.send("Accessibility.enable")
    nodes = b.send("Accessibility.getFullAXTree")["nodes"]
    shown = [n for n in nodes if not n.get("ignored")]
    roles = [n.get("role", {}).get("value") for n in shown]
    for landmark in ("banner", "navigation", "main", "contentinfo"):
        assert landmark in roles, landmark
    controls = [n for n in shown if n.get("role", {}).get("value") in
                ("textbox", "combobox", "checkbox", "switch", "button", "link",
                 "progressbar")]
    assert len(controls) >= 15
    unnamed = [n["role"]["value"] for n in controls if not n.get("name", {}).get("value")]
    assert unnamed == []
    assert any(n.get("role", {}).get("value") == "switch" and
               n["name"]["value"] == "Guarantee on" for n in controls)
    # changes are announced: status and error live regions, and the migration's progress
    for sel, live in (("#status", "polite"), ("#error", "assertive"),
                      ("#guarantee-state", "polite"), ("#mig-live", "polite")):
        assert b.eval("document.querySelector('%s').getAttribute('aria-live')" % sel) == live
    # text contrast at least 4.5:1 (WCAG AA)
    for sel in ("body", "h2", "label", ".hint", "#status", "#error", "button",
                "button.remove", "nav a", "#guarantee-state"):
        if b.eval("!!document.querySelector('%s')" % sel):
            ratio = b.eval(CONTRAST + "('%s')" % sel)
            assert ratio >= 4.5, (sel, ratio)
    assert b.errors == []


@needs_chromium
@pytest.mark.engines    # the account and the queue: run on SQLite and PostgreSQL
def test_held_messages_are_released_from_the_page(site, chrome, artefacts, zones, pf_plain,
                                                  pf_notify):
    plain = zones.mx("insecure.test", mailcheck.uniq("held"), pf_plain.addr)
    zones.publish()
    r = site.relay
    rcpts = ["carol@" + plain, "dave@" + plain, "erin@" + plain]
    subjects = ["Quarterly report " + mailcheck.uniq(""), "Minutes", "Agenda"]
    for rcpt, subject in zip(rcpts, subjects):
        assert r.send(USER, [rcpt], mailcheck.message(USER, [rcpt], subject)) == {}
    r.wait_queue(lambda q: sum(mailcheck.rcpt_states(x).get(a) == "held"
                               for x in q for a in rcpts) == 3,
                 timeout=60, what="three held recipients")
    b = chrome
    load(b, site)
    sign_in(b)
    b.wait("document.querySelectorAll('#held-list > li').length === 3", what="three held")
    qid = b.eval("[...document.querySelectorAll('#held-list > li')]"
                 ".find(e => e.innerText.includes(%s)).dataset.id" % json.dumps(subjects[0]))
    first = '#held-list > li[data-id="%s"]' % qid
    item = b.text(first)
    assert rcpts[0] in item and "Release" in item
    assert "does not offer STARTTLS" in item, item          # why it was held
    assert b.eval("document.getElementById('held-empty').hidden") is True
    b.screenshot(os.path.join(artefacts, "held.png"))
    assert not any(pf_plain.messages(a) for a in rcpts)      # held until released
    b.click(first + " button.release")
    b.wait_text("#status", "Released")
    pf_plain.wait_for_message(rcpts[0], timeout=60)
    b.wait("document.querySelectorAll('#held-list > li').length === 2", what="two left")
    assert subjects[0] not in b.text("#held-list")
    assert not any(pf_plain.messages(a) for a in rcpts[1:])  # only that one went
    b.click("#held-release-all")
    b.wait_text("#status", "All held messages go out now.")
    for a in rcpts[1:]:
        pf_plain.wait_for_message(a, timeout=60)
    b.wait("document.getElementById('held-list').children.length === 0", what="an empty list")
    assert b.eval("document.getElementById('held-empty').hidden") is False
    assert b.errors == []


@needs_chromium
def test_a_move_from_another_server_reaches_100_percent(site, chrome, artefacts, workdir,
                                                        test_ca):
    old = dovecot.start(workdir, "old", users={OLD_USER: OLD_PW}, ca=test_ca,
                        hostname=OLD_HOST)
    try:
        conn = old.login(OLD_USER, OLD_PW)
        filled = mailbox.fill(conn, count=300, seed=11)
        conn.logout()
        b = chrome
        load(b, site)
        sign_in(b)
        b.eval("(() => { const s = document.getElementById('mig-preset'); s.value = 'gmx';"
               " s.dispatchEvent(new Event('change')); })()")
        assert "IMAP" in b.text("#mig-advice")            # the preset's advice
        assert b.eval("document.getElementById('mig-server-row').hidden") is True
        b.eval("(() => { const s = document.getElementById('mig-preset'); s.value = 'other';"
               " s.dispatchEvent(new Event('change')); })()")
        b.type_into("#mig-server", "%s:%d" % (OLD_HOST, old.imaps_port))
        b.type_into("#mig-user", OLD_USER)
        b.type_into("#mig-password", OLD_PW)
        b.type_into("#mig-own", USER_PW)
        b.click("#mig-start")
        b.wait("!document.getElementById('mig-progress').hidden", what="the progress")
        seen = []
        deadline = time.time() + 300
        while time.time() < deadline:
            seen.append(b.eval("document.getElementById('mig-bar').value"))
            if "Done" in b.text("#mig-text"):
                break
            time.sleep(0.2)
        assert b.eval("document.getElementById('mig-bar').value") == 100
        assert seen == sorted(seen)                      # the bar only moves forward
        assert b.text("#mig-text").startswith("Done: all your mail was copied.")
        assert b.text("#mig-live").startswith("Done")
        assert b.eval("document.getElementById('mig-cancel').hidden") is True
        # the passwords are gone from the form
        assert b.eval("document.getElementById('mig-password').value") == ""
        b.screenshot(os.path.join(artefacts, "moved.png"))
        s, d = old.login(OLD_USER, OLD_PW), site.imap.login(USER, USER_PW)
        try:
            assert mailbox.compare(s, d) == []
        finally:
            s.logout()
            d.logout()
        assert filled["messages"] > 0
    finally:
        dovecot.stop(old)
    assert b.errors == []


KEYS_USER, KEYS_PW = "anna@keys.test", "Ann4-Pa55word!"


@pytest.fixture
def keyzone(workdir):
    """Knot as the primary of keys.test, where the key directory publishes."""
    z = KeyZone(os.path.join(workdir, "keyzone"), zone="keys.test", mode="nsec")
    pw_logs.register("keyzone", z.log_path)
    z.start()
    yield z
    z.stop()
    pw_logs.unregister("keyzone")


@pytest.fixture
def gpg():
    home = tempfile.mkdtemp(prefix="pwp", dir="/tmp")   # the agent's socket path is short
    g = pk.GnuPG(home)
    yield g
    os.system("GNUPGHOME=%s gpgconf --kill all >/dev/null 2>&1" % home)
    shutil.rmtree(home, ignore_errors=True)


@needs_chromium
def test_a_key_uploaded_on_the_page_validates_in_dns_and_is_removed(
        workdir, make_relay, test_ca, keyzone, gpg, chrome, artefacts):
    s = start_site(workdir, make_relay, test_ca, {KEYS_USER: KEYS_PW},
                   dns_unbound_config=keyzone.unbound_conf, **keyzone.keydir_options())
    try:
        fpr = gpg.make_key(KEYS_USER)
        b = chrome
        load(b, s)
        sign_in(b, KEYS_USER, KEYS_PW)
        b.wait_text("#keys-empty", "No key is published.")
        # the control: nothing that is not a key is published
        b.type_into("#key-text", "hello")
        b.click("#key-upload")
        b.wait("document.getElementById('error').textContent.length > 0", what="an error")
        assert b.eval("document.getElementById('keys-list').children.length") == 0
        b.type_into("#key-text", gpg.export(fpr).decode())
        b.click("#key-upload")
        b.wait_text("#status", "The key is published.")
        b.wait("document.getElementById('keys-list').innerText.toUpperCase().includes('%s')"
               % fpr.upper(), what="the key's fingerprint")
        b.wait_text("#keys-list", "(validates)", timeout=90)
        k = page_api(b, "keys")[1]["keys"][0]
        names = [p["name"] for p in k["published"] if p["kind"] == "dns"]
        assert names and all(p["validates"] for p in k["published"] if p["kind"] == "dns")
        for n in names:       # what the page shows is what DNS has, signed
            assert keyzone.rdatas(n, "OPENPGPKEY")
            assert "(secure)" in keyzone.unbound_host(n, "OPENPGPKEY").stdout
        b.screenshot(os.path.join(artefacts, "key.png"))
        b.click("#keys-list button.remove")
        b.wait_text("#status", "The key is removed.")
        assert b.eval("document.getElementById('keys-empty').hidden") is False
        for n in names:
            keyzone.wait_rdatas(n, "OPENPGPKEY", [], timeout=30)
        assert b.errors == []
    finally:
        dovecot.stop(s.imap)


@needs_chromium
def test_certificates_are_shown_without_sign_in(workdir, make_relay, test_ca, chrome,
                                                artefacts):
    cert = test_ca.issue("mx.other.test", stem="relay-cert")
    s = start_site(workdir, make_relay, test_ca, {USER: USER_PW},
                   relay_tls_cert=cert.cert_path, relay_tls_key=cert.key_path)
    try:
        b = chrome
        b.viewport(*PHONE, mobile=True)
        load(b, s)
        assert b.eval("document.getElementById('account').hidden") is True
        b.wait_text("#certs-body", "mx.other.test")
        row = b.text("#certs-body tr")
        hexes = [re.sub(r"[^0-9a-f]", "", c.lower()) for c in
                 b.eval("[...document.querySelectorAll('#certs-body tr code')]"
                        ".map(e => e.textContent)")]
        assert hexes == [hashlib.sha256(cert.der()).hexdigest(),
                         hashlib.sha256(cert.spki_der()).hexdigest()], row
        year = str(cert.cert.not_valid_after.year)
        assert year in row
        b.screenshot(os.path.join(artefacts, "certificates-phone.png"))
        assert b.errors == []
    finally:
        dovecot.stop(s.imap)


@needs_chromium
def test_a_running_move_is_shown_again_after_a_reload_and_cancelled(
        workdir, make_relay, test_ca, chrome):
    old = dovecot.start(workdir, "old", users={OLD_USER: OLD_PW}, ca=test_ca,
                        hostname=OLD_HOST)
    s = start_site(workdir, make_relay, test_ca, {USER: USER_PW}, migrate_connections="1")
    try:
        conn = old.login(OLD_USER, OLD_PW)
        mailbox.fill(conn, count=2500, seed=12)
        conn.logout()
        b = chrome
        load(b, s)
        sign_in(b)
        assert b.eval("document.getElementById('mig-progress').hidden") is True
        b.eval("(() => { const s = document.getElementById('mig-preset'); s.value = 'other';"
               " s.dispatchEvent(new Event('change')); })()")
        b.type_into("#mig-server", "%s:%d" % (OLD_HOST, old.imaps_port))
        b.type_into("#mig-user", OLD_USER)
        b.type_into("#mig-password", OLD_PW)
        b.type_into("#mig-own", USER_PW)
        b.click("#mig-start")
        b.wait_text("#mig-text", "% copied", timeout=60)
        load(b, s)          # the page forgets everything but the session
        b.wait_text("#mig-text", "% copied", timeout=30)
        assert b.eval("document.getElementById('mig-cancel').hidden") is False
        b.click("#mig-cancel")
        b.wait_text("#mig-text", "The move was cancelled.", timeout=120)
        assert b.eval("document.getElementById('mig-bar').value") < 100
        assert b.eval("document.getElementById('mig-cancel').hidden") is True
        jobs = b.eval("fetch('v1/migrations').then(r => r.json())")["jobs"]
        assert [j["state"] for j in jobs] == ["cancelled"]
        assert b.errors == []
    finally:
        dovecot.stop(s.imap)
        dovecot.stop(old)
