/*
 * acct_login.c - sign-in: the body and the SSO assertion (pure, fuzzed), the failure
 * counts in the database, and the two routes. An IMAP LOGIN runs in a detached thread of
 * its own with the IMAP client of the migration service; the thread hands its finished
 * job back to the loop by writing the job's pointer into a pipe the loop reads.
 */
#include "acct_login.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "account.h"
#include "acct_session.h"
#include "config.h"
#include "db.h"
#include "migrate/imap.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define ACCT_LOGIN_TIMEOUT 10		/* seconds for the IMAP server to answer */
#define ACCT_LOGIN_MAX_THREADS 32

struct acct_login {
	struct acct_http *h;
	const struct pw_config *cfg;	/* borrowed */
	struct db *db;			/* borrowed: the loop's connection */
	/* [account] imap, parsed */
	bool imap_on;
	char *imap_host;
	char *imap_port;
	char *imap_addr;		/* [account] imap_address, or NULL: resolve imap_host */
	enum imap_tls imap_tls;
	SSL_CTX *ssl_ctx;
	bool sso_on;
	int pipe[2];
	struct event *done_ev;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned running;		/* threads not yet done (lock) */
};

/* One IMAP LOGIN in flight. */
struct acct_login_job {
	struct acct_login *l;
	struct acct_req *req;		/* NULL once the server stopped (abort) */
	char *address;
	struct mig_cred *pw;		/* wiped and freed by the thread */
	bool ok;
	enum imap_fail fail;
	char err[sizeof(((struct imap *)0)->err)];
};

/* ---- pure parts ----------------------------------------------------------------------- */

int acct_login_body_parse(const char *data, size_t len, char **address, struct mig_cred **pw,
			  const char **err)
{
	json_t *j, *a, *p;
	int rc = -1;

	*address = NULL;
	*pw = NULL;
	if (len > ACCT_LOGIN_MAX_BODY) {
		*err = "the request body is too large";
		return -1;
	}
	if ((j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(j)) {
		*err = "the body must be a JSON object {\"address\", \"password\"}";
		goto out;
	}
	a = json_object_get(j, "address");
	p = json_object_get(j, "password");
	if (!json_is_string(a) || json_string_length(a) == 0 ||
	    json_string_length(a) > ACCT_MAX_ADDRESS ||
	    strlen(json_string_value(a)) != json_string_length(a) ||
	    !addr_valid(json_string_value(a))) {
		*err = "address: your mail address is required";
		goto out;
	}
	if (!json_is_string(p) || json_string_length(p) == 0 ||
	    json_string_length(p) > ACCT_MAX_PASSWORD ||
	    strlen(json_string_value(p)) != json_string_length(p) ||
	    strpbrk(json_string_value(p), "\r\n") != NULL) {
		*err = "password: your mail password is required";
		goto out;
	}
	*address = xstrdup(json_string_value(a));
	*pw = mig_cred_from_string(json_string_value(p), json_string_length(p));
	rc = 0;
out:
	/* jansson's copy of the password is wiped before it is freed */
	if (j && json_is_object(j) && json_is_string(p = json_object_get(j, "password")))
		OPENSSL_cleanse((char *)json_string_value(p), json_string_length(p));
	json_decref(j);
	return rc;
}

int acct_sso_verify(const char *assertion, size_t len, const char *secret, int64_t now,
		    char **sub, const char **err)
{
	const char *dot;
	unsigned char mac[EVP_MAX_MD_SIZE], *sig = NULL, *payload = NULL;
	unsigned int maclen = 0;
	size_t siglen = 0, plen = 0;
	json_t *j = NULL, *s, *e;
	int rc = -1;

	*sub = NULL;
	*err = "the assertion is not valid";
	if (len == 0 || len > ACCT_SSO_MAX_LEN || memchr(assertion, '\0', len) != NULL ||
	    (dot = memchr(assertion, '.', len)) == NULL ||
	    memchr(dot + 1, '.', len - (size_t)(dot + 1 - assertion)) != NULL)
		return -1;
	sig = acct_b64url_decode(dot + 1, len - (size_t)(dot + 1 - assertion), ACCT_SSO_MAX_LEN,
				 &siglen);
	if (sig == NULL || siglen != 32)
		goto out;
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)assertion,
		 (size_t)(dot - assertion), mac, &maclen) == NULL || maclen != 32)
		fatalx("HMAC-SHA256 failed");
	/* constant time: the answer's timing says nothing about how much of the MAC matched */
	if (CRYPTO_memcmp(mac, sig, 32) != 0) {
		*err = "the assertion's signature is wrong";
		goto out;
	}
	payload = acct_b64url_decode(assertion, (size_t)(dot - assertion), ACCT_SSO_MAX_LEN, &plen);
	if (payload == NULL ||
	    (j = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(j))
		goto out;
	s = json_object_get(j, "sub");
	e = json_object_get(j, "exp");
	if (!json_is_string(s) || json_string_length(s) > ACCT_MAX_ADDRESS ||
	    strlen(json_string_value(s)) != json_string_length(s) ||
	    !addr_valid(json_string_value(s)) || !json_is_integer(e)) {
		*err = "the assertion needs sub (an address) and exp (unix seconds)";
		goto out;
	}
	if (json_integer_value(e) <= now) {
		*err = "the assertion has expired";
		goto out;
	}
	if (json_integer_value(e) > now + ACCT_SSO_MAX_AHEAD) {
		*err = "the assertion's exp is more than 300 seconds ahead";
		goto out;
	}
	*sub = xstrdup(json_string_value(s));
	rc = 0;
out:
	json_decref(j);
	free(payload);
	free(sig);
	return rc;
}

/* ---- failure counts ------------------------------------------------------------------- */

/* Seconds until who of kind drops below the limit (0: now). */
static int64_t acct_blocked_one(struct db *db, const struct account_conf *c, const char *kind,
				const char *who, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "SELECT at FROM acct_login_failures WHERE kind = ?1 "
					"AND who = ?2 AND at > ?3 ORDER BY at DESC LIMIT 1 OFFSET ?4");
	int64_t wait = 0;
	bool over = false;

	db_bind_text(st, 1, kind);
	db_bind_text(st, 2, who);
	db_bind_int(st, 3, now - c->login_window);
	db_bind_int(st, 4, (int64_t)c->login_failures - 1);
	/* the limit-th newest failure: once it leaves the window, fewer than limit remain */
	if (db_step_row(db, st)) {
		over = true;
		wait = db_col_int(st, 0) + c->login_window - now;
	}
	db_finalize(st);
	/* the failure is in the window (at > now - window): at least a second to wait */
	return over ? (wait > 0 ? wait : 1) : 0;
}

int64_t acct_login_blocked(struct db *db, const struct account_conf *c, const char *address,
			   const char *client, int64_t now)
{
	int64_t a = 0, b;
	char *lc;

	if (address) {
		lc = str_lower(xstrdup(address));
		a = acct_blocked_one(db, c, "address", lc, now);
		free(lc);
	}
	b = acct_blocked_one(db, c, "client", client, now);
	return a > b ? a : b;
}

static void acct_failure_add(struct db *db, const char *kind, const char *who, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "INSERT INTO acct_login_failures(kind, who, at) "
					"VALUES (?, ?, ?)");

	db_bind_text(st, 1, kind);
	db_bind_text(st, 2, who);
	db_bind_int(st, 3, now);
	db_step_done(db, st);
	db_finalize(st);
}

void acct_login_failed(struct db *db, const struct account_conf *c, const char *address,
		       const char *client, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM acct_login_failures WHERE at <= ?");

	/* what left the window counts no more */
	db_bind_int(st, 1, now - c->login_window);
	db_step_done(db, st);
	db_finalize(st);
	if (address) {
		char *lc = str_lower(xstrdup(address));

		acct_failure_add(db, "address", lc, now);
		free(lc);
	}
	acct_failure_add(db, "client", client, now);
}

/* A good sign-in forgets the address's failures (the client's stay). */
static void acct_login_succeeded(struct db *db, const char *address)
{
	struct db_stmt *st = db_prepare(db, "DELETE FROM acct_login_failures WHERE kind = "
					"'address' AND who = ?");
	char *lc = str_lower(xstrdup(address));

	db_bind_text(st, 1, lc);
	db_step_done(db, st);
	db_finalize(st);
	free(lc);
}

/* ---- answers -------------------------------------------------------------------------- */

/* 429 with Retry-After when over the limit; true when answered. */
static bool acct_login_refuse_blocked(struct acct_login *l, struct acct_req *r,
				      const char *address)
{
	int64_t wait = acct_login_blocked(l->db, &l->cfg->account, address, acct_req_client(r),
					  time(NULL));
	char buf[24];

	if (wait <= 0)
		return false;
	snprintf(buf, sizeof(buf), "%lld", (long long)wait);
	acct_req_add_header(r, "Retry-After", buf);
	log_info("event=account_signin result=blocked retry_after=%lld", (long long)wait);
	acct_reply_error_code(r, 429, "rate_limited",
			      "too many failed sign-ins: wait and try again later");
	return true;
}

/* The account exists: make the session and answer. */
static void acct_login_open(struct acct_login *l, struct acct_req *r, const char *address,
			    const char *method)
{
	struct account *a = account_find(l->db, address);
	char *sid = NULL, *csrf = NULL, *cookie;

	if (a == NULL) {
		log_info("event=account_signin method=%s result=no_account", method);
		acct_reply_error_code(r, 403, "no_account",
				      "this address has no account here; ask your provider");
		return;
	}
	account_free(a);
	if (acct_session_create(l->db, &l->cfg->account, address, method, time(NULL), &sid,
				&csrf) < 0) {
		acct_reply_error(r, 503, "sign-in is not possible right now (database); try again");
		return;
	}
	acct_login_succeeded(l->db, address);
	cookie = acct_session_cookie(&l->cfg->account, sid);
	acct_req_add_header(r, "Set-Cookie", cookie);
	log_info("event=account_signin method=%s result=ok", method);
	if (log_debug_enabled())
		log_debug("event=account_signin_address address=%s", address);
	acct_reply_json(r, 200, json_pack("{s:s, s:s, s:s}", "address", address, "csrf", csrf,
					  "language", l->cfg->guarantee.language));
	free(cookie);
	OPENSSL_cleanse(sid, strlen(sid));
	free(sid);
	free(csrf);
}

/* ---- IMAP LOGIN in a thread ----------------------------------------------------------- */

static void *acct_login_thread(void *arg)
{
	struct acct_login_job *job = arg;
	struct acct_login *l = job->l;
	struct imap_opts o = { .host = l->imap_host, .addr = l->imap_addr, .port = l->imap_port,
			       .tls = l->imap_tls,
			       .ssl_ctx = l->ssl_ctx, .timeout = ACCT_LOGIN_TIMEOUT,
			       .max_literal = 65536 };
	struct imap im;

	job->ok = imap_connect(&im, &o) &&
		  imap_login(&im, IMAP_AUTH_PASSWORD, job->address, job->pw);
	job->fail = im.fail;
	snprintf(job->err, sizeof(job->err), "%s", im.err);
	imap_close(&im);
	mig_cred_free(job->pw);
	job->pw = NULL;
	pthread_mutex_lock(&l->lock);
	/* a pointer is written whole: at most PIPE_BUF bytes are atomic */
	if (write(l->pipe[1], &job, sizeof(job)) != (ssize_t)sizeof(job))
		fatal("account sign-in: cannot hand the result back to the loop");
	l->running--;
	pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void acct_login_job_free(struct acct_login_job *job)
{
	mig_cred_free(job->pw);
	free(job->address);
	free(job);
}

static void acct_login_job_abort(struct acct_req *r, void *arg)
{
	struct acct_login_job *job = arg;

	job->req = NULL;
}

static void acct_login_finish(struct acct_login *l, struct acct_login_job *job)
{
	struct acct_req *r = job->req;

	if (r == NULL) {
		acct_login_job_free(job);
		return;
	}
	if (job->ok) {
		acct_login_open(l, r, job->address, "imap");
	} else if (job->fail == IMAP_F_AUTH || job->fail == IMAP_F_NO) {
		acct_login_failed(l->db, &l->cfg->account, job->address, acct_req_client(r),
				  time(NULL));
		log_info("event=account_signin method=imap result=wrong_password");
		acct_reply_error_code(r, 401, "wrong_password", "wrong address or password");
	} else if (job->fail == IMAP_F_TLS) {
		/* not the user's fault: no failure is counted against the address */
		log_warn("event=account_signin method=imap result=tls_error error=\"%s\"",
			 job->err);
		acct_reply_error(r, 502, "the mail server's certificate could not be verified, "
				 "so the password was not sent; tell your provider");
	} else {
		log_warn("event=account_signin method=imap result=imap_error error=\"%s\"",
			 job->err);
		acct_reply_error_code(r, 502, "imap_unavailable", "the mail server could not "
				      "check the password right now; try again later");
	}
	acct_login_job_free(job);
}

static void acct_login_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acct_login *l = arg;
	struct acct_login_job *job;

	while (read(fd, &job, sizeof(job)) == (ssize_t)sizeof(job))
		acct_login_finish(l, job);
}

/* POST /v1/session */
static void acct_login_password(struct acct_req *r, void *arg)
{
	struct acct_login *l = arg;
	struct acct_login_job *job;
	const char *body, *err;
	struct mig_cred *pw;
	char *address;
	pthread_t th;
	size_t len;

	if (!l->imap_on) {
		acct_reply_error_code(r, 404, "not_offered", "password sign-in is not offered here");
		return;
	}
	body = acct_req_body(r, &len);
	if (acct_login_body_parse(body, len, &address, &pw, &err) < 0) {
		acct_reply_error(r, len > ACCT_LOGIN_MAX_BODY ? 413 : 400, err);
		return;
	}
	if (acct_login_refuse_blocked(l, r, address)) {
		free(address);
		mig_cred_free(pw);
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->l = l;
	job->req = r;
	job->address = address;
	job->pw = pw;
	pthread_mutex_lock(&l->lock);
	if (l->running >= ACCT_LOGIN_MAX_THREADS ||
	    pthread_create(&th, NULL, acct_login_thread, job) != 0) {
		pthread_mutex_unlock(&l->lock);
		acct_login_job_free(job);
		acct_req_add_header(r, "Retry-After", "1");
		acct_reply_error_code(r, 503, "busy", "too many sign-ins at once; try again in a moment");
		return;
	}
	l->running++;
	pthread_detach(th);
	pthread_mutex_unlock(&l->lock);
	acct_req_on_abort(r, acct_login_job_abort, job);
}

/* POST /v1/session/sso */
static void acct_login_sso(struct acct_req *r, void *arg)
{
	struct acct_login *l = arg;
	json_t *j, *a;
	const char *err;
	char *sub;

	if (!l->sso_on) {
		acct_reply_error_code(r, 404, "not_offered", "single sign-on is not offered here");
		return;
	}
	/*
	 * No failure count here: an HMAC-SHA256 cannot be guessed, and every assertion comes
	 * from the webmail's few addresses, which a count would lock out for all its users.
	 */
	if ((j = acct_req_json(r, ACCT_SSO_MAX_LEN + 256)) == NULL)
		return;
	a = json_object_get(j, "assertion");
	if (!json_is_string(a) ||
	    acct_sso_verify(json_string_value(a), json_string_length(a),
			    l->cfg->account.sso_secret, time(NULL), &sub, &err) < 0) {
		log_info("event=account_signin method=sso result=refused");
		if (!json_is_string(a))
			err = "assertion: required";
		json_decref(j);
		acct_reply_error_code(r, 401, "sso_refused", err);
		return;
	}
	json_decref(j);
	acct_login_open(l, r, sub, "sso");
	free(sub);
}

/* ---- set-up --------------------------------------------------------------------------- */

static bool acct_addr_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static bool acct_addr_ip(const char *s)
{
	struct in6_addr a6;

	return inet_pton(AF_INET, s, &a6) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

/* [account] imap: imaps://HOST[:PORT] or imap://LOOPBACK[:PORT]; [account] imap_address
 * is checked here too, as it decides where the password goes. */
static int acct_login_parse_imap(struct acct_login *l, const char *url, char **err)
{
	bool tls = str_has_prefix_ci(url, "imaps://");
	const char *hp = url + (tls ? 8 : 7), *colon;
	char *host;

	if (!tls && !str_has_prefix_ci(url, "imap://"))
		goto bad;
	if (*hp == '[') {
		const char *end = strchr(hp, ']');

		if (end == NULL)
			goto bad;
		host = xstrndup(hp + 1, (size_t)(end - hp - 1));
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && end[1] != ':') {
			free(host);
			goto bad;
		}
	} else {
		colon = strchr(hp, ':');
		host = colon ? xstrndup(hp, (size_t)(colon - hp)) : xstrdup(hp);
	}
	if (*host == '\0' || strchr(host, '/') || (colon && strspn(colon + 1, "0123456789") !=
						   strlen(colon + 1))) {
		free(host);
		goto bad;
	}
	if (!tls && !acct_addr_loopback(host)) {
		free(host);
		*err = xasprintf("[account] imap %s: without TLS only to a loopback address; use "
				 "imaps://", url);
		return -1;
	}
	if (*l->cfg->account.imap_address &&
	    !(tls ? acct_addr_ip(l->cfg->account.imap_address) :
	      acct_addr_loopback(l->cfg->account.imap_address))) {
		free(host);
		*err = xasprintf("[account] imap_address %s: use an IP address (a loopback one "
				 "with imap://)", l->cfg->account.imap_address);
		return -1;
	}
	l->imap_host = host;
	l->imap_port = xstrdup(colon && colon[1] ? colon + 1 : (tls ? "993" : "143"));
	l->imap_addr = *l->cfg->account.imap_address ? xstrdup(l->cfg->account.imap_address) :
								NULL;
	l->imap_tls = tls ? IMAP_TLS_IMPLICIT : IMAP_TLS_NONE;
	l->imap_on = true;
	return 0;
bad:
	*err = xasprintf("[account] imap %s: use imaps://HOST[:PORT] or imap://ADDRESS[:PORT] "
			 "on loopback", url);
	return -1;
}

struct acct_login *acct_login_register(struct acct_http *h, char **err)
{
	const struct pw_config *cfg = acct_http_cfg(h);
	struct acct_login *l = xcalloc(1, sizeof(*l));

	l->h = h;
	l->cfg = cfg;
	l->db = acct_http_db(h);
	l->pipe[0] = l->pipe[1] = -1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->idle, NULL);
	if (*cfg->account.imap && acct_login_parse_imap(l, cfg->account.imap, err) < 0)
		goto fail;
	if (l->imap_on && (l->ssl_ctx = imap_ssl_ctx_new(*cfg->account.ca_file ?
							 cfg->account.ca_file : NULL,
							 err)) == NULL)
		goto fail;
	if (*cfg->account.sso_secret && strlen(cfg->account.sso_secret) < ACCT_SSO_MIN_SECRET) {
		*err = xasprintf("[account] sso_secret: use at least %d characters",
				 ACCT_SSO_MIN_SECRET);
		goto fail;
	}
	l->sso_on = *cfg->account.sso_secret != '\0';
	if (pipe2(l->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("pipe2");
	l->done_ev = event_new(acct_http_base(h), l->pipe[0], EV_READ | EV_PERSIST,
			       acct_login_done_cb, l);
	event_add(l->done_ev, NULL);
	acct_route(h, ACCT_POST, "/v1/session", ACCT_EXACT | ACCT_PUBLIC | ACCT_NO_CSRF,
		   acct_login_password, l);
	acct_route(h, ACCT_POST, "/v1/session/sso", ACCT_EXACT | ACCT_PUBLIC | ACCT_NO_CSRF,
		   acct_login_sso, l);
	if (!l->imap_on && !l->sso_on)
		log_warn("event=account_no_signin msg=\"set [account] imap or sso_secret: nobody "
			 "can sign in\"");
	return l;
fail:
	acct_login_free(l);
	return NULL;
}

void acct_login_free(struct acct_login *l)
{
	struct acct_login_job *job;

	if (l == NULL)
		return;
	/* threads still write their result into the pipe: wait for them first */
	pthread_mutex_lock(&l->lock);
	while (l->running > 0)
		pthread_cond_wait(&l->idle, &l->lock);
	pthread_mutex_unlock(&l->lock);
	if (l->pipe[0] >= 0) {
		while (read(l->pipe[0], &job, sizeof(job)) == (ssize_t)sizeof(job))
			acct_login_job_free(job);
		close(l->pipe[0]);
		close(l->pipe[1]);
	}
	if (l->done_ev)
		event_free(l->done_ev);
	SSL_CTX_free(l->ssl_ctx);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->idle);
	free(l->imap_host);
	free(l->imap_port);
	free(l->imap_addr);
	free(l);
}
