/*
 * metrics.c - the metrics registry and its text exposition format; see metrics.h.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

#define METRICS_MAX_COLLECTORS 8

struct metrics_series {
	char value[METRICS_MAX_VALUE + 1];
	double v;				/* counter, gauge; histogram: the sum */
	uint64_t count;				/* histogram */
	uint64_t buckets[METRICS_MAX_BUCKETS];	/* histogram, not cumulative */
};

struct metrics_family {
	struct metrics *m;
	enum metrics_type type;
	char *name, *help, *label;
	double bounds[METRICS_MAX_BUCKETS];
	size_t nbounds;
	struct metrics_series series[METRICS_MAX_SERIES];
	size_t nseries;
	struct metrics_family *next;
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_family *fams, **tail;
	struct {
		metrics_collect_fn fn;
		void *arg;
	} collectors[METRICS_MAX_COLLECTORS];
	size_t ncollectors;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	if (pthread_mutex_init(&m->lock, NULL) != 0)
		fatalx("metrics: cannot create a mutex");
	m->tail = &m->fams;
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	while (m->fams) {
		struct metrics_family *f = m->fams;

		m->fams = f->next;
		free(f->name);
		free(f->help);
		free(f->label);
		free(f);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; labels have no ':' (and no "__" start). */
static bool metrics_name_ok(const char *s, bool label)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
		return false;
	if (label && strncmp(s, "__", 2) == 0)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (!label && *s == ':')))
			return false;
	return true;
}

struct metrics_family *metrics_register(struct metrics *m, enum metrics_type type,
					const char *name, const char *help, const char *label,
					const double *bounds, size_t nbounds)
{
	struct metrics_family *f;

	if (!metrics_name_ok(name, false) || (label && !metrics_name_ok(label, true)) ||
	    (label && strcmp(label, "le") == 0) || nbounds > METRICS_MAX_BUCKETS ||
	    (type == METRICS_HISTOGRAM) != (nbounds > 0))
		fatalx("metrics: bad registration of %s", name ? name : "(null)");
	for (size_t i = 1; i < nbounds; i++)
		if (!(bounds[i] > bounds[i - 1]))
			fatalx("metrics: %s: bucket bounds must ascend", name);
	f = xcalloc(1, sizeof(*f));
	f->m = m;
	f->type = type;
	f->name = xstrdup(name);
	f->help = xstrdup(help);
	f->label = label ? xstrdup(label) : NULL;
	if (nbounds)
		memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
	f->nbounds = nbounds;
	pthread_mutex_lock(&m->lock);
	for (struct metrics_family *g = m->fams; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			fatalx("metrics: %s registered twice", name);
	*m->tail = f;
	m->tail = &f->next;
	pthread_mutex_unlock(&m->lock);
	return f;
}

/*
 * The series for value, created when new; with the lock held. The last slot is kept for
 * "other", so a full family still counts everything.
 */
static struct metrics_series *metrics_series(struct metrics_family *f, const char *value)
{
	const char *v = f->label == NULL || value == NULL ? "" : value;
	size_t len = strnlen(v, METRICS_MAX_VALUE);	/* longer values are cut */
	struct metrics_series *s;

	for (size_t i = 0; i < f->nseries; i++) {
		s = &f->series[i];
		if (strncmp(s->value, v, len) == 0 && s->value[len] == '\0')
			return s;
	}
	if (f->nseries >= METRICS_MAX_SERIES - 1 && f->label != NULL) {
		v = "other";
		len = strlen(v);
		for (size_t i = 0; i < f->nseries; i++)
			if (strcmp(f->series[i].value, v) == 0)
				return &f->series[i];
	}
	s = &f->series[f->nseries++];
	memcpy(s->value, v, len);
	s->value[len] = '\0';
	return s;
}

void metrics_add(struct metrics_family *f, const char *value, double v)
{
	if (f->type == METRICS_HISTOGRAM || (f->type == METRICS_COUNTER && !(v >= 0)))
		fatalx("metrics: %s: bad addition", f->name);
	pthread_mutex_lock(&f->m->lock);
	metrics_series(f, value)->v += v;
	pthread_mutex_unlock(&f->m->lock);
}

void metrics_set(struct metrics_family *f, const char *value, double v)
{
	if (f->type != METRICS_GAUGE)
		fatalx("metrics: %s is not a gauge", f->name);
	pthread_mutex_lock(&f->m->lock);
	metrics_series(f, value)->v = v;
	pthread_mutex_unlock(&f->m->lock);
}

void metrics_observe(struct metrics_family *f, const char *value, double v)
{
	struct metrics_series *s;
	size_t b = 0;

	if (f->type != METRICS_HISTOGRAM)
		fatalx("metrics: %s is not a histogram", f->name);
	while (b < f->nbounds && v > f->bounds[b])
		b++;
	pthread_mutex_lock(&f->m->lock);
	s = metrics_series(f, value);
	if (b < f->nbounds)
		s->buckets[b]++;
	s->count++;
	s->v += v;
	pthread_mutex_unlock(&f->m->lock);
}

void metrics_on_render(struct metrics *m, metrics_collect_fn fn, void *arg)
{
	if (m->ncollectors == METRICS_MAX_COLLECTORS)
		fatalx("metrics: too many collectors");
	m->collectors[m->ncollectors].fn = fn;
	m->collectors[m->ncollectors].arg = arg;
	m->ncollectors++;
}

/* ---- the text format ------------------------------------------------------------------- */

void metrics_format_double(double v, char *out, size_t outlen)
{
	if (isnan(v)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Counts print as integers; %.17g always reads back, but prints 0.1 as
	 * 0.10000000000000001: take the shortest that does. */
	if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v) {
		snprintf(out, outlen, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* HELP text escapes \ and newline; label values also escape the double quote. */
static void metrics_escape(FILE *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (quote && *s == '"')
			fputs("\\\"", out);
		else
			fputc(*s, out);
	}
}

/* name{label="value",le="bound"} v - the braces only when there is a label. */
static void metrics_sample(FILE *out, const struct metrics_family *f, const char *suffix,
			   const struct metrics_series *s, const char *le, double v)
{
	char num[64];

	fprintf(out, "%s%s", f->name, suffix);
	if (f->label || le) {
		fputc('{', out);
		if (f->label) {
			fprintf(out, "%s=\"", f->label);
			metrics_escape(out, s->value, true);
			fputc('"', out);
		}
		if (le)
			fprintf(out, "%sle=\"%s\"", f->label ? "," : "", le);
		fputc('}', out);
	}
	metrics_format_double(v, num, sizeof(num));
	fprintf(out, " %s\n", num);
}

static void metrics_render_histogram(FILE *out, const struct metrics_family *f,
				     const struct metrics_series *s)
{
	uint64_t cum = 0;
	char le[64];

	for (size_t b = 0; b < f->nbounds; b++) {
		cum += s->buckets[b];
		metrics_format_double(f->bounds[b], le, sizeof(le));
		metrics_sample(out, f, "_bucket", s, le, (double)cum);
	}
	metrics_sample(out, f, "_bucket", s, "+Inf", (double)s->count);
	metrics_sample(out, f, "_sum", s, NULL, s->v);
	metrics_sample(out, f, "_count", s, NULL, (double)s->count);
}

static void metrics_render_family(FILE *out, const struct metrics_family *f)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	struct metrics_series zero = { .value = "" };

	fprintf(out, "# HELP %s ", f->name);
	metrics_escape(out, f->help, false);
	fprintf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
	/* A family without a label always has its one series, 0 until counted. */
	if (f->label == NULL && f->nseries == 0) {
		if (f->type == METRICS_HISTOGRAM)
			metrics_render_histogram(out, f, &zero);
		else
			metrics_sample(out, f, "", &zero, NULL, 0);
	}
	for (size_t i = 0; i < f->nseries; i++) {
		if (f->type == METRICS_HISTOGRAM)
			metrics_render_histogram(out, f, &f->series[i]);
		else
			metrics_sample(out, f, "", &f->series[i], NULL, f->series[i].v);
	}
}

char *metrics_render(struct metrics *m, size_t *len)
{
	char *text = NULL;
	size_t n = 0;
	FILE *out;

	for (size_t i = 0; i < m->ncollectors; i++)
		m->collectors[i].fn(m, m->collectors[i].arg);
	if ((out = open_memstream(&text, &n)) == NULL)
		fatal("metrics: open_memstream");
	pthread_mutex_lock(&m->lock);
	for (const struct metrics_family *f = m->fams; f; f = f->next)
		metrics_render_family(out, f);
	pthread_mutex_unlock(&m->lock);
	if (fclose(out) != 0)
		fatal("metrics: rendering");
	if (len)
		*len = n;
	return text;
}
