/*
 * cli_tls_history.c - "postwarden tls-history DOMAIN [--json]" shows what the relay
 * remembers of a destination's TLS (the downgrade memory, relay_downgrade.c), and
 * "postwarden tls-history forget DOMAIN" resets it, so that the next delivery records
 * afresh and is not deferred as a downgrade.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "log.h"
#include "relay/relay_downgrade.h"
#include "strutil.h"
#include "xmalloc.h"

static const char *const usage_text = "tls-history DOMAIN [--json] | tls-history forget DOMAIN";

/* A unix time in UTC for people, "never" for 0. */
static void tls_history_time(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(out, len, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static json_t *tls_history_json(const struct dg_record *r)
{
	return json_pack("{s:s, s:s, s:I, s:b, s:s, s:b, s:b, s:b, s:I, s:I, s:s, s:I}",
		"domain", r->domain, "mx", r->mx, "last_seen", (json_int_t)r->last_seen,
		"tls", r->version[0] != '\0', "tls_version", r->version,
		"cert_valid", r->cert_valid, "dane", r->dane, "mta_sts", r->mta_sts,
		"last_good", (json_int_t)r->last_good,
		"downgrade_since", (json_int_t)r->downgrade_since, "downgrade", r->what,
		"alerted", (json_int_t)r->alerted);
}

static void tls_history_print(const struct dg_record *r)
{
	char seen[40], good[40], since[40];

	tls_history_time(r->last_seen, seen, sizeof(seen));
	tls_history_time(r->last_good, good, sizeof(good));
	tls_history_time(r->downgrade_since, since, sizeof(since));
	printf("domain:        %s\n", r->domain);
	printf("last seen:     %s via %s\n", seen, r->mx[0] ? r->mx : "-");
	printf("TLS:           %s\n", r->version[0] ? r->version : "none");
	printf("certificate:   %s\n", r->version[0] == '\0' ? "-" :
	       r->cert_valid ? "valid for the MX name" : "not valid for the MX name");
	printf("DANE:          %s\n", r->dane ? "yes" : "no");
	printf("MTA-STS:       %s\n", r->mta_sts ? "yes" : "no");
	printf("last valid TLS: %s\n", good);
	if (r->downgrade_since > 0)
		printf("downgrade:     since %s: %s (mail deferred for [downgrade] defer_for)\n",
		       since, r->what);
	else
		printf("downgrade:     none\n");
}

static int tls_history_show(struct db *db, const char *domain, bool json)
{
	struct dg_record r;
	int found = downgrade_load(db, domain, &r);

	if (found < 0)
		return 1;
	if (json) {
		json_t *j = found ? tls_history_json(&r) : json_pack("{s:s, s:n}", "domain",
								     domain, "record");
		char *s = json_dumps(j, JSON_INDENT(2));

		printf("%s\n", s);
		free(s);
		json_decref(j);
		return 0;
	}
	if (!found) {
		printf("nothing remembered about %s\n", domain);
		return 0;
	}
	tls_history_print(&r);
	return 0;
}

static int tls_history_forget(struct db *db, const char *domain)
{
	int rc = downgrade_forget(db, domain);

	if (rc < 0)
		return 1;
	printf(rc ? "forgot the TLS history of %s\n" : "nothing remembered about %s\n", domain);
	return 0;
}

int cli_tls_history(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	bool forget = argc == 3 && strcmp(argv[1], "forget") == 0;
	char *domain;
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", usage_text);
		return 0;
	}
	if (argc != 2 && !forget)
		return cli_usage(usage_text);
	domain = domain_to_ascii(argv[forget ? 2 : 1]);
	if (domain == NULL) {
		fprintf(pw_stderr, "postwarden: \"%s\" is not a domain name\n", argv[forget ? 2 : 1]);
		return EXIT_USAGE;
	}
	db = cli_open_db(cli);
	if (db == NULL) {
		free(domain);
		return 1;
	}
	rc = forget ? tls_history_forget(db, domain) : tls_history_show(db, domain, json);
	free(domain);
	return cli_close_db(db, rc);
}
