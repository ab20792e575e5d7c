"""Read one sample from serve's Prometheus endpoint ([metrics] listen), for tests that
check a counter next to what they observe; test_metrics.py parses the whole format."""

import http.client
import re


def sample(port, name, **labels):
    """The value of the sample name{labels} (no labels: the bare sample); None if absent."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    finally:
        c.close()
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    sel = re.escape(name) + (r"\{%s\}" % re.escape(want) if want else r"(?:\{\})?")
    m = re.search(r"^%s (\S+)$" % sel, body, re.M)
    return float(m.group(1)) if m else None
