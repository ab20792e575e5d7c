/*
 * http.h - HTTP on the event loop: a libcurl multi client and a small evhttp server.
 *
 * Client: every request has its own timeout and a hard limit on the response body; it never
 * follows redirects unless asked, and then only https -> https. Unless allow_private is set
 * (tests do), it refuses to connect to loopback, private, link-local and other non-public
 * addresses: the check runs on the address actually connected to (CURLOPT_OPENSOCKETFUNCTION),
 * so a name that resolves to a private address is caught too (no SSRF via DNS).
 */
#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http_client;

struct http_client_opts {
	bool allow_private;	/* permit non-public addresses (tests, internal keyservers) */
	const char *ca_file;	/* CA bundle (CURLOPT_CAINFO); NULL: the system default */
	const char *user_agent;
};

/*
 * <event2/http.h> defines HTTP_OK as the status code 200. So that "result == HTTP_OK" means
 * the same whichever header comes first (and whichever definition wins), the enum value is
 * 200 as well; a libevent macro seen before this point is dropped so the enum can use the name.
 */
#ifdef HTTP_OK
#undef HTTP_OK
#endif

enum http_result {
	HTTP_OK = 200,		/* a response arrived (any status) */
	HTTP_ERR_TIMEOUT,
	HTTP_ERR_TOO_BIG,	/* body over the limit */
	HTTP_ERR_BLOCKED,	/* non-public address refused, or a redirect off HTTPS */
	HTTP_ERR_TLS,		/* certificate or handshake failure */
	HTTP_ERR_NO_HOST,	/* the host name does not resolve */
	HTTP_ERR_CONNECT,	/* TCP failure, or the connection broke */
	HTTP_ERR_OTHER,
};

struct http_response {
	enum http_result result;
	long status;		/* HTTP status, 0 when no response */
	char *body;		/* NUL-terminated for convenience; len excludes the NUL */
	size_t len;
	char *content_type;	/* or NULL */
	long max_age;		/* Cache-Control max-age in seconds, -1 when absent */
	long retry_after;	/* Retry-After in seconds (either form), -1 when absent */
	char *location;		/* a redirect's target (Location, resolved), or NULL */
	char *error;		/* human-readable reason when result != HTTP_OK */
	double elapsed;		/* seconds */
};

/* Used when a request passes NULL options or leaves a field 0. */
#define HTTP_DEFAULT_TIMEOUT_MS	10000
#define HTTP_DEFAULT_MAX_BODY	(1024 * 1024)
#define HTTP_MAX_REDIRECTS	3
#define HTTP_MAX_HEADER_BYTES	(64 * 1024)	/* all response header lines together */

struct http_request_opts {
	long timeout_ms;
	size_t max_body;
	bool follow_https_redirects;	/* at most 3, https -> https only */
	long connect_timeout_ms;	/* 0: same as timeout_ms */
	bool decode_gzip;		/* ask for gzip and hand back the decoded body */
	const char *connect_to;		/* "HOST:PORT:ADDR:PORT" (CURLOPT_CONNECT_TO), or NULL */
};

typedef void (*http_cb)(struct http_response *resp, void *arg);

struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts);
void http_client_free(struct http_client *c);
/*
 * Start GET url; cb runs later on the loop with a response the callee owns (http_response_free).
 * Returns a handle for http_cancel, or -1 when the request could not start (cb is not called).
 */
int http_get(struct http_client *c, const char *url, const struct http_request_opts *opts,
	     http_cb cb, void *arg);
/*
 * Start POST url with body (len bytes, copied) as content_type; the response as for
 * http_get. Redirects are never followed for a POST, whatever opts say.
 */
int http_post(struct http_client *c, const char *url, const char *content_type,
	      const void *body, size_t len, const struct http_request_opts *opts,
	      http_cb cb, void *arg);
/*
 * Start a request with any method (PROPFIND, REPORT, PUT, DELETE...), the extra header lines
 * in headers (NULL-terminated; each "Name: value", no CR/LF; wiped when the request is freed,
 * so they may carry Authorization) and body (len bytes, copied; NULL for none). Redirects are
 * never followed when there is a body; response->location says where one points.
 */
int http_request(struct http_client *c, const char *method, const char *url,
		 const char *const *headers, const void *body, size_t len,
		 const struct http_request_opts *opts, http_cb cb, void *arg);
/* Cancel a request; its callback is never called. */
void http_cancel(struct http_client *c, int handle);
void http_response_free(struct http_response *resp);
/* Short fixed name of a result ("ok", "timeout", ...) for logs. */
const char *http_result_str(enum http_result r);
/* Percent-encode s for a URL path segment or query value (caller frees). */
char *http_urlencode(const char *s);

/* ---- server side: query strings for the API --------------------------------------------- */

#define HTTP_MAX_QUERY 2048

/*
 * Find parameter name in a query string ("a=1&b=x%40y"), percent-decoded into a new string
 * (caller frees). NULL when absent, malformed, longer than HTTP_MAX_QUERY, or containing NUL.
 */
char *http_query_param(const char *query, const char *name);

#endif
