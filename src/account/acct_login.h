/*
 * acct_login.h - signing in to the account API:
 *   POST /v1/session      {"address","password"}: an IMAP LOGIN against [account] imap,
 *                         run in a thread of its own (never on the loop); the answer comes
 *                         back to the loop through a pipe
 *   POST /v1/session/sso  {"assertion"}: base64url(JSON {"sub","exp"}) "." base64url(HMAC-
 *                         SHA256 over the first part with [account] sso_secret), exp at most
 *                         ACCT_SSO_MAX_AHEAD seconds ahead
 * Both answer {"address","csrf","language"} and set the pw_session cookie. Failed password
 * sign-ins are counted in the database per address and per client address; over [account]
 * login_failures within login_window the answer is 429 with Retry-After, whatever the
 * password. Assertions are not counted (see acct_login_sso). The password is wiped from every buffer it passed and never logged or stored.
 */
#ifndef PW_ACCT_LOGIN_H
#define PW_ACCT_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acct_http.h"
#include "migrate/mig_cred.h"

struct db;
struct account_conf;
struct acct_login;

#define ACCT_LOGIN_MAX_BODY 4096
#define ACCT_MAX_ADDRESS 320
#define ACCT_MAX_PASSWORD 1024
#define ACCT_SSO_MAX_LEN 2048
#define ACCT_SSO_MAX_AHEAD 300
#define ACCT_SSO_MIN_SECRET 32

/*
 * Parse a sign-in body {"address","password"} (at most ACCT_LOGIN_MAX_BODY bytes). 0, or -1
 * with *err (static text). The password is moved into a wiped credential.
 */
int acct_login_body_parse(const char *data, size_t len, char **address, struct mig_cred **pw,
			  const char **err);
/*
 * Check an SSO assertion at time now: 0 with *sub (caller frees, a valid address), or -1
 * with *err (static text). The HMAC is compared in constant time before anything of the
 * payload is believed.
 */
int acct_sso_verify(const char *assertion, size_t len, const char *secret, int64_t now,
		    char **sub, const char **err);

/*
 * Rate limit: seconds until a sign-in for address from client may be tried again (0: now),
 * from the failures recorded since now - window.
 */
int64_t acct_login_blocked(struct db *db, const struct account_conf *c, const char *address,
			   const char *client, int64_t now);
/* Record a failed sign-in (address may be NULL: only the client counts). */
void acct_login_failed(struct db *db, const struct account_conf *c, const char *address,
		       const char *client, int64_t now);

/* Register the two sign-in routes; NULL when [account] imap or sso_secret is invalid (*err). */
struct acct_login *acct_login_register(struct acct_http *h, char **err);
/* Wait for sign-ins in progress (each bounded by the IMAP timeout), then free. */
void acct_login_free(struct acct_login *l);

#endif
