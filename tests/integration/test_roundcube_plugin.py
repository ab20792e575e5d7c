"""The Roundcube plugin (contrib/roundcube/postwarden) in a real Roundcube 1.6 (Debian's
packages, pwtest/roundcube.py) against the Dovecot fixture: its SSO assertion is what
postwarden's contract asks for, it loads into the compose window and the settings, and it
says so when postwarden cannot be reached."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

import pytest

from pwtest import relay as pw_relay
from pwtest import roundcube as pw_roundcube

PLUGIN = os.path.join(pw_relay.REPO_ROOT, "contrib", "roundcube", "postwarden")
USER = "alice@example.test"
PASSWORD = "pw-alice"
SECRET = "0123456789abcdef0123456789abcdef-sso"


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
