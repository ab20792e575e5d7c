/*
 * acct_compose.h - compose help on the account API:
 *   POST /v1/recipients/status {"recipients":[up to 100 addresses]} ->
 *     {"recipients":[{"address","transport":"dane|tls|stop|plaintext","reason",
 *                     "key":null|{"type","fingerprint","source","trust"},"pending":bool}]}
 * per address what the relay would do now for this user (the probe of "postwarden
 * tls-check": the relay's own SMTP client, stopping after the TLS handshake) and the best
 * key that key search finds. Both are kept for ACCT_COMPOSE_TTL seconds per domain and per
 * address, so that the next keystroke is answered from memory. A request waits at most
 * ACCT_COMPOSE_WAIT seconds: what is not known by then comes back "pending" (transport
 * "stop" for now) and the next ask, once the look-up has ended, has it.
 */
#ifndef PW_ACCT_COMPOSE_H
#define PW_ACCT_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "relay/relay_policy.h"

struct acct_http;
struct acct_compose;
struct keysearch;
struct relay;

#define ACCT_COMPOSE_MAX_RCPTS 100	/* addresses in one request; more: 400 */
#define ACCT_COMPOSE_MAX_ADDR 320	/* bytes of one address as given */
#define ACCT_COMPOSE_MAX_BODY (64 * 1024)
#define ACCT_COMPOSE_TTL 300		/* seconds a domain's or an address's answer is kept */
#define ACCT_COMPOSE_WAIT 5		/* seconds a request waits at most; then "pending" */
#define ACCT_COMPOSE_MAX_PROBES 16	/* probes running at once; more wait their turn */
#define ACCT_COMPOSE_MAX_DOMAINS 4096	/* entries kept in each cache */
#define ACCT_COMPOSE_MAX_ADDRS 8192

/*
 * Register the route. relay (serve's: loop, configuration, resolver, TLS context) and ks
 * (NULL: no key search) are borrowed.
 */
struct acct_compose *acct_compose_register(struct acct_http *h, struct relay *relay,
					   struct keysearch *ks);
/* Cancel running probes and searches and free the caches (after acct_http_stop). */
void acct_compose_free(struct acct_compose *c);

/* ---- pure parts (unit tests, fuzzing) ------------------------------------------------ */

/*
 * Parse the body: a JSON object whose "recipients" is an array of 0 to 100 strings of at
 * most ACCT_COMPOSE_MAX_ADDR bytes. 0 with *addrs (caller frees each and the array) and
 * *n, or -1 with *err (static text).
 */
int acct_compose_parse(const char *data, size_t len, char ***addrs, size_t *n,
		       const char **err);

/* What a probe of a domain found, kept per domain. */
struct acct_compose_probe {
	enum policy_action verdict;	/* PROCEED: a sender with the guarantee could deliver */
	bool dane;			/* the host used passed DANE */
	char *host;			/* that host, or NULL */
	char *tls;			/* its protocol ("TLSv1.3"), or NULL */
	char *why;			/* the reason when not PROCEED, or NULL */
};

/*
 * The transport for a sender whose guarantee is (or is not) in force, and the reason in a
 * sentence (caller frees): "dane" or "tls" when it goes over TLS; "stop" when it would be
 * held or cannot go now; "plaintext" when it would go without the protection the
 * guarantee asks for because the user switched it off.
 */
const char *acct_compose_transport(const struct acct_compose_probe *p, bool guarantee,
				   char **reason);

#endif
