/*
 * acct_http.c - the account listener: an evhttp server (HTTPS with [account] tls_cert, or
 * plain HTTP on loopback), the route table, the request object, session and CSRF checks
 * before a handler runs, JSON answers, and the settings page's static files.
 *
 * A request answered later stays in the server's pending list; libevent keeps an
 * evhttp_request whose connection closed until it is answered (the answer then only frees
 * it), so a late answer is always safe. At most max_connections are open at once: at the
 * limit the listener stops accepting until a connection ends (counted as ks_api does).
 */
#include "acct_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "strutil.h"
#include "tls.h"
#include "xmalloc.h"

#define ACCT_SWEEP_MS 100
#define ACCT_TIMEOUT_S 60
#define ACCT_MAX_PATH 1024
#define ACCT_MAX_COOKIE 512
#define ACCT_DEFAULT_WWW PW_DEFAULT_WWW	/* make install's place for www/ */

struct acct_route {
	unsigned methods;
	const char *prefix;	/* borrowed */
	size_t plen;
	unsigned flags;
	acct_handler_fn fn;
	void *arg;
};

struct acct_http {
	struct event_base *base;
	const struct pw_config *cfg;	/* borrowed */
	struct db *db;			/* borrowed */
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	SSL_CTX *ssl_ctx;
	int www_fd;			/* -1: no static files */
	struct acct_route *routes;
	size_t nroutes;
	acct_session_fn session_fn;
	void *session_arg;
	struct acct_req *pending;
	struct bufferevent **bevs;	/* the connections' bufferevents, one reference each */
	size_t nbevs;
	bool paused;
	struct event *sweep;
};

struct acct_req {
	struct acct_http *h;
	struct evhttp_request *ev;
	enum acct_method method;
	char *path;			/* decoded */
	const char *rest;		/* into path */
	const char *query;		/* borrowed from ev's URI */
	char *body;
	size_t body_len;
	char client[64];
	bool has_who;
	struct acct_who who;
	acct_abort_fn abort_fn;
	void *abort_arg;
	int64_t start_ms;
	struct acct_req *prev, *next;
};

void acct_who_clear(struct acct_who *w)
{
	free(w->address);
	if (w->csrf) {
		OPENSSL_cleanse(w->csrf, strlen(w->csrf));
		free(w->csrf);
	}
	free(w->sid_hash);
	free(w->language);
	memset(w, 0, sizeof(*w));
}

/* ---- pure helpers --------------------------------------------------------------------- */

char *acct_cookie_get(const char *header, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = header;

	if (header == NULL || strlen(header) > ACCT_MAX_HEADERS)
		return NULL;
	while (*p) {
		const char *end, *val;

		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = strchr(p, ';');
		if (end == NULL)
			end = p + strlen(p);
		if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			size_t vlen;

			val = p + nlen + 1;
			vlen = (size_t)(end - val);
			while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
				vlen--;
			if (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"') {
				val++;
				vlen -= 2;
			}
			if (vlen == 0 || vlen > ACCT_MAX_COOKIE)
				return NULL;
			for (size_t i = 0; i < vlen; i++)
				if ((unsigned char)val[i] <= ' ' || val[i] == '"' || val[i] == ',' ||
				    val[i] == '\\' || (unsigned char)val[i] >= 0x7f)
					return NULL;
			return xstrndup(val, vlen);
		}
		p = end;
	}
	return NULL;
}

bool acct_static_path_ok(const char *path)
{
	size_t n = strlen(path);

	if (n == 0 || n > ACCT_MAX_PATH || path[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
		/* no "..", no hidden files, no empty segments */
		if (c == '/' && (path[i + 1] == '.' || path[i + 1] == '/'))
			return false;
	}
	return true;
}

/* ---- accessors ------------------------------------------------------------------------ */

struct event_base *acct_http_base(const struct acct_http *h) { return h->base; }
struct db *acct_http_db(const struct acct_http *h) { return h->db; }
const struct pw_config *acct_http_cfg(const struct acct_http *h) { return h->cfg; }
enum acct_method acct_req_method(const struct acct_req *r) { return r->method; }
const char *acct_req_path(const struct acct_req *r) { return r->path; }
const char *acct_req_rest(const struct acct_req *r) { return r->rest; }
const char *acct_req_query(const struct acct_req *r) { return r->query; }
const char *acct_req_client(const struct acct_req *r) { return r->client; }
struct acct_http *acct_req_server(const struct acct_req *r) { return r->h; }

const struct acct_who *acct_req_who(const struct acct_req *r)
{
	return r->has_who ? &r->who : NULL;
}

char *acct_req_param(const struct acct_req *r, const char *name)
{
	return r->query ? http_query_param(r->query, name) : NULL;
}

const char *acct_req_header(const struct acct_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *acct_req_body(const struct acct_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : "";
}

void acct_req_on_abort(struct acct_req *r, acct_abort_fn fn, void *arg)
{
	r->abort_fn = fn;
	r->abort_arg = arg;
}

void acct_req_add_header(struct acct_req *r, const char *name, const char *value)
{
	evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

/* ---- answers -------------------------------------------------------------------------- */

static void acct_req_free(struct acct_req *r)
{
	struct acct_http *h = r->h;

	if (r->prev)
		r->prev->next = r->next;
	else if (h->pending == r)
		h->pending = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->body) {
		/* a sign-in body held a password */
		OPENSSL_cleanse(r->body, r->body_len);
		free(r->body);
	}
	acct_who_clear(&r->who);
	free(r->path);
	free(r);
}

/* Headers every answer carries. */
static void acct_common_headers(struct evhttp_request *ev)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(ev);

	evhttp_add_header(hd, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hd, "Referrer-Policy", "no-referrer");
}

static const char *acct_method_name(enum acct_method m)
{
	switch (m) {
	case ACCT_GET: return "GET";
	case ACCT_POST: return "POST";
	case ACCT_PUT: return "PUT";
	case ACCT_DELETE: return "DELETE";
	case ACCT_HEAD: return "HEAD";
	}
	return "-";
}

static void acct_log(const struct acct_req *r, int status)
{
	log_info("event=account_request method=%s path=%s status=%d elapsed_ms=%lld",
		 acct_method_name(r->method), r->path ? r->path : "-", status,
		 (long long)(monotonic_ms() - r->start_ms));
}

/*
 * An error answer made elsewhere (the migration jobs' bodies) carries only "error": give it
 * the status's code, so that every error of this API has one.
 */
static void acct_error_add_code(int status, json_t *json)
{
	if (status < 400 || !json_is_object(json) || json_object_get(json, "code") != NULL ||
	    !json_is_string(json_object_get(json, "error")))
		return;
	if (json_object_set_new(json, "code", json_string(acct_error_code(status))) < 0)
		fatalx("json_object_set_new: out of memory");
}

void acct_reply_json(struct acct_req *r, int status, json_t *json)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(r->ev);
	struct evbuffer *b = evhttp_request_get_output_buffer(r->ev);
	char *s;

	acct_error_add_code(status, json);
	s = json_dumps(json ? json : json_object(), JSON_COMPACT);

	if (s == NULL)
		fatalx("json_dumps: out of memory");
	evhttp_add_header(hd, "Content-Type", "application/json");
	evhttp_add_header(hd, "Cache-Control", "no-store");
	acct_common_headers(r->ev);
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	evhttp_send_reply(r->ev, status, NULL, NULL);
	acct_log(r, status);
	free(s);
	json_decref(json);
	acct_req_free(r);
}

const char *acct_error_code(int status)
{
	switch (status) {
	case 400: return "bad_request";
	case 401: return "not_signed_in";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 413: return "too_large";
	case 415: return "json_required";
	case 429: return "rate_limited";
	case 502: return "upstream_failed";
	case 503: return "unavailable";
	default: return status >= 500 ? "server_error" : "bad_request";
	}
}

void acct_reply_error_code(struct acct_req *r, int status, const char *code, const char *msg)
{
	json_t *j = json_pack("{s:s, s:s}", "error", msg, "code", code);

	if (j == NULL)
		fatalx("json_pack: out of memory");
	acct_reply_json(r, status, j);
}

void acct_reply_error(struct acct_req *r, int status, const char *msg)
{
	acct_reply_error_code(r, status, acct_error_code(status), msg);
}

json_t *acct_req_json(struct acct_req *r, size_t max)
{
	json_error_t jerr;
	json_t *j;

	if (max == 0 || max > ACCT_MAX_BODY)
		max = ACCT_MAX_BODY;
	if (r->body_len > max) {
		acct_reply_error(r, 413, "the request body is too large");
		return NULL;
	}
	if (r->body_len == 0)
		return json_object();
	j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		acct_reply_error(r, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* ---- static files --------------------------------------------------------------------- */

static const char *acct_content_type(const char *path)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
		{ ".txt", "text/plain; charset=utf-8" },
		{ ".woff2", "font/woff2" },
	};
	const char *dot = strrchr(path, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

static void acct_static_error(struct evhttp_request *ev, int status, const char *text)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(ev);

	evhttp_add_header(hd, "Content-Type", "text/plain; charset=utf-8");
	acct_common_headers(ev);
	evbuffer_add(evhttp_request_get_output_buffer(ev), text, strlen(text));
	evhttp_send_reply(ev, status, NULL, NULL);
}

/* GET or HEAD of a file below www_dir; returns the status sent. */
static int acct_static(struct acct_http *h, struct evhttp_request *ev, const char *path,
		       bool head)
{
	struct evkeyvalq *hd = evhttp_request_get_output_headers(ev);
	char *file;
	struct stat st;
	int fd;

	if (h->www_fd < 0 || !acct_static_path_ok(path)) {
		acct_static_error(ev, 404, "not found\n");
		return 404;
	}
	file = path[strlen(path) - 1] == '/' ? xasprintf("%sindex.html", path + 1)
					     : xstrdup(path + 1);
	fd = openat(h->www_fd, *file ? file : "index.html", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ACCT_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		free(file);
		acct_static_error(ev, 404, "not found\n");
		return 404;
	}
	evhttp_add_header(hd, "Content-Type", acct_content_type(*file ? file : "index.html"));
	evhttp_add_header(hd, "Cache-Control", "no-cache");
	/* the page's own files only: no inline script, nothing fetched from elsewhere */
	evhttp_add_header(hd, "Content-Security-Policy",
			  "default-src 'self'; img-src 'self' data:; object-src 'none'; "
			  "base-uri 'none'");
	acct_common_headers(ev);
	if (head || st.st_size == 0)
		close(fd);
	else
		evbuffer_add_file(evhttp_request_get_output_buffer(ev), fd, 0, st.st_size);
	free(file);
	evhttp_send_reply(ev, 200, NULL, NULL);
	return 200;
}

/* ---- routing -------------------------------------------------------------------------- */

void acct_route(struct acct_http *h, unsigned methods, const char *prefix, unsigned flags,
		acct_handler_fn fn, void *arg)
{
	if (h == NULL)
		return;
	h->routes = xreallocarray(h->routes, h->nroutes + 1, sizeof(*h->routes));
	h->routes[h->nroutes++] = (struct acct_route){ methods, prefix, strlen(prefix), flags,
						       fn, arg };
}

void acct_http_set_session(struct acct_http *h, acct_session_fn fn, void *arg)
{
	if (h == NULL)
		return;
	h->session_fn = fn;
	h->session_arg = arg;
}

/* Does path fall under route rt (prefix on a segment boundary, or exactly)? */
static bool acct_route_matches(const struct acct_route *rt, const char *path)
{
	if (strncmp(path, rt->prefix, rt->plen) != 0)
		return false;
	if (rt->flags & ACCT_EXACT)
		return path[rt->plen] == '\0';
	return path[rt->plen] == '\0' || path[rt->plen] == '/' ||
	       (rt->plen > 0 && rt->prefix[rt->plen - 1] == '/');
}

/* The route for path: the longest prefix whose methods include m, else any match. */
static const struct acct_route *acct_route_find(const struct acct_http *h, const char *path,
						enum acct_method m, bool *method_ok)
{
	const struct acct_route *best = NULL, *any = NULL;

	for (size_t i = 0; i < h->nroutes; i++) {
		const struct acct_route *rt = &h->routes[i];

		if (!acct_route_matches(rt, path))
			continue;
		if ((rt->methods & (unsigned)m) && (best == NULL || rt->plen > best->plen))
			best = rt;
		if (any == NULL || rt->plen > any->plen)
			any = rt;
	}
	*method_ok = best != NULL;
	return best ? best : any;
}

static enum acct_method acct_method_of(struct evhttp_request *ev)
{
	switch (evhttp_request_get_command(ev)) {
	case EVHTTP_REQ_GET: return ACCT_GET;
	case EVHTTP_REQ_HEAD: return ACCT_HEAD;
	case EVHTTP_REQ_POST: return ACCT_POST;
	case EVHTTP_REQ_PUT: return ACCT_PUT;
	case EVHTTP_REQ_DELETE: return ACCT_DELETE;
	default: return 0;
	}
}

static bool acct_host_loopback(const char *host);

/*
 * The client's address: the peer's, or, when the peer is on loopback (a TLS proxy on the
 * same machine, as docs/account.md advises), the last X-Forwarded-For entry: the address
 * the proxy itself saw. Only a local process could forge it.
 */
static void acct_client_addr(struct evhttp_request *ev, char *out, size_t outlen)
{
	struct evhttp_connection *c = evhttp_request_get_connection(ev);
	const char *xff = evhttp_find_header(evhttp_request_get_input_headers(ev),
					     "X-Forwarded-For");
	char *addr = NULL;
	ev_uint16_t port = 0;

	snprintf(out, outlen, "-");
	if (c) {
		evhttp_connection_get_peer(c, &addr, &port);
		if (addr)
			snprintf(out, outlen, "%s", addr);
	}
	if (addr && acct_host_loopback(addr) && xff && strlen(xff) < 1024) {
		const char *last = strrchr(xff, ',');
		char ip[64];
		unsigned char tmp[sizeof(struct in6_addr)];

		last = last ? last + 1 : xff;
		while (*last == ' ' || *last == '\t')
			last++;
		size_t n = strcspn(last, " \t");

		if (n < sizeof(ip)) {
			memcpy(ip, last, n);
			ip[n] = '\0';
			if (inet_pton(AF_INET, ip, tmp) == 1 || inet_pton(AF_INET6, ip, tmp) == 1)
				snprintf(out, outlen, "%s", ip);
		}
	}
}

/* Session and CSRF: true when the handler may run; false after answering. */
static bool acct_req_admit(struct acct_req *r, const struct acct_route *rt)
{
	struct acct_http *h = r->h;
	const char *cookie = acct_req_header(r, "Cookie");

	if (h->session_fn)
		r->has_who = h->session_fn(h->session_arg, cookie, &r->who);
	if (!r->has_who && !(rt->flags & ACCT_PUBLIC)) {
		acct_reply_error_code(r, 401, "not_signed_in", "sign in first (POST /v1/session)");
		return false;
	}
	if (r->method != ACCT_GET && r->method != ACCT_HEAD && !(rt->flags & ACCT_NO_CSRF)) {
		const char *tok = acct_req_header(r, "X-CSRF-Token");

		/* full-length constant-time compare: the time says nothing about the token */
		if (!r->has_who || tok == NULL || r->who.csrf == NULL ||
		    strlen(tok) != strlen(r->who.csrf) ||
		    CRYPTO_memcmp(tok, r->who.csrf, strlen(tok)) != 0) {
			acct_reply_error_code(r, 403, "csrf", "the X-CSRF-Token header must "
					      "carry the csrf value of the sign-in answer");
			return false;
		}
	}
	return true;
}

/*
 * A body must be declared JSON: a cross-site HTML form can send text/plain or form data
 * without asking, never application/json (that needs a CORS preflight nobody answers).
 * This keeps other sites from signing a browser in to an account of theirs. false after
 * answering 415.
 */
static bool acct_req_json_typed(struct acct_req *r)
{
	const char *ct = acct_req_header(r, "Content-Type");
	size_t n = strlen("application/json");

	if (r->body_len == 0)
		return true;
	if (ct && strncasecmp(ct, "application/json", n) == 0 && (ct[n] == '\0' || ct[n] == ';'))
		return true;
	acct_reply_error(r, 415, "send the body as Content-Type: application/json");
	return false;
}

static struct acct_req *acct_req_new(struct acct_http *h, struct evhttp_request *ev,
				     enum acct_method m, char *path, const char *query)
{
	struct acct_req *r = xcalloc(1, sizeof(*r));
	struct evbuffer *in = evhttp_request_get_input_buffer(ev);

	r->h = h;
	r->ev = ev;
	r->method = m;
	r->path = path;
	r->rest = path;
	r->query = query;
	r->start_ms = monotonic_ms();
	acct_client_addr(ev, r->client, sizeof(r->client));
	r->body_len = evbuffer_get_length(in);
	if (r->body_len > 0) {
		r->body = xmalloc(r->body_len + 1);
		evbuffer_remove(in, r->body, r->body_len);
		r->body[r->body_len] = '\0';
	}
	r->next = h->pending;
	if (h->pending)
		h->pending->prev = r;
	h->pending = r;
	return r;
}

static void acct_handle(struct evhttp_request *ev, void *arg)
{
	struct acct_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	enum acct_method m = acct_method_of(ev);
	const struct acct_route *rt;
	struct acct_req *r;
	size_t plen = 0;
	bool method_ok;
	char *path;

	if (raw == NULL || *raw == '\0')
		raw = "/";
	path = strlen(raw) <= ACCT_MAX_PATH ? evhttp_uridecode(raw, 0, &plen) : NULL;
	if (path == NULL || strlen(path) != plen || m == 0) {
		free(path);
		acct_static_error(ev, 400, "bad request\n");
		return;
	}
	if (strncmp(path, "/v1/", 4) != 0 && strcmp(path, "/v1") != 0) {
		int st = (m == ACCT_GET || m == ACCT_HEAD) ? acct_static(h, ev, path, m == ACCT_HEAD)
							    : (acct_static_error(ev, 405,
								"method not allowed\n"), 405);

		log_debug("event=account_static path=%s status=%d", path, st);
		free(path);
		return;
	}
	r = acct_req_new(h, ev, m, path, query);
	rt = acct_route_find(h, path, m == ACCT_HEAD ? ACCT_GET : m, &method_ok);
	if (rt == NULL) {
		acct_reply_error(r, 404, "no such endpoint");
		return;
	}
	if (!method_ok) {
		acct_reply_error(r, 405, "this method is not allowed here");
		return;
	}
	r->rest = path + rt->plen;
	if (!acct_req_json_typed(r))
		return;
	if (!acct_req_admit(r, rt))
		return;
	rt->fn(r, rt->arg);
}

/* ---- connections ---------------------------------------------------------------------- */

/* See ks_api.c: the extra reference shows when evhttp is done with a connection. */
static void acct_sweep(struct acct_http *h)
{
	size_t kept = 0;

	for (size_t i = 0; i < h->nbevs; i++) {
		void *cbarg = NULL;
		bufferevent_data_cb rd = NULL;

		bufferevent_getcb(h->bevs[i], &rd, NULL, NULL, &cbarg);
		if (rd == NULL && cbarg == NULL)
			bufferevent_decref(h->bevs[i]);
		else
			h->bevs[kept++] = h->bevs[i];
	}
	h->nbevs = kept;
	if (h->paused && h->nbevs < h->cfg->account.max_connections) {
		evconnlistener_enable(evhttp_bound_socket_get_listener(h->bound));
		h->paused = false;
	}
}

static void acct_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acct_http *h = arg;
	struct timeval tv = { 0, ACCT_SWEEP_MS * 1000 };

	acct_sweep(h);
	if (h->nbevs > 0)
		evtimer_add(h->sweep, &tv);
}

static struct bufferevent *acct_bevcb(struct event_base *base, void *arg)
{
	struct acct_http *h = arg;
	struct timeval tv = { 0, ACCT_SWEEP_MS * 1000 };
	struct bufferevent *bev;

	if (h->ssl_ctx) {
		SSL *ssl = SSL_new(h->ssl_ctx);

		if (ssl == NULL)
			return NULL;
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
	} else {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL)
		return NULL;
	acct_sweep(h);
	bufferevent_incref(bev);
	h->bevs = xreallocarray(h->bevs, h->nbevs + 1, sizeof(*h->bevs));
	h->bevs[h->nbevs++] = bev;
	if (h->nbevs >= h->cfg->account.max_connections && !h->paused) {
		evconnlistener_disable(evhttp_bound_socket_get_listener(h->bound));
		h->paused = true;
		log_warn("event=account_busy connections=%zu", h->nbevs);
	}
	if (!evtimer_pending(h->sweep, NULL))
		evtimer_add(h->sweep, &tv);
	return bev;
}

/* ---- start and stop ------------------------------------------------------------------- */

static bool acct_host_loopback(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* Open www_dir (or the default); no folder only means no page, the API still runs. */
static void acct_www_open(struct acct_http *h)
{
	const char *dir = h->cfg->account.www_dir;

	if (*dir == '\0')
		dir = access(ACCT_DEFAULT_WWW, X_OK) == 0 ? ACCT_DEFAULT_WWW : "www";
	h->www_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (h->www_fd < 0)
		log_warn("event=account_no_www dir=%s msg=\"the settings page is not served: no "
			 "such folder\"", dir);
}

static int acct_http_tls(struct acct_http *h, char **err)
{
	const struct account_conf *a = &h->cfg->account;

	if (*a->tls_cert == '\0' && *a->tls_key == '\0') {
		if (!acct_host_loopback(a->listen.host)) {
			*err = xasprintf("[account] listen %s: plain HTTP only on a loopback address; "
					 "set tls_cert and tls_key", a->listen.host);
			return -1;
		}
		return 0;
	}
	if (*a->tls_cert == '\0' || *a->tls_key == '\0') {
		*err = xstrdup("[account]: set both tls_cert and tls_key, or neither");
		return -1;
	}
	if ((h->ssl_ctx = tls_server_ctx_new(a->tls_cert, a->tls_key, err)) == NULL)
		return -1;
	return 0;
}

struct acct_http *acct_http_start(struct event_base *base, const struct pw_config *cfg,
				  struct db *db, char **err)
{
	const struct conf_hostport *l = &cfg->account.listen;
	struct acct_http *h;

	*err = NULL;
	if (l->host == NULL || *l->host == '\0')
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->cfg = cfg;
	h->db = db;
	h->www_fd = -1;
	if (acct_http_tls(h, err) < 0) {
		acct_http_stop(h);
		return NULL;
	}
	acct_www_open(h);
	h->sweep = evtimer_new(base, acct_sweep_cb, h);
	if ((h->http = evhttp_new(base)) == NULL)
		fatalx("evhttp_new: out of memory");
	evhttp_set_max_headers_size(h->http, ACCT_MAX_HEADERS);
	evhttp_set_max_body_size(h->http, ACCT_MAX_BODY);
	evhttp_set_timeout(h->http, ACCT_TIMEOUT_S);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_bevcb(h->http, acct_bevcb, h);
	evhttp_set_gencb(h->http, acct_handle, h);
	h->bound = evhttp_bind_socket_with_handle(h->http, l->host, l->port);
	if (h->bound == NULL) {
		*err = xasprintf("[account] listen: cannot listen on %s:%u (address in use or not "
				 "available)", l->host, l->port);
		acct_http_stop(h);
		return NULL;
	}
	log_info("event=account_listen listen=%s:%u tls=%s", l->host, l->port,
		 h->ssl_ctx ? "yes" : "no");
	return h;
}

void acct_http_stop(struct acct_http *h)
{
	if (h == NULL)
		return;
	/* Pending work first: its callbacks would answer requests about to be freed. */
	while (h->pending) {
		struct acct_req *r = h->pending;
		struct evhttp_request *ev = r->ev;

		if (r->abort_fn)
			r->abort_fn(r, r->abort_arg);
		/* a request whose connection is gone is freed by nobody else */
		if (evhttp_request_get_connection(ev) == NULL)
			evhttp_request_free(ev);
		acct_req_free(r);
	}
	if (h->http)
		evhttp_free(h->http);
	for (size_t i = 0; i < h->nbevs; i++)
		bufferevent_decref(h->bevs[i]);
	free(h->bevs);
	if (h->sweep)
		event_free(h->sweep);
	if (h->www_fd >= 0)
		close(h->www_fd);
	SSL_CTX_free(h->ssl_ctx);
	free(h->routes);
	free(h);
}
