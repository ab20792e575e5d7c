/*
 * db.h - the storage layer: one small interface over two engines, SQLite (the embedded
 * default, a file in state_dir) and PostgreSQL (shared by several postwarden nodes).
 *
 * No module outside src/lib/db*.c calls sqlite3_* or PQ*. SQL is written once with "?"
 * or "?N" placeholders and portable syntax (INSERT ... ON CONFLICT, RETURNING); where the
 * engines differ, the caller keeps both texts side by side and picks one with DB_SQL().
 *
 * A struct db is one connection and belongs to one thread at a time (the serve process
 * gives its queue worker its own): nothing in it is locked. Statements are prepared with
 * db_prepare and finalized with db_finalize, or, on hot paths, taken from a small cache
 * of the struct with db_prepare_cached and handed back with db_release.
 *
 * Errors come in two kinds. Run-time errors - a full disk, a database busy or locked past
 * its timeout, a serialization failure, an I/O error, a lost connection - are errors of the
 * operation: they are returned as one of the DB_* codes below, and the first one since
 * db_clear_error (or db_begin) is kept in the struct (db_error, db_errmsg) so that a caller
 * may check once after a series of statements. Nothing is logged here; the caller decides
 * what the failure means. Errors that can only come from a bug (SQL that does not compile,
 * a wrong placeholder) and out of memory are fatal.
 *
 * A statement that could not be prepared because of a run-time error is NULL; every
 * function taking a statement accepts NULL, so a series of statements can be written
 * straight and checked at its end.
 *
 * On PostgreSQL a lost connection is reconnected by itself at the next statement (at most
 * one attempt a second, so that an absent server costs little); the statement that found
 * it lost fails with DB_UNAVAILABLE, and a transaction open at the time is gone.
 */
#ifndef PW_DB_H
#define PW_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Result codes: DB_OK, or what kind of run-time error. */
enum db_rc {
	DB_OK = 0,
	DB_DONE,		/* db_step_done: the statement ran */
	DB_CONSTRAINT,		/* a UNIQUE, NOT NULL, CHECK or foreign key constraint refused it */
	DB_BUSY,		/* contention: locked, deadlock, serialization failure: try again */
	DB_STORAGE,		/* the storage is short: full disk, I/O error, read-only, damaged */
	DB_UNAVAILABLE,		/* no connection to the database server */
	DB_ERROR,		/* any other run-time error (e.g. input the engine refuses) */
	DB_ROW = 100,		/* db_step: a row is available */
};

enum db_engine { DB_SQLITE, DB_POSTGRES };

struct db;
struct db_stmt;

/* The schema: migrations[i] moves it from version i to i+1, one text per engine. */
struct db_schema {
	const char *const *sqlite;
	const char *const *postgres;
	int n;			/* the same number of migrations for both */
};

/* What db_open does about a schema older than the program. */
enum db_open_mode {
	DB_OPEN_MIGRATE,	/* bring it up to date (SQLite serve, `db migrate`) */
	DB_OPEN_CHECK,		/* refuse to open, naming `postwarden db migrate` */
	DB_OPEN_ANY,		/* open whatever version it is (`db status`) */
};

/*
 * Open a database by URL: "sqlite:PATH" (created if absent) or "postgresql://..." /
 * "postgres://..." (libpq's URI). password_file, when not NULL or "", is a libpq password
 * file (host:port:db:user:password lines, mode 0600); PGPASSFILE works as usual.
 * Returns NULL with *err set (the URL in it without a password).
 */
struct db *db_open(const char *url, const char *password_file, const struct db_schema *schema,
		   enum db_open_mode mode, char **err);
void db_close(struct db *db);

enum db_engine db_engine(const struct db *db);
/*
 * Let this connection's commits return before they are on the server's disk (PostgreSQL:
 * synchronous_commit off, kept across reconnects; SQLite in WAL mode with synchronous
 * NORMAL already does this). A crash of the database server may then lose the last
 * commits, never half of one. Only for rows that are re-done or rebuilt when lost: the
 * scheduler's delivery states (a lost "delivered" means one more delivery).
 */
int db_relax_durability(struct db *db);
/*
 * Grows whenever the engine connected anew (PostgreSQL after a lost connection; SQLite
 * never): commits made just before may be gone with the server (a relaxed connection's,
 * or any after a failover to a standby that lagged), so a caller may redo them.
 */
unsigned db_connection_generation(const struct db *db);
/*
 * A URL for display (caller frees): "postgresql://user:secret@host/db" loses ":secret",
 * and a password=... query parameter its value.
 */
char *db_url_redact(const char *url);
/* The URL without its password, for logs and status. */
const char *db_url_display(const struct db *db);
/* The schema version stored in the database (-1 if it cannot be read), and the program's. */
int db_schema_version(struct db *db);
int db_schema_latest(const struct db *db);

/*
 * The database server's clock in whole seconds since the epoch, as SQL: every node that
 * compares times of shared rows (heartbeats, leases) uses the same clock.
 */
#define DB_NOW_SQLITE "CAST(strftime('%s', 'now') AS INTEGER)"
#define DB_NOW_PG "CAST(extract(epoch from now()) AS BIGINT)"

/* Pick the statement text of this engine: DB_SQL(db, "sqlite text", "postgresql text"). */
#define DB_SQL(db, lite, pg) (db_engine(db) == DB_POSTGRES ? (pg) : (lite))

/* Execute SQL without parameters or results (may hold several statements on SQLite). */
int db_exec(struct db *db, const char *sql);
/* Prepare a statement; NULL on a run-time error; fatal when the SQL is wrong (a bug). */
struct db_stmt *db_prepare(struct db *db, const char *sql);
void db_finalize(struct db_stmt *st);
/*
 * Like db_prepare, but the statement stays prepared for the next call with the same sql
 * pointer (a string literal): preparing costs more than running the small statements of
 * the hot paths. Hand it back with db_release, never db_finalize; it is then reset and its
 * bindings cleared, also after an error. Asked again while still handed out (or with the
 * cache full), a fresh statement is prepared, and db_release finalizes that one.
 */
struct db_stmt *db_prepare_cached(struct db *db, const char *sql);
void db_release(struct db *db, struct db_stmt *st);
/* Reset a statement to run again; its bindings stay. */
void db_reset(struct db_stmt *st);

/* Bind helpers: index starts at 1; text NULL binds SQL NULL. */
void db_bind_text(struct db_stmt *st, int idx, const char *text);
void db_bind_int(struct db_stmt *st, int idx, int64_t v);
void db_bind_blob(struct db_stmt *st, int idx, const void *data, size_t len);
void db_bind_null(struct db_stmt *st, int idx);

/*
 * Step: DB_ROW, DB_DONE, DB_CONSTRAINT or a run-time error. A constraint violation is an
 * answer, not kept as db_error; on PostgreSQL it still spoils an open transaction, whose
 * db_commit then fails.
 */
int db_step(struct db *db, struct db_stmt *st);
/* Step a statement that returns no row: DB_DONE, DB_CONSTRAINT or a run-time error. */
int db_step_done(struct db *db, struct db_stmt *st);
/* Step; true when a row is available, false when done or on a run-time error (db_error). */
bool db_step_row(struct db *db, struct db_stmt *st);
/*
 * Run a changing statement with RETURNING to its end after its one row was read: DB_DONE,
 * or the error that kept its change from being made. Outside a transaction SQLite commits
 * the change only there, so a full disk shows here, not at the row.
 */
int db_step_finish(struct db *db, struct db_stmt *st);
/* Rows changed by the last statement run on db. */
int64_t db_changes(struct db *db);

/* Columns of the current row, index from 0. Text and blobs are borrowed until the next step. */
const char *db_col_text(struct db_stmt *st, int col);		/* "" for NULL */
int64_t db_col_int(struct db_stmt *st, int col);		/* 0 for NULL */
const void *db_col_blob(struct db_stmt *st, int col, size_t *len);
bool db_col_null(struct db_stmt *st, int col);
/* Column text, or NULL for SQL NULL. */
const char *db_col_text_or_null(struct db_stmt *st, int col);

/* Run a one-off query; the first column of its first row, or dflt (no row, or an error). */
int64_t db_query_int(struct db *db, const char *sql, int64_t dflt);

/*
 * Begin a write transaction (SQLite: BEGIN IMMEDIATE, the write lock up front;
 * PostgreSQL: BEGIN, read committed); clears the kept error.
 */
int db_begin(struct db *db);
/*
 * COMMIT, unless a statement since db_begin failed: then ROLLBACK. DB_OK, or the error
 * (the transaction is then rolled back, nothing of it is kept).
 */
int db_commit(struct db *db);
/* ROLLBACK if a transaction is open. */
void db_rollback(struct db *db);

/* The first run-time error since db_clear_error or db_begin (DB_OK: none), its text. */
int db_error(const struct db *db);
const char *db_errmsg(const struct db *db);
void db_clear_error(struct db *db);
/* Is rc a sign that the storage is short (full disk, I/O error), rather than contention? */
bool db_rc_is_storage(int rc);
/* Is rc worth trying again (contention, or a connection that may come back)? */
bool db_rc_is_transient(int rc);

/* Statements run and their total time since start, for metrics and benchmarks. */
struct db_stats {
	uint64_t statements;
	uint64_t usec;
};
void db_get_stats(const struct db *db, struct db_stats *out);

#endif
