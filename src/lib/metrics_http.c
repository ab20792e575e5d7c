/*
 * metrics_http.c - the metrics endpoint: libevent's evhttp on serve's loop. A request is
 * outside input: its headers and body are bounded, and idle connections time out. The
 * rendering runs on the loop; it takes a few microseconds per family.
 */
#include "metrics_http.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "metrics.h"
#include "xmalloc.h"

#define METRICS_HTTP_MAX_HEADERS 4096
#define METRICS_HTTP_MAX_BODY 256
#define METRICS_HTTP_TIMEOUT 10		/* seconds */

struct metrics_http {
	struct metrics *m;		/* borrowed */
	struct evhttp *http;
};

static void metrics_http_text(struct evhttp_request *req, int code, const char *reason,
			      const char *ctype, const char *body, size_t len)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, code, reason, NULL);
}

static void metrics_http_handle(struct evhttp_request *req, void *arg)
{
	struct metrics_http *mh = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char *text;
	size_t len;

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		metrics_http_text(req, 405, "Method Not Allowed", "text/plain; charset=utf-8",
				  "only GET\n", strlen("only GET\n"));
		return;
	}
	if (path == NULL || strcmp(path, "/metrics") != 0) {
		metrics_http_text(req, 404, "Not Found", "text/plain; charset=utf-8",
				  "not found: try /metrics\n", strlen("not found: try /metrics\n"));
		return;
	}
	text = metrics_render(mh->m, &len);
	metrics_http_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

struct metrics_http *metrics_http_start(struct event_base *base, struct metrics *m,
					const char *host, uint16_t port, char **err)
{
	struct metrics_http *mh = xcalloc(1, sizeof(*mh));

	mh->m = m;
	if ((mh->http = evhttp_new(base)) == NULL) {
		*err = xstrdup("[metrics]: cannot create the HTTP server");
		metrics_http_stop(mh);
		return NULL;
	}
	evhttp_set_max_headers_size(mh->http, METRICS_HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(mh->http, METRICS_HTTP_MAX_BODY);
	evhttp_set_timeout(mh->http, METRICS_HTTP_TIMEOUT);
	/* Every method reaches the handler, so that the others get 405 rather than 501. */
	evhttp_set_allowed_methods(mh->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_gencb(mh->http, metrics_http_handle, mh);
	if (evhttp_bind_socket_with_handle(mh->http, host, port) == NULL) {
		*err = xasprintf("[metrics] listen: cannot listen on %s:%u (address in use or not "
				 "available)", host, port);
		metrics_http_stop(mh);
		return NULL;
	}
	log_info("event=metrics_listen listen=%s:%u", host, port);
	return mh;
}

void metrics_http_stop(struct metrics_http *mh)
{
	if (mh == NULL)
		return;
	if (mh->http)
		evhttp_free(mh->http);
	free(mh);
}
