"""
secrets.py - the search the tests use to show that nothing secret was written to disk:
every file under a directory (state dir, database, log), read whole, for each secret.
"""
import os


def files_under(top, skip=()):
    """Every file below top, but the paths in skip."""
    return [os.path.join(root, f) for root, _, fs in os.walk(top) for f in fs
            if os.path.join(root, f) not in skip]


def _holds(path, needle):
    with open(path, "rb") as f:
        return (needle.encode() if isinstance(needle, str) else needle) in f.read()


def secrets_found(top, secrets, skip=()):
    """(path, secret) for each secret (str or bytes) some file below top holds."""
    return [(path, s) for path in files_under(top, skip) for s in secrets if _holds(path, s)]


def any_file_holds(top, text):
    """Does some file below top hold text? (the control that the search reads the files)"""
    return any(_holds(path, text) for path in files_under(top))
