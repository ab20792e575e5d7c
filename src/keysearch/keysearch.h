/*
 * keysearch.h - finding a correspondent's public key: the local directory, DNS (OPENPGPKEY,
 * SMIMEA), the Web Key Directory and keyservers (VKS, HKP) are asked at once on the event
 * loop; every key found is checked and minimised with keys_accept for the searched address,
 * keys found by several sources are merged, and the most trustworthy one is recommended.
 *
 * Used by "postwarden keys search" and by the HTTP API of serve (ks_api.c).
 * See docs/keysearch.md for the trust levels and the JSON returned.
 */
#ifndef PW_KEYSEARCH_H
#define PW_KEYSEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "config.h"
#include "db.h"
#include "keys/keys.h"

struct event_base;
struct dns;
struct keysearch;
struct ks_result;
struct ks_api;

enum ks_type {
	KS_TYPE_ANY,
	KS_TYPE_OPENPGP,
	KS_TYPE_SMIME,
};

/* The result's callee owns it: free it with ks_result_free. */
typedef void (*keysearch_cb)(struct ks_result *result, void *arg);

/*
 * A searcher on base. dns and db are borrowed (db may be NULL: the local source then
 * reports an error). Returns NULL with *err when [keysearch] is unusable.
 */
struct keysearch *keysearch_new(struct event_base *base, const struct pw_config *cfg,
				struct dns *dns, struct db *db, char **err);
/* Cancels running searches (their callbacks are not called). */
void keysearch_free(struct keysearch *ks);
/*
 * Search keys for address (checked with addr_valid by the caller). cb runs later on the
 * loop, never from inside this call, exactly once. Returns a handle for keysearch_cancel.
 *
 * Without complete, cb runs as soon as no source still asked could return a key ranked
 * above the best one found; the other sources go on in the background and fill the cache
 * (ks_result_complete says whether every source had finished). With complete, cb runs
 * when every source has finished (or the deadline is reached).
 */
int keysearch_start(struct keysearch *ks, const char *address, enum ks_type type,
		    bool complete, keysearch_cb cb, void *arg);
/* cb will not be called; the search's sources finish in the background. */
void keysearch_cancel(struct keysearch *ks, int handle);

/* "openpgp"/"smime"/"any" (and "open_pgp"); false when unknown. */
bool ks_type_parse(const char *s, enum ks_type *type);
const char *ks_type_name(enum ks_type type);

/* Whether at least one usable key was found. */
bool ks_result_found(const struct ks_result *r);
void ks_result_free(struct ks_result *r);
/* The search endpoint's JSON (also "keys search --json"). */
json_t *ks_result_json(const struct ks_result *r);
/* The webmail shape {"results":[{"verified":..,"content":..}]}: the recommended key only. */
json_t *ks_public_keys_json(const struct ks_result *r);
/* Whether every source had finished when the result was made. */
bool ks_result_complete(const struct ks_result *r);
/*
 * The API's compact JSON body (ks_public_keys_json or ks_result_json), serialised on first
 * use and kept with the result: a cached answer is serialised once. Borrowed from r.
 */
const char *ks_result_body(struct ks_result *r, bool public_keys);
/* Human-readable report for the command line. */
void ks_result_print(const struct ks_result *r, FILE *out);

/*
 * The API server of serve ([api]); NULL with *err when it cannot listen. Returns NULL
 * without error when [api] listen is empty.
 */
struct ks_api *ks_api_start(struct event_base *base, const struct pw_config *cfg,
			    struct keysearch *ks, char **err);
void ks_api_stop(struct ks_api *api);

/*
 * Hand the requests whose path starts with prefix (any method) to fn once the bearer token
 * and its rate limit have passed; fn answers and returns the HTTP status it sent. Other
 * parts of serve (the migration jobs) add their routes this way.
 */
struct evhttp_request;
typedef int (*ks_api_route_fn)(void *arg, struct evhttp_request *req, const char *path,
			       const char *query);
void ks_api_route(struct ks_api *api, const char *prefix, ks_api_route_fn fn, void *arg);

#endif
