"""The Roundcube fixture (pwtest/roundcube.py): Debian's Roundcube 1.6 with its own
configuration in the test's directory, served by PHP's built-in server, logs in through
its real login form against the Dovecot fixture and shows the inbox; a wrong password is
refused, and the configuration used is the test's, not the system's."""

import email.message
import email.utils
import imaplib
import os
import sqlite3
import time

import pytest

from pwtest import roundcube as pw_roundcube


def put_message(dovecot, user, subject):
    msg = email.message.EmailMessage()
    msg["From"] = "bob@other.test"
    msg["To"] = user
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg.set_content("hello\n")
    c = dovecot.login(user)
    typ, _ = c.append("INBOX", None, imaplib.Time2Internaldate(time.time()),
                      msg.as_bytes().replace(b"\n", b"\r\n"))
    assert typ == "OK"
    c.logout()


@pytest.fixture
def webmail(workdir, make_dovecot):
    d = make_dovecot("imap", tls=False, users={"alice@example.test": "pw-alice"})
    rc = pw_roundcube.Roundcube(os.path.join(workdir, "roundcube"), d.port,
                                plugin_config={"product_name": "pwtest webmail 7731"})
    rc.start()
    yield d, rc
    rc.stop()


def test_login_form_and_inbox(webmail):
    d, rc = webmail
    put_message(d, "alice@example.test", "Fixture check 4242")
    c = rc.client()
    status, _, page = c.get("./?_task=login")
    # the page comes from this instance's config.inc.php (the system's says otherwise)
    assert status == 200 and "pwtest webmail 7731" in page
    page = c.login("alice@example.test", "pw-alice")
    assert pw_roundcube.env_value(page, "mailbox") == "INBOX"
    listing = c.ajax("mail", "list", _mbox="INBOX")
    assert "Fixture check 4242" in listing["exec"]
    # a control: the other mailbox is empty
    listing = c.ajax("mail", "list", _mbox="Trash")
    assert "Fixture check 4242" not in listing.get("exec", "")


def test_wrong_password_refused(webmail):
    _, rc = webmail
    c = rc.client()
    with pytest.raises(pw_roundcube.LoginError):
        c.login("alice@example.test", "wrong")
    # the mail task stays closed: Roundcube answers with its login page
    status, _, page = c.get("./?_task=mail")
    assert status == 200 and pw_roundcube.env_value(page, "task") == "login"
    # a control: the right password opens it
    c.login("alice@example.test", "pw-alice")
    status, _, page = c.get("./?_task=mail")
    assert pw_roundcube.env_value(page, "task") == "mail"


def test_nothing_outside_the_test_directory(webmail):
    _, rc = webmail
    c = rc.client()
    c.login("alice@example.test", "pw-alice")
    assert os.path.getsize(rc.db_path) > 0
    # the user's row is in the test's database
    con = sqlite3.connect(rc.db_path)
    try:
        users = [r[0] for r in con.execute("SELECT username FROM users")]
    finally:
        con.close()
    assert users == ["alice@example.test"]
