/*
 * ks.h - key search internals shared by the files of src/keysearch/.
 *
 * ks_search.c runs one search: a struct ks_src per configured source instance, each with its
 * own timer, all inside the search's deadline. A source ends with an outcome (status, detail,
 * the keys it returned after keys_accept); ks_merge.c turns the outcomes into a result.
 * The pure parts (merge, ranking, cache, rate limit, body splitting) take their inputs as
 * arguments so that unit tests and the fuzz target can call them directly.
 */
#ifndef PW_KS_H
#define PW_KS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keysearch.h"

#define KS_MAX_KEYS_PER_BODY 16	/* keys checked from one answer; more are ignored */
#define KS_DEFAULT_TTL 3600		/* positive answers without max-age */
#define KS_MAX_DNS_QUERIES 4

/* Higher is better. */
enum ks_trust {
	KS_TRUST_HKP,
	KS_TRUST_DNS_INSECURE,
	KS_TRUST_VKS,
	KS_TRUST_WKD,
	KS_TRUST_DNS_SECURE,
	KS_TRUST_DIRECTORY,
};

enum ks_status {
	KS_FOUND,
	KS_NONE,
	KS_TIMEOUT,
	KS_ERROR,
	KS_BLOCKED,
	KS_BOGUS,
	KS_PENDING,	/* still asked when the answer was given (in the background) */
};

enum ks_source_kind {
	KS_SRC_LOCAL,
	KS_SRC_DNS,
	KS_SRC_WKD,
	KS_SRC_VKS,
	KS_SRC_HKP,
};

/* One key a source returned, accepted for the searched address and minimised. */
struct ks_hit {
	enum keys_kind kind;
	char fingerprint[65];
	char algorithm[32];
	unsigned bits;
	int64_t created;
	int64_t expires;	/* 0: never */
	char *uid;		/* the matching address, as in the key */
	uint8_t *data;		/* minimised binary OpenPGP key or DER certificate */
	size_t len;
	enum ks_trust trust;
	char *where;		/* DNS owner name or URL it came from */
};

/* What one source reported. */
struct ks_outcome {
	enum ks_status status;
	char *detail;
	struct ks_hit *hits;
	size_t nhits;
	int64_t ttl;		/* seconds the source says this is good for; -1: unknown */
	size_t refused;		/* keys returned but refused by keys_accept */
	char *refusal;		/* the first reason */
	size_t garbage;		/* of those, answers or parts that were no key at all */
};

/* A source's name and report, as listed in a result. */
struct ks_report {
	char *source;		/* "local", "dns", "wkd", "vks", "hkp" */
	char *server;		/* base URL (vks, hkp) or NULL */
	enum ks_status status;
	char *detail;
	int64_t elapsed_ms;
	bool cached;
};

/* Where one merged key was found. */
struct ks_key_src {
	char *source;
	char *server;		/* or NULL */
	enum ks_trust trust;
	char *where;
};

/* A distinct key (kind + fingerprint) after merging. */
struct ks_key {
	struct ks_hit hit;	/* the copy from the most trusted source */
	enum ks_trust trust;	/* best trust among its sources */
	int order;		/* configured position of its best source */
	struct ks_key_src *srcs;
	size_t nsrcs;
};

struct ks_result {
	int refs;		/* the answer cache may hold one more reference */
	char *address;
	enum ks_type type;
	bool complete;		/* every source had finished when the answer was given */
	struct ks_key *keys;	/* best first */
	size_t nkeys;
	long recommended;	/* index into keys, -1: none */
	struct ks_report *reports;
	size_t nreports;
	int64_t elapsed_ms;
	char *body[2];		/* the API's serialised answers, made once (ks_result_body) */
};

/* The input of ks_merge: one source's identity, position and outcome (borrowed). */
struct ks_merge_in {
	const char *source;
	const char *server;
	int order;
	bool cached;
	int64_t elapsed_ms;
	const struct ks_outcome *out;
};

/* ---- ks_merge.c ------------------------------------------------------------------------ */
const char *ks_trust_name(enum ks_trust t);
const char *ks_status_name(enum ks_status s);
/* Whether a key of this trust counts as "verified" for the webmail API. */
bool ks_trust_verified(enum ks_trust t);
/* Build a result: dedupe by (kind, fingerprint), rank, recommend. Copies what it keeps. */
struct ks_result *ks_merge(const char *address, enum ks_type type, const struct ks_merge_in *in,
			   size_t n);
/* Ordering of two merged keys: < 0 when a is better. */
int ks_key_rank_cmp(const struct ks_key *a, const struct ks_key *b);
/* Whether a search of type wants a key of kind. */
bool ks_type_wants(enum ks_type type, enum keys_kind kind);
/* One more reference to r (released by ks_result_free). */
struct ks_result *ks_result_ref(struct ks_result *r);

/*
 * Answering early. A source still asked is described by the best trust it could return
 * (DNS: dns-secure, whatever it returned before) and its position in `sources`, the
 * tie-breaker between keys of equal trust.
 */
struct ks_rank {
	enum ks_trust trust;
	int order;
};
enum ks_trust ks_kind_best_trust(enum ks_source_kind k);
/* Whether a key of rank a is ranked above one of rank b (ks_key_rank_cmp's first criteria). */
bool ks_rank_above(const struct ks_rank *a, const struct ks_rank *b);
/*
 * Whether one of the outstanding sources could still return a key ranked above best (the
 * best key found so far; NULL when none was found: then any outstanding source could).
 */
bool ks_better_may_come(const struct ks_rank *best, const struct ks_rank *outstanding,
			size_t n);

/* ---- ks_outcome (ks_merge.c) ----------------------------------------------------------- */
void ks_hit_copy(struct ks_hit *dst, const struct ks_hit *src);
void ks_hit_release(struct ks_hit *h);
void ks_outcome_add_hit(struct ks_outcome *o, const struct ks_hit *h);
void ks_outcome_copy(struct ks_outcome *dst, const struct ks_outcome *src);
void ks_outcome_release(struct ks_outcome *o);
void ks_outcome_set(struct ks_outcome *o, enum ks_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Drop hits that expired by now; a FOUND outcome left without hits becomes NONE. */
void ks_outcome_expire(struct ks_outcome *o, int64_t now);

/* ---- ks_body.c: keys in an answer ------------------------------------------------------- */
struct ks_chunk {
	uint8_t *data;
	size_t len;
};
/*
 * Split an answer into candidate keys: each armored "PGP PUBLIC KEY BLOCK" is decoded, and
 * binary data is cut before each primary key packet. At most KS_MAX_KEYS_PER_BODY chunks.
 */
size_t ks_body_split(const uint8_t *data, size_t len, struct ks_chunk **chunks);
void ks_chunks_free(struct ks_chunk *c, size_t n);
/* Check one candidate with keys_accept for address; an accepted copy is added to o. */
bool ks_body_accept(const uint8_t *data, size_t len, const char *address, int64_t now,
		    enum ks_trust trust, const char *where, struct ks_outcome *o);
/* Whether an answer without accepted keys held nothing that even looked like a key. */
bool ks_outcome_all_garbage(const struct ks_outcome *o);
/* Split and accept every key of an answer; the number of keys accepted. */
size_t ks_body_keys(const uint8_t *data, size_t len, const char *address, int64_t now,
		    enum ks_trust trust, const char *where, struct ks_outcome *o);
/* Decode base64, skipping white space; NULL on a bad character (caller frees). */
uint8_t *ks_base64_decode(const char *s, size_t len, size_t *outlen);

/* ---- ks_cache.c ------------------------------------------------------------------------ */
struct ks_cache;
struct ks_cache *ks_cache_new(size_t max_entries);
void ks_cache_free(struct ks_cache *c);
/*
 * A copy of the cached outcome for key if it has not expired at now; *expires (when not
 * NULL) is when the entry does.
 */
bool ks_cache_get(struct ks_cache *c, const char *key, int64_t now, struct ks_outcome *out,
		  int64_t *expires);
/* Store a copy until expires; the least recently used entry goes when full. */
void ks_cache_put(struct ks_cache *c, const char *key, const struct ks_outcome *o,
		  int64_t expires);
size_t ks_cache_count(const struct ks_cache *c);
/*
 * Whole answers (a complete result made from cached outcomes only) in the same table and
 * LRU list: a reference to the cached result, or NULL; put takes a reference of its own.
 */
struct ks_result *ks_cache_get_result(struct ks_cache *c, const char *key, int64_t now);
void ks_cache_put_result(struct ks_cache *c, const char *key, struct ks_result *r,
			 int64_t expires);
void ks_cache_drop(struct ks_cache *c, const char *key);
/* Seconds to cache an outcome (0: do not cache), from the source's TTL and [keysearch]. */
int64_t ks_cache_ttl(const struct ks_outcome *o, const struct keysearch_conf *kc);

/* ---- ks_api.c: per-token rate limit ----------------------------------------------------- */
struct ks_rate {
	double tokens;
	int64_t last_ms;
	bool started;
};
/* Take one request from a bucket of per_minute; 0 when allowed, else Retry-After seconds. */
int64_t ks_rate_take(struct ks_rate *r, uint64_t per_minute, int64_t now_ms);
/* Constant-time lookup of a bearer token in the comma-separated list; index or -1. */
int ks_token_index(const char *tokens, const char *given);

/* ---- ks_search.c: what the source files call ------------------------------------------- */
struct ks_src;
struct ks_search;
/* The searched address; and the pieces the sources use. */
const char *ks_src_address(const struct ks_src *src);
enum ks_type ks_src_type(const struct ks_src *src);
struct ks_outcome *ks_src_outcome(struct ks_src *src);
struct dns *ks_src_dns(const struct ks_src *src);
struct db *ks_src_db(const struct ks_src *src);
struct http_client *ks_src_http(const struct ks_src *src);
const struct keysearch_conf *ks_src_conf(const struct ks_src *src);
const char *ks_src_server(const struct ks_src *src);
/* Milliseconds left of the source's own time (at least 1). */
long ks_src_time_left_ms(const struct ks_src *src);
/* The source is finished: its outcome is final. */
void ks_src_done(struct ks_src *src);
/* Per-source scratch the source file owns (freed by its cancel function). */
void *ks_src_state(const struct ks_src *src);
void ks_src_set_state(struct ks_src *src, void *state);

/* Each source: start (may call ks_src_done at once), cancel (timeout: stop, free state). */
void ks_local_start(struct ks_src *src);
void ks_dns_start(struct ks_src *src);
void ks_dns_cancel(struct ks_src *src);
void ks_wkd_start(struct ks_src *src);
void ks_wkd_cancel(struct ks_src *src);
void ks_vks_start(struct ks_src *src);
void ks_hkp_start(struct ks_src *src);
void ks_vks_cancel(struct ks_src *src);
/* Map an HTTP failure or status to an outcome; true when resp is a 200 with a body. */
struct http_response;
bool ks_http_outcome(const struct http_response *resp, struct ks_outcome *o, const char *what);

#endif
