"""The settings page (www/) served by serve's account listener, checked in headless Chromium.

The page's HTML is checked as text first (every id unique, every form control labelled,
every text in both languages, nothing loaded from elsewhere). Then serve runs with
[account] listen on loopback and a real Dovecot as its IMAP sign-in backend, and Debian's
chromium (pwtest/browser.py, over the DevTools protocol) signs in as a user would: with
the mouse, and with the keyboard alone (Tab, Enter); switches the guarantee off for an hour
and the change is seen in the API and in `postwarden user show`; reads the page in German
and English; and on a phone-sized screen. The accessibility tree Chromium gives to screen
readers must name every control and have the page's landmarks.

Screenshots are test artefacts: they stay, whether the test passes or fails, in
build/test-artefacts/account-page/<test>/ ($PW_ARTEFACTS overrides build/test-artefacts).
"""

import html.parser
import json
import os
import re
import struct
import subprocess
import time

import pytest

from pwtest import browser as pw_browser
from pwtest import dovecot, net
from pwtest.relay import REPO_ROOT

WWW = os.path.join(REPO_ROOT, "www")
USER, USER_PW = "alice@example.test", "Al1ce-Pa55word!"
OTHER, OTHER_PW = "bob@example.test", "B0b-Pa55word!"
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
    assert sorted(used - set(en)) == []
    # every text is translated: the long ones differ (names such as "Name" may not, nor
    # the name of a standard)
    same = [k for k in en if en[k] == de[k] and len(en[k]) > 12 and k != "keys.wkd"]
    assert same == []
    for k in en:   # placeholders survive translation
        assert sorted(re.findall(r"\{\w+\}", en[k])) == sorted(re.findall(r"\{\w+\}", de[k])), k
