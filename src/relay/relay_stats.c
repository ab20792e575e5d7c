/*
 * relay_stats.c - the queue's gauges, read from the queue index when metrics are scraped
 * (a scrape every few seconds costs one indexed query; counting every change of state in
 * memory would miss what the command-line tools change, such as a release).
 */
#include "relay.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stats.h"

static const char *const relay_stats_states[] = { "queued", "deferred", "held" };
#define RELAY_STATS_NSTATES (sizeof(relay_stats_states) / sizeof(relay_stats_states[0]))

void relay_stats_collect(struct metrics *m, void *arg)
{
	struct relay *r = arg;
	size_t n[RELAY_STATS_NSTATES] = { 0 };
	int64_t oldest[RELAY_STATS_NSTATES] = { 0 }, now = (int64_t)time(NULL);
	sqlite3_stmt *st = db_prepare(r->db,
		"SELECT r.state, count(*), min(m.received) FROM recipients r "
		"JOIN messages m ON m.id = r.msg_id "
		"WHERE r.state IN ('queued', 'deferred', 'held') GROUP BY r.state");

	/* A database error leaves the gauges at 0 for this scrape, and is logged. */
	db_clear_error(r->db);
	while (db_step_row(r->db, st)) {
		const char *state = (const char *)sqlite3_column_text(st, 0);

		for (size_t i = 0; state && i < RELAY_STATS_NSTATES; i++) {
			if (strcmp(state, relay_stats_states[i]) != 0)
				continue;
			n[i] = (size_t)sqlite3_column_int64(st, 1);
			oldest[i] = sqlite3_column_int64(st, 2);
		}
	}
	sqlite3_finalize(st);
	if (db_error(r->db) != SQLITE_OK)
		log_warn("event=metrics_queue error=\"database: %s\"", db_errmsg(r->db));
	db_clear_error(r->db);
	for (size_t i = 0; i < RELAY_STATS_NSTATES; i++)
		stats_queue(relay_stats_states[i], n[i],
			    n[i] && now > oldest[i] ? (double)(now - oldest[i]) : 0);
}
