/*
 * cli_queue.c - "postwarden queue": list, show, release, delete and flush queued messages.
 *
 * These work on the database while serve runs: the scheduler polls it, so a release or
 * flush takes effect within a second. With several nodes on one PostgreSQL database they
 * work from any node (or any machine that reaches the database) for every node's messages:
 * a release or flush only changes rows, which the holding node's scheduler finds; a delete
 * of a message in another node's spool marks its recipients 'deleted', and the holding
 * node removes file and rows at its next poll (relay_sched.c).
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

static const char queue_usage[] =
	"queue list [--json]\n"
	"       postwarden queue show ID [--json]\n"
	"       postwarden queue release ID [--rcpt ADDR]\n"
	"       postwarden queue delete ID [--force]\n"
	"       postwarden queue flush";

/* The recipients of one message as a JSON array. */
static json_t *recipients_json(struct db *db, const char *id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT addr, state, attempts, mx, status, reason, held_until, next_attempt "
		"FROM recipients WHERE msg_id = ? ORDER BY idx");
	json_t *arr = json_array();

	db_bind_text(st, 1, id);
	while (db_step_row(db, st)) {
		json_t *r = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}",
			"address", db_col_text(st, 0), "state", db_col_text(st, 1),
			"attempts", (json_int_t)db_col_int(st, 2),
			"mx", db_col_text(st, 3), "status", db_col_text(st, 4),
			"reason", db_col_text(st, 5));
		if (!db_col_null(st, 6))
			json_object_set_new(r, "held_until", json_integer(db_col_int(st, 6)));
		json_object_set_new(r, "next_attempt", json_integer(db_col_int(st, 7)));
		json_array_append_new(arr, r);
	}
	db_finalize(st);
	return arr;
}

/* Messages as JSON: all of them, or only id. ("id = ?1" comes first: PostgreSQL types ?1
 * by it; "?1 IS NULL" alone gives it no type.) */
static json_t *messages_json(struct db *db, const char *id)
{
	struct db_stmt *st = db_prepare(db,
		"SELECT id, sender, received, size, guarantee, tls_required_no, notification, node "
		"FROM messages WHERE id = ?1 OR ?1 IS NULL ORDER BY received, id");
	json_t *arr = json_array();

	db_bind_text(st, 1, id);
	while (db_step_row(db, st)) {
		const char *mid = db_col_text(st, 0);
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:o}",
			"id", mid, "node", db_col_text(st, 7), "sender", db_col_text(st, 1),
			"received", (json_int_t)db_col_int(st, 2),
			"size", (json_int_t)db_col_int(st, 3),
			"guarantee", (int)db_col_int(st, 4), "tls_required_no",
			(int)db_col_int(st, 5), "notification", (int)db_col_int(st, 6),
			"recipients", recipients_json(db, mid)));
	}
	db_finalize(st);
	return arr;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));

	puts(s);
	free(s);
}

/* The text listing: one line per message, one indented line per recipient. */
static void print_messages(json_t *msgs)
{
	size_t i, k;
	json_t *m, *r;
	char when[32];

	json_array_foreach(msgs, i, m) {
		time_t t = (time_t)json_integer_value(json_object_get(m, "received"));
		struct tm tm;
		const char *sender = json_string_value(json_object_get(m, "sender"));
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
		printf("%s  %s  %lld bytes  from <%s>  node %s%s\n",
		       json_string_value(json_object_get(m, "id")), when,
		       (long long)json_integer_value(json_object_get(m, "size")), sender,
		       json_string_value(json_object_get(m, "node")),
		       json_is_true(json_object_get(m, "guarantee")) ? "  guarantee" : "");
		json_array_foreach(json_object_get(m, "recipients"), k, r) {
			const char *reason = json_string_value(json_object_get(r, "reason"));
			printf("    %-9s %s%s%s\n", json_string_value(json_object_get(r, "state")),
			       json_string_value(json_object_get(r, "address")),
			       *reason ? ": " : "", reason);
		}
	}
}

static int queue_list(struct db *db, const char *id, bool json)
{
	json_t *msgs = messages_json(db, id);
	int rc = 0;

	if (id && json_array_size(msgs) == 0) {
		fprintf(pw_stderr, "postwarden: no message %s in the queue\n", id);
		rc = 1;
	} else if (json) {
		print_json(id ? json_array_get(msgs, 0) : msgs);
	} else {
		print_messages(msgs);
	}
	json_decref(msgs);
	return rc;
}

/* Run an UPDATE/DELETE with up to two text parameters; returns the rows changed. */
static int exec_changes(struct db *db, const char *sql, const char *a, const char *b)
{
	struct db_stmt *st = db_prepare(db, sql);
	int n;

	db_bind_text(st, 1, a);
	db_bind_text(st, 2, b);
	db_step_done(db, st);
	n = db_changes(db);
	db_finalize(st);
	return n;
}

static int queue_release(struct db *db, int argc, char **argv)
{
	const char *rcpt = NULL;
	int n;

	if (argc == 5 && strcmp(argv[3], "--rcpt") == 0)
		rcpt = argv[4];
	else if (argc != 3)
		return cli_usage(queue_usage);
	/* Released recipients go out once without the guarantee, still with opportunistic TLS and DANE.
	 * The address compares without case on both engines (recipients.addr is plain text). */
	n = exec_changes(db,
		"UPDATE recipients SET state = 'queued', release = 1, next_attempt = 0, "
		"first_tls_failure = NULL WHERE msg_id = ?1 AND state = 'held' "
		"AND (CAST(?2 AS TEXT) IS NULL OR lower(addr) = lower(?2))", argv[2], rcpt);
	if (n == 0) {
		fprintf(pw_stderr, "postwarden: message %s has no held recipient%s%s\n", argv[2],
			rcpt ? " " : "", rcpt ? rcpt : "");
		return 1;
	}
	log_info("event=release id=%s rcpt=%s count=%d", argv[2], rcpt ? rcpt : "all", n);
	printf("%d recipient%s of %s released: delivered once without the TLS-sending guarantee\n",
	       n, n == 1 ? "" : "s", argv[2]);
	return 0;
}

static int queue_delete_here(struct cli *cli, struct db *db, const char *id)
{
	char *path = xasprintf("%s/queue/%s", cli->cfg.server.state_dir, id);
	int n;

	/* The file goes first: a row without its file is cleaned up at start, a file
	 * without its row would be taken for an accepted message and delivered. */
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("event=queue_delete id=%s error=\"%s\"", id, strerror(errno));
	free(path);
	n = exec_changes(db, "DELETE FROM messages WHERE id = ?1", id, NULL);
	if (n == 0) {
		fprintf(pw_stderr, "postwarden: no message %s in the queue\n", id);
		return 1;
	}
	log_info("event=queue_delete id=%s", id);
	return 0;
}

/* The node whose spool holds message id, as a new string; NULL when there is no such row. */
static char *queue_node_of(struct db *db, const char *id)
{
	struct db_stmt *st = db_prepare(db, "SELECT node FROM messages WHERE id = ?");
	char *node = NULL;

	db_bind_text(st, 1, id);
	if (db_step_row(db, st))
		node = xstrdup(db_col_text(st, 0));
	db_finalize(st);
	return node;
}

/* Seconds since node's last heartbeat, by the database's clock; -1 when never seen. */
static int64_t queue_node_silence(struct db *db, const char *node)
{
	struct db_stmt *st = db_prepare(db, DB_SQL(db,
		"SELECT " DB_NOW_SQLITE " - heartbeat FROM nodes WHERE name = ?",
		"SELECT " DB_NOW_PG " - heartbeat FROM nodes WHERE name = ?"));
	int64_t ago = -1;

	db_bind_text(st, 1, node);
	if (db_step_row(db, st))
		ago = db_col_int(st, 0);
	db_finalize(st);
	return ago;
}

/*
 * A message in another node's spool: only that node can remove the file, so ask it (every
 * recipient 'deleted'; its scheduler's next poll does the rest, relay_sched.c).
 */
static int queue_delete_elsewhere(struct db *db, const char *id, const char *node)
{
	int64_t ago;
	int n = exec_changes(db, "UPDATE recipients SET state = 'deleted' WHERE msg_id = ?1",
			     id, NULL);

	if (db_error(db) != DB_OK) {
		fprintf(pw_stderr, "postwarden: cannot delete %s: %s\n", id, db_errmsg(db));
		return 1;
	}
	log_info("event=queue_delete id=%s node=%s recipients=%d requested=here", id, node, n);
	ago = queue_node_silence(db, node);
	printf("message %s is in the spool of node %s: that node deletes it within 2 seconds", id,
	       node);
	if (ago < 0 || ago > 30)
		printf(" of running again (its last heartbeat %s)",
		       ago < 0 ? "was never seen" : "is old");
	printf("\n");
	return 0;
}

/*
 * force: the holding node's spool is gone for good (a lost disk): remove the rows here. Were
 * that node to run again with its spool, it would index the message anew.
 */
static int queue_delete(struct cli *cli, struct db *db, const char *id, bool force)
{
	char *node = queue_node_of(db, id);

	/* An SQLite database is one machine's: its messages are in this spool. */
	if (node != NULL && db_engine(db) == DB_POSTGRES && *node &&
	    strcmp(node, cli->cfg.server.node) != 0 && !force) {
		int rc = queue_delete_elsewhere(db, id, node);

		free(node);
		return rc;
	}
	free(node);
	return queue_delete_here(cli, db, id);
}

static int queue_flush(struct db *db)
{
	int n = exec_changes(db, "UPDATE recipients SET next_attempt = 0 "
				 "WHERE state IN ('queued', 'deferred')", NULL, NULL);

	log_info("event=queue_flush recipients=%d", n);
	printf("%d recipient%s will be tried now\n", n, n == 1 ? "" : "s");
	return 0;
}

int cli_queue(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	bool force = cli_take_flag(&argc, argv, "--force");
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", queue_usage);
		return 0;
	}
	if (argc < 2)
		return cli_usage(queue_usage);
	db = cli_open_db(cli);
	if (db == NULL)
		return 1;
	if (strcmp(argv[1], "list") == 0 && argc == 2)
		rc = queue_list(db, NULL, json);
	else if (strcmp(argv[1], "show") == 0 && argc == 3)
		rc = queue_list(db, argv[2], json);
	else if (strcmp(argv[1], "release") == 0)
		rc = queue_release(db, argc, argv);
	else if (strcmp(argv[1], "delete") == 0 && argc == 3)
		rc = queue_delete(cli, db, argv[2], force);
	else if (strcmp(argv[1], "flush") == 0 && argc == 2)
		rc = queue_flush(db);
	else
		rc = cli_usage(queue_usage);
	return cli_close_db(db, rc);
}
