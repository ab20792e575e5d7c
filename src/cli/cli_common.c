/*
 * cli_common.c - helpers shared by every command: config, database, usage, flags.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "schema.h"

bool cli_load_config(struct cli *cli)
{
	char *err = NULL;
	enum log_level level;

	if (config_load(&cli->cfg, cli->config_path, &err) < 0) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return false;
	}
	if (log_level_parse(cli->cfg.server.log_level, &level))
		log_set_level(level);
	return true;
}

struct db *cli_open_db(struct cli *cli)
{
	char *err = NULL;
	struct db *db = schema_open(&cli->cfg, schema_serve_mode(&cli->cfg), &err);

	if (db == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
	}
	return db;
}

int cli_close_db(struct db *db, int rc)
{
	if (db == NULL)
		return rc;
	/* said even after the command's own message: it may have been misled (a failed read
	 * looks like "not found") */
	if (db_error(db) != DB_OK) {
		fprintf(pw_stderr, "postwarden: database %s: %s\n", db_url_display(db),
			db_errmsg(db));
		if (rc == 0)
			rc = 1;
	}
	db_close(db);
	return rc;
}

int cli_usage(const char *text)
{
	fprintf(pw_stderr, "usage: postwarden %s\n", text);
	return EXIT_USAGE;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	return false;
}

bool cli_take_flag(int *argc, char **argv, const char *flag)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) == 0) {
			memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i) * sizeof(char *));
			(*argc)--;
			return true;
		}
	}
	return false;
}
