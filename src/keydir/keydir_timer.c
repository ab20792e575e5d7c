/*
 * keydir_timer.c - serve's key directory timer: every retry_interval a worker thread
 * reconciles the names that are due (failed updates, changes made while the DNS server
 * was away), and once a day it takes down keys that expire within expiry_margin.
 *
 * DNS updates block (connect, send, wait for the reply), so they never run on the event
 * loop: the timer only starts a thread, and skips a tick while the previous pass still
 * runs. The thread opens its own database connection.
 *
 * With several nodes this work runs once in the installation: only on the node holding the
 * lease "keydir" (serve renews it, node.c). A pass starts only while the lease runs for
 * longer than the pass's first step, and the reconciliation asks again before each DNS
 * update (keydir.may_act), so a node that can no longer renew stops before its lease can
 * expire and another node take it.
 */
#include "keydir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "lease.h"
#include "log.h"
#include "schema.h"
#include "stats.h"
#include "xmalloc.h"

#define TIMER_FIRST_DELAY 1		/* seconds after start: pick up what is pending */
#define TIMER_EXPIRY_EVERY (24 * 3600)

struct keydir_timer {
	const struct pw_config *cfg;	/* borrowed */
	const struct lease *lease;	/* borrowed; NULL: always act */
	bool standby;			/* the last tick found the lease held elsewhere (logged) */
	struct event *ev;
	pthread_t thread;
	bool started;			/* a thread was created and not yet joined */
	bool started_once;
	atomic_bool running;
	int64_t last_expiry;		/* 0: never in this process */
	bool expire_now;		/* handed to the thread */
	bool all;			/* first pass: every pending name, due or not */
};

/* keydir.may_act: does the lease still run for ms? */
static bool timer_may_act(void *arg, int64_t ms)
{
	const struct keydir_timer *t = arg;

	return t->lease == NULL || lease_valid_for(t->lease, ms);
}

/* One pass in the worker thread. */
static void *timer_pass(void *arg)
{
	struct keydir_timer *t = arg;
	struct keydir_report rep = { 0 };
	char *err = NULL;
	struct db *db = schema_open(t->cfg, schema_serve_mode(t->cfg), &err);
	int64_t now = (int64_t)time(NULL);

	if (db == NULL) {
		log_error("event=keydir_timer error=\"%s\"", err);
		free(err);
		atomic_store(&t->running, false);
		return NULL;
	}
	struct keydir kd = { .cfg = t->cfg, .db = db, .may_act = timer_may_act, .may_act_arg = t };
	log_debug("event=keydir_pass node=%s expire=%s", t->cfg->server.node,
		  t->expire_now ? "yes" : "no");
	if (t->expire_now && timer_may_act(t, KEYDIR_ACT_MS)) {
		size_t n = keydir_expire(&kd, now);
		log_info("event=keydir_expiry removed=%zu", n);
	}
	if (keydir_reconcile(&kd, t->all, now, &rep) < 0)
		log_warn("event=keydir_retry done=%zu pending=%zu error=\"%s\"", rep.done, rep.failed,
			 rep.error ? rep.error : "");
	else if (rep.done)
		log_info("event=keydir_retry done=%zu", rep.done);
	stats_keydir_pending(rep.failed);
	keydir_report_free(&rep);
	if (db_error(db) != DB_OK)	/* what was not recorded is done again next pass */
		log_warn("event=keydir_timer error=\"database: %s\"", db_errmsg(db));
	db_close(db);
	atomic_store(&t->running, false);
	return NULL;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct keydir_timer *t = arg;
	struct timeval tv = { .tv_sec = t->cfg->keydir.retry_interval };
	struct timeval soon = { .tv_sec = TIMER_FIRST_DELAY };
	int64_t now = (int64_t)time(NULL);

	event_add(t->ev, &tv);
	if (atomic_load(&t->running))
		return;
	if (!timer_may_act(t, KEYDIR_ACT_MS)) {
		if (!t->standby)
			log_info("event=keydir_standby node=%s lease=%s", t->cfg->server.node,
				 "not held");
		t->standby = true;
		t->started_once = false;	/* once it is taken: everything pending at once */
		event_add(t->ev, &soon);	/* and soon after it is taken */
		return;
	}
	if (t->standby)
		log_info("event=keydir_active node=%s", t->cfg->server.node);
	t->standby = false;
	if (t->started) {
		pthread_join(t->thread, NULL);
		t->started = false;
	}
	t->expire_now = t->last_expiry == 0 || now - t->last_expiry >= TIMER_EXPIRY_EVERY;
	if (t->expire_now)
		t->last_expiry = now;
	/* After a restart (often a configuration fix) everything pending is tried at once. */
	t->all = !t->started_once;
	t->started_once = true;
	atomic_store(&t->running, true);
	if (pthread_create(&t->thread, NULL, timer_pass, t) != 0) {
		log_error("event=keydir_timer error=\"cannot start a thread\"");
		atomic_store(&t->running, false);
		return;
	}
	t->started = true;
}

struct keydir_timer *keydir_timer_start(struct event_base *base, const struct pw_config *cfg,
					const struct lease *lease)
{
	struct keydir_timer *t = xcalloc(1, sizeof(*t));
	struct timeval tv = { .tv_sec = TIMER_FIRST_DELAY };

	t->cfg = cfg;
	t->lease = lease;
	atomic_init(&t->running, false);
	t->ev = evtimer_new(base, timer_cb, t);
	if (t->ev == NULL)
		fatalx("cannot create the key directory timer");
	event_add(t->ev, &tv);
	return t;
}

void keydir_timer_stop(struct keydir_timer *t)
{
	if (t == NULL)
		return;
	event_free(t->ev);
	if (t->started)
		pthread_join(t->thread, NULL);
	free(t);
}
