/*
 * relay_sched.c - finds due recipients, starts deliveries, records results, retries.
 *
 * The recipients table is the only source of truth: the scheduler polls it every second
 * (command-line tools change it while serve runs) and at once after sched_kick. Due
 * recipients are grouped into jobs: one per message, destination domain and guarantee
 * setting, so one SMTP transaction carries every recipient of a message at that domain
 * (a recipient released from the guarantee travels in its own transaction, because its
 * TLS rules differ). At most [relay] max_deliveries jobs run at once.
 *
 * Jobs for one destination domain are limited to SCHED_DEST_MAX at a time: the rest wait
 * a moment and then mostly find an idle connection to reuse (relay_mta's cache), which is
 * far cheaper than a new TCP connection and TLS handshake each.
 *
 * Recipients in flight are only known in memory: after a crash they are simply due again.
 * A job whose results cannot be written (a full disk, a locked database) stays in the list
 * of jobs, marked unrecorded, with its results in memory: its recipients still count as in
 * flight, so they are not delivered again, and each round tries to write the results until
 * it succeeds. Only a stop or crash before that loses them (the recipients are then due
 * again: a second delivery, never a lost one).
 * Each node delivers only the messages in its own spool (messages.node). The command line
 * may run on any node, or any machine that reaches the database: a release changes rows,
 * which the holding node's poll finds; a delete cannot remove another machine's spool file,
 * so on another node it marks the message's recipients 'deleted' and the holding node's
 * poll removes file and rows (sched_delete_requested), after any delivery of it in flight.
 * Notifications are collected per message and sent when none of its recipients is in
 * flight or due any more: then every attempt of that event has finished, whatever round its
 * job started in, so the sender gets one notification per message and event.
 */
#include "relay.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "relay_delivery.h"
#include "relay_dsn.h"
#include "relay_storage.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

#define SCHED_POLL_SECONDS	1
#define SCHED_MAX_HEADERS	(64 * 1024)
#define SCHED_DEST_MAX		20	/* jobs in flight per destination (Postfix's default) */
#define SCHED_KICK_MS		10	/* kicks closer to the last run than this wait for one */

/* A recipient whose failure goes into a notification. */
struct sched_note {
	char *addr, *orcpt, *mx, *status, *diagnostic;
	enum policy_reason reason;
};

/* A message with jobs in flight, collecting what its notifications will say. */
struct sched_msg {
	struct sched_msg *next;
	char *id;
	char *sender;
	char *envid;
	int64_t received;
	bool notification;
	bool all_final;		/* a written result found every recipient delivered or bounced */
	int jobs;
	struct sched_note *held, *failed;
	size_t nheld, nfailed;
};

/* What a recipient's row becomes, decided once when its attempt ends. */
struct sched_result {
	const char *state;
	int64_t next, held_until;
	bool tls_failure;		/* a security reason: first_tls_failure is set if unset */
};

struct sched_job {
	struct sched_job *next;
	struct sched *s;
	struct sched_msg *msg;
	struct mta_job *job;
	struct mta *mta;		/* NULL once the attempt ended */
	struct sched_result *res;	/* per job->rcpts[i], once the attempt ended */
	int64_t ended;			/* when the attempt ended */
	bool unrecorded;		/* ended, but its results are not written yet */
};

struct sched {
	struct relay *relay;
	struct event *poll_ev;
	struct event *kick_ev;
	struct sched_job *jobs;
	size_t njobs;
	struct sched_msg *msgs;
	int64_t last_run_ms;		/* monotonic: when sched_run last read the due rows */
};

static void sched_run(struct sched *s, bool housekeeping);

/* ---- notifications --------------------------------------------------------------------- */

static void sched_note_add(struct sched_note **v, size_t *n, const char *addr, const char *orcpt,
			   const char *mx, const char *status, const char *diag, enum policy_reason r)
{
	struct sched_note *x;

	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	x = &(*v)[(*n)++];
	x->addr = xstrdup(addr);
	x->orcpt = orcpt && *orcpt ? xstrdup(orcpt) : NULL;
	x->mx = mx && *mx ? xstrdup(mx) : NULL;
	x->status = xstrdup(status);
	x->diagnostic = xstrdup(diag ? diag : "");
	x->reason = r;
}

static void sched_notes_free(struct sched_note *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].addr);
		free(v[i].orcpt);
		free(v[i].mx);
		free(v[i].status);
		free(v[i].diagnostic);
	}
	free(v);
}

/* The header block of a queued message (up to the first empty line), bounded. */
static char *sched_read_headers(struct sched *s, const char *id, size_t *len)
{
	size_t size = 0, have = 0;
	int fd = queue_open_data(s->relay->queue, id, &size);
	char *h;

	*len = 0;
	if (fd < 0)
		return NULL;
	if (size > SCHED_MAX_HEADERS)
		size = SCHED_MAX_HEADERS;
	h = xmalloc(size + 1);
	while (have < size) {
		ssize_t n = read(fd, h + have, size - have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	h[have] = '\0';
	for (size_t i = 0; i + 1 < have; i++) {
		if (h[i] == '\n' && (h[i + 1] == '\n' || (h[i + 1] == '\r' && i + 2 < have &&
							  h[i + 2] == '\n'))) {
			have = i + 1;
			break;
		}
	}
	h[have] = '\0';
	*len = have;
	return h;
}

static bool sched_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* Build and queue one notification about msg for the recipients in notes. */
static void sched_notify(struct sched *s, struct sched_msg *msg, enum dsn_kind kind,
			 const struct sched_note *notes, size_t n)
{
	const struct pw_config *cfg = s->relay->cfg;
	struct dsn_rcpt *dr;
	struct dsn_input in = { 0 };
	struct queue_rcpt qr = { 0 };
	struct queue_envelope env = { 0 };
	char *data, *id, *headers;
	size_t len, hlen;

	if (n == 0 || !dsn_allowed(msg->sender, msg->notification))
		return;
	dr = xcalloc(n, sizeof(*dr));
	for (size_t i = 0; i < n; i++)
		dr[i] = (struct dsn_rcpt){ notes[i].addr, notes[i].orcpt, notes[i].mx,
					   notes[i].status, notes[i].diagnostic, notes[i].reason };
	headers = sched_read_headers(s, msg->id, &hlen);
	in.kind = kind;
	in.language = cfg->guarantee.language;
	in.hostname = cfg->server.hostname;
	in.msg_id = msg->id;
	in.envid = msg->envid;
	in.sender = msg->sender;
	in.arrival = msg->received;
	in.now = time(NULL);
	in.hold_days = (int)cfg->guarantee.hold_days;
	in.rcpts = dr;
	in.nrcpt = n;
	in.headers = headers;
	in.headers_len = hlen;
	data = dsn_build(&in, &len);
	qr.addr = msg->sender;
	env.sender = "";
	env.notification = true;
	env.smtputf8 = !sched_is_ascii(msg->sender);
	env.body = headers && !sched_is_ascii(headers) ? "8BITMIME" : NULL;
	env.rcpts = &qr;
	env.nrcpt = 1;
	id = queue_inject(s->relay->queue, &env, data, len);
	log_info("event=notification id=%s about=%s kind=%s rcpts=%zu to=<%s> queued=%s",
		 id ? id : "none", msg->id, kind == DSN_HELD ? "held" : "failed", n, msg->sender,
		 id ? "yes" : "no");
	free(id);
	free(data);
	free(headers);
	free(dr);
}

/*
 * Remove the message when none of its recipients is waiting for anything. all_final: the
 * last result written said so already (a recipient never leaves a final state), which
 * saves asking the database again.
 */
static void sched_maybe_remove(struct sched *s, const char *id, bool all_final)
{
	bool done = all_final;

	if (!done) {
		struct db_stmt *st = db_prepare_cached(s->relay->db,
			"SELECT count(*) FROM recipients WHERE msg_id = ? "
			"AND state NOT IN ('delivered', 'bounced')");

		db_bind_text(st, 1, id);
		if (db_step_row(s->relay->db, st))
			done = db_col_int(st, 0) == 0;
		db_release(s->relay->db, st);
	}
	for (struct sched_job *j = s->jobs; j != NULL; j = j->next)
		if (strcmp(j->job->msg_id, id) == 0)
			done = false;
	if (done) {
		log_info("event=message_done id=%s", id);
		queue_remove(s->relay->queue, id);
	}
}

static struct sched_msg *sched_msg_get(struct sched *s, const char *id, const char *sender,
				       const char *envid, int64_t received, bool notification)
{
	struct sched_msg *m;

	for (m = s->msgs; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	m = xcalloc(1, sizeof(*m));
	m->id = xstrdup(id);
	m->sender = xstrdup(sender);
	m->envid = envid && *envid ? xstrdup(envid) : NULL;
	m->received = received;
	m->notification = notification;
	m->next = s->msgs;
	s->msgs = m;
	return m;
}

static void sched_msg_free(struct sched_msg *m)
{
	sched_notes_free(m->held, m->nheld);
	sched_notes_free(m->failed, m->nfailed);
	free(m->id);
	free(m->sender);
	free(m->envid);
	free(m);
}

/* Does the message have recipients that are due now (and so will be tried this event)? */
static bool sched_msg_due(struct sched *s, const char *id, int64_t now)
{
	struct db_stmt *st = db_prepare_cached(s->relay->db,
		"SELECT 1 FROM recipients WHERE msg_id = ? AND state IN ('queued', 'deferred') "
		"AND next_attempt <= ? LIMIT 1");
	bool due;

	db_bind_text(st, 1, id);
	db_bind_int(st, 2, now);
	due = db_step_row(s->relay->db, st);
	db_release(s->relay->db, st);
	return due;
}

/* msg has no job left: send what it collected, remove it when done, forget it. */
static void sched_msg_finish(struct sched *s, struct sched_msg *msg)
{
	for (struct sched_msg **p = &s->msgs; *p != NULL; p = &(*p)->next) {
		if (*p == msg) {
			*p = msg->next;
			break;
		}
	}
	sched_notify(s, msg, DSN_HELD, msg->held, msg->nheld);
	sched_notify(s, msg, DSN_FAILED, msg->failed, msg->nfailed);
	sched_maybe_remove(s, msg->id, msg->all_final);
	sched_msg_free(msg);
}

/*
 * msg has no job left: finish it unless some of its recipients are due now (a job of a later
 * round, e.g. when max_deliveries or SCHED_DEST_MAX held it back). Those belong to the same
 * event; the notification waits for them so that it names every recipient at once.
 */
static void sched_msg_settle(struct sched *s, struct sched_msg *msg, int64_t now)
{
	if (msg->jobs > 0)
		return;
	/* a notification written now would fail: it waits for storage, like new mail */
	if ((msg->nheld > 0 || msg->nfailed > 0) && storage_short(queue_storage(s->relay->queue)))
		return;
	if ((msg->nheld > 0 || msg->nfailed > 0) && sched_msg_due(s, msg->id, now)) {
		log_debug("event=notification_wait id=%s reason=\"recipients still due\"", msg->id);
		return;
	}
	sched_msg_finish(s, msg);
}

/* ---- results ----------------------------------------------------------------------------- */

/*
 * Decide what one recipient's row becomes (res) and collect its notification. Runs once per
 * attempt, however often writing the row has to be tried.
 */
static void sched_decide(struct sched *s, struct sched_job *sj, struct mta_rcpt *r, int64_t now,
			 struct sched_result *res)
{
	const struct pw_config *cfg = s->relay->cfg;
	struct mta_job *job = sj->job;
	bool security = policy_reason_is_security(r->reason_code);
	const char *state = mta_outcome_name(r->outcome);
	int64_t next = 0, held_until = 0;

	if (r->outcome == MTA_DEFERRED) {
		if (policy_expired(job->received, cfg->relay.queue_lifetime, now)) {
			char *t = xasprintf("queue lifetime expired; last problem: %s", r->reason);

			/* the receiver's MTA-STS policy kept it: 5.7.10 and that reason */
			bool sts = policy_reason_is_sts(r->reason_code);
			const char *st = sts ? policy_status(r->reason_code, true) : "4.4.7";

			log_info("event=delivery id=%s rcpt=%s mx=%s addr=none tls=none cipher=none "
				 "dane=none outcome=bounced status=%s reason=\"%s\"", job->msg_id,
				 r->addr, r->mx ? r->mx : "none", st, t);
			stats_delivery("bounced", policy_reason_name(sts ? r->reason_code :
								      REASON_EXPIRED), "", "none");
			r->outcome = MTA_BOUNCED;
			if (!sts)
				r->reason_code = REASON_EXPIRED;
			snprintf(r->status, sizeof(r->status), "%s", st);
			free(r->reason);
			r->reason = t;
			state = "bounced";
		} else {
			next = now + policy_retry_delay(r->attempts + 1, cfg->relay.retry_min,
							cfg->relay.retry_max);
		}
	}
	if (r->outcome == MTA_HELD)
		held_until = now + (int64_t)cfg->guarantee.hold_days * 86400;
	res->state = state;
	res->next = next;
	res->held_until = held_until;
	res->tls_failure = security && (r->outcome == MTA_DEFERRED || r->outcome == MTA_HELD);
	if (r->outcome == MTA_HELD && dsn_rcpt_wants(r->notify))
		sched_note_add(&sj->msg->held, &sj->msg->nheld, r->addr, r->orcpt, r->mx, r->status,
			       r->reason, r->reason_code);
	if (r->outcome == MTA_BOUNCED && dsn_rcpt_wants(r->notify))
		sched_note_add(&sj->msg->failed, &sj->msg->nfailed, r->addr, r->orcpt, r->mx,
			       r->status, r->reason, r->reason_code);
}

static bool sched_state_final(const char *state)
{
	return strcmp(state, "delivered") == 0 || strcmp(state, "bounced") == 0;
}

/*
 * Write one recipient's decided result to its row (a failure is kept in db_error). Returns
 * how many other recipients of the message are not final yet, as the same statement saw
 * them, or -1 when the row was not changed (or not written).
 */
static int64_t sched_write(struct sched *s, struct sched_job *sj, const struct mta_rcpt *r,
			   const struct sched_result *res)
{
	/* CAST: PostgreSQL would type ?3 by the 0 it is compared with (integer, 32 bits) */
	struct db_stmt *st = db_prepare_cached(s->relay->db,
		"UPDATE recipients SET state = ?1, attempts = attempts + 1, next_attempt = ?2, "
		"held_until = CASE WHEN CAST(?3 AS BIGINT) > 0 THEN ?3 ELSE held_until END, "
		"first_tls_failure = CASE WHEN ?4 AND first_tls_failure IS NULL THEN ?5 "
		"  ELSE first_tls_failure END, "
		"mx = ?6, status = ?7, reason = ?8 WHERE msg_id = ?9 AND idx = ?10 "
		"AND state IN ('queued', 'deferred') "
		"RETURNING (SELECT count(*) FROM recipients o WHERE o.msg_id = ?9 "
		"  AND o.idx <> ?10 AND o.state NOT IN ('delivered', 'bounced'))");
	int64_t others = -1;
	db_bind_text(st, 1, res->state);
	db_bind_int(st, 2, res->next);
	db_bind_int(st, 3, res->held_until);
	db_bind_int(st, 4, res->tls_failure);
	db_bind_int(st, 5, sj->ended);
	db_bind_text(st, 6, r->mx);
	db_bind_text(st, 7, r->status);
	db_bind_text(st, 8, r->reason);
	db_bind_text(st, 9, sj->job->msg_id);
	db_bind_int(st, 10, r->idx);
	if (db_step_row(s->relay->db, st)) {
		others = db_col_int(st, 0);
		if (db_step_finish(s->relay->db, st) != DB_DONE)
			others = -1;
	}
	db_release(s->relay->db, st);
	return others;
}

/*
 * Write every result of an ended job in one transaction; false when that failed. The last
 * statement sees the others of the transaction: when it and every other recipient of the
 * message are final, the message is done without another question to the database.
 */
static bool sched_job_write(struct sched *s, struct sched_job *sj)
{
	struct db *db = s->relay->db;
	size_t n = sj->job->nrcpt;	/* at least 1: a job is made for a recipient */
	int64_t others = -1;
	int rc;

	if (sj->job->nrcpt == 1) {
		/* one statement is atomic by itself: two round trips fewer to a database server */
		db_clear_error(db);
		others = sched_write(s, sj, &sj->job->rcpts[0], &sj->res[0]);
		rc = db_error(db);
	} else if ((rc = db_begin(db)) == DB_OK) {
		for (size_t i = 0; i < n; i++)
			others = sched_write(s, sj, &sj->job->rcpts[i], &sj->res[i]);
		rc = db_commit(db);
	} else {
		db_rollback(db);
	}
	if (rc == DB_OK) {
		if (others == 0 && sched_state_final(sj->res[n - 1].state))
			sj->msg->all_final = true;
		return true;
	}
	if (!sj->unrecorded)
		log_debug("event=results_pending id=%s domain=%s error=\"%s\"", sj->job->msg_id,
			  sj->job->domain, db_errmsg(db));
	storage_db_failed(queue_storage(s->relay->queue), db_error(db), db_errmsg(db));
	return false;
}

/* The job's results are written: forget it, and settle its message. */
static void sched_job_finish(struct sched *s, struct sched_job *sj)
{
	struct sched_msg *msg = sj->msg;
	int64_t now = time(NULL);

	if (sj->unrecorded)
		log_info("event=results_written id=%s domain=%s rcpts=%zu", sj->job->msg_id,
			 sj->job->domain, sj->job->nrcpt);
	for (struct sched_job **p = &s->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == sj) {
			*p = sj->next;
			break;
		}
	}
	s->njobs--;
	mta_job_free(sj->job);
	free(sj->res);
	free(sj);
	msg->jobs--;
	sched_msg_settle(s, msg, now);
}

static void sched_job_done(struct mta_job *job, void *arg)
{
	struct sched_job *sj = arg;
	struct sched *s = sj->s;

	sj->mta = NULL;		/* it has freed itself */
	sj->ended = time(NULL);
	sj->res = xcalloc(job->nrcpt ? job->nrcpt : 1, sizeof(*sj->res));
	for (size_t i = 0; i < job->nrcpt; i++)
		sched_decide(s, sj, &job->rcpts[i], sj->ended, &sj->res[i]);
	if (sched_job_write(s, sj))
		sched_job_finish(s, sj);
	else
		sj->unrecorded = true;	/* kept, in flight, until its results are written */
	sched_kick(s);
}

/* Try again to write the results of ended jobs that could not be written. */
static void sched_write_unrecorded(struct sched *s)
{
	struct sched_job **pending = NULL;
	size_t n = 0;

	for (struct sched_job *j = s->jobs; j != NULL; j = j->next) {
		if (!j->unrecorded)
			continue;
		pending = xreallocarray(pending, n + 1, sizeof(*pending));
		pending[n++] = j;
	}
	for (size_t i = 0; i < n; i++) {
		if (!sched_job_write(s, pending[i]))
			break;	/* still failing: try again next round */
		sched_job_finish(s, pending[i]);
	}
	free(pending);
}

/* ---- finding work ----------------------------------------------------------------------- */

static bool sched_in_flight(struct sched *s, const char *id, int idx)
{
	for (struct sched_job *j = s->jobs; j != NULL; j = j->next) {
		if (strcmp(j->job->msg_id, id) != 0)
			continue;
		for (size_t i = 0; i < j->job->nrcpt; i++)
			if (j->job->rcpts[i].idx == idx)
				return true;
	}
	return false;
}

/* Held recipients nobody released in hold_days: give up on them. */
static void sched_expire_held(struct sched *s, int64_t now)
{
	struct db_stmt *st = db_prepare(s->relay->db,
		"UPDATE recipients SET state = 'bounced', "
		"reason = 'held by the TLS-sending guarantee and not released in time: ' || "
		"COALESCE(reason, '') WHERE state = 'held' AND held_until IS NOT NULL "
		"AND held_until <= ? AND msg_id IN (SELECT id FROM messages WHERE node = ?)");

	db_bind_int(st, 1, now);
	db_bind_text(st, 2, s->relay->cfg->server.node);
	if (db_step_done(s->relay->db, st) != DB_DONE)	/* tried again next round */
		storage_db_failed(queue_storage(s->relay->queue), db_error(s->relay->db),
				  db_errmsg(s->relay->db));
	else if (db_changes(s->relay->db) > 0)
		log_info("event=held_expired recipients=%lld", (long long)db_changes(s->relay->db));
	db_finalize(st);
}

/* The message ids sql selects for this node (its one parameter), at most 1000 a round. */
static char **sched_node_ids(struct sched *s, const char *sql, size_t *n)
{
	struct db_stmt *st = db_prepare(s->relay->db, sql);
	char **ids = NULL;

	*n = 0;
	db_bind_text(st, 1, s->relay->cfg->server.node);
	while (*n < 1000 && db_step_row(s->relay->db, st)) {
		ids = xreallocarray(ids, *n + 1, sizeof(*ids));
		ids[(*n)++] = xstrdup(db_col_text(st, 0));
	}
	db_finalize(st);
	return ids;
}

/* Messages left with only final recipients (expired holds, CLI changes). */
static void sched_remove_finished(struct sched *s)
{
	size_t n;
	char **ids = sched_node_ids(s,
		"SELECT id FROM messages m WHERE node = ? AND NOT EXISTS (SELECT 1 FROM "
		"recipients r WHERE r.msg_id = m.id AND r.state NOT IN ('delivered', 'bounced'))",
		&n);

	for (size_t i = 0; i < n; i++) {
		bool busy = false;

		for (struct sched_msg *m = s->msgs; m != NULL; m = m->next)
			if (strcmp(m->id, ids[i]) == 0)
				busy = true;
		if (!busy)
			sched_maybe_remove(s, ids[i], false);
		free(ids[i]);
	}
	free(ids);
}

/* Is a job of message id in flight? */
static bool sched_msg_busy(struct sched *s, const char *id)
{
	for (struct sched_job *j = s->jobs; j != NULL; j = j->next)
		if (strcmp(j->job->msg_id, id) == 0)
			return true;
	return false;
}

/*
 * Carry out `queue delete` typed for this node's messages elsewhere (cli_queue.c marks
 * every recipient 'deleted'): remove file and rows. A message with a delivery in flight
 * waits for it (its results do not overwrite 'deleted': sched_write only changes
 * recipients that were due).
 */
static void sched_delete_requested(struct sched *s)
{
	size_t n;
	char **ids = sched_node_ids(s,
		"SELECT DISTINCT m.id FROM messages m JOIN recipients r ON r.msg_id = m.id "
		"WHERE m.node = ? AND r.state = 'deleted'", &n);

	for (size_t i = 0; i < n; i++) {
		if (!sched_msg_busy(s, ids[i])) {
			log_info("event=queue_delete id=%s node=%s requested=elsewhere", ids[i],
				 s->relay->cfg->server.node);
			queue_remove(s->relay->queue, ids[i]);	/* what fails: next poll */
		}
		free(ids[i]);
	}
	free(ids);
}

/* One due row, as read from the database. */
struct sched_row {
	const char *msg_id, *addr, *orcpt, *notify, *reason, *sender, *envid, *ret, *body;
	int idx, attempts;
	int64_t first_tls_failure, received;
	uint64_t size;
	bool release, smtputf8, guarantee, notification, requiretls;
};

static void sched_row_read(struct db_stmt *st, struct sched_row *r)
{
	r->msg_id = db_col_text(st, 0);
	r->idx = (int)db_col_int(st, 1);
	r->addr = db_col_text(st, 2);
	r->orcpt = db_col_null(st, 3) ? NULL : db_col_text(st, 3);
	r->notify = db_col_null(st, 4) ? NULL : db_col_text(st, 4);
	r->attempts = (int)db_col_int(st, 5);
	r->first_tls_failure = db_col_int(st, 6);
	r->release = (int)db_col_int(st, 7) != 0;
	r->reason = db_col_text(st, 8);
	r->sender = db_col_text(st, 9);
	r->received = db_col_int(st, 10);
	r->envid = db_col_null(st, 11) ? NULL : db_col_text(st, 11);
	r->ret = db_col_null(st, 12) ? NULL : db_col_text(st, 12);
	r->body = db_col_null(st, 13) ? NULL : db_col_text(st, 13);
	r->smtputf8 = (int)db_col_int(st, 14) != 0;
	r->guarantee = (int)db_col_int(st, 15) != 0;
	r->notification = (int)db_col_int(st, 16) != 0;
	r->size = (uint64_t)db_col_int(st, 17);
	r->requiretls = (int)db_col_int(st, 18) != 0;
}

static char *sched_strdup0(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* The new job of this round for the row's message, domain and guarantee, or a fresh one. */
static struct mta_job *sched_job_for(struct mta_job ***jobs, size_t *n, const struct sched_row *r,
				     const char *domain, bool guarantee)
{
	struct mta_job *j;

	for (size_t i = 0; i < *n; i++) {
		j = (*jobs)[i];
		if (strcmp(j->msg_id, r->msg_id) == 0 && strcasecmp(j->domain, domain) == 0 &&
		    j->guarantee == guarantee)
			return j;
	}
	j = xcalloc(1, sizeof(*j));
	j->msg_id = xstrdup(r->msg_id);
	j->sender = xstrdup(r->sender);
	j->domain = str_lower(xstrdup(domain));
	j->envid = sched_strdup0(r->envid);
	j->ret = sched_strdup0(r->ret);
	j->body = sched_strdup0(r->body);
	j->smtputf8 = r->smtputf8;
	j->notification = r->notification;
	j->requiretls = r->requiretls;
	j->guarantee = guarantee;
	j->received = r->received;
	j->size = r->size;
	*jobs = xreallocarray(*jobs, *n + 1, sizeof(**jobs));
	(*jobs)[(*n)++] = j;
	return j;
}

static void sched_job_add_rcpt(struct mta_job *j, const struct sched_row *r)
{
	struct mta_rcpt *x;

	j->rcpts = xreallocarray(j->rcpts, j->nrcpt + 1, sizeof(*j->rcpts));
	x = &j->rcpts[j->nrcpt++];
	memset(x, 0, sizeof(*x));
	x->idx = r->idx;
	x->addr = xstrdup(r->addr);
	x->orcpt = sched_strdup0(r->orcpt);
	x->notify = sched_strdup0(r->notify);
	x->attempts = r->attempts;
	x->first_tls_failure = r->first_tls_failure;
	x->release = r->release;
}

/* A due recipient of a message past its queue lifetime: bounce without an attempt. */
static void sched_expire_row(struct sched *s, const struct sched_row *r, int64_t now)
{
	struct sched_msg *msg = sched_msg_get(s, r->msg_id, r->sender, r->envid, r->received,
					      r->notification);
	char *t = xasprintf("queue lifetime expired; last problem: %s",
			    r->reason[0] ? r->reason : "none recorded");
	/* kept back by the receiver's MTA-STS policy: a security bounce (5.7.10) */
	const char *status = sts_reason_text(r->reason) ? "5.7.10" : "4.4.7";
	struct db_stmt *st = db_prepare_cached(s->relay->db,
		"UPDATE recipients SET state = 'bounced', status = ?, reason = ? "
		"WHERE msg_id = ? AND idx = ?");

	int rc;

	db_bind_text(st, 1, status);
	db_bind_text(st, 2, t);
	db_bind_text(st, 3, r->msg_id);
	db_bind_int(st, 4, r->idx);
	rc = db_step_done(s->relay->db, st);
	db_release(s->relay->db, st);
	if (rc != DB_DONE) {
		/* the row stays due and is expired again next round; no notification yet */
		storage_db_failed(queue_storage(s->relay->queue), db_error(s->relay->db),
				  db_errmsg(s->relay->db));
		free(t);
		return;
	}
	log_info("event=delivery id=%s rcpt=%s mx=none addr=none tls=none cipher=none dane=none "
		 "outcome=bounced status=%s reason=\"%s\"", r->msg_id, r->addr, status, t);
	stats_delivery("bounced", policy_reason_name(REASON_EXPIRED), "", "none");
	if (dsn_rcpt_wants(r->notify))
		sched_note_add(&msg->failed, &msg->nfailed, r->addr, r->orcpt, NULL, status, t,
			       REASON_EXPIRED);
	free(t);
}

static void sched_start_job(struct sched *s, struct mta_job *j)
{
	struct sched_job *sj = xcalloc(1, sizeof(*sj));

	sj->s = s;
	sj->job = j;
	sj->msg = sched_msg_get(s, j->msg_id, j->sender, j->envid, j->received, j->notification);
	sj->msg->jobs++;
	sj->next = s->jobs;
	s->jobs = sj;
	s->njobs++;
	log_debug("event=delivery_start id=%s domain=%s rcpts=%zu guarantee=%s", j->msg_id,
		  j->domain, j->nrcpt, j->guarantee ? "on" : "off");
	sj->mta = mta_start(s->relay, j, sched_job_done, sj);
}

/* Jobs for domain in flight plus those of this round (the last one, new, not counted). */
static size_t sched_dest_jobs(struct sched *s, struct mta_job **jobs, size_t njobs,
			      const char *domain)
{
	size_t n = 0;

	for (struct sched_job *j = s->jobs; j != NULL; j = j->next)
		if (strcasecmp(j->job->domain, domain) == 0)
			n++;
	for (size_t i = 0; i + 1 < njobs; i++)
		if (strcasecmp(jobs[i]->domain, domain) == 0)
			n++;
	return n;
}

/*
 * Read due recipients and start jobs up to the limit. Housekeeping (expiring holds, removing
 * messages that the command-line tools finished) only runs on the periodic poll: a kick
 * comes after every group commit and every finished job, and an UPDATE per kick would take
 * the database's write lock hundreds of times a second, each time in the way of the queue
 * worker's group commit and of the next delivery result.
 */
static void sched_run(struct sched *s, bool housekeeping)
{
	const struct pw_config *cfg = s->relay->cfg;
	int64_t now = time(NULL);
	size_t room = cfg->relay.max_deliveries > s->njobs ? cfg->relay.max_deliveries - s->njobs : 0;
	struct mta_job **jobs = NULL;
	size_t njobs = 0;
	struct db_stmt *st;

	s->last_run_ms = monotonic_ms();
	/* also ends a storage condition when space is back, without waiting for new mail */
	storage_accepts(queue_storage(s->relay->queue), 0);
	sched_write_unrecorded(s);
	if (housekeeping)
		sched_expire_held(s, now);
	st = db_prepare_cached(s->relay->db,
		"SELECT r.msg_id, r.idx, r.addr, r.orcpt, r.notify, r.attempts, "
		"COALESCE(r.first_tls_failure, 0), r.release, r.reason, m.sender, m.received, "
		"m.envid, m.ret, m.body, m.smtputf8, m.guarantee, m.notification, m.size, "
		"m.requiretls "
		"FROM recipients r JOIN messages m ON m.id = r.msg_id "
		"WHERE r.state IN ('queued', 'deferred') AND r.next_attempt <= ? AND m.node = ? "
		"ORDER BY r.msg_id, r.idx");
	db_bind_int(st, 1, now);
	db_bind_text(st, 2, cfg->server.node);
	while (db_step_row(s->relay->db, st)) {
		struct sched_row r;
		const char *domain;
		size_t before = njobs;

		sched_row_read(st, &r);
		if (sched_in_flight(s, r.msg_id, r.idx))
			continue;
		if (policy_expired(r.received, cfg->relay.queue_lifetime, now)) {
			sched_expire_row(s, &r, now);
			continue;
		}
		domain = addr_domain(r.addr);
		if (domain == NULL || *domain == '\0')
			continue;	/* cannot happen: addresses were checked at acceptance */
		{
			struct mta_job *j = sched_job_for(&jobs, &njobs, &r, domain,
							  r.guarantee && !r.release);

			if (njobs > before && (njobs > room ||
			    sched_dest_jobs(s, jobs, njobs, j->domain) >= SCHED_DEST_MAX)) {
				/* no room for another job (to this domain) this round */
				njobs--;
				mta_job_free(j);
				continue;
			}
			sched_job_add_rcpt(j, &r);
		}
	}
	db_release(s->relay->db, st);
	for (size_t i = 0; i < njobs; i++)
		sched_start_job(s, jobs[i]);
	free(jobs);
	/* messages whose rows expired above and that have no job: notify now */
	for (struct sched_msg *m = s->msgs, *next; m != NULL; m = next) {
		next = m->next;
		sched_msg_settle(s, m, now);
	}
	if (housekeeping) {
		sched_remove_finished(s);
		sched_delete_requested(s);
	}
}

static void sched_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	sched_run(arg, true);
}

static void sched_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	sched_run(arg, false);
}

struct sched *sched_start(struct relay *relay)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	struct timeval tv = { SCHED_POLL_SECONDS, 0 };

	s->relay = relay;
	s->poll_ev = event_new(relay->base, -1, EV_PERSIST, sched_poll_cb, s);
	s->kick_ev = evtimer_new(relay->base, sched_kick_cb, s);
	if (s->poll_ev == NULL || s->kick_ev == NULL)
		fatalx("cannot create the scheduler's events");
	event_add(s->poll_ev, &tv);
	sched_kick(s);
	log_info("event=sched_start max_deliveries=%llu",
		 (unsigned long long)relay->cfg->relay.max_deliveries);
	return s;
}

void sched_stop(struct sched *s)
{
	if (s == NULL)
		return;
	sched_write_unrecorded(s);
	while (s->jobs != NULL) {
		struct sched_job *sj = s->jobs;

		s->jobs = sj->next;
		if (sj->unrecorded)
			log_warn("event=results_lost id=%s domain=%s rcpts=%zu action=\"due again at "
				 "the next start\"", sj->job->msg_id, sj->job->domain, sj->job->nrcpt);
		mta_cancel(sj->mta);
		mta_job_free(sj->job);
		free(sj->res);
		free(sj);
	}
	while (s->msgs != NULL) {
		struct sched_msg *m = s->msgs;

		s->msgs = m->next;
		sched_msg_free(m);
	}
	mta_cache_free(s->relay);
	event_free(s->poll_ev);
	event_free(s->kick_ev);
	free(s);
}

/*
 * Run the scheduler soon. Under load a kick comes with every group commit and every ended
 * job, hundreds a second, and each run reads every due row (the waiting ones too); kicks
 * within SCHED_KICK_MS of the last run are gathered into one run at its end.
 */
void sched_kick(struct sched *s)
{
	int64_t wait;
	struct timeval tv = { 0, 0 };

	if (s == NULL || s->kick_ev == NULL || evtimer_pending(s->kick_ev, NULL))
		return;
	wait = s->last_run_ms + SCHED_KICK_MS - monotonic_ms();
	if (wait > 0)
		tv.tv_usec = (suseconds_t)(wait * 1000);
	evtimer_add(s->kick_ev, &tv);
}
