"""The storage layer against a real PostgreSQL 15: the unit test binary of src/lib/db*.c
runs its engine tests (placeholders, NULLs, blobs, constraints in and out of transactions,
RETURNING, schema versions) on both engines, PostgreSQL given by PW_TEST_PG_URL with the
password from PGPASSFILE."""

import os
import re
import subprocess



def _clean_pg_env(postgres):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = postgres.password_file
    return env


def _drop_everything(postgres):
    postgres.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION postwarden;",
                  dbname=postgres.dbname)


def test_engine_tests_pass_on_postgresql(postgres):
    _drop_everything(postgres)
    env = _clean_pg_env(postgres)
    env["PW_TEST_PG_URL"] = postgres.url()
    r = subprocess.run([os.path.join(os.path.dirname(os.environ["POSTWARDEN"]), "tests", "test_db")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout, r.stdout
    assert "PW_TEST_PG_URL not set" not in r.stdout
    # the schema version the tests' migrations left, in the table the engine keeps it in
    assert postgres.psql("SELECT version FROM postwarden_schema", tcp=True) == "2"
    _drop_everything(postgres)


def test_db_migrate_readies_a_fresh_postgresql_database(postgres, tmp_path):
    """On PostgreSQL the commands refuse an unmigrated database and name `postwarden db
    migrate`; after it (run twice: nothing left to do the second time) they work."""
    conf = tmp_path / "postwarden.conf"
    conf.write_text("[server]\nstate_dir = %s\n\n[database]\nurl = %s\npassword_file = %s\n"
                    % (tmp_path / "state", postgres.new_database(), postgres.password_file))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")

    def pw(*args):
        return subprocess.run([os.environ["POSTWARDEN"], "-c", str(conf)] + list(args),
                              capture_output=True, text=True, env=env, timeout=60)

    r = pw("queue", "list")
    assert r.returncode == 1 and "run `postwarden db migrate`" in r.stderr, r.stderr
    r = pw("db", "migrate")
    assert r.returncode == 0, r.stderr
    assert re.search(r"schema version 0 -> [1-9]", r.stdout), r.stdout
    r = pw("db", "migrate")     # again: nothing to do
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout, r.stdout
    r = pw("queue", "list")
    assert r.returncode == 0, r.stderr
