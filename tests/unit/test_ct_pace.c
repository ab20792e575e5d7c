/*
 * test_ct_pace.c - a CT log's request pace on a real event loop: with 5 per second the
 * first 5 starts come at once and 15 take at least 2 s, each refused start is woken by the
 * timer (never a busy loop: the wake-ups are counted); a pause holds every start until it
 * is over and moves a wake-up already armed; without a limit every start is allowed.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "ctmon/ct_pace.h"
#include "unit.h"

struct run {
	struct ct_pace pace;
	struct event_base *base;
	unsigned want, started, wakes;
	double first, last;
};

/* Start as many as the pace allows; the loop ends when want have started. */
static void run_starts(struct run *r)
{
	while (r->started < r->want && ct_pace_take(&r->pace)) {
		r->last = ct_pace_now();
		r->started++;
	}
	if (r->started == r->want)
		event_base_loopbreak(r->base);
}

static void run_wake(void *arg)
{
	struct run *r = arg;

	r->wakes++;
	run_starts(r);
}

static void run_init(struct run *r, unsigned per_second, unsigned want)
{
	r->base = event_base_new();
	ct_pace_init(&r->pace, r->base, per_second, run_wake, r);
	r->want = want;
	r->started = r->wakes = 0;
	r->first = ct_pace_now();
}

static void run_loop(struct run *r)
{
	run_starts(r);
	if (r->started < r->want)
		event_base_dispatch(r->base);
	ct_pace_clear(&r->pace);
	event_base_free(r->base);
}

static void test_rate(void)
{
	struct run r;

	run_init(&r, 5, 5);
	run_loop(&r);
	CHECK(r.started == 5);
	CHECK(r.wakes == 0);			/* a full bucket: all at once */
	run_init(&r, 5, 15);
	run_loop(&r);
	CHECK(r.started == 15);
	CHECK(r.last - r.first >= 2.0 - 0.01);	/* (15 - 5) / 5 s */
	CHECK(r.wakes >= 1 && r.wakes <= 12);	/* woken by the timer, not spinning */
}

static void test_pause(void)
{
	struct run r;

	run_init(&r, 0, 3);
	CHECK(ct_pace_take(&r.pace));		/* no limit */
	CHECK(ct_pace_take(&r.pace));
	ct_pace_pause(&r.pace, 0.5);
	r.started = 2;
	CHECK(!ct_pace_take(&r.pace));		/* paused: refused, a wake-up armed */
	ct_pace_pause(&r.pace, 0.8);		/* a longer pause moves it */
	ct_pace_pause(&r.pace, 0.1);		/* a shorter one changes nothing */
	run_loop(&r);
	CHECK(r.started == 3);
	CHECK(r.wakes == 1);
	CHECK(r.last - r.first >= 0.8 - 0.01);
}

static void test_no_loop(void)
{
	struct ct_pace p;

	ct_pace_init(&p, NULL, 1, NULL, NULL);	/* no loop: nothing to wait with */
	for (int i = 0; i < 100; i++)
		CHECK(ct_pace_take(&p));
	ct_pace_clear(&p);
}

TEST_MAIN(test_rate, test_pause, test_no_loop)
