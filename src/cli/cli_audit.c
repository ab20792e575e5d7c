/*
 * cli_audit.c - "postwarden audit DOMAIN [--json]": the provider's own domain checked as a
 * careful outsider would (src/ctmon/audit.c), printed one line per finding, or as one JSON
 * document. Exit status 0 when nothing failed, 1 when something did, 2 on usage errors.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli.h"
#include "ctmon/audit.h"
#include "log.h"
#include "strutil.h"
#include "tls.h"
#include "xmalloc.h"

static const char *const audit_usage = "audit DOMAIN [--json]";

static void audit_print_text(const struct audit_report *r)
{
	static const char *const tag[] = { "PASS", "WARN", "FAIL" };
	size_t count[3] = { 0, 0, 0 };

	printf("Audit of %s\n", r->domain);
	for (size_t i = 0; i < r->n; i++) {
		const struct audit_line *l = &r->lines[i];

		count[l->status]++;
		printf("%-4s  %-11s %s: %s\n", tag[l->status], l->check, l->subject, l->found);
		if (l->status != AUDIT_PASS)
			printf("      %-11s %s\n", "", l->todo);
	}
	printf("%zu passed, %zu warnings, %zu failed\n", count[AUDIT_PASS], count[AUDIT_WARN],
	       count[AUDIT_FAIL]);
}

static void audit_print_json(const struct audit_report *r)
{
	json_t *o = audit_report_json(r);
	char *s = json_dumps(o, JSON_INDENT(2));

	if (s == NULL)
		fatalx("cannot encode the audit report");
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* The domain as lower-case A-labels without the trailing dot; NULL when it is not one. */
static char *audit_domain_arg(const char *arg)
{
	char *d;

	if (arg[0] == '-' || strchr(arg, '@') != NULL)
		return NULL;
	d = domain_to_ascii(arg);
	if (d != NULL && strchr(d, '.') == NULL) {
		free(d);
		return NULL;
	}
	return d;
}

int cli_audit(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct audit_ctx a = { 0 };
	struct audit_report r;
	struct event_base *base;
	char *err = NULL, *domain;
	int rc = 1;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", audit_usage);
		return 0;
	}
	if (argc != 2 || (domain = audit_domain_arg(argv[1])) == NULL)
		return cli_usage(audit_usage);
	base = event_base_new();
	if (base == NULL)
		fatalx("cannot create an event base");
	a.dns = dns_new(base, cli->cfg.dns.unbound_config, &err);
	if (a.dns == NULL)
		goto out;
	a.ctx = tls_client_ctx_new(NULL, &err);
	if (a.ctx == NULL)
		goto out;
	/* the findings are optional: without a database the CAA line says so */
	a.db = cli_open_db(cli);
	a.issuer_caa = cli->cfg.ctmon.issuer_caa;
	a.now = (int64_t)time(NULL);
	audit_report_init(&r, domain);
	audit_run(&a, domain, &r);
	if (json)
		audit_print_json(&r);
	else
		audit_print_text(&r);
	rc = audit_failed(&r) ? 1 : 0;
	audit_report_free(&r);
out:
	if (err != NULL)
		fprintf(pw_stderr, "postwarden: %s\n", err);
	free(err);
	if (a.db != NULL)
		db_close(a.db);
	if (a.ctx != NULL)
		SSL_CTX_free(a.ctx);
	if (a.dns != NULL)
		dns_free(a.dns);
	event_base_free(base);
	free(domain);
	return rc;
}
