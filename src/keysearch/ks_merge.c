/*
 * ks_merge.c - trust levels, outcomes, and the merge of what the sources returned: one
 * entry per distinct key (kind + fingerprint) listing every source that returned it, ranked
 * so that the first is the key a caller should use.
 */
#include "ks.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

const char *ks_trust_name(enum ks_trust t)
{
	switch (t) {
	case KS_TRUST_DIRECTORY:
		return "directory";
	case KS_TRUST_DNS_SECURE:
		return "dns-secure";
	case KS_TRUST_WKD:
		return "wkd";
	case KS_TRUST_VKS:
		return "vks";
	case KS_TRUST_DNS_INSECURE:
		return "dns-insecure";
	case KS_TRUST_HKP:
		return "hkp";
	}
	return "unknown";
}

const char *ks_status_name(enum ks_status s)
{
	switch (s) {
	case KS_FOUND:
		return "found";
	case KS_NONE:
		return "none";
	case KS_TIMEOUT:
		return "timeout";
	case KS_ERROR:
		return "error";
	case KS_BLOCKED:
		return "blocked";
	case KS_BOGUS:
		return "bogus";
	case KS_PENDING:
		return "pending";
	}
	return "error";
}

/*
 * Verified: the address owner's domain (directory, signed DNS, WKD over HTTPS) or a
 * keyserver that confirmed the address by mail (VKS) vouches for the key. Unsigned DNS can
 * be forged on the path and HKP servers take any upload.
 */
bool ks_trust_verified(enum ks_trust t)
{
	return t >= KS_TRUST_VKS;
}

void ks_hit_copy(struct ks_hit *dst, const struct ks_hit *src)
{
	*dst = *src;
	dst->uid = xstrdup(src->uid ? src->uid : "");
	dst->data = xmemdup(src->data, src->len ? src->len : 1);
	dst->where = xstrdup(src->where ? src->where : "");
}

void ks_hit_release(struct ks_hit *h)
{
	free(h->uid);
	free(h->data);
	free(h->where);
	memset(h, 0, sizeof(*h));
}

void ks_outcome_add_hit(struct ks_outcome *o, const struct ks_hit *h)
{
	o->hits = xreallocarray(o->hits, o->nhits + 1, sizeof(*o->hits));
	ks_hit_copy(&o->hits[o->nhits++], h);
}

void ks_outcome_copy(struct ks_outcome *dst, const struct ks_outcome *src)
{
	*dst = *src;
	dst->detail = src->detail ? xstrdup(src->detail) : NULL;
	dst->refusal = src->refusal ? xstrdup(src->refusal) : NULL;
	dst->hits = NULL;
	dst->nhits = 0;
	for (size_t i = 0; i < src->nhits; i++)
		ks_outcome_add_hit(dst, &src->hits[i]);
}

void ks_outcome_release(struct ks_outcome *o)
{
	for (size_t i = 0; i < o->nhits; i++)
		ks_hit_release(&o->hits[i]);
	free(o->hits);
	free(o->detail);
	free(o->refusal);
	memset(o, 0, sizeof(*o));
}

void ks_outcome_set(struct ks_outcome *o, enum ks_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	free(o->detail);
	o->detail = xvasprintf(fmt, ap);
	o->status = st;
	va_end(ap);
}

void ks_outcome_expire(struct ks_outcome *o, int64_t now)
{
	size_t kept = 0;

	for (size_t i = 0; i < o->nhits; i++) {
		if (o->hits[i].expires != 0 && o->hits[i].expires <= now)
			ks_hit_release(&o->hits[i]);
		else
			o->hits[kept++] = o->hits[i];
	}
	o->nhits = kept;
	if (o->status == KS_FOUND && kept == 0)
		ks_outcome_set(o, KS_NONE, "the key found earlier has expired");
}

int ks_key_rank_cmp(const struct ks_key *a, const struct ks_key *b)
{
	if (a->trust != b->trust)
		return a->trust > b->trust ? -1 : 1;
	if (a->order != b->order)
		return a->order < b->order ? -1 : 1;
	if (a->hit.kind != b->hit.kind)
		return a->hit.kind == KEYS_OPENPGP ? -1 : 1;
	if (a->hit.created != b->hit.created)
		return a->hit.created > b->hit.created ? -1 : 1;
	return strcmp(a->hit.fingerprint, b->hit.fingerprint);
}

enum ks_trust ks_kind_best_trust(enum ks_source_kind k)
{
	switch (k) {
	case KS_SRC_LOCAL:
		return KS_TRUST_DIRECTORY;
	case KS_SRC_DNS:
		/* Secure or not is known only from the answer: assume the better one. */
		return KS_TRUST_DNS_SECURE;
	case KS_SRC_WKD:
		return KS_TRUST_WKD;
	case KS_SRC_VKS:
		return KS_TRUST_VKS;
	case KS_SRC_HKP:
		return KS_TRUST_HKP;
	}
	return KS_TRUST_DIRECTORY;
}

/*
 * The order of ks_key_rank_cmp's first two criteria: a key of higher trust, or of equal
 * trust from a source earlier in `sources`, is ranked above. The later criteria (kind,
 * creation time, fingerprint) compare keys of one source only, which is finished.
 */
bool ks_rank_above(const struct ks_rank *a, const struct ks_rank *b)
{
	return a->trust > b->trust || (a->trust == b->trust && a->order < b->order);
}

bool ks_better_may_come(const struct ks_rank *best, const struct ks_rank *outstanding,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (best == NULL || ks_rank_above(&outstanding[i], best))
			return true;
	return false;
}

static int ks_key_qsort_cmp(const void *a, const void *b)
{
	return ks_key_rank_cmp(a, b);
}

bool ks_type_wants(enum ks_type type, enum keys_kind kind)
{
	return type == KS_TYPE_ANY || (type == KS_TYPE_OPENPGP) == (kind == KEYS_OPENPGP);
}

static struct ks_key *ks_merge_find(struct ks_result *r, const struct ks_hit *h)
{
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i].hit.kind == h->kind &&
		    strcmp(r->keys[i].hit.fingerprint, h->fingerprint) == 0)
			return &r->keys[i];
	return NULL;
}

/* Add one hit of one source: a new key, or one more source of a known key. */
static void ks_merge_hit(struct ks_result *r, const struct ks_merge_in *in, const struct ks_hit *h)
{
	struct ks_key *k = ks_merge_find(r, h);
	struct ks_key_src *s;

	if (k == NULL) {
		r->keys = xreallocarray(r->keys, r->nkeys + 1, sizeof(*r->keys));
		k = &r->keys[r->nkeys++];
		memset(k, 0, sizeof(*k));
		ks_hit_copy(&k->hit, h);
		k->trust = h->trust;
		k->order = in->order;
	} else if (h->trust > k->trust || (h->trust == k->trust && in->order < k->order)) {
		/* Keep the copy of the most trusted source: it is the one we vouch for. */
		ks_hit_release(&k->hit);
		ks_hit_copy(&k->hit, h);
		k->trust = h->trust;
		k->order = in->order;
	}
	for (size_t i = 0; i < k->nsrcs; i++)
		if (strcmp(k->srcs[i].where, h->where ? h->where : "") == 0 &&
		    k->srcs[i].trust == h->trust)
			return;	/* the same answer twice (exact and lower-cased name) */
	k->srcs = xreallocarray(k->srcs, k->nsrcs + 1, sizeof(*k->srcs));
	s = &k->srcs[k->nsrcs++];
	s->source = xstrdup(in->source);
	s->server = in->server ? xstrdup(in->server) : NULL;
	s->trust = h->trust;
	s->where = xstrdup(h->where ? h->where : "");
}

struct ks_result *ks_merge(const char *address, enum ks_type type, const struct ks_merge_in *in,
			   size_t n)
{
	struct ks_result *r = xcalloc(1, sizeof(*r));

	r->refs = 1;
	r->complete = true;
	r->address = xstrdup(address);
	r->type = type;
	r->recommended = -1;
	r->reports = xcalloc(n ? n : 1, sizeof(*r->reports));
	for (size_t i = 0; i < n; i++) {
		const struct ks_outcome *o = in[i].out;
		struct ks_report *rep = &r->reports[r->nreports++];

		rep->source = xstrdup(in[i].source);
		rep->server = in[i].server ? xstrdup(in[i].server) : NULL;
		rep->status = o->status;
		rep->detail = xstrdup(o->detail ? o->detail : "");
		rep->elapsed_ms = in[i].elapsed_ms;
		rep->cached = in[i].cached;
		if (o->status == KS_PENDING)
			r->complete = false;
		for (size_t j = 0; j < o->nhits; j++)
			if (ks_type_wants(type, o->hits[j].kind))
				ks_merge_hit(r, &in[i], &o->hits[j]);
	}
	if (r->nkeys > 1)
		qsort(r->keys, r->nkeys, sizeof(*r->keys), ks_key_qsort_cmp);
	if (r->nkeys > 0)
		r->recommended = 0;
	return r;
}

bool ks_result_found(const struct ks_result *r)
{
	return r->nkeys > 0;
}

bool ks_result_complete(const struct ks_result *r)
{
	return r->complete;
}

struct ks_result *ks_result_ref(struct ks_result *r)
{
	r->refs++;
	return r;
}

void ks_result_free(struct ks_result *r)
{
	if (r == NULL || --r->refs > 0)
		return;
	free(r->body[0]);
	free(r->body[1]);
	for (size_t i = 0; i < r->nkeys; i++) {
		ks_hit_release(&r->keys[i].hit);
		for (size_t j = 0; j < r->keys[i].nsrcs; j++) {
			free(r->keys[i].srcs[j].source);
			free(r->keys[i].srcs[j].server);
			free(r->keys[i].srcs[j].where);
		}
		free(r->keys[i].srcs);
	}
	free(r->keys);
	for (size_t i = 0; i < r->nreports; i++) {
		free(r->reports[i].source);
		free(r->reports[i].server);
		free(r->reports[i].detail);
	}
	free(r->reports);
	free(r->address);
	free(r);
}
