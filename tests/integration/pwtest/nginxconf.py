"""The part of an nginx configuration every test web server (and the bench's) shares.

Each server nginx runs in the foreground under a prefix directory of its own: the pid
file, both logs, the temp paths and the configuration all live there, so nothing of the
system's nginx (/etc/nginx, /var/lib/nginx, /run/nginx.pid) is used. No mime.types is
read: every file gets default_type unless a location says otherwise.

    write(prefix, servers, cert=None, default_type=..., log_format=None, connections=64)
        writes PREFIX/nginx.conf (the head below, then servers, the caller's server
        blocks, inside http { }), makes PREFIX/tmp and creates both logs (empty), so that
        they can be watched before nginx starts; returns the configuration's path.
    render(prefix, servers, ...) the text write() writes; write_text(prefix, text) writes
        such a text (edited, say) in the same way.
    argv(prefix)  the command that runs it, errors to PREFIX/error.log from the start.
    PREFIX/access.log and PREFIX/error.log are the logs' paths (access_log(), error_log()).

cert (a pwtest.ca.Cert) is the certificate of every server that listens with ssl, and
TLS 1.2 and 1.3 are the only protocols offered; default_type is the media type of every
file (MTA-STS policies must be text/plain); log_format, when given, is the access log's
format (nginx variables) for fixtures that read the log, instead of combined;
connections is worker_connections.
"""

import os

CONF = "nginx.conf"

_HEAD = """\
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections {connections};
}}
http {{
{access}
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ }}
    default_type {default_type};
    ssl_protocols TLSv1.2 TLSv1.3;
{tls}"""


def access_log(prefix):
    return os.path.join(prefix, "access.log")


def error_log(prefix):
    return os.path.join(prefix, "error.log")


def render(prefix, servers, cert=None, default_type="application/octet-stream",
           log_format=None, connections=64):
    """The whole configuration text (see the module docstring)."""
    if log_format:
        access = ("    log_format pw '%s';\n    access_log %s pw;"
                  % (log_format, access_log(prefix)))
    else:
        access = "    access_log %s;" % access_log(prefix)
    tls = ""
    if cert is not None:
        tls = ("    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
               % (cert.chain_path, cert.key_path))
    head = _HEAD.format(d=prefix, connections=connections, access=access,
                        default_type=default_type, tls=tls)
    return head + servers + "}\n"


def write(prefix, servers, **kw):
    """Write PREFIX/nginx.conf, make PREFIX/tmp and the empty logs; returns the path."""
    return write_text(prefix, render(prefix, servers, **kw))


def write_text(prefix, text):
    """write() for a configuration already rendered (and perhaps edited)."""
    os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
    path = os.path.join(prefix, CONF)
    with open(path, "w") as f:
        f.write(text)
    for p in (access_log(prefix), error_log(prefix)):
        open(p, "a").close()
    return path


def argv(prefix):
    """nginx in the foreground on PREFIX/nginx.conf, logging errors to PREFIX/error.log
    before the configuration is read too."""
    return ["nginx", "-p", prefix, "-c", os.path.join(prefix, CONF), "-e", error_log(prefix)]
