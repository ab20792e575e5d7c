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
	struct db_stmt *st = db_prepare(r->db,
		"SELECT r.state, count(*), min(m.received) FROM recipients r "
		"JOIN messages m ON m.id = r.msg_id "
		"WHERE r.state IN ('queued', 'deferred', 'held') AND m.node = ? GROUP BY r.state");
	struct db_stats dbs;

	/* A database error leaves the gauges at 0 for this scrape, and is logged. */
	db_bind_text(st, 1, r->cfg->server.node);	/* this node's queue: its spool */
	db_clear_error(r->db);
	while (db_step_row(r->db, st)) {
		const char *state = db_col_text_or_null(st, 0);

		for (size_t i = 0; state && i < RELAY_STATS_NSTATES; i++) {
			if (strcmp(state, relay_stats_states[i]) != 0)
				continue;
			n[i] = (size_t)db_col_int(st, 1);
			oldest[i] = db_col_int(st, 2);
		}
	}
	db_finalize(st);
	db_get_stats(r->db, &dbs);
	stats_db_connection("serve", dbs.statements, dbs.usec);
	if (db_error(r->db) != DB_OK)
		log_warn("event=metrics_queue error=\"database: %s\"", db_errmsg(r->db));
	db_clear_error(r->db);
	for (size_t i = 0; i < RELAY_STATS_NSTATES; i++)
		stats_queue(relay_stats_states[i], n[i],
			    n[i] && now > oldest[i] ? (double)(now - oldest[i]) : 0);
}
