/*
 * acct_session.c - sessions in the database: creation at sign-in, the lookup the router
 * runs for every request (with the idle and absolute timeouts), sign-out, the cookie, and
 * GET / DELETE /v1/session.
 *
 * Times are this node's clock: nodes sharing a database keep their clocks in step (NTP),
 * as the queue's retry times already require.
 */
#include "acct_session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "account.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "xmalloc.h"

/* ---- tokens --------------------------------------------------------------------------- */

char *acct_b64url_encode(const unsigned char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);
	int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return out;
}

unsigned char *acct_b64url_decode(const char *s, size_t slen, size_t max, size_t *outlen)
{
	size_t n = slen, pad;
	char *std;
	unsigned char *out;
	int got;

	while (n > 0 && s[n - 1] == '=')
		n--;
	if (slen > max || n % 4 == 1)
		return NULL;
	pad = (4 - n % 4) % 4;
	std = xmalloc(n + pad + 1);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			free(std);
			return NULL;
		}
		std[i] = c;
	}
	memset(std + n, '=', pad);
	std[n + pad] = '\0';
	out = xmalloc((n + pad) / 4 * 3 + 1);
	got = EVP_DecodeBlock(out, (unsigned char *)std, (int)(n + pad));
	free(std);
	if (got < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	*outlen = (size_t)got - pad;
	out[*outlen] = '\0';
	return out;
}

char *acct_token_new(void)
{
	unsigned char raw[32];
	char *t;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		fatalx("RAND_bytes failed: no randomness for a session id");
	t = acct_b64url_encode(raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return t;
}

void acct_sha256_hex(const char *s, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)s, strlen(s), md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- sessions ------------------------------------------------------------------------- */

bool acct_session_alive(int64_t created, int64_t last_used, int64_t now, int64_t idle,
			int64_t lifetime)
{
	return now - last_used < idle && now - created < lifetime && created <= now + 60;
}

/* Remove every session past either timeout. */
static void acct_session_expire(struct db *db, const struct account_conf *c, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM acct_sessions WHERE last_used <= ?1 "
					"OR created <= ?2");

	db_bind_int(st, 1, now - c->idle_timeout);
	db_bind_int(st, 2, now - c->session_lifetime);
	db_step_done(db, st);
	db_finalize(st);
}

int acct_session_create(struct db *db, const struct account_conf *c, const char *address,
			const char *method, int64_t now, char **sid, char **csrf)
{
	char hash[65];
	struct db_stmt *st;
	int rc;

	acct_session_expire(db, c, now);
	*sid = acct_token_new();
	*csrf = acct_token_new();
	acct_sha256_hex(*sid, hash);
	st = db_prepare(db, "INSERT INTO acct_sessions(sid_hash, address, csrf, method, created, "
			"last_used) VALUES (?, ?, ?, ?, ?, ?)");
	db_bind_text(st, 1, hash);
	db_bind_text(st, 2, address);
	db_bind_text(st, 3, *csrf);
	db_bind_text(st, 4, method);
	db_bind_int(st, 5, now);
	db_bind_int(st, 6, now);
	rc = db_step_done(db, st);
	db_finalize(st);
	if (rc != DB_DONE) {
		log_error("event=account_session_failed error=\"%s\"", db_errmsg(db));
		free(*sid);
		free(*csrf);
		*sid = *csrf = NULL;
		return -1;
	}
	return 0;
}

bool acct_session_lookup(struct db *db, const struct account_conf *c, const char *sid,
			 int64_t now, struct acct_who *who)
{
	struct db_stmt *st;
	char hash[65];
	bool alive = false, found = false;

	if (sid == NULL || strlen(sid) != ACCT_TOKEN_LEN)
		return false;
	acct_sha256_hex(sid, hash);
	st = db_prepare(db, "SELECT address, csrf, created, last_used FROM acct_sessions "
			"WHERE sid_hash = ?");
	db_bind_text(st, 1, hash);
	if (db_step_row(db, st)) {
		found = true;
		alive = acct_session_alive(db_col_int(st, 2), db_col_int(st, 3), now,
					   c->idle_timeout, c->session_lifetime);
		if (alive) {
			who->address = xstrdup(db_col_text(st, 0));
			who->csrf = xstrdup(db_col_text(st, 1));
			who->sid_hash = xstrdup(hash);
		}
	}
	db_finalize(st);
	if (found && !alive) {
		acct_session_delete(db, hash);
		return false;
	}
	if (!alive)
		return false;
	/* used now: the idle timeout starts again (a few seconds' precision is plenty) */
	st = db_prepare(db, "UPDATE acct_sessions SET last_used = ?1 WHERE sid_hash = ?2 "
			"AND last_used < ?1");
	db_bind_int(st, 1, now);
	db_bind_text(st, 2, hash);
	db_step_done(db, st);
	db_finalize(st);
	return true;
}

int acct_session_delete(struct db *db, const char *sid_hash)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM acct_sessions WHERE sid_hash = ?");
	int rc;

	db_bind_text(st, 1, sid_hash);
	rc = db_step_done(db, st);
	db_finalize(st);
	return rc == DB_DONE ? 0 : -1;
}

char *acct_session_cookie(const struct account_conf *c, const char *sid)
{
	const char *secure = c->insecure_cookie ? "" : "; Secure";

	if (sid == NULL)
		return xasprintf(ACCT_COOKIE "=; Path=/; Max-Age=0; HttpOnly%s; SameSite=Strict",
				 secure);
	return xasprintf(ACCT_COOKIE "=%s; Path=/; Max-Age=%lld; HttpOnly%s; SameSite=Strict",
			 sid, (long long)c->session_lifetime, secure);
}

/* ---- the router's hook and /v1/session ------------------------------------------------ */

/* The session of a request: the cookie's session, and its account still there. */
static bool acct_session_hook(void *arg, const char *cookie_header, struct acct_who *who)
{
	struct acct_http *h = arg;
	const struct pw_config *cfg = acct_http_cfg(h);
	struct db *db = acct_http_db(h);
	char *sid = acct_cookie_get(cookie_header, ACCT_COOKIE);
	struct account *a;
	bool ok;

	ok = acct_session_lookup(db, &cfg->account, sid, time(NULL), who);
	free(sid);
	if (!ok)
		return false;
	/* an account deleted since sign-in ends its sessions */
	if ((a = account_find(db, who->address)) == NULL) {
		acct_who_clear(who);
		return false;
	}
	who->account_id = a->id;
	who->language = xstrdup(cfg->guarantee.language);
	account_free(a);
	return true;
}

/* GET /v1/session: who is signed in, with the CSRF token (a reloaded page needs it). */
static void acct_session_get(struct acct_req *r, void *arg)
{
	const struct acct_who *w = acct_req_who(r);

	acct_reply_json(r, 200, json_pack("{s:s, s:s, s:s}", "address", w->address,
					  "csrf", w->csrf, "language", w->language));
}

/* DELETE /v1/session: sign out. */
static void acct_session_del(struct acct_req *r, void *arg)
{
	struct acct_http *h = arg;
	const struct acct_who *w = acct_req_who(r);
	char *cookie = acct_session_cookie(&acct_http_cfg(h)->account, NULL);

	if (acct_session_delete(acct_http_db(h), w->sid_hash) < 0) {
		free(cookie);
		acct_reply_error(r, 503, "the session could not be ended (database); try again");
		return;
	}
	log_info("event=account_signout");
	acct_req_add_header(r, "Set-Cookie", cookie);
	free(cookie);
	acct_reply_json(r, 200, json_object());
}

void acct_session_register(struct acct_http *h)
{
	acct_http_set_session(h, acct_session_hook, h);
	acct_route(h, ACCT_GET, "/v1/session", ACCT_EXACT, acct_session_get, h);
	acct_route(h, ACCT_DELETE, "/v1/session", ACCT_EXACT, acct_session_del, h);
}
