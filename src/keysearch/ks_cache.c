/*
 * ks_cache.c - what each source answered, kept in memory for as long as the source says
 * (DNS TTL, HTTP max-age), clamped to [keysearch] cache_min_ttl..cache_max_ttl; "no key"
 * for negative_ttl. A hash table over a least-recently-used list with a fixed number of
 * entries, so that repeated searches cost no traffic and keyservers' rate limits hold.
 *
 * The same table also keeps whole answers (a complete result built from cached outcomes
 * only, with its serialised JSON): a repeated search of a cached address then costs no
 * merge and no serialisation (see ks_search.c for when one is stored and dropped).
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

struct ks_cache_entry {
	char *key;
	int64_t expires;
	struct ks_outcome out;
	struct ks_result *res;			/* a whole answer instead of an outcome */
	struct ks_cache_entry *hnext;		/* hash chain */
	struct ks_cache_entry *prev, *next;	/* LRU list, most recent first */
};

struct ks_cache {
	size_t max, count, nbuckets;
	struct ks_cache_entry **buckets;
	struct ks_cache_entry *head, *tail;
};

static size_t ks_cache_hash(const struct ks_cache *c, const char *key)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h & (c->nbuckets - 1));
}

struct ks_cache *ks_cache_new(size_t max_entries)
{
	struct ks_cache *c = xcalloc(1, sizeof(*c));

	c->max = max_entries;
	c->nbuckets = 16;
	while (c->nbuckets < max_entries && c->nbuckets < ((size_t)1 << 24))
		c->nbuckets <<= 1;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

static void ks_cache_lru_unlink(struct ks_cache *c, struct ks_cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void ks_cache_lru_front(struct ks_cache *c, struct ks_cache_entry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void ks_cache_remove(struct ks_cache *c, struct ks_cache_entry *e)
{
	struct ks_cache_entry **pp = &c->buckets[ks_cache_hash(c, e->key)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	ks_cache_lru_unlink(c, e);
	ks_outcome_release(&e->out);
	ks_result_free(e->res);
	free(e->key);
	free(e);
	c->count--;
}

static struct ks_cache_entry *ks_cache_find(struct ks_cache *c, const char *key)
{
	struct ks_cache_entry *e = c->buckets[ks_cache_hash(c, key)];

	while (e && strcmp(e->key, key) != 0)
		e = e->hnext;
	return e;
}

void ks_cache_free(struct ks_cache *c)
{
	if (c == NULL)
		return;
	while (c->head)
		ks_cache_remove(c, c->head);
	free(c->buckets);
	free(c);
}

/* The live entry for key (made most recent), or NULL; an expired one is removed. */
static struct ks_cache_entry *ks_cache_lookup(struct ks_cache *c, const char *key, int64_t now)
{
	struct ks_cache_entry *e;

	if (c == NULL || c->max == 0 || (e = ks_cache_find(c, key)) == NULL)
		return NULL;
	if (e->expires <= now) {
		ks_cache_remove(c, e);
		return NULL;
	}
	ks_cache_lru_unlink(c, e);
	ks_cache_lru_front(c, e);
	return e;
}

bool ks_cache_get(struct ks_cache *c, const char *key, int64_t now, struct ks_outcome *out,
		  int64_t *expires)
{
	struct ks_cache_entry *e = ks_cache_lookup(c, key, now);

	if (e == NULL || e->res != NULL)
		return false;
	ks_outcome_copy(out, &e->out);
	ks_outcome_expire(out, now);
	if (expires)
		*expires = e->expires;
	return true;
}

struct ks_result *ks_cache_get_result(struct ks_cache *c, const char *key, int64_t now)
{
	struct ks_cache_entry *e = ks_cache_lookup(c, key, now);

	return e && e->res ? ks_result_ref(e->res) : NULL;
}

/* A new entry for key, replacing any old one; the least recently used go when full. */
static struct ks_cache_entry *ks_cache_insert(struct ks_cache *c, const char *key,
					      int64_t expires)
{
	struct ks_cache_entry *e;
	size_t h;

	ks_cache_drop(c, key);
	while (c->count >= c->max && c->tail)
		ks_cache_remove(c, c->tail);
	e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->expires = expires;
	h = ks_cache_hash(c, key);
	e->hnext = c->buckets[h];
	c->buckets[h] = e;
	ks_cache_lru_front(c, e);
	c->count++;
	return e;
}

void ks_cache_put(struct ks_cache *c, const char *key, const struct ks_outcome *o,
		  int64_t expires)
{
	if (c == NULL || c->max == 0)
		return;
	ks_outcome_copy(&ks_cache_insert(c, key, expires)->out, o);
}

void ks_cache_put_result(struct ks_cache *c, const char *key, struct ks_result *r,
			 int64_t expires)
{
	if (c == NULL || c->max == 0)
		return;
	ks_cache_insert(c, key, expires)->res = ks_result_ref(r);
}

void ks_cache_drop(struct ks_cache *c, const char *key)
{
	struct ks_cache_entry *e;

	if (c != NULL && c->max != 0 && (e = ks_cache_find(c, key)) != NULL)
		ks_cache_remove(c, e);
}

size_t ks_cache_count(const struct ks_cache *c)
{
	return c ? c->count : 0;
}

int64_t ks_cache_ttl(const struct ks_outcome *o, const struct keysearch_conf *kc)
{
	int64_t ttl;

	switch (o->status) {
	case KS_FOUND:
		ttl = o->ttl >= 0 ? o->ttl : KS_DEFAULT_TTL;
		if (ttl < kc->cache_min_ttl)
			ttl = kc->cache_min_ttl;
		if (ttl > kc->cache_max_ttl)
			ttl = kc->cache_max_ttl;
		return ttl;
	case KS_NONE:
	case KS_BOGUS:
	case KS_BLOCKED:
		return kc->negative_ttl;
	case KS_TIMEOUT:
	case KS_ERROR:
	case KS_PENDING:
		break;
	}
	return 0;	/* failures are asked again next time */
}
