/*
 * db.c - the engine-neutral part of the storage layer: opening by URL, the kept error,
 * the statement cache, migrations and statistics; see db.h. The engines are db_sqlite.c
 * and db_pg.c.
 */
#include "db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xmalloc.h"

int db_fail(struct db *db, int rc, const char *msg, const char *sql)
{
	(void)sql;
	if (db->err == DB_OK) {
		db->err = rc;
		snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg ? msg : "database error");
		/* one line: engines' messages may hold newlines */
		for (char *p = db->errmsg; *p; p++)
			if (*p == '\n' || *p == '\r' || *p == '\t')
				*p = ' ';
		for (size_t n = strlen(db->errmsg); n > 0 && db->errmsg[n - 1] == ' '; n--)
			db->errmsg[n - 1] = '\0';
	}
	return rc;
}

/* Drop the password of the user info ("user:secret@" -> "user@"); true if it did. */
static bool db_redact_userinfo(char *out)
{
	char *scheme_end = strstr(out, "://");
	char *auth, *at, *slash, *colon;

	if (scheme_end == NULL)
		return false;
	auth = scheme_end + 3;
	at = strchr(auth, '@');
	slash = strchr(auth, '/');
	if (at == NULL || (slash != NULL && slash < at) ||
	    (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL)
		return false;
	memmove(colon, at, strlen(at) + 1);
	return true;
}

/* Replace the value of every password= parameter by "***"; true if anything changed. */
static bool db_redact_parameters(char **outp)
{
	char *out = *outp, *p = out;
	bool changed = false;

	while ((p = strstr(p, "password=")) != NULL) {
		char *val = p + strlen("password=");
		size_t vlen = strcspn(val, "&");

		if (p == out || (p[-1] != '?' && p[-1] != '&') ||
		    (vlen == 3 && strncmp(val, "***", 3) == 0)) {
			p = val;
			continue;
		}
		size_t at = (size_t)(val - out), rest = strlen(val + vlen);

		if (vlen < 3)
			out = xrealloc(out, at + 3 + rest + 1);
		memmove(out + at + 3, out + at + vlen, rest + 1);
		memcpy(out + at, "***", 3);
		p = out + at + 3;
		changed = true;
	}
	*outp = out;
	return changed;
}

char *db_url_redact(const char *url)
{
	char *out = xstrdup(url);
	bool changed = true;

	/* each step can uncover what the other hides: repeat until neither finds anything */
	while (changed) {
		changed = db_redact_parameters(&out);
		changed = db_redact_userinfo(out) || changed;
	}
	return out;
}

static int64_t db_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t db_query_int(struct db *db, const char *sql, int64_t dflt)
{
	struct db_stmt *st = db_prepare(db, sql);
	int64_t v = dflt;

	if (db_step_row(db, st))
		v = db_col_int(st, 0);
	db_finalize(st);
	return v;
}

int db_schema_version(struct db *db)
{
	return db->ops->version_get(db);
}

int db_schema_latest(const struct db *db)
{
	return db->schema ? db->schema->n : 0;
}

/* Apply one migration and record its version, in one transaction. */
static int db_migrate_one(struct db *db, int v)
{
	const char *const *list = db->engine == DB_POSTGRES ? db->schema->postgres
							     : db->schema->sqlite;
	int rc = db_begin(db);

	if (rc == DB_OK) {
		db_exec(db, list[v]);
		db->ops->version_set(db, v + 1);
		rc = db_commit(db);
	}
	return rc;
}

/* Apply migrations beyond the stored version; -1 with *err on error. */
static int db_migrate(struct db *db, char **err)
{
	int v, n = db->schema->n, rc = 0;

	if (db->ops->migrate_lock(db, true) != DB_OK) {
		*err = xasprintf("database %s: cannot lock the schema: %s", db->url_display,
				 db_errmsg(db));
		return -1;
	}
	v = db_schema_version(db);
	if (v < 0) {
		*err = xasprintf("database %s: %s", db->url_display, db_errmsg(db));
		rc = -1;
	}
	for (; rc == 0 && v < n; v++) {
		if (db_migrate_one(db, v) != DB_OK) {
			*err = xasprintf("database %s: cannot update the schema to version %d: %s",
					 db->url_display, v + 1, db_errmsg(db));
			rc = -1;
			break;
		}
		log_debug("event=db_migrate db=%s version=%d", db->url_display, v + 1);
	}
	db->ops->migrate_lock(db, false);
	return rc;
}

/* Check the stored schema version against the program's; -1 with *err. */
static int db_check_version(struct db *db, enum db_open_mode mode, char **err)
{
	int v, n = db_schema_latest(db);

	if (mode == DB_OPEN_MIGRATE && db_migrate(db, err) < 0)
		return -1;
	if (mode == DB_OPEN_ANY)
		return 0;
	v = db_schema_version(db);
	if (v < 0) {
		*err = xasprintf("database %s: cannot read the schema version: %s",
				 db->url_display, db_errmsg(db));
		return -1;
	}
	if (v > n) {
		*err = xasprintf("database %s has schema version %d, newer than this program "
				 "(%d): update postwarden", db->url_display, v, n);
		return -1;
	}
	if (v < n) {
		*err = xasprintf("database %s has schema version %d, this program needs %d: "
				 "run `postwarden db migrate`", db->url_display, v, n);
		return -1;
	}
	return 0;
}

/* The engine of a URL and where its target starts; NULL when the scheme is unknown. */
static const struct db_ops *db_ops_of(const char *url, const char **target)
{
	if (strncmp(url, "sqlite:", 7) == 0) {
		*target = url + 7;
		return &db_sqlite_ops;
	}
	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0) {
		*target = url;
		return &db_pg_ops;
	}
	return NULL;
}

struct db *db_open(const char *url, const char *password_file, const struct db_schema *schema,
		   enum db_open_mode mode, char **err)
{
	const char *target;
	const struct db_ops *ops = db_ops_of(url, &target);
	struct db *db;

	if (ops == NULL) {
		char *shown = db_url_redact(url);

		*err = xasprintf("database url %s: expected sqlite:PATH or postgresql://...",
				 shown);
		free(shown);
		return NULL;
	}
	db = xcalloc(1, sizeof(*db));
	db->ops = ops;
	db->engine = ops == &db_pg_ops ? DB_POSTGRES : DB_SQLITE;
	db->url_display = db_url_redact(url);
	db->schema = schema;
	if (ops->open(db, target, password_file, err) != DB_OK) {
		free(db->url_display);
		free(db);
		return NULL;
	}
	if (schema != NULL && db_check_version(db, mode, err) < 0) {
		db_close(db);
		return NULL;
	}
	db_clear_error(db);
	return db;
}

void db_close(struct db *db)
{
	if (db == NULL)
		return;
	for (size_t i = 0; i < db->ncache; i++) {
		if (db->cache[i].busy)
			fatalx("database %s: closed with a statement in use: %s",
			       db->url_display, db->cache[i].sql);
		db_finalize(db->cache[i].st);
	}
	db->ncache = 0;
	db->ops->close(db);
	free(db->url_display);
	free(db);
}

enum db_engine db_engine(const struct db *db)
{
	return db->engine;
}

int db_relax_durability(struct db *db)
{
	return db->ops->relax_durability(db);
}

unsigned db_connection_generation(const struct db *db)
{
	return db->ops->generation(db);
}

const char *db_url_display(const struct db *db)
{
	return db->url_display;
}

int db_exec(struct db *db, const char *sql)
{
	int64_t t0 = db_now_usec();
	int rc = db->ops->exec(db, sql);

	db->stats.statements++;
	db->stats.usec += (uint64_t)(db_now_usec() - t0);
	return rc;
}

/* Prepare a statement; keep: it will be run many times (worth a server-side prepare). */
static struct db_stmt *db_prepare_keep(struct db *db, const char *sql, bool keep)
{
	struct db_stmt *st = xcalloc(1, sizeof(*st));

	st->db = db;
	st->sql = sql;
	if (db->ops->prepare(db, st, sql, keep) != DB_OK) {
		free(st);
		return NULL;
	}
	return st;
}

struct db_stmt *db_prepare(struct db *db, const char *sql)
{
	return db_prepare_keep(db, sql, false);
}

void db_finalize(struct db_stmt *st)
{
	if (st == NULL)
		return;
	st->db->ops->finalize(st);
	free(st);
}

/* The cache entry of sql (by pointer), or NULL. */
static struct db_cached *db_cache_find(struct db *db, const char *sql)
{
	for (size_t i = 0; i < db->ncache; i++)
		if (db->cache[i].sql == sql)
			return &db->cache[i];
	return NULL;
}

struct db_stmt *db_prepare_cached(struct db *db, const char *sql)
{
	struct db_cached *c = db_cache_find(db, sql);
	struct db_stmt *st;

	if (c != NULL) {
		if (c->busy)
			return db_prepare(db, sql);	/* nested use: db_release finalizes it */
		c->busy = true;
		return c->st;
	}
	st = db_prepare_keep(db, sql, true);
	if (st == NULL || db->ncache == DB_CACHE_MAX)
		return st;
	c = &db->cache[db->ncache++];
	c->sql = sql;
	c->st = st;
	c->busy = true;
	return st;
}

void db_release(struct db *db, struct db_stmt *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < db->ncache; i++) {
		if (db->cache[i].st == st) {
			db->ops->reset(st, true);
			st->started = false;
			db->cache[i].busy = false;
			return;
		}
	}
	db_finalize(st);
}

void db_reset(struct db_stmt *st)
{
	if (st != NULL) {
		st->db->ops->reset(st, false);
		st->started = false;
	}
}

void db_bind_text(struct db_stmt *st, int idx, const char *text)
{
	if (st == NULL)
		return;
	if (idx < 1 || idx > DB_MAX_PARAMS)
		fatalx("database: placeholder %d out of range: %s", idx, st->sql);
	if (text != NULL)
		st->db->ops->bind_text(st, idx, text);
	else
		st->db->ops->bind_null(st, idx);
}

void db_bind_int(struct db_stmt *st, int idx, int64_t v)
{
	if (st == NULL)
		return;
	if (idx < 1 || idx > DB_MAX_PARAMS)
		fatalx("database: placeholder %d out of range: %s", idx, st->sql);
	st->db->ops->bind_int(st, idx, v);
}

void db_bind_blob(struct db_stmt *st, int idx, const void *data, size_t len)
{
	if (st == NULL)
		return;
	if (idx < 1 || idx > DB_MAX_PARAMS)
		fatalx("database: placeholder %d out of range: %s", idx, st->sql);
	st->db->ops->bind_blob(st, idx, data, len);
}

void db_bind_null(struct db_stmt *st, int idx)
{
	db_bind_text(st, idx, NULL);
}

int db_step(struct db *db, struct db_stmt *st)
{
	int64_t t0 = db_now_usec();
	int rc;

	if (st == NULL)
		return db->err != DB_OK ? db->err : DB_ERROR;
	if (!st->started) {	/* a statement is counted once, not per row */
		st->started = true;
		db->stats.statements++;
	}
	rc = db->ops->step(db, st);

	db->stats.usec += (uint64_t)(db_now_usec() - t0);
	return rc;
}

int db_step_done(struct db *db, struct db_stmt *st)
{
	int rc;

	rc = db_step(db, st);
	if (rc == DB_ROW)
		fatalx("database %s: statement returned a row: %s", db->url_display, st->sql);
	return rc;
}

bool db_step_row(struct db *db, struct db_stmt *st)
{
	return db_step(db, st) == DB_ROW;
}

int db_step_finish(struct db *db, struct db_stmt *st)
{
	int rc = db_step(db, st);

	if (rc == DB_ROW)
		fatalx("database %s: statement returned more than one row: %s", db->url_display,
		       st->sql);
	return rc;
}

int64_t db_changes(struct db *db)
{
	return db->ops->changes(db);
}

const char *db_col_text(struct db_stmt *st, int col)
{
	const char *t = st ? st->db->ops->col_text(st, col) : NULL;

	return t ? t : "";
}

const char *db_col_text_or_null(struct db_stmt *st, int col)
{
	return st ? st->db->ops->col_text(st, col) : NULL;
}

int64_t db_col_int(struct db_stmt *st, int col)
{
	return st ? st->db->ops->col_int(st, col) : 0;
}

const void *db_col_blob(struct db_stmt *st, int col, size_t *len)
{
	*len = 0;
	return st ? st->db->ops->col_blob(st, col, len) : NULL;
}

bool db_col_null(struct db_stmt *st, int col)
{
	return st == NULL || st->db->ops->col_text(st, col) == NULL;
}

int db_begin(struct db *db)
{
	db_clear_error(db);
	return db_exec(db, db->ops->begin_sql);
}

int db_commit(struct db *db)
{
	int rc = db->err;

	if (rc == DB_OK && (rc = db_exec(db, "COMMIT")) == DB_OK)
		return DB_OK;
	db_rollback(db);
	return rc;
}

void db_rollback(struct db *db)
{
	/* After a full disk or a lost connection the engine may have rolled back already. */
	if (db->ops->in_transaction(db)) {
		int err = db->err;
		char msg[sizeof(db->errmsg)];

		memcpy(msg, db->errmsg, sizeof(msg));
		db->ops->exec(db, "ROLLBACK");
		db->err = err;	/* the error that caused the rollback is the one to report */
		memcpy(db->errmsg, msg, sizeof(msg));
	}
}

int db_error(const struct db *db)
{
	return db->err;
}

const char *db_errmsg(const struct db *db)
{
	return db->err != DB_OK ? db->errmsg : "no error";
}

void db_clear_error(struct db *db)
{
	db->err = DB_OK;
	db->errmsg[0] = '\0';
}

bool db_rc_is_storage(int rc)
{
	return rc == DB_STORAGE;
}

bool db_rc_is_transient(int rc)
{
	return rc == DB_BUSY || rc == DB_UNAVAILABLE;
}

void db_get_stats(const struct db *db, struct db_stats *out)
{
	*out = db->stats;
}
