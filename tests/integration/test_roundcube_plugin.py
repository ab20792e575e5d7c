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


def start_webmail(workdir, dovecot, api_url, **config):
    conf = {"postwarden_api_url": api_url, "postwarden_sso_secret": SECRET,
            "postwarden_timeout": 5}
    conf.update(config)
    rc = pw_roundcube.Roundcube(os.path.join(workdir, "roundcube"), dovecot.port,
                                plugins=["postwarden"], extra_plugins={"postwarden": PLUGIN},
                                plugin_config=conf)
    return rc.start()


@pytest.fixture
def imap(make_dovecot):
    return make_dovecot("imap", tls=False, users={USER: PASSWORD})


def assert_no_php_errors(rc):
    """Neither the web server nor Roundcube's error log has a PHP error, warning or notice
    (the plugin's own "postwarden: ..." lines are expected there)."""
    for text in (rc.log(), rc.errors()):
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
        assert page.count("postwarden cannot be reached") == 4
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


def open_compose(b, rc):
    b.open(rc.url + "?_task=mail&_action=compose")
    b.wait("window.rcmail && rcmail.env.compose_id && "
           "document.querySelector('#_to + ul.recipient-input input')",
           what="the compose window")


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
