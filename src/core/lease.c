/*
 * lease.c - leases held in the database for work that runs once in the installation; see
 * lease.h.
 *
 * One statement takes or renews: an upsert that only overwrites the row when it is ours or
 * has expired, returning the row when it did. The same text on both engines but for the
 * database's clock (DB_SQL, side by side). Timing, with the lease L seconds long and renewed
 * every L/5:
 *   - the row, once written at database time T (whole seconds, rounded down), expires
 *     after T + L, so no other node takes it before (its start of the renewal) + L - 1;
 *   - the holder acts only while now + the asked time < (start of the last successful
 *     renewal) + L - LEASE_MARGIN, by its monotonic clock;
 *   - a dead holder's lease is taken over by another node within L + 1 + L/5 seconds.
 */
#include "lease.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

/* Seconds kept between the holder's last moment and the row's expiry: the database's
 * clock counts whole seconds, and the two clocks may run apart a little during a lease. */
#define LEASE_MARGIN 2

struct lease {
	char *name;
	char *holder;
	int seconds;
	_Atomic int64_t renewed_ms;	/* monotonic ms at the start of the last good renewal, 0: not held */
	char seen[128];			/* the holder found when we could not take it */
};

#define LEASE_TAKE(now) \
	"INSERT INTO leases(name, holder, expires) VALUES (?1, ?2, " now " + ?3) " \
	"ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires " \
	"WHERE leases.holder = excluded.holder OR leases.expires < " now " RETURNING holder"

static const char lease_take_sqlite[] = LEASE_TAKE(DB_NOW_SQLITE);
static const char lease_take_pg[] = LEASE_TAKE(DB_NOW_PG);

struct lease *lease_new(const char *name, const char *holder, int seconds)
{
	struct lease *l = xcalloc(1, sizeof(*l));

	if (seconds < 10)
		fatalx("lease %s: %d seconds is too short", name, seconds);
	l->name = xstrdup(name);
	l->holder = xstrdup(holder);
	l->seconds = seconds;
	atomic_init(&l->renewed_ms, 0);
	return l;
}

void lease_free(struct lease *l)
{
	if (l == NULL)
		return;
	free(l->name);
	free(l->holder);
	free(l);
}

int lease_renew_interval(const struct lease *l)
{
	return l->seconds / 5;
}

const char *lease_name(const struct lease *l)
{
	return l->name;
}

const char *lease_seen_holder(const struct lease *l)
{
	return l->seen;
}

/* Who holds the lease now (for the logs); "" when it cannot be read. */
static void lease_read_holder(struct lease *l, struct db *db)
{
	struct db_stmt *st = db_prepare(db, "SELECT holder FROM leases WHERE name = ?");

	l->seen[0] = '\0';
	db_bind_text(st, 1, l->name);
	if (db_step_row(db, st))
		snprintf(l->seen, sizeof(l->seen), "%s", db_col_text(st, 0));
	db_finalize(st);
}

bool lease_renew(struct lease *l, struct db *db)
{
	int64_t start = monotonic_ms();
	const char *sql = DB_SQL(db, lease_take_sqlite, lease_take_pg);
	struct db_stmt *st = db_prepare_cached(db, sql);
	int rc;

	db_bind_text(st, 1, l->name);
	db_bind_text(st, 2, l->holder);
	db_bind_int(st, 3, l->seconds);
	rc = db_step(db, st);
	if (rc == DB_ROW && db_step_finish(db, st) != DB_DONE)
		rc = DB_ERROR;	/* the row was made but not committed: a run-time error */
	db_release(db, st);
	if (rc == DB_ROW) {
		atomic_store(&l->renewed_ms, start);
		snprintf(l->seen, sizeof(l->seen), "%s", l->holder);
		return true;
	}
	if (rc == DB_DONE) {
		/* someone else holds it and it has not expired: certainly not ours */
		atomic_store(&l->renewed_ms, 0);
		lease_read_holder(l, db);
		return false;
	}
	/* a run-time error: the row may still be ours; the clock decides (lease_valid_for) */
	return false;
}

void lease_release(struct lease *l, struct db *db)
{
	struct db_stmt *st;

	if (atomic_exchange(&l->renewed_ms, 0) == 0)
		return;
	st = db_prepare(db, "DELETE FROM leases WHERE name = ? AND holder = ?");
	db_bind_text(st, 1, l->name);
	db_bind_text(st, 2, l->holder);
	db_step_done(db, st);
	db_finalize(st);
}

bool lease_valid_for(const struct lease *l, int64_t ms)
{
	int64_t renewed = atomic_load(&l->renewed_ms);

	return renewed != 0 &&
	       monotonic_ms() + ms < renewed + (int64_t)(l->seconds - LEASE_MARGIN) * 1000;
}

bool lease_valid(const struct lease *l)
{
	return lease_valid_for(l, 0);
}
