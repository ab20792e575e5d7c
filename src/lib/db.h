/*
 * db.h - SQLite access: WAL mode, busy timeout, schema migrations, small helpers.
 *
 * The serve process and the command-line tools open the same database; WAL lets them
 * read and write concurrently. Statements are prepared by callers with db_prepare and
 * finalized by them, or, on hot paths, taken from a small cache of the struct with
 * db_prepare_cached and handed back with db_release.
 *
 * Errors come in two kinds. Run-time errors - a full disk (SQLITE_FULL), a database busy or
 * locked past the busy timeout, I/O errors, a read-only or damaged file - are errors of the
 * operation: they are returned, and the first one since db_clear_error (or db_begin) is kept
 * in the struct (db_error, db_errmsg) so that a caller may check once after a series of
 * statements. Nothing is logged here; the caller decides what the failure means. Errors that
 * can only come from a bug (SQL that does not compile, misuse of the API) and out of memory
 * are fatal.
 *
 * A statement that could not be prepared because of a run-time error is NULL; the bind
 * helpers, db_step_done, db_step_row, db_release and sqlite3_finalize all accept NULL, so a
 * series of statements can be written straight and checked at its end.
 */
#ifndef PW_DB_H
#define PW_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Statements kept prepared by db_prepare_cached; a few hot statements per connection. */
#define DB_CACHE_MAX 16

struct db_cached {
	const char *sql;	/* the caller's SQL text: its pointer is the key */
	sqlite3_stmt *st;
	bool busy;		/* handed out and not yet released */
};

/*
 * A struct db belongs to one thread at a time (the serve process gives the queue worker
 * its own): the statement cache in it is not locked.
 */
struct db {
	sqlite3 *h;
	char *path;
	int err;		/* first run-time error since db_clear_error, or SQLITE_OK */
	char errmsg[256];	/* its text */
	struct db_cached cache[DB_CACHE_MAX];
	size_t ncache;
};

/*
 * Open (creating) the database at path and bring its schema up to date: migrations[i]
 * is the SQL that moves the schema from version i to i+1 (PRAGMA user_version).
 * Returns NULL with *err set when the file cannot be opened or brought up to date.
 */
struct db *db_open(const char *path, const char *const *migrations, int nmigrations, char **err);
void db_close(struct db *db);

/* Execute SQL without results; SQLITE_OK or the run-time error. */
int db_exec(struct db *db, const char *sql);
/* Prepare a statement; NULL on a run-time error; fatal when the SQL is wrong (a bug). */
sqlite3_stmt *db_prepare(struct db *db, const char *sql);
/*
 * Like db_prepare, but the statement stays prepared for the next call with the same sql
 * pointer (a string literal): preparing costs more than running the small statements of
 * the hot paths. Hand it back with db_release, never sqlite3_finalize; it is then reset
 * and its bindings cleared, also after an error. Asked again while still handed out (or
 * with the cache full), a fresh statement is prepared, and db_release finalizes that one.
 */
sqlite3_stmt *db_prepare_cached(struct db *db, const char *sql);
/* Give back a statement of db_prepare_cached (NULL does nothing). */
void db_release(struct db *db, sqlite3_stmt *st);
/* Step a statement that returns no row: SQLITE_DONE, SQLITE_CONSTRAINT or a run-time error. */
int db_step_done(struct db *db, sqlite3_stmt *st);
/* Step; true when a row is available, false when done or on a run-time error (db_error). */
bool db_step_row(struct db *db, sqlite3_stmt *st);
/* Run a one-off query; the first column of its first row, or dflt (no row, or an error). */
int db_query_int(struct db *db, const char *sql, int dflt);

/* BEGIN IMMEDIATE (take the write lock up front); clears the kept error. */
int db_begin(struct db *db);
/*
 * COMMIT, unless a statement since db_begin failed: then ROLLBACK. SQLITE_OK, or the error
 * (the transaction is then rolled back, nothing of it is kept).
 */
int db_commit(struct db *db);
/* ROLLBACK if a transaction is open (SQLite may have rolled back by itself already). */
void db_rollback(struct db *db);

/* The first run-time error since db_clear_error or db_begin (SQLITE_OK: none), its text. */
int db_error(const struct db *db);
const char *db_errmsg(const struct db *db);
void db_clear_error(struct db *db);
/* Is rc a sign that the storage is short (full disk, I/O error), rather than contention? */
bool db_rc_is_storage(int rc);

/* Bind helpers: index starts at 1; text NULL binds SQL NULL; st NULL does nothing. */
void db_bind_text(sqlite3_stmt *st, int idx, const char *text);
void db_bind_int(sqlite3_stmt *st, int idx, int64_t v);
/* Column text as a borrowed pointer ("" for NULL). */
const char *db_col_text(sqlite3_stmt *st, int col);

#endif
