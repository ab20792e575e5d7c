/*
 * metrics_http.h - GET /metrics over HTTP on the event loop, for Prometheus to scrape.
 */
#ifndef PW_METRICS_HTTP_H
#define PW_METRICS_HTTP_H

#include <stdint.h>

struct event_base;
struct metrics;
struct metrics_http;

/*
 * Serve m (borrowed) at http://host:port/metrics. NULL with *err when the address cannot be
 * bound. GET (and HEAD) of /metrics only: other paths get 404, other methods 405.
 */
struct metrics_http *metrics_http_start(struct event_base *base, struct metrics *m,
					const char *host, uint16_t port, char **err);
void metrics_http_stop(struct metrics_http *mh);

#endif
