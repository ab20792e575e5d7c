/*
 * cli_db.c - `postwarden db migrate`: bring the database's schema up to this program's
 * version. On PostgreSQL, where several nodes share one schema, serve refuses an old schema
 * and the operator runs this once; on SQLite serve migrates by itself.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "schema.h"

static const char db_usage[] = "db migrate";

static int db_migrate_cmd(struct cli *cli)
{
	char *err = NULL;
	struct db *db = schema_open(&cli->cfg, DB_OPEN_MIGRATE, &err);

	if (db == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return 1;
	}
	printf("database %s: schema version %d\n", db_url_display(db), db_schema_version(db));
	return cli_close_db(db, 0);
}

int cli_db(struct cli *cli, int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n\nApply the schema migrations this program has "
		       "and the database lacks.\n", db_usage);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "migrate") == 0)
		return db_migrate_cmd(cli);
	return cli_usage(db_usage);
}
