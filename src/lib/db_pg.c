/*
 * db_pg.c - the PostgreSQL engine of the storage layer (libpq); see db.h.
 *
 * Statements are written with SQLite's "?" / "?N" placeholders and turned into "$N" here.
 * Parameters go as text (blobs as binary), results come back as text. Cached statements
 * are prepared on the server once per connection; others are sent with their parameters.
 *
 * A lost connection is noticed by the statement that runs into it; the next statement
 * reconnects (at most one attempt a second, less often while the server stays away). A
 * transaction is never continued on a new connection: after a loss inside BEGIN ... COMMIT
 * every statement fails until the caller has rolled back, so a change is applied whole or
 * not at all.
 *
 * Every round trip has a deadline (PG_ROUND_TRIP_MS): serve calls the database from its
 * event loop, and a server or network that takes a statement and never answers (a cut
 * that TCP does not see) must cost that one statement, not the loop. Past the deadline
 * the connection is given up as lost.
 */
#include "db_int.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "xmalloc.h"

/* Seconds between two attempts to reach a server that is away: 1, doubling to 8. */
#define PG_RECONNECT_MIN 1
#define PG_RECONNECT_MAX 8
/* Longest wait for the answer to one statement. */
#define PG_ROUND_TRIP_MS 5000
/* Key of the advisory lock that serialises schema migrations. */
#define PG_MIGRATE_LOCK 0x7077736368656d61LL

struct pg_conn {
	PGconn *c;
	unsigned gen;		/* grows with every new connection: server-side prepares are lost */
	time_t last_attempt;
	int retry_after;	/* seconds from last_attempt to the next reconnect */
	bool broken;		/* a round trip ran past its deadline: reconnect */
	bool tx_open;		/* between BEGIN and COMMIT/ROLLBACK as the caller sees it */
	bool tx_lost;		/* the connection was lost inside that transaction */
	bool relaxed;		/* synchronous_commit off (db_relax_durability) */
	int64_t changes;
	unsigned next_name;
};

struct pg_stmt {
	char *sql;		/* with $N placeholders */
	int nparams;
	bool keep;		/* prepare on the server */
	char name[24];
	unsigned prepared_gen;	/* gen of the connection it is prepared on; 0: not prepared */
	char *vals[DB_MAX_PARAMS];
	int lens[DB_MAX_PARAMS];
	int fmts[DB_MAX_PARAMS];
	PGresult *res;		/* of the last execution */
	int row;		/* current row, -1 before the first */
	unsigned char *blob;	/* the last column decoded by col_blob */
};

#define PG(db) ((struct pg_conn *)(db)->impl)
#define PST(st) ((struct pg_stmt *)(st)->impl)

/* Is this SQLSTATE class that of a lost or refused connection? */
static bool pg_state_is_connection(const char *state)
{
	return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
	       strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
	       strcmp(state, "25006") == 0;	/* read-only: a standby after failover */
}

/* SQLSTATEs that can only come from SQL that is wrong for the schema: a bug. */
static bool pg_state_is_bug(const char *state)
{
	static const char *const bugs[] = {
		"42601", "42P01", "42703", "42883", "42P18", "42804", "42P02", "42702", "42725",
	};

	for (size_t i = 0; i < sizeof(bugs) / sizeof(bugs[0]); i++)
		if (strcmp(state, bugs[i]) == 0)
			return true;
	return false;
}

/* The DB_* code of an SQLSTATE. */
static int pg_state_rc(const char *state)
{
	if (strncmp(state, "23", 2) == 0)
		return DB_CONSTRAINT;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
		return DB_BUSY;
	if (strncmp(state, "53", 2) == 0 || strcmp(state, "58030") == 0 ||
	    strncmp(state, "XX", 2) == 0)
		return DB_STORAGE;
	if (pg_state_is_connection(state))
		return DB_UNAVAILABLE;
	return DB_ERROR;
}

/* Keep the error of a failed result (NULL: no result at all) and return its code. */
static int pg_fail_result(struct db *db, PGresult *res, const char *sql)
{
	struct pg_conn *p = PG(db);
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : NULL;
	int rc;

	if (p->broken)
		msg = "no answer from the database in time";
	else if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(p->c);
	if (state != NULL && pg_state_is_bug(state))
		fatalx("database %s: %s: %s", db->url_display, msg, sql);
	rc = state != NULL ? pg_state_rc(state) : DB_UNAVAILABLE;
	if (PQstatus(p->c) != CONNECTION_OK || p->broken) {
		rc = DB_UNAVAILABLE;
		if (p->tx_open)
			p->tx_lost = true;
	}
	if (rc == DB_CONSTRAINT)	/* an answer (db.h); COMMIT finds the transaction spoilt */
		return rc;
	return db_fail(db, rc, msg, sql);
}

/* Milliseconds of the monotonic clock. */
static int64_t pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * After a PQsend*: wait for the whole answer, at most PG_ROUND_TRIP_MS, and return its
 * last result (the first failed one when one fails), or NULL when the connection failed or
 * the deadline passed (then it is marked broken, to be reconnected).
 */
static PGresult *pg_await(struct pg_conn *p)
{
	int64_t deadline = pg_now_ms() + PG_ROUND_TRIP_MS;
	PGresult *res, *keep = NULL;

	for (;;) {
		while (PQisBusy(p->c)) {
			struct pollfd pfd = { .fd = PQsocket(p->c), .events = POLLIN };
			int64_t left = deadline - pg_now_ms();

			if (left <= 0 || pfd.fd < 0) {
				p->broken = true;
				PQclear(keep);
				return NULL;
			}
			if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
				p->broken = true;
				PQclear(keep);
				return NULL;
			}
			if (!PQconsumeInput(p->c)) {
				PQclear(keep);
				return NULL;
			}
		}
		if ((res = PQgetResult(p->c)) == NULL)
			return keep;
		if (keep != NULL && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(res);	/* the first error is the one to report */
			continue;
		}
		PQclear(keep);
		keep = res;
	}
}

/* Send sql (one or more statements, no parameters) and wait for its answer; see pg_await. */
static PGresult *pg_round_trip(struct pg_conn *p, const char *sql)
{
	return PQsendQuery(p->c, sql) ? pg_await(p) : NULL;
}

/*
 * Make sure there is a connection: DB_OK, or DB_UNAVAILABLE (kept) when the server is
 * away, the last attempt was less than a second ago, or a transaction was lost with the
 * old connection.
 */
static int pg_ensure(struct db *db, const char *sql)
{
	struct pg_conn *p = PG(db);
	time_t now = time(NULL);

	if (p->tx_lost)
		return db_fail(db, DB_UNAVAILABLE,
			       "the connection to the database was lost in a transaction", sql);
	if (PQstatus(p->c) == CONNECTION_OK && !p->broken)
		return DB_OK;
	if (now - p->last_attempt < p->retry_after)
		return db_fail(db, DB_UNAVAILABLE, "no connection to the database", sql);
	p->last_attempt = now;
	PQreset(p->c);		/* bounded by connect_timeout */
	if (PQstatus(p->c) != CONNECTION_OK) {
		p->retry_after = p->retry_after * 2 > PG_RECONNECT_MAX ? PG_RECONNECT_MAX
									: p->retry_after * 2;
		return db_fail(db, DB_UNAVAILABLE, PQerrorMessage(p->c), sql);
	}
	p->broken = false;
	p->retry_after = PG_RECONNECT_MIN;
	p->gen++;
	if (p->relaxed)
		PQclear(pg_round_trip(p, "SET synchronous_commit = off"));
	log_info("event=db_reconnected db=%s", db->url_display);
	return DB_OK;
}

/*
 * Turn "?" and "?N" into "$N", leaving quoted text alone; *nparams is the highest number.
 * A bare "?" takes the number after the highest so far, as in SQLite.
 */
static char *pg_placeholders(const char *sql, int *nparams)
{
	size_t len = strlen(sql);
	char *out = xmalloc(len * 2 + 1), *o = out;
	char quote = 0;
	int max = 0;

	for (const char *s = sql; *s; s++) {
		if (quote) {
			if (*s == quote)
				quote = 0;
			*o++ = *s;
			continue;
		}
		if (*s == '\'' || *s == '"') {
			quote = *s;
			*o++ = *s;
			continue;
		}
		if (*s != '?') {
			*o++ = *s;
			continue;
		}
		int n = 0;

		while (s[1] >= '0' && s[1] <= '9')
			n = n * 10 + (*++s - '0');
		if (n == 0)
			n = max + 1;
		if (n > DB_MAX_PARAMS)
			fatalx("database: placeholder %d out of range: %s", n, sql);
		if (n > max)
			max = n;
		o += sprintf(o, "$%d", n);
	}
	*o = '\0';
	*nparams = max;
	return out;
}

/* Notices ("relation already exists, skipping") are not for the user. */
static void pg_notice_ignore(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static int pg_open(struct db *db, const char *url, const char *password_file, char **err)
{
	/* the URL comes last but for passfile: what it says wins over these defaults */
	const char *keys[] = {
		"connect_timeout", "application_name", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "options", "dbname", "passfile", NULL,
	};
	const char *vals[] = {
		"3", "postwarden", "10", "5", "3", "10000", "-c statement_timeout=30000",
		url, password_file && *password_file ? password_file : NULL, NULL,
	};
	struct pg_conn *p = xcalloc(1, sizeof(*p));

	p->c = PQconnectdbParams(keys, vals, 1);
	if (p->c == NULL)
		fatalx("database: out of memory");
	if (PQstatus(p->c) != CONNECTION_OK) {
		char *msg = xstrdup(PQerrorMessage(p->c));

		msg[strcspn(msg, "\n")] = '\0';
		*err = xasprintf("cannot connect to database %s: %s", db->url_display, msg);
		free(msg);
		PQfinish(p->c);
		free(p);
		return DB_UNAVAILABLE;
	}
	PQsetNoticeProcessor(p->c, pg_notice_ignore, NULL);
	p->gen = 1;
	p->last_attempt = time(NULL);
	p->retry_after = PG_RECONNECT_MIN;
	db->impl = p;
	return DB_OK;
}

static void pg_close(struct db *db)
{
	PQfinish(PG(db)->c);
	free(PG(db));
	db->impl = NULL;
}

/* Follow BEGIN / COMMIT / ROLLBACK as the caller issues them. */
static void pg_track_transaction(struct pg_conn *p, const char *sql)
{
	if (strncmp(sql, "BEGIN", 5) == 0) {
		p->tx_open = true;
		p->tx_lost = false;
	} else if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0) {
		p->tx_open = false;
	}
}

static int pg_exec(struct db *db, const char *sql)
{
	struct pg_conn *p = PG(db);
	bool ending = strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0;
	PGresult *res;
	int rc;

	if (ending && p->tx_lost) {
		/* nothing of that transaction reached the server: report, and start afresh */
		p->tx_open = p->tx_lost = false;
		return strcmp(sql, "ROLLBACK") == 0 ? DB_OK
			: db_fail(db, DB_UNAVAILABLE, "the connection to the database was lost "
				  "in a transaction", sql);
	}
	if ((rc = pg_ensure(db, sql)) != DB_OK)
		return rc;
	if (strcmp(sql, "COMMIT") == 0 && PQtransactionStatus(p->c) == PQTRANS_INERROR) {
		/* a statement failed (a constraint): COMMIT would quietly roll back */
		pg_exec(db, "ROLLBACK");
		return db_fail(db, DB_CONSTRAINT, "a statement of the transaction failed", sql);
	}
	pg_track_transaction(p, sql);
	res = pg_round_trip(p, sql);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		rc = DB_OK;
		break;
	default:
		rc = pg_fail_result(db, res, sql);
		break;
	}
	PQclear(res);
	return rc;
}

static int pg_prepare(struct db *db, struct db_stmt *st, const char *sql, bool keep)
{
	struct pg_stmt *s = xcalloc(1, sizeof(*s));

	(void)db;
	s->sql = pg_placeholders(sql, &s->nparams);
	s->keep = keep;
	s->row = -1;
	if (keep)
		snprintf(s->name, sizeof(s->name), "pw%u", ++PG(db)->next_name);
	st->impl = s;
	return DB_OK;
}

/* Forget the result of the last execution. */
static void pg_clear_result(struct pg_stmt *s)
{
	PQclear(s->res);
	s->res = NULL;
	s->row = -1;
	PQfreemem(s->blob);
	s->blob = NULL;
}

static void pg_clear_binding(struct pg_stmt *s, int i)
{
	free(s->vals[i]);
	s->vals[i] = NULL;
	s->lens[i] = 0;
	s->fmts[i] = 0;
}

static void pg_finalize(struct db_stmt *st)
{
	struct pg_stmt *s = PST(st);

	pg_clear_result(s);
	for (int i = 0; i < DB_MAX_PARAMS; i++)
		pg_clear_binding(s, i);
	/* a server-side prepared statement dies with its connection; a few are harmless */
	if (s->keep && s->prepared_gen == PG(st->db)->gen &&
	    PQstatus(PG(st->db)->c) == CONNECTION_OK && !PG(st->db)->tx_open) {
		char sql[48];

		snprintf(sql, sizeof(sql), "DEALLOCATE %s", s->name);
		PQclear(pg_round_trip(PG(st->db), sql));
	}
	free(s->sql);
	free(s);
}

static void pg_reset(struct db_stmt *st, bool clear_bindings)
{
	struct pg_stmt *s = PST(st);

	pg_clear_result(s);
	if (clear_bindings)
		for (int i = 0; i < DB_MAX_PARAMS; i++)
			pg_clear_binding(s, i);
}

/* Store a parameter value (copied). */
static void pg_bind(struct db_stmt *st, int idx, const void *data, size_t len, int fmt)
{
	struct pg_stmt *s = PST(st);
	int i = idx - 1;

	if (len > INT32_MAX)
		fatalx("database: parameter of %zu bytes", len);
	pg_clear_binding(s, i);
	if (data == NULL)
		return;
	s->vals[i] = xmalloc(len + 1);
	memcpy(s->vals[i], data, len);
	s->vals[i][len] = '\0';
	s->lens[i] = (int)len;
	s->fmts[i] = fmt;
}

static void pg_bind_text(struct db_stmt *st, int idx, const char *text)
{
	pg_bind(st, idx, text, strlen(text), 0);
}

static void pg_bind_int(struct db_stmt *st, int idx, int64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	pg_bind(st, idx, buf, strlen(buf), 0);
}

static void pg_bind_blob(struct db_stmt *st, int idx, const void *data, size_t len)
{
	pg_bind(st, idx, len ? data : "", len, 1);
}

static void pg_bind_null(struct db_stmt *st, int idx)
{
	pg_bind(st, idx, NULL, 0, 0);
}

/* Prepare a kept statement on the current connection if it is not yet there. */
static int pg_prepare_on_server(struct db *db, struct db_stmt *st)
{
	struct pg_stmt *s = PST(st);
	PGresult *res;
	int rc = DB_OK;

	if (s->prepared_gen == PG(db)->gen)
		return DB_OK;
	res = PQsendPrepare(PG(db)->c, s->name, s->sql, s->nparams, NULL) ? pg_await(PG(db))
									    : NULL;
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		s->prepared_gen = PG(db)->gen;
	else
		rc = pg_fail_result(db, res, st->sql);
	PQclear(res);
	return rc;
}

/* Run the statement with its bindings; its result is kept. */
static int pg_execute(struct db *db, struct db_stmt *st)
{
	struct pg_stmt *s = PST(st);
	struct pg_conn *p = PG(db);
	int rc, sent;

	if ((rc = pg_ensure(db, st->sql)) != DB_OK)
		return rc;
	if (s->keep) {
		if ((rc = pg_prepare_on_server(db, st)) != DB_OK)
			return rc;
		sent = PQsendQueryPrepared(p->c, s->name, s->nparams,
					   (const char *const *)s->vals, s->lens, s->fmts, 0);
	} else {
		sent = PQsendQueryParams(p->c, s->sql, s->nparams, NULL,
					 (const char *const *)s->vals, s->lens, s->fmts, 0);
	}
	s->res = sent ? pg_await(p) : NULL;
	switch (PQresultStatus(s->res)) {
	case PGRES_TUPLES_OK:
	case PGRES_COMMAND_OK:
		p->changes = strtoll(PQcmdTuples(s->res), NULL, 10);
		s->row = -1;
		return DB_OK;
	default:
		rc = pg_fail_result(db, s->res, st->sql);
		PQclear(s->res);
		s->res = NULL;
		return rc;
	}
}

static int pg_step(struct db *db, struct db_stmt *st)
{
	struct pg_stmt *s = PST(st);
	int rc;

	if (s->res == NULL && (rc = pg_execute(db, st)) != DB_OK)
		return rc;
	PQfreemem(s->blob);
	s->blob = NULL;
	if (s->row + 1 < PQntuples(s->res)) {
		s->row++;
		return DB_ROW;
	}
	s->row = PQntuples(s->res);
	return DB_DONE;
}

static bool pg_has_row(struct pg_stmt *s, int col)
{
	return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res) && col >= 0 &&
	       col < PQnfields(s->res);
}

static const char *pg_col_text(struct db_stmt *st, int col)
{
	struct pg_stmt *s = PST(st);

	if (!pg_has_row(s, col) || PQgetisnull(s->res, s->row, col))
		return NULL;
	return PQgetvalue(s->res, s->row, col);
}

static int64_t pg_col_int(struct db_stmt *st, int col)
{
	const char *t = pg_col_text(st, col);

	if (t == NULL)
		return 0;
	if (strcmp(t, "t") == 0)	/* a boolean expression */
		return 1;
	return strtoll(t, NULL, 10);
}

static const void *pg_col_blob(struct db_stmt *st, int col, size_t *len)
{
	struct pg_stmt *s = PST(st);
	const char *t = pg_col_text(st, col);

	if (t == NULL)
		return NULL;
	PQfreemem(s->blob);
	s->blob = PQunescapeBytea((const unsigned char *)t, len);
	if (s->blob == NULL)
		fatalx("database: out of memory");
	return s->blob;
}

static int64_t pg_changes(struct db *db)
{
	return PG(db)->changes;
}

static bool pg_in_transaction(struct db *db)
{
	return PG(db)->tx_open;
}

static int pg_version_get(struct db *db)
{
	if (db_query_int(db, "SELECT to_regclass('postwarden_schema') IS NOT NULL", -1) != 1)
		return db_error(db) == DB_OK ? 0 : -1;
	return (int)db_query_int(db, "SELECT max(version) FROM postwarden_schema", -1);
}

static int pg_version_set(struct db *db, int v)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "CREATE TABLE IF NOT EXISTS postwarden_schema (version "
		 "integer NOT NULL); DELETE FROM postwarden_schema; "
		 "INSERT INTO postwarden_schema VALUES (%d)", v);
	return pg_exec(db, sql);
}

static int pg_migrate_lock(struct db *db, bool lock)
{
	char sql[80];

	snprintf(sql, sizeof(sql), "SELECT %s(%lld)", lock ? "pg_advisory_lock"
		 : "pg_advisory_unlock", (long long)PG_MIGRATE_LOCK);
	return pg_exec(db, sql);
}

static int pg_relax_durability(struct db *db)
{
	PG(db)->relaxed = true;
	return pg_exec(db, "SET synchronous_commit = off");
}

static unsigned pg_generation(const struct db *db)
{
	return ((const struct pg_conn *)db->impl)->gen;
}

const struct db_ops db_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.exec = pg_exec,
	.prepare = pg_prepare,
	.finalize = pg_finalize,
	.reset = pg_reset,
	.bind_text = pg_bind_text,
	.bind_int = pg_bind_int,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.col_text = pg_col_text,
	.col_int = pg_col_int,
	.col_blob = pg_col_blob,
	.changes = pg_changes,
	.in_transaction = pg_in_transaction,
	.begin_sql = "BEGIN",
	.version_get = pg_version_get,
	.version_set = pg_version_set,
	.migrate_lock = pg_migrate_lock,
	.relax_durability = pg_relax_durability,
	.generation = pg_generation,
};
