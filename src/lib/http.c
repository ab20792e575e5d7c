/*
 * http.c - HTTP client on the libevent loop (libcurl multi) and query-string helpers; see http.h.
 *
 * The client follows libcurl's "multi_socket" pattern: curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION, one libevent event per socket) and when to wake it up
 * (CURLMOPT_TIMERFUNCTION, one timer); each wake-up calls curl_multi_socket_action, after
 * which finished transfers are collected with curl_multi_info_read.
 *
 * Finished requests are first moved to a "done" list and their callbacks run afterwards, one
 * at a time, outside any curl call: a callback may start, cancel or even free the client.
 * Freeing the client from inside a callback is deferred until the dispatch loop returns.
 *
 * Every response is bounded: the body by max_body (Content-Length checked up front with
 * CURLOPT_MAXFILESIZE_LARGE, the bytes actually received in the write callback) and the
 * headers by HTTP_MAX_HEADER_BYTES. The SSRF guard sits in CURLOPT_OPENSOCKETFUNCTION, which
 * sees the resolved address of every connection, including those made for redirects.
 */
#include "http.h"

#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

#define HTTP_ADDR_TEXT	64

struct http_req {
	struct http_client *client;
	struct http_req *prev, *next;	/* in client->active or client->done */
	CURL *easy;
	int handle;
	http_cb cb;
	void *arg;
	char *body;
	size_t len, cap, max_body;
	char *post;		/* the request body of a POST, or NULL */
	size_t post_len;
	struct curl_slist *headers;	/* a POST's own header list, or NULL */
	struct curl_slist *connect_to;	/* opts->connect_to as a list, or NULL */
	char *method;		/* a custom method (PROPFIND, PUT...), or NULL */
	bool too_big;		/* body over max_body */
	bool headers_too_big;
	size_t header_bytes;
	long max_age;
	bool blocked;		/* the SSRF guard refused an address */
	char blocked_addr[HTTP_ADDR_TEXT];
	CURLcode code;		/* set when the transfer finished */
	char errbuf[CURL_ERROR_SIZE];
};

/* One watched socket: curl keeps a pointer to it with curl_multi_assign. */
struct http_sock {
	struct http_client *client;
	curl_socket_t fd;
	struct event *ev;
	struct http_sock *prev, *next;
};

struct http_req_list {
	struct http_req *head, *tail;
};

struct http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct curl_slist *headers;
	struct http_req_list active;
	struct http_req_list done;
	struct http_sock *socks;
	int next_handle;
	bool allow_private;
	char *ca_file;
	char *user_agent;
	bool dispatching;	/* running callbacks: defer http_client_free */
	bool free_pending;
};

static pthread_once_t http_global_once = PTHREAD_ONCE_INIT;
static CURLcode http_global_rc;

/* curl_global_init is not safe to run twice concurrently: do it once per process. */
static void http_global_init(void)
{
	http_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void http_list_add(struct http_req_list *l, struct http_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static void http_list_del(struct http_req_list *l, struct http_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
}

const char *http_result_str(enum http_result r)
{
	switch (r) {
	case HTTP_OK:		return "ok";
	case HTTP_ERR_TIMEOUT:	return "timeout";
	case HTTP_ERR_TOO_BIG:	return "too-big";
	case HTTP_ERR_BLOCKED:	return "blocked";
	case HTTP_ERR_TLS:	return "tls";
	case HTTP_ERR_NO_HOST:	return "no-host";
	case HTTP_ERR_CONNECT:	return "connect";
	case HTTP_ERR_OTHER:	return "other";
	}
	return "other";
}

/* ---- per-request curl callbacks ------------------------------------------------------- */

/* Body bytes: keep them while under max_body, otherwise abort the transfer. */
static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;

	if (n > r->max_body - r->len) {
		r->too_big = true;
		return 0;	/* CURLE_WRITE_ERROR */
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;

		while (cap < r->len + n + 1)
			cap *= 2;
		if (cap > r->max_body + 1)
			cap = r->max_body + 1;
		r->body = xrealloc(r->body, cap);
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/*
 * Parse the max-age directive of one Cache-Control value; -1 when absent or malformed.
 * Directives are split on commas so that "s-maxage" is never taken for "max-age".
 */
static long http_parse_max_age(const char *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start, end;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < n && v[i] != ',')
			i++;
		end = i;
		if (end - start > 8 && strncasecmp(v + start, "max-age=", 8) == 0) {
			const char *p = v + start + 8;
			long age = 0;

			if (*p == '"')	/* the quoted form is tolerated (RFC 9111 5.2) */
				p++;
			if (p >= v + end || !isdigit((unsigned char)*p))
				return -1;
			while (p < v + end && isdigit((unsigned char)*p)) {
				/* saturate like RFC 9111 1.2.2 says for huge delta-seconds */
				if (age > (INT_MAX - 9) / 10)
					age = INT_MAX;
				else
					age = age * 10 + (*p - '0');
				p++;
			}
			return age;
		}
	}
	return -1;
}

/* Header lines: bounded in total; a new status line starts a new response (redirects). */
static size_t http_header_cb(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;
	static const char cc[] = "cache-control:";

	if (n > HTTP_MAX_HEADER_BYTES - r->header_bytes) {
		r->headers_too_big = true;
		return 0;
	}
	r->header_bytes += n;
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		r->max_age = -1;
	else if (n > sizeof(cc) - 1 && strncasecmp(data, cc, sizeof(cc) - 1) == 0) {
		long age = http_parse_max_age(data + sizeof(cc) - 1, n - (sizeof(cc) - 1));

		if (age >= 0)
			r->max_age = age;
	}
	return n;
}

/* Socket creation: the SSRF guard. Refused addresses make curl fail with COULDNT_CONNECT. */
static curl_socket_t http_opensocket_cb(void *clientp, curlsocktype purpose,
					struct curl_sockaddr *addr)
{
	struct http_req *r = clientp;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	if (!r->client->allow_private && sockaddr_is_private(&addr->addr)) {
		r->blocked = true;
		sockaddr_ntop(&addr->addr, r->blocked_addr, sizeof(r->blocked_addr));
		log_debug("event=http_blocked addr=%s", r->blocked_addr);
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* ---- completion ----------------------------------------------------------------------- */

static enum http_result http_map_error(struct http_req *r, CURLcode code)
{
	/* a refused address fails the request only when no other address worked */
	if (code != CURLE_OK && r->blocked)
		return HTTP_ERR_BLOCKED;
	switch (code) {
	case CURLE_OK:
		return HTTP_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_ERR_TIMEOUT;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return r->too_big || code == CURLE_FILESIZE_EXCEEDED ? HTTP_ERR_TOO_BIG
								     : HTTP_ERR_OTHER;
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* http_get checked the first URL's scheme: this is a redirect off HTTPS */
		return HTTP_ERR_BLOCKED;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return HTTP_ERR_TLS;
	case CURLE_COULDNT_RESOLVE_HOST:
		return HTTP_ERR_NO_HOST;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		return HTTP_ERR_CONNECT;
	default:
		return HTTP_ERR_OTHER;
	}
}

/* Human-readable reason for a failed request. */
static char *http_error_text(struct http_req *r, enum http_result res, CURLcode code)
{
	const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);

	if (r->blocked && res == HTTP_ERR_BLOCKED)
		return xasprintf("refused to connect to non-public address %s", r->blocked_addr);
	if (res == HTTP_ERR_BLOCKED)
		return xasprintf("redirect to a non-HTTPS URL refused (%s)", detail);
	if (r->headers_too_big)
		return xasprintf("response headers over %d bytes", HTTP_MAX_HEADER_BYTES);
	if (res == HTTP_ERR_TOO_BIG)
		return xasprintf("response body over %zu bytes", r->max_body);
	return xstrdup(detail);
}

static struct http_response *http_response_build(struct http_req *r)
{
	struct http_response *resp = xcalloc(1, sizeof(*resp));
	CURLcode code = r->code;
	const char *ctype = NULL;
	double total = 0;
	long status = 0;

	resp->result = http_map_error(r, code);
	if (r->headers_too_big)
		resp->result = HTTP_ERR_TOO_BIG;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &total);
	resp->status = status;
	resp->elapsed = total;
	resp->max_age = -1;
	resp->retry_after = -1;
	if (resp->result == HTTP_OK) {
		curl_off_t retry = 0;

		if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK &&
		    retry > 0)
			resp->retry_after = retry > LONG_MAX ? LONG_MAX : (long)retry;
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
		if (ctype)
			resp->content_type = xstrdup(ctype);
		resp->max_age = r->max_age;
		{
			const char *loc = NULL;

			if (curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK &&
			    loc)
				resp->location = xstrdup(loc);
		}
		resp->body = r->body ? r->body : xstrdup("");
		resp->len = r->len;
		r->body = NULL;
	} else {
		resp->body = xstrdup("");
		resp->error = http_error_text(r, resp->result, code);
	}
	return resp;
}

static void http_req_free(struct http_req *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	/* header lines may carry credentials (Authorization): wiped before they are freed */
	for (struct curl_slist *h = r->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(r->headers);
	curl_slist_free_all(r->connect_to);
	free(r->method);
	free(r->post);
	free(r->body);
	free(r);
}

/* Detach a request from curl (removing its handle may call the socket callback). */
static void http_req_detach(struct http_client *c, struct http_req *r)
{
	if (r->easy)
		curl_multi_remove_handle(c->multi, r->easy);
}

static void http_client_destroy(struct http_client *c);

/* Move finished transfers to the done list, then run their callbacks one at a time. */
static void http_check_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
		struct http_req *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		r->code = msg->data.result;
		/* msg is invalid after remove_handle: copy first (done above) */
		http_req_detach(c, r);
		http_list_del(&c->active, r);
		http_list_add(&c->done, r);
	}
	if (c->dispatching)
		return;		/* the outer dispatch loop picks them up */
	c->dispatching = true;
	while (!c->free_pending && c->done.head) {
		struct http_req *r = c->done.head;
		struct http_response *resp;

		http_list_del(&c->done, r);
		resp = http_response_build(r);
		log_debug("event=http_done handle=%d result=%s status=%ld elapsed=%.3f",
			  r->handle, http_result_str(resp->result), resp->status, resp->elapsed);
		r->cb(resp, r->arg);
		http_req_free(r);
	}
	c->dispatching = false;
	if (c->free_pending)
		http_client_destroy(c);
}

/* ---- event loop glue ------------------------------------------------------------------ */

static void http_sock_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	http_check_done(c);
}

static void http_timer_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_client *c = arg;
	int running;

	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(c);
}

static void http_sock_free(struct http_client *c, struct http_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	event_free(s->ev);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget one socket. */
static int http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	struct http_sock *s = socketp;
	short events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			http_sock_free(c, s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->client = c;
		s->fd = fd;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	} else {
		event_free(s->ev);
	}
	s->ev = event_new(c->base, fd, events, http_sock_event_cb, c);
	if (s->ev == NULL)
		fatalx("event_new failed for http socket");
	event_add(s->ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(TIMEOUT) after timeout_ms (-1: never). */
static int http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	return 0;
}

/* ---- public API ----------------------------------------------------------------------- */

struct http_client *http_client_new(struct event_base *base, const struct http_client_opts *opts)
{
	struct http_client *c;

	pthread_once(&http_global_once, http_global_init);
	if (http_global_rc != CURLE_OK) {
		log_error("event=http_init error=\"%s\"", curl_easy_strerror(http_global_rc));
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->next_handle = 1;
	c->allow_private = opts && opts->allow_private;
	c->ca_file = opts && opts->ca_file ? xstrdup(opts->ca_file) : NULL;
	c->user_agent = xstrdup(opts && opts->user_agent ? opts->user_agent : "postwarden");
	c->multi = curl_multi_init();
	c->timer = evtimer_new(base, http_timer_event_cb, c);
	if (c->multi == NULL || c->timer == NULL)
		fatalx("cannot create the HTTP client");
	/* no compressed bodies: max_body limits exactly what we store */
	c->headers = curl_slist_append(NULL, "Accept-Encoding: identity");
	if (c->headers == NULL)
		fatalx("out of memory");
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

/* Free everything now; no callback runs. */
static void http_client_destroy(struct http_client *c)
{
	struct http_req *r;

	while ((r = c->active.head) != NULL) {
		http_list_del(&c->active, r);
		http_req_detach(c, r);
		http_req_free(r);
	}
	while ((r = c->done.head) != NULL) {
		http_list_del(&c->done, r);
		http_req_free(r);
	}
	curl_multi_cleanup(c->multi);	/* may still report sockets as removed */
	while (c->socks)
		http_sock_free(c, c->socks);
	event_free(c->timer);
	curl_slist_free_all(c->headers);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
}

void http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	if (c->dispatching) {
		struct http_req *r;

		/* inside a callback: drop the requests now, the client when the loop returns */
		c->free_pending = true;
		while ((r = c->active.head) != NULL) {
			http_list_del(&c->active, r);
			http_req_detach(c, r);
			http_req_free(r);
		}
		return;
	}
	http_client_destroy(c);
}

/* Only http and https URLs are fetched; checked here so a later "unsupported protocol"
 * error can only come from a redirect. */
static bool http_url_scheme_ok(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0;
}

static bool http_easy_setup(struct http_client *c, struct http_req *r, const char *url,
			    const struct http_request_opts *opts)
{
	CURL *e = r->easy;
	long timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	long ctimeout = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : timeout;
	bool follow = opts && opts->follow_https_redirects && r->post == NULL;
	CURLcode rc = CURLE_OK;

#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PRIVATE, r);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_PROXY, "");		/* no proxy from the environment: the guard sees the peer */
	SET(CURLOPT_PROTOCOLS_STR, "https,http");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
	SET(CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
	SET(CURLOPT_TIMEOUT_MS, timeout);
	SET(CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
	SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->ca_file)
		SET(CURLOPT_CAINFO, c->ca_file);
	SET(CURLOPT_USERAGENT, c->user_agent);
	SET(CURLOPT_HTTPHEADER, r->headers ? r->headers : c->headers);
	if (r->method != NULL)
		SET(CURLOPT_CUSTOMREQUEST, r->method);
	if (r->post != NULL) {
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->post_len);
		SET(CURLOPT_POSTFIELDS, r->post);
	}
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
	/* decoded by libcurl; the body limit counts the decoded bytes (the write callback) */
	if (opts && opts->decode_gzip)
		SET(CURLOPT_ACCEPT_ENCODING, "gzip");
	SET(CURLOPT_WRITEFUNCTION, http_write_cb);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_HEADERFUNCTION, http_header_cb);
	SET(CURLOPT_HEADERDATA, r);
	SET(CURLOPT_OPENSOCKETFUNCTION, http_opensocket_cb);
	SET(CURLOPT_OPENSOCKETDATA, r);
	/* a fixed address for a name (tests); the guard above still checks that address */
	if (opts && opts->connect_to) {
		r->connect_to = curl_slist_append(NULL, opts->connect_to);
		if (r->connect_to == NULL)
			fatalx("out of memory");
		SET(CURLOPT_CONNECT_TO, r->connect_to);
	}
#undef SET
	if (rc != CURLE_OK) {
		log_warn("event=http_setup error=\"%s\"", curl_easy_strerror(rc));
		return false;
	}
	return true;
}

/* Start a request whose body (if any) is already in r; shared by GET and POST. */
static int http_start(struct http_client *c, struct http_req *r, const char *url,
		      const struct http_request_opts *opts)
{
	r->client = c;
	r->max_age = -1;
	r->max_body = opts && opts->max_body > 0 ? opts->max_body : HTTP_DEFAULT_MAX_BODY;
	if (r->max_body > SIZE_MAX / 4)	/* keeps the buffer arithmetic clear of overflow */
		r->max_body = SIZE_MAX / 4;
	r->easy = curl_easy_init();
	if (r->easy == NULL || !http_easy_setup(c, r, url, opts)) {
		http_req_free(r);
		return -1;
	}
	r->handle = c->next_handle;
	c->next_handle = c->next_handle == INT_MAX ? 1 : c->next_handle + 1;
	if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
		http_req_free(r);
		return -1;
	}
	http_list_add(&c->active, r);
	return r->handle;
}

/* The common checks of a request's arguments. */
static bool http_args_ok(struct http_client *c, const char *url, http_cb cb)
{
	if (c == NULL || c->free_pending || url == NULL || cb == NULL)
		return false;
	if (!http_url_scheme_ok(url)) {
		log_warn("event=http_request error=\"not an http or https URL\"");
		return false;
	}
	return true;
}

int http_get(struct http_client *c, const char *url, const struct http_request_opts *opts,
	     http_cb cb, void *arg)
{
	struct http_req *r;

	if (!http_args_ok(c, url, cb))
		return -1;
	r = xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	return http_start(c, r, url, opts);
}

int http_post(struct http_client *c, const char *url, const char *content_type,
	      const void *body, size_t len, const struct http_request_opts *opts,
	      http_cb cb, void *arg)
{
	struct http_req *r;
	char *ctype;

	if (!http_args_ok(c, url, cb) || content_type == NULL ||
	    strpbrk(content_type, "\r\n") != NULL)
		return -1;
	r = xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	r->post = xmalloc(len + 1);
	memcpy(r->post, body, len);
	r->post[len] = '\0';
	r->post_len = len;
	ctype = xasprintf("Content-Type: %s", content_type);
	/* no "Expect: 100-continue": a body this small goes at once */
	r->headers = curl_slist_append(r->headers, "Accept-Encoding: identity");
	if (r->headers == NULL || curl_slist_append(r->headers, ctype) == NULL ||
	    curl_slist_append(r->headers, "Expect:") == NULL)
		fatalx("out of memory");
	free(ctype);
	return http_start(c, r, url, opts);
}

int http_request(struct http_client *c, const char *method, const char *url,
		 const char *const *headers, const void *body, size_t len,
		 const struct http_request_opts *opts, http_cb cb, void *arg)
{
	struct http_req *r;

	if (!http_args_ok(c, url, cb) || method == NULL || method[0] == '\0' ||
	    strpbrk(method, " \r\n") != NULL)
		return -1;
	for (size_t i = 0; headers && headers[i]; i++)
		if (strpbrk(headers[i], "\r\n") != NULL)
			return -1;
	r = xcalloc(1, sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	r->method = xstrdup(method);
	if (body != NULL) {
		r->post = xmalloc(len + 1);
		memcpy(r->post, body, len);
		r->post[len] = '\0';
		r->post_len = len;
	}
	r->headers = curl_slist_append(r->headers, "Accept-Encoding: identity");
	if (r->headers == NULL || curl_slist_append(r->headers, "Expect:") == NULL)
		fatalx("out of memory");
	for (size_t i = 0; headers && headers[i]; i++)
		if (curl_slist_append(r->headers, headers[i]) == NULL)
			fatalx("out of memory");
	return http_start(c, r, url, opts);
}

void http_cancel(struct http_client *c, int handle)
{
	struct http_req *r;

	if (c == NULL || handle < 0)
		return;
	for (r = c->active.head; r; r = r->next) {
		if (r->handle == handle) {
			http_list_del(&c->active, r);
			http_req_detach(c, r);
			http_req_free(r);
			return;
		}
	}
	for (r = c->done.head; r; r = r->next) {
		if (r->handle == handle) {
			http_list_del(&c->done, r);
			http_req_free(r);
			return;
		}
	}
}

void http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	free(resp->content_type);
	free(resp->error);
	free(resp->location);
	free(resp);
}

/* ---- URL and query strings ------------------------------------------------------------ */

char *http_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = xmalloc(n * 3 + 1), *p = out;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		/* RFC 3986 unreserved characters stay, everything else is escaped */
		if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			*p++ = (char)ch;
		} else {
			*p++ = '%';
			*p++ = hex[ch >> 4];
			*p++ = hex[ch & 15];
		}
	}
	*p = '\0';
	return out;
}

static int http_hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decode n bytes of application/x-www-form-urlencoded text into out (room for n + 1).
 * Returns false on a bad escape or a decoded NUL.
 */
static bool http_form_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			int hi, lo;

			if (n - i < 3)
				return false;
			hi = http_hexval(s[i + 1]);
			lo = http_hexval(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return true;
}

char *http_query_param(const char *query, const char *name)
{
	size_t qlen;
	const char *p, *end;
	char *key, *val, *found = NULL;

	if (query == NULL || name == NULL)
		return NULL;
	qlen = strnlen(query, HTTP_MAX_QUERY + 1);
	if (qlen > HTTP_MAX_QUERY)
		return NULL;
	key = xmalloc(qlen + 1);
	val = xmalloc(qlen + 1);
	/* every pair is decoded, so one bad escape anywhere rejects the whole query */
	for (p = query, end = query + qlen; p < end; ) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));
		const char *kend = eq ? eq : pair_end;

		if (!http_form_decode(p, (size_t)(kend - p), key) ||
		    !http_form_decode(eq ? eq + 1 : pair_end,
				      eq ? (size_t)(pair_end - eq - 1) : 0, val)) {
			free(found);
			found = NULL;
			break;
		}
		/* the first occurrence of a name wins */
		if (found == NULL && pair_end > p && strcmp(key, name) == 0)
			found = xstrdup(val);
		p = amp ? amp + 1 : end;
	}
	free(key);
	free(val);
	return found;
}
