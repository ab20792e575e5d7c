"""Mailboxes for the migration tests and benchmark: fill one over IMAP with a realistic mix,
copy one exactly (the reference the comparison is checked against), and compare two.

fill(conn, ...) writes, deterministically from a seed: nested and non-ASCII folders
(modified UTF-7 on the wire), the special-use folders the server names, custom keywords,
\\Seen \\Answered \\Flagged \\Draft, INTERNALDATEs back to 2003, 8-bit UTF-8 bodies, a
size mix like real mail (mostly 2-20 kB, some 20-100 kB, some 100 kB-1 MB; a 20 MB message
as an option) and subscriptions on some folders only; gmail=True lays it out as Gmail
shows it over IMAP ("[Gmail]/All Mail" holds every message, labels are folders).

compare(source, dest, mapping) returns a list of Difference: folders, subscriptions,
message bytes, flags, keywords, INTERNALDATE and special-use placement. Messages are
matched by a hash of their bytes within mapped folders; what has no partner is matched by
Message-ID (then its bytes differ), else counted missing or extra; more copies than the
source has are duplicates.
"""

import base64
import collections
import datetime
import email.header
import email.utils
import hashlib
import random
import re
import time

from .dovecot import parse_list_line, utf7_encode

SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted")
KEYWORDS = ("$Forwarded", "$MDNSent", "$Label1", "$Label3", "Wichtig", "todo",
            "Projekt-X", "$NotJunk")
SPECIAL = ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive", "\\All", "\\Flagged")

# Folder paths (components) besides INBOX and the special-use folders; 20 in all with
# those six.
FOLDERS = (
    ("Projekte",), ("Projekte", "2024"), ("Projekte", "2024", "Q1"),
    ("Rechnungen & Belege",), ("R\u00e9unions",), ("\u65e5\u672c\u8a9e",),
    ("\u041a\u043e\u0440\u0440\u0435\u0441\u043f\u043e\u043d\u0434\u0435\u043d\u0446\u0438\u044f",),
    ("Work", "Clients", "Acme"), ("Newsletters",), ("Family & Friends",),
    ("Travel", "2019"), ("Old", "Archive 2010"), ("Receipts",), ("Stra\u00dfe [alt]",),
)
GMAIL_LABELS = (("Work",), ("Personal",), ("Receipts",), ("Travel", "2019"),
                ("R\u00e9unions",))

TEXTS = (
    "Gr\u00fc\u00dfe aus M\u00fcnchen, die B\u00e4ren sind los. ",
    "Les r\u00e9unions de l'\u00e9t\u00e9 sont d\u00e9plac\u00e9es. ",
    "\u4f1a\u8b70\u306f\u6765\u9031\u306b\u5ef6\u671f\u3055\u308c\u307e\u3057\u305f\u3002",
    "The quarterly numbers are attached, please review before Friday. ",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? ",
)


def quote(name):
    """An IMAP quoted string (imaplib does not quote mailbox names itself)."""
    return '"%s"' % name.replace("\\", "\\\\").replace('"', '\\"')


def _check(typ, data, what):
    if typ != "OK":
        raise RuntimeError("%s: %s %r" % (what, typ, data))
    return data


# -- server facts -------------------------------------------------------------------------

def list_folders(conn, subscribed=False):
    """{Unicode name: (flags, separator)} of every folder (LSUB with subscribed=True)."""
    if subscribed:
        typ, data = conn.lsub('""', '"*"')
    else:
        typ, data = conn._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
        typ, data = conn._untagged_response(typ, data, "LIST")
    _check(typ, data, "LIST")
    out = {}
    for line in data:
        if line is None:
            continue
        flags, sep, name = parse_list_line(line)
        out[name] = (flags, sep)
    return out


def separator(conn):
    typ, data = conn.list('""', '""')
    _check(typ, data, "LIST separator")
    return parse_list_line(data[0])[1] or "/"


def special_folders(conn):
    """{special-use flag: Unicode folder name} as the server announces them."""
    out = {}
    for name, (flags, _) in list_folders(conn).items():
        for f in flags:
            if f in SPECIAL:
                out.setdefault(f, name)
    return out


def wire(name):
    """The quoted modified UTF-7 form of a Unicode folder name."""
    return quote(utf7_encode(name))


# -- messages ---------------------------------------------------------------------------

def pick_size(rng, large_share=1.0):
    """A message size like a real mailbox's: mostly 2-20 kB, some up to 1 MB."""
    r = rng.random()
    if r < 0.75:
        lo, hi = 2000, 20000
    elif r < 0.75 + 0.17:
        lo, hi = 20000, 100000
    elif r < 0.995 or large_share <= 0:
        lo, hi = 100000, 1000000
    else:
        lo, hi = 1000000, 3000000
    return int(lo * (hi / lo) ** rng.random())


def make_message(rng, n, size, folder=""):
    """One RFC 5322 message of about size bytes, CRLF line ends; 8-bit text for some."""
    date = datetime.datetime(2003, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
        seconds=rng.randrange(22 * 365 * 86400))
    eight_bit = rng.random() < 0.4
    text = rng.choice(TEXTS) if eight_bit else TEXTS[3]
    subject = "Nachricht %d: %s" % (n, text[:30].strip())
    if eight_bit:
        subject = email.header.Header(subject, "utf-8").encode()
    head = [
        "Return-Path: <sender%d@example.org>" % (n % 17),
        "From: Sender %d <sender%d@example.org>" % (n % 17, n % 17),
        "To: Jane Doe <jane@example.net>",
        "Subject: " + subject,
        "Date: " + email.utils.format_datetime(date),
        "Message-ID: <%d.%08x@pwtest.example.org>" % (n, rng.getrandbits(32)),
        "MIME-Version: 1.0",
    ]
    body_text = (text + "\r\n") * 3
    if size < 8000:
        head += ["Content-Type: text/plain; charset=utf-8",
                 "Content-Transfer-Encoding: " + ("8bit" if eight_bit else "7bit")]
        fill = size - len("\r\n".join(head).encode()) - len(body_text.encode()) - 4
        lines = [body_text]
        while fill > 0:
            line = (text * 3)[:70] if eight_bit else "Lorem ipsum dolor sit amet " * 2
            lines.append(line + "\r\n")
            fill -= len((line + "\r\n").encode())
        return ("\r\n".join(head) + "\r\n\r\n" + "".join(lines)).encode()
    boundary = "=_pw%08x" % rng.getrandbits(32)
    head.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
    part1 = ("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n" % (boundary, body_text))
    raw_len = max(0, (size - 600 - len(part1.encode())) * 3 // 4)
    b64 = base64.encodebytes(rng.randbytes(raw_len)).replace(b"\n", b"\r\n")
    part2 = ("--%s\r\nContent-Type: application/octet-stream; name=\"anhang-%d.bin\"\r\n"
             "Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
             "filename=\"anhang-%d.bin\"\r\n\r\n" % (boundary, n, n)).encode()
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    return ("\r\n".join(head) + "\r\n\r\n").encode() + part1.encode() + part2 + b64 + tail


def pick_flags(rng, folder_flag=None):
    flags = []
    if rng.random() < 0.7:
        flags.append("\\Seen")
    if rng.random() < 0.15:
        flags.append("\\Answered")
    if rng.random() < 0.1:
        flags.append("\\Flagged")
    if folder_flag == "\\Drafts":
        flags.append("\\Draft")
    if rng.random() < 0.25:
        flags += rng.sample(KEYWORDS, rng.randint(1, 3))
    return flags


def internaldate(rng):
    """An INTERNALDATE between 2003 and 2025 with a non-UTC zone, as imaplib wants it."""
    t = time.mktime((2003, 1, 1, 0, 0, 0, 0, 0, 0)) + rng.randrange(22 * 365 * 86400)
    zone = rng.choice((1, 2, -5, 9))
    tz = datetime.timezone(datetime.timedelta(hours=zone))
    return '"%s"' % datetime.datetime.fromtimestamp(int(t), tz).strftime(
        "%d-%b-%Y %H:%M:%S %z")


def append(conn, folder, msg, flags, date):
    typ, data = conn.append(wire(folder), "(%s)" % " ".join(flags) if flags else None,
                            date, msg)
    _check(typ, data, "APPEND to %s" % folder)


# -- filling ----------------------------------------------------------------------------

def _plan(conn, folders, gmail):
    """[(Unicode name, special flag or None)] of the folders to fill, created and with
    some of them subscribed."""
    sep = separator(conn)
    special = special_folders(conn)
    plan = [("INBOX", None)]
    for flag in ("\\Sent", "\\Drafts", "\\Trash", "\\Junk", "\\Archive"):
        if flag in special:
            plan.append((special[flag], flag))
    paths = GMAIL_LABELS if gmail else folders
    for i, path in enumerate(paths):
        if sep != "/" and any("/" in p for p in path):
            continue
        name = sep.join(p.replace(sep, "-") for p in path)
        typ, data = conn.create(wire(name))
        if typ != "OK" and b"ALREADYEXISTS" not in data[0]:
            _check(typ, data, "CREATE %s" % name)
        # Every third folder is left unsubscribed (the parents of nested ones too).
        if i % 3 != 2:
            _check(*conn.subscribe(wire(name)), "SUBSCRIBE %s" % name)
        plan.append((name, None))
    # Some clients unsubscribe special folders too: the copy must carry that.
    if len(plan) > 5 and not gmail:
        conn.unsubscribe(wire(plan[4][0]))
    return plan, special


def fill(conn, count=200, seed=1, folders=FOLDERS, large=False, gmail=False,
         max_size=None):
    """Fill the mailbox behind the logged-in imaplib conn; returns a summary dict
    (folders, messages, bytes). count messages are spread over the folders (INBOX gets
    the most); large=True adds one 20 MB message to INBOX; max_size caps sizes."""
    rng = random.Random(seed)
    plan, special = _plan(conn, folders, gmail)
    weights = [6] + [1] * (len(plan) - 1)
    total = 0
    per_folder = collections.Counter()
    all_mail = special.get("\\All")
    for n in range(count):
        folder, flag = rng.choices(plan, weights)[0]
        size = pick_size(rng)
        if max_size:
            size = min(size, max_size)
        msg = make_message(rng, n, size, folder)
        flags = pick_flags(rng, flag)
        date = internaldate(rng)
        if gmail and all_mail:
            # Gmail: every message is in All Mail; most also carry a label (a folder).
            append(conn, all_mail, msg, flags, date)
            per_folder[all_mail] += 1
            if rng.random() < 0.2:
                continue          # archived: in All Mail only
        append(conn, folder, msg, flags, date)
        per_folder[folder] += 1
        total += len(msg)
    if large:
        rng2 = random.Random(seed + 1)
        msg = make_message(rng2, count, 20 * 1024 * 1024)
        append(conn, "INBOX", msg, ["\\Seen", "$Forwarded"], internaldate(rng2))
        per_folder["INBOX"] += 1
        total += len(msg)
    return {"folders": [f for f, _ in plan], "messages": sum(per_folder.values()),
            "bytes": total, "per_folder": dict(per_folder)}


# -- reading -----------------------------------------------------------------------------

Message = collections.namedtuple("Message", "uid digest size flags keywords date msgid")

_FETCH_RE = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|INTERNALDATE \"([^\"]+)\"")


def _parse_date(s):
    """An INTERNALDATE string as a UTC timestamp (the instant; zones may be rewritten)."""
    return int(datetime.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


def _msgid(body):
    head = body.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"^Message-ID:\s*(<[^>]*>)", head, re.I | re.M)
    return m.group(1).decode(errors="replace") if m else None


def read_folder(conn, folder, batch=200):
    """[Message] of folder (read-only)."""
    typ, data = conn.select(wire(folder), readonly=True)
    _check(typ, data, "SELECT %s" % folder)
    n = int(data[0])
    out = []
    for start in range(1, n + 1, batch):
        end = min(n, start + batch - 1)
        typ, data = conn.fetch("%d:%d" % (start, end),
                               "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        _check(typ, data, "FETCH in %s" % folder)
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item[0], item[1]
            uid = flags = date = None
            for m in _FETCH_RE.finditer(meta):
                if m.group(1):
                    uid = int(m.group(1))
                elif m.group(2) is not None:
                    flags = m.group(2).decode().split()
                elif m.group(3):
                    date = _parse_date(m.group(3).decode())
            if flags is None:   # FLAGS may follow the literal in the closing part
                flags = []
            sysf = frozenset(f for f in flags if f.startswith("\\") and f != "\\Recent")
            kw = frozenset(f for f in flags if not f.startswith("\\"))
            out.append(Message(uid, hashlib.sha256(body).hexdigest(), len(body), sysf, kw,
                               date, _msgid(body)))
    conn.close()
    return out


# -- comparing ---------------------------------------------------------------------------

Difference = collections.namedtuple("Difference", "kind folder detail")

KINDS = ("folder", "subscription", "special-use", "missing", "duplicate", "extra",
         "bytes", "flags", "keywords", "internaldate")


def _names(conn):
    """{path tuple: (Unicode name, flags)} with the server's separator split off."""
    out = {}
    for name, (flags, sep) in list_folders(conn).items():
        path = tuple(name.split(sep)) if sep else (name,)
        out[path] = (name, flags)
    return out


def _subscribed(conn):
    out = set()
    for name, (flags, sep) in list_folders(conn, subscribed=True).items():
        out.add(tuple(name.split(sep)) if sep else (name,))
    return out


def folder_mapping(src_names, dst_names, mapping=None):
    """{source path: destination path or None (not compared)}: explicit mapping first
    (Unicode names, "/" between levels, None to skip), then special-use folders to the
    destination's folder of the same use, else the same path."""
    mapping = dict(mapping or {})
    dst_special = {}
    for path, (_, flags) in dst_names.items():
        for f in flags:
            if f in SPECIAL:
                dst_special.setdefault(f, path)
    out = {}
    for path, (name, flags) in src_names.items():
        if "\\Noselect" in flags or "\\NonExistent" in flags:
            continue
        key = "/".join(path)
        if key in mapping:
            out[path] = tuple(mapping[key].split("/")) if mapping[key] is not None else None
            continue
        use = [f for f in flags if f in SPECIAL]
        if use and use[0] in dst_special:
            out[path] = dst_special[use[0]]
        else:
            out[path] = path
    return out


def _compare_messages(fname, src, dst, diffs):
    by_hash = collections.defaultdict(list)
    for m in dst:
        by_hash[m.digest].append(m)
    unmatched_src = []
    pairs = []
    for m in src:
        if by_hash.get(m.digest):
            pairs.append((m, by_hash[m.digest].pop(0)))
        else:
            unmatched_src.append(m)
    src_digests = collections.Counter(m.digest for m in src)
    leftover = [m for ms in by_hash.values() for m in ms]
    by_msgid = collections.defaultdict(list)
    extra = []
    for m in leftover:
        if src_digests.get(m.digest):
            diffs.append(Difference("duplicate", fname, "uid %d (%s)" % (m.uid, m.msgid)))
        elif m.msgid:
            by_msgid[m.msgid].append(m)
        else:
            extra.append(m)
    for m in unmatched_src:
        if by_msgid.get(m.msgid):
            d = by_msgid[m.msgid].pop(0)
            diffs.append(Difference("bytes", fname, "%s: %d bytes at the source, %d at the "
                                    "destination" % (m.msgid, m.size, d.size)))
            pairs.append((m, d))
        else:
            diffs.append(Difference("missing", fname, "uid %d %s" % (m.uid, m.msgid)))
    for ms in by_msgid.values():
        extra += ms
    for m in extra:
        diffs.append(Difference("extra", fname, "uid %d %s" % (m.uid, m.msgid)))
    for s, d in pairs:
        if s.flags != d.flags:
            diffs.append(Difference("flags", fname, "%s: %s -> %s" % (
                s.msgid, sorted(s.flags), sorted(d.flags))))
        if s.keywords != d.keywords:
            diffs.append(Difference("keywords", fname, "%s: %s -> %s" % (
                s.msgid, sorted(s.keywords), sorted(d.keywords))))
        if s.date != d.date:
            diffs.append(Difference("internaldate", fname, "%s: %s -> %s" % (
                s.msgid, s.date, d.date)))


def compare(source, dest, mapping=None):
    """Differences between the mailboxes behind two logged-in imaplib connections.

    mapping: {source folder: destination folder or None}, Unicode names with "/" between
    levels; special-use folders map to the destination's folder of the same use unless
    mapped here. A destination folder that no source folder maps to is a difference only
    when it holds messages."""
    diffs = []
    src_names, dst_names = _names(source), _names(dest)
    fmap = folder_mapping(src_names, dst_names, mapping)
    src_subs, dst_subs = _subscribed(source), _subscribed(dest)
    dst_special_paths = {p for p, (_, fl) in dst_names.items() if set(fl) & set(SPECIAL)}
    for spath, dpath in sorted(fmap.items()):
        if dpath is None:
            continue
        sname = src_names[spath][0]
        src_msgs = read_folder(source, sname)
        if dpath not in dst_names:
            same = spath if spath in dst_names and spath != dpath else None
            if same is None:
                diffs.append(Difference("folder", sname, "missing at the destination"))
                for m in src_msgs:
                    diffs.append(Difference("missing", sname, "uid %d %s" % (m.uid,
                                                                            m.msgid)))
                continue
            dpath = same
        dname = dst_names[dpath][0]
        dst_msgs = read_folder(dest, dname)
        if spath != dpath and spath in dst_names and spath != fmap.get(spath):
            # A special-use folder copied under its own name instead of the destination's
            # folder of that use: compare it there, and count the misplacement once.
            same_msgs = read_folder(dest, dst_names[spath][0])
            if src_msgs and len(same_msgs) >= len(src_msgs) > len(dst_msgs):
                diffs.append(Difference("special-use", sname, "copied to %r, not to %r" % (
                    dst_names[spath][0], dname)))
                dst_msgs, dname = same_msgs, dst_names[spath][0]
        _compare_messages(sname, src_msgs, dst_msgs, diffs)
        if (spath in src_subs) != (dpath in dst_subs):
            # The destination's own special folders are subscribed by the server.
            if spath in src_subs or dpath not in dst_special_paths:
                diffs.append(Difference("subscription", sname, "subscribed %s at the source, "
                                        "%s at the destination" % (spath in src_subs,
                                                                   dpath in dst_subs)))
    mapped = set(v for v in fmap.values() if v is not None) | set(fmap)
    for dpath, (dname, flags) in dst_names.items():
        if dpath in mapped or "\\Noselect" in flags or "\\NonExistent" in flags:
            continue
        if any(d.kind == "special-use" and "%r" % dname in d.detail for d in diffs):
            continue
        n = int(_check(*dest.select(wire(dname), readonly=True), "SELECT %s" % dname)[0])
        dest.close()
        if n:
            diffs.append(Difference("folder", dname, "at the destination only, %d messages"
                                    % n))
    return diffs


def summary(diffs):
    """{kind: count} for every kind (0 where none)."""
    c = collections.Counter(d.kind for d in diffs)
    return {k: c.get(k, 0) for k in KINDS}


# -- an exact copy -------------------------------------------------------------------------

def copy_exact(source, dest, mapping=None):
    """Copy every folder, subscription, message (bytes, flags, keywords, INTERNALDATE)
    from source to dest, special-use folders into the destination's; the reference a
    correct migration matches (compare() of the two gives no difference)."""
    src_names, dst_names = _names(source), _names(dest)
    fmap = folder_mapping(src_names, dst_names, mapping)
    src_subs = _subscribed(source)
    dsep = separator(dest)
    for spath, dpath in sorted(fmap.items()):
        if dpath is None:
            continue
        sname = src_names[spath][0]
        dname = dst_names[dpath][0] if dpath in dst_names else dsep.join(dpath)
        if dpath not in dst_names:
            _check(*dest.create(wire(dname)), "CREATE %s" % dname)
        if spath in src_subs:
            dest.subscribe(wire(dname))
        else:
            dest.unsubscribe(wire(dname))
        typ, data = source.select(wire(sname), readonly=True)
        n = int(_check(typ, data, "SELECT")[0])
        for i in range(1, n + 1):
            typ, data = source.fetch(str(i), "(FLAGS INTERNALDATE BODY.PEEK[])")
            meta, body = data[0]
            meta += b"".join(x for x in data[1:] if isinstance(x, bytes))
            flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1).decode().split()
            flags = [f for f in flags if f != "\\Recent"]
            date = re.search(rb'INTERNALDATE ("[^"]+")', meta).group(1).decode()
            append(dest, dname, body, flags, date)
        source.close()


def set_flag(conn, folder, uid, flag, on=True):
    """Add (or remove) one flag or keyword on one message."""
    _check(*conn.select(wire(folder)), "SELECT %s" % folder)
    _check(*conn.uid("STORE", str(uid), "+FLAGS" if on else "-FLAGS", "(%s)" % flag),
           "STORE")
    conn.close()


