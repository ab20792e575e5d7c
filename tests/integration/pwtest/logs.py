"""Server logs of the running test session: which files exist, and excerpts for failures.

Servers register their log files while they run. When a test fails, the part of every
registered log written during that test is copied next to the test's files and its tail
is attached to the pytest report.
"""

import os

_logs = {}       # name -> path
_offsets = {}    # name -> size when the current test started


def read(path):
    """The whole text of the log at path; "" while the server has not written it."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def register(name, path):
    _logs[name] = path
    _offsets.setdefault(name, 0)


def unregister(name):
    _logs.pop(name, None)
    _offsets.pop(name, None)


def mark_test_start():
    """Remember where each log stands, so a failure shows only this test's part."""
    for name, path in _logs.items():
        try:
            _offsets[name] = os.path.getsize(path)
        except OSError:
            _offsets[name] = 0


def excerpts():
    """{name: text written since the current test started}."""
    out = {}
    for name, path in list(_logs.items()):
        try:
            with open(path, "rb") as f:
                f.seek(_offsets.get(name, 0))
                out[name] = f.read().decode("utf-8", "replace")
        except OSError:
            continue
    return out


def save_excerpts(dest):
    """Write excerpts() into dest/<name>.log; return {name: (path, text)}."""
    os.makedirs(dest, exist_ok=True)
    saved = {}
    for name, text in excerpts().items():
        p = os.path.join(dest, name.replace("/", "_") + ".log")
        with open(p, "w") as f:
            f.write(text)
        saved[name] = (p, text)
    return saved
