/*
 * cli_keysearch.c - "postwarden keys search ADDR": ask every configured key source at once
 * (see src/keysearch/keysearch.h) and show what each found and which key to use.
 * Exit 0 when a usable key was found, 1 when none, 2 on a usage error.
 *
 * Like the API, it answers as soon as no source still asked could return a better key, and
 * then exits: a command has no background to finish the other lookups in, and no cache
 * that outlives it. --complete waits for every source.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "dns.h"
#include "keysearch/keysearch.h"
#include "strutil.h"
#include "xmalloc.h"

static const char keysearch_usage[] =
	"keys search ADDR [--json] [--type openpgp|smime|any] [--complete]";

struct cli_keysearch_run {
	struct event_base *base;
	struct ks_result *result;
};

static void cli_keysearch_done(struct ks_result *r, void *arg)
{
	struct cli_keysearch_run *run = arg;

	run->result = r;
	event_base_loopbreak(run->base);
}

/* ADDR and --type from argv (after "keys search"); false on a usage error. */
static bool cli_keysearch_args(int argc, char **argv, const char **addr, enum ks_type *type)
{
	*addr = NULL;
	*type = KS_TYPE_ANY;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) {
			if (!ks_type_parse(argv[++i], type))
				return false;
		} else if (argv[i][0] != '-' && *addr == NULL) {
			*addr = argv[i];
		} else {
			return false;
		}
	}
	return *addr != NULL;
}

/* Run the search on a loop of its own and print the result. */
static int cli_keysearch_run(struct cli *cli, const char *addr, enum ks_type type,
			     bool complete, bool json)
{
	struct cli_keysearch_run run = { 0 };
	struct keysearch *ks = NULL;
	struct dns *dns = NULL;
	struct db *db = NULL;
	char *err = NULL;
	int rc = 1;

	if ((run.base = event_base_new()) == NULL) {
		fprintf(pw_stderr, "postwarden: cannot create the event loop\n");
		return 1;
	}
	if ((dns = dns_new(run.base, cli->cfg.dns.unbound_config, &err)) == NULL)
		goto fail;
	if (strstr(cli->cfg.keysearch.sources, "local"))
		db = cli_open_db(cli);	/* NULL: the local source reports it */
	if ((ks = keysearch_new(run.base, &cli->cfg, dns, db, &err)) == NULL)
		goto fail;
	keysearch_start(ks, addr, type, complete, cli_keysearch_done, &run);
	event_base_dispatch(run.base);
	if (run.result == NULL) {
		err = xstrdup("the search did not finish");
		goto fail;
	}
	if (json) {
		json_t *j = ks_result_json(run.result);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(s);
		free(s);
		json_decref(j);
	} else {
		ks_result_print(run.result, stdout);
	}
	rc = ks_result_found(run.result) ? 0 : 1;
fail:
	if (err) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
	}
	ks_result_free(run.result);
	keysearch_free(ks);
	if (dns)
		dns_free(dns);
	if (db)
		db_close(db);
	event_base_free(run.base);
	return rc;
}

int cli_keysearch(struct cli *cli, int argc, char **argv, bool json)
{
	enum ks_type type;
	const char *addr;
	bool complete = cli_take_flag(&argc, argv, "--complete");

	if (!cli_keysearch_args(argc, argv, &addr, &type))
		return cli_usage(keysearch_usage);
	if (!addr_valid(addr)) {
		fprintf(pw_stderr, "postwarden: \"%s\" is not an e-mail address\n", addr);
		return cli_usage(keysearch_usage);
	}
	return cli_keysearch_run(cli, addr, type, complete, json);
}
