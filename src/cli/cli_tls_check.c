/*
 * cli_tls_check.c - "postwarden tls-check DOMAIN [--json]": what the relay would do for a
 * domain right now.
 *
 * It runs the relay's own SMTP client (relay_mta.c) in probe mode on a private event loop:
 * MX lookup, address and TLSA lookups, then EHLO, STARTTLS, TLS handshake and QUIT on each MX
 * host (never MAIL), and prints what it found and the verdict for a sender with the
 * TLS-sending guarantee. Because the code is the relay's, the verdict is the relay's.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli.h"
#include "log.h"
#include "relay/relay_delivery.h"
#include "schema.h"
#include "strutil.h"
#include "tls.h"
#include "xmalloc.h"

static const char *const usage_text = "tls-check DOMAIN [--json]";

struct tls_check {
	struct event_base *base;
	bool done;
};

static void tls_check_done(struct mta_job *job, void *arg)
{
	struct tls_check *tc = arg;

	tc->done = true;
	event_base_loopbreak(tc->base);
}

static const char *tls_check_dane_name(enum policy_dane d)
{
	switch (d) {
	case DANE_AUTH:
		return "required";
	case DANE_TLS_ONLY:
		return "tls-only";
	case DANE_SKIP:
		return "unusable";
	case DANE_NONE:
		break;
	}
	return "none";
}

static const char *tls_check_dane_result(enum tls_dane_result r)
{
	return r == TLS_DANE_RESULT_PASS ? "pass" : r == TLS_DANE_RESULT_FAIL ? "fail" : "none";
}

static const char *tls_check_verdict_name(enum policy_action a)
{
	switch (a) {
	case POLICY_PROCEED:
		return "deliver";
	case POLICY_HOLD:
		return "stop";
	case POLICY_BOUNCE:
		return "bounce";
	default:
		break;
	}
	return "defer";
}

static json_t *tls_check_host_json(const struct mta_probe_host *h)
{
	json_t *o = json_object(), *a = json_array(), *t = json_array();

	for (size_t i = 0; i < h->naddr; i++)
		json_array_append_new(a, json_string(h->addrs[i]));
	for (size_t i = 0; i < h->ntlsa; i++)
		json_array_append_new(t, json_string(h->tlsa[i]));
	json_object_set_new(o, "host", json_string(h->name));
	json_object_set_new(o, "preference", json_integer(h->pref));
	json_object_set_new(o, "address_dnssec", json_string(dns_security_name(h->addr_sec)));
	json_object_set_new(o, "addresses", a);
	json_object_set_new(o, "tlsa_dnssec", h->tlsa_looked_up ?
			    json_string(dns_security_name(h->tlsa_sec)) : json_null());
	json_object_set_new(o, "tlsa", t);
	json_object_set_new(o, "dane", json_string(tls_check_dane_name(h->dane)));
	json_object_set_new(o, "probed_address", h->ip[0] ? json_string(h->ip) : json_null());
	json_object_set_new(o, "connected", json_boolean(h->connected));
	json_object_set_new(o, "starttls", json_boolean(h->starttls_offered));
	json_object_set_new(o, "tls", json_boolean(h->handshake_ok));
	json_object_set_new(o, "protocol", h->tls.version[0] ? json_string(h->tls.version) : json_null());
	json_object_set_new(o, "cipher", h->tls.cipher[0] ? json_string(h->tls.cipher) : json_null());
	json_object_set_new(o, "cert_subject", json_string(h->tls.peer_subject));
	json_object_set_new(o, "cert_issuer", json_string(h->tls.peer_issuer));
	json_object_set_new(o, "cert_expires", json_string(h->tls.peer_not_after));
	json_object_set_new(o, "dane_result", json_string(tls_check_dane_result(h->tls.dane)));
	json_object_set_new(o, "guarantee_ok", json_boolean(h->ok));
	json_object_set_new(o, "problem", h->reason != REASON_NONE ?
			    json_string(policy_reason_name(h->reason)) : json_null());
	json_object_set_new(o, "detail", h->detail ? json_string(h->detail) : json_null());
	return o;
}

/* What the receiver's MTA-STS policy means for every sender. */
static const char *tls_check_sts_meaning(const struct mta_probe *p)
{
	if (!p->sts_have || p->sts.mode == STS_MODE_NONE)
		return "no MTA-STS policy in force: delivery as without one";
	if (p->sts.mode == STS_MODE_TESTING)
		return "testing: failures are noted (TLS reports) but mail is still delivered";
	return "enforce: only MX hosts matching the mx patterns, with a certificate valid for "
	       "their name over TLS 1.2+, get mail from any sender (DANE hosts excepted)";
}

static json_t *tls_check_sts_json(const struct mta_probe *p)
{
	json_t *o = json_object(), *mx = json_array();

	if (!p->sts_looked_up) {
		json_decref(mx);
		json_decref(o);
		return json_null();
	}
	for (size_t i = 0; i < p->sts.nmx; i++)
		json_array_append_new(mx, json_string(p->sts.mx[i]));
	json_object_set_new(o, "policy", json_boolean(p->sts_have));
	json_object_set_new(o, "mode", json_string(sts_mode_name(p->sts_have ? p->sts.mode :
								       STS_MODE_NONE)));
	json_object_set_new(o, "id", p->sts_have ? json_string(p->sts.id) : json_null());
	json_object_set_new(o, "mx", mx);
	json_object_set_new(o, "max_age", p->sts_have ? json_integer(p->sts.max_age) : json_null());
	json_object_set_new(o, "source", !p->sts_have ? json_null() :
			    json_string(p->sts_cached ? "cache" : "fetched"));
	json_object_set_new(o, "error", p->sts_error ? json_string(p->sts_error) : json_null());
	json_object_set_new(o, "meaning", json_string(tls_check_sts_meaning(p)));
	return o;
}

static void tls_check_print_sts(const struct mta_probe *p)
{
	if (!p->sts_looked_up) {
		printf("MTA-STS: not looked up\n");
		return;
	}
	if (!p->sts_have) {
		printf("MTA-STS: no policy%s%s%s\n", p->sts_error ? " (" : "",
		       p->sts_error ? p->sts_error : "", p->sts_error ? ")" : "");
	} else {
		printf("MTA-STS: mode %s, id %s, max_age %lld, %s\n", sts_mode_name(p->sts.mode),
		       p->sts.id, (long long)p->sts.max_age,
		       p->sts_cached ? "from the cache" : "fetched now");
		for (size_t i = 0; i < p->sts.nmx; i++)
			printf("  mx: %s\n", p->sts.mx[i]);
		if (p->sts_error)
			printf("  refresh failed: %s\n", p->sts_error);
	}
	printf("  meaning: %s\n", tls_check_sts_meaning(p));
}

static void tls_check_print_json(const struct mta_probe *p, const char *domain)
{
	json_t *o = json_object(), *hosts = json_array();
	char *reason = mta_probe_reason(p, domain), *s;

	for (size_t i = 0; i < p->nhost; i++)
		json_array_append_new(hosts, tls_check_host_json(&p->hosts[i]));
	json_object_set_new(o, "domain", json_string(domain));
	json_object_set_new(o, "mx_status", json_string(dns_status_name(p->mx_status)));
	json_object_set_new(o, "mx_dnssec", json_string(dns_security_name(p->mx_sec)));
	json_object_set_new(o, "null_mx", json_boolean(p->null_mx));
	json_object_set_new(o, "implicit_mx", json_boolean(p->implicit));
	json_object_set_new(o, "mx", hosts);
	json_object_set_new(o, "mta_sts", tls_check_sts_json(p));
	json_object_set_new(o, "verdict", json_string(tls_check_verdict_name(p->verdict)));
	json_object_set_new(o, "reason_code", p->verdict == POLICY_PROCEED ? json_null() :
			    json_string(policy_reason_name(p->reason)));
	json_object_set_new(o, "reason", reason ? json_string(reason) : json_null());
	s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	free(reason);
	json_decref(o);
}

static void tls_check_print_host(const struct mta_probe_host *h)
{
	printf("MX %u %s\n", h->pref, h->name);
	printf("  addresses (%s):", dns_security_name(h->addr_sec));
	for (size_t i = 0; i < h->naddr; i++)
		printf(" %s", h->addrs[i]);
	printf("%s\n", h->naddr ? "" : " none");
	if (h->tlsa_looked_up) {
		printf("  TLSA (%s, %s): %s\n", dns_security_name(h->tlsa_sec),
		       dns_status_name(h->tlsa_status), tls_check_dane_name(h->dane));
		for (size_t i = 0; i < h->ntlsa; i++)
			printf("    %s\n", h->tlsa[i]);
	} else {
		printf("  TLSA: not looked up (DANE needs DNSSEC-secure MX and address answers)\n");
	}
	if (h->ip[0] == '\0')
		return;
	printf("  connected to %s: %s\n", h->ip, h->connected ? "yes" : "no");
	if (!h->connected)
		goto verdict;
	printf("  STARTTLS offered: %s\n", h->starttls_offered ? "yes" : "no");
	if (h->handshake_ok)
		printf("  TLS: %s %s\n", h->tls.version, h->tls.cipher);
	if (h->tls.peer_subject[0] != '\0')
		printf("  certificate: subject %s\n               issuer %s\n               expires %s\n",
		       h->tls.peer_subject, h->tls.peer_issuer, h->tls.peer_not_after);
	if (h->tls.dane != TLS_DANE_RESULT_NONE)
		printf("  DANE: %s%s%s\n", tls_check_dane_result(h->tls.dane),
		       h->tls.dane_match[0] ? ", matched " : "", h->tls.dane_match);
verdict:
	if (h->ok)
		printf("  with the guarantee: ok\n");
	else if (h->reason != REASON_NONE)
		printf("  with the guarantee: not usable (%s)%s%s\n", policy_reason_name(h->reason),
		       h->detail ? ": " : "", h->detail ? h->detail : "");
}

static void tls_check_print_text(const struct mta_probe *p, const char *domain)
{
	char *reason = mta_probe_reason(p, domain);

	printf("Domain %s: MX lookup %s, DNSSEC %s%s%s\n", domain, dns_status_name(p->mx_status),
	       dns_security_name(p->mx_sec), p->implicit ? " (no MX: the domain itself)" : "",
	       p->null_mx ? " (null MX: accepts no mail)" : "");
	tls_check_print_sts(p);
	for (size_t i = 0; i < p->nhost; i++)
		tls_check_print_host(&p->hosts[i]);
	printf("Verdict for a sender with the TLS-sending guarantee: %s%s%s\n",
	       tls_check_verdict_name(p->verdict), reason ? ": " : "", reason ? reason : "");
	free(reason);
}

int cli_tls_check(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct tls_check tc = { 0 };
	struct relay relay = { 0 };
	struct mta_job job = { 0 };
	char *err = NULL;
	int rc = 1;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", usage_text);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-' || strchr(argv[1], '@') != NULL)
		return cli_usage(usage_text);
	tc.base = event_base_new();
	relay.base = tc.base;
	relay.cfg = &cli->cfg;
	relay.dns = dns_new(tc.base, cli->cfg.dns.unbound_config, &err);
	if (relay.dns == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		goto out;
	}
	relay.client_ctx = tls_client_ctx_new(cli->cfg.relay.ca_file, &err);
	if (relay.client_ctx == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		goto out;
	}
	/* the MTA-STS policy cache is the relay's: used when the database opens, else skipped */
	relay.db = schema_open(&cli->cfg, schema_serve_mode(&cli->cfg), &err);
	free(err);
	err = NULL;
	job.msg_id = xstrdup("tls-check");
	job.sender = xstrdup("");
	job.domain = str_lower(xstrdup(argv[1]));
	if (job.domain[0] != '\0' && job.domain[strlen(job.domain) - 1] == '.')
		job.domain[strlen(job.domain) - 1] = '\0';
	job.guarantee = true;
	job.probe = xcalloc(1, sizeof(*job.probe));
	mta_start(&relay, &job, tls_check_done, &tc);
	while (!tc.done && event_base_dispatch(tc.base) == 0)
		;
	if (json)
		tls_check_print_json(job.probe, job.domain);
	else
		tls_check_print_text(job.probe, job.domain);
	rc = 0;
	mta_probe_free(job.probe);
	free(job.msg_id);
	free(job.sender);
	free(job.domain);
out:
	free(err);
	sts_cache_free(&relay);
	if (relay.db)
		db_close(relay.db);
	if (relay.client_ctx)
		SSL_CTX_free(relay.client_ctx);
	if (relay.dns)
		dns_free(relay.dns);
	event_base_free(tc.base);
	return rc;
}
