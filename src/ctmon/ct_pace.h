/*
 * ct_pace.h - when the next request to one CT log may start: a token bucket of
 * requests_per_second (the bucket holds one second's worth, so a round may start with a
 * burst of that many), and a pause of the whole log after a 429, a Retry-After or an
 * error. Both run on the event loop's timer: a request that may not start now is not
 * waited for; the owner's wake callback runs when one may, and the owner asks again.
 */
#ifndef PW_CT_PACE_H
#define PW_CT_PACE_H

#include <stdbool.h>

struct event_base;
struct event;

struct ct_pace {
	struct event_base *base;	/* NULL: no pacing (every take succeeds) */
	double rate;			/* tokens per second */
	double burst;			/* the bucket's size */
	double tokens;
	double refilled_at;		/* monotonic seconds of the last refill */
	double paused_until;		/* monotonic seconds; no start before then */
	struct event *timer;		/* armed while the owner waits for a start */
	void (*wake)(void *arg);
	void *arg;
};

/* Monotonic seconds. */
double ct_pace_now(void);

/* per_second 0 means no limit; the bucket starts full. */
void ct_pace_init(struct ct_pace *p, struct event_base *base, unsigned per_second,
		  void (*wake)(void *arg), void *arg);
void ct_pace_clear(struct ct_pace *p);

/*
 * May a request start now? true: yes, and it is counted. false: not yet; wake runs on the
 * loop when one may (once, however often take was refused meanwhile).
 */
bool ct_pace_take(struct ct_pace *p);

/* No request starts for the next seconds (a longer pause already set stays). */
void ct_pace_pause(struct ct_pace *p, double seconds);

#endif
