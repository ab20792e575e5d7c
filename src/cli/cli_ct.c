/*
 * cli_ct.c - "postwarden ct": the certificates the CT monitor found for the watched names,
 * read from the database (any node, serve running or not), and the operator's ack.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "ctmon/ct_store.h"
#include "log.h"
#include "strutil.h"

static const char ct_usage[] =
	"ct list [--unexpected] [--json]\n"
	"       postwarden ct show ID [--json]\n"
	"       postwarden ct ack ID";

#define CT_LIST_MAX 10000

/* A finding ID from the command line; false (after the usage text) when it is not one. */
static bool ct_parse_id(const char *s, int64_t *id)
{
	uint64_t v;

	if (!parse_uint(s, 1, INT64_MAX, &v))
		return false;
	*id = (int64_t)v;
	return true;
}

static const char *ct_json_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void ct_date(json_t *o, const char *key, char *buf, size_t len)
{
	format_date(json_integer_value(json_object_get(o, key)), buf, len);
}

static void ct_print_list(json_t *arr)
{
	if (json_array_size(arr) == 0) {
		printf("no certificates found for the watched names\n");
		return;
	}
	printf("%-6s %-10s %-20s %-5s %s\n", "ID", "SEEN", "VERDICT", "ACKED", "NAMES");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *f = json_array_get(arr, i);
		char seen[32];

		ct_date(f, "first_seen", seen, sizeof(seen));
		printf("%-6" PRId64 " %-10s %-20s %-5s %s\n",
		       (int64_t)json_integer_value(json_object_get(f, "id")), seen,
		       ct_json_str(f, "verdict"),
		       json_is_true(json_object_get(f, "acked")) ? "yes" : "no",
		       ct_json_str(f, "names"));
	}
}

static void ct_print_finding(json_t *f)
{
	json_t *seen = json_object_get(f, "seen_in");
	char from[32], until[32], first[32];

	ct_date(f, "not_before", from, sizeof(from));
	ct_date(f, "not_after", until, sizeof(until));
	ct_date(f, "first_seen", first, sizeof(first));
	printf("finding %" PRId64 "\n  names:       %s\n  issuer:      %s\n  serial:      %s\n"
	       "  public key:  %s (SHA-256 of the SPKI)\n  valid:       %s to %s\n"
	       "  verdict:     %s\n  reason:      %s\n  first seen:  %s\n  acked:       %s\n",
	       (int64_t)json_integer_value(json_object_get(f, "id")), ct_json_str(f, "names"),
	       ct_json_str(f, "issuer"), ct_json_str(f, "serial"), ct_json_str(f, "spki_sha256"),
	       from, until, ct_json_str(f, "verdict"), ct_json_str(f, "reason"), first,
	       json_is_true(json_object_get(f, "acked")) ? "yes" : "no");
	for (size_t i = 0; i < json_array_size(seen); i++) {
		json_t *s = json_array_get(seen, i);

		printf("  seen in:     %s entry %" PRId64 "%s\n", *ct_json_str(s, "log_url") ?
		       ct_json_str(s, "log_url") : ct_json_str(s, "log_id"),
		       (int64_t)json_integer_value(json_object_get(s, "index")),
		       json_is_true(json_object_get(s, "precert")) ? " (precertificate)" : "");
	}
}

static void ct_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
}

static int ct_list(struct db *db, int argc, char **argv, bool json)
{
	bool unexpected = cli_take_flag(&argc, argv, "--unexpected");
	json_t *arr;

	if (argc != 1)
		return cli_usage(ct_usage);
	if ((arr = ct_store_findings_json(db, unexpected, CT_LIST_MAX)) == NULL)
		return 1;	/* cli_close_db says why */
	if (json)
		ct_print_json(arr);
	else
		ct_print_list(arr);
	json_decref(arr);
	return 0;
}

static int ct_show(struct db *db, int argc, char **argv, bool json)
{
	int64_t id;
	json_t *f;

	if (argc != 2 || !ct_parse_id(argv[1], &id))
		return cli_usage(ct_usage);
	if ((f = ct_store_finding_json(db, id)) == NULL) {
		if (db_error(db) == DB_OK)
			fprintf(pw_stderr, "postwarden: no finding %s\n", argv[1]);
		return 1;
	}
	if (json)
		ct_print_json(f);
	else
		ct_print_finding(f);
	json_decref(f);
	return 0;
}

static int ct_ack(struct db *db, int argc, char **argv)
{
	int64_t id;

	if (argc != 2 || !ct_parse_id(argv[1], &id))
		return cli_usage(ct_usage);
	db_clear_error(db);
	if (!ct_store_ack(db, id, (int64_t)time(NULL))) {
		if (db_error(db) == DB_OK)
			fprintf(pw_stderr, "postwarden: no finding %s\n", argv[1]);
		return 1;
	}
	printf("finding %s acknowledged\n", argv[1]);
	return 0;
}

int cli_ct(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", ct_usage);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0 &&
			 strcmp(argv[1], "ack") != 0))
		return cli_usage(ct_usage);
	if ((db = cli_open_db(cli)) == NULL)
		return 1;
	db_clear_error(db);
	if (strcmp(argv[1], "list") == 0)
		rc = ct_list(db, argc - 1, argv + 1, json);
	else if (strcmp(argv[1], "show") == 0)
		rc = ct_show(db, argc - 1, argv + 1, json);
	else
		rc = ct_ack(db, argc - 1, argv + 1);
	return cli_close_db(db, rc);
}
