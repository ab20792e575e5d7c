/*
 * test_metrics.c - the metrics registry and its text exposition format.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

/* Does text hold this exact line? */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

static void test_counter_and_gauge(void)
{
	struct metrics *m = metrics_new();
	struct metrics_family *c = metrics_register(m, METRICS_COUNTER, "pw_sent_total",
						    "Messages sent.", NULL, NULL, 0);
	struct metrics_family *r = metrics_register(m, METRICS_COUNTER, "pw_held_total",
						    "Held, by reason.", "reason", NULL, 0);
	struct metrics_family *g = metrics_register(m, METRICS_GAUGE, "pw_queue", "Queue size.",
						    "state", NULL, 0);
	char *t;

	t = metrics_render(m, NULL);
	/* a family without a label shows 0 before anything is counted; labelled ones nothing */
	CHECK(has_line(t, "pw_sent_total 0"));
	CHECK(has_line(t, "# TYPE pw_held_total counter"));
	CHECK(strstr(t, "pw_held_total{") == NULL);
	free(t);
	metrics_add(c, NULL, 1);
	metrics_add(c, NULL, 2);
	metrics_add(r, "no_tls", 1);
	metrics_add(r, "dane_failed", 1);
	metrics_add(r, "no_tls", 1);
	metrics_set(g, "queued", 7);
	metrics_set(g, "queued", 5);
	metrics_add(g, "held", -1);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, "# HELP pw_sent_total Messages sent."));
	CHECK(has_line(t, "# TYPE pw_sent_total counter"));
	CHECK(has_line(t, "pw_sent_total 3"));
	CHECK(has_line(t, "pw_held_total{reason=\"no_tls\"} 2"));
	CHECK(has_line(t, "pw_held_total{reason=\"dane_failed\"} 1"));
	CHECK(has_line(t, "# TYPE pw_queue gauge"));
	CHECK(has_line(t, "pw_queue{state=\"queued\"} 5"));
	CHECK(has_line(t, "pw_queue{state=\"held\"} -1"));
	/* HELP and TYPE come before the family's samples */
	CHECK(strstr(t, "# TYPE pw_held_total counter") < strstr(t, "pw_held_total{"));
	free(t);
	metrics_free(m);
}

static void test_histogram(void)
{
	static const double b[] = { 0.1, 0.5, 1 };
	struct metrics *m = metrics_new();
	struct metrics_family *h = metrics_register(m, METRICS_HISTOGRAM, "pw_latency_seconds",
						    "Latency.", "source", b, 3);
	char *t;

	metrics_observe(h, "dns", 0.05);
	metrics_observe(h, "dns", 0.1);		/* le is inclusive */
	metrics_observe(h, "dns", 0.7);
	metrics_observe(h, "dns", 3);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, "# TYPE pw_latency_seconds histogram"));
	CHECK(has_line(t, "pw_latency_seconds_bucket{source=\"dns\",le=\"0.1\"} 2"));
	CHECK(has_line(t, "pw_latency_seconds_bucket{source=\"dns\",le=\"0.5\"} 2"));
	CHECK(has_line(t, "pw_latency_seconds_bucket{source=\"dns\",le=\"1\"} 3"));
	CHECK(has_line(t, "pw_latency_seconds_bucket{source=\"dns\",le=\"+Inf\"} 4"));
	CHECK(has_line(t, "pw_latency_seconds_sum{source=\"dns\"} 3.85"));
	CHECK(has_line(t, "pw_latency_seconds_count{source=\"dns\"} 4"));
	free(t);
	metrics_free(m);
}

static void test_unlabelled_histogram(void)
{
	static const double b[] = { 1 };
	struct metrics *m = metrics_new();

	metrics_register(m, METRICS_HISTOGRAM, "pw_h", "H.", NULL, b, 1);
	char *t = metrics_render(m, NULL);
	CHECK(has_line(t, "pw_h_bucket{le=\"1\"} 0"));
	CHECK(has_line(t, "pw_h_bucket{le=\"+Inf\"} 0"));
	CHECK(has_line(t, "pw_h_sum 0"));
	CHECK(has_line(t, "pw_h_count 0"));
	free(t);
	metrics_free(m);
}

static void test_escaping(void)
{
	struct metrics *m = metrics_new();
	struct metrics_family *f = metrics_register(m, METRICS_COUNTER, "pw_x_total",
						    "A \\ and a\nnewline \"kept\".", "v", NULL, 0);
	char *t;

	metrics_add(f, "a\"b\\c\nd", 1);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, "# HELP pw_x_total A \\\\ and a\\nnewline \"kept\"."));
	CHECK(has_line(t, "pw_x_total{v=\"a\\\"b\\\\c\\nd\"} 1"));
	free(t);
	metrics_free(m);
}

/* Outside values cannot grow a family past its bound: the rest is counted as "other". */
static void test_bounded_series(void)
{
	struct metrics *m = metrics_new();
	struct metrics_family *f = metrics_register(m, METRICS_COUNTER, "pw_y_total", "Y.", "v",
						    NULL, 0);
	char v[METRICS_MAX_VALUE + 40], *t;
	size_t lines = 0;

	for (int i = 0; i < 1000; i++) {
		snprintf(v, sizeof(v), "value%d", i);
		metrics_add(f, v, 1);
	}
	memset(v, 'z', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	metrics_add(f, v, 1);
	t = metrics_render(m, NULL);
	for (const char *p = t; (p = strstr(p, "pw_y_total{")) != NULL; p++)
		lines++;
	CHECK(lines == METRICS_MAX_SERIES);
	CHECK(has_line(t, "pw_y_total{v=\"value0\"} 1"));
	CHECK(has_line(t, "pw_y_total{v=\"value30\"} 1"));
	CHECK(!has_line(t, "pw_y_total{v=\"value31\"} 1"));
	CHECK(has_line(t, "pw_y_total{v=\"other\"} 970"));
	free(t);
	metrics_free(m);
}

/* A long value is cut at METRICS_MAX_VALUE bytes; values that agree up to there share one. */
static void test_long_value_cut(void)
{
	struct metrics *m = metrics_new();
	struct metrics_family *f = metrics_register(m, METRICS_COUNTER, "pw_z_total", "Z.", "v",
						    NULL, 0);
	char a[METRICS_MAX_VALUE + 20], want[METRICS_MAX_VALUE + 40], *t;

	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	metrics_add(f, a, 1);
	a[METRICS_MAX_VALUE + 5] = 'b';		/* differs only past the cut */
	metrics_add(f, a, 1);
	metrics_add(f, "a", 1);			/* a prefix is a value of its own */
	snprintf(want, sizeof(want), "pw_z_total{v=\"%.*s\"} 2", METRICS_MAX_VALUE, a);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, want));
	CHECK(has_line(t, "pw_z_total{v=\"a\"} 1"));
	free(t);
	metrics_free(m);
}

static void test_format_double(void)
{
	char b[64];

	metrics_format_double(0.005, b, sizeof(b));
	CHECK_STREQ(b, "0.005");
	metrics_format_double(3, b, sizeof(b));
	CHECK_STREQ(b, "3");
	metrics_format_double(1e21, b, sizeof(b));
	CHECK_STREQ(b, "1e+21");
	metrics_format_double(1.0 / 0.0, b, sizeof(b));
	CHECK_STREQ(b, "+Inf");
	metrics_format_double(0.1 + 0.2, b, sizeof(b));
	CHECK(strtod(b, NULL) == 0.1 + 0.2);
}

static void collect(struct metrics *m, void *arg)
{
	metrics_set(arg, NULL, 42);
}

static void test_collector(void)
{
	struct metrics *m = metrics_new();
	struct metrics_family *g = metrics_register(m, METRICS_GAUGE, "pw_age_seconds", "Age.",
						    NULL, NULL, 0);
	char *t;

	metrics_on_render(m, collect, g);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, "pw_age_seconds 42"));
	free(t);
	metrics_free(m);
}

struct thread_arg {
	struct metrics_family *f;
};

static void *adder(void *arg)
{
	struct thread_arg *a = arg;

	for (int i = 0; i < 100000; i++)
		metrics_add(a->f, i % 2 ? "odd" : "even", 1);
	return NULL;
}

/* Updates from several threads are not lost. */
static void test_threads(void)
{
	struct metrics *m = metrics_new();
	struct thread_arg a = { metrics_register(m, METRICS_COUNTER, "pw_t_total", "T.", "p",
						 NULL, 0) };
	pthread_t th[4];
	char *t;

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, adder, &a);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	t = metrics_render(m, NULL);
	CHECK(has_line(t, "pw_t_total{p=\"odd\"} 200000"));
	CHECK(has_line(t, "pw_t_total{p=\"even\"} 200000"));
	free(t);
	metrics_free(m);
}

TEST_MAIN(test_counter_and_gauge, test_histogram, test_unlabelled_histogram, test_escaping,
	  test_bounded_series, test_long_value_cut, test_format_double, test_collector, test_threads)
