/*
 * test_db.c - run-time database errors are returned, not fatal: a full database
 * (SQLITE_FULL, made with PRAGMA max_page_count), a transaction that cannot commit, and the
 * statement helpers' handling of a NULL statement; the statement cache (db_prepare_cached,
 * db_release): reuse, reset and cleared bindings, also after an error, nested use.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "unit.h"
#include "xmalloc.h"

static const char *const migrations[] = {
	"CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL UNIQUE)",
};

static char dir[] = "/tmp/pw-test-db-XXXXXX";

static struct db *open_db(void)
{
	char *err = NULL, path[64];
	struct db *db;

	snprintf(path, sizeof(path), "%s/t.db", dir);
	db = db_open(path, migrations, 1, &err);
	CHECK(db != NULL);
	free(err);
	return db;
}

/* Bind id and a blob of n bytes to an INSERT (st NULL: none) and step it; the step's code. */
static int bind_and_insert(struct db *db, sqlite3_stmt *st, int id, size_t n)
{
	char *blob = malloc(n);
	int rc;

	memset(blob, 'a' + id % 26, n);
	db_bind_int(st, 1, id);
	if (st)
		sqlite3_bind_blob(st, 2, blob, (int)n, SQLITE_TRANSIENT);
	rc = db_step_done(db, st);
	free(blob);
	return rc;
}

/* Insert one row of n bytes; the step's code. */
static int insert(struct db *db, int id, size_t n)
{
	sqlite3_stmt *st = db_prepare(db, "INSERT INTO t (id, v) VALUES (?, ?)");
	int rc = bind_and_insert(db, st, id, n);

	sqlite3_finalize(st);
	return rc;
}

static int count_rows(struct db *db)
{
	return db_query_int(db, "SELECT count(*) FROM t", -1);
}

static void test_full_database_is_an_error_of_the_operation(void)
{
	struct db *db = open_db();
	int rc;

	CHECK(insert(db, 1, 100) == SQLITE_DONE);
	CHECK(db_exec(db, "PRAGMA max_page_count = 3") == SQLITE_OK);
	/* autocommit: the statement fails, the process goes on, the error is kept */
	db_clear_error(db);
	rc = insert(db, 2, 64 * 1024);
	CHECK(rc == SQLITE_FULL);
	CHECK(db_error(db) == SQLITE_FULL);
	CHECK(strstr(db_errmsg(db), "full") != NULL);
	CHECK(count_rows(db) == 1);
	/* a transaction with a failed statement is rolled back at db_commit */
	CHECK(db_begin(db) == SQLITE_OK);
	CHECK(db_error(db) == SQLITE_OK);	/* db_begin clears it */
	insert(db, 3, 10);
	insert(db, 4, 64 * 1024);
	CHECK(db_commit(db) == SQLITE_FULL);
	CHECK(count_rows(db) == 1);
	/* a constraint violation is an answer, not a run-time error */
	db_clear_error(db);
	CHECK(insert(db, 1, 100) == SQLITE_CONSTRAINT);
	CHECK(db_error(db) == SQLITE_OK);
	/* room again: the same writes succeed */
	CHECK(db_exec(db, "PRAGMA max_page_count = 100000") == SQLITE_OK);
	CHECK(db_begin(db) == SQLITE_OK);
	insert(db, 3, 10);
	insert(db, 4, 64 * 1024);
	CHECK(db_commit(db) == SQLITE_OK);
	CHECK(count_rows(db) == 3);
	db_close(db);
}

static void test_null_statement_carries_the_error(void)
{
	struct db *db = open_db();

	db_clear_error(db);
	db_bind_int(NULL, 1, 1);
	db_bind_text(NULL, 1, "x");
	CHECK(!db_step_row(db, NULL));
	CHECK(db_step_done(db, NULL) != SQLITE_DONE);
	CHECK(!db_rc_is_storage(SQLITE_BUSY) && db_rc_is_storage(SQLITE_FULL) &&
	      db_rc_is_storage(SQLITE_IOERR_WRITE));
	/* a query without a row gives the default; control: one with a row gives its value */
	CHECK(db_query_int(db, "SELECT 1 WHERE 0", -7) == -7);
	CHECK(db_query_int(db, "SELECT 5", -7) == 5);
	db_rollback(db);	/* no transaction open: nothing happens */
	db_close(db);
}

static const char sql_ins[] = "INSERT INTO t (id, v) VALUES (?, ?)";
static const char sql_sel[] = "SELECT id FROM t WHERE id >= ? ORDER BY id";

/* Insert one row of n bytes with the cached statement; the step's code. */
static int insert_cached(struct db *db, int id, size_t n, sqlite3_stmt **used)
{
	sqlite3_stmt *st = db_prepare_cached(db, sql_ins);
	int rc = bind_and_insert(db, st, id, n);

	*used = st;
	db_release(db, st);
	return rc;
}

static void test_cached_statement_is_reused_and_reset(void)
{
	struct db *db = open_db();
	sqlite3_stmt *a, *b, *c, *d;

	db_exec(db, "DELETE FROM t");
	CHECK(insert_cached(db, 1, 10, &a) == SQLITE_DONE);
	CHECK(insert_cached(db, 2, 10, &b) == SQLITE_DONE);
	CHECK(a != NULL && a == b);
	/* control: db_prepare gives a new statement each time */
	c = db_prepare(db, sql_ins);
	d = db_prepare(db, sql_ins);
	CHECK(c != NULL && c != d && c != a);
	sqlite3_finalize(c);
	sqlite3_finalize(d);
	/* bindings are cleared at release: v unbound is NULL, refused by NOT NULL */
	a = db_prepare_cached(db, sql_ins);
	db_bind_int(a, 1, 3);
	db_clear_error(db);
	CHECK(db_step_done(db, a) == SQLITE_CONSTRAINT);
	db_release(db, a);
	/* a query left in the middle of its rows is reset: no read transaction held */
	a = db_prepare_cached(db, sql_sel);
	db_bind_int(a, 1, 1);
	CHECK(db_step_row(db, a) && sqlite3_column_int(a, 0) == 1);
	CHECK(sqlite3_stmt_busy(a));
	db_release(db, a);
	CHECK(!sqlite3_stmt_busy(a));
	CHECK(sqlite3_get_autocommit(db->h));
	/* nested use of the same SQL: a second statement, finalized at its release */
	a = db_prepare_cached(db, sql_sel);
	b = db_prepare_cached(db, sql_sel);
	CHECK(a != NULL && b != NULL && a != b);
	db_bind_int(a, 1, 2);
	db_bind_int(b, 1, 1);
	CHECK(db_step_row(db, a) && sqlite3_column_int(a, 0) == 2);
	CHECK(db_step_row(db, b) && sqlite3_column_int(b, 0) == 1);
	db_release(db, b);
	db_release(db, a);
	CHECK(db_prepare_cached(db, sql_sel) == a);
	db_release(db, a);
	db_release(db, NULL);
	db_close(db);	/* finalizes the cache; LeakSanitizer would see what it missed */
}

/* With the page limit set, one transaction of a small and a large row; db_commit's code. */
static int insert_two_in_transaction(struct db *db, int max_pages)
{
	char *sql = xasprintf("PRAGMA max_page_count = %d", max_pages);
	sqlite3_stmt *used;

	CHECK(db_exec(db, sql) == SQLITE_OK);
	free(sql);
	CHECK(db_begin(db) == SQLITE_OK);
	insert_cached(db, 2, 10, &used);
	insert_cached(db, 3, 64 * 1024, &used);
	return db_commit(db);
}

static void test_cached_statement_after_an_error(void)
{
	struct db *db = open_db();
	sqlite3_stmt *a, *b;

	/* empty and small again, so that max_page_count below can bite */
	CHECK(db_exec(db, "DELETE FROM t") == SQLITE_OK);
	CHECK(db_exec(db, "VACUUM") == SQLITE_OK);
	CHECK(db_exec(db, "PRAGMA max_page_count = 3") == SQLITE_OK);
	db_clear_error(db);
	CHECK(insert_cached(db, 1, 64 * 1024, &a) == SQLITE_FULL);
	CHECK(db_error(db) == SQLITE_FULL);
	CHECK(count_rows(db) == 0);
	/* the same cached statement works again once there is room */
	CHECK(db_exec(db, "PRAGMA max_page_count = 100000") == SQLITE_OK);
	db_clear_error(db);
	CHECK(insert_cached(db, 1, 64 * 1024, &b) == SQLITE_DONE);
	CHECK(a == b);
	CHECK(db_error(db) == SQLITE_OK);
	CHECK(count_rows(db) == 1);
	/* and inside a transaction that fails, then one that succeeds */
	CHECK(insert_two_in_transaction(db, 3) == SQLITE_FULL);
	CHECK(count_rows(db) == 1);
	CHECK(insert_two_in_transaction(db, 100000) == SQLITE_OK);
	CHECK(count_rows(db) == 3);
	db_close(db);
}

static void test_open_fails_with_a_message(void)
{
	char *err = NULL;
	struct db *db = db_open("/nonexistent-dir/x.db", migrations, 1, &err);

	CHECK(db == NULL);
	CHECK(err != NULL && strstr(err, "/nonexistent-dir/x.db") != NULL);
	free(err);
}

static void setup(void)
{
	CHECK(mkdtemp(dir) != NULL);
}

static void teardown(void)
{
	char path[96];

	snprintf(path, sizeof(path), "%s/t.db", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/t.db-shm", dir);
	unlink(path);
	rmdir(dir);
}

TEST_MAIN(setup, test_full_database_is_an_error_of_the_operation,
	  test_null_statement_carries_the_error, test_cached_statement_is_reused_and_reset,
	  test_cached_statement_after_an_error, test_open_fails_with_a_message, teardown)
