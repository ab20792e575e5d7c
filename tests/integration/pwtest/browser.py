"""Headless Chromium (Debian's chromium package) driven over the DevTools protocol, for the
browser tests of the settings page.

The browser is started with --remote-debugging-pipe: the protocol runs over two pipes
(the browser reads commands on its fd 3 and writes answers and events on its fd 4, each
message JSON ended by a NUL byte), so no port is opened, no WebSocket library is needed and
nothing is downloaded. One page target is attached in flat mode; every command names its
session.

    b = Browser(workdir)            # starts chromium, opens one blank tab
    b.viewport(390, 844, mobile=True)
    b.accept_language("de-DE,de")
    b.open("http://127.0.0.1:PORT/")
    b.wait("document.body.dataset.ready === '1'")
    b.type_into("#signin-address", "alice@example.test")
    b.click("#signin-submit")
    b.wait_text("#status", "Signed in")
    b.screenshot(path)
    b.close()

A JavaScript exception on the page, or a console error, is recorded in b.errors (the tests
assert that there are none); b.console has every console line.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time

# Commands wait at most this long for their answer; a page load or a wait() has its own.
COMMAND_TIMEOUT = 30
# One protocol message is at most this big (a phone screenshot is a few hundred KB).
MAX_MESSAGE = 64 * 1024 * 1024


class BrowserError(Exception):
    pass


def binary():
    """The chromium executable, or None when the package is not installed."""
    for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or ""):
        if p and os.access(p, os.X_OK):
            return p
    return None


class Browser:
    def __init__(self, workdir, width=1280, height=900):
        exe = binary()
        if exe is None:
            raise BrowserError("chromium is missing: install the Debian package chromium")
        self.workdir = workdir
        self.profile = os.path.join(workdir, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        self.log_path = os.path.join(workdir, "chromium.log")
        self.errors = []
        self.console = []
        self._events = []
        self._next_id = 0
        self._buf = b""
        # Our ends: we write commands to to_child_w, read from from_child_r.
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()
        args = [exe, "--headless=new", "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile,
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio",
                "--password-store=basic", "--use-mock-keychain",
                "--window-size=%d,%d" % (width, height), "about:blank"]
        if os.geteuid() == 0:
            # Chromium's sandbox refuses to run as root; the pages are our own.
            args.insert(1, "--no-sandbox")

        def child_fds():
            # Move both ends above 4 first, so that one dup2 cannot overwrite the other.
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        with open(self.log_path, "ab") as log:
            # close_fds runs after preexec_fn: 3 and 4 must be among the kept descriptors.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, pass_fds=(3, 4), preexec_fn=child_fds,
                                         start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            self._attach()
        except Exception:
            self.close()
            raise

    # -- the protocol ---------------------------------------------------------------

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("chromium did not answer in time (log: %s)" % self.log_path)
            r, _, _ = select.select([self._from_child_r], [], [], left)
            if not r:
                continue
            chunk = os.read(self._from_child_r, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the pipe (log: %s)" % self.log_path)
            self._buf += chunk
            if len(self._buf) > MAX_MESSAGE:
                raise BrowserError("a DevTools message over %d bytes" % MAX_MESSAGE)
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _note_event(self, msg):
        method = msg.get("method", "")
        p = msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: %s %s" % (
                d.get("text", ""), d.get("exception", {}).get("description", "")))
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            self.console.append("%s: %s" % (p.get("type"), text))
            if p.get("type") == "error":
                self.errors.append("console: " + text)
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append("%s: %s" % (e.get("level"), e.get("text")))
        self._events.append(msg)
        del self._events[:-500]

    def send(self, method, params=None, session=True, timeout=COMMAND_TIMEOUT):
        """Send one command (to the page's session unless session=False); its result."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self._to_child_w, data)
            data = data[n:]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise BrowserError("%s: %s" % (method, m["error"].get("message")))
                return m.get("result", {})
            if "method" in m:
                self._note_event(m)

    def _attach(self):
        self.session = None
        deadline = time.monotonic() + COMMAND_TIMEOUT
        target = None
        while target is None:
            infos = self.send("Target.getTargets", session=False)["targetInfos"]
            pages = [i for i in infos if i["type"] == "page"]
            if pages:
                target = pages[0]["targetId"]
            elif time.monotonic() > deadline:
                raise BrowserError("chromium opened no page")
            else:
                time.sleep(0.1)
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(domain + ".enable")
        self.user_agent = self.send("Browser.getVersion", session=False)["userAgent"]

    # -- helpers the tests use ----------------------------------------------------------

    def viewport(self, width, height, mobile=False, scale=1):
        """Emulate a screen of width x height CSS pixels (a phone with mobile=True)."""
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale,
                   "mobile": mobile})
        if mobile:
            self.send("Emulation.setTouchEmulationEnabled", {"enabled": True})

    def accept_language(self, value):
        """Send Accept-Language: value and show it as navigator.languages."""
        self.send("Emulation.setUserAgentOverride",
                  {"userAgent": self.user_agent, "acceptLanguage": value})

    def open(self, url, timeout=30):
        """Load url and wait until its load event."""
        self._events.clear()
        # A mark on the old document, so that the wait below cannot see it as loaded.
        try:
            self.eval("window.__pwOld = true")
        except BrowserError:
            pass
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise BrowserError("cannot open %s: %s" % (url, r["errorText"]))
        self.wait("!window.__pwOld && document.readyState === 'complete'", timeout=timeout,
                  what="%s to load" % url)

    def eval(self, expr, timeout=COMMAND_TIMEOUT):
        """The value of the JavaScript expression expr (promises are awaited)."""
        r = self.send("Runtime.evaluate",
                      {"expression": expr, "returnByValue": True, "awaitPromise": True,
                       "userGesture": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError("%s: %s" % (expr[:80], d.get("exception", {}).get(
                "description", d.get("text"))))
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout=20, what=None):
        """Wait until expr is true on the page; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = self.eval(expr)
            except BrowserError:
                v = None   # the page is between two documents
            if v:
                return v
            if time.monotonic() > deadline:
                raise BrowserError("timed out waiting for %s" % (what or expr))
            time.sleep(0.1)

    def wait_selector(self, selector, visible=True, timeout=20):
        """Wait until an element matches selector (and is shown, unless visible=False)."""
        check = "e && e.getClientRects().length > 0" if visible else "!!e"
        return self.wait("(() => { const e = document.querySelector(%s); return %s; })()"
                         % (json.dumps(selector), check), timeout=timeout,
                         what="selector " + selector)

    def text(self, selector):
        """The shown text of the first element matching selector ("" when none)."""
        return self.eval("(() => { const e = document.querySelector(%s); "
                         "return e ? e.innerText : ''; })()" % json.dumps(selector))

    def wait_text(self, selector, text, timeout=20):
        """Wait until the element's shown text contains text."""
        return self.wait("(() => { const e = document.querySelector(%s); "
                         "return !!e && e.innerText.includes(%s); })()"
                         % (json.dumps(selector), json.dumps(text)), timeout=timeout,
                         what="%r in %s (it has %r)" % (text, selector, self.text(selector)))

    def _center(self, selector):
        box = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null;"
                        " e.scrollIntoView({block: 'center'});"
                        " const r = e.getBoundingClientRect();"
                        " return [r.left + r.width / 2, r.top + r.height / 2, r.width]; })()"
                        % json.dumps(selector))
        if not box or not box[2]:
            raise BrowserError("no visible element %s" % selector)
        return box[0], box[1]

    def click(self, selector, timeout=5):
        """A real mouse click in the middle of the element, once nothing else (a layout
        still moving after an answer came in) is at that point."""
        deadline = time.monotonic() + timeout
        while True:
            x, y = self._center(selector)
            hit = self.eval("(() => { const e = document.querySelector(%s);"
                            " const h = document.elementFromPoint(%f, %f);"
                            " return !!(e && h && (e === h || e.contains(h))); })()"
                            % (json.dumps(selector), x, y))
            if hit or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def focus(self, selector):
        self.eval("document.querySelector(%s).focus()" % json.dumps(selector))

    def type_into(self, selector, text, clear=True):
        """Focus the field and type text as keyboard input."""
        self.focus(selector)
        if clear:
            self.eval("document.querySelector(%s).value = ''" % json.dumps(selector))
        self.type_text(text)

    def type_text(self, text):
        """Type text into whatever has the focus."""
        self.send("Input.insertText", {"text": text})

    KEYS = {"Tab": 9, "Enter": 13, "Escape": 27, " ": 32, "ArrowDown": 40, "ArrowUp": 38}

    def press(self, key, shift=False):
        """Press and release one key (Tab, Enter, Escape, space, arrows)."""
        code = self.KEYS[key]
        down = {"type": "rawKeyDown", "key": key, "code": "Space" if key == " " else key,
                "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code,
                "modifiers": 8 if shift else 0}
        if key == "Enter":
            down.update({"type": "keyDown", "text": "\r", "unmodifiedText": "\r"})
        elif key == " ":
            down.update({"type": "keyDown", "text": " ", "unmodifiedText": " "})
        self.send("Input.dispatchKeyEvent", down)
        up = dict(down, type="keyUp")
        up.pop("text", None)
        up.pop("unmodifiedText", None)
        self.send("Input.dispatchKeyEvent", up)

    def focused(self):
        """The id (or tag name) of the element with the focus."""
        return self.eval("(() => { const e = document.activeElement;"
                         " return e ? (e.id || e.tagName.toLowerCase()) : null; })()")

    def screenshot(self, path, full_page=True):
        """Save a PNG of the page (the whole page unless full_page=False) at path."""
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": size["height"], "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close(self):
        """Stop chromium and everything it started (its process group)."""
        if getattr(self, "proc", None) is None:
            return
        try:
            self.send("Browser.close", session=False, timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        for fd in (self._to_child_w, self._from_child_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None
