"""A private Roundcube 1.6 (Debian's roundcube packages) for the Roundcube plugin's tests,
served by PHP's built-in web server on loopback, and an HTTP client that uses it the way a
browser does (cookies, the login form's request token, the AJAX request header).

Debian installs the code in /usr/share/roundcube and runs it from /var/lib/roundcube, whose
`config` is a symlink to /etc/roundcube. An instance here builds the same layout in its own
directory instead: symlinks to the packaged code, skins and plugins, its own config/ with
config.inc.php (SQLite database, IMAP host, plugins) next to symlinks to the packaged
defaults.inc.php and mimetypes.php, its own temp/ and logs/. A router script defines
INSTALL_PATH and RCMAIL_CONFIG_DIR (which iniset.php honours when already defined) and
serves the static files of public_html/; so nothing under /etc or /var/lib is read for
configuration or written.

Plugins named in `plugins` come from the packaged plugin folder, or from extra_plugins
({name: source directory}), which are symlinked in, as an administrator would copy them.
plugin_config ({key: PHP value as Python value}) is added to config.inc.php.
"""

import html
import http.cookiejar
import json
import os
import re
import secrets
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request

from . import logs, net

SHARE = "/usr/share/roundcube"
ETC = "/etc/roundcube"
PHP = "/usr/bin/php"

ROUTER = r"""<?php
// Router for PHP's built-in web server: static files of public_html/ as they are, every
// other request to Roundcube's index.php with this instance's paths.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
$file = realpath(__DIR__ . '/public_html' . $path);
if ($path !== '/' && $file !== false && is_file($file) && substr($file, -4) !== '.php') {
    return false;
}
define('INSTALL_PATH', __DIR__ . '/');
define('RCMAIL_CONFIG_DIR', __DIR__ . '/config');
chdir(__DIR__);
require INSTALL_PATH . 'index.php';
"""


def php_value(v):
    """A Python value (str, bool, int, list, dict, None) as PHP source text."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return "'%s'" % v.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(php_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "[" + ", ".join("%s => %s" % (php_value(k), php_value(x))
                               for k, x in v.items()) + "]"
    raise TypeError("no PHP form for %r" % (v,))


class Roundcube:
    """One Roundcube on 127.0.0.1:port; url is its base URL."""

    def __init__(self, workdir, imap_port, imap_host="127.0.0.1", smtp=None, plugins=(),
                 extra_plugins=None, plugin_config=None, language="en_US"):
        self.dir = os.path.abspath(workdir)
        self.imap = "%s:%d" % (imap_host, imap_port)
        # No SMTP unless given: a refused port, so a test that sends by mistake fails
        # at once instead of reaching some local MTA.
        self.smtp = smtp or "127.0.0.1:9"
        self.plugins = list(plugins)
        self.extra_plugins = dict(extra_plugins or {})
        self.plugin_config = dict(plugin_config or {})
        self.language = language
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.dir, "php-server.log")
        self.db_path = os.path.join(self.dir, "db", "roundcube.sqlite")

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    # -- the tree ----------------------------------------------------------------

    def _link(self, target, name):
        path = os.path.join(self.dir, name)
        if not os.path.lexists(path):
            os.symlink(target, path)

    def _tree(self):
        for d in ("config", "plugins", "skins", "temp", "logs", "db",
                  "public_html", "public_html/program"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        for name in ("index.php", "program", "SQL"):
            self._link(os.path.join(SHARE, name), name)
        for skin in os.listdir(os.path.join(SHARE, "skins")):
            self._link(os.path.join(SHARE, "skins", skin), os.path.join("skins", skin))
        for p in os.listdir(os.path.join(SHARE, "plugins")):
            self._link(os.path.join(SHARE, "plugins", p), os.path.join("plugins", p))
        for name, src in self.extra_plugins.items():
            self._link(os.path.abspath(src), os.path.join("plugins", name))
        for name in ("defaults.inc.php", "mimetypes.php"):
            self._link(os.path.join(ETC, name), os.path.join("config", name))
        # what the web server may hand out as it is (Debian's public_html)
        for name in ("plugins", "skins"):
            self._link(os.path.join("..", name), os.path.join("public_html", name))
        for name in ("js", "resources"):
            self._link(os.path.join("..", "..", "program", name),
                       os.path.join("public_html", "program", name))
        with open(os.path.join(self.dir, "router.php"), "w") as f:
            f.write(ROUTER)

    def _database(self):
        """Roundcube's SQLite schema, as Debian's dbconfig would create it."""
        if os.path.exists(self.db_path):
            return
        with open(os.path.join(SHARE, "SQL", "sqlite.initial.sql")) as f:
            schema = f.read()
        con = sqlite3.connect(self.db_path)
        try:
            con.executescript(schema)
            con.commit()
        finally:
            con.close()

    def write_config(self):
        conf = {
            "db_dsnw": "sqlite:///%s?mode=0640" % self.db_path,
            "imap_host": self.imap,
            "smtp_host": self.smtp,
            "smtp_user": "%u",
            "smtp_pass": "%p",
            "des_key": secrets.token_hex(12),
            "plugins": self.plugins,
            "skin": "elastic",
            "language": self.language,
            "temp_dir": os.path.join(self.dir, "temp") + "/",
            "log_dir": os.path.join(self.dir, "logs") + "/",
            "log_driver": "file",
            "enable_spellcheck": False,
            "enable_installer": False,
            "product_name": "Roundcube Webmail",
            "support_url": "",
            # the tests talk to it over plain loopback HTTP
            "use_https": False,
            # No timed refresh requests: one that is still running when a test opens the
            # next page writes the session it read before, and the next page's state
            # (a compose ID) is lost with it.
            "refresh_interval": 0,
        }
        conf.update(self.plugin_config)
        lines = ["<?php", "// private test instance; see tests/integration/pwtest/roundcube.py",
                 "$config = [];"]
        lines += ["$config[%s] = %s;" % (php_value(k), php_value(v)) for k, v in conf.items()]
        with open(os.path.join(self.dir, "config", "config.inc.php"), "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout=20):
        os.makedirs(self.dir, exist_ok=True)
        self._tree()
        self._database()
        self.write_config()
        if self.port is None:
            self.port = net.free_port()
        env = dict(os.environ)
        # several requests at once, as a browser makes them
        env["PHP_CLI_SERVER_WORKERS"] = "4"
        log = open(self.log_path, "a")
        try:
            self.proc = subprocess.Popen(
                [PHP, "-S", "127.0.0.1:%d" % self.port, "-t",
                 os.path.join(self.dir, "public_html"), os.path.join(self.dir, "router.php")],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True)
        finally:
            log.close()
        try:
            net.wait_port("127.0.0.1", self.port, timeout=timeout, proc=self.proc)
        except Exception as e:
            self.stop()
            raise RuntimeError("php -S did not start: %s\n%s" % (e, self.log()[-3000:]))
        return self

    def stop(self):
        if self.proc is not None:
            # the workers are children of the server, in its session
            try:
                os.killpg(self.proc.pid, 15)
            except ProcessLookupError:
                pass
            net.stop_process(self.proc, 10)
            self.proc = None

    def log(self):
        return logs.read(self.log_path)

    def errors(self):
        """Roundcube's own error log (PHP errors and its raise_error calls)."""
        return logs.read(os.path.join(self.dir, "logs", "errors.log"))

    def client(self):
        return Client(self.url)


class LoginError(Exception):
    pass


class Client:
    """A browser-like HTTP client: a cookie jar, no automatic redirects followed for POSTs
    it must look at, and the request token Roundcube hands out after login."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.token = None

    def request(self, path, data=None, headers=None, timeout=30):
        """(status, final URL, body text); data (a dict) makes it a form POST."""
        url = urllib.parse.urljoin(self.base, path)
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, headers=dict(headers or {}))
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return r.status, r.geturl(), r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, url, e.read().decode("utf-8", "replace")

    def get(self, path="./", **params):
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        return self.request(path)

    def login(self, user, password):
        """Log in through the login form; return the page that follows (the inbox)."""
        status, _, page = self.get("./?_task=login")
        m = re.search(r'<input type="hidden" name="_token" value="([^"]+)"', page)
        if status != 200 or not m:
            raise LoginError("no login form (HTTP %d)" % status)
        form = {"_token": m.group(1), "_task": "login", "_action": "login",
                "_timezone": "UTC", "_url": "", "_user": user, "_pass": password}
        status, url, page = self.request("./?_task=login", data=form)
        tok = env_value(page, "request_token")
        if status != 200 or "_task=mail" not in url or not tok:
            err = re.search(r'"(?:loginfailed|[a-z]+error)"|rcmail\.display_message\("([^"]*)"',
                            page)
            raise LoginError("login as %s failed (HTTP %d, %s): %s"
                             % (user, status, url, err.group(0) if err else page[:300]))
        self.token = tok
        return page

    def ajax(self, task, action, method="GET", **params):
        """An AJAX call as rcmail makes it: _remote=1 and the X-Roundcube-Request header;
        returns the decoded JSON answer."""
        params = dict(params, _task=task, _action=action, _remote="1")
        headers = {"X-Roundcube-Request": self.token or ""}
        if method == "GET":
            path = "./?" + urllib.parse.urlencode(params)
            status, _, body = self.request(path, headers=headers)
        else:
            params["_token"] = self.token or ""
            status, _, body = self.request("./?_task=%s" % task, data=params, headers=headers)
        if status != 200:
            raise RuntimeError("%s/%s: HTTP %d: %s" % (task, action, status, body[:300]))
        return json.loads(body)


def env_value(page, key):
    """A value from the page's rcmail.set_env({...}) calls (None if absent)."""
    for m in re.finditer(r"rcmail\.set_env\((\{.*?\})\);", page, re.S):
        try:
            env = json.loads(m.group(1))
        except ValueError:
            continue
        if key in env:
            return env[key]
    return None


def text(fragment):
    """HTML fragment -> plain text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))
