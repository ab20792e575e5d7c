/*
 * metrics.h - a small registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * A family has a name, a help text and at most one label (e.g. "reason"); each distinct label
 * value is a series. The number of series of a family is bounded (METRICS_MAX_SERIES): once
 * full, new label values are counted under the value "other", so a value that comes from
 * outside can never make the registry grow without end. Label values are cut at
 * METRICS_MAX_VALUE bytes. Histograms have fixed bucket bounds given at registration.
 *
 * Every update and the rendering take the registry's mutex: the queue worker and the key
 * directory's timer thread count too, and an update is a few additions.
 */
#ifndef PW_METRICS_H
#define PW_METRICS_H

#include <stddef.h>

#define METRICS_MAX_SERIES 32
#define METRICS_MAX_BUCKETS 16
#define METRICS_MAX_VALUE 64

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

struct metrics;
struct metrics_family;

/* Called by metrics_render before it renders: gauges that are computed when scraped. */
typedef void (*metrics_collect_fn)(struct metrics *m, void *arg);

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/*
 * Register a family. label is the label's name or NULL (one series, no label); bounds are
 * the histogram's upper bounds, ascending, without +Inf (NULL and 0 for the other types).
 * A name registered twice, a bad name or too many buckets is a bug: fatal.
 */
struct metrics_family *metrics_register(struct metrics *m, enum metrics_type type,
					const char *name, const char *help, const char *label,
					const double *bounds, size_t nbounds);

/* Counter or gauge: add v (a counter only grows: v < 0 is a bug). value NULL: no label. */
void metrics_add(struct metrics_family *f, const char *value, double v);
/* Gauge: set to v. */
void metrics_set(struct metrics_family *f, const char *value, double v);
/* Histogram: one observation. */
void metrics_observe(struct metrics_family *f, const char *value, double v);

/* Add a collector (at most a few; run in the order added, by metrics_render). */
void metrics_on_render(struct metrics *m, metrics_collect_fn fn, void *arg);

/* The exposition text, NUL-terminated (caller frees); *len its length. */
char *metrics_render(struct metrics *m, size_t *len);

/* The shortest decimal text that reads back as v ("+Inf", "-Inf", "NaN" for those). */
void metrics_format_double(double v, char *out, size_t outlen);

#endif
