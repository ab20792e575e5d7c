/*
 * test_keysearch.c - key search logic as pure functions: merging and ranking of what the
 * sources returned, trust names, the cache (TTL clamping, negative answers, LRU bound,
 * expiry, whole answers), the decision to answer before every source has finished, the
 * API's per-token rate limit and token matching, and the splitting of
 * keyserver and WKD answers into keys checked with keys_accept (keys made by
 * tests/unit/keys/gen-keys.py).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keysearch/ks.h"
#include "keys/keyfix.h"
#include "unit.h"
#include "xmalloc.h"

/* A hit as a source would report it. */
static struct ks_hit test_hit(enum keys_kind kind, const char *fpr, enum ks_trust trust,
			      int64_t created, const char *where)
{
	static uint8_t data[4] = { 1, 2, 3, 4 };
	struct ks_hit h;

	memset(&h, 0, sizeof(h));
	h.kind = kind;
	snprintf(h.fingerprint, sizeof(h.fingerprint), "%s", fpr);
	snprintf(h.algorithm, sizeof(h.algorithm), "EDDSA");
	h.bits = 255;
	h.created = created;
	h.uid = (char *)"alice@example.org";
	h.data = data;
	h.len = sizeof(data);
	h.trust = trust;
	h.where = (char *)where;
	return h;
}

static void test_trust_order(void)
{
	CHECK(KS_TRUST_DIRECTORY > KS_TRUST_DNS_SECURE);
	CHECK(KS_TRUST_DNS_SECURE > KS_TRUST_WKD);
	CHECK(KS_TRUST_WKD > KS_TRUST_VKS);
	CHECK(KS_TRUST_VKS > KS_TRUST_DNS_INSECURE);
	CHECK(KS_TRUST_DNS_INSECURE > KS_TRUST_HKP);
	CHECK_STREQ(ks_trust_name(KS_TRUST_DNS_SECURE), "dns-secure");
	CHECK_STREQ(ks_trust_name(KS_TRUST_DNS_INSECURE), "dns-insecure");
	CHECK_STREQ(ks_status_name(KS_BOGUS), "bogus");
	CHECK(ks_trust_verified(KS_TRUST_VKS));
	CHECK(ks_trust_verified(KS_TRUST_DIRECTORY));
	CHECK(!ks_trust_verified(KS_TRUST_DNS_INSECURE));
	CHECK(!ks_trust_verified(KS_TRUST_HKP));
}

/* The same key from DNS (secure) and HKP merges into one; the HKP-only key ranks below. */
static void test_merge_dedupe(void)
{
	struct ks_outcome dns = { 0 }, hkp = { 0 }, vks = { 0 };
	struct ks_hit a1 = test_hit(KEYS_OPENPGP, "AAAA", KS_TRUST_DNS_SECURE, 100, "h._openpgpkey.x");
	struct ks_hit a2 = test_hit(KEYS_OPENPGP, "AAAA", KS_TRUST_HKP, 100, "https://hkp/a");
	struct ks_hit b = test_hit(KEYS_OPENPGP, "BBBB", KS_TRUST_HKP, 500, "https://hkp/a");
	struct ks_merge_in in[3];
	struct ks_result *r;

	ks_outcome_add_hit(&dns, &a1);
	ks_outcome_set(&dns, KS_FOUND, "1 key");
	ks_outcome_add_hit(&hkp, &b);
	ks_outcome_add_hit(&hkp, &a2);
	ks_outcome_set(&hkp, KS_FOUND, "2 keys");
	ks_outcome_set(&vks, KS_TIMEOUT, "no answer");
	/* HKP first in the list: order must not beat trust. */
	in[0] = (struct ks_merge_in){ "hkp", "https://hkp", 0, false, 5, &hkp };
	in[1] = (struct ks_merge_in){ "dns", NULL, 1, false, 3, &dns };
	in[2] = (struct ks_merge_in){ "vks", "https://vks", 2, false, 5000, &vks };
	r = ks_merge("alice@example.org", KS_TYPE_ANY, in, 3);
	CHECK(r->nkeys == 2);
	CHECK(r->recommended == 0);
	CHECK_STREQ(r->keys[0].hit.fingerprint, "AAAA");
	CHECK(r->keys[0].trust == KS_TRUST_DNS_SECURE);
	CHECK(r->keys[0].nsrcs == 2);
	CHECK(r->keys[0].hit.trust == KS_TRUST_DNS_SECURE);	/* the copy kept is DNS's */
	CHECK_STREQ(r->keys[1].hit.fingerprint, "BBBB");
	CHECK(r->keys[1].trust == KS_TRUST_HKP);
	CHECK(r->nreports == 3);
	CHECK(r->reports[2].status == KS_TIMEOUT);
	CHECK(r->reports[2].elapsed_ms == 5000);
	CHECK(ks_result_found(r));
	ks_result_free(r);

	/* Only S/MIME wanted: none of these. */
	r = ks_merge("alice@example.org", KS_TYPE_SMIME, in, 3);
	CHECK(r->nkeys == 0);
	CHECK(r->recommended == -1);
	CHECK(!ks_result_found(r));
	ks_result_free(r);
	ks_outcome_release(&dns);
	ks_outcome_release(&hkp);
	ks_outcome_release(&vks);
}

/* Equal trust: the configured order decides, then OpenPGP before S/MIME, then the newest. */
static void test_rank(void)
{
	struct ks_key a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.trust = b.trust = KS_TRUST_WKD;
	a.order = 2;
	b.order = 1;
	CHECK(ks_key_rank_cmp(&a, &b) > 0);
	a.order = 1;
	a.hit.kind = KEYS_SMIME;
	b.hit.kind = KEYS_OPENPGP;
	CHECK(ks_key_rank_cmp(&a, &b) > 0);
	a.hit.kind = KEYS_OPENPGP;
	a.hit.created = 200;
	b.hit.created = 100;
	CHECK(ks_key_rank_cmp(&a, &b) < 0);
	a.trust = KS_TRUST_HKP;
	CHECK(ks_key_rank_cmp(&a, &b) > 0);
}

static struct keysearch_conf test_kc(void)
{
	struct keysearch_conf kc;

	memset(&kc, 0, sizeof(kc));
	kc.cache_min_ttl = 60;
	kc.cache_max_ttl = 86400;
	kc.negative_ttl = 600;
	return kc;
}

static void test_cache_ttl(void)
{
	struct keysearch_conf kc = test_kc();
	struct ks_outcome o = { 0 };

	o.status = KS_FOUND;
	o.ttl = 5;
	CHECK(ks_cache_ttl(&o, &kc) == 60);		/* clamped up */
	o.ttl = 7 * 86400;
	CHECK(ks_cache_ttl(&o, &kc) == 86400);		/* clamped down */
	o.ttl = 3000;
	CHECK(ks_cache_ttl(&o, &kc) == 3000);
	o.ttl = -1;
	CHECK(ks_cache_ttl(&o, &kc) == KS_DEFAULT_TTL);
	o.status = KS_NONE;
	CHECK(ks_cache_ttl(&o, &kc) == 600);
	o.status = KS_BOGUS;
	CHECK(ks_cache_ttl(&o, &kc) == 600);
	o.status = KS_TIMEOUT;
	CHECK(ks_cache_ttl(&o, &kc) == 0);
	o.status = KS_ERROR;
	CHECK(ks_cache_ttl(&o, &kc) == 0);
}

static void test_cache_lru(void)
{
	struct ks_cache *c = ks_cache_new(2);
	struct ks_outcome o = { 0 }, got = { 0 };
	struct ks_hit h = test_hit(KEYS_OPENPGP, "CCCC", KS_TRUST_VKS, 1, "u");

	ks_outcome_add_hit(&o, &h);
	ks_outcome_set(&o, KS_FOUND, "1 key");
	ks_cache_put(c, "a", &o, 1000);
	ks_cache_put(c, "b", &o, 1000);
	CHECK(ks_cache_get(c, "a", 10, &got, NULL));		/* a is now the most recent */
	CHECK(got.nhits == 1 && strcmp(got.hits[0].fingerprint, "CCCC") == 0);
	CHECK(got.status == KS_FOUND);
	ks_outcome_release(&got);
	ks_cache_put(c, "c", &o, 1000);			/* evicts b */
	CHECK(ks_cache_count(c) == 2);
	CHECK(!ks_cache_get(c, "b", 10, &got, NULL));
	CHECK(ks_cache_get(c, "a", 10, &got, NULL));
	ks_outcome_release(&got);
	CHECK(!ks_cache_get(c, "a", 1000, &got, NULL));	/* expired */
	CHECK(ks_cache_count(c) == 1);
	ks_cache_free(c);

	c = ks_cache_new(0);				/* cache off */
	ks_cache_put(c, "a", &o, 1000);
	CHECK(!ks_cache_get(c, "a", 10, &got, NULL));
	ks_cache_free(c);
	ks_outcome_release(&o);
}

/* A cached key that expired since is dropped on the way out. */
static void test_cache_key_expiry(void)
{
	struct ks_cache *c = ks_cache_new(10);
	struct ks_outcome o = { 0 }, got = { 0 };
	struct ks_hit h = test_hit(KEYS_OPENPGP, "DDDD", KS_TRUST_WKD, 1, "u");

	h.expires = 500;
	ks_outcome_add_hit(&o, &h);
	ks_outcome_set(&o, KS_FOUND, "1 key");
	ks_cache_put(c, "k", &o, 10000);
	CHECK(ks_cache_get(c, "k", 100, &got, NULL) && got.nhits == 1);
	ks_outcome_release(&got);
	CHECK(ks_cache_get(c, "k", 600, &got, NULL) && got.nhits == 0 && got.status == KS_NONE);
	ks_outcome_release(&got);
	ks_outcome_release(&o);
	ks_cache_free(c);
}

static void test_rate_limit(void)
{
	struct ks_rate r = { 0 };

	CHECK(ks_rate_take(&r, 3, 1000) == 0);
	CHECK(ks_rate_take(&r, 3, 1000) == 0);
	CHECK(ks_rate_take(&r, 3, 1000) == 0);
	CHECK(ks_rate_take(&r, 3, 1000) == 20);		/* one token per 20 s */
	CHECK(ks_rate_take(&r, 3, 11000) == 10);
	CHECK(ks_rate_take(&r, 3, 21000) == 0);
	CHECK(ks_rate_take(&r, 3, 21000) > 0);
	/* A long pause refills only up to the limit. */
	CHECK(ks_rate_take(&r, 3, 10000000) == 0);
	CHECK(ks_rate_take(&r, 3, 10000000) == 0);
	CHECK(ks_rate_take(&r, 3, 10000000) == 0);
	CHECK(ks_rate_take(&r, 3, 10000000) > 0);
}

static void test_tokens(void)
{
	CHECK(ks_token_index("alpha, beta ,gamma", "beta") == 1);
	CHECK(ks_token_index("alpha, beta ,gamma", "alpha") == 0);
	CHECK(ks_token_index("alpha, beta ,gamma", "gamma") == 2);
	CHECK(ks_token_index("alpha, beta ,gamma", "bet") == -1);
	CHECK(ks_token_index("alpha, beta ,gamma", "betaa") == -1);
	CHECK(ks_token_index("alpha", "") == -1);
	CHECK(ks_token_index("", "") == -1);
	CHECK(ks_token_index(",,", "x") == -1);
}

static void test_base64(void)
{
	size_t n;
	uint8_t *d = ks_base64_decode("aGVs\nbG8=", 9, &n);

	CHECK(d && n == 5 && memcmp(d, "hello", 5) == 0);
	free(d);
	CHECK(ks_base64_decode("aG!s", 4, &n) == NULL);
}

static void test_setup(void)
{
	keyfix_generate("pw-ks", ">/dev/null");
}

static void test_cleanup(void)
{
	keyfix_cleanup();
}

/* One armored block holding two keys, and two keys back to back in binary: two each. */
static void test_body_split(void)
{
	struct ks_chunk *c;
	size_t len, n;
	uint8_t *d = keyfix_read("two.asc", &len);
	uint8_t *one = keyfix_read("ed25519.asc", &len), *both;
	size_t onelen = len;

	free(d);
	d = keyfix_read("two.asc", &len);
	n = ks_body_split(d, len, &c);
	CHECK(n == 2);
	ks_chunks_free(c, n);
	free(d);

	d = keyfix_read("two.pgp", &len);
	n = ks_body_split(d, len, &c);
	CHECK(n == 2);
	ks_chunks_free(c, n);
	free(d);

	/* Two armored blocks with text around them, as a keyserver's HTML might have. */
	both = xmalloc(2 * onelen + 64);
	memcpy(both, "junk before\n", 12);
	memcpy(both + 12, one, onelen);
	memcpy(both + 12 + onelen, one, onelen);
	n = ks_body_split(both, 12 + 2 * onelen, &c);
	CHECK(n == 2);
	ks_chunks_free(c, n);
	/* Truncated second block: only the first counts. */
	n = ks_body_split(both, 12 + onelen + onelen / 2, &c);
	CHECK(n == 1);
	ks_chunks_free(c, n);
	free(both);
	free(one);

	/* Not OpenPGP: handed over whole (a certificate would be). */
	n = ks_body_split((const uint8_t *)"hello", 5, &c);
	CHECK(n == 1 && c[0].len == 5);
	ks_chunks_free(c, n);
	n = ks_body_split((const uint8_t *)"", 0, &c);
	CHECK(n == 0);
}

/* Keys for other addresses and expired keys are refused; only alice's key is kept. */
static void test_body_keys(void)
{
	struct ks_outcome o = { 0 };
	size_t len, n;
	uint8_t *d = keyfix_read("two.asc", &len);
	char *fpr = keyfix_fpr("ed25519");

	n = ks_body_keys(d, len, "alice@example.org", (int64_t)time(NULL), KS_TRUST_VKS, "url", &o);
	CHECK(n == 1);
	CHECK(o.nhits == 1 && o.refused == 1);
	CHECK(o.nhits == 1 && strcmp(o.hits[0].fingerprint, fpr) == 0);
	CHECK(o.nhits == 1 && strcmp(o.hits[0].uid, "alice@example.org") == 0);
	CHECK(o.nhits == 1 && o.hits[0].trust == KS_TRUST_VKS);
	CHECK_STREQ(o.refusal, keys_error_name(KEYS_ERR_NO_ADDRESS));
	ks_outcome_release(&o);
	free(d);

	/* Case of the address does not matter to keys_accept. */
	d = keyfix_read("ed25519.pgp", &len);
	n = ks_body_keys(d, len, "Alice@Example.ORG", (int64_t)time(NULL), KS_TRUST_WKD, "u", &o);
	CHECK(n == 1);
	ks_outcome_release(&o);
	free(d);

	/* An answer with no key in it at all tells a broken server from an empty one. */
	n = ks_body_keys((const uint8_t *)"<html>busy</html>", 17, "alice@example.org",
			 (int64_t)time(NULL), KS_TRUST_VKS, "u", &o);
	CHECK(n == 0 && ks_outcome_all_garbage(&o));
	ks_outcome_release(&o);

	d = keyfix_read("expired.pgp", &len);
	n = ks_body_keys(d, len, "olga@example.org", (int64_t)time(NULL), KS_TRUST_WKD, "u", &o);
	CHECK(n == 0 && o.refused == 1);
	CHECK(!ks_outcome_all_garbage(&o));
	CHECK_STREQ(o.refusal, "expired");
	ks_outcome_release(&o);
	free(d);

	d = keyfix_read("revoked.pgp", &len);
	n = ks_body_keys(d, len, "rex@example.org", (int64_t)time(NULL), KS_TRUST_WKD, "u", &o);
	CHECK(n == 0 && o.refused == 1);
	ks_outcome_release(&o);
	free(d);

	d = keyfix_read("secret.asc", &len);
	n = ks_body_keys(d, len, "alice@example.org", (int64_t)time(NULL), KS_TRUST_HKP, "u", &o);
	CHECK(n == 0 && o.refused == 1);
	ks_outcome_release(&o);
	free(d);

	/* An S/MIME certificate in DER, as an SMIMEA record carries it. */
	d = keyfix_read("smime-good.der", &len);
	n = ks_body_keys(d, len, "alice@example.org", (int64_t)time(NULL), KS_TRUST_DNS_SECURE,
			 "h._smimecert.example.org", &o);
	CHECK(n == 1 && o.nhits == 1 && o.hits[0].kind == KEYS_SMIME);
	ks_outcome_release(&o);
	free(d);
	free(fpr);
}

/* The JSON of a merged result: the contract of the search endpoint and the webmail shape. */
static void test_json(void)
{
	struct ks_outcome o = { 0 };
	struct ks_merge_in in;
	struct ks_result *r;
	size_t len;
	uint8_t *d = keyfix_read("ed25519.pgp", &len);
	json_t *j, *pk;

	ks_body_keys(d, len, "alice@example.org", (int64_t)time(NULL), KS_TRUST_DNS_INSECURE,
		     "x._openpgpkey.example.org", &o);
	ks_outcome_set(&o, KS_FOUND, "1 key");
	in = (struct ks_merge_in){ "dns", NULL, 0, false, 12, &o };
	r = ks_merge("alice@example.org", KS_TYPE_ANY, &in, 1);
	j = ks_result_json(r);
	CHECK(json_is_true(json_object_get(j, "found")));
	CHECK(json_array_size(json_object_get(j, "keys")) == 1);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(j, "keys"), 0),
						      "trust")), "dns-insecure");
	CHECK(strncmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "keys"),
						0), "key")), "-----BEGIN PGP PUBLIC KEY BLOCK-----",
		      36) == 0);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(j, "sources"),
						      0), "status")), "found");
	CHECK(json_integer_value(json_object_get(json_array_get(json_object_get(j, "sources"), 0),
						 "elapsed_ms")) == 12);
	pk = ks_public_keys_json(r);
	CHECK(json_array_size(json_object_get(pk, "results")) == 1);
	/* Unsigned DNS is not "verified". */
	CHECK(json_is_false(json_object_get(json_array_get(json_object_get(pk, "results"), 0),
					    "verified")));
	json_decref(pk);
	json_decref(j);
	ks_result_free(r);
	ks_outcome_release(&o);
	free(d);
}

/* The best trust each source could still return: DNS may be signed until it answers. */
static void test_kind_best_trust(void)
{
	CHECK(ks_kind_best_trust(KS_SRC_LOCAL) == KS_TRUST_DIRECTORY);
	CHECK(ks_kind_best_trust(KS_SRC_DNS) == KS_TRUST_DNS_SECURE);
	CHECK(ks_kind_best_trust(KS_SRC_WKD) == KS_TRUST_WKD);
	CHECK(ks_kind_best_trust(KS_SRC_VKS) == KS_TRUST_VKS);
	CHECK(ks_kind_best_trust(KS_SRC_HKP) == KS_TRUST_HKP);
}

/*
 * "Can anything outstanding beat the best found?" as a table. Positions (order) follow
 * `sources = local, dns, wkd, vks, vks2, hkp`: 0..5. Up to three outstanding sources.
 */
static void test_better_may_come(void)
{
#define D KS_TRUST_DIRECTORY
#define S KS_TRUST_DNS_SECURE
#define W KS_TRUST_WKD
#define V KS_TRUST_VKS
#define I KS_TRUST_DNS_INSECURE
#define H KS_TRUST_HKP
	static const struct {
		const char *why;
		bool found;
		struct ks_rank best;
		size_t n;
		struct ks_rank out[3];
		bool better;
	} t[] = {
		{ "nothing found, nothing outstanding", false, { H, 0 }, 0, { { H, 0 } }, false },
		{ "nothing found: any source may find one", false, { H, 0 }, 1, { { H, 5 } }, true },
		{ "dns-secure found; wkd, vks, hkp left", true, { S, 1 }, 3,
		  { { W, 2 }, { V, 3 }, { H, 5 } }, false },
		{ "vks found first; wkd left", true, { V, 3 }, 1, { { W, 2 } }, true },
		{ "vks found; hkp left", true, { V, 3 }, 1, { { H, 5 } }, false },
		{ "dns-insecure found; DNS gives one answer, but vks left", true, { I, 1 }, 1,
		  { { V, 3 } }, true },
		{ "wkd found; DNS outstanding may still be signed", true, { W, 2 }, 1, { { S, 1 } },
		  true },
		{ "hkp found; DNS outstanding", true, { H, 5 }, 1, { { S, 1 } }, true },
		{ "second vks found; first vks (earlier in sources) left", true, { V, 4 }, 1,
		  { { V, 3 } }, true },
		{ "first vks found; second vks left: ranked below", true, { V, 3 }, 1,
		  { { V, 4 } }, false },
		{ "directory found: nothing ranks above", true, { D, 0 }, 3,
		  { { S, 1 }, { W, 2 }, { V, 3 } }, false },
		{ "wkd found; vks and hkp left", true, { W, 2 }, 2, { { V, 3 }, { H, 5 } }, false },
		{ "wkd found; hkp and DNS left", true, { W, 2 }, 2, { { H, 5 }, { S, 1 } }, true },
	};
#undef D
#undef S
#undef W
#undef V
#undef I
#undef H

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool got = ks_better_may_come(t[i].found ? &t[i].best : NULL, t[i].out, t[i].n);

		if (got != t[i].better)
			fprintf(stderr, "case %zu (%s): got %d\n", i, t[i].why, got);
		CHECK(got == t[i].better);
	}
}

/* A whole answer in the cache: a reference of its own, a body serialised once, dropped. */
static void test_cache_result(void)
{
	struct ks_cache *c = ks_cache_new(4);
	struct ks_outcome o = { 0 }, got = { 0 };
	struct ks_merge_in in = { "vks", "https://k", 0, true, 0, &o };
	struct ks_result *r, *hit;
	const char *body;

	ks_outcome_set(&o, KS_NONE, "no key");
	r = ks_merge("alice@example.org", KS_TYPE_ANY, &in, 1);
	CHECK(ks_result_complete(r));
	ks_cache_put_result(c, "=0|alice@example.org", r, 100);
	body = ks_result_body(r, false);
	CHECK(strstr(body, "\"complete\":true") != NULL && body[strlen(body) - 1] == '\n');
	CHECK(ks_result_body(r, false) == body);	/* made once */
	ks_result_free(r);				/* the cache keeps its reference */
	hit = ks_cache_get_result(c, "=0|alice@example.org", 10);
	CHECK(hit == r && ks_result_body(hit, false) == body);
	CHECK(strstr(ks_result_body(hit, true), "\"results\":[]") != NULL);
	/* An outcome lookup does not return a whole answer, and the other way round. */
	CHECK(!ks_cache_get(c, "=0|alice@example.org", 10, &got, NULL));
	ks_cache_put(c, "vks|k|0|alice@example.org", &o, 100);
	CHECK(ks_cache_get_result(c, "vks|k|0|alice@example.org", 10) == NULL);
	CHECK(ks_cache_get_result(c, "=0|alice@example.org", 100) == NULL);	/* expired */
	ks_cache_put_result(c, "=1|alice@example.org", hit, 100);
	ks_cache_drop(c, "=1|alice@example.org");
	CHECK(ks_cache_get_result(c, "=1|alice@example.org", 10) == NULL);
	ks_result_free(hit);
	ks_cache_free(c);
	ks_outcome_release(&o);
}

/* A result made while a source is still asked is not complete, and says so. */
static void test_result_pending(void)
{
	struct ks_outcome done = { 0 }, pending = { 0 };
	struct ks_merge_in in[2] = { { "dns", NULL, 0, false, 5, &done },
				     { "hkp", "http://h", 1, false, 5, &pending } };
	struct ks_result *r;

	ks_outcome_set(&done, KS_NONE, "no record");
	ks_outcome_set(&pending, KS_PENDING, "still asked");
	r = ks_merge("alice@example.org", KS_TYPE_ANY, in, 2);
	CHECK(!ks_result_complete(r));
	CHECK(strstr(ks_result_body(r, false), "\"complete\":false") != NULL);
	CHECK(strstr(ks_result_body(r, false), "\"status\":\"pending\"") != NULL);
	CHECK(ks_cache_ttl(&pending, &(struct keysearch_conf){ .negative_ttl = 60 }) == 0);
	ks_result_free(r);
	ks_outcome_release(&done);
	ks_outcome_release(&pending);
}

TEST_MAIN(test_trust_order, test_merge_dedupe, test_rank, test_cache_ttl, test_cache_lru,
	  test_cache_key_expiry, test_rate_limit, test_tokens, test_base64, test_setup,
	  test_body_split, test_body_keys, test_json, test_kind_best_trust,
	  test_better_may_come, test_cache_result, test_result_pending, test_cleanup)
