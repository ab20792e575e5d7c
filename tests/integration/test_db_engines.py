"""The storage layer against a real PostgreSQL 15: the unit test binary of src/lib/db*.c
runs its engine tests (placeholders, NULLs, blobs, constraints in and out of transactions,
RETURNING, schema versions) on both engines, PostgreSQL given by PW_TEST_PG_URL with the
password from PGPASSFILE."""

import os
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
