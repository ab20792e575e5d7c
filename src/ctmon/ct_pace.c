/*
 * ct_pace.c - a CT log's request rate and pauses; see ct_pace.h.
 */
#include "ct_pace.h"

#include <math.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"

double ct_pace_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void ct_pace_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ct_pace *p = arg;

	(void)fd;
	(void)what;
	p->wake(p->arg);
}

void ct_pace_init(struct ct_pace *p, struct event_base *base, unsigned per_second,
		  void (*wake)(void *arg), void *arg)
{
	p->base = base;
	p->rate = per_second ? (double)per_second : INFINITY;
	p->burst = per_second ? (double)per_second : 1;
	p->tokens = p->burst;
	p->refilled_at = ct_pace_now();
	p->paused_until = 0;
	p->timer = NULL;
	p->wake = wake;
	p->arg = arg;
	if (base != NULL && (p->timer = evtimer_new(base, ct_pace_timer_cb, p)) == NULL)
		fatalx("cannot create a timer");
}

void ct_pace_clear(struct ct_pace *p)
{
	if (p->timer != NULL)
		event_free(p->timer);
	p->timer = NULL;
}

/* Arm the timer for delay seconds from now, unless it is armed already. */
static void ct_pace_wait(struct ct_pace *p, double delay)
{
	struct timeval tv;

	if (evtimer_pending(p->timer, NULL))
		return;
	if (delay < 0.001)
		delay = 0.001;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6) + 1;
	if (tv.tv_usec >= 1000000) {
		tv.tv_sec++;
		tv.tv_usec -= 1000000;
	}
	evtimer_add(p->timer, &tv);
}

bool ct_pace_take(struct ct_pace *p)
{
	double now;

	if (p->base == NULL)
		return true;
	now = ct_pace_now();
	if (now < p->paused_until) {
		ct_pace_wait(p, p->paused_until - now);
		return false;
	}
	if (isinf(p->rate))
		return true;
	p->tokens += (now - p->refilled_at) * p->rate;
	if (p->tokens > p->burst)
		p->tokens = p->burst;
	p->refilled_at = now;
	if (p->tokens >= 1) {
		p->tokens -= 1;
		return true;
	}
	ct_pace_wait(p, (1 - p->tokens) / p->rate);
	return false;
}

void ct_pace_pause(struct ct_pace *p, double seconds)
{
	double until = ct_pace_now() + seconds;

	if (until > p->paused_until)
		p->paused_until = until;
	/* a wake-up armed for an earlier start would only be refused: move it */
	if (p->timer != NULL && evtimer_pending(p->timer, NULL)) {
		evtimer_del(p->timer);
		ct_pace_wait(p, p->paused_until - ct_pace_now());
	}
}
