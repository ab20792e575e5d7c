/*
 * relay_queue.c - the durable spool: one file per message plus its database rows.
 *
 * A spool file <state_dir>/queue/<ID> holds the message data, then the envelope as one JSON
 * line, then a fixed-size trailer "\n#pwenv XXXXXXXX\n" giving the JSON length in hex. The
 * data comes first so it can be written while it arrives; the envelope is only complete at
 * the end. The file is written under queue/tmp/, fsynced, renamed into queue/ and the
 * directory fsynced: from then on the message exists, whatever happens. The database rows
 * (messages + recipients) follow; at start-up every spool file without a row gets its rows
 * from its envelope, so the file is the single durability point.
 *
 * Several nodes may share one database, each with its own spool on local disk: a row names
 * the node whose spool holds the message ([server] node), and a node's start-up and
 * scheduler touch only its own rows. Rows from before (node '') are adopted by the node
 * that has their file.
 *
 * fsync is slow and must not block the event loop, so a worker thread does it with group
 * commit: every message committed while the worker is busy goes into the next round, which
 * decides each message's guarantee (the sender's account: a database read), completes and
 * syncs the files together, fsyncs the directory once, and inserts all rows in one
 * transaction (on its own database connection, so that its transaction never mixes with the
 * loop's statements).
 * Completions come back to the loop through a pipe.
 *
 * When the rows cannot be written (a full disk, a locked database), the messages are still
 * accepted: their files are durable, and the worker keeps their envelopes and inserts the
 * rows once it can, retrying every second (after a restart, recovery does it from the
 * files). Every failed write is reported to the storage watch (relay_storage.c), which makes
 * smtpd answer 452 4.3.1 until storage is back.
 */
#include "relay.h"
#include "relay_hdr.h"
#include "relay_storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "account.h"
#include "log.h"
#include "schema.h"
#include "strutil.h"
#include "xmalloc.h"

#define TRAILER_FMT	"\n#pwenv %08x\n"
#define TRAILER_LEN	17
#define ENVELOPE_MAX	(16 * 1024 * 1024)	/* 100000 recipients with long addresses */
#define WRITE_BUF	65536
#define QUEUE_RETRY_SECONDS	1	/* retrying rows that could not be written */
#define QUEUE_PROBE_SECONDS	5	/* an idle worker asks whether its connection is there */

/* An envelope with what the queue decides at acceptance. */
struct spool_env {
	char id[QUEUE_ID_LEN + 1];
	struct queue_envelope *env;
	uint64_t size;
	int64_t received;
	bool guarantee;
	bool tls_required_no;
};

/* A message whose file is durable but whose rows are not written yet (worker-owned). */
struct queue_unrec {
	struct queue_unrec *next;
	struct spool_env se;
};

/*
 * A commit waiting for the worker, then for its callback on the loop; or (remove) a
 * delivered message the worker removes, file and rows.
 */
struct queue_job {
	struct queue_job *next;
	bool remove;		/* path is then the message's ID, as the scheduler gave it */
	int fd;			/* -1 when the writer had already failed */
	char *tmp_path;
	char *path;
	struct spool_env se;
	char *wbuf;		/* data the writer had not written yet */
	size_t wlen;
	bool decided;		/* the guarantee is decided (worker) */
	bool sender_guarantee;	/* the sender's account's guarantee, as looked up */
	bool ok;
	const char *why;	/* static text: why it was refused, for the client (or NULL) */
	queue_commit_cb cb;
	void *arg;
};

struct queue {
	struct relay *relay;
	uint64_t lookups;	/* guarantee look-ups on wdb (statistics; worker only) */
	uint64_t removal_statements;	/* of wdb's, those that removed delivered messages */
	unsigned wdb_generation;	/* of wdb's connection when the spool was last indexed */
	char *dir;
	char *tmp_dir;
	int dir_fd;
	int tmp_fd;		/* tmp_dir: spool files are made and renamed relative to these */
	struct db *wdb;			/* the worker's own connection */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct queue_job *pending, **pending_tail;
	struct queue_job *done, **done_tail;
	bool busy;			/* worker is committing a batch */
	bool stopping;
	int notify_r, notify_w;
	struct event *notify_ev;
	struct queue_unrec *unrecorded;	/* the worker's; rows to retry */
	size_t nunrecorded;
	bool rows_failed;		/* the last try to write them failed */
	struct storage *storage;
};

struct queue_writer {
	struct queue *q;
	char id[QUEUE_ID_LEN + 1];
	int fd;
	char *tmp_path;
	uint64_t size;
	bool failed;
	char *wbuf;
	size_t wlen;
	struct relay_hdr hs;
};

static bool queue_id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i]; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
			return false;
	return i == QUEUE_ID_LEN;
}

/* ---- envelopes ---------------------------------------------------------------------- */

static char *xstrdup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static struct queue_envelope *envelope_copy(const struct queue_envelope *env)
{
	struct queue_envelope *c = xcalloc(1, sizeof(*c));

	c->sender = xstrdup(env->sender ? env->sender : "");
	c->envid = xstrdup_or_null(env->envid);
	c->ret = xstrdup_or_null(env->ret);
	c->body = xstrdup_or_null(env->body);
	c->smtputf8 = env->smtputf8;
	c->notification = env->notification;
	c->requiretls = env->requiretls;
	c->nrcpt = env->nrcpt;
	c->rcpts = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*c->rcpts));
	for (size_t i = 0; i < env->nrcpt; i++) {
		c->rcpts[i].addr = xstrdup(env->rcpts[i].addr);
		c->rcpts[i].orcpt = xstrdup_or_null(env->rcpts[i].orcpt);
		c->rcpts[i].notify = xstrdup_or_null(env->rcpts[i].notify);
	}
	return c;
}

void queue_envelope_free(struct queue_envelope *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].orcpt);
		free(env->rcpts[i].notify);
	}
	free(env->rcpts);
	free(env->sender);
	free(env->envid);
	free(env->ret);
	free(env->body);
	free(env);
}

static json_t *json_str_or_null(const char *s)
{
	json_t *j = s ? json_string(s) : NULL;

	return j ? j : json_null();
}

/* The envelope as one line of JSON (caller frees). */
static char *spool_env_json(const struct spool_env *se)
{
	const struct queue_envelope *env = se->env;
	json_t *o = json_object(), *rcpts = json_array();
	char *s;

	json_object_set_new(o, "v", json_integer(1));
	json_object_set_new(o, "id", json_string(se->id));
	json_object_set_new(o, "sender", json_str_or_null(env->sender));
	json_object_set_new(o, "size", json_integer((json_int_t)se->size));
	json_object_set_new(o, "received", json_integer(se->received));
	json_object_set_new(o, "envid", json_str_or_null(env->envid));
	json_object_set_new(o, "ret", json_str_or_null(env->ret));
	json_object_set_new(o, "body", json_str_or_null(env->body));
	json_object_set_new(o, "smtputf8", json_boolean(env->smtputf8));
	json_object_set_new(o, "notification", json_boolean(env->notification));
	json_object_set_new(o, "requiretls", json_boolean(env->requiretls));
	json_object_set_new(o, "guarantee", json_boolean(se->guarantee));
	json_object_set_new(o, "tls_required_no", json_boolean(se->tls_required_no));
	for (size_t i = 0; i < env->nrcpt; i++) {
		json_t *r = json_object();
		json_object_set_new(r, "addr", json_str_or_null(env->rcpts[i].addr));
		json_object_set_new(r, "orcpt", json_str_or_null(env->rcpts[i].orcpt));
		json_object_set_new(r, "notify", json_str_or_null(env->rcpts[i].notify));
		json_array_append_new(rcpts, r);
	}
	json_object_set_new(o, "rcpts", rcpts);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		fatalx("cannot encode envelope of %s", se->id);
	return s;
}

static char *json_get_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? xstrdup(s) : NULL;
}

/* Parse an envelope line; false when it is not one of ours. */
static bool spool_env_parse(const char *text, size_t len, struct spool_env *se)
{
	json_t *o = json_loadb(text, len, 0, NULL), *rcpts;
	const char *id, *sender;
	struct queue_envelope *env;

	if (o == NULL)
		return false;
	id = json_string_value(json_object_get(o, "id"));
	sender = json_string_value(json_object_get(o, "sender"));
	rcpts = json_object_get(o, "rcpts");
	if (id == NULL || !queue_id_valid(id) || sender == NULL || !json_is_array(rcpts) ||
	    json_array_size(rcpts) == 0 || !json_is_integer(json_object_get(o, "size"))) {
		json_decref(o);
		return false;
	}
	memset(se, 0, sizeof(*se));
	memcpy(se->id, id, QUEUE_ID_LEN + 1);
	se->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
	se->received = json_integer_value(json_object_get(o, "received"));
	se->guarantee = json_is_true(json_object_get(o, "guarantee"));
	se->tls_required_no = json_is_true(json_object_get(o, "tls_required_no"));
	env = se->env = xcalloc(1, sizeof(*env));
	env->sender = xstrdup(sender);
	env->envid = json_get_str(o, "envid");
	env->ret = json_get_str(o, "ret");
	env->body = json_get_str(o, "body");
	env->smtputf8 = json_is_true(json_object_get(o, "smtputf8"));
	env->notification = json_is_true(json_object_get(o, "notification"));
	env->requiretls = json_is_true(json_object_get(o, "requiretls"));
	env->rcpts = xcalloc(json_array_size(rcpts), sizeof(*env->rcpts));
	for (size_t i = 0; i < json_array_size(rcpts); i++) {
		json_t *r = json_array_get(rcpts, i);
		char *addr = json_get_str(r, "addr");
		if (addr == NULL)
			continue;
		env->rcpts[env->nrcpt].addr = addr;
		env->rcpts[env->nrcpt].orcpt = json_get_str(r, "orcpt");
		env->rcpts[env->nrcpt].notify = json_get_str(r, "notify");
		env->nrcpt++;
	}
	json_decref(o);
	if (env->nrcpt == 0) {
		queue_envelope_free(env);
		return false;
	}
	return true;
}

/*
 * Read the envelope of the spool file open on fd; *data_size is the data length.
 * False when the file is not a complete spool file.
 */
static bool spool_read_env(int fd, struct spool_env *se, size_t *data_size)
{
	struct stat st;
	char trailer[TRAILER_LEN + 1], *json;
	unsigned jlen;
	bool ok;

	if (fstat(fd, &st) < 0 || st.st_size < TRAILER_LEN)
		return false;
	if (pread(fd, trailer, TRAILER_LEN, st.st_size - TRAILER_LEN) != TRAILER_LEN)
		return false;
	trailer[TRAILER_LEN] = '\0';
	if (strncmp(trailer, "\n#pwenv ", 8) != 0 || trailer[TRAILER_LEN - 1] != '\n' ||
	    sscanf(trailer + 8, "%8x", &jlen) != 1 || jlen > ENVELOPE_MAX ||
	    (off_t)jlen > st.st_size - TRAILER_LEN)
		return false;
	json = xmalloc(jlen + 1);
	ok = pread(fd, json, jlen, st.st_size - TRAILER_LEN - jlen) == (ssize_t)jlen &&
	     spool_env_parse(json, jlen, se);
	free(json);
	if (!ok)
		return false;
	*data_size = (size_t)(st.st_size - TRAILER_LEN - jlen);
	if (se->size != *data_size) {
		queue_envelope_free(se->env);
		return false;
	}
	return true;
}

/*
 * The index rows of many messages go in with two statements, whatever their number: each
 * statement reads its rows from one JSON array parameter (one array per row). On a database
 * server a statement costs a round trip and the server's time; one per row, as before, was
 * most of what the queue cost there.
 */
#define QUEUE_INSERT_MESSAGES(rows) \
	"INSERT INTO messages (id, sender, size, received, envid, ret, body, smtputf8," \
	" guarantee, tls_required_no, notification, requiretls, node)" \
	" SELECT value->>0, value->>1, CAST(value->>2 AS BIGINT), CAST(value->>3 AS BIGINT)," \
	" value->>4, value->>5, value->>6, CAST(value->>7 AS INTEGER)," \
	" CAST(value->>8 AS INTEGER), CAST(value->>9 AS INTEGER), CAST(value->>10 AS INTEGER)," \
	" CAST(value->>11 AS INTEGER), ?2" \
	" FROM " rows " WHERE true ON CONFLICT DO NOTHING"
#define QUEUE_INSERT_RECIPIENTS(rows) \
	"INSERT INTO recipients (msg_id, idx, addr, orcpt, notify, state, next_attempt)" \
	" SELECT value->>0, CAST(value->>1 AS INTEGER), value->>2, value->>3, value->>4," \
	" 'queued', 0 FROM " rows " WHERE true ON CONFLICT DO NOTHING"
#define QUEUE_ROWS_SQLITE	"json_each(?1)"
#define QUEUE_ROWS_PG		"json_array_elements(CAST(?1 AS json)) AS rows(value)"

static const char insert_messages_sqlite[] = QUEUE_INSERT_MESSAGES(QUEUE_ROWS_SQLITE);
static const char insert_messages_pg[] = QUEUE_INSERT_MESSAGES(QUEUE_ROWS_PG);
static const char insert_recipients_sqlite[] = QUEUE_INSERT_RECIPIENTS(QUEUE_ROWS_SQLITE);
static const char insert_recipients_pg[] = QUEUE_INSERT_RECIPIENTS(QUEUE_ROWS_PG);
static const char delete_messages_sqlite[] =
	"DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?1))";
static const char delete_messages_pg[] =
	"DELETE FROM messages WHERE id IN (SELECT json_array_elements_text(CAST(?1 AS json)))";

/* The rows of many messages, as the insert statements read them. */
struct queue_rows {
	json_t *messages, *recipients;
};

/*
 * Append one row; the texts were checked at the SMTP parser (UTF-8 only), so a row that
 * cannot be made is a broken invariant.
 */
static void queue_rows_append(json_t *array, json_t *row)
{
	if (row == NULL || json_array_append_new(array, row) < 0)
		fatalx("queue: cannot encode an index row");
}

/* Add the messages row and the recipients rows of one envelope. */
static void queue_rows_add(struct queue_rows *rows, const struct spool_env *se)
{
	const struct queue_envelope *env = se->env;

	queue_rows_append(rows->messages, json_pack("[s,s,I,I,o,o,o,i,i,i,i,i]", se->id,
		env->sender, (json_int_t)se->size, (json_int_t)se->received,
		json_str_or_null(env->envid), json_str_or_null(env->ret),
		json_str_or_null(env->body), env->smtputf8, se->guarantee, se->tls_required_no,
		env->notification, env->requiretls));
	for (size_t i = 0; i < env->nrcpt; i++)
		queue_rows_append(rows->recipients, json_pack("[s,I,s,o,o]", se->id,
			(json_int_t)i, env->rcpts[i].addr, json_str_or_null(env->rcpts[i].orcpt),
			json_str_or_null(env->rcpts[i].notify)));
}

/* Run one of the insert statements over rows (inside the caller's transaction). */
static void queue_rows_insert(struct db *db, const char *sql, json_t *rows, const char *node)
{
	struct db_stmt *st = db_prepare_cached(db, sql);
	char *text = json_dumps(rows, JSON_COMPACT);

	if (text == NULL)
		fatalx("queue: cannot encode index rows");
	db_bind_text(st, 1, text);
	db_bind_text(st, 2, node);
	db_step_done(db, st);
	db_release(db, st);
	free(text);
}

/*
 * Insert the collected rows (inside the caller's transaction; a failure shows at its
 * db_commit).
 */
static void queue_rows_write(struct db *db, const char *node, const struct queue_rows *rows)
{
	queue_rows_insert(db, DB_SQL(db, insert_messages_sqlite, insert_messages_pg),
			  rows->messages, node);
	queue_rows_insert(db, DB_SQL(db, insert_recipients_sqlite, insert_recipients_pg),
			  rows->recipients, node);
}

/* ---- writing -------------------------------------------------------------------------- */

/* Write every byte of iov[0..n) (changed as it goes); -1 with errno on failure. */
static int writev_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t done = writev(fd, iov, n);

		if (done < 0 && errno == EINTR)
			continue;
		if (done <= 0)
			return -1;
		for (; n > 0 && (size_t)done >= iov->iov_len; iov++, n--)
			done -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= (size_t)done;
		}
	}
	return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A spool write failed: tell the storage watch; log each message only while the condition
 * is not known yet (it is logged once by the watch, not once per message).
 */
static void queue_write_failed(struct queue *q, const char *id, const char *path,
			       const char *error)
{
	if (storage_short(q->storage))
		log_debug("event=queue_write_error id=%s path=%s error=\"%s\"", id, path, error);
	else
		log_error("event=queue_write_error id=%s path=%s error=\"%s\"", id, path, error);
	storage_failed(q->storage, "spool", error);
}

static int writer_flush(struct queue_writer *w)
{
	if (w->failed)
		return -1;
	if (w->wlen && write_all(w->fd, w->wbuf, w->wlen) < 0) {
		queue_write_failed(w->q, w->id, w->tmp_path, strerror(errno));
		w->failed = true;
		return -1;
	}
	w->wlen = 0;
	return 0;
}

struct queue_writer *queue_writer_new(struct queue *q)
{
	struct queue_writer *w = xcalloc(1, sizeof(*w));

	w->q = q;
	w->fd = -1;
	relay_hdr_init(&w->hs);
	for (int tries = 0; tries < 5 && w->fd < 0; tries++) {
		random_id(w->id);
		if (faccessat(q->dir_fd, w->id, F_OK, 0) == 0)
			continue;
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s", q->tmp_dir, w->id);
		w->fd = openat(q->tmp_fd, w->id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (w->fd < 0 && errno != EEXIST)
			break;
	}
	if (w->fd < 0) {
		queue_write_failed(q, w->id, w->tmp_path, strerror(errno));
		w->failed = true;
	}
	w->wbuf = xmalloc(WRITE_BUF);
	return w;
}

const char *queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

int queue_writer_add(struct queue_writer *w, const void *data, size_t len)
{
	if (w->failed)
		return -1;
	relay_hdr_scan(&w->hs, data, len);
	w->size += len;
	if (w->wlen + len > WRITE_BUF && writer_flush(w) < 0)
		return -1;
	if (len >= WRITE_BUF) {
		if (write_all(w->fd, data, len) < 0) {
			queue_write_failed(w->q, w->id, w->tmp_path, strerror(errno));
			w->failed = true;
			return -1;
		}
		return 0;
	}
	memcpy(w->wbuf + w->wlen, data, len);
	w->wlen += len;
	return 0;
}

void queue_writer_abort(struct queue_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		unlinkat(w->q->tmp_fd, w->id, 0);
	}
	free(w->tmp_path);
	free(w->wbuf);
	free(w);
}

/*
 * Is the guarantee of the account owning sender active at now? One kept-prepared query:
 * account_find would load the whole account, aliases too, with three statements for each
 * message. A failed read shows in db_error.
 */
static bool queue_sender_guarantee(struct db *db, const char *sender, int64_t now)
{
	struct db_stmt *st = db_prepare_cached(db,
		"SELECT a.guarantee, a.guarantee_off_until FROM addresses d "
		"JOIN accounts a ON a.id = d.account_id WHERE d.addr = ?");
	struct account a = { .guarantee = false };
	bool found;

	db_bind_text(st, 1, sender);
	found = db_step_row(db, st);
	if (found) {
		a.guarantee = (int)db_col_int(st, 0) != 0;
		a.guarantee_off_until = db_col_int(st, 1);
	}
	db_release(db, st);
	return found && account_guarantee_active(&a, now);
}

/*
 * Decide the guarantee of a job (worker): the sender's account at acceptance, unless the
 * message says "TLS-Required: No" or is one of our notifications. A sender already looked
 * up in this batch is not asked for again. False when it cannot be read now.
 */
static bool queue_decide(struct queue *q, struct queue_job *job, const struct queue_job *batch)
{
	struct spool_env *se = &job->se;
	const char *sender = se->env->sender;
	bool guarantee;

	if (se->env->notification || !*sender) {
		se->guarantee = false;
		return true;
	}
	for (const struct queue_job *b = batch; b != job; b = b->next) {
		if (!b->remove && b->decided && strcmp(b->se.env->sender, sender) == 0) {
			se->guarantee = b->sender_guarantee && !se->tls_required_no;
			job->sender_guarantee = b->sender_guarantee;
			return true;
		}
	}
	db_clear_error(q->wdb);
	guarantee = queue_sender_guarantee(q->wdb, sender, se->received);
	q->lookups++;
	if (db_error(q->wdb) != DB_OK) {
		/* A failed lookup must not send the message without its guarantee: refuse it. */
		log_error("event=queue_account_error id=%s sender=<%s> error=\"%s\"", se->id,
			  sender, db_errmsg(q->wdb));
		/* the server is away: refuse new mail at MAIL already until it is back */
		if (db_error(q->wdb) == DB_UNAVAILABLE)
			storage_db_failed(q->storage, DB_UNAVAILABLE, db_errmsg(q->wdb));
		return false;
	}
	job->sender_guarantee = guarantee;
	se->guarantee = guarantee && !se->tls_required_no;
	return true;
}

/*
 * Append the buffered data, the envelope and the trailer behind what the file already
 * holds, in one writev (for a small message that is the whole file in one system call);
 * false on a write error.
 */
static bool queue_job_finish_file(struct queue *q, struct queue_job *job)
{
	char *json, trailer[TRAILER_LEN + 1];
	size_t jlen;
	struct iovec iov[3];
	int rc;

	json = spool_env_json(&job->se);
	jlen = strlen(json);
	if (jlen > ENVELOPE_MAX) {
		log_error("event=queue_write_error id=%s path=%s error=\"envelope too large\"",
			  job->se.id, job->tmp_path);
		free(json);
		return false;
	}
	snprintf(trailer, sizeof(trailer), TRAILER_FMT, (unsigned)jlen);
	iov[0] = (struct iovec){ .iov_base = job->wbuf, .iov_len = job->wlen };
	iov[1] = (struct iovec){ .iov_base = json, .iov_len = jlen };
	iov[2] = (struct iovec){ .iov_base = trailer, .iov_len = TRAILER_LEN };
	rc = writev_all(job->fd, iov, 3);
	if (rc < 0)
		queue_write_failed(q, job->se.id, job->tmp_path, strerror(errno));
	free(json);
	return rc == 0;
}

/*
 * Hand the message to the worker, which decides its guarantee (a database round trip that
 * must not hold up the loop), completes and syncs its file and writes its rows.
 */
void queue_writer_commit(struct queue_writer *w, const struct queue_envelope *env,
			 queue_commit_cb cb, void *arg)
{
	struct queue *q = w->q;
	struct queue_job *job = xcalloc(1, sizeof(*job));

	relay_hdr_finish(&w->hs);
	memcpy(job->se.id, w->id, sizeof(job->se.id));
	job->se.env = envelope_copy(env);
	job->se.size = w->size;
	job->se.received = time(NULL);
	/* REQUIRETLS wins over "TLS-Required: No" (RFC 8689 4.1): the guarantee stays too */
	if (w->hs.require_tls)
		job->se.env->requiretls = true;
	job->se.tls_required_no = w->hs.tls_required_no && !job->se.env->requiretls;
	job->ok = !w->failed;
	job->wbuf = w->wbuf;
	job->wlen = w->wlen;
	job->fd = w->fd;
	job->tmp_path = w->tmp_path;
	job->path = queue_data_path(q, w->id);
	job->cb = cb;
	job->arg = arg;
	free(w);

	pthread_mutex_lock(&q->lock);
	*q->pending_tail = job;
	q->pending_tail = &job->next;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* ---- the worker ------------------------------------------------------------------------ */

/*
 * Make every file of the batch durable: first start the write-back of all of them, then wait
 * for each with fsync. The disk works on the files together, so a batch costs about one
 * flush however many files it holds (on a journalling file system the first fsync commits
 * the journal with every file's metadata in it, the later ones find it done). An fsync per
 * file without the first step would pay one flush each; syncfs, used before, waits for
 * every dirty page of the whole file system, other programs' writes included, which on a
 * shared disk made a group commit take anything from 1 to 150 ms.
 */
static void queue_sync_files(struct queue *q, struct queue_job *batch)
{
	for (struct queue_job *j = batch; j; j = j->next)
		if (j->ok && sync_file_range(j->fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0)
			log_debug("event=queue_sync_file_range id=%s error=\"%s\"", j->se.id,
				  strerror(errno));	/* the fsync below still decides */
	for (struct queue_job *j = batch; j; j = j->next) {
		if (j->ok && fsync(j->fd) < 0) {
			queue_write_failed(q, j->se.id, j->tmp_path, strerror(errno));
			j->ok = false;
		}
	}
}

/* Keep a copy of an envelope whose rows are to be written (worker or start-up only). */
static void queue_unrec_add(struct queue *q, const struct spool_env *se)
{
	struct queue_unrec *u = xcalloc(1, sizeof(*u));

	u->se = *se;
	u->se.env = envelope_copy(se->env);
	u->next = q->unrecorded;
	q->unrecorded = u;
	q->nunrecorded++;
}

static void queue_unrec_free_all(struct queue *q)
{
	while (q->unrecorded) {
		struct queue_unrec *u = q->unrecorded;

		q->unrecorded = u->next;
		queue_envelope_free(u->se.env);
		free(u);
	}
	q->nunrecorded = 0;
}

/*
 * Insert the rows of every message kept in q->unrecorded and of the kept messages of batch
 * (may be NULL) in one transaction (the worker's connection). On failure they are all kept
 * for the next try: the files are durable, the rows are only the index the scheduler reads.
 */
static void queue_record_rows(struct queue *q, const struct queue_job *batch)
{
	struct queue_rows rows;
	int rc;
	bool any = q->unrecorded != NULL;

	for (const struct queue_job *j = batch; j && !any; j = j->next)
		any = j->ok;
	if (!any)
		return;
	rows.messages = json_array();
	rows.recipients = json_array();
	if (rows.messages == NULL || rows.recipients == NULL)
		fatalx("out of memory");
	for (struct queue_unrec *u = q->unrecorded; u; u = u->next)
		queue_rows_add(&rows, &u->se);
	for (const struct queue_job *j = batch; j; j = j->next)
		if (j->ok)
			queue_rows_add(&rows, &j->se);
	if ((rc = db_begin(q->wdb)) == DB_OK) {
		queue_rows_write(q->wdb, q->relay->cfg->server.node, &rows);
		rc = db_commit(q->wdb);
	} else {
		db_rollback(q->wdb);
	}
	json_decref(rows.messages);
	json_decref(rows.recipients);
	if (rc != DB_OK) {
		for (const struct queue_job *j = batch; j; j = j->next)
			if (j->ok)
				queue_unrec_add(q, &j->se);
		log_debug("event=queue_rows_pending messages=%zu error=\"%s\"", q->nunrecorded,
			  db_errmsg(q->wdb));
		storage_db_failed(q->storage, db_error(q->wdb), db_errmsg(q->wdb));
		q->rows_failed = true;
		return;
	}
	if (q->rows_failed)
		log_info("event=queue_rows_written messages=%zu", q->nunrecorded);
	q->rows_failed = false;
	queue_unrec_free_all(q);
}

/* Decide each job's guarantee and complete its file; a job that cannot be is refused. */
static void queue_complete_files(struct queue *q, struct queue_job *batch)
{
	for (struct queue_job *j = batch; j; j = j->next) {
		if (!j->ok)
			continue;
		if (!queue_decide(q, j, batch)) {
			j->ok = false;
			j->why = QUEUE_WHY_NO_GUARANTEE;
			continue;
		}
		j->decided = true;
		j->ok = queue_job_finish_file(q, j);
	}
}

/*
 * One group commit: decide and complete each file, sync and rename them, fsync the
 * directory, insert every row.
 */
static void queue_commit_batch(struct queue *q, struct queue_job *batch)
{
	bool any = false;
	unsigned n = 0;

	queue_complete_files(q, batch);
	queue_sync_files(q, batch);
	for (struct queue_job *j = batch; j; j = j->next) {
		if (j->fd >= 0)
			close(j->fd);
		j->fd = -1;
		if (j->ok && renameat(q->tmp_fd, j->se.id, q->dir_fd, j->se.id) < 0) {
			log_error("event=queue_rename_error id=%s error=\"%s\"", j->se.id, strerror(errno));
			storage_failed(q->storage, "spool", strerror(errno));
			j->ok = false;
		}
		if (!j->ok && j->tmp_path)
			unlinkat(q->tmp_fd, j->se.id, 0);
		any |= j->ok;
	}
	if (!any)
		return;
	if (fsync(q->dir_fd) < 0) {
		log_error("event=queue_fsync_error dir=%s error=\"%s\"", q->dir, strerror(errno));
		storage_failed(q->storage, "spool", strerror(errno));
		for (struct queue_job *j = batch; j; j = j->next) {
			if (j->ok)
				unlink(j->path);
			j->ok = false;
		}
		return;
	}
	for (struct queue_job *j = batch; j; j = j->next)
		n += j->ok;
	queue_record_rows(q, batch);
	log_debug("event=queue_group_commit messages=%u", n);
}

/* Take the removals out of a list of jobs, both keeping their order. */
static struct queue_job *queue_take_removals(struct queue_job **list)
{
	struct queue_job *rm = NULL, **rm_tail = &rm, **p = list;

	while (*p) {
		struct queue_job *j = *p;

		if (!j->remove) {
			p = &j->next;
			continue;
		}
		*p = j->next;
		j->next = NULL;
		*rm_tail = j;
		rm_tail = &j->next;
	}
	return rm;
}

static void queue_job_free(struct queue_job *j)
{
	free(j->wbuf);
	free(j->tmp_path);
	free(j->path);
	queue_envelope_free(j->se.env);
	free(j);
}

/*
 * Remove delivered messages (worker): unlink their files, then delete their rows with one
 * statement (their ids in a JSON array, as the inserts read theirs). File first: a row
 * without a file is cleaned at start, a file without a row would be delivered again. Rows that cannot be deleted are found again by the scheduler
 * (all their recipients are final), which removes them again.
 */
static void queue_remove_batch(struct queue *q, struct queue_job *list)
{
	struct db_stats before, after;
	json_t *ids = json_array();
	struct db_stmt *st;
	char *text;
	int rc;

	db_get_stats(q->wdb, &before);
	for (struct queue_job *j = list; j; j = j->next)
		if (queue_id_valid(j->path) && unlinkat(q->dir_fd, j->path, 0) < 0 &&
		    errno != ENOENT)
			log_error("event=queue_remove_error id=%s error=\"%s\"", j->path,
				  strerror(errno));
	for (struct queue_job *j = list; j; j = j->next)
		queue_rows_append(ids, json_string(j->path));
	st = db_prepare_cached(q->wdb, DB_SQL(q->wdb, delete_messages_sqlite, delete_messages_pg));
	text = json_dumps(ids, JSON_COMPACT);
	if (text == NULL)
		fatalx("out of memory");
	db_bind_text(st, 1, text);
	rc = db_step_done(q->wdb, st);
	if (rc == DB_DONE)
		rc = DB_OK;
	db_release(q->wdb, st);
	free(text);
	json_decref(ids);
	db_get_stats(q->wdb, &after);
	q->removal_statements += after.statements - before.statements;
	if (rc != DB_OK) {
		log_debug("event=queue_remove_pending error=\"%s\"", db_errmsg(q->wdb));
		storage_db_failed(q->storage, db_error(q->wdb), db_errmsg(q->wdb));
	}
	while (list) {
		struct queue_job *j = list;

		list = j->next;
		if (rc == DB_OK)
			log_debug("event=queue_removed id=%s", j->path);
		queue_job_free(j);
	}
}

/* Give finished jobs to the loop and wake it (lock held). */
static void queue_hand_back(struct queue *q, struct queue_job *list)
{
	if (list == NULL)
		return;
	*q->done_tail = list;
	while (*q->done_tail)
		q->done_tail = &(*q->done_tail)->next;
	if (write(q->notify_w, "x", 1) < 0 && errno != EAGAIN)
		log_error("event=queue_notify_error error=\"%s\"", strerror(errno));
}

/*
 * The worker: group commits, retries of rows, and the removal of delivered messages. An
 * unlink can wait for the disk (a discard on some file systems) and a delete for the
 * database, so neither is done on the loop; removals come after the commit of the same
 * round, whose 250s they must not delay.
 */
static void queue_recover_files(struct queue *q);

/* One cheap statement on the worker's connection (it reconnects if it was lost). */
static void queue_probe_db(struct queue *q)
{
	db_query_int(q->wdb, "SELECT 1", 0);
	db_clear_error(q->wdb);
}

/*
 * The worker's connection came back after a loss: the server may have lost rows committed
 * just before (a failover to a standby that had not received them yet), so index the
 * spool again. Rows that are there are left alone (their recipients' states too).
 */
static void queue_reindex_after_reconnect(struct queue *q)
{
	unsigned gen = db_connection_generation(q->wdb);

	if (gen == q->wdb_generation)
		return;
	q->wdb_generation = gen;
	log_info("event=queue_reindex reason=\"database connection came back\"");
	queue_recover_files(q);
}

static void *queue_worker(void *arg)
{
	struct queue *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct queue_job *batch, *removals;
		bool retry = false;

		while (q->pending == NULL && !q->stopping && !retry) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += q->unrecorded ? QUEUE_RETRY_SECONDS : QUEUE_PROBE_SECONDS;
			retry = pthread_cond_timedwait(&q->cond, &q->lock, &until) == ETIMEDOUT;
		}
		if (q->pending == NULL && !retry)
			break;
		batch = q->pending;
		q->pending = NULL;
		q->pending_tail = &q->pending;
		removals = queue_take_removals(&batch);
		q->busy = true;
		pthread_mutex_unlock(&q->lock);

		if (batch)
			queue_commit_batch(q, batch);
		else if (q->unrecorded || removals)	/* kept rows: tried whenever it writes */
			queue_record_rows(q, NULL);
		else	/* idle: a statement finds out whether the connection was lost */
			queue_probe_db(q);
		queue_reindex_after_reconnect(q);

		pthread_mutex_lock(&q->lock);
		queue_hand_back(q, batch);
		if (removals) {
			pthread_mutex_unlock(&q->lock);
			queue_remove_batch(q, removals);
			pthread_mutex_lock(&q->lock);
		}
		q->busy = false;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* On the loop: run the callbacks of finished commits. */
static void queue_run_done(struct queue *q)
{
	struct queue_job *list;
	bool kick = false;
	char drain[64];

	while (read(q->notify_r, drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&q->lock);
	list = q->done;
	q->done = NULL;
	q->done_tail = &q->done;
	pthread_mutex_unlock(&q->lock);
	while (list) {
		struct queue_job *j = list;
		list = j->next;
		kick |= j->ok;
		if (j->cb)
			j->cb(j->se.id, j->ok, j->ok ? NULL : j->why, j->arg);
		queue_job_free(j);
	}
	if (kick && q->relay->sched)
		sched_kick(q->relay->sched);
}

static void queue_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	queue_run_done(arg);
}

void queue_drain(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	while (q->pending || q->busy)
		pthread_cond_wait(&q->cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
	queue_run_done(q);
}

/* ---- recovery ----------------------------------------------------------------------------- */

static void queue_clean_tmp(struct queue *q)
{
	DIR *d = opendir(q->tmp_dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			log_info("event=queue_tmp_removed file=%s/%s", q->tmp_dir, de->d_name);
	}
	closedir(d);
}

/*
 * The node holding message id by its row: false when there is no row. A row of node ''
 * (written before rows named their node) whose file is here is adopted by this node.
 */
static bool queue_row_node(struct queue *q, const char *id, char *node, size_t len)
{
	struct db *db = q->wdb;	/* the worker's: recovery runs at start and on the worker */
	struct db_stmt *st = db_prepare(db, "SELECT node FROM messages WHERE id = ?");
	bool found;

	db_bind_text(st, 1, id);
	found = db_step_row(db, st);
	snprintf(node, len, "%s", found ? db_col_text(st, 0) : "");
	db_finalize(st);
	if (found && *node == '\0') {
		st = db_prepare(db, "UPDATE messages SET node = ? WHERE id = ? AND node = ''");
		db_bind_text(st, 1, q->relay->cfg->server.node);
		db_bind_text(st, 2, id);
		if (db_step_done(db, st) == DB_DONE) {
			snprintf(node, len, "%s", q->relay->cfg->server.node);
			log_info("event=queue_adopted id=%s node=%s", id, node);
		}
		db_finalize(st);
	}
	return found;
}

/*
 * An SQLite database belongs to one machine: its rows are this node's whatever name they
 * carry (rows from before had none, and the default name is the host name, which may
 * change). On PostgreSQL a node adopts only the rows whose file it has (queue_row_node).
 */
static void queue_adopt_all(struct queue *q)
{
	struct db *db = q->relay->db;
	struct db_stmt *st;

	if (db_engine(db) != DB_SQLITE)
		return;
	st = db_prepare(db, "UPDATE messages SET node = ? WHERE node <> ?");
	db_bind_text(st, 1, q->relay->cfg->server.node);
	db_bind_text(st, 2, q->relay->cfg->server.node);
	if (db_step_done(db, st) == DB_DONE && db_changes(db) > 0)
		log_info("event=queue_adopted messages=%lld node=%s", (long long)db_changes(db),
			 q->relay->cfg->server.node);
	db_finalize(st);
}

/* Set a spool file aside that cannot be read back, so it is looked at by a person. */
static void queue_set_aside(struct queue *q, const char *name)
{
	char *dir = xasprintf("%s/corrupt", q->dir), *from = xasprintf("%s/%s", q->dir, name);
	char *to = xasprintf("%s/%s", dir, name);

	mkdir(dir, 0750);
	if (rename(from, to) == 0)
		log_error("event=queue_corrupt file=%s moved_to=%s", from, to);
	else
		log_error("event=queue_corrupt file=%s error=\"%s\"", from, strerror(errno));
	free(dir);
	free(from);
	free(to);
}

/* Give every spool file without a messages row its rows. */
static void queue_recover_files(struct queue *q)
{
	DIR *d = opendir(q->dir);
	char node[128];
	struct dirent *de;
	unsigned n = 0;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct spool_env se;
		size_t size;
		int fd;
		bool ok;

		if (!queue_id_valid(de->d_name))
			continue;
		if (queue_row_node(q, de->d_name, node, sizeof(node))) {
			if (strcmp(node, q->relay->cfg->server.node) != 0)
				log_error("event=queue_foreign_row id=%s node=%s action=none "
					  "error=\"the spool file is here, its row names another "
					  "node\"", de->d_name, node);
			continue;
		}
		fd = openat(q->dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&se, 0, sizeof(se));
		ok = spool_read_env(fd, &se, &size);
		close(fd);
		if (ok && strcmp(se.id, de->d_name) != 0) {
			queue_envelope_free(se.env);
			ok = false;
		}
		if (!ok) {
			queue_set_aside(q, de->d_name);
			continue;
		}
		queue_unrec_add(q, &se);
		log_info("event=queue_recovered id=%s sender=<%s> nrcpt=%zu size=%zu", se.id,
			 se.env->sender, se.env->nrcpt, size);
		queue_envelope_free(se.env);
		n++;
	}
	closedir(d);
	queue_record_rows(q, NULL);	/* what fails is retried by the worker */
	if (n)
		log_info("event=queue_recovery recovered=%u", n);
}

/*
 * Remove this node's messages rows whose spool file is gone: nothing could deliver them.
 * Other nodes' rows are theirs: their files are on their disks.
 */
static void queue_recover_rows(struct queue *q)
{
	struct db *db = q->relay->db;
	struct db_stmt *st = db_prepare(db, "SELECT id FROM messages WHERE node = ?");
	char **gone = NULL;
	size_t ngone = 0;

	db_bind_text(st, 1, q->relay->cfg->server.node);
	while (db_step_row(db, st)) {
		const char *id = db_col_text(st, 0);
		if (queue_id_valid(id) && faccessat(q->dir_fd, id, F_OK, 0) == 0)
			continue;
		gone = xreallocarray(gone, ngone + 1, sizeof(*gone));
		gone[ngone++] = xstrdup(id);
	}
	db_finalize(st);
	for (size_t i = 0; i < ngone; i++) {
		struct db_stmt *del = db_prepare(db, "DELETE FROM messages WHERE id = ?");
		db_bind_text(del, 1, gone[i]);
		if (db_step_done(db, del) == DB_DONE)
			log_warn("event=queue_missing_file id=%s action=removed", gone[i]);
		else	/* tried again at the next start */
			log_warn("event=queue_missing_file id=%s action=none error=\"%s\"", gone[i],
				 db_errmsg(db));
		db_finalize(del);
		free(gone[i]);
	}
	free(gone);
}

/* ---- open, close, inject, remove --------------------------------------------------------- */

struct queue *queue_open(struct relay *relay, char **err)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	int p[2];

	q->relay = relay;
	q->dir_fd = q->tmp_fd = q->notify_r = q->notify_w = -1;
	q->dir = config_state_path(relay->cfg, "queue");
	q->tmp_dir = xasprintf("%s/tmp", q->dir);
	q->storage = storage_new(relay->cfg->server.state_dir);
	q->pending_tail = &q->pending;
	q->done_tail = &q->done;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	if ((mkdir(q->dir, 0750) < 0 && errno != EEXIST) ||
	    (mkdir(q->tmp_dir, 0750) < 0 && errno != EEXIST) ||
	    (q->dir_fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (q->tmp_fd = open(q->tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		*err = xasprintf("cannot use queue directory %s: %s", q->dir, strerror(errno));
		goto fail;
	}
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
		*err = xasprintf("pipe: %s", strerror(errno));
		goto fail;
	}
	q->notify_r = p[0];
	q->notify_w = p[1];
	if ((q->wdb = schema_open(relay->cfg, schema_serve_mode(relay->cfg), err)) == NULL)
		goto fail;
	q->wdb_generation = db_connection_generation(q->wdb);
	queue_clean_tmp(q);
	queue_adopt_all(q);
	queue_recover_files(q);
	queue_recover_rows(q);
	q->notify_ev = event_new(relay->base, q->notify_r, EV_READ | EV_PERSIST, queue_notify_cb, q);
	event_priority_set(q->notify_ev, RELAY_PRI_FIRST);
	event_add(q->notify_ev, NULL);
	if (pthread_create(&q->thread, NULL, queue_worker, q) != 0) {
		*err = xstrdup("cannot start the queue thread");
		goto fail;
	}
	return q;
fail:
	if (q->notify_ev)
		event_free(q->notify_ev);
	db_close(q->wdb);
	if (q->dir_fd >= 0)
		close(q->dir_fd);
	if (q->tmp_fd >= 0)
		close(q->tmp_fd);
	if (q->notify_r >= 0) {
		close(q->notify_r);
		close(q->notify_w);
	}
	queue_unrec_free_all(q);
	storage_free(q->storage);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->dir);
	free(q->tmp_dir);
	free(q);
	return NULL;
}

/*
 * The database work of the queue, for benchmarks and capacity planning: the statements of
 * the worker's connection (guarantee look-ups and index rows of accepted messages, and
 * removals of delivered ones).
 */
static void queue_log_db_stats(const struct queue *q)
{
	struct db_stats st;

	db_get_stats(q->wdb, &st);
	log_info("event=db_stats connection=queue statements=%llu usec=%llu lookups=%llu "
		 "removal_statements=%llu", (unsigned long long)st.statements,
		 (unsigned long long)st.usec, (unsigned long long)q->lookups,
		 (unsigned long long)q->removal_statements);
}

void queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	queue_drain(q);
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	queue_run_done(q);
	if (q->unrecorded)	/* their files are durable: recovery writes them at the next start */
		log_warn("event=queue_rows_pending messages=%zu action=\"recovered from the spool at "
			 "the next start\"", q->nunrecorded);
	queue_unrec_free_all(q);
	storage_free(q->storage);
	event_free(q->notify_ev);
	queue_log_db_stats(q);
	db_close(q->wdb);
	close(q->dir_fd);
	close(q->tmp_fd);
	close(q->notify_r);
	close(q->notify_w);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->dir);
	free(q->tmp_dir);
	free(q);
}

/* A notification's group commit finished (on the loop). */
static void queue_inject_done(const char *id, bool ok, const char *why, void *arg)
{
	if (ok)
		log_info("event=queued id=%s notification=yes", id);
	else
		log_error("event=queue_inject_error id=%s error=\"the notification could not be "
			  "written to the spool\"", id);
	/* queue_run_done kicks the scheduler for every message that was kept */
}

/*
 * Notifications take the same path as incoming mail: the worker thread fsyncs them in its
 * next group commit, so the loop never waits for the disk. The ID is known at once.
 */
char *queue_inject(struct queue *q, const struct queue_envelope *env, const char *data, size_t len)
{
	struct queue_writer *w = queue_writer_new(q);
	char *id;

	if (env->nrcpt == 0 || w->failed || queue_writer_add(w, data, len) < 0) {
		log_error("event=queue_inject_error id=%s error=\"cannot write the spool file\"",
			  w->id);
		queue_writer_abort(w);
		return NULL;
	}
	id = xstrdup(w->id);
	log_debug("event=queue_inject id=%s sender=<%s> nrcpt=%zu size=%zu", id,
		  env->sender ? env->sender : "", env->nrcpt, len);
	queue_writer_commit(w, env, queue_inject_done, NULL);
	return id;
}

char *queue_data_path(struct queue *q, const char *id)
{
	return xasprintf("%s/%s", q->dir, id);
}

int queue_open_data(struct queue *q, const char *id, size_t *size)
{
	struct spool_env se;
	int fd;

	if (!queue_id_valid(id) || (fd = openat(q->dir_fd, id, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (!spool_read_env(fd, &se, size)) {
		log_error("event=queue_corrupt id=%s", id);
		close(fd);
		return -1;
	}
	queue_envelope_free(se.env);
	return fd;
}

/* Is a removal of id already waiting for the worker? (lock held) */
static bool queue_removal_pending(const struct queue *q, const char *id)
{
	for (const struct queue_job *j = q->pending; j; j = j->next)
		if (j->remove && strcmp(j->path, id) == 0)
			return true;
	return false;
}

/* Hand a message whose recipients are all final to the worker (queue_remove_batch). */
void queue_remove(struct queue *q, const char *id)
{
	struct queue_job *job = xcalloc(1, sizeof(*job));

	job->fd = -1;
	job->remove = true;
	job->path = xstrdup(id);
	pthread_mutex_lock(&q->lock);
	if (queue_removal_pending(q, id)) {
		queue_job_free(job);
	} else {
		*q->pending_tail = job;
		q->pending_tail = &job->next;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
}

struct storage *queue_storage(struct queue *q)
{
	return q->storage;
}

char *queue_inject_to(struct queue *q, const char *to, const char *data, size_t len)
{
	struct queue_envelope env = { .sender = "", .notification = true, .body = "8BITMIME" };
	struct queue_rcpt rcpts[16];
	char *copy = xstrdup(to), *save = NULL, *id = NULL;

	for (char *t = strtok_r(copy, ",", &save); t && env.nrcpt < 16;
	     t = strtok_r(NULL, ",", &save)) {
		char *addr = str_trim(t);

		if (*addr)
			rcpts[env.nrcpt++] = (struct queue_rcpt){ .addr = addr };
	}
	env.rcpts = rcpts;
	if (env.nrcpt > 0)
		id = queue_inject(q, &env, data, len);
	free(copy);
	return id;
}
