/*
 * acct_extra.h - the account API's routes that need more of serve than the listener's
 * database: keys (the resolver), migrations (serve's jobs), compose help (the relay and
 * key search), certificates. serve registers them once the listener runs.
 */
#ifndef PW_ACCT_EXTRA_H
#define PW_ACCT_EXTRA_H

struct acct_http;
struct acct_extra;
struct keysearch;
struct mig_api;
struct relay;

/* Every part is borrowed; ks may be NULL (no key search: no keys in compose help). */
struct acct_extra *acct_extra_register(struct acct_http *h, struct relay *relay,
				       struct keysearch *ks, struct mig_api *mig);
/* After acct_http_stop (which aborts the requests still waiting). */
void acct_extra_free(struct acct_extra *x);

#endif
