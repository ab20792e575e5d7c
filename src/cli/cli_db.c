/*
 * cli_db.c - "postwarden db": the schema (migrate, status) and moving an installation's
 * data to another database (copy --to), e.g. from its SQLite file to a PostgreSQL server
 * that several nodes will share.
 *
 * migrate is the operator's step on PostgreSQL: serve refuses a schema older than the
 * program there (several nodes share it, and one of them must not change it under the
 * others). On SQLite serve migrates by itself; the command does the same thing there.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "schema.h"
#include "xmalloc.h"

static const char db_usage[] =
	"db migrate\n"
	"       postwarden db status [--json]\n"
	"       postwarden db copy --to URL [--password-file FILE]";

static const char *engine_name(const struct db *db)
{
	return db_engine(db) == DB_POSTGRES ? "postgresql" : "sqlite";
}

/* How the stored schema stands against the program's. */
static const char *schema_state(int have, int want)
{
	if (have < 0)
		return "unreadable";
	if (have < want)
		return "needs migrate";
	if (have > want)
		return "newer than this program";
	return "up to date";
}

/* Open the configured database whatever its schema version; NULL after reporting. */
static struct db *db_open_any(struct cli *cli)
{
	char *err = NULL;
	struct db *db = schema_open(&cli->cfg, DB_OPEN_ANY, &err);

	if (db == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
	}
	return db;
}

/* ---- migrate ----------------------------------------------------------------------------- */

static int db_migrate_cmd(struct cli *cli)
{
	struct db *db = db_open_any(cli);
	char *err = NULL;
	int from, to, latest;

	if (db == NULL)
		return 1;
	from = db_schema_version(db);
	latest = db_schema_latest(db);
	if (from < 0) {
		fprintf(pw_stderr, "postwarden: database %s: cannot read the schema version: %s\n",
			db_url_display(db), db_errmsg(db));
		return cli_close_db(db, 1);
	}
	if (from > latest) {
		fprintf(pw_stderr, "postwarden: database %s has schema version %d, newer than "
			"this program (%d): update postwarden\n", db_url_display(db), from, latest);
		db_close(db);
		return 1;
	}
	if (from == latest) {
		printf("database %s: schema version %d, up to date\n", db_url_display(db), from);
		return cli_close_db(db, 0);
	}
	db_close(db);
	/* db_open migrates under the engine's lock: two nodes running this at once is safe */
	db = schema_open(&cli->cfg, DB_OPEN_MIGRATE, &err);
	if (db == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return 1;
	}
	to = db_schema_version(db);
	log_info("event=db_migrate db=%s from=%d to=%d", db_url_display(db), from, to);
	printf("database %s: schema version %d -> %d\n", db_url_display(db), from, to);
	return cli_close_db(db, 0);
}

/* ---- status ------------------------------------------------------------------------------ */

static int db_status_cmd(struct cli *cli, bool json)
{
	struct db *db = db_open_any(cli);
	int have, want;
	const char *state;

	if (db == NULL)
		return 1;
	have = db_schema_version(db);
	want = db_schema_latest(db);
	state = schema_state(have, want);
	if (json) {
		json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:s}", "engine", engine_name(db),
				      "url", db_url_display(db), "schema_version", have,
				      "program_schema_version", want, "state", state);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);

		puts(s);
		free(s);
		json_decref(j);
	} else {
		printf("engine:  %s\n", engine_name(db));
		printf("url:     %s\n", db_url_display(db));
		printf("schema:  version %d, this program's %d: %s\n", have, want, state);
		if (have >= 0 && have < want)
			printf("         run `postwarden db migrate`%s\n",
			       db_engine(db) == DB_SQLITE ? " (on SQLite serve also does it at "
							     "start-up)" : "");
	}
	return cli_close_db(db, have < 0 ? 1 : 0);
}

/* ---- copy -------------------------------------------------------------------------------- */

/*
 * Every table of the schema, in an order that satisfies the foreign keys, with its columns
 * and their kinds: i integer, t text, b blob. A migration that adds a table or a column
 * adds it here too (the integration test compares every table and column after a copy).
 */
struct copy_table {
	const char *name;
	const char *cols;
	const char *kinds;
	const char *order;	/* a stable reading order (the primary key) */
	const char *identity;	/* the PostgreSQL identity column, or NULL */
};

static const struct copy_table copy_tables[] = {
	{ "accounts", "id, primary_addr, guarantee, guarantee_off_until, created", "itiii",
	  "id", "id" },
	{ "addresses", "addr, account_id, is_primary", "tii", "addr", NULL },
	{ "messages", "id, sender, size, received, envid, ret, body, smtputf8, guarantee, "
	  "tls_required_no, notification, node, requiretls", "ttiitttiiiiti", "id", NULL },
	{ "recipients", "msg_id, idx, addr, orcpt, notify, state, attempts, next_attempt, "
	  "first_tls_failure, held_until, release, mx, status, reason", "tittttiiiiittt",
	  "msg_id, idx", NULL },
	{ "keydir_keys", "id, account_id, addr, kind, fingerprint, algorithm, bits, created, "
	  "expires, published, data, original, rrtype, owner, owner_lc, wkd_domain, wkd_hash",
	  "iittttiiiibbitttt", "id", "id" },
	{ "keydir_pending", "owner, rrtype, gen, attempts, next_attempt, error", "tiiiit",
	  "owner, rrtype", NULL },
	{ "nodes", "name, started, heartbeat, pid, version", "tiiit", "name", NULL },
	{ "leases", "name, holder, expires", "tti", "name", NULL },
	{ "ct_logs", "log_id, url, api, tree_size, root_hash, sth_timestamp, sth, next_index, "
	  "range_state, last_success, last_error, updated", "tttibibibiti", "log_id", NULL },
	{ "ct_findings", "id, identity, names, issuer, serial, spki_sha256, not_before, "
	  "not_after, verdict, reason, first_seen, acked, alerted, issuer_key_sha256, caa",
	  "ibttttiittiiitt", "id", "id" },
	{ "ct_sightings", "log_id, idx, finding_id, precert, seen", "tiiii", "log_id, idx", NULL },
	{ "ct_alerts", "id, kind, log_id, created, message, evidence, alerted, resolved",
	  "ittittii", "id", "id" },
	{ "ct_deliveries", "item, item_id, channel, created, attempts, next_attempt, claimed_by, "
	  "claim_until, done, last_error", "titiiitiit", "item, item_id, channel", NULL },
	{ "mig_jobs", "id, kind, dest_user, state, created, started, finished, messages, bytes, "
	  "failed, error", "itttiiiiiit", "id", "id" },
	{ "mig_folders", "job_id, folder, dest_folder, uidvalidity, last_uid, messages, bytes, "
	  "failed, started, finished, error", "ittiiiiiiit", "job_id, folder", NULL },
	{ "acct_sessions", "sid_hash, address, csrf, method, created, last_used", "ttttii",
	  "sid_hash", NULL },
	{ "acct_login_failures", "kind, who, at", "tti", "kind, who, at", NULL },
	{ "mta_sts_policies", "domain, id, mode, mx, max_age, policy, fetched, expires, "
	  "last_attempt, last_error", "ttttitiiit", "domain", NULL },
	{ "tlsrpt_counts", "day, policy_domain, policy_type, policy_string, mx_host, result_type, "
	  "sending_ip, receiving_ip, count", "tttttttti",
	  "day, policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip", NULL },
	{ "tlsrpt_sent", "day, policy_domain, sent, result", "ttit", "day, policy_domain", NULL },
	{ "tls_history", "domain, mx_host, last_seen, tls_version, cert_valid, dane, mta_sts, "
	  "last_good, downgrade_since, downgrade_what, alerted", "ttitiiiiiti", "domain", NULL },
	{ "acct_notices", "msg_id, recipient, kind, sender, reason, received, at", "tttttii",
	  "msg_id, recipient, kind", NULL },
};

#define NTABLES (sizeof(copy_tables) / sizeof(copy_tables[0]))

static int64_t table_count(struct db *db, const char *table)
{
	char *sql = xasprintf("SELECT count(*) FROM %s", table);
	int64_t n = db_query_int(db, sql, -1);

	free(sql);
	return n;
}

/* Bind column c of the source row to placeholder c + 1 of the insert, by its kind. */
static void copy_value(struct db_stmt *from, struct db_stmt *to, int c, char kind)
{
	size_t len;
	const void *blob;

	if (db_col_null(from, c)) {
		db_bind_null(to, c + 1);
		return;
	}
	switch (kind) {
	case 'i':
		db_bind_int(to, c + 1, db_col_int(from, c));
		break;
	case 'b':
		blob = db_col_blob(from, c, &len);
		db_bind_blob(to, c + 1, blob ? blob : "", len);
		break;
	default:
		db_bind_text(to, c + 1, db_col_text(from, c));
		break;
	}
}

/*
 * The insert statements, kept until the target is closed: db_prepare_cached knows a
 * statement by its text's address, and a prepared statement on the server saves parsing
 * and planning every row.
 */
static char *copy_insert_sql[NTABLES];

static void copy_insert_sql_free(void)
{
	for (size_t i = 0; i < NTABLES; i++) {
		free(copy_insert_sql[i]);
		copy_insert_sql[i] = NULL;
	}
}

/* Copy one table's rows; the number copied, or -1 on an error (kept in src or dst). */
static int64_t copy_rows(struct db *src, struct db *dst, const struct copy_table *t)
{
	int ncols = (int)strlen(t->kinds);
	char *select = xasprintf("SELECT %s FROM %s ORDER BY %s", t->cols, t->name, t->order);
	char *params = xcalloc((size_t)ncols, 4);
	char **insert = &copy_insert_sql[t - copy_tables];
	struct db_stmt *from, *to;
	int64_t n = 0;
	int commas = 0;

	for (const char *p = t->cols; *p; p++)
		commas += *p == ',';
	if (commas + 1 != ncols)	/* the table list above is wrong */
		fatalx("db copy: table %s: %d columns, %d kinds", t->name, commas + 1, ncols);
	for (int c = 0; c < ncols; c++)
		strcat(params, c ? ", ?" : "?");
	if (*insert == NULL)
		*insert = xasprintf("INSERT INTO %s (%s) VALUES (%s)", t->name, t->cols, params);
	from = db_prepare(src, select);
	to = db_prepare_cached(dst, *insert);
	while (to != NULL && db_step_row(src, from)) {
		for (int c = 0; c < ncols; c++)
			copy_value(from, to, c, t->kinds[c]);
		if (db_step_done(dst, to) != DB_DONE) {
			if (db_error(dst) == DB_OK)	/* a constraint: an answer, not kept */
				fprintf(pw_stderr, "postwarden: db copy: table %s: the target "
					"refused row %lld: nothing copied\n", t->name,
					(long long)n + 1);
			n = -1;
			break;
		}
		db_reset(to);
		n++;
	}
	if (db_error(src) != DB_OK || db_error(dst) != DB_OK || to == NULL)
		n = -1;
	db_finalize(from);
	db_release(dst, to);
	free(select);
	free(params);
	return n;
}

/*
 * On PostgreSQL the identity columns and the key directory's generation sequence go past
 * the copied values, so that the next account, key or mark does not collide with one.
 */
static void copy_sequences(struct db *dst)
{
	struct db_stmt *st;

	if (db_engine(dst) != DB_POSTGRES)
		return;
	for (size_t i = 0; i < NTABLES; i++) {
		char *sql;

		if (copy_tables[i].identity == NULL)
			continue;
		sql = xasprintf("SELECT setval(pg_get_serial_sequence('%s', '%s'), max(%s)) "
				"FROM %s HAVING max(%s) IS NOT NULL", copy_tables[i].name,
				copy_tables[i].identity, copy_tables[i].identity,
				copy_tables[i].name, copy_tables[i].identity);
		st = db_prepare(dst, sql);
		db_step(dst, st);
		db_finalize(st);
		free(sql);
	}
	/* SQLite's marks have random generations, maybe negative: the sequence starts at 1 */
	st = db_prepare(dst, "SELECT setval('keydir_gen', GREATEST(max(gen), 1)) "
			     "FROM keydir_pending");
	db_step(dst, st);
	db_finalize(st);
}

/* Does the target hold any row? Names the first table that does. */
static const char *copy_target_used(struct db *dst)
{
	for (size_t i = 0; i < NTABLES; i++)
		if (table_count(dst, copy_tables[i].name) != 0)
			return copy_tables[i].name;
	return NULL;
}

/*
 * Start a read snapshot of the source: every table is read as of one moment while serve
 * goes on writing (SQLite in WAL mode: a deferred BEGIN; the snapshot starts at the first
 * read and takes no write lock).
 */
static int copy_snapshot(struct db *src)
{
	return db_exec(src, db_engine(src) == DB_POSTGRES
		       ? "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" : "BEGIN");
}

/* Copy every table inside the target's transaction; false after reporting. */
static bool copy_tables_all(struct db *src, struct db *dst, int64_t *counts)
{
	for (size_t i = 0; i < NTABLES; i++) {
		const struct copy_table *t = &copy_tables[i];

		/* the keys' insert triggers marked every name afresh: the source's own marks
		 * (with their attempts and errors) replace those */
		if (strcmp(t->name, "keydir_pending") == 0 &&
		    db_exec(dst, "DELETE FROM keydir_pending") != DB_OK)
			return false;
		counts[i] = copy_rows(src, dst, t);
		if (counts[i] < 0)
			return false;
		printf("  %-15s %lld row%s\n", t->name, (long long)counts[i],
		       counts[i] == 1 ? "" : "s");
	}
	copy_sequences(dst);
	return db_error(dst) == DB_OK;
}

/* Both sides hold the copied number of rows in every table; false after reporting. */
static bool copy_verify(struct db *src, struct db *dst, const int64_t *counts)
{
	for (size_t i = 0; i < NTABLES; i++) {
		int64_t have = table_count(dst, copy_tables[i].name);
		int64_t had = table_count(src, copy_tables[i].name);

		if (have != counts[i] || had != counts[i]) {
			fprintf(pw_stderr, "postwarden: db copy: table %s: %lld rows read, %lld in "
				"the source, %lld in the target: nothing copied\n",
				copy_tables[i].name, (long long)counts[i], (long long)had,
				(long long)have);
			return false;
		}
	}
	return true;
}

static void copy_next_steps(const struct db *dst)
{
	printf("\nNext steps:\n"
	       "  1. stop serve on this machine\n"
	       "  2. set [database] url = %s%s in its configuration\n"
	       "     (keep its [server] node: the queue's rows name the node whose spool\n"
	       "     holds each message)\n"
	       "  3. start serve: at start-up it indexes every message of its spool that the\n"
	       "     copy lacks (accepted after the copy) and forgets those already gone\n"
	       "Changes to accounts, keys or held messages made after the copy are not in it:\n"
	       "make none until the switch, or stop serve before copying.\n",
	       db_url_display(dst), db_engine(dst) == DB_POSTGRES
	       ? " (and password_file, if the password is not in PGPASSFILE)" : "");
}

/* Report the first error of src or dst. */
static void copy_report(struct db *src, struct db *dst)
{
	struct db *bad = db_error(dst) != DB_OK ? dst : src;

	if (db_error(bad) != DB_OK)
		fprintf(pw_stderr, "postwarden: db copy: database %s: %s: nothing copied\n",
			db_url_display(bad), db_errmsg(bad));
}

/* The copy itself, with both databases open; 0 when committed. */
static int copy_run(struct db *src, struct db *dst)
{
	int64_t counts[NTABLES];
	const char *used;

	if (db_begin(dst) != DB_OK || copy_snapshot(src) != DB_OK) {
		copy_report(src, dst);
		return 1;
	}
	used = copy_target_used(dst);
	if (used != NULL || db_error(dst) != DB_OK) {
		if (used != NULL)
			fprintf(pw_stderr, "postwarden: db copy: the target %s already holds data "
				"(table %s): refusing to copy into it\n", db_url_display(dst), used);
		else
			copy_report(src, dst);
		db_rollback(dst);
		db_rollback(src);
		return 1;
	}
	printf("copying %s to %s:\n", db_url_display(src), db_url_display(dst));
	if (!copy_tables_all(src, dst, counts) || !copy_verify(src, dst, counts)) {
		copy_report(src, dst);
		db_rollback(dst);
		db_rollback(src);
		return 1;
	}
	db_rollback(src);	/* the snapshot only read */
	if (db_commit(dst) != DB_OK) {
		copy_report(src, dst);
		return 1;
	}
	log_info("event=db_copy from=%s to=%s", db_url_display(src), db_url_display(dst));
	printf("copied and verified: every table holds the same number of rows in %s\n",
	       db_url_display(dst));
	copy_next_steps(dst);
	return 0;
}

static int db_copy_cmd(struct cli *cli, int argc, char **argv)
{
	const char *to = NULL, *password_file = NULL;
	struct db *src, *dst;
	char *err = NULL;
	int rc;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
			to = argv[++i];
		else if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
			password_file = argv[++i];
		else
			return cli_usage(db_usage);
	}
	if (to == NULL)
		return cli_usage(db_usage);
	if (strcmp(to, cli->cfg.database.url) == 0) {
		fprintf(pw_stderr, "postwarden: db copy: the target is the configured database\n");
		return 1;
	}
	src = cli_open_db(cli);
	if (src == NULL)
		return 1;
	/* the target gets the program's schema first (its own transactions), then the rows */
	dst = schema_open_url(to, password_file, DB_OPEN_MIGRATE, &err);
	if (dst == NULL) {
		fprintf(pw_stderr, "postwarden: db copy: %s\n", err);
		free(err);
		db_close(src);
		return 1;
	}
	rc = copy_run(src, dst);
	db_close(dst);
	copy_insert_sql_free();
	db_close(src);
	return rc;
}

int cli_db(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", db_usage);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "migrate") == 0 && !json)
		return db_migrate_cmd(cli);
	if (argc == 2 && strcmp(argv[1], "status") == 0)
		return db_status_cmd(cli, json);
	if (argc >= 2 && strcmp(argv[1], "copy") == 0 && !json)
		return db_copy_cmd(cli, argc, argv);
	return cli_usage(db_usage);
}
