/*
 * lease.h - work that must run once in the whole installation (the key directory's DNS
 * reconciliation and expiry; later the CT monitor's log workers) is done by the one node
 * that holds its lease: a row of table leases (name, holder, expires) in the shared
 * database.
 *
 * The holder renews the row well before it expires; another node takes the row over only
 * once it has expired. Expiry is judged by the database's clock alone (every node compares
 * with the same "now"), so the nodes' clocks may disagree. The holder stops acting by its
 * own monotonic clock, before the row can expire: lease_valid_for() is true only while the
 * last successful renewal (timed from before the statement was sent) is recent enough that
 * the row still runs for the asked time plus a margin. So a holder cut off from the
 * database stops acting before anyone else can start, whatever its statements are doing.
 *
 * Renewal runs on one thread (serve's loop); lease_valid_for may be called from any thread.
 */
#ifndef PW_LEASE_H
#define PW_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

struct lease;

/* A lease called name (e.g. "keydir") taken by holder (the node name) for seconds (>= 10). */
struct lease *lease_new(const char *name, const char *holder, int seconds);
void lease_free(struct lease *l);

/*
 * Take the lease if it is free or expired, or renew it if held: true when held now.
 * Call it every lease_renew_interval() seconds. A run-time error of db is not logged
 * here (the caller sees it in db_error); it leaves the lease to run out by the clock.
 */
bool lease_renew(struct lease *l, struct db *db);
/* Seconds between two renewals: a fifth of the lease, so several may fail in a row. */
int lease_renew_interval(const struct lease *l);
/* Give the lease up (clean shutdown): another node may take it at once. */
void lease_release(struct lease *l, struct db *db);

/*
 * May the holder act for the next ms milliseconds? True when it holds the lease and the
 * row outlives now + ms (with a margin for the database's whole-second clock), by this
 * process's monotonic clock. Thread-safe.
 */
bool lease_valid_for(const struct lease *l, int64_t ms);
bool lease_valid(const struct lease *l);

const char *lease_name(const struct lease *l);
/* The holder seen at the last renewal attempt that read one ("" when unknown). */
const char *lease_seen_holder(const struct lease *l);

#endif
