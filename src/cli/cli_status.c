/*
 * cli_status.c - "postwarden status": the operator's view of the installation, read from
 * the database alone (so it works with serve stopped, and on any machine that reaches a
 * shared PostgreSQL): the nodes and their heartbeats, the queue per state, held
 * messages, the leases and their holders, the key directory's pending DNS names, and the
 * database itself.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "schema.h"
#include "xmalloc.h"

static const char status_usage[] = "status [--json]";

/* A node whose last heartbeat is older than this is shown as stale (serve beats every
 * few seconds; a lease held by a dead node is taken over within 30 seconds). */
#define STATUS_STALE_SECONDS 30

/* Recipient states shown even when no recipient is in them (see schema.c). */
static const char *const queue_states[] = { "queued", "deferred", "held" };

static json_t *status_nodes(struct db *db, const char *self, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "SELECT name, started, heartbeat, pid, version "
					    "FROM nodes ORDER BY name");
	json_t *arr = json_array();

	while (db_step_row(db, st)) {
		int64_t beat = db_col_int(st, 2), age = now - beat;

		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:b, s:b}",
			"name", db_col_text(st, 0), "started", (json_int_t)db_col_int(st, 1),
			"heartbeat", (json_int_t)beat, "age", (json_int_t)age,
			"pid", (json_int_t)db_col_int(st, 3), "version", db_col_text(st, 4),
			"stale", age > STATUS_STALE_SECONDS,
			"this_node", strcmp(db_col_text(st, 0), self) == 0));
	}
	db_finalize(st);
	return arr;
}

static json_t *status_queue(struct db *db, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "SELECT state, count(*) FROM recipients "
					    "GROUP BY state ORDER BY state");
	json_t *states = json_object(), *per_node = json_object(), *q;
	int64_t oldest;

	for (size_t i = 0; i < sizeof(queue_states) / sizeof(queue_states[0]); i++)
		json_object_set_new(states, queue_states[i], json_integer(0));
	while (db_step_row(db, st))
		json_object_set_new(states, db_col_text(st, 0), json_integer(db_col_int(st, 1)));
	db_finalize(st);
	st = db_prepare(db, "SELECT node, count(*) FROM messages GROUP BY node ORDER BY node");
	while (db_step_row(db, st))
		json_object_set_new(per_node, db_col_text(st, 0), json_integer(db_col_int(st, 1)));
	db_finalize(st);
	q = json_pack("{s:I, s:I, s:o, s:o}",
		"messages", (json_int_t)db_query_int(db, "SELECT count(*) FROM messages", 0),
		"held_messages", (json_int_t)db_query_int(db,
			"SELECT count(DISTINCT msg_id) FROM recipients WHERE state = 'held'", 0),
		"recipients", states, "messages_per_node", per_node);
	oldest = db_query_int(db, "SELECT min(received) FROM messages", 0);
	if (oldest > 0)
		json_object_set_new(q, "oldest_age", json_integer(now - oldest));
	return q;
}

static json_t *status_leases(struct db *db, int64_t now)
{
	struct db_stmt *st = db_prepare(db, "SELECT name, holder, expires FROM leases "
					    "ORDER BY name");
	json_t *arr = json_array();

	while (db_step_row(db, st)) {
		int64_t expires = db_col_int(st, 2);

		json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:b}",
			"name", db_col_text(st, 0), "holder", db_col_text(st, 1),
			"expires", (json_int_t)expires, "expired", expires < now));
	}
	db_finalize(st);
	return arr;
}

static json_t *status_keydir(struct db *db)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT count(*), count(CASE WHEN error IS NOT NULL AND error <> '' THEN 1 END) "
		"FROM keydir_pending");
	json_int_t pending = 0, errors = 0;

	if (db_step_row(db, st)) {
		pending = (json_int_t)db_col_int(st, 0);
		errors = (json_int_t)db_col_int(st, 1);
	}
	db_finalize(st);
	return json_pack("{s:I, s:I}", "pending", pending, "errors", errors);
}

static json_t *status_database(struct db *db)
{
	return json_pack("{s:s, s:s, s:i, s:i}",
		"engine", db_engine(db) == DB_POSTGRES ? "postgresql" : "sqlite",
		"url", db_url_display(db), "schema_version", db_schema_version(db),
		"program_schema_version", db_schema_latest(db));
}

/*
 * Now by the database's clock: the nodes write their heartbeats and leases by it, and the
 * machine status runs on may be another, with a clock of its own.
 */
static int64_t status_now(struct db *db)
{
	return db_query_int(db, DB_SQL(db, "SELECT " DB_NOW_SQLITE, "SELECT " DB_NOW_PG),
			    (int64_t)time(NULL));
}

/* "12s", "5m", "3h", "2d": an age for people. */
static void age_text(char *buf, size_t size, int64_t secs)
{
	if (secs < 0)
		snprintf(buf, size, "in the future (%llds)", (long long)-secs);
	else if (secs < 120)
		snprintf(buf, size, "%llds", (long long)secs);
	else if (secs < 7200)
		snprintf(buf, size, "%lldm", (long long)(secs / 60));
	else if (secs < 2 * 86400)
		snprintf(buf, size, "%lldh", (long long)(secs / 3600));
	else
		snprintf(buf, size, "%lldd", (long long)(secs / 86400));
}

static void time_text(char *buf, size_t size, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void print_nodes(json_t *j)
{
	const char *self = json_string_value(json_object_get(j, "node"));
	json_t *nodes = json_object_get(j, "nodes"), *n;
	bool self_seen = false;
	size_t i;

	printf("node:     %s\n", self);
	printf("nodes:\n");
	json_array_foreach(nodes, i, n) {
		char age[48], when[32];

		age_text(age, sizeof(age), json_integer_value(json_object_get(n, "age")));
		time_text(when, sizeof(when), json_integer_value(json_object_get(n, "heartbeat")));
		self_seen |= json_is_true(json_object_get(n, "this_node"));
		printf("  %-20s heartbeat %s (%s ago)%s  pid %lld  %s%s\n",
		       json_string_value(json_object_get(n, "name")), when, age,
		       json_is_true(json_object_get(n, "stale")) ? " STALE" : "",
		       (long long)json_integer_value(json_object_get(n, "pid")),
		       json_string_value(json_object_get(n, "version")),
		       json_is_true(json_object_get(n, "this_node")) ? "  (this node)" : "");
	}
	if (!self_seen)
		printf("  %-20s no heartbeat in the database (serve not running here)\n", self);
}

static void print_queue(json_t *q)
{
	json_t *states = json_object_get(q, "recipients"), *v;
	const char *state;
	char age[48];

	printf("queue:    %lld message%s, %lld held\n",
	       (long long)json_integer_value(json_object_get(q, "messages")),
	       json_integer_value(json_object_get(q, "messages")) == 1 ? "" : "s",
	       (long long)json_integer_value(json_object_get(q, "held_messages")));
	printf("  recipients:");
	json_object_foreach(states, state, v)
		printf(" %s %lld", state, (long long)json_integer_value(v));
	printf("\n");
	if (json_object_get(q, "oldest_age")) {
		age_text(age, sizeof(age), json_integer_value(json_object_get(q, "oldest_age")));
		printf("  oldest message: %s\n", age);
	}
	json_object_foreach(json_object_get(q, "messages_per_node"), state, v)
		printf("  on node %s: %lld\n", *state ? state : "(not yet adopted)",
		       (long long)json_integer_value(v));
}

static void print_leases(json_t *leases)
{
	json_t *l;
	size_t i;

	printf("leases:%s\n", json_array_size(leases) ? "" : "   none");
	json_array_foreach(leases, i, l) {
		char when[32];

		time_text(when, sizeof(when), json_integer_value(json_object_get(l, "expires")));
		printf("  %-20s held by %s until %s%s\n",
		       json_string_value(json_object_get(l, "name")),
		       json_string_value(json_object_get(l, "holder")), when,
		       json_is_true(json_object_get(l, "expired")) ? " (expired)" : "");
	}
}

static void print_status(json_t *j)
{
	json_t *k = json_object_get(j, "keydir"), *d = json_object_get(j, "database");

	print_nodes(j);
	print_queue(json_object_get(j, "queue"));
	print_leases(json_object_get(j, "leases"));
	printf("keydir:   %lld pending DNS name%s, %lld with errors\n",
	       (long long)json_integer_value(json_object_get(k, "pending")),
	       json_integer_value(json_object_get(k, "pending")) == 1 ? "" : "s",
	       (long long)json_integer_value(json_object_get(k, "errors")));
	printf("database: %s %s, schema version %lld\n",
	       json_string_value(json_object_get(d, "engine")),
	       json_string_value(json_object_get(d, "url")),
	       (long long)json_integer_value(json_object_get(d, "schema_version")));
}

int cli_status(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	int64_t now;
	char *s;
	struct db *db;
	json_t *j;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", status_usage);
		return 0;
	}
	if (argc != 1)
		return cli_usage(status_usage);
	/* as every command: SQLite is brought up to date, an old PostgreSQL schema refused */
	db = cli_open_db(cli);
	if (db == NULL)
		return 1;
	now = status_now(db);
	j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:I}", "node", cli->cfg.server.node,
		      "nodes", status_nodes(db, cli->cfg.server.node, now),
		      "queue", status_queue(db, now), "leases", status_leases(db, now),
		      "keydir", status_keydir(db), "database", status_database(db),
		      "time", (json_int_t)now);
	if (json) {
		s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(s);
		free(s);
	} else {
		print_status(j);
	}
	json_decref(j);
	return cli_close_db(db, 0);
}
