/*
 * fuzz_dns_answer.c - arbitrary bytes as the RDATA records of an answer, fed to the MX, TLSA
 * and address parsers and to the wire name decoder.
 *
 * Input layout: byte 0 picks the query type; the rest is a list of records, each a 2-byte
 * big-endian length followed by that many bytes (a short last record takes what is left).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "log.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int qtypes[] = { DNS_RR_MX, DNS_RR_TLSA, DNS_RR_A, DNS_RR_AAAA };

/* Split the input into records; each record gets its own allocation so ASan sees overreads. */
static void split(struct dns_answer *a, const uint8_t *p, size_t n)
{
	a->rrs = xcalloc(n / 2 + 1, sizeof(*a->rrs));
	while (n >= 2 && a->nrr < 80) {
		size_t len = (size_t)p[0] << 8 | p[1];

		p += 2;
		n -= 2;
		if (len > n)
			len = n;
		a->rrs[a->nrr].data = xmalloc(len ? len : 1);
		memcpy(a->rrs[a->nrr].data, p, len);
		a->rrs[a->nrr].len = len;
		a->nrr++;
		p += len;
		n -= len;
	}
}

static void check_mx(const struct dns_answer *a)
{
	struct dns_mx *mx;
	bool null_mx;
	int n = dns_answer_mx(a, &mx, &null_mx);

	if (n < 0 || null_mx) {
		if (mx != NULL || (null_mx && n != 0))
			abort();
		return;
	}
	for (int i = 1; i < n; i++)
		if (mx[i].pref < mx[i - 1].pref)
			abort();
	for (int i = 0; i < n; i++)
		if (mx[i].host == NULL || strlen(mx[i].host) > 4 * 255)
			abort();
	dns_mx_free(mx, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct dns_answer *a;
	struct dns_tlsa *tlsa;
	char **addrs;
	char *name;
	size_t n, used;

	if (!quiet) {
		log_init("fuzz", LOG_LEVEL_ERROR, NULL);
		quiet = true;
	}
	if (size < 1)
		return 0;
	name = dns_name_from_wire(data + 1, size - 1, &used);
	if (name != NULL && (used == 0 || used > size - 1 || used > 255))
		abort();
	free(name);

	a = xcalloc(1, sizeof(*a));
	a->qname = xstrdup("fuzz.test");
	a->qtype = qtypes[data[0] % 4];
	a->status = DNS_OK;
	split(a, data + 1, size - 1);
	check_mx(a);
	n = dns_answer_tlsa(a, &tlsa);
	dns_tlsa_free(tlsa, n);
	n = dns_answer_addrs(a, &addrs);
	dns_strv_free(addrs, n);
	dns_answer_free(a);
	return 0;
}
