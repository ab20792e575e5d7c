/*
 * ks_dns.c - the DNS source: OPENPGPKEY (RFC 7929) and SMIMEA (RFC 8162) under the owner
 * name of the local-part as given and, when it differs, of the lower-cased local-part (what
 * GnuPG asks). All lookups run at once. A SECURE answer is worth much more than an INSECURE
 * one; a BOGUS answer is discarded (its records may be forged).
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns.h"
#include "strutil.h"
#include "xmalloc.h"

struct ks_dns_query;

struct ks_dns {
	struct ks_src *src;
	struct ks_dns_query *q[KS_MAX_DNS_QUERIES];
	size_t nq, outstanding;
	size_t bogus, failed, answered;
	int64_t ttl;
};

struct ks_dns_query {
	struct ks_dns *d;
	char *name;
	int qtype;
	int handle;	/* -1 when finished */
};

/* The address with an ASCII-lower-cased local-part, or NULL when that is no different. */
static char *ks_dns_lower(const char *address)
{
	char *lc = xstrdup(address), *at = strrchr(lc, '@');

	for (char *p = lc; at && p < at; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strcmp(lc, address) == 0) {
		free(lc);
		return NULL;
	}
	return lc;
}

static void ks_dns_free(struct ks_dns *d)
{
	for (size_t i = 0; i < d->nq; i++) {
		free(d->q[i]->name);
		free(d->q[i]);
	}
	free(d);
}

void ks_dns_cancel(struct ks_src *src)
{
	struct ks_dns *d = ks_src_state(src);

	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nq; i++)
		if (d->q[i]->handle >= 0)
			dns_cancel(ks_src_dns(src), d->q[i]->handle);
	ks_dns_free(d);
	ks_src_set_state(src, NULL);
}

/* Keys in one answer: OPENPGPKEY RDATA is the key; SMIMEA "x 0 0" carries the certificate. */
static void ks_dns_keys(struct ks_dns *d, const struct dns_answer *a, enum ks_trust trust)
{
	struct ks_outcome *o = ks_src_outcome(d->src);
	const char *addr = ks_src_address(d->src);
	int64_t now = (int64_t)time(NULL);

	if (a->qtype == DNS_RR_OPENPGPKEY) {
		for (size_t i = 0; i < a->nrr && i < KS_MAX_KEYS_PER_BODY; i++)
			ks_body_accept(a->rrs[i].data, a->rrs[i].len, addr, now, trust, a->qname, o);
		return;
	}
	for (size_t i = 0; i < a->nrr && i < KS_MAX_KEYS_PER_BODY; i++) {
		const struct dns_rr *rr = &a->rrs[i];

		if (rr->len > 3 && rr->data[1] == 0 && rr->data[2] == 0)
			ks_body_accept(rr->data + 3, rr->len - 3, addr, now, trust, a->qname, o);
	}
}

/* All lookups are in: the source's outcome. */
static void ks_dns_finish(struct ks_dns *d)
{
	struct ks_outcome *o = ks_src_outcome(d->src);
	struct ks_src *src = d->src;

	o->ttl = d->ttl;
	if (o->nhits)
		ks_outcome_set(o, KS_FOUND, "%zu key(s) in %zu answer(s)", o->nhits, d->answered);
	else if (d->bogus)
		ks_outcome_set(o, KS_BOGUS, "DNSSEC validation failed: answer discarded");
	else if (d->failed)
		ks_outcome_set(o, KS_ERROR, "lookup failed (SERVFAIL or timeout)");
	else if (o->refused)
		ks_outcome_set(o, KS_NONE, "%zu record(s) refused: %s", o->refused, o->refusal);
	else
		ks_outcome_set(o, KS_NONE, "no record");
	ks_dns_free(d);
	ks_src_set_state(src, NULL);
	ks_src_done(src);
}

static void ks_dns_cb(struct dns_answer *a, void *arg)
{
	struct ks_dns_query *q = arg;
	struct ks_dns *d = q->d;

	q->handle = -1;
	d->outstanding--;
	if (a->security == DNS_BOGUS) {
		d->bogus++;
	} else if (a->status == DNS_SERVFAIL) {
		d->failed++;
	} else if (a->status == DNS_OK) {
		d->answered++;
		if (d->ttl < 0 || (int64_t)a->ttl < d->ttl)
			d->ttl = a->ttl;
		ks_dns_keys(d, a, a->security == DNS_SECURE ? KS_TRUST_DNS_SECURE
							    : KS_TRUST_DNS_INSECURE);
	}
	dns_answer_free(a);
	if (d->outstanding == 0)
		ks_dns_finish(d);
}

static void ks_dns_add(struct ks_dns *d, const char *address, const char *label, int qtype)
{
	struct ks_dns_query *q;

	if (d->nq >= KS_MAX_DNS_QUERIES)
		return;
	q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->name = keys_dane_name(address, label);
	q->qtype = qtype;
	q->handle = -1;
	d->q[d->nq++] = q;
}

void ks_dns_start(struct ks_src *src)
{
	struct ks_dns *d = xcalloc(1, sizeof(*d));
	const char *addr = ks_src_address(src);
	char *lc = ks_dns_lower(addr);
	enum ks_type type = ks_src_type(src);

	d->src = src;
	d->ttl = -1;
	if (ks_src_dns(src) == NULL) {
		free(lc);
		free(d);
		ks_outcome_set(ks_src_outcome(src), KS_ERROR, "no resolver");
		ks_src_done(src);
		return;
	}
	if (type != KS_TYPE_SMIME) {
		ks_dns_add(d, addr, "_openpgpkey", DNS_RR_OPENPGPKEY);
		if (lc)
			ks_dns_add(d, lc, "_openpgpkey", DNS_RR_OPENPGPKEY);
	}
	if (type != KS_TYPE_OPENPGP) {
		ks_dns_add(d, addr, "_smimecert", DNS_RR_SMIMEA);
		if (lc)
			ks_dns_add(d, lc, "_smimecert", DNS_RR_SMIMEA);
	}
	free(lc);
	ks_src_set_state(src, d);
	for (size_t i = 0; i < d->nq; i++) {
		struct ks_dns_query *q = d->q[i];

		if (q->name == NULL)
			continue;
		q->handle = dns_resolve(ks_src_dns(src), q->name, q->qtype, ks_dns_cb, q);
		if (q->handle >= 0)
			d->outstanding++;
		else
			d->failed++;
	}
	if (d->outstanding == 0)
		ks_dns_finish(d);
}
