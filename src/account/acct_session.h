/*
 * acct_session.h - sessions of the account API, kept in the database (schema 9) so that
 * every node sharing it knows them.
 *
 * A session id is 32 random bytes (base64url, the pw_session cookie); the database keeps
 * only its SHA-256. A session ends after [account] idle_timeout without use, after
 * session_lifetime in any case, or at sign-out. Its CSRF token (32 random bytes, base64url)
 * is handed out at sign-in and must come back in X-CSRF-Token with every change.
 */
#ifndef PW_ACCT_SESSION_H
#define PW_ACCT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acct_http.h"

struct db;
struct account_conf;

#define ACCT_COOKIE "pw_session"
/* base64url of 32 bytes, no padding */
#define ACCT_TOKEN_LEN 43

/* base64url without padding of len bytes (caller frees). */
char *acct_b64url_encode(const unsigned char *data, size_t len);
/* Decode base64url (padding optional) into a new buffer of *outlen bytes; NULL if invalid
 * or longer than max bytes of input. */
unsigned char *acct_b64url_decode(const char *s, size_t slen, size_t max, size_t *outlen);
/* A new random token: 32 bytes as base64url (caller frees). */
char *acct_token_new(void);
/* Lower-case hex SHA-256 of s (out: 65 bytes). */
void acct_sha256_hex(const char *s, char out[65]);

/* Is a session created at created and last used at last_used still alive at now? */
bool acct_session_alive(int64_t created, int64_t last_used, int64_t now, int64_t idle,
			int64_t lifetime);

/*
 * Create a session for address (method "imap" or "sso") at now; the new id and CSRF token
 * in *sid and *csrf (caller frees). Expired sessions of everyone are removed on the way.
 * 0, or -1 on a database error.
 */
int acct_session_create(struct db *db, const struct account_conf *c, const char *address,
			const char *method, int64_t now, char **sid, char **csrf);
/*
 * The session of id sid, if alive at now: fills who (address, csrf, sid_hash) and marks it
 * used. false when absent, expired (it is then deleted) or on a database error.
 */
bool acct_session_lookup(struct db *db, const struct account_conf *c, const char *sid,
			 int64_t now, struct acct_who *who);
/* Delete the session whose id hashes to sid_hash (sign-out). */
int acct_session_delete(struct db *db, const char *sid_hash);
/* The Set-Cookie value for sid (NULL: the one that clears it). Caller frees. */
char *acct_session_cookie(const struct account_conf *c, const char *sid);

/* Register /v1/session (GET, DELETE) and the router's session lookup. */
void acct_session_register(struct acct_http *h);

#endif
