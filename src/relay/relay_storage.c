/*
 * relay_storage.c - free space on state_dir and failed writes; see relay_storage.h.
 */
#include "relay_storage.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define STORAGE_DB_AWAY		"database-unavailable"	/* what, when the server is away */
#define STORAGE_STATFS_MS	1000	/* look at free space at most this often */

struct storage {
	pthread_mutex_t lock;
	char *dir;
	struct storage_state s;
	int64_t statfs_ms;		/* when free space was last looked at; 0: never */
	int64_t free_bytes;
	int64_t free_inodes;		/* -1: the file system does not count them */
	int64_t started;		/* wall clock, for the log */
	char what[32];
	char error[256];
};

/* Grow the hold time when the condition comes back within a minute of its end. */
static void storage_start(struct storage_state *s, int64_t now_ms)
{
	if (s->ended_ms && now_ms - s->ended_ms < 60000)
		s->hold_ms = s->hold_ms * 2 > STORAGE_HOLD_MAX_MS ? STORAGE_HOLD_MAX_MS
								  : s->hold_ms * 2;
	else
		s->hold_ms = STORAGE_HOLD_MS;
	s->on = true;
}

int storage_note_failure(struct storage_state *s, int64_t now_ms, int64_t hold_min_ms)
{
	int started = !s->on;

	s->last_failure_ms = now_ms;
	if (started)
		storage_start(s, now_ms);
	if (s->hold_ms < hold_min_ms)
		s->hold_ms = hold_min_ms;
	return started;
}

int storage_observe(struct storage_state *s, int64_t now_ms, int64_t free_bytes,
		    int64_t free_inodes)
{
	bool low = free_bytes < STORAGE_MIN_FREE ||
		   (free_inodes >= 0 && free_inodes < STORAGE_MIN_INODES);

	if (low && !s->on) {
		storage_start(s, now_ms);
		return 1;
	}
	if (!low && s->on && now_ms - s->last_failure_ms >= s->hold_ms) {
		s->on = false;
		s->ended_ms = now_ms;
		return -1;
	}
	return 0;
}

struct storage *storage_new(const char *dir)
{
	struct storage *st = xcalloc(1, sizeof(*st));

	pthread_mutex_init(&st->lock, NULL);
	st->dir = xstrdup(dir);
	st->s.hold_ms = STORAGE_HOLD_MS;
	st->free_inodes = -1;
	return st;
}

void storage_free(struct storage *st)
{
	if (st == NULL)
		return;
	pthread_mutex_destroy(&st->lock);
	free(st->dir);
	free(st);
}

static void storage_statfs(struct storage *st, int64_t now);

/* Log the condition's start or end (rc from storage_observe/_note_failure); locked. */
static void storage_log(struct storage *st, int rc)
{
	if (rc > 0) {
		st->started = (int64_t)time(NULL);
		log_error("event=storage_short what=%s error=\"%s\" free_bytes=%" PRId64
			  " action=\"new mail gets 452 4.3.1 until storage is back\"", st->what,
			  st->error, st->free_bytes);
	} else if (rc < 0) {
		log_info("event=storage_recovered after=%llds free_bytes=%" PRId64,
			 (long long)((int64_t)time(NULL) - st->started), st->free_bytes);
	}
}

/* A failed write of what, held at least hold_min_ms. */
static void storage_fail(struct storage *st, const char *what, const char *error,
			 int64_t hold_min_ms)
{
	int64_t now = monotonic_ms();

	pthread_mutex_lock(&st->lock);
	st->statfs_ms = 0;	/* look again: the log line and the next MAIL want it fresh */
	storage_statfs(st, now);
	snprintf(st->what, sizeof(st->what), "%s", what);
	snprintf(st->error, sizeof(st->error), "%s", error);
	storage_log(st, storage_note_failure(&st->s, now, hold_min_ms));
	pthread_mutex_unlock(&st->lock);
}

void storage_failed(struct storage *st, const char *what, const char *error)
{
	storage_fail(st, what, error, 0);
}

void storage_db_failed(struct storage *st, int rc, const char *error)
{
	/* a database server that is away is retried every second: no long hold */
	if (rc == DB_UNAVAILABLE)
		storage_fail(st, STORAGE_DB_AWAY, error, 0);
	else
		storage_fail(st, "database", error, db_rc_is_storage(rc) ? 0 : STORAGE_HOLD_BUSY_MS);
}

bool storage_db_away(struct storage *st)
{
	bool away;

	pthread_mutex_lock(&st->lock);
	away = st->s.on && strcmp(st->what, STORAGE_DB_AWAY) == 0;
	pthread_mutex_unlock(&st->lock);
	return away;
}

bool storage_short(struct storage *st)
{
	bool on;

	pthread_mutex_lock(&st->lock);
	on = st->s.on;
	pthread_mutex_unlock(&st->lock);
	return on;
}

/* Refresh free space at most once a second (statvfs is cheap, but MAIL is frequent). */
static void storage_statfs(struct storage *st, int64_t now)
{
	struct statvfs sv;

	if (st->statfs_ms && now - st->statfs_ms < STORAGE_STATFS_MS)
		return;
	st->statfs_ms = now;
	if (statvfs(st->dir, &sv) < 0) {
		snprintf(st->what, sizeof(st->what), "statvfs");
		snprintf(st->error, sizeof(st->error), "%s", strerror(errno));
		st->free_bytes = 0;
		return;
	}
	st->free_bytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
	st->free_inodes = sv.f_files ? (int64_t)sv.f_favail : -1;
	if (st->free_bytes < STORAGE_MIN_FREE) {
		snprintf(st->what, sizeof(st->what), "free_space");
		snprintf(st->error, sizeof(st->error), "%" PRId64 " bytes free in %s",
			 st->free_bytes, st->dir);
	}
}

bool storage_accepts(struct storage *st, uint64_t size)
{
	int64_t now = monotonic_ms();
	bool ok;

	pthread_mutex_lock(&st->lock);
	storage_statfs(st, now);
	storage_log(st, storage_observe(&st->s, now, st->free_bytes, st->free_inodes));
	/* a message declared larger than what is left is refused without a condition */
	ok = !st->s.on && (uint64_t)st->free_bytes >= STORAGE_MIN_FREE + size;
	pthread_mutex_unlock(&st->lock);
	return ok;
}
