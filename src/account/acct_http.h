/*
 * acct_http.h - the account listener ([account] listen): the users' settings page (static
 * files from [account] www_dir at /) and the JSON account API under /v1/.
 *
 * Handlers are registered by method and path prefix (acct_route). Each request becomes a
 * struct acct_req that the router owns; a handler answers it with acct_reply_json or
 * acct_reply_error, at once or later from the event loop (after a search or a thread's
 * work), never blocking the loop. Until it is answered the request stays valid; when the
 * server stops first, the handler's abort callback (acct_req_on_abort) runs and the request
 * is freed without an answer.
 *
 * Before a handler runs, the router has: bounded the headers and the body
 * (ACCT_MAX_BODY), refused a body not sent as application/json (415), found the session from the pw_session cookie (401 without one unless
 * the route is ACCT_PUBLIC), and checked X-CSRF-Token on every method but GET and HEAD
 * (403 unless the route is ACCT_NO_CSRF). Every answer is JSON with Cache-Control:
 * no-store; errors are {"error": "what to do"}.
 */
#ifndef PW_ACCT_HTTP_H
#define PW_ACCT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;
struct db;
struct pw_config;
struct acct_http;
struct acct_req;

/* Largest request body accepted by the listener (413 beyond). */
#define ACCT_MAX_BODY (64 * 1024)
/* Largest header block. */
#define ACCT_MAX_HEADERS 8192
/* Largest static file served. */
#define ACCT_MAX_FILE (4 * 1024 * 1024)

/* Methods, combinable in acct_route's mask. */
enum acct_method {
	ACCT_GET = 1,
	ACCT_POST = 2,
	ACCT_PUT = 4,
	ACCT_DELETE = 8,
	ACCT_HEAD = 16,
};

/* Route flags. */
#define ACCT_PUBLIC	1u	/* no session needed (sign-in, certificates, openapi) */
#define ACCT_NO_CSRF	2u	/* no X-CSRF-Token needed (the two sign-ins) */
#define ACCT_EXACT	4u	/* the path must equal the prefix, not merely start with it */

/* A handler: answer req (now or later) with acct_reply_json / acct_reply_error. */
typedef void (*acct_handler_fn)(struct acct_req *req, void *arg);
/* Called when the server stops before req was answered: cancel the pending work. */
typedef void (*acct_abort_fn)(struct acct_req *req, void *arg);

/* The signed-in user of a request, as the session layer reports it. */
struct acct_who {
	char *address;		/* the address signed in with (primary or alias) */
	char *csrf;		/* the session's CSRF token */
	char *sid_hash;		/* hex SHA-256 of the session id (what the database keeps) */
	int64_t account_id;	/* 0: no account in postwarden's table (yet) */
	char *language;		/* "en" or "de" */
};
void acct_who_clear(struct acct_who *w);

/*
 * The session lookup the router calls for each request: from the Cookie header (may be
 * NULL), fill *who and return true for a valid session (touching its idle time), false
 * when there is none. Set by acct_http_set_session (acct_session.c does this).
 */
typedef bool (*acct_session_fn)(void *arg, const char *cookie_header, struct acct_who *who);

/*
 * Start the listener on [account] listen. NULL with *err NULL when it is not configured;
 * NULL with *err when it cannot start (a bad key, a port in use). db is the loop's
 * connection (borrowed).
 */
struct acct_http *acct_http_start(struct event_base *base, const struct pw_config *cfg,
				  struct db *db, char **err);
/* Stop: pending requests are aborted (their abort callbacks run), the listener closes. */
void acct_http_stop(struct acct_http *h);

/*
 * Register fn for requests whose method is in methods (a mask of enum acct_method) and
 * whose path starts with prefix (a string literal or otherwise kept alive; with ACCT_EXACT
 * it must equal it). The longest matching prefix wins; a path that matches a prefix but
 * not its methods is answered 405. Paths outside /v1/ are static files.
 */
void acct_route(struct acct_http *h, unsigned methods, const char *prefix, unsigned flags,
		acct_handler_fn fn, void *arg);
void acct_http_set_session(struct acct_http *h, acct_session_fn fn, void *arg);

struct event_base *acct_http_base(const struct acct_http *h);
struct db *acct_http_db(const struct acct_http *h);
const struct pw_config *acct_http_cfg(const struct acct_http *h);

/* ---- the request --------------------------------------------------------------------- */

enum acct_method acct_req_method(const struct acct_req *r);
const char *acct_req_path(const struct acct_req *r);	/* decoded path, e.g. /v1/held/X/release */
/* The path after the route's prefix ("" when equal; "/X/release" above for "/v1/held"). */
const char *acct_req_rest(const struct acct_req *r);
const char *acct_req_query(const struct acct_req *r);	/* raw query string or NULL */
/* A query parameter, percent-decoded (caller frees), or NULL. */
char *acct_req_param(const struct acct_req *r, const char *name);
const char *acct_req_header(const struct acct_req *r, const char *name);
const char *acct_req_client(const struct acct_req *r);	/* the peer's address */
/* The request body (not NUL-terminated; bounded by ACCT_MAX_BODY). */
const char *acct_req_body(const struct acct_req *r, size_t *len);
/*
 * The body parsed as a JSON object (new reference, caller decrefs). An empty body gives an
 * empty object. NULL after answering 400 (not JSON, not an object) or 413 (over max, which
 * is at most ACCT_MAX_BODY; 0 means ACCT_MAX_BODY): the handler just returns.
 */
json_t *acct_req_json(struct acct_req *r, size_t max);
/* The signed-in user, or NULL on an ACCT_PUBLIC route without a session. */
const struct acct_who *acct_req_who(const struct acct_req *r);
struct acct_http *acct_req_server(const struct acct_req *r);
void acct_req_on_abort(struct acct_req *r, acct_abort_fn fn, void *arg);
/* Add a header to the answer (before replying): Set-Cookie, Retry-After... */
void acct_req_add_header(struct acct_req *r, const char *name, const char *value);

/*
 * Answer with status and the JSON value (reference stolen; NULL sends {}), then free the
 * request: r is invalid afterwards. Works from any callback on the loop.
 */
void acct_reply_json(struct acct_req *r, int status, json_t *json);
/*
 * Answer {"error": msg, "code": CODE}: msg is English for people, CODE a stable word a page
 * translates (docs/account.md lists them). acct_reply_error takes the code that goes with
 * the status (acct_error_code); acct_reply_error_code names a more precise one.
 */
void acct_reply_error(struct acct_req *r, int status, const char *msg);
void acct_reply_error_code(struct acct_req *r, int status, const char *code, const char *msg);
/* The code of an error answer that names none: one per status ("not_found" for 404...). */
const char *acct_error_code(int status);

/* ---- pure helpers (unit tests, fuzzing) ----------------------------------------------- */

/*
 * Find cookie name's value in a Cookie header ("a=1; pw_session=xyz"): a copy (caller
 * frees) or NULL when absent, malformed or longer than 512 bytes.
 */
char *acct_cookie_get(const char *header, const char *name);
/* Is a URL path safe to map into www_dir (no "..", no NUL, no backslash, bounded)? */
bool acct_static_path_ok(const char *path);

#endif
