/*
 * cli_user.c - "postwarden user": accounts, aliases and the TLS-sending guarantee.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "account.h"
#include "cli.h"
#include "keydir/keydir.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

static const char user_usage[] =
	"user add ADDR [--alias ADDR]...\n"
	"       postwarden user del ADDR\n"
	"       postwarden user list [--json]\n"
	"       postwarden user show ADDR [--json]\n"
	"       postwarden user guarantee ADDR on|off [--for DURATION]";

static json_t *account_json(const struct account *a, int64_t now)
{
	json_t *aliases = json_array();

	for (size_t i = 0; i < a->naliases; i++)
		json_array_append_new(aliases, json_string(a->aliases[i]));
	return json_pack("{s:s, s:o, s:b, s:b, s:I, s:I}", "address", a->primary, "aliases", aliases,
			 "guarantee", a->guarantee, "guarantee_active",
			 account_guarantee_active(a, now), "guarantee_off_until",
			 (json_int_t)(a->guarantee_off_until > now ? a->guarantee_off_until : 0),
			 "created", (json_int_t)a->created);
}

static void json_print(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

	puts(s);
	free(s);
	json_decref(j);
}

/* Human-readable state of the guarantee. */
static void guarantee_text(const struct account *a, int64_t now, char *buf, size_t len)
{
	char dur[32];

	if (!a->guarantee) {
		snprintf(buf, len, "off");
	} else if (a->guarantee_off_until > now) {
		format_duration(a->guarantee_off_until - now, dur, sizeof(dur));
		snprintf(buf, len, "off for %s more, then on again", dur);
	} else {
		snprintf(buf, len, "on");
	}
}

static void account_print(const struct account *a, int64_t now)
{
	char g[96];

	guarantee_text(a, now, g, sizeof(g));
	printf("%s\tguarantee=%s", a->primary, g);
	for (size_t i = 0; i < a->naliases; i++)
		printf("%salias=%s", i ? "," : "\t", a->aliases[i]);
	putchar('\n');
}

static int user_add(struct cli *cli, struct db *db, int argc, char **argv)
{
	char **aliases = xcalloc((size_t)argc, sizeof(char *));
	size_t n = 0;
	char *err = NULL;
	int rc = 0;

	if (argc < 3) {
		free(aliases);
		return cli_usage(user_usage);
	}
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--alias") != 0 || i + 1 >= argc) {
			free(aliases);
			return cli_usage(user_usage);
		}
		aliases[n++] = argv[++i];
	}
	if (account_add(db, argv[2], aliases, n, cli->cfg.guarantee.default_on, &err) < 0) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		rc = 1;
	} else {
		log_info("event=user_add address=%s aliases=%zu guarantee=%s", argv[2], n,
			 cli->cfg.guarantee.default_on ? "on" : "off");
	}
	free(aliases);
	return rc;
}

static int user_list(struct db *db, bool json)
{
	size_t n;
	struct account **list = account_list(db, &n);
	int64_t now = (int64_t)time(NULL);

	if (json) {
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, account_json(list[i], now));
		json_print(arr);
	} else {
		for (size_t i = 0; i < n; i++)
			account_print(list[i], now);
	}
	account_list_free(list, n);
	return 0;
}

static int user_show(struct db *db, const char *addr, bool json)
{
	struct account *a = account_find(db, addr);
	int64_t now = (int64_t)time(NULL);

	if (a == NULL) {
		fprintf(pw_stderr, "postwarden: no account has the address %s\n", addr);
		return 1;
	}
	if (json)
		json_print(account_json(a, now));
	else
		account_print(a, now);
	account_free(a);
	return 0;
}

static int user_guarantee(struct db *db, int argc, char **argv)
{
	int64_t until = 0, dur;
	bool on;
	char *err = NULL;

	if ((argc != 4 && argc != 6) || !parse_bool(argv[3], &on))
		return cli_usage(user_usage);
	if (argc == 6) {
		if (on || strcmp(argv[4], "--for") != 0 || !parse_duration(argv[5], &dur) || dur <= 0) {
			fprintf(pw_stderr, "postwarden: --for takes a duration like 30m, 2h or 1d, and only with off\n");
			return EXIT_USAGE;
		}
		until = (int64_t)time(NULL) + dur;
	}
	if (account_set_guarantee(db, argv[2], on, until, &err) < 0) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return 1;
	}
	/* Exceptions to the guarantee are always logged: the user may later ask who turned it off. */
	log_info("event=guarantee address=%s state=%s%s%s", argv[2], on ? "on" : "off",
		 argc == 6 ? " for=" : "", argc == 6 ? argv[5] : "");
	return 0;
}

/* The account's keys went with it (the store marks their names): take them down now. */
static void user_del_keys(struct cli *cli, struct db *db)
{
	struct keydir kd = { .cfg = &cli->cfg, .db = db };
	struct keydir_report rep = { 0 };

	if (keydir_reconcile(&kd, false, (int64_t)time(NULL), &rep) < 0)
		fprintf(pw_stderr, "postwarden: warning: the account's keys are still published, serve "
				"retries: %s\n", rep.error ? rep.error : "");
	keydir_report_free(&rep);
}

int cli_user(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", user_usage);
		return 0;
	}
	if (argc < 2)
		return cli_usage(user_usage);
	db = cli_open_db(cli);
	if (db == NULL)
		return 1;
	if (strcmp(argv[1], "add") == 0)
		rc = user_add(cli, db, argc, argv);
	else if (strcmp(argv[1], "del") == 0 && argc == 3) {
		char *err = NULL;
		rc = account_del(db, argv[2], &err) < 0 ? 1 : 0;
		if (rc) {
			fprintf(pw_stderr, "postwarden: %s\n", err);
			free(err);
		} else {
			log_info("event=user_del address=%s", argv[2]);
			user_del_keys(cli, db);
		}
	} else if (strcmp(argv[1], "list") == 0 && argc == 2)
		rc = user_list(db, json);
	else if (strcmp(argv[1], "show") == 0 && argc == 3)
		rc = user_show(db, argv[2], json);
	else if (strcmp(argv[1], "guarantee") == 0)
		rc = user_guarantee(db, argc, argv);
	else
		rc = cli_usage(user_usage);
	return cli_close_db(db, rc);
}
