/*
 * cli.h - command-line dispatch: one function per command group, one file per group.
 *
 * Each command gets argv starting at its own name, the parsed global options, and returns
 * the process exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef PW_CLI_H
#define PW_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "db.h"

#define EXIT_USAGE 2

struct cli {
	const char *config_path;	/* -c FILE, or NULL for the search order */
	struct pw_config cfg;
};

int cli_serve(struct cli *cli, int argc, char **argv);
int cli_user(struct cli *cli, int argc, char **argv);
int cli_queue(struct cli *cli, int argc, char **argv);
int cli_tls_check(struct cli *cli, int argc, char **argv);
int cli_tls_history(struct cli *cli, int argc, char **argv);
int cli_keys(struct cli *cli, int argc, char **argv);
int cli_db(struct cli *cli, int argc, char **argv);
int cli_status(struct cli *cli, int argc, char **argv);
int cli_cert(struct cli *cli, int argc, char **argv);
int cli_ct(struct cli *cli, int argc, char **argv);
int cli_audit(struct cli *cli, int argc, char **argv);
int cli_tlsrpt(struct cli *cli, int argc, char **argv);
/* "migrate mail" and the dispatcher of "migrate" (cli_migrate.c). */
int cli_migrate(struct cli *cli, int argc, char **argv);
/* "migrate contacts" (cli_migrate_contacts.c): argv starts at "contacts". */
int cli_migrate_contacts(int argc, char **argv);
/* "keys search" (cli_keysearch.c); json: --json was given. */
int cli_keysearch(struct cli *cli, int argc, char **argv, bool json);

/* The loaded configuration ([migrate] carddav_destination) for cli_migrate_contacts; borrowed. */
void cli_migrate_contacts_use_config(const struct pw_config *cfg);

/* Load the configuration (reporting errors on standard error); false when unusable. */
bool cli_load_config(struct cli *cli);
/* Open the database of the loaded configuration; NULL after reporting on standard error. */
struct db *cli_open_db(struct cli *cli);
/* Print "postwarden CMD: usage: ..." to standard error and return EXIT_USAGE. */
int cli_usage(const char *usage);
/* Is argv[i] "--help" or "-h"? */
bool cli_wants_help(int argc, char **argv);
/* Remove "--json" from argv (shifting the rest); returns whether it was there. */
bool cli_take_flag(int *argc, char **argv, const char *flag);
/*
 * Close db at the end of a command that returns rc: when a database operation failed on the
 * way (a full disk, a locked database), say so on standard error and return 1 if rc said success.
 */
int cli_close_db(struct db *db, int rc);

#endif
