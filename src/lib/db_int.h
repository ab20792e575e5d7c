/*
 * db_int.h - what db.c (the engine-neutral part: kept errors, the statement cache,
 * migrations, statistics) shares with the engines, db_sqlite.c and db_pg.c.
 */
#ifndef PW_DB_INT_H
#define PW_DB_INT_H

#include "db.h"

/* Statements kept prepared by db_prepare_cached; a few hot statements per connection. */
#define DB_CACHE_MAX 24
/* The largest placeholder number a statement may use. */
#define DB_MAX_PARAMS 32

struct db_cached {
	const char *sql;	/* the caller's SQL text: its pointer is the key */
	struct db_stmt *st;
	bool busy;		/* handed out and not yet released */
};

/* One engine: the functions db.c calls. Run-time errors go through db_fail. */
struct db_ops {
	const char *name;
	int (*open)(struct db *db, const char *target, const char *password_file, char **err);
	void (*close)(struct db *db);
	int (*exec)(struct db *db, const char *sql);
	/* Prepare into st->impl; DB_OK or a run-time error (fatal on SQL that is wrong). */
	int (*prepare)(struct db *db, struct db_stmt *st, const char *sql, bool keep);
	void (*finalize)(struct db_stmt *st);
	void (*reset)(struct db_stmt *st, bool clear_bindings);
	void (*bind_text)(struct db_stmt *st, int idx, const char *text);
	void (*bind_int)(struct db_stmt *st, int idx, int64_t v);
	void (*bind_blob)(struct db_stmt *st, int idx, const void *data, size_t len);
	void (*bind_null)(struct db_stmt *st, int idx);
	/* DB_ROW, DB_DONE, DB_CONSTRAINT or a run-time error (already kept by db_fail). */
	int (*step)(struct db *db, struct db_stmt *st);
	const char *(*col_text)(struct db_stmt *st, int col);	/* NULL for SQL NULL */
	int64_t (*col_int)(struct db_stmt *st, int col);
	const void *(*col_blob)(struct db_stmt *st, int col, size_t *len);
	int64_t (*changes)(struct db *db);
	bool (*in_transaction)(struct db *db);
	const char *begin_sql;
	/* The stored schema version (-1: cannot be read), and storing a new one in a transaction. */
	int (*version_get)(struct db *db);
	int (*version_set)(struct db *db, int v);
	/* Serialise migrations between processes (PostgreSQL: an advisory lock). */
	int (*migrate_lock)(struct db *db, bool lock);
	int (*relax_durability)(struct db *db);
	unsigned (*generation)(const struct db *db);
};

struct db {
	const struct db_ops *ops;
	enum db_engine engine;
	char *url_display;
	const struct db_schema *schema;
	int err;		/* first run-time error since db_clear_error, or DB_OK */
	char errmsg[256];	/* its text */
	struct db_cached cache[DB_CACHE_MAX];
	size_t ncache;
	struct db_stats stats;
	void *impl;		/* the engine's connection */
};

struct db_stmt {
	struct db *db;
	const char *sql;	/* as given (for messages) */
	bool started;		/* stepped since prepared or reset (counted in the statistics) */
	void *impl;		/* the engine's statement */
};

extern const struct db_ops db_sqlite_ops;
extern const struct db_ops db_pg_ops;

/*
 * Keep a run-time error (the first since it was cleared) and return rc. sql is for the
 * message only.
 */
int db_fail(struct db *db, int rc, const char *msg, const char *sql);

#endif
