"""The Roundcube plugin (contrib/roundcube/postwarden) in a real Roundcube 1.6 (Debian's
packages, pwtest/roundcube.py) against the Dovecot fixture: its SSO assertion is what
postwarden's contract asks for, it loads into the compose window and the settings, and it
says so when postwarden cannot be reached; in headless Chromium (pwtest/browser.py) the
compose window gets a lock and a key icon per recipient, with the reason as their title,
that follow the recipients as they change.

Screenshots are test artefacts: they stay in build/test-artefacts/roundcube-plugin/<test>/
($PW_ARTEFACTS overrides build/test-artefacts)."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

import pytest

from pwtest import browser as pw_browser
from pwtest.hostile import SilentMx
from pwtest import relay as pw_relay
from pwtest import roundcube as pw_roundcube

PLUGIN = os.path.join(pw_relay.REPO_ROOT, "contrib", "roundcube", "postwarden")
USER = "alice@example.test"
PASSWORD = "pw-alice"
SECRET = "0123456789abcdef0123456789abcdef-sso"

needs_chromium = pytest.mark.skipif(pw_browser.binary() is None,
                                    reason="chromium is missing (scripts/install-deps.sh --test)")


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def php_assertion(address, secret, now):
    code = ('require %r; echo postwarden_client::assertion($argv[1], $argv[2], (int) $argv[3]);'
            % os.path.join(PLUGIN, "postwarden_client.php"))
    r = subprocess.run(["php", "-r", code, address, secret, str(now)], capture_output=True,
                       text=True, timeout=30, check=True)
    return r.stdout


def test_sso_assertion_as_the_contract_says():
    now = int(time.time())
    a = php_assertion(USER, SECRET, now)
    head, sig = a.split(".")
    assert "=" not in a and "+" not in a and "/" not in a     # base64url without padding
    want = hmac.new(SECRET.encode(), head.encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(sig), want)
    payload = json.loads(b64url_decode(head))
    assert payload["sub"] == USER
    assert now < payload["exp"] <= now + 300
    # a control: another secret does not verify
    other = hmac.new(b"x" * 32, head.encode(), hashlib.sha256).digest()
    assert not hmac.compare_digest(b64url_decode(sig), other)


def php_labels(lang):
    """The label names of one localization file, read by PHP itself."""
    code = 'include $argv[1]; echo json_encode(array_keys($labels));'
    r = subprocess.run(["php", "-r", code, os.path.join(PLUGIN, "localization", lang + ".inc")],
                       capture_output=True, text=True, timeout=30, check=True)
    return set(json.loads(r.stdout))


def test_plugin_sources_lint_and_texts_exist_in_both_languages():
    import re
    for name in ("postwarden.php", "postwarden_client.php", "config.inc.php.dist",
                 "localization/en_US.inc", "localization/de_DE.inc"):
        r = subprocess.run(["php", "-l", os.path.join(PLUGIN, name)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    en, de = php_labels("en_US"), php_labels("de_DE")
    assert en == de
    with open(os.path.join(PLUGIN, "postwarden.php")) as f:
        php = f.read()
    with open(os.path.join(PLUGIN, "postwarden.js")) as f:
        js = f.read()
    used = set(re.findall(r"gettext\('([a-z0-9]+)'\)", php))
    used |= set(re.findall(r"'name' => '([a-z0-9]+)'", php))
    used |= set(re.findall(r"label\('([a-z0-9]+)'\)", js))
    used |= set(re.findall(r"\b(lock(?:dane|tls|stop|plain|unknown))\b", js))
    used |= set(re.findall(r"\$this->section\('[a-z]+', '([a-z]+)'", php))
    assert len(used) > 20
    assert sorted(used - en) == []
    # a control: a name that is not there is found missing
    assert "nosuchlabel" not in en


def start_webmail(workdir, dovecot, api_url, language="en_US", **config):
    conf = {"postwarden_api_url": api_url, "postwarden_sso_secret": SECRET}
    conf.update(config)
    rc = pw_roundcube.Roundcube(os.path.join(workdir, "roundcube"), dovecot.port,
                                plugins=["postwarden"], extra_plugins={"postwarden": PLUGIN},
                                plugin_config=conf, language=language)
    return rc.start()


IMAP_HOST = "imap.example.test"
OLD_HOST, OLD_USER, OLD_PASSWORD = "old.example.test", "ann@old.example.test", "pw-old"


@pytest.fixture
def imap(make_dovecot):
    """The provider's IMAP server: Roundcube's, and the destination of a move to us (over
    TLS with the test CA as IMAP_HOST; Roundcube itself logs in on the plain port)."""
    return make_dovecot("imap", users={USER: PASSWORD}, hostname=IMAP_HOST)


def assert_no_php_errors(rc, allowed=()):
    """Neither the web server nor Roundcube's error log has a PHP error, warning or notice
    (the plugin's own "postwarden: ..." lines are expected there, and lines containing one
    of allowed)."""
    for text in (rc.log(), rc.errors()):
        text = "\n".join(l for l in text.splitlines() if not any(a in l for a in allowed))
        for word in ("PHP Fatal", "PHP Warning", "PHP Notice", "PHP Deprecated", "PHP Error"):
            assert word not in text, text[-2000:]


def compose(client):
    status, url, page = client.get("./?_task=mail&_action=compose")
    assert status == 200 and "_action=compose" in url
    return page


def test_plugin_without_postwarden(workdir, imap):
    """postwarden is not reachable (nothing listens): the plugin is loaded, and what it
    shows says that postwarden cannot be reached; Roundcube itself keeps working."""
    from pwtest import net
    dead = "http://127.0.0.1:%d" % net.free_port()
    rc = start_webmail(workdir, imap, dead)
    try:
        c = rc.client()
        c.login(USER, PASSWORD)
        page = compose(c)
        assert "plugins/postwarden/postwarden.js" in page
        assert pw_roundcube.env_value(page, "postwarden_compose") is True
        ans = c.ajax("mail", "plugin.postwarden-status", method="POST",
                     _recipients=json.dumps(["bob@dane.test"]))
        cb = dict((x[0], x[1]) for x in ans.get("callbacks", []))
        assert "cannot be reached" in cb["plugin.postwarden_status"]["error"]
        # the settings list the section; its page shows the error in each part
        status, _, page = c.get("./?_task=settings")
        assert "plugin.postwarden" in page
        status, _, page = c.get("./?_task=settings&_action=plugin.postwarden&_framed=1")
        assert status == 200 and 'id="postwarden-guarantee"' in page
        assert page.count("postwarden cannot be reached") == 5     # each section
        assert "Mail security" in page
    finally:
        rc.stop()
    assert_no_php_errors(rc)


def test_compose_icons_can_be_switched_off(workdir, imap):
    rc = start_webmail(workdir, imap, "http://127.0.0.1:9", postwarden_compose_status=False)
    try:
        c = rc.client()
        c.login(USER, PASSWORD)
        page = compose(c)
        assert "plugins/postwarden/postwarden.js" not in page
        assert pw_roundcube.env_value(page, "postwarden_compose") is None
    finally:
        rc.stop()
    assert_no_php_errors(rc)


# -- in Chromium ---------------------------------------------------------------------------

def artefacts(request):
    base = os.environ.get("PW_ARTEFACTS") or os.path.join(pw_relay.REPO_ROOT, "build",
                                                          "test-artefacts")
    d = os.path.join(base, "roundcube-plugin", request.node.name)
    os.makedirs(d, exist_ok=True)
    return d


@pytest.fixture
def browser(workdir):
    b = pw_browser.Browser(os.path.join(workdir, "chromium"))
    yield b
    b.close()


def browser_login(b, rc):
    b.open(rc.url + "?_task=login")
    b.wait_selector("#rcmloginuser")
    b.type_into("#rcmloginuser", USER)
    b.type_into("#rcmloginpwd", PASSWORD)
    b.click("#rcmloginsubmit")
    b.wait("window.rcmail && rcmail.env.task === 'mail' && document.readyState === 'complete'",
           what="the mail view after login")
    settle(b)


def settle(b):
    """Wait until the page has no request of its own running. Roundcube writes the whole
    session at the end of each request: the message list's request, if it ends after the
    next page's, takes that page's state (a compose ID) away."""
    b.wait("window.rcmail && !rcmail.busy && window.jQuery && jQuery.active === 0",
           timeout=60, what="the page's own requests to end")


def open_compose(b, rc):
    b.open(rc.url + "?_task=mail&_action=compose")
    try:
        b.wait("window.rcmail && rcmail.env.compose_id && "
               "document.querySelector('#_to + ul.recipient-input input')",
               timeout=60, what="the compose window")   # PHP's built-in server, under load
    except pw_browser.BrowserError:
        page = b.eval("location.href + ' | ' + document.title + ' | ' + "
                      "(document.body ? document.body.innerText.slice(0, 500) : '')")
        raise pw_browser.BrowserError("no compose window; the page: %s\n%s" % (
            page, rc.errors()[-2000:]))


def add_recipients(b, field, addresses):
    """Type the addresses into the field's recipient box as a user does; Enter makes the
    boxes."""
    sel = "#%s + ul.recipient-input input" % field
    b.wait("(() => { const e = document.querySelector(%s); return e && "
           "e.getClientRects().length > 0; })()" % json.dumps(sel), what=sel)
    b.focus(sel)
    b.type_text(" ".join(addresses))
    b.press("Enter")


ICONS_JS = """(() => {
  const out = {};
  for (const li of document.querySelectorAll('ul.recipient-input li.recipient')) {
    const icons = li.querySelector('.postwarden-icons');
    if (!icons) continue;
    const lock = icons.querySelector('.postwarden-lock'), key = icons.querySelector('.postwarden-key');
    out[icons.dataset.address] = {lock: lock.dataset.state, lock_title: lock.title,
      key: key.dataset.state, key_title: key.title,
      shown: lock.getClientRects().length > 0 && key.getClientRects().length > 0};
  }
  return out;
})()"""


def compose_icons(b):
    return b.eval(ICONS_JS)


def wait_icons(b, addresses, known=True, timeout=30):
    """Wait until exactly these addresses have icons (with known, answered ones too);
    return the icons."""
    want = sorted(addresses)
    deadline = time.monotonic() + timeout
    while True:
        icons = compose_icons(b)
        if sorted(icons) == want and (
                not known or all(i["lock"] != "unknown" for i in icons.values())):
            return icons
        if time.monotonic() > deadline:
            raise AssertionError("icons: %r, wanted %r" % (icons, want))
        time.sleep(0.2)


def test_settings_in_german(workdir, imap):
    rc = start_webmail(workdir, imap, "http://127.0.0.1:9", language="de_DE")
    try:
        c = rc.client()
        c.login(USER, PASSWORD)
        status, _, page = c.get("./?_task=settings&_action=plugin.postwarden&_framed=1")
        assert status == 200
        for text in ("Mail-Sicherheit", "TLS-Versandgarantie", "Zur\u00fcckgehaltene Nachrichten",
                     "Schl\u00fcssel", "Umzug zu uns", "Benachrichtigungen (letzte 7 Tage)"):
            assert text in page
        assert "Held messages" not in page and "Notifications" not in page
    finally:
        rc.stop()
    assert_no_php_errors(rc)


@needs_chromium
def test_compose_icons_in_chromium_without_postwarden(request, workdir, imap, browser):
    """postwarden out of reach (a refused port): each recipient still gets its two icons,
    grey, with the reason on hover; they follow the recipients as they change."""
    from pwtest import net
    rc = start_webmail(workdir, imap, "http://127.0.0.1:%d" % net.free_port())
    out = artefacts(request)
    try:
        b = browser
        browser_login(b, rc)
        open_compose(b, rc)
        add_recipients(b, "_to", ["bob@dane.test", "carol@plain.test"])
        icons = wait_icons(b, ["bob@dane.test", "carol@plain.test"], known=False)
        b.wait("+document.body.dataset.postwardenAnswers > 0", what="the plugin's answer")
        icons = compose_icons(b)
        for a in ("bob@dane.test", "carol@plain.test"):
            assert icons[a]["shown"]
            assert icons[a]["lock"] == "unknown" and icons[a]["key"] == "unknown"
            assert icons[a]["lock_title"].startswith("postwarden could not be asked: ")
            assert "cannot be reached" in icons[a]["key_title"]
        b.screenshot(os.path.join(out, "compose-unreachable.png"), full_page=False)
        # a recipient removed takes its icons along; one added gets its own
        b.click("ul.recipient-input li.recipient:first-of-type a.button.icon.remove")
        wait_icons(b, ["carol@plain.test"], known=False)
        add_recipients(b, "_to", ["dave@key.test"])
        wait_icons(b, ["carol@plain.test", "dave@key.test"], known=False)
        assert b.errors == []
    finally:
        rc.stop()
    assert_no_php_errors(rc)


# -- against real serve -------------------------------------------------------------------

WWW = os.path.join(pw_relay.REPO_ROOT, "www")


class World:
    """serve with the account listener (SSO with SECRET) and key search on DNS, the test
    zones with a DANE domain, a plaintext-only domain and a DANE domain whose user has an
    OPENPGPKEY record, the Dovecot fixture and Roundcube with the plugin."""

    def __init__(self, relay, api_url, imap, rc, dane, plain, keyed, key):
        self.relay, self.api_url, self.imap, self.rc = relay, api_url, imap, rc
        self.dane, self.plain, self.keyed, self.key = dane, plain, keyed, key
        self.allowed_errors = []

    def user(self):
        return self.relay.pw_json("user", "show", USER)


@pytest.fixture
def world(workdir, make_relay, zones, pf_tls, pf_plain, imap, test_ca):
    from pwtest import keys as pk
    from pwtest import mailcheck, net
    from pwtest import searchkeys as sk
    factory = sk.KeyFactory()
    try:
        dane = "bob@" + zones.mx("example.test", mailcheck.uniq("rcdane"), pf_tls.addr,
                                 tlsa=[pf_tls.cert.tlsa_311()])
        plain = "carol@" + zones.mx("example.test", mailcheck.uniq("rcplain"), pf_plain.addr)
        keyed = "dana@" + zones.mx("example.test", mailcheck.uniq("rckey"), pf_tls.addr,
                                   tlsa=[pf_tls.cert.tlsa_311()])
        key = factory.good(keyed)
    finally:
        factory.close()
    zones.raw("example.test", pk.dane_owner(keyed) + ".", "OPENPGPKEY", key.openpgpkey_rdata())
    zones.publish()
    port = net.free_port("127.0.0.1")
    relay = make_relay(start=False, guarantee_default="off",
                       relay_trusted_networks="127.0.0.1/32",
                       account_listen="127.0.0.1:%d" % port, account_www_dir=WWW,
                       account_sso_secret=SECRET, account_insecure_cookie="on",
                       keysearch_sources="local, dns",
                       migrate_destination="imaps://%s:%d" % (IMAP_HOST, imap.imaps_port),
                       migrate_ca_file=test_ca.cert_path, migrate_allow_private="on",
                       migrate_hosts="%s=127.0.0.1, %s=127.0.0.1" % (IMAP_HOST, OLD_HOST))
    relay.start()
    net.wait_port("127.0.0.1", port, timeout=20, proc=relay.proc)
    relay.pw("user", "add", USER, check=True)
    api_url = "http://127.0.0.1:%d" % port
    rc = start_webmail(workdir, imap, api_url)
    w = World(relay, api_url, imap, rc, dane, plain, keyed, key)
    yield w
    rc.stop()
    assert_no_php_errors(rc, allowed=w.allowed_errors)


def check_statuses(by_addr, w):
    """The three recipients as the contract says they must be."""
    assert by_addr[w.dane]["transport"] == "dane" and by_addr[w.dane]["key"] is None
    assert by_addr[w.plain]["transport"] == "plaintext" and by_addr[w.plain]["key"] is None
    assert by_addr[w.keyed]["transport"] == "dane"
    k = by_addr[w.keyed]["key"]
    assert k["type"] == "openpgp"
    assert k["fingerprint"].replace(" ", "").upper() == w.key.fpr.upper()
    for e in by_addr.values():
        assert e["reason"]


def test_status_through_the_plugin_with_serve(world):
    """Roundcube's server signs in to serve by SSO and asks for the recipients' status
    (HTTP, as the compose window's script does); a control address of another user's
    session is not needed: the plugin asks as the logged-in user only."""
    c = world.rc.client()
    c.login(USER, PASSWORD)
    compose(c)
    ans = c.ajax("mail", "plugin.postwarden-status", method="POST",
                 _recipients=json.dumps([world.dane, world.plain, world.keyed.upper()]))
    cb = dict((x[0], x[1]) for x in ans.get("callbacks", []))
    got = cb["plugin.postwarden_status"]
    assert "error" not in got, got
    check_statuses({e["address"]: e for e in got["recipients"]}, world)
    # with the guarantee on, the plaintext-only domain's mail would be held
    world.relay.pw("user", "guarantee", USER, "on", check=True)
    ans = c.ajax("mail", "plugin.postwarden-status", method="POST",
                 _recipients=json.dumps([world.plain, world.dane]))
    got = dict((x[0], x[1]) for x in ans["callbacks"])["plugin.postwarden_status"]
    by_addr = {e["address"]: e for e in got["recipients"]}
    assert by_addr[world.plain]["transport"] == "stop" and by_addr[world.plain]["reason"]
    assert by_addr[world.dane]["transport"] == "dane"


SETTINGS = "./?_task=settings&_action=plugin.postwarden&_framed=1"


def submit(client, page, op, **fields):
    """Send the settings page's form for op (its hidden fields, the request token among
    them) with more fields; (status, URL, page that follows)."""
    import re
    m = re.search(r'<form[^>]*>(?:(?!</form>).)*?data-op="%s"' % op, page, re.S)
    assert m, "no form for %s" % op
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                           m.group(0)))
    data.update(fields)
    return client.request("./?_task=settings&_action=plugin.postwarden-do", data=data)


def test_guarantee_switched_in_roundcube_settings(world):
    """The settings section, through SSO: the guarantee is off, turned on with the
    section's form; serve's own record of the user agrees; then off for an hour."""
    c = world.rc.client()
    c.login(USER, PASSWORD)
    page_url = "./?_task=settings&_action=plugin.postwarden&_framed=1"
    status, _, page = c.get(page_url)
    assert status == 200 and "The guarantee is off." in page
    assert world.user()["guarantee_active"] is False

    status, _, page = submit(c, page, "guarantee-on")
    assert status == 200 and "The guarantee is on." in page
    assert world.user()["guarantee_active"] is True
    status, _, page = submit(c, page, "guarantee-off-1h")
    assert world.user()["guarantee_active"] is False
    assert world.user()["guarantee_off_until"] > time.time() + 3000
    assert "The guarantee is off until" in page
    # a control: the same form without the request token is refused by Roundcube
    world.allowed_errors.append("Request security check failed")
    status, _, page = c.request("./?_task=settings&_action=plugin.postwarden-do",
                                data={"_op": "guarantee-on"})
    assert "The guarantee is" not in page
    assert "Request security check failed" in world.rc.errors()
    assert world.user()["guarantee_active"] is False


@needs_chromium
def test_compose_icons_in_chromium_with_serve(request, world, browser):
    """The compose window in Chromium shows the right lock and key per recipient: DANE
    without a key, plaintext-only, DANE with a key; the titles carry serve's reasons."""
    b = browser
    out = artefacts(request)
    browser_login(b, world.rc)
    open_compose(b, world.rc)
    add_recipients(b, "_to", [world.dane, world.plain])
    wait_icons(b, [world.dane, world.plain])
    # one more recipient later: it gets its own answer and icons
    add_recipients(b, "_to", [world.keyed])
    icons = wait_icons(b, [world.dane, world.plain, world.keyed])
    b.screenshot(os.path.join(out, "compose-icons.png"), full_page=False)
    assert all(i["shown"] for i in icons.values())
    assert icons[world.dane]["lock"] == "dane" and icons[world.dane]["key"] == "none"
    assert icons[world.plain]["lock"] == "plaintext" and icons[world.plain]["key"] == "none"
    assert icons[world.keyed]["lock"] == "dane" and icons[world.keyed]["key"] == "found"
    assert icons[world.dane]["lock_title"].startswith("Encrypted, verified by DANE: ")
    assert icons[world.plain]["lock_title"].startswith(
        "Leaves without verified encryption: ")
    assert world.key.fpr.upper() in icons[world.keyed]["key_title"].replace(" ", "").upper()
    assert icons[world.dane]["key_title"] == "No key found"
    assert b.errors == []
    # the settings section as Roundcube shows it (leaving the unsent message without
    # Roundcube's "discard?" question, which would wait for an answer)
    b.eval("rcmail.compose_skip_unsavedcheck = true")
    b.open(world.rc.url + "?_task=settings&_action=plugin.postwarden")
    b.wait_text("#postwarden-guarantee legend", "TLS-sending guarantee")
    assert "The guarantee is off." in b.text("#postwarden-guarantee")
    b.screenshot(os.path.join(out, "settings.png"))
    assert b.errors == []


def test_held_message_released_in_roundcube_settings(world, pf_plain):
    """With the guarantee on, a message to the plaintext-only domain is held; the settings
    section lists it with the recipient and the reason, and its Release button sends it."""
    from pwtest import mailcheck
    r = world.relay
    r.pw("user", "guarantee", USER, "on", check=True)
    subject = "Held for Roundcube " + mailcheck.uniq("")
    assert r.send(USER, [world.plain], mailcheck.message(USER, [world.plain], subject)) == {}
    r.wait_queue(lambda q: any(mailcheck.rcpt_states(x).get(world.plain) == "held" for x in q),
                 timeout=60, what="the held recipient")
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    assert status == 200 and subject in page and world.plain + ": " in page
    assert "No message is held." not in page
    assert not pf_plain.messages(world.plain)       # held until released
    status, _, page = submit(c, page, "release")
    assert status == 200 and "Done." in page
    pf_plain.wait_for_message(world.plain, timeout=60)
    status, _, page = c.get(SETTINGS)
    assert "No message is held." in page and subject not in page


def test_key_published_and_removed_in_roundcube_settings(world):
    """The keys section: the user's key pasted into the form is published (listed with its
    fingerprint and its DNS name), then removed with its Remove button; another address's
    key is refused with postwarden's reason."""
    from pwtest import searchkeys as sk
    factory = sk.KeyFactory()
    try:
        mine = factory.good(USER)
        other = factory.good("mallory@example.test")
    finally:
        factory.close()
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    assert "No key is published for you." in page
    status, _, page = submit(c, page, "key-add", _key=other.armored)
    assert "postwarden-notice postwarden-error" in page and "Done." not in page
    assert "The key was refused: " in page and "mallory@example.test" in page
    assert "No key is published for you." in page
    status, _, page = submit(c, page, "key-add", _key=mine.armored)
    assert "Done." in page, page[page.find("postwarden-settings"):][:1500]
    assert mine.fpr.upper() in page.replace(" ", "").upper()
    assert "_openpgpkey.example.test" in page
    status, _, page = submit(c, page, "key-remove")
    assert "Done." in page and "No key is published for you." in page


def test_postwarden_errors_said_in_german(world):
    """A refused key in a German Roundcube: the plugin says it in German by postwarden's
    error code, with postwarden's detail (the address the key carries); so is a refused
    migration body, whose code the account listener adds to the jobs' own answer."""
    from pwtest import searchkeys as sk
    factory = sk.KeyFactory()
    try:
        other = factory.good("mallory@example.test")
    finally:
        factory.close()
    world.rc.language = "de_DE"
    world.rc.write_config()             # read at each request; the user is new
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    assert status == 200 and "Schl\u00fcssel" in page
    status, _, page = submit(c, page, "key-add", _key=other.armored)
    assert "postwarden-notice postwarden-error" in page
    assert "Der Schl\u00fcssel wurde abgelehnt: " in page and "mallory@example.test" in page
    assert "The key was refused" not in page
    # the migration jobs' 400 for a source that is neither a preset nor an IMAP URL
    status, _, page = submit(c, page, "migration-start", _preset="other",
                             _source="ftp://old.example.test", _source_user=OLD_USER,
                             _source_password=OLD_PASSWORD)
    assert "postwarden hat das nicht angenommen: source: not a preset" in page, \
        page[page.find("postwarden-notice"):][:500]


def sso_signins(relay):
    return [l for l in relay.log_lines("account_signin") if "method=sso" in l]


def test_one_sso_session_reused_and_renewed_when_it_ends(world):
    """The plugin signs in once per Roundcube session and reuses postwarden's session;
    when postwarden has ended it (idle timeout), the next call signs in again by itself."""
    c = world.rc.client()
    c.login(USER, PASSWORD)

    def status(addr):
        ans = c.ajax("mail", "plugin.postwarden-status", method="POST",
                     _recipients=json.dumps([addr]))
        got = dict((x[0], x[1]) for x in ans["callbacks"])["plugin.postwarden_status"]
        assert "error" not in got, got
        return got["recipients"][0]

    assert status(world.dane)["transport"] == "dane"
    assert status(world.plain)["transport"] == "plaintext"
    status(world.keyed)
    ok = [l for l in sso_signins(world.relay) if "result=ok" in l]
    assert len(ok) == 1
    # postwarden again, with sessions that end after a second without use
    r = world.relay
    r.stop()
    r.set("account_idle_timeout", "1s")
    r.start()
    from pwtest import net
    net.wait_port("127.0.0.1", int(world.api_url.rsplit(":", 1)[1]), timeout=20, proc=r.proc)
    time.sleep(2.5)
    assert status(world.dane)["transport"] == "dane"
    ok = [l for l in sso_signins(world.relay) if "result=ok" in l]
    assert len(ok) == 2



def test_move_to_us_started_in_roundcube_settings(world, make_dovecot):
    """A move from another IMAP server started in the settings section with the old
    provider's server, user and password (the destination password is the one the user
    signed in to Roundcube with): its progress is shown until it is done, and the mail is
    there."""
    from pwtest import mailbox
    old = make_dovecot("old", users={OLD_USER: OLD_PASSWORD}, hostname=OLD_HOST)
    conn = old.login(OLD_USER, OLD_PASSWORD)
    filled = mailbox.fill(conn, count=40, seed=5)
    conn.logout()
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    assert 'class="postwarden-job"' not in page
    status, _, page = submit(c, page, "migration-start",
                             _source="imaps://%s:%d" % (OLD_HOST, old.imaps_port),
                             _source_user=OLD_USER, _source_password=OLD_PASSWORD)
    assert "Done." in page, page[page.find("postwarden-settings"):][:1500]
    deadline = time.time() + 120
    while 'data-state="running"' in page and time.time() < deadline:
        time.sleep(0.5)
        status, _, page = c.get(SETTINGS)
    assert 'data-state="done"' in page, page[page.find("postwarden-migration"):][:1500]
    want = "100%% (%d of %d messages)" % (filled["messages"], filled["messages"])
    assert "Done: all your mail was copied " + want in page
    s, d = old.login(OLD_USER, OLD_PASSWORD), world.imap.login(USER, PASSWORD)
    try:
        assert mailbox.compare(s, d) == []
    finally:
        s.logout()
        d.logout()
    # a control: a wrong old password ends as a failed job with postwarden's advice
    status, _, page = submit(c, page, "migration-start",
                             _source="imaps://%s:%d" % (OLD_HOST, old.imaps_port),
                             _source_user=OLD_USER, _source_password="wrong")
    deadline = time.time() + 60
    while 'data-state="failed"' not in page and time.time() < deadline:
        time.sleep(0.5)
        status, _, page = c.get(SETTINGS)
    assert 'data-state="failed"' in page


def section(page, name):
    """The HTML of the settings section postwarden-NAME."""
    import re
    m = re.search(r'<fieldset id="postwarden-%s">(.*?)</fieldset>' % name, page, re.S)
    assert m, "no section %s" % name
    return m.group(1)


def test_notifications_list_a_held_recipient_and_why(world, pf_plain):
    """The notifications section (the last 7 days): nothing at first; once a message to
    the plaintext-only domain is held, its recipient with "Held" and postwarden's reason,
    the same reason the held messages section gives."""
    import html as html_mod
    import re
    from pwtest import mailcheck
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    assert status == 200
    assert "Nothing to report in the last 7 days." in section(page, "notifications")
    r = world.relay
    r.pw("user", "guarantee", USER, "on", check=True)
    subject = "Notified in Roundcube " + mailcheck.uniq("")
    assert r.send(USER, [world.plain], mailcheck.message(USER, [world.plain], subject)) == {}
    r.wait_queue(lambda q: any(mailcheck.rcpt_states(x).get(world.plain) == "held" for x in q),
                 timeout=60, what="the held recipient")
    status, _, page = c.get(SETTINGS)
    held = html_mod.unescape(section(page, "held"))
    m = re.search(re.escape(world.plain) + r": ([^<]+)</li>", held)
    assert m and len(m.group(1).strip()) > 5, held
    reason = m.group(1).strip()
    notes = section(page, "notifications")
    assert "Nothing to report" not in notes
    rows = re.findall(r'<tr data-kind="([a-z]+)">(.*?)</tr>', notes, re.S)
    assert len(rows) == 1, notes
    kind, row = rows[0][0], html_mod.unescape(rows[0][1])
    assert kind == "held"
    assert "<td>%s</td>" % world.plain in row
    why = re.findall(r"<td>([^<]*)</td>", row)[2]
    assert reason in why and world.plain in why and "held" in why, row
    assert subject not in notes          # date, recipient and why: not the subject


def test_move_to_us_started_with_a_preset(world, make_dovecot):
    """The old provider is picked from the presets, as on the settings page: the form has
    the select, and a move started with "gmx" sends the preset's name (its server is the
    old Dovecot here, through postwarden_migration_hosts). The job runs to the end; with a
    wrong password it fails with the GMX preset's advice, which only the preset gives."""
    import re
    old = make_dovecot("old", users={OLD_USER: OLD_PASSWORD}, hostname=OLD_HOST)
    conn = old.login(OLD_USER, OLD_PASSWORD)
    conn.append("INBOX", None, None, b"From: a@old.example.test\r\nSubject: preset\r\n\r\nhi\r\n")
    conn.logout()
    world.rc.plugin_config["postwarden_migration_hosts"] = {
        "gmx": "%s:%d" % (OLD_HOST, old.imaps_port)}
    world.rc.write_config()             # read at each request
    c = world.rc.client()
    c.login(USER, PASSWORD)
    status, _, page = c.get(SETTINGS)
    mig = section(page, "migration")
    m = re.search(r'<select name="_preset"[^>]*>(.*?)</select>', mig, re.S)
    assert m, mig
    assert re.findall(r'value="([a-z]+)"', m.group(1)) == [
        "gmx", "gmail", "icloud", "outlook", "yahoo", "aol", "webde", "other"]
    assert ">Another IMAP server<" in m.group(1)
    # a control: "other" without a server is refused by the plugin, and nothing starts
    status, _, page = submit(c, page, "migration-start", _preset="other", _source="",
                             _source_user=OLD_USER, _source_password=OLD_PASSWORD)
    assert "Give the IMAP server of your old provider." in page
    assert 'class="postwarden-job"' not in page
    status, _, page = submit(c, page, "migration-start", _preset="gmx", _source="",
                             _source_user=OLD_USER, _source_password=OLD_PASSWORD)
    assert "Done." in page, section(page, "migration")[:1500]
    deadline = time.time() + 120
    while 'data-state="running"' in page and time.time() < deadline:
        time.sleep(0.5)
        status, _, page = c.get(SETTINGS)
    assert 'data-state="done"' in page, section(page, "migration")[:1500]
    assert "100% (1 of 1 messages)" in page
    status, _, page = submit(c, page, "migration-start", _preset="gmx",
                             _source_user=OLD_USER, _source_password="wrong")
    deadline = time.time() + 60
    while 'data-state="failed"' not in page and time.time() < deadline:
        time.sleep(0.5)
        status, _, page = c.get(SETTINGS)
    failed = re.search(r'<li class="postwarden-job" data-state="failed"[^>]*>([^<]*)', page)
    assert failed, section(page, "migration")[:1500]
    assert "GMX: switch on POP3/IMAP access" in failed.group(1)


def test_sso_vouches_for_the_login_not_an_edited_identity(world):
    """A user who changed the address of their identity in Roundcube is still signed in
    to postwarden as the user who logged in to IMAP, and sees only their own data."""
    import sqlite3
    c = world.rc.client()
    c.login(USER, PASSWORD)
    world.relay.pw("user", "add", "mallory@example.test", check=True)
    world.relay.pw("user", "guarantee", "mallory@example.test", "on", check=True)
    con = sqlite3.connect(world.rc.db_path)
    try:
        con.execute("UPDATE identities SET email = 'mallory@example.test'")
        con.commit()
    finally:
        con.close()
    status, _, page = c.get(SETTINGS)
    assert "The guarantee is off." in page          # alice's, not mallory's
    signed = [l for l in world.relay.log_lines("account_signin_address")]
    assert signed and all("address=%s" % USER in l for l in signed)
    # a control: the identity really says mallory now
    status, _, page = c.get("./?_task=mail&_action=compose")
    assert "mallory@example.test" in page


def test_https_api_with_the_providers_ca(workdir, make_relay, imap, test_ca):
    """postwarden's account listener over HTTPS (a certificate from a private CA): the
    plugin refuses it until postwarden_ca_file names that CA, then signs in over it."""
    from pwtest import net
    cert = test_ca.issue("localhost", stem="rc-account")
    port = net.free_port("127.0.0.1")
    relay = make_relay(start=False, account_listen="127.0.0.1:%d" % port,
                       account_tls_cert=cert.chain_path, account_tls_key=cert.key_path,
                       account_www_dir=WWW, account_sso_secret=SECRET)
    relay.start()
    net.wait_port("127.0.0.1", port, timeout=20, proc=relay.proc)
    relay.pw("user", "add", USER, check=True)
    rc = start_webmail(workdir, imap, "https://localhost:%d" % port)
    try:
        c = rc.client()
        c.login(USER, PASSWORD)
        status, _, page = c.get(SETTINGS)
        assert "postwarden cannot be reached" in page and "certificate verify failed" in page
        assert "The guarantee is" not in page
        rc.plugin_config["postwarden_ca_file"] = test_ca.cert_path
        rc.write_config()
        status, _, page = c.get(SETTINGS)
        assert "The guarantee is off." in page, page[page.find("postwarden-settings"):][:800]
        assert "postwarden cannot be reached" not in page
    finally:
        rc.stop()
    assert_no_php_errors(rc)



@needs_chromium
def test_compose_icon_pending_then_answered(request, world, browser, zones, mx_port):
    """A domain whose MX hangs is still being checked when postwarden answers (within its
    5 seconds): the icon says so, the window asks again by itself, and the icon changes
    once the check has ended (the relay's command timeout ends it)."""
    from pwtest import mailcheck
    silent = SilentMx("127.0.0.41", mx_port)
    try:
        slow = "erin@" + zones.mx("example.test", mailcheck.uniq("rcslow"), silent.addr)
        zones.publish()
        b = browser
        browser_login(b, world.rc)
        open_compose(b, world.rc)
        add_recipients(b, "_to", [slow, world.dane])
        icons = wait_icons(b, [slow, world.dane], known=False)
        deadline = time.monotonic() + 20
        while icons[slow]["lock"] != "pending" and time.monotonic() < deadline:
            time.sleep(0.2)
            icons = compose_icons(b)
        assert icons[slow]["lock"] == "pending"
        assert icons[slow]["lock_title"] == "Still being checked"
        b.screenshot(os.path.join(artefacts(request), "compose-pending.png"), full_page=False)
        icons = wait_icons(b, [slow, world.dane], timeout=60)
        deadline = time.monotonic() + 60
        while icons[slow]["lock"] in ("pending", "unknown") and time.monotonic() < deadline:
            time.sleep(0.5)
            icons = compose_icons(b)
        assert icons[slow]["lock"] in ("stop", "plaintext"), icons[slow]
        assert icons[slow]["lock_title"] and "Still being checked" not in icons[slow]["lock_title"]
        assert icons[world.dane]["lock"] == "dane"
        assert b.errors == []
    finally:
        silent.close()
