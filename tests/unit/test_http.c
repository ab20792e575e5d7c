/*
 * test_http.c - the libcurl client on the event loop against in-process evhttp servers
 * (plain HTTP and HTTPS with a certificate made here), and the query-string helpers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http.h"
#include "xmalloc.h"
#include "unit.h"

/* ---- a small test server ----------------------------------------------------------- */

struct delayed {
	struct tsrv *srv;
	struct evhttp_request *req;
	struct event *ev;
	struct delayed *next;
};

struct tsrv {
	struct event_base *base;
	struct evhttp *http;
	SSL_CTX *ssl;		/* NULL: plain HTTP */
	int port;
	int requests;		/* requests received, any path */
	int ok_hits;		/* requests for /ok */
	int pending;		/* delayed replies not sent yet */
	struct delayed *delayed;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static long query_long(const char *query, const char *name, long dflt)
{
	char *v = http_query_param(query, name);
	long n = v ? atol(v) : dflt;

	free(v);
	return n;
}

static void tsrv_delayed_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg, **pp;
	struct tsrv *s = d->srv;

	evbuffer_add_printf(evhttp_request_get_output_buffer(d->req), "slow");
	evhttp_send_reply(d->req, 200, "OK", NULL);
	for (pp = &s->delayed; *pp != d; pp = &(*pp)->next)
		;
	*pp = d->next;
	event_free(d->ev);
	free(d);
	s->pending--;
}

/*
 * /ok: 200 "hello" with Cache-Control; /big?n=N[&chunked=1]: N bytes; /delay?ms=N: reply
 * after N ms; /redir?to=URL: 302 to URL; /loop: redirects to itself; /cc?v=V: Cache-Control V;
 * /headers?n=N: N headers of 1000 bytes; anything else: 404.
 */
static void tsrv_handle(struct evhttp_request *req, void *arg)
{
	struct tsrv *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(uri);
	const char *query = evhttp_uri_get_query(uri);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);

	s->requests++;
	if (strcmp(path, "/ok") == 0) {
		s->ok_hits++;
		evhttp_add_header(hdr, "Content-Type", "text/plain; charset=utf-8");
		evhttp_add_header(hdr, "Cache-Control", "public, s-maxage=5, max-age=300");
		evbuffer_add_printf(out, "hello");
		evhttp_send_reply(req, 200, "OK", NULL);
	} else if (strcmp(path, "/big") == 0) {
		long n = query_long(query, "n", 0);
		char *body = xmalloc((size_t)n + 1);

		memset(body, 'x', (size_t)n);
		if (query_long(query, "chunked", 0)) {
			struct evbuffer *chunk = evbuffer_new();

			evhttp_send_reply_start(req, 200, "OK");
			evbuffer_add(chunk, body, (size_t)n);
			evhttp_send_reply_chunk(req, chunk);
			evhttp_send_reply_end(req);
			evbuffer_free(chunk);
		} else {
			evbuffer_add(out, body, (size_t)n);
			evhttp_send_reply(req, 200, "OK", NULL);
		}
		free(body);
	} else if (strcmp(path, "/delay") == 0) {
		struct delayed *d = xcalloc(1, sizeof(*d));
		long ms = query_long(query, "ms", 0);
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

		d->srv = s;
		d->req = req;
		d->ev = evtimer_new(s->base, tsrv_delayed_cb, d);
		d->next = s->delayed;
		s->delayed = d;
		s->pending++;
		evtimer_add(d->ev, &tv);
	} else if (strcmp(path, "/redir") == 0) {
		char *to = http_query_param(query, "to");

		evhttp_add_header(hdr, "Location", to ? to : "/ok");
		evhttp_send_reply(req, 302, "Found", NULL);
		free(to);
	} else if (strcmp(path, "/cc") == 0) {
		char *v = http_query_param(query, "v");

		evhttp_add_header(hdr, "Cache-Control", v ? v : "");
		evhttp_send_reply(req, 200, "OK", NULL);
		free(v);
	} else if (strcmp(path, "/headers") == 0) {
		long n = query_long(query, "n", 0);
		char value[1001], name[32];

		memset(value, 'h', 1000);
		value[1000] = '\0';
		for (long i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "X-Filler-%ld", i);
			evhttp_add_header(hdr, name, value);
		}
		evhttp_send_reply(req, 200, "OK", NULL);
	} else if (strcmp(path, "/echo") == 0) {
		/* the method, one request header and the body's length, for http_request */
		const char *x = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Test");
		const char *m = evhttp_request_get_command(req) == EVHTTP_REQ_PUT ? "PUT" : "OTHER";

		evbuffer_add_printf(out, "%s %s %zu", m, x ? x : "-",
				    evbuffer_get_length(evhttp_request_get_input_buffer(req)));
		evhttp_send_reply(req, 201, "Created", NULL);
	} else if (strcmp(path, "/loop") == 0) {
		evhttp_add_header(hdr, "Location", "/loop");
		evhttp_send_reply(req, 302, "Found", NULL);
	} else {
		evbuffer_add_printf(out, "not here");
		evhttp_send_reply(req, 404, "Not Found", NULL);
	}
}

/* Each accepted connection gets a server-side TLS bufferevent. */
static struct bufferevent *tsrv_bevcb(struct event_base *base, void *arg)
{
	struct tsrv *s = arg;

	return bufferevent_openssl_socket_new(base, -1, SSL_new(s->ssl),
					      BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static struct tsrv *tsrv_new(struct event_base *base, SSL_CTX *ssl)
{
	struct tsrv *s = xcalloc(1, sizeof(*s));
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	/* the server writes to connections the client gave up on */
	signal(SIGPIPE, SIG_IGN);
	s->base = base;
	s->ssl = ssl;
	s->http = evhttp_new(base);
	evhttp_set_gencb(s->http, tsrv_handle, s);
	if (ssl)
		evhttp_set_bevcb(s->http, tsrv_bevcb, s);
	bound = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
	if (bound == NULL || getsockname(evhttp_bound_socket_get_fd(bound),
					 (struct sockaddr *)&sin, &slen) != 0) {
		fprintf(stderr, "cannot start the test server\n");
		exit(1);
	}
	s->port = ntohs(sin.sin_port);
	return s;
}

static void tsrv_free(struct tsrv *s)
{
	while (s->delayed) {
		struct delayed *d = s->delayed;

		s->delayed = d->next;
		event_free(d->ev);
		evhttp_send_reply(d->req, 503, "Stopping", NULL);
		free(d);
	}
	evhttp_free(s->http);
	free(s);
}

static char *tsrv_url(const struct tsrv *s, const char *path)
{
	return xasprintf("%s://127.0.0.1:%d%s", s->ssl ? "https" : "http", s->port, path);
}

/* ---- client side helpers ----------------------------------------------------------- */

struct result {
	int calls;
	struct http_response *resp;
	double done_ms;
};

static int outstanding;

static void on_response(struct http_response *resp, void *arg)
{
	struct result *r = arg;

	r->calls++;
	http_response_free(r->resp);
	r->resp = resp;
	r->done_ms = now_ms();
	outstanding--;
}

static void result_clear(struct result *r)
{
	http_response_free(r->resp);
	memset(r, 0, sizeof(*r));
}

struct loop_watch {
	struct event_base *base;
	struct tsrv *srv[2];
	double deadline;
};

static void loop_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_watch *w = arg;
	bool idle = outstanding <= 0;

	for (int i = 0; i < 2; i++)
		if (w->srv[i] && w->srv[i]->pending > 0)
			idle = false;
	if (idle || now_ms() > w->deadline)
		event_base_loopbreak(w->base);
}

/* Run the loop until no callback is outstanding and the servers sent every reply. */
static void run_loop(struct event_base *base, struct tsrv *a, struct tsrv *b, int max_ms)
{
	struct loop_watch w = { base, { a, b }, now_ms() + max_ms };
	struct timeval tv = { 0, 2000 };
	struct event *poll = event_new(base, -1, EV_PERSIST, loop_poll_cb, &w);

	event_add(poll, &tv);
	event_base_dispatch(base);
	event_free(poll);
	CHECK(outstanding <= 0);
}

/* Run the loop for at most 10 ms. */
static void loop_step(struct event_base *base)
{
	struct timeval tv = { 0, 10000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static int get(struct http_client *c, const char *url, long timeout_ms, size_t max_body,
	       bool follow, struct result *r)
{
	struct http_request_opts o = { .timeout_ms = timeout_ms, .max_body = max_body,
				       .follow_https_redirects = follow };
	int h = http_get(c, url, &o, on_response, r);

	if (h >= 0)
		outstanding++;
	return h;
}

/* Fetch one URL and wait for the answer. */
/* The time a request that should not time out gets: generous, a loaded machine is slow. */
#define FETCH_MS 10000

static void fetch(struct http_client *c, struct tsrv *s, const char *path, long timeout_ms,
		  size_t max_body, bool follow, struct result *r)
{
	char *url = tsrv_url(s, path);

	result_clear(r);
	CHECK(get(c, url, timeout_ms, max_body, follow, r) > 0);
	run_loop(s->base, s, NULL, (int)timeout_ms + 5000);
	CHECK(r->calls == 1);
	free(url);
}

static const struct http_client_opts test_opts = { .allow_private = true, .user_agent = "t" };

/* ---- query strings ----------------------------------------------------------------- */

static void test_query_param(void)
{
	char *v;

	CHECK_STREQ(v = http_query_param("a=1&b=x%40y", "b"), "x@y");
	free(v);
	CHECK_STREQ(v = http_query_param("a=1&b=x%40y", "a"), "1");
	free(v);
	CHECK_STREQ(v = http_query_param("q=hello+world%21&x", "q"), "hello world!");
	free(v);
	CHECK_STREQ(v = http_query_param("x&y=", "x"), "");
	free(v);
	CHECK_STREQ(v = http_query_param("y=&x", "y"), "");
	free(v);
	CHECK_STREQ(v = http_query_param("k=1&k=2", "k"), "1");
	free(v);
	CHECK_STREQ(v = http_query_param("a%3Db=c", "a=b"), "c");
	free(v);
	CHECK_STREQ(v = http_query_param("&&a=%e2%82%ac&", "a"), "\xe2\x82\xac");
	free(v);
	CHECK(http_query_param("a=1", "b") == NULL);
	CHECK(http_query_param("", "a") == NULL);
	CHECK(http_query_param(NULL, "a") == NULL);
	CHECK(http_query_param("a=%4", "a") == NULL);
	CHECK(http_query_param("a=%", "a") == NULL);
	CHECK(http_query_param("a=%zz", "a") == NULL);
	CHECK(http_query_param("a=%00", "a") == NULL);
	/* a bad escape anywhere rejects the query, even in another parameter */
	CHECK(http_query_param("a=1&b=%g0", "a") == NULL);

	char *longq = xmalloc(HTTP_MAX_QUERY + 2);

	memset(longq, 'x', HTTP_MAX_QUERY + 1);
	memcpy(longq, "a=", 2);
	longq[HTTP_MAX_QUERY + 1] = '\0';
	CHECK(http_query_param(longq, "a") == NULL);
	longq[HTTP_MAX_QUERY] = '\0';
	v = http_query_param(longq, "a");
	CHECK(v != NULL && strlen(v) == HTTP_MAX_QUERY - 2);
	free(v);
	free(longq);
}

static void test_urlencode(void)
{
	char *e, *q, *d;

	CHECK_STREQ(e = http_urlencode("Joe.Doe_1~-"), "Joe.Doe_1~-");
	free(e);
	CHECK_STREQ(e = http_urlencode("a b+c/d?e&f=g%\xc3\xa9"), "a%20b%2Bc%2Fd%3Fe%26f%3Dg%25%C3%A9");
	free(e);
	CHECK_STREQ(e = http_urlencode(""), "");
	free(e);
	/* what urlencode makes, query_param takes back */
	e = http_urlencode("user+tag@example.org & more");
	q = xasprintf("x=1&l=%s", e);
	CHECK_STREQ(d = http_query_param(q, "l"), "user+tag@example.org & more");
	free(d);
	free(q);
	free(e);
}

/* ---- client over plain HTTP -------------------------------------------------------- */

static void test_basic(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r = { 0 };

	fetch(c, s, "/ok", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK);
	CHECK(r.resp->status == 200);
	CHECK_STREQ(r.resp->body, "hello");
	CHECK(r.resp->len == 5);
	CHECK_STREQ(r.resp->content_type, "text/plain; charset=utf-8");
	CHECK(r.resp->max_age == 300);
	CHECK(r.resp->error == NULL);
	CHECK(r.resp->elapsed > 0 && r.resp->elapsed < 2);

	fetch(c, s, "/nothing", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK);
	CHECK(r.resp->status == 404);
	CHECK_STREQ(r.resp->body, "not here");
	CHECK(r.resp->max_age == -1);

	/* exactly max_body is fine; one byte more is not, with and without Content-Length */
	fetch(c, s, "/big?n=1000", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK && r.resp->len == 1000);
	fetch(c, s, "/big?n=1001", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_ERR_TOO_BIG);
	CHECK(r.resp->error && strstr(r.resp->error, "1000"));
	fetch(c, s, "/big?n=1000&chunked=1", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK && r.resp->len == 1000);
	fetch(c, s, "/big?n=200000&chunked=1", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_ERR_TOO_BIG);
	CHECK(r.resp->len == 0 && r.resp->body && r.resp->body[0] == '\0');

	/* a redirect is a plain response unless following was asked for */
	fetch(c, s, "/redir?to=%2Fok", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK && r.resp->status == 302);

	/* only http and https URLs start at all */
	CHECK(http_get(c, "ftp://127.0.0.1/", NULL, on_response, &r) == -1);
	CHECK(http_get(c, "file:///etc/passwd", NULL, on_response, &r) == -1);
	CHECK(r.calls == 1);

	result_clear(&r);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

/* http_request: any method, extra headers, a body; a redirect's target is handed back. */
static void test_request_method(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r = { 0 };
	const char *hdr[] = { "X-Test: yes", NULL }, *bad[] = { "X-Test: a\r\nX-Evil: 1", NULL };
	char *url = tsrv_url(s, "/echo"), *redir = tsrv_url(s, "/redir?to=%2Fok");

	CHECK(http_request(c, "PUT", url, hdr, "BEGIN:VCARD", 11, NULL, on_response, &r) > 0);
	outstanding++;
	run_loop(base, s, NULL, 5000);
	CHECK(r.calls == 1 && r.resp->status == 201);
	CHECK_STREQ(r.resp->body, "PUT yes 11");
	result_clear(&r);
	CHECK(http_request(c, "GET", redir, NULL, NULL, 0, NULL, on_response, &r) > 0);
	outstanding++;
	run_loop(base, s, NULL, 5000);
	CHECK(r.calls == 1 && r.resp->status == 302);
	CHECK(r.resp->location && strstr(r.resp->location, "/ok") != NULL);
	result_clear(&r);
	/* no header splitting, no method with spaces */
	CHECK(http_request(c, "PUT", url, bad, NULL, 0, NULL, on_response, &r) == -1);
	CHECK(http_request(c, "PUT X", url, NULL, NULL, 0, NULL, on_response, &r) == -1);
	CHECK(r.calls == 0);
	free(url);
	free(redir);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

static void test_headers(void)
{
	static const struct { const char *v; long age; } cc[] = {
		{ "max-age=60", 60 }, { "MAX-AGE=0", 0 }, { "no-cache", -1 },
		{ "s-maxage=10", -1 }, { "private,max-age=7", 7 }, { "max-age=\"20\"", 20 },
		{ "max-age=abc", -1 }, { "max-age=", -1 }, { "max-age=99999999999999", INT_MAX },
	};
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r = { 0 };

	for (size_t i = 0; i < sizeof(cc) / sizeof(cc[0]); i++) {
		char *e = http_urlencode(cc[i].v), *p = xasprintf("/cc?v=%s", e);

		fetch(c, s, p, FETCH_MS, 1000, false, &r);
		CHECK(r.resp->result == HTTP_OK);
		if (r.resp->max_age != cc[i].age)
			fprintf(stderr, "Cache-Control: %s gave %ld\n", cc[i].v, r.resp->max_age);
		CHECK(r.resp->max_age == cc[i].age);
		free(p);
		free(e);
	}
	/* response headers are bounded in total, not only per line */
	fetch(c, s, "/headers?n=50", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK);
	fetch(c, s, "/headers?n=80", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_ERR_TOO_BIG);
	CHECK(r.resp->error && strstr(r.resp->error, "headers"));

	result_clear(&r);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

static void test_timeout(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r = { 0 };
	double t0 = now_ms();

	fetch(c, s, "/delay?ms=700", 150, 1000, false, &r);
	CHECK(r.resp->result == HTTP_ERR_TIMEOUT);
	CHECK(r.resp->status == 0);
	CHECK(r.resp->error != NULL);
	/* not before the timeout; the result above says it did not wait for the answer */
	CHECK(r.done_ms - t0 >= 140);

	/* refused connection: nothing listens on the port any more */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	char *url;

	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &slen) == 0);
	close(fd);
	url = xasprintf("http://127.0.0.1:%d/", ntohs(sin.sin_port));
	result_clear(&r);
	CHECK(get(c, url, FETCH_MS, 100, false, &r) > 0);
	run_loop(base, s, NULL, FETCH_MS + 5000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_CONNECT);
	free(url);

	/* a name that cannot exist (RFC 6761 .invalid) is told apart from a refused connection */
	result_clear(&r);
	CHECK(get(c, "http://no-such-host.invalid/", 3000, 100, false, &r) > 0);
	run_loop(base, s, NULL, 5000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_NO_HOST);

	result_clear(&r);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

/* A listening socket that is never accepted on: connections wait in its backlog. */
static int raw_listener(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 8) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
		fprintf(stderr, "cannot listen\n");
		exit(1);
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Count (and close) the connections waiting on a raw listener. */
static int raw_accepts(int lfd)
{
	int n = 0, fd;

	while ((fd = accept(lfd, NULL, NULL)) >= 0) {
		close(fd);
		n++;
	}
	return n;
}

static void test_blocked(void)
{
	struct event_base *base = event_base_new();
	struct http_client_opts strict = { .allow_private = false };
	struct http_client *c = http_client_new(base, &strict);
	struct http_client *lax = http_client_new(base, &test_opts);
	struct result r = { 0 };
	int port, lfd = raw_listener(&port);
	char *url = xasprintf("http://127.0.0.1:%d/x", port);
	char *named = xasprintf("http://localhost:%d/x", port);

	CHECK(get(c, url, 1000, 100, false, &r) > 0);
	run_loop(base, NULL, NULL, 3000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_BLOCKED);
	CHECK(r.resp->error && strstr(r.resp->error, "127.0.0.1"));
	CHECK(raw_accepts(lfd) == 0);

	/* a name that resolves to loopback is caught as well */
	result_clear(&r);
	CHECK(get(c, named, 1000, 100, false, &r) > 0);
	run_loop(base, NULL, NULL, 3000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_BLOCKED);
	CHECK(raw_accepts(lfd) == 0);

	/* control: the same fetch with private addresses allowed does connect (then times out) */
	result_clear(&r);
	CHECK(get(lax, url, 200, 100, false, &r) > 0);
	run_loop(base, NULL, NULL, 3000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_TIMEOUT);
	CHECK(raw_accepts(lfd) == 1);

	result_clear(&r);
	free(url);
	free(named);
	close(lfd);
	http_client_free(c);
	http_client_free(lax);
	event_base_free(base);
}

static void test_redirect_off_https(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r = { 0 };
	char *target = tsrv_url(s, "/ok");
	char *enc = http_urlencode(target);
	char *path = xasprintf("/redir?to=%s", enc);

	fetch(c, s, path, FETCH_MS, 1000, true, &r);
	CHECK(r.resp->result == HTTP_ERR_BLOCKED);
	CHECK(r.resp->error && strstr(r.resp->error, "redirect"));
	CHECK(s->ok_hits == 0);
	CHECK(s->requests == 1);

	result_clear(&r);
	free(path);
	free(enc);
	free(target);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

static void test_parallel(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result r[3] = { { 0 } };
	char *url[3];
	double t0, last = 0;

	for (int i = 0; i < 3; i++) {
		char *p = xasprintf("/delay?ms=%d", 100 * (i + 1));

		url[i] = tsrv_url(s, p);
		free(p);
	}
	t0 = now_ms();
	for (int i = 2; i >= 0; i--)
		CHECK(get(c, url[i], FETCH_MS, 100, false, &r[i]) > 0);
	run_loop(base, s, NULL, FETCH_MS + 5000);
	for (int i = 0; i < 3; i++) {
		CHECK(r[i].calls == 1 && r[i].resp->result == HTTP_OK);
		CHECK(r[i].resp && strcmp(r[i].resp->body, "slow") == 0);
		if (r[i].done_ms > last)
			last = r[i].done_ms;
		free(url[i]);
	}
	/*
	 * Started longest first and finished in delay order: they ran side by side (one after
	 * the other they would finish in the order started). No upper bound on the time: a
	 * loaded machine may take longer, and that says nothing about the client.
	 */
	CHECK(r[0].done_ms < r[1].done_ms && r[1].done_ms < r[2].done_ms);
	CHECK(last - t0 >= 295);
	for (int i = 0; i < 3; i++)
		result_clear(&r[i]);
	http_client_free(c);
	tsrv_free(s);
	event_base_free(base);
}

struct free_in_cb {
	struct http_client *c;
	int calls;
};

/* A callback that frees the client while another request is in flight. */
static void on_free_client(struct http_response *resp, void *arg)
{
	struct free_in_cb *f = arg;

	f->calls++;
	http_response_free(resp);
	http_client_free(f->c);
	outstanding--;
}

static void test_cancel(void)
{
	struct event_base *base = event_base_new();
	struct tsrv *s = tsrv_new(base, NULL);
	struct http_client *c = http_client_new(base, &test_opts);
	struct result slow = { 0 }, quick = { 0 }, other = { 0 };
	char *slow_url = tsrv_url(s, "/delay?ms=150");
	char *ok_url = tsrv_url(s, "/ok");
	struct free_in_cb f = { 0 };
	int h;

	/* cancelled at once, and cancelled after it reached the server */
	double deadline = now_ms() + 2000;

	h = get(c, slow_url, 2000, 100, false, &slow);
	CHECK(h > 0);
	http_cancel(c, h);
	outstanding--;
	h = get(c, slow_url, 2000, 100, false, &other);
	CHECK(get(c, ok_url, 2000, 100, false, &quick) > 0);
	while (s->pending == 0 && now_ms() < deadline)
		loop_step(base);
	CHECK(s->pending == 1);
	http_cancel(c, h);
	outstanding--;
	http_cancel(c, h);	/* twice is harmless */
	http_cancel(c, 12345);
	run_loop(base, s, NULL, 3000);
	CHECK(slow.calls == 0 && other.calls == 0);
	CHECK(quick.calls == 1 && quick.resp->result == HTTP_OK);

	/* freeing the client with requests in flight calls nobody back */
	CHECK(get(c, slow_url, 2000, 100, false, &slow) > 0);
	CHECK(get(c, slow_url, 2000, 100, false, &other) > 0);
	deadline = now_ms() + 2000;
	while (s->pending < 2 && now_ms() < deadline)
		loop_step(base);
	CHECK(s->pending == 2);
	http_client_free(c);
	outstanding -= 2;
	run_loop(base, s, NULL, 3000);
	CHECK(slow.calls == 0 && other.calls == 0);

	/* freeing it from a callback drops the other request too */
	c = http_client_new(base, &test_opts);
	f.c = c;
	CHECK(http_get(c, ok_url, NULL, on_free_client, &f) > 0);
	CHECK(get(c, slow_url, 2000, 100, false, &slow) > 0);
	outstanding = 1;	/* only on_free_client will run */
	run_loop(base, s, NULL, 3000);
	CHECK(f.calls == 1 && slow.calls == 0);

	result_clear(&quick);
	result_clear(&slow);
	result_clear(&other);
	free(slow_url);
	free(ok_url);
	tsrv_free(s);
	event_base_free(base);
}

/* ---- HTTPS ------------------------------------------------------------------------- */

/* A self-signed certificate for 127.0.0.1, written to dir/ca.pem; returns the server ctx. */
static SSL_CTX *make_tls(const char *ca_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	SSL_CTX *ctx;
	FILE *f;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, key, EVP_sha256());

	f = fopen(ca_path, "w");
	CHECK(f != NULL && PEM_write_X509(f, x) == 1);
	if (f)
		fclose(f);
	ctx = SSL_CTX_new(TLS_server_method());
	CHECK(SSL_CTX_use_certificate(ctx, x) == 1);
	CHECK(SSL_CTX_use_PrivateKey(ctx, key) == 1);
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

static void test_https(void)
{
	char dir[] = "/tmp/pwhttp.XXXXXX";
	char *ca_path, *target, *enc, *path;
	struct event_base *base = event_base_new();
	struct http_client_opts o = test_opts;
	struct http_client *c;
	struct tsrv *s, *plain;
	struct result r = { 0 };
	SSL_CTX *ctx;

	CHECK(mkdtemp(dir) != NULL);
	ca_path = xasprintf("%s/ca.pem", dir);
	ctx = make_tls(ca_path);
	s = tsrv_new(base, ctx);
	plain = tsrv_new(base, NULL);
	o.ca_file = ca_path;
	c = http_client_new(base, &o);

	fetch(c, s, "/ok", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_OK && r.resp->status == 200);
	CHECK_STREQ(r.resp->body, "hello");
	CHECK(r.resp->max_age == 300);

	/* https -> https redirects are followed when asked for */
	fetch(c, s, "/redir?to=%2Fok", FETCH_MS, 1000, true, &r);
	CHECK(r.resp->result == HTTP_OK && r.resp->status == 200);
	CHECK_STREQ(r.resp->body, "hello");
	CHECK(s->ok_hits == 2);

	/* https -> http is refused and the http server never sees the request */
	target = tsrv_url(plain, "/ok");
	enc = http_urlencode(target);
	path = xasprintf("/redir?to=%s", enc);
	fetch(c, s, path, FETCH_MS, 1000, true, &r);
	CHECK(r.resp->result == HTTP_ERR_BLOCKED);
	CHECK(plain->requests == 0);

	/* at most three redirects */
	fetch(c, s, "/loop", FETCH_MS, 1000, true, &r);
	CHECK(r.resp->result == HTTP_ERR_OTHER);
	CHECK(s->requests == 1 + 2 + 1 + 4);
	http_client_free(c);

	/* without the test CA the certificate is not trusted */
	c = http_client_new(base, &test_opts);
	fetch(c, s, "/ok", FETCH_MS, 1000, false, &r);
	CHECK(r.resp->result == HTTP_ERR_TLS);
	CHECK(r.resp->error != NULL);
	CHECK(s->ok_hits == 2);
	http_client_free(c);

	/* the right CA, but the certificate is for 127.0.0.1, not for localhost */
	c = http_client_new(base, &o);
	free(target);
	target = xasprintf("https://localhost:%d/ok", s->port);
	result_clear(&r);
	CHECK(get(c, target, 3000, 1000, false, &r) > 0);
	run_loop(base, s, NULL, 5000);
	CHECK(r.calls == 1 && r.resp->result == HTTP_ERR_TLS);
	CHECK(s->ok_hits == 2);
	http_client_free(c);

	result_clear(&r);
	unlink(ca_path);
	CHECK(rmdir(dir) == 0);
	free(ca_path);
	free(target);
	free(enc);
	free(path);
	tsrv_free(s);
	tsrv_free(plain);
	SSL_CTX_free(ctx);
	event_base_free(base);
}

TEST_MAIN(test_query_param, test_urlencode, test_basic, test_request_method, test_headers, test_timeout, test_blocked,
	  test_redirect_off_https, test_parallel, test_cancel, test_https)
