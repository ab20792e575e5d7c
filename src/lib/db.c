/*
 * db.c - SQLite helpers and schema migrations; see db.h.
 */
#include "db.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

static int db_user_version(struct db *db)
{
	sqlite3_stmt *st = db_prepare(db, "PRAGMA user_version");
	int v = 0;

	if (db_step_row(db, st))
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Apply migrations beyond the stored version, each in its own transaction. */
static void db_migrate(struct db *db, const char *const *migrations, int n)
{
	int v = db_user_version(db);

	if (v > n)
		fatalx("database %s has schema version %d, newer than this program (%d)",
		       db->path, v, n);
	for (; v < n; v++) {
		char *sql = xasprintf("PRAGMA user_version = %d", v + 1);
		db_begin(db);
		db_exec(db, migrations[v]);
		db_exec(db, sql);
		db_commit(db);
		free(sql);
		log_debug("event=db_migrate db=%s version=%d", db->path, v + 1);
	}
}

struct db *db_open(const char *path, const char *const *migrations, int nmigrations, char **err)
{
	struct db *db;
	sqlite3 *h = NULL;

	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		*err = xasprintf("cannot open database %s: %s", path,
				 h ? sqlite3_errmsg(h) : "out of memory");
		sqlite3_close(h);
		return NULL;
	}
	db = xcalloc(1, sizeof(*db));
	db->h = h;
	db->path = xstrdup(path);
	sqlite3_busy_timeout(h, 10000);
	db_exec(db, "PRAGMA journal_mode = WAL");
	db_exec(db, "PRAGMA synchronous = NORMAL");
	db_exec(db, "PRAGMA foreign_keys = ON");
	db_migrate(db, migrations, nmigrations);
	return db;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	sqlite3_close(db->h);
	free(db->path);
	free(db);
}

void db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK)
		fatalx("database %s: %s: %s", db->path, msg ? msg : "error", sql);
}

sqlite3_stmt *db_prepare(struct db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		fatalx("database %s: prepare: %s: %s", db->path, sqlite3_errmsg(db->h), sql);
	return st;
}

int db_step_done(struct db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_CONSTRAINT)
		return rc;
	if (rc == SQLITE_ROW)
		fatalx("database %s: statement returned a row: %s", db->path, sqlite3_sql(st));
	fatalx("database %s: %s: %s", db->path, sqlite3_errmsg(db->h), sqlite3_sql(st));
}

bool db_step_row(struct db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return true;
	if (rc == SQLITE_DONE)
		return false;
	fatalx("database %s: %s: %s", db->path, sqlite3_errmsg(db->h), sqlite3_sql(st));
}

void db_begin(struct db *db)
{
	db_exec(db, "BEGIN IMMEDIATE");
}

void db_commit(struct db *db)
{
	db_exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
	db_exec(db, "ROLLBACK");
}

void db_bind_text(sqlite3_stmt *st, int idx, const char *text)
{
	if (text)
		sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, idx);
}

void db_bind_int(sqlite3_stmt *st, int idx, int64_t v)
{
	sqlite3_bind_int64(st, idx, v);
}

const char *db_col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? (const char *)t : "";
}
