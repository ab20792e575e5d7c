/*
 * schema.h - the database schema of postwarden and opening the database.
 */
#ifndef PW_SCHEMA_H
#define PW_SCHEMA_H

#include "config.h"
#include "db.h"

/*
 * Open [database] url (creating state_dir for SQLite); mode says what to do with a schema
 * older than the program. NULL + *err on failure.
 */
struct db *schema_open(const struct pw_config *cfg, enum db_open_mode mode, char **err);
/* Open another database with postwarden's schema (`db copy --to`). */
struct db *schema_open_url(const char *url, const char *password_file, enum db_open_mode mode,
			   char **err);
/* What serve does with an old schema: SQLite migrates, PostgreSQL (shared) refuses. */
enum db_open_mode schema_serve_mode(const struct pw_config *cfg);

#endif
