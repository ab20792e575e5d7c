/*
 * schema.h - the database schema of postwarden and opening the database.
 */
#ifndef PW_SCHEMA_H
#define PW_SCHEMA_H

#include "config.h"
#include "db.h"

/* Open state_dir/postwarden.db (creating state_dir), migrating the schema. NULL + *err on failure. */
struct db *schema_open(const struct pw_config *cfg, char **err);

#endif
