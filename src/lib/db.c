/*
 * db.c - SQLite helpers and schema migrations; see db.h.
 */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

/*
 * Decide what a failed call means: out of memory and misuse are fatal (a bug or no memory
 * left); everything else is a run-time error, kept in db (the first since it was cleared)
 * and returned.
 */
static int db_fail(struct db *db, int rc, const char *msg, const char *sql)
{
	int primary = rc & 0xff;

	if (primary == SQLITE_NOMEM)
		fatalx("database %s: out of memory: %s", db->path, sql);
	if (primary == SQLITE_MISUSE || primary == SQLITE_RANGE)
		fatalx("database %s: %s: %s", db->path, msg ? msg : sqlite3_errstr(rc), sql);
	if (db->err == SQLITE_OK) {
		db->err = rc;
		snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg ? msg : sqlite3_errstr(rc));
	}
	return rc;
}

int db_query_int(struct db *db, const char *sql, int dflt)
{
	sqlite3_stmt *st = db_prepare(db, sql);
	int v = dflt;

	if (db_step_row(db, st))
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Apply migrations beyond the stored version, each in its own transaction; -1 on error. */
static int db_migrate(struct db *db, const char *const *migrations, int n, char **err)
{
	int v = db_query_int(db, "PRAGMA user_version", -1);

	if (v < 0) {
		*err = xasprintf("database %s: %s", db->path, db_errmsg(db));
		return -1;
	}
	if (v > n)
		fatalx("database %s has schema version %d, newer than this program (%d)",
		       db->path, v, n);
	for (; v < n; v++) {
		char *sql = xasprintf("PRAGMA user_version = %d", v + 1);
		int rc = db_begin(db);

		if (rc == SQLITE_OK) {
			db_exec(db, migrations[v]);
			db_exec(db, sql);
			rc = db_commit(db);
		}
		free(sql);
		if (rc != SQLITE_OK) {
			*err = xasprintf("database %s: cannot update the schema to version %d: %s",
					 db->path, v + 1, db_errmsg(db));
			return -1;
		}
		log_debug("event=db_migrate db=%s version=%d", db->path, v + 1);
	}
	return 0;
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
	if (db_exec(db, "PRAGMA journal_mode = WAL") != SQLITE_OK ||
	    db_exec(db, "PRAGMA synchronous = NORMAL") != SQLITE_OK ||
	    db_exec(db, "PRAGMA foreign_keys = ON") != SQLITE_OK) {
		*err = xasprintf("cannot open database %s: %s", path, db_errmsg(db));
		db_close(db);
		return NULL;
	}
	if (db_migrate(db, migrations, nmigrations, err) < 0) {
		db_close(db);
		return NULL;
	}
	return db;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->ncache; i++) {
		if (db->cache[i].busy)
			fatalx("database %s: closed with a statement in use: %s", db->path,
			       db->cache[i].sql);
		sqlite3_finalize(db->cache[i].st);
	}
	db->ncache = 0;
	sqlite3_close(db->h);
	free(db->path);
	free(db);
}

int db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		db_fail(db, rc, msg, sql);
	sqlite3_free(msg);
	return rc;
}

sqlite3_stmt *db_prepare(struct db *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		return st;
	/* SQLITE_ERROR here is SQL that does not compile against our schema: a bug */
	if ((rc & 0xff) == SQLITE_ERROR)
		fatalx("database %s: prepare: %s: %s", db->path, sqlite3_errmsg(db->h), sql);
	db_fail(db, rc, sqlite3_errmsg(db->h), sql);
	return NULL;
}

/* The cache entry of sql (by pointer), or NULL. */
static struct db_cached *db_cache_find(struct db *db, const char *sql)
{
	for (size_t i = 0; i < db->ncache; i++)
		if (db->cache[i].sql == sql)
			return &db->cache[i];
	return NULL;
}

sqlite3_stmt *db_prepare_cached(struct db *db, const char *sql)
{
	struct db_cached *c = db_cache_find(db, sql);
	sqlite3_stmt *st;

	if (c != NULL) {
		/* the key is the pointer: text built at run time would be a bug */
		if (strcmp(sqlite3_sql(c->st), sql) != 0)
			fatalx("database %s: cached statement changed its text: %s", db->path, sql);
		if (c->busy)
			return db_prepare(db, sql);	/* nested use: db_release finalizes it */
		c->busy = true;
		return c->st;
	}
	st = db_prepare(db, sql);
	if (st == NULL || db->ncache == DB_CACHE_MAX)
		return st;
	c = &db->cache[db->ncache++];
	c->sql = sql;
	c->st = st;
	c->busy = true;
	return st;
}

void db_release(struct db *db, sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < db->ncache; i++) {
		if (db->cache[i].st == st) {
			/* the step's error, if any, is already kept in db; reset returns it again */
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			db->cache[i].busy = false;
			return;
		}
	}
	sqlite3_finalize(st);
}

int db_step_done(struct db *db, sqlite3_stmt *st)
{
	int rc;

	if (st == NULL)
		return db->err != SQLITE_OK ? db->err : SQLITE_ERROR;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE || (rc & 0xff) == SQLITE_CONSTRAINT)
		return rc & 0xff;
	if (rc == SQLITE_ROW)
		fatalx("database %s: statement returned a row: %s", db->path, sqlite3_sql(st));
	return db_fail(db, rc, sqlite3_errmsg(db->h), sqlite3_sql(st));
}

bool db_step_row(struct db *db, sqlite3_stmt *st)
{
	int rc;

	if (st == NULL)
		return false;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return true;
	if (rc != SQLITE_DONE)
		db_fail(db, rc, sqlite3_errmsg(db->h), sqlite3_sql(st));
	return false;
}

int db_begin(struct db *db)
{
	db_clear_error(db);
	return db_exec(db, "BEGIN IMMEDIATE");
}

int db_commit(struct db *db)
{
	int rc = db->err;

	if (rc == SQLITE_OK && (rc = db_exec(db, "COMMIT")) == SQLITE_OK)
		return SQLITE_OK;
	db_rollback(db);
	return rc;
}

void db_rollback(struct db *db)
{
	/* After SQLITE_FULL or an I/O error SQLite may have rolled back already. */
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int db_error(const struct db *db)
{
	return db->err;
}

const char *db_errmsg(const struct db *db)
{
	return db->err != SQLITE_OK ? db->errmsg : "no error";
}

void db_clear_error(struct db *db)
{
	db->err = SQLITE_OK;
	db->errmsg[0] = '\0';
}

bool db_rc_is_storage(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return true;
	default:
		return false;
	}
}

void db_bind_text(sqlite3_stmt *st, int idx, const char *text)
{
	if (st == NULL)
		return;
	if (text)
		sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, idx);
}

void db_bind_int(sqlite3_stmt *st, int idx, int64_t v)
{
	if (st != NULL)
		sqlite3_bind_int64(st, idx, v);
}

const char *db_col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? (const char *)t : "";
}
