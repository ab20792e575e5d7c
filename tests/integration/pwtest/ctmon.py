"""The CT monitor under test: test logs (pwtest.ctlog_server.CTTestLogs) running in a test's
work directory, a relay configured to watch them, and the log ids its commands take.

    @pytest.fixture
    def logs(workdir):
        with ctmon.logs_running(workdir, names=("www.example.test",), filler=30) as t:
            yield t

    relay = ctmon.monitor(make_relay, logs, ctmon_parallel="4")   # migrated, not started
    relay.pw("ct", "check", "--log", ctmon.rfc_id(logs))
"""

import base64
import contextlib
import os

from .ctlog_server import CTTestLogs

WATCH = ".example.test"     # every test log names its certificates below it


@contextlib.contextmanager
def logs_running(workdir, **kw):
    """CTTestLogs in workdir/ct (keyword arguments as CTTestLogs takes them), started, and
    stopped when the block ends."""
    t = CTTestLogs(os.path.join(workdir, "ct"), **kw).start()
    try:
        yield t
    finally:
        t.stop()


def monitor(make_relay, logs, **opts):
    """A relay from make_relay, not started, its database migrated, that monitors the logs of
    logs' log list from their first entry for names below WATCH; opts add to or override
    these options."""
    options = dict(ctmon_log_list=logs.log_list_path, ctmon_watch=WATCH,
                   ctmon_allow_private="on", ctmon_start="backfill")
    options.update(opts)
    relay = make_relay(start=False, **options)
    relay.pw("db", "migrate", check=True)
    return relay


def rfc_id(logs):
    """The RFC 6962 log's id as `ct check --log` takes it (base64)."""
    return base64.b64encode(logs.rfc_log.log_id).decode()


def static_id(logs):
    """The static-ct-api log's id as `ct check --log` takes it (base64)."""
    return base64.b64encode(logs.static_log.log_id).decode()
