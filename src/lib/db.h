/*
 * db.h - SQLite access: WAL mode, busy timeout, schema migrations, small helpers.
 *
 * The serve process and the command-line tools open the same database; WAL lets them
 * read and write concurrently. Statements are prepared by callers with db_prepare and
 * finalized by them; errors other than constraint violations are fatal, because they
 * mean a broken disk or a bug, not bad input.
 */
#ifndef PW_DB_H
#define PW_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct db {
	sqlite3 *h;
	char *path;
};

/*
 * Open (creating) the database at path and bring its schema up to date: migrations[i]
 * is the SQL that moves the schema from version i to i+1 (PRAGMA user_version).
 * Returns NULL with *err set when the file cannot be opened.
 */
struct db *db_open(const char *path, const char *const *migrations, int nmigrations, char **err);
void db_close(struct db *db);

/* Execute SQL without results; fatal on error. */
void db_exec(struct db *db, const char *sql);
/* Prepare a statement; fatal on error (SQL is ours, so an error is a bug). */
sqlite3_stmt *db_prepare(struct db *db, const char *sql);
/* Step a statement that returns no row; returns the SQLite code (SQLITE_DONE or SQLITE_CONSTRAINT). */
int db_step_done(struct db *db, sqlite3_stmt *st);
/* Step; true when a row is available, false when done; fatal on errors. */
bool db_step_row(struct db *db, sqlite3_stmt *st);

void db_begin(struct db *db);	/* BEGIN IMMEDIATE: take the write lock up front */
void db_commit(struct db *db);
void db_rollback(struct db *db);

/* Bind helpers: index starts at 1; text NULL binds SQL NULL. */
void db_bind_text(sqlite3_stmt *st, int idx, const char *text);
void db_bind_int(sqlite3_stmt *st, int idx, int64_t v);
/* Column text as a borrowed pointer ("" for NULL). */
const char *db_col_text(sqlite3_stmt *st, int col);

#endif
