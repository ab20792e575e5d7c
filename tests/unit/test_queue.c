/*
 * test_queue.c - the durable spool: commit then re-open sees the message with its envelope,
 * recovery of a spool file without rows, of tmp leftovers, of rows without a file and of a
 * damaged file; removal; group commit of many messages; the guarantee decision from the
 * sender's account and the "TLS-Required: No" header; notifications via queue_inject; the
 * node named in each row.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "account.h"
#include "config.h"
#include "log.h"
#include "relay/relay.h"
#include "schema.h"
#include "xmalloc.h"
#include "unit.h"

static char tmpdir[] = "/tmp/pw-queue-XXXXXX";
static struct pw_config cfg;
static struct relay relay;

struct result {
	int calls;
	bool ok;
	char id[QUEUE_ID_LEN + 1];
};

static void commit_cb(const char *id, bool ok, const char *why, void *arg)
{
	struct result *r = arg;

	r->calls++;
	r->ok = ok;
	snprintf(r->id, sizeof(r->id), "%s", id);
}

static void relay_up(void)
{
	char *err = NULL;

	relay.db = schema_open(&cfg, DB_OPEN_MIGRATE, &err);
	CHECK(relay.db != NULL);
	relay.queue = queue_open(&relay, &err);
	CHECK(relay.queue != NULL);
	if (err)
		fprintf(stderr, "queue_open: %s\n", err);
	free(err);
}

static void relay_down(void)
{
	queue_close(relay.queue);
	relay.queue = NULL;
	db_close(relay.db);
	relay.db = NULL;
}

/* An envelope with n recipients r<i>@example.net; the first with DSN parameters. */
static struct queue_envelope *envelope(const char *sender, size_t n)
{
	struct queue_envelope *env = xcalloc(1, sizeof(*env));

	env->sender = xstrdup(sender);
	env->envid = xstrdup("ENV-1");
	env->ret = xstrdup("HDRS");
	env->body = xstrdup("8BITMIME");
	env->rcpts = xcalloc(n, sizeof(*env->rcpts));
	env->nrcpt = n;
	for (size_t i = 0; i < n; i++)
		env->rcpts[i].addr = xasprintf("r%zu@example.net", i);
	env->rcpts[0].orcpt = xstrdup("rfc822;orig@example.net");
	env->rcpts[0].notify = xstrdup("SUCCESS,FAILURE");
	return env;
}

/* Commit one message and run the loop until its callback; returns the ID (static). */
static const char *commit(const char *sender, const char *data, struct result *r)
{
	struct queue_writer *w = queue_writer_new(relay.queue);
	struct queue_envelope *env = envelope(sender, 2);

	memset(r, 0, sizeof(*r));
	/* in two pieces, as the network delivers it */
	CHECK(queue_writer_add(w, data, strlen(data) / 2) == 0);
	CHECK(queue_writer_add(w, data + strlen(data) / 2, strlen(data) - strlen(data) / 2) == 0);
	queue_writer_commit(w, env, commit_cb, r);
	queue_envelope_free(env);
	for (int i = 0; i < 500 && r->calls == 0; i++)
		event_base_loop(relay.base, EVLOOP_ONCE);
	CHECK(r->calls == 1);
	return r->id;
}

/* A column of the messages row of id as integer; -1 when there is no row. */
static long long msg_int(const char *id, const char *col)
{
	char *sql = xasprintf("SELECT %s FROM messages WHERE id = ?", col);
	struct db_stmt *st = db_prepare(relay.db, sql);
	long long v = -1;

	db_bind_text(st, 1, id);
	if (db_step_row(relay.db, st))
		v = db_col_int(st, 0);
	db_finalize(st);
	free(sql);
	return v;
}

static int rcpt_count(const char *id)
{
	struct db_stmt *st = db_prepare(relay.db, "SELECT count(*) FROM recipients WHERE msg_id = ?");
	int n;

	db_bind_text(st, 1, id);
	db_step_row(relay.db, st);
	n = (int)db_col_int(st, 0);
	db_finalize(st);
	return n;
}

/* Check the recipients rows of id carry the envelope's addresses and DSN parameters. */
static void check_rcpts(const char *id)
{
	struct db_stmt *st = db_prepare(relay.db, "SELECT addr, orcpt, notify, state, next_attempt"
				      " FROM recipients WHERE msg_id = ? ORDER BY idx");

	db_bind_text(st, 1, id);
	CHECK(db_step_row(relay.db, st));
	CHECK_STREQ(db_col_text(st, 0), "r0@example.net");
	CHECK_STREQ(db_col_text(st, 1), "rfc822;orig@example.net");
	CHECK_STREQ(db_col_text(st, 2), "SUCCESS,FAILURE");
	CHECK_STREQ(db_col_text(st, 3), "queued");
	CHECK(db_col_int(st, 4) == 0);
	CHECK(db_step_row(relay.db, st));
	CHECK_STREQ(db_col_text(st, 0), "r1@example.net");
	CHECK(db_col_null(st, 1));
	CHECK(!db_step_row(relay.db, st));
	db_finalize(st);
}

/* The message data as queue_open_data gives it. */
static char *read_data(const char *id)
{
	size_t size = 0;
	int fd = queue_open_data(relay.queue, id, &size);
	char *buf;

	if (fd < 0)
		return NULL;
	buf = xcalloc(1, size + 1);
	CHECK(read(fd, buf, size) == (ssize_t)size);
	close(fd);
	return buf;
}

static bool spool_exists(const char *id)
{
	char *path = queue_data_path(relay.queue, id);
	bool ok = access(path, F_OK) == 0;

	free(path);
	return ok;
}

static const char msg1[] = "Subject: one\r\nFrom: a@example.org\r\n\r\nHello\r\n";

static void test_commit_reopen(void)
{
	struct result r;
	char id[QUEUE_ID_LEN + 1], *data;

	relay_up();
	snprintf(id, sizeof(id), "%s", commit("a@example.org", msg1, &r));
	CHECK(r.ok);
	CHECK(strlen(id) == QUEUE_ID_LEN);
	CHECK(spool_exists(id));
	CHECK(msg_int(id, "size") == (long long)strlen(msg1));
	relay_down();

	relay_up();
	CHECK(msg_int(id, "size") == (long long)strlen(msg1));
	CHECK(msg_int(id, "guarantee") == 0);
	CHECK(msg_int(id, "notification") == 0);
	CHECK(rcpt_count(id) == 2);
	check_rcpts(id);
	data = read_data(id);
	CHECK_STREQ(data, msg1);
	free(data);
	queue_remove(relay.queue, id);
	queue_drain(relay.queue);	/* the worker removes file and rows */
	CHECK(!spool_exists(id));
	CHECK(msg_int(id, "size") == -1);
	CHECK(rcpt_count(id) == 0);
	relay_down();
}

static void test_recovery(void)
{
	struct result r;
	char id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1], *data, *tmp, *junk;
	struct db_stmt *st;
	struct stat sb;
	int fd;

	relay_up();
	snprintf(id, sizeof(id), "%s", commit("a@example.org", msg1, &r));
	snprintf(id2, sizeof(id2), "%s", commit("b@example.org", msg1, &r));
	/* the crash between rename and insert: a spool file without rows */
	st = db_prepare(relay.db, "DELETE FROM messages WHERE id = ?");
	db_bind_text(st, 1, id);
	db_step_done(relay.db, st);
	db_finalize(st);
	CHECK(msg_int(id, "size") == -1);
	CHECK(rcpt_count(id) == 0);
	relay_down();

	/* a half-written file in tmp, a row whose file is gone, a damaged spool file */
	tmp = xasprintf("%s/queue/tmp/0123456789ABCDEF", tmpdir);
	fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "partial", 7) == 7);
	close(fd);
	junk = xasprintf("%s/queue/FEDCBA9876543210", tmpdir);
	fd = open(junk, O_WRONLY | O_CREAT, 0600);
	CHECK(fd >= 0 && write(fd, "not a spool file\n", 17) == 17);
	close(fd);
	{
		char *path = xasprintf("%s/queue/%s", tmpdir, id2);
		CHECK(unlink(path) == 0);
		free(path);
	}

	relay_up();
	CHECK(msg_int(id, "size") == (long long)strlen(msg1));
	CHECK(rcpt_count(id) == 2);
	check_rcpts(id);
	data = read_data(id);
	CHECK_STREQ(data, msg1);
	free(data);
	CHECK(access(tmp, F_OK) != 0);
	CHECK(msg_int(id2, "size") == -1);
	CHECK(rcpt_count(id2) == 0);
	CHECK(access(junk, F_OK) != 0);
	{
		char *aside = xasprintf("%s/queue/corrupt/FEDCBA9876543210", tmpdir);
		CHECK(stat(aside, &sb) == 0);
		free(aside);
	}
	CHECK(msg_int("FEDCBA9876543210", "size") == -1);
	queue_remove(relay.queue, id);
	relay_down();
	free(tmp);
	free(junk);
}

/* The node of message id's row ("" when there is none). */
static char *msg_node(const char *id)
{
	struct db_stmt *st = db_prepare(relay.db, "SELECT node FROM messages WHERE id = ?");
	char *v;

	db_bind_text(st, 1, id);
	v = xstrdup(db_step_row(relay.db, st) ? db_col_text(st, 0) : "");
	db_finalize(st);
	return v;
}

static void set_node(const char *id, const char *node)
{
	struct db_stmt *st = db_prepare(relay.db, "UPDATE messages SET node = ? WHERE id = ?");

	db_bind_text(st, 1, node);
	db_bind_text(st, 2, id);
	CHECK(db_step_done(relay.db, st) == DB_DONE);
	db_finalize(st);
}

/*
 * Rows name the node holding the message. An SQLite database is one machine's: rows from
 * before (node '') and rows of an older host name are this node's after a restart.
 */
static void test_node_of_rows(void)
{
	struct result r;
	char id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1], *node;

	relay_up();
	snprintf(id, sizeof(id), "%s", commit("a@example.org", msg1, &r));
	snprintf(id2, sizeof(id2), "%s", commit("b@example.org", msg1, &r));
	CHECK(*cfg.server.node != '\0');
	node = msg_node(id);
	CHECK_STREQ(node, cfg.server.node);
	free(node);
	set_node(id, "");
	set_node(id2, "old-host-name");
	relay_down();
	relay_up();
	node = msg_node(id);
	CHECK_STREQ(node, cfg.server.node);
	free(node);
	node = msg_node(id2);
	CHECK_STREQ(node, cfg.server.node);
	free(node);
	CHECK(rcpt_count(id) == 2 && rcpt_count(id2) == 2);	/* kept, not recovered anew */
	queue_remove(relay.queue, id);
	queue_remove(relay.queue, id2);
	relay_down();
}

static void test_guarantee(void)
{
	struct result r;
	char *err = NULL;
	char id[QUEUE_ID_LEN + 1];

	relay_up();
	CHECK(account_add(relay.db, "g@example.org", NULL, 0, true, &err) == 0);
	free(err);

	snprintf(id, sizeof(id), "%s", commit("G@example.org", msg1, &r));
	CHECK(msg_int(id, "guarantee") == 1);
	CHECK(msg_int(id, "tls_required_no") == 0);
	queue_remove(relay.queue, id);

	/* RFC 8689: the sender asks to ignore TLS policy (folded, any case) */
	snprintf(id, sizeof(id), "%s", commit("g@example.org",
		 "Subject: x\r\ntls-required:\r\n  no \r\n\r\nbody\r\n", &r));
	CHECK(msg_int(id, "guarantee") == 0);
	CHECK(msg_int(id, "tls_required_no") == 1);
	queue_remove(relay.queue, id);

	/* the same text in the body means nothing */
	snprintf(id, sizeof(id), "%s", commit("g@example.org",
		 "Subject: x\r\n\r\nTLS-Required: No\r\n", &r));
	CHECK(msg_int(id, "guarantee") == 1);
	CHECK(msg_int(id, "tls_required_no") == 0);
	queue_remove(relay.queue, id);

	/* "TLS-Required: Nope" is not "No" */
	snprintf(id, sizeof(id), "%s", commit("g@example.org",
		 "TLS-Required: Nope\r\n\r\nx\r\n", &r));
	CHECK(msg_int(id, "tls_required_no") == 0);
	queue_remove(relay.queue, id);

	/* switched off for a while: no guarantee at acceptance */
	CHECK(account_set_guarantee(relay.db, "g@example.org", false, time(NULL) + 3600, &err) == 0);
	snprintf(id, sizeof(id), "%s", commit("g@example.org", msg1, &r));
	CHECK(msg_int(id, "guarantee") == 0);
	queue_remove(relay.queue, id);

	/* the null sender and unknown senders never have it */
	snprintf(id, sizeof(id), "%s", commit("", msg1, &r));
	CHECK(msg_int(id, "guarantee") == 0);
	struct db_stmt *st = db_prepare(relay.db, "SELECT sender FROM messages WHERE id = ?");
	db_bind_text(st, 1, id);
	CHECK(db_step_row(relay.db, st));
	CHECK_STREQ(db_col_text(st, 0), "");
	db_finalize(st);
	queue_remove(relay.queue, id);
	relay_down();
}

static void test_group_commit(void)
{
	enum { N = 64 };
	struct result r[N];
	int done = 0;

	relay_up();
	memset(r, 0, sizeof(r));
	for (int i = 0; i < N; i++) {
		struct queue_writer *w = queue_writer_new(relay.queue);
		struct queue_envelope *env = envelope("a@example.org", 1);
		CHECK(queue_writer_add(w, msg1, strlen(msg1)) == 0);
		queue_writer_commit(w, env, commit_cb, &r[i]);
		queue_envelope_free(env);
	}
	/* a writer given up on leaves nothing behind */
	{
		struct queue_writer *w = queue_writer_new(relay.queue);
		char *path = xasprintf("%s/queue/tmp/%s", tmpdir, queue_writer_id(w));
		CHECK(access(path, F_OK) == 0);
		queue_writer_abort(w);
		CHECK(access(path, F_OK) != 0);
		free(path);
	}
	for (int loops = 0; loops < 2000 && done < N; loops++) {
		event_base_loop(relay.base, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < N; i++)
			done += r[i].calls;
	}
	CHECK(done == N);
	for (int i = 0; i < N; i++) {
		CHECK(r[i].ok);
		CHECK(msg_int(r[i].id, "size") == (long long)strlen(msg1));
		queue_remove(relay.queue, r[i].id);
	}
	relay_down();
}

static void test_inject(void)
{
	struct queue_envelope *env = envelope("", 1);
	char *id, *data;
	static const char note[] = "From: MAILER-DAEMON@relay.example\r\n\r\nstopped\r\n";

	FILE *logf = tmpfile();
	char line[512];
	bool queued_early = false, queued_late = false;

	relay_up();
	env->notification = true;
	log_init("test", LOG_LEVEL_INFO, logf);
	id = queue_inject(relay.queue, env, note, strlen(note));
	CHECK(id != NULL);
	/* No fsync on the caller's thread: the notification is committed by the worker and
	 * reported back through the loop, like incoming mail. */
	fflush(logf);
	rewind(logf);
	while (fgets(line, sizeof(line), logf) != NULL)
		queued_early |= strstr(line, "event=queued") != NULL;
	CHECK(!queued_early);
	queue_drain(relay.queue);
	fflush(logf);
	rewind(logf);
	while (fgets(line, sizeof(line), logf) != NULL)
		queued_late |= id && strstr(line, "event=queued") && strstr(line, id);
	CHECK(queued_late);
	log_init("test", LOG_LEVEL_ERROR, stderr);
	fclose(logf);
	if (id) {
		CHECK(msg_int(id, "notification") == 1);
		CHECK(msg_int(id, "size") == (long long)strlen(note));
		data = read_data(id);
		CHECK_STREQ(data, note);
		free(data);
	}
	relay_down();
	/* durable without the loop ever running */
	relay_up();
	if (id) {
		CHECK(msg_int(id, "notification") == 1);
		queue_remove(relay.queue, id);
	}
	CHECK(queue_open_data(relay.queue, "0000000000000000", &(size_t){ 0 }) < 0);
	CHECK(queue_open_data(relay.queue, "../postwarden.db", &(size_t){ 0 }) < 0);
	relay_down();
	free(id);
	queue_envelope_free(env);
}

/*
 * Removal runs on the worker: file first, then rows; asking twice (the scheduler's
 * housekeeping may find the message again before the worker is done) removes it once and
 * harms nothing; a row whose ID is no spool file name of ours loses only its row; a row
 * whose file is already gone loses its row.
 */
static void test_remove(void)
{
	struct result r;
	char id[QUEUE_ID_LEN + 1], id2[QUEUE_ID_LEN + 1], *path;
	struct db_stmt *st;

	relay_up();
	snprintf(id, sizeof(id), "%s", commit("a@example.org", msg1, &r));
	snprintf(id2, sizeof(id2), "%s", commit("a@example.org", msg1, &r));
	CHECK(spool_exists(id) && spool_exists(id2));
	CHECK(msg_int(id, "size") > 0);
	queue_remove(relay.queue, id);
	queue_remove(relay.queue, id);
	queue_drain(relay.queue);
	CHECK(!spool_exists(id));
	CHECK(msg_int(id, "size") == -1);
	CHECK(rcpt_count(id) == 0);
	/* the control: the other message is untouched */
	CHECK(spool_exists(id2));
	CHECK(msg_int(id2, "size") == (long long)strlen(msg1));

	/* its file gone already: the row goes all the same */
	path = xasprintf("%s/queue/%s", tmpdir, id2);
	CHECK(unlink(path) == 0);
	free(path);
	queue_remove(relay.queue, id2);
	queue_drain(relay.queue);
	CHECK(msg_int(id2, "size") == -1);
	CHECK(rcpt_count(id2) == 0);

	/* a row with an ID that is no file name of ours (written by hand) */
	st = db_prepare(relay.db, "INSERT INTO messages (id, sender, size, received) "
			"VALUES ('../x', 'a@example.org', 1, 0)");
	CHECK(db_step_done(relay.db, st) == DB_DONE);
	db_finalize(st);
	CHECK(msg_int("../x", "size") == 1);
	queue_remove(relay.queue, "../x");
	queue_drain(relay.queue);
	CHECK(msg_int("../x", "size") == -1);
	relay_down();
}

static void setup(void)
{
	char *conf, *err = NULL;
	FILE *f;

	CHECK(mkdtemp(tmpdir) != NULL);
	conf = xasprintf("%s/pw.conf", tmpdir);
	f = fopen(conf, "w");
	fprintf(f, "[server]\nstate_dir = %s\nhostname = relay.example\nlog_level = error\n", tmpdir);
	fclose(f);
	CHECK(config_load(&cfg, conf, &err) == 0);
	free(err);
	free(conf);
	relay.cfg = &cfg;
	relay.base = event_base_new();
}

static void teardown(void)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);

	event_base_free(relay.base);
	config_free(&cfg);
	CHECK(system(cmd) == 0);
	free(cmd);
}

TEST_MAIN(setup, test_commit_reopen, test_recovery, test_guarantee, test_group_commit, test_inject,
	  test_remove, test_node_of_rows, teardown)
