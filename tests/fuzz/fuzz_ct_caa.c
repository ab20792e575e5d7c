/*
 * fuzz_ct_caa.c - arbitrary bytes as the CAA records of an answer (each RDATA parsed, the
 * set judged for issue and issuewild) and as an issuer line with an issuer_caa setting.
 *
 * Input layout: byte 0 picks the answer's status and security; the rest is a list of
 * records, each a 2-byte big-endian length followed by that many bytes (a short last record
 * takes what is left). The same bytes, split at the first NUL, are also an issuer line and
 * an issuer_caa value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_caa.h"
#include "log.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void split(struct dns_answer *a, const uint8_t *p, size_t n)
{
	a->rrs = xcalloc(n / 2 + 1, sizeof(*a->rrs));
	while (n >= 2 && a->nrr < 64) {
		size_t len = (size_t)p[0] << 8 | p[1];

		p += 2;
		n -= 2;
		if (len > n)
			len = n;
		a->rrs[a->nrr].data = xmalloc(len ? len : 1);	/* own allocation: ASan sees overreads */
		memcpy(a->rrs[a->nrr].data, p, len);
		a->rrs[a->nrr].len = len;
		a->nrr++;
		p += len;
		n -= len;
	}
}

static void check_rrs(const struct dns_answer *a)
{
	for (size_t i = 0; i < a->nrr; i++) {
		struct ct_caa_rr rr = { 0 };

		if (ct_caa_rr_parse(a->rrs[i].data, a->rrs[i].len, &rr) < 0) {
			if (rr.tag != NULL || rr.value != NULL)
				abort();
			continue;
		}
		if (strlen(rr.tag) < 1 || strlen(rr.tag) > CT_CAA_TAG_MAX ||
		    strlen(rr.value) > CT_CAA_VALUE_MAX)
			abort();
		ct_caa_rr_clear(&rr);
	}
}

static void check_set(const struct dns_answer *a)
{
	struct ct_caa *caa = NULL;
	char *err = NULL;
	enum ct_caa_step st = ct_caa_step(a, "fuzz.example", &caa, &err);

	if (st == CT_CAA_FAIL) {
		if (caa != NULL || err == NULL)
			abort();
		free(err);
		return;
	}
	if (st == CT_CAA_CLIMB) {
		if (caa != NULL)
			abort();
		return;
	}
	if (caa == NULL || caa->n != a->nrr)
		abort();
	/* An empty set allows every CA; a set that allows nobody allows not even a list. */
	(void)ct_caa_allows(caa, "letsencrypt.org", false);
	(void)ct_caa_allows(caa, "letsencrypt.org,pki.goog", true);
	(void)ct_caa_allows(caa, NULL, false);
	ct_caa_free(caa);
}

/* Bytes up to the first NUL: the issuer line (and key hash); after it: issuer_caa. */
static void check_identities(const uint8_t *data, size_t size)
{
	char *issuer = xstrndup((const char *)data, size);
	size_t used = strlen(issuer) + 1;
	char *conf = used < size ? xstrndup((const char *)data + used, size - used) : xstrdup("");
	char *id = ct_caa_identities(issuer, issuer, conf);

	/* Identities come from the configuration or the table: never longer than those. */
	if (id != NULL && (*id == '\0' || strlen(id) > strlen(conf) + 256))
		abort();
	free(id);
	free(conf);
	free(issuer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dns_status sts[] = { DNS_OK, DNS_NODATA, DNS_NXDOMAIN, DNS_SERVFAIL };
	static bool quiet;
	struct dns_answer *a;

	if (!quiet) {
		log_init("fuzz", LOG_LEVEL_ERROR, NULL);
		quiet = true;
	}
	if (size < 1)
		return 0;
	a = xcalloc(1, sizeof(*a));
	a->qname = xstrdup("fuzz.example");
	a->qtype = DNS_RR_CAA;
	a->status = sts[data[0] & 3];
	a->security = (enum dns_security)((data[0] >> 2) % 3);
	split(a, data + 1, size - 1);
	if (a->status == DNS_OK && a->nrr == 0)
		a->status = DNS_NODATA;
	check_rrs(a);
	check_set(a);
	dns_answer_free(a);
	check_identities(data, size);
	return 0;
}
