"""certspotter 0.16 (Debian's), the monitor most operators know, watches the same RFC 6962
test log with the same watch list as `postwarden ct check`: both find the same log entries
(a certificate, a precertificate and its final certificate for a watched name, and
nothing of the unrelated filler)."""
import base64
import os
import re
import subprocess
import time

from pwtest import net
from pwtest.ctlog_server import CTTestLogs


def certspotter_entries(workdir, logs, watch):
    """The log entry indexes certspotter reports for logs' RFC 6962 log."""
    state = os.path.join(workdir, "certspotter")
    os.makedirs(state)
    with open(os.path.join(workdir, "watchlist"), "w") as f:
        f.write(watch + "\n")
    p = subprocess.Popen(["certspotter", "-logs", logs.log_list_path, "-watchlist",
                          os.path.join(workdir, "watchlist"), "-state_dir", state, "-stdout",
                          "-verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        # it runs until stopped: wait until it said it finished the log's entries
        net.wait_until(lambda: logs.rfc.requests and any(
            p.endswith("get-entries") for p, _, _ in logs.rfc.requests), 30,
            what="certspotter's first get-entries")
        time.sleep(3)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=20)
    assert "finished downloading entries from %s" % logs.rfc.url in err, err
    return sorted(int(i) for i in re.findall(r"Log Entry = (\d+) @ %s" % re.escape(logs.rfc.url),
                                             out))


def test_same_certificates_as_certspotter(make_relay, workdir):
    logs = CTTestLogs(os.path.join(workdir, "ct"), names=("www.example.test",
                                                          "mail.example.test"),
                      filler=25).start()
    try:
        theirs = certspotter_entries(workdir, logs, ".example.test")
        relay = make_relay(start=False, ctmon_log_list=logs.log_list_path,
                           ctmon_watch=".example.test", ctmon_allow_private="on",
                           ctmon_start="backfill")
        relay.pw("db", "migrate", check=True)
        relay.pw("ct", "check", check=True)
        rfc_id = base64.b64encode(logs.rfc_log.log_id).decode()
        ours = sorted(r["idx"] for r in relay.database.rows(
            "SELECT idx FROM ct_sightings WHERE log_id = ?", (rfc_id,)))
        # the same certificates in the static-ct-api twin, which certspotter cannot read
        static_id = base64.b64encode(logs.static_log.log_id).decode()
        assert sorted(r["idx"] for r in relay.database.rows(
            "SELECT idx FROM ct_sightings WHERE log_id = ?", (static_id,))) == sorted(
            s for n in ("www.example.test", "mail.example.test") for _, s in logs.found[n])
        want = sorted(i for n in ("www.example.test", "mail.example.test")
                      for i, _ in logs.found[n])
        assert theirs == want, (theirs, want)
        assert ours == want, (ours, want)
    finally:
        logs.stop()
