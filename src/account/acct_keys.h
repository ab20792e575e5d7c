/*
 * acct_keys.h - the signed-in user's published keys on the account API:
 *   GET    /v1/keys      the keys of the user's addresses, where each is published (DNS
 *                        owner names, WKD URL) and whether its DNS records validate now
 *   POST   /v1/keys      {"key": armored OpenPGP or PEM certificate}: publish it, with the
 *                        same checks as "postwarden keys publish" (only the user's own
 *                        addresses, minimised)
 *   DELETE /v1/keys/ID   take a key (ID: its fingerprint) down from every address of the user
 */
#ifndef PW_ACCT_KEYS_H
#define PW_ACCT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keydir/keydir.h"

struct acct_http;
struct acct_keys;
struct dns;
struct dns_answer;

/* Key jobs (publish, remove: a key check and a DNS update) running at once; 429 beyond. */
#define ACCT_KEYS_MAX_JOBS 4

/* Register the routes; dns (serve's resolver, borrowed) checks that the records validate. */
struct acct_keys *acct_keys_register(struct acct_http *h, struct dns *dns);
/* Wait for running jobs and free (after acct_http_stop). */
void acct_keys_free(struct acct_keys *k);

/* ---- pure parts (unit tests) ---------------------------------------------------------- */

/* Does a DNSSEC-secure answer hold the record that the copy k publishes? */
bool acct_keys_answer_matches(const struct dns_answer *a, const struct keydir_key *k);
/* https://openpgpkey.DOMAIN/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL, or NULL (S/MIME). */
char *acct_keys_wkd_url(const struct keydir_key *k);
/*
 * {"keys":[...]}: the copies grouped by key (kind and fingerprint), each with its
 * addresses and where it is published; valid[2i] and valid[2i+1] say whether keys[i]'s
 * owner and owner_lc names validate (NULL: none looked up).
 */
json_t *acct_keys_json(struct keydir_key *const *keys, size_t n, const bool *valid);
/* Is s a key ID of this API (a fingerprint: 16 to 64 hex digits)? */
bool acct_keys_id_ok(const char *s);

#endif
