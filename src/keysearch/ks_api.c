/*
 * ks_api.c - the key search HTTP API of serve ([api]): GET /v1/keys/search and
 * GET /v1/public_keys (the webmail plugins' shape). Every request needs a bearer token from
 * [api] tokens; each token has a bucket of rate_limit requests per minute (429 with
 * Retry-After when empty). Headers and bodies are bounded, and at most max_connections are
 * open at once: at the limit the listener stops accepting (new clients wait in the kernel's
 * backlog) until a connection ends. Addresses are logged only at log_level = debug.
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "http.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define KS_API_MAX_HEADERS 8192
/* a migration job's POST carries its credentials (mig_api.h bounds it again) */
#define KS_API_MAX_BODY (40 * 1024)
#define KS_API_MAX_TOKEN 512
#define KS_API_SWEEP_MS 100

struct ks_api_req;

struct ks_api {
	struct event_base *base;
	const struct pw_config *cfg;	/* borrowed */
	struct keysearch *ks;		/* borrowed */
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct ks_rate *rates;		/* one per token */
	size_t ntokens;
	struct bufferevent **bevs;	/* the connections' bufferevents, one reference each */
	size_t nbevs;
	bool paused;
	struct event *sweep;
	struct ks_api_req *reqs;
	const char *route_prefix;	/* ks_api_route */
	ks_api_route_fn route_fn;
	void *route_arg;
};

/* A request waiting for its search. */
struct ks_api_req {
	struct ks_api *api;
	struct evhttp_request *req;
	int handle;
	bool public_keys;
	int token;
	int64_t start_ms;
	char *path;
	struct ks_api_req *next;
};

/* ---- pure parts: rate limit and tokens ------------------------------------------------- */

int64_t ks_rate_take(struct ks_rate *r, uint64_t per_minute, int64_t now_ms)
{
	double rate = (double)per_minute / 60000.0;	/* tokens per millisecond */
	double wait_s;

	if (!r->started) {
		r->tokens = (double)per_minute;
		r->last_ms = now_ms;
		r->started = true;
	}
	if (now_ms > r->last_ms) {
		r->tokens += (double)(now_ms - r->last_ms) * rate;
		if (r->tokens > (double)per_minute)
			r->tokens = (double)per_minute;
		r->last_ms = now_ms;
	}
	if (r->tokens >= 1.0) {
		r->tokens -= 1.0;
		return 0;
	}
	wait_s = (1.0 - r->tokens) / rate / 1000.0;
	return wait_s <= 1.0 ? 1 : (int64_t)wait_s + ((double)(int64_t)wait_s < wait_s);
}

int ks_token_index(const char *tokens, const char *given)
{
	char *copy = xstrdup(tokens), *save = NULL;
	size_t glen = strlen(given);
	int idx = 0, found = -1;

	if (glen == 0 || glen > KS_API_MAX_TOKEN) {
		free(copy);
		return -1;
	}
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		t = str_trim(t);
		if (*t == '\0')
			continue;
		/* Compare every token in full: the time taken says nothing about which matched. */
		if (strlen(t) == glen && CRYPTO_memcmp(t, given, glen) == 0 && found < 0)
			found = idx;
		idx++;
	}
	free(copy);
	return found;
}

static size_t ks_token_count(const char *tokens)
{
	char *copy = xstrdup(tokens), *save = NULL;
	size_t n = 0;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (*str_trim(t))
			n++;
	free(copy);
	return n;
}

/* ---- replies --------------------------------------------------------------------------- */

static void ks_api_log(struct ks_api *api, const char *path, int code, int token, size_t nkeys,
		       int64_t start_ms, const char *email)
{
	long long ms = (long long)(monotonic_ms() - start_ms);

	if (log_debug_enabled() && email)
		log_debug("event=api_request path=%s status=%d token=%d keys=%zu elapsed_ms=%lld "
			  "email=%s", path, code, token, nkeys, ms, email);
	else
		log_info("event=api_request path=%s status=%d token=%d keys=%zu elapsed_ms=%lld",
			 path, code, token, nkeys, ms);
}

/* Send a JSON body (with its final newline). */
static void ks_api_send_body(struct evhttp_request *req, int code, const char *reason,
			     const char *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evhttp_request_get_output_buffer(req);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, reason, NULL);
}

static void ks_api_send_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	char *body = xasprintf("%s\n", s);

	ks_api_send_body(req, code, reason, body);
	free(body);
	free(s);
	json_decref(j);
}

static void ks_api_error(struct evhttp_request *req, int code, const char *reason,
			 const char *msg)
{
	ks_api_send_json(req, code, reason, json_pack("{s:s}", "error", msg));
}

static void ks_api_req_unlink(struct ks_api *api, struct ks_api_req *r)
{
	struct ks_api_req **pp = &api->reqs;

	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp)
		*pp = r->next;
}

static void ks_api_search_done(struct ks_result *res, void *arg)
{
	struct ks_api_req *r = arg;

	ks_api_req_unlink(r->api, r);
	ks_api_log(r->api, r->path, 200, r->token, res->nkeys, r->start_ms, res->address);
	/* A cached answer carries its body: it is serialised once, not per request. */
	ks_api_send_body(r->req, 200, "OK", ks_result_body(res, r->public_keys));
	ks_result_free(res);
	free(r->path);
	free(r);
}

/* ---- requests -------------------------------------------------------------------------- */

/* The bearer token's index, or -1. */
static int ks_api_auth(struct ks_api *api, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	if (h == NULL || !str_has_prefix_ci(h, "Bearer "))
		return -1;
	h += strlen("Bearer ");
	while (*h == ' ')
		h++;
	return ks_token_index(api->cfg->api.tokens, h);
}

/* complete=1|true|0|false (absent: false); false when it is something else. */
static bool ks_api_complete(const char *query, bool *complete)
{
	char *c = query ? http_query_param(query, "complete") : NULL;
	bool ok = true;

	*complete = false;
	if (c && (strcmp(c, "1") == 0 || strcmp(c, "true") == 0))
		*complete = true;
	else if (c && strcmp(c, "0") != 0 && strcmp(c, "false") != 0)
		ok = false;
	free(c);
	return ok;
}

/* email, type and complete from the query; false after answering 400. */
static bool ks_api_params(struct evhttp_request *req, const char *query, bool public_keys,
			  char **email, enum ks_type *type, bool *complete)
{
	char *t = query ? http_query_param(query, "type") : NULL;

	*email = query ? http_query_param(query, "email") : NULL;
	*type = public_keys ? KS_TYPE_OPENPGP : KS_TYPE_ANY;
	if (*email == NULL || !addr_valid(*email)) {
		ks_api_error(req, 400, "Bad Request", "email: a valid e-mail address is required");
		goto fail;
	}
	if (t && !ks_type_parse(t, type)) {
		ks_api_error(req, 400, "Bad Request", public_keys ? "type: open_pgp or smime"
								  : "type: openpgp, smime or any");
		goto fail;
	}
	if (!ks_api_complete(query, complete)) {
		ks_api_error(req, 400, "Bad Request", "complete: 1 or 0");
		goto fail;
	}
	free(t);
	return true;
fail:
	free(t);
	free(*email);
	*email = NULL;
	return false;
}

static void ks_api_handle(struct evhttp_request *req, void *arg)
{
	struct ks_api *api = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	int64_t start = monotonic_ms(), retry;
	bool pk, routed;
	struct ks_api_req *r;
	enum ks_type type;
	bool complete;
	char *email;
	int token;

	if (path == NULL)
		path = "";
	routed = api->route_fn &&
		 strncmp(path, api->route_prefix, strlen(api->route_prefix)) == 0;
	if (!routed && evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		ks_api_error(req, 405, "Method Not Allowed", "only GET");
		ks_api_log(api, "-", 405, -1, 0, start, NULL);
		return;
	}
	if ((token = ks_api_auth(api, req)) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer");
		ks_api_error(req, 401, "Unauthorized", "a valid bearer token is required");
		ks_api_log(api, "-", 401, -1, 0, start, NULL);
		return;
	}
	if ((retry = ks_rate_take(&api->rates[token], api->cfg->api.rate_limit, start)) > 0) {
		char buf[24];

		snprintf(buf, sizeof(buf), "%lld", (long long)retry);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", buf);
		ks_api_error(req, 429, "Too Many Requests", "rate limit exceeded");
		ks_api_log(api, "-", 429, token, 0, start, NULL);
		return;
	}
	if (routed) {
		ks_api_log(api, path, api->route_fn(api->route_arg, req, path, query), token, 0,
			   start, NULL);
		return;
	}
	if (strcmp(path, "/v1/keys/search") == 0)
		pk = false;
	else if (strcmp(path, "/v1/public_keys") == 0)
		pk = true;
	else {
		ks_api_error(req, 404, "Not Found", "unknown endpoint");
		ks_api_log(api, "-", 404, token, 0, start, NULL);
		return;
	}
	if (!ks_api_params(req, query, pk, &email, &type, &complete)) {
		ks_api_log(api, path, 400, token, 0, start, NULL);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->api = api;
	r->req = req;
	r->public_keys = pk;
	r->token = token;
	r->start_ms = start;
	r->path = xstrdup(path);
	r->next = api->reqs;
	api->reqs = r;
	r->handle = keysearch_start(api->ks, email, type, complete, ks_api_search_done, r);
	free(email);
}

/* ---- connection limit ------------------------------------------------------------------ */

/*
 * evhttp frees a connection's bufferevent with bufferevent_free, which clears its
 * callbacks; the extra reference taken here keeps the struct (and, with CLOSE_ON_FREE, the
 * socket) until the sweep sees the cleared callbacks and drops it. That is how connections
 * are counted without hooks libevent 2.1 lacks.
 */
static void ks_api_sweep(struct ks_api *api)
{
	size_t kept = 0;

	for (size_t i = 0; i < api->nbevs; i++) {
		void *cbarg = NULL;
		bufferevent_data_cb rd = NULL;

		bufferevent_getcb(api->bevs[i], &rd, NULL, NULL, &cbarg);
		if (rd == NULL && cbarg == NULL)
			bufferevent_decref(api->bevs[i]);
		else
			api->bevs[kept++] = api->bevs[i];
	}
	api->nbevs = kept;
	if (api->paused && api->nbevs < api->cfg->api.max_connections) {
		evconnlistener_enable(evhttp_bound_socket_get_listener(api->bound));
		api->paused = false;
	}
}

static void ks_api_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ks_api *api = arg;
	struct timeval tv = { 0, KS_API_SWEEP_MS * 1000 };

	ks_api_sweep(api);
	if (api->nbevs > 0)
		evtimer_add(api->sweep, &tv);
}

static struct bufferevent *ks_api_bevcb(struct event_base *base, void *arg)
{
	struct ks_api *api = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = { 0, KS_API_SWEEP_MS * 1000 };

	if (bev == NULL)
		return NULL;
	ks_api_sweep(api);
	bufferevent_incref(bev);
	api->bevs = xreallocarray(api->bevs, api->nbevs + 1, sizeof(*api->bevs));
	api->bevs[api->nbevs++] = bev;
	if (api->nbevs >= api->cfg->api.max_connections && !api->paused) {
		evconnlistener_disable(evhttp_bound_socket_get_listener(api->bound));
		api->paused = true;
		log_warn("event=api_busy connections=%zu", api->nbevs);
	}
	if (!evtimer_pending(api->sweep, NULL))
		evtimer_add(api->sweep, &tv);
	return bev;
}

/* ---- start and stop -------------------------------------------------------------------- */

struct ks_api *ks_api_start(struct event_base *base, const struct pw_config *cfg,
			    struct keysearch *ks, char **err)
{
	const struct conf_hostport *l = &cfg->api.listen;
	struct ks_api *api;
	int timeout = (int)cfg->keysearch.deadline + 10;

	if (l->host == NULL || *l->host == '\0')
		return NULL;
	api = xcalloc(1, sizeof(*api));
	api->base = base;
	api->cfg = cfg;
	api->ks = ks;
	api->ntokens = ks_token_count(cfg->api.tokens);
	api->rates = xcalloc(api->ntokens ? api->ntokens : 1, sizeof(*api->rates));
	api->sweep = evtimer_new(base, ks_api_sweep_cb, api);
	if ((api->http = evhttp_new(base)) == NULL) {
		*err = xstrdup("[api]: cannot create the HTTP server");
		ks_api_stop(api);
		return NULL;
	}
	evhttp_set_max_headers_size(api->http, KS_API_MAX_HEADERS);
	evhttp_set_max_body_size(api->http, KS_API_MAX_BODY);
	evhttp_set_timeout(api->http, timeout);
	evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_bevcb(api->http, ks_api_bevcb, api);
	evhttp_set_gencb(api->http, ks_api_handle, api);
	api->bound = evhttp_bind_socket_with_handle(api->http, l->host, l->port);
	if (api->bound == NULL) {
		*err = xasprintf("[api] listen: cannot listen on %s:%u (address in use or not "
				 "available)", l->host, l->port);
		ks_api_stop(api);
		return NULL;
	}
	if (api->ntokens == 0)
		log_warn("event=api_no_tokens msg=\"[api] tokens is empty: every request gets 401\"");
	log_info("event=api_listen listen=%s:%u", l->host, l->port);
	return api;
}

void ks_api_route(struct ks_api *api, const char *prefix, ks_api_route_fn fn, void *arg)
{
	api->route_prefix = prefix;
	api->route_fn = fn;
	api->route_arg = arg;
}

void ks_api_stop(struct ks_api *api)
{
	if (api == NULL)
		return;
	/* Searches first: their callbacks would answer requests evhttp_free is about to free. */
	while (api->reqs) {
		struct ks_api_req *r = api->reqs;

		api->reqs = r->next;
		keysearch_cancel(api->ks, r->handle);
		free(r->path);
		free(r);
	}
	if (api->http)
		evhttp_free(api->http);
	for (size_t i = 0; i < api->nbevs; i++)
		bufferevent_decref(api->bevs[i]);
	free(api->bevs);
	if (api->sweep)
		event_free(api->sweep);
	free(api->rates);
	free(api);
}
