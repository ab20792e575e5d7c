/*
 * db_sqlite.c - the SQLite engine of the storage layer: a file opened in WAL mode with a
 * busy timeout, so that serve and the command-line tools read and write it at once; the
 * schema version is PRAGMA user_version. See db.h.
 */
#include "db_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

#define LITE(db) ((sqlite3 *)(db)->impl)
#define STMT(st) ((sqlite3_stmt *)(st)->impl)

/* The DB_* code of an SQLite result code. */
static int lite_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
		return DB_OK;
	case SQLITE_DONE:
		return DB_DONE;
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_CONSTRAINT:
		return DB_CONSTRAINT;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return DB_BUSY;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return DB_STORAGE;
	default:
		return DB_ERROR;
	}
}

/*
 * Decide what a failed call means: out of memory and misuse are fatal (a bug or no memory
 * left); everything else is a run-time error, kept and returned.
 */
static int lite_fail(struct db *db, int rc, const char *msg, const char *sql)
{
	int primary = rc & 0xff;

	if (primary == SQLITE_NOMEM)
		fatalx("database %s: out of memory: %s", db->url_display, sql);
	if (primary == SQLITE_MISUSE || primary == SQLITE_RANGE)
		fatalx("database %s: %s: %s", db->url_display, msg ? msg : sqlite3_errstr(rc), sql);
	return db_fail(db, lite_rc(rc), msg ? msg : sqlite3_errstr(rc), sql);
}

static int lite_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(LITE(db), sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		lite_fail(db, rc, msg, sql);
	sqlite3_free(msg);
	return lite_rc(rc);
}

static int lite_open(struct db *db, const char *path, const char *password_file, char **err)
{
	sqlite3 *h = NULL;

	(void)password_file;
	if (*path == '\0') {
		*err = xasprintf("database url %s: no file name", db->url_display);
		return DB_ERROR;
	}
	/* NOMUTEX: a struct db is used by one thread at a time (db.h) */
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		*err = xasprintf("cannot open database %s: %s", path,
				 h ? sqlite3_errmsg(h) : "out of memory");
		sqlite3_close(h);
		return DB_ERROR;
	}
	db->impl = h;
	sqlite3_busy_timeout(h, 10000);
	if (lite_exec(db, "PRAGMA journal_mode = WAL") != DB_OK ||
	    lite_exec(db, "PRAGMA synchronous = NORMAL") != DB_OK ||
	    lite_exec(db, "PRAGMA foreign_keys = ON") != DB_OK) {
		*err = xasprintf("cannot open database %s: %s", path, db_errmsg(db));
		sqlite3_close(h);
		db->impl = NULL;
		return DB_ERROR;
	}
	return DB_OK;
}

static void lite_close(struct db *db)
{
	sqlite3_close(LITE(db));
	db->impl = NULL;
}

static int lite_prepare(struct db *db, struct db_stmt *st, const char *sql, bool keep)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v3(LITE(db), sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0,
				    &s, NULL);

	if (rc == SQLITE_OK) {
		st->impl = s;
		return DB_OK;
	}
	/* SQLITE_ERROR here is SQL that does not compile against our schema: a bug */
	if ((rc & 0xff) == SQLITE_ERROR)
		fatalx("database %s: prepare: %s: %s", db->url_display, sqlite3_errmsg(LITE(db)),
		       sql);
	return lite_fail(db, rc, sqlite3_errmsg(LITE(db)), sql);
}

static void lite_finalize(struct db_stmt *st)
{
	sqlite3_finalize(STMT(st));
}

static void lite_reset(struct db_stmt *st, bool clear_bindings)
{
	/* the step's error, if any, is already kept in db; reset returns it again */
	sqlite3_reset(STMT(st));
	if (clear_bindings)
		sqlite3_clear_bindings(STMT(st));
}

static void lite_bind_text(struct db_stmt *st, int idx, const char *text)
{
	sqlite3_bind_text(STMT(st), idx, text, -1, SQLITE_TRANSIENT);
}

static void lite_bind_int(struct db_stmt *st, int idx, int64_t v)
{
	sqlite3_bind_int64(STMT(st), idx, v);
}

static void lite_bind_blob(struct db_stmt *st, int idx, const void *data, size_t len)
{
	if (len > INT32_MAX)
		fatalx("database: blob of %zu bytes", len);
	sqlite3_bind_blob(STMT(st), idx, len ? data : "", (int)len, SQLITE_TRANSIENT);
}

static void lite_bind_null(struct db_stmt *st, int idx)
{
	sqlite3_bind_null(STMT(st), idx);
}

static int lite_step(struct db *db, struct db_stmt *st)
{
	int rc = sqlite3_step(STMT(st));

	if (rc == SQLITE_ROW || rc == SQLITE_DONE || (rc & 0xff) == SQLITE_CONSTRAINT)
		return lite_rc(rc);
	return lite_fail(db, rc, sqlite3_errmsg(LITE(db)), sqlite3_sql(STMT(st)));
}

static const char *lite_col_text(struct db_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(STMT(st), col);
}

static int64_t lite_col_int(struct db_stmt *st, int col)
{
	return sqlite3_column_int64(STMT(st), col);
}

static const void *lite_col_blob(struct db_stmt *st, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(STMT(st), col);

	*len = (size_t)sqlite3_column_bytes(STMT(st), col);
	return p;
}

static int64_t lite_changes(struct db *db)
{
	return sqlite3_changes64(LITE(db));
}

static bool lite_in_transaction(struct db *db)
{
	return !sqlite3_get_autocommit(LITE(db));
}

static int lite_version_get(struct db *db)
{
	return (int)db_query_int(db, "PRAGMA user_version", -1);
}

static int lite_version_set(struct db *db, int v)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	return lite_exec(db, sql);
}

/* SQLite serialises writers itself: each migration runs under BEGIN IMMEDIATE. */
static int lite_migrate_lock(struct db *db, bool lock)
{
	(void)db;
	(void)lock;
	return DB_OK;
}

/* WAL with synchronous = NORMAL (lite_open) is already this. */
static int lite_relax_durability(struct db *db)
{
	(void)db;
	return DB_OK;
}

/* A file does not reconnect. */
static unsigned lite_generation(const struct db *db)
{
	(void)db;
	return 1;
}

const struct db_ops db_sqlite_ops = {
	.name = "sqlite",
	.open = lite_open,
	.close = lite_close,
	.exec = lite_exec,
	.prepare = lite_prepare,
	.finalize = lite_finalize,
	.reset = lite_reset,
	.bind_text = lite_bind_text,
	.bind_int = lite_bind_int,
	.bind_blob = lite_bind_blob,
	.bind_null = lite_bind_null,
	.step = lite_step,
	.col_text = lite_col_text,
	.col_int = lite_col_int,
	.col_blob = lite_col_blob,
	.changes = lite_changes,
	.in_transaction = lite_in_transaction,
	.begin_sql = "BEGIN IMMEDIATE",
	.version_get = lite_version_get,
	.version_set = lite_version_set,
	.migrate_lock = lite_migrate_lock,
	.relax_durability = lite_relax_durability,
	.generation = lite_generation,
};
