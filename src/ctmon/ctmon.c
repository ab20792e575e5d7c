/*
 * ctmon.c - the CT monitor in serve; see ctmon.h.
 *
 * Rounds run one log at a time (a round is a chain of requests on the loop, never a
 * blocking call). Alerts are claimed in the database before they are mailed (alerted is
 * set where it was NULL), so two nodes never mail the same one; a mail that cannot be
 * queued gives the claim back for the next tick.
 */
#include "ctmon.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "ctmon/ct_follow.h"
#include "ctmon/ct_loglist.h"
#include "ctmon/ct_match.h"
#include "buf.h"
#include "dns.h"
#include "http.h"
#include "lease.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define CTMON_ALERTS_PER_TICK	50
#define CTMON_MAIL_MAX		(256 * 1024)

struct ctmon {
	struct event_base *base;
	const struct pw_config *cfg;
	struct db *db;
	struct http_client *http;
	struct dns *dns;		/* for the CAA check of findings; NULL: not checked */
	struct ct_loglist *list;
	struct ct_watch *watch;
	const struct lease **leases;	/* per log of the list; NULL for logs not followed */
	struct event *tick;
	size_t at;			/* the log of the round in flight, or list->nlogs */
	bool running;
	struct ct_follow *round;	/* in flight, or NULL */
	ctmon_mail_fn mail;
	void *mail_arg;
};

struct ct_loglist *ctmon_read_log_list(const struct pw_config *cfg, char **err)
{
	struct ct_loglist_opts lo = { .allow_http = cfg->ctmon.allow_private };
	struct ct_loglist *list = NULL;
	char *data;
	size_t len;
	FILE *f;

	*err = NULL;
	if ((f = fopen(cfg->ctmon.log_list, "rb")) == NULL) {
		*err = xasprintf("cannot read the log list %s", cfg->ctmon.log_list);
		return NULL;
	}
	data = xmalloc(CT_LOGLIST_MAX_BYTES + 1);
	len = fread(data, 1, CT_LOGLIST_MAX_BYTES + 1, f);
	fclose(f);
	if (len > CT_LOGLIST_MAX_BYTES) {
		*err = xasprintf("the log list %s is larger than %u bytes", cfg->ctmon.log_list,
				 CT_LOGLIST_MAX_BYTES);
	} else if (ct_loglist_parse(data, len, &lo, &list, err) < 0) {
		char *t = xasprintf("the log list %s: %s", cfg->ctmon.log_list, *err);

		free(*err);
		*err = t;
	}
	free(data);
	return list;
}

struct ct_watch *ctmon_watch_from_config(const struct pw_config *cfg)
{
	struct ct_watch *w = ct_watch_new();
	char *copy = xstrdup(cfg->ctmon.watch), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		const char *err = NULL;
		char *name = str_trim(t);

		if (*name && ct_watch_add(w, name, &err) < 0)
			log_warn("event=ct_watch_skipped name=%s error=\"%s\"", name, err);
	}
	free(copy);
	return w;
}

/* ---- alerts ------------------------------------------------------------------------- */

/* Claim row id of table for this node's mail; false when another has it (or an error). */
static bool ctmon_claim(struct db *db, const char *table, int64_t id, int64_t now)
{
	char *sql = xasprintf("UPDATE %s SET alerted = ? WHERE id = ? AND alerted IS NULL", table);
	struct db_stmt *st = db_prepare(db, sql);
	bool mine = false;

	db_bind_int(st, 1, now);
	db_bind_int(st, 2, id);
	if (db_step_done(db, st) == DB_DONE)
		mine = db_changes(db) == 1;
	db_finalize(st);
	free(sql);
	return mine;
}

static void ctmon_unclaim(struct db *db, const char *table, int64_t id)
{
	char *sql = xasprintf("UPDATE %s SET alerted = NULL WHERE id = ?", table);
	struct db_stmt *st = db_prepare(db, sql);

	db_bind_int(st, 1, id);
	db_step_done(db, st);
	db_finalize(st);
	free(sql);
}

/* The header of an alert mail into b. */
static void ctmon_mail_header(const struct ctmon *m, struct buf *b, const char *subject)
{
	char date[64], id[17];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	random_id(id);
	buf_addf(b, "From: postwarden CT monitor <postmaster@%s>\r\nTo: %s\r\n"
		 "Subject: [postwarden] %s\r\nDate: %s\r\nMessage-ID: <%s.ct@%s>\r\n"
		 "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
		 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		 m->cfg->server.hostname, m->cfg->ctmon.alert_to, subject, date, id,
		 m->cfg->server.hostname);
}

/* Mail what b holds; false when it could not be queued. */
static bool ctmon_send(struct ctmon *m, struct buf *b)
{
	return m->mail(m->mail_arg, m->cfg->ctmon.alert_to, b->data, b->len);
}

/* The mail about one unexpected certificate (the statement's current row). */
static bool ctmon_mail_finding(struct ctmon *m, struct db_stmt *st)
{
	struct buf b;
	char from[32], until[32], *subject;
	bool ok;

	buf_init(&b, CTMON_MAIL_MAX);
	format_date(db_col_int(st, 5), from, sizeof(from));
	format_date(db_col_int(st, 6), until, sizeof(until));
	subject = xasprintf("unexpected certificate for %s", db_col_text(st, 1));
	ctmon_mail_header(m, &b, subject);
	buf_addf(&b, "A certificate for your domains was logged in Certificate Transparency\r\n"
		 "that postwarden did not expect.\r\n\r\n"
		 "Finding:    %" PRId64 "\r\nNames:      %s\r\nIssuer:     %s\r\nSerial:     %s\r\n"
		 "Key:        %s (SHA-256 of the public key)\r\nValid:      %s to %s\r\n"
		 "Why:        %s\r\n\r\n"
		 "If you did not ask for it, find out who did and have the CA revoke it.\r\n"
		 "Details: postwarden ct show %" PRId64 "\r\nMark it handled: postwarden ct ack %"
		 PRId64 "\r\n", db_col_int(st, 0), db_col_text(st, 1), db_col_text(st, 2),
		 db_col_text(st, 3), db_col_text(st, 4), from, until, db_col_text(st, 7),
		 db_col_int(st, 0), db_col_int(st, 0));
	ok = ctmon_send(m, &b);
	free(subject);
	buf_free(&b);
	return ok;
}

/* The mail about one misbehaving log (the statement's current row). */
static bool ctmon_mail_log_alert(struct ctmon *m, struct db_stmt *st)
{
	struct buf b;
	char *subject = xasprintf("CT log misbehaved: %s", db_col_text(st, 1));
	bool ok;

	buf_init(&b, CTMON_MAIL_MAX);
	ctmon_mail_header(m, &b, subject);
	buf_addf(&b, "A Certificate Transparency log did something a log must never do.\r\n"
		 "postwarden keeps its evidence and does not read the log past it.\r\n\r\n"
		 "Kind:       %s\r\nLog:        %s\r\nWhat:       %s\r\n\r\nEvidence:\r\n",
		 db_col_text(st, 1), db_col_text(st, 2), db_col_text(st, 3));
	buf_add(&b, db_col_text(st, 4), strnlen(db_col_text(st, 4), CTMON_MAIL_MAX / 2));
	buf_adds(&b, "\r\n");
	ok = ctmon_send(m, &b);
	free(subject);
	buf_free(&b);
	return ok;
}

/*
 * Mail each row of table that is not alerted yet and fits where: claimed first, then read
 * (columns, the id first) and composed.
 */
static void ctmon_mail_rows(struct ctmon *m, const char *table, const char *columns,
			    const char *where, bool (*compose)(struct ctmon *, struct db_stmt *))
{
	char *list_sql = xasprintf("SELECT id FROM %s WHERE alerted IS NULL AND %s ORDER BY id",
				   table, where);
	char *row_sql = xasprintf("SELECT %s FROM %s WHERE id = ?", columns, table);
	struct db_stmt *st = db_prepare(m->db, list_sql);
	int64_t now = (int64_t)time(NULL), *ids = NULL;
	size_t n = 0;

	/* ids first: claiming while the select is open would interleave on one connection */
	while (n < CTMON_ALERTS_PER_TICK && db_step_row(m->db, st)) {
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		ids[n++] = db_col_int(st, 0);
	}
	db_finalize(st);
	for (size_t i = 0; i < n; i++) {
		if (!ctmon_claim(m->db, table, ids[i], now))
			continue;
		st = db_prepare(m->db, row_sql);
		db_bind_int(st, 1, ids[i]);
		if (db_step_row(m->db, st) && compose(m, st))
			log_info("event=ct_alert_mailed table=%s id=%" PRId64 " to=\"%s\"", table,
				 ids[i], m->cfg->ctmon.alert_to);
		else
			ctmon_unclaim(m->db, table, ids[i]);
		db_finalize(st);
	}
	free(ids);
	free(list_sql);
	free(row_sql);
}

static void ctmon_deliver(struct ctmon *m)
{
	if (*m->cfg->ctmon.alert_to == '\0')
		return;		/* the findings wait in the database, for `ct list` */
	ctmon_mail_rows(m, "ct_findings", "id, names, issuer, serial, spki_sha256, not_before, "
			"not_after, reason", "verdict <> 'expected'", ctmon_mail_finding);
	ctmon_mail_rows(m, "ct_alerts", "id, kind, COALESCE(log_id, ''), message, "
			"COALESCE(evidence, '')", "1 = 1", ctmon_mail_log_alert);
}

/* ---- rounds ------------------------------------------------------------------------- */

static void ctmon_next(struct ctmon *m);

static void ctmon_round_done(const struct ct_round_report *r, void *arg)
{
	struct ctmon *m = arg;

	(void)r;	/* logged by the round itself; alerts are in the database */
	m->round = NULL;
	ctmon_next(m);
}

/* Start the round of the next log whose lease this node holds, or end the tick. */
static void ctmon_next(struct ctmon *m)
{
	const struct pw_config *cfg = m->cfg;

	while (m->at < m->list->nlogs) {
		size_t i = m->at++;
		struct ct_follow_opts o = { .base = m->base, .db = m->db, .http = m->http,
			.log = &m->list->logs[i],
			.watch = m->watch, .expected_keys = cfg->ctmon.expected_keys,
			.allowed_issuers = cfg->ctmon.allowed_issuers,
			.issuer_caa = cfg->ctmon.issuer_caa, .dns = m->dns,
			.start_at_end = strcmp(cfg->ctmon.start, "end") == 0, .from = -1 };

		/* a round may take a while: it starts only with a good part of the lease left */
		if (m->leases[i] == NULL || !lease_valid_for(m->leases[i], 5000))
			continue;
		/* NULL: it ended at once, and its callback has gone on to the next log */
		struct ct_follow *r = ct_follow_round(&o, ctmon_round_done, m);

		if (r != NULL)
			m->round = r;
		return;
	}
	m->running = false;
	ctmon_deliver(m);
}

static void ctmon_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctmon *m = arg;

	if (m->running)
		return;
	m->running = true;
	m->at = 0;
	ctmon_next(m);
}

struct ctmon *ctmon_start(struct event_base *base, const struct pw_config *cfg, struct db *db,
			  struct node *node, ctmon_mail_fn mail, void *mail_arg)
{
	struct http_client_opts ho = { .allow_private = cfg->ctmon.allow_private,
		.ca_file = *cfg->ctmon.ca_file ? cfg->ctmon.ca_file : NULL,
		.user_agent = "postwarden-ctmon" };
	struct timeval tv = { cfg->ctmon.interval, 0 };
	struct ctmon *m;
	char *err = NULL;

	if (*cfg->ctmon.log_list == '\0')
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->cfg = cfg;
	m->db = db;
	m->mail = mail;
	m->mail_arg = mail_arg;
	if ((m->list = ctmon_read_log_list(cfg, &err)) == NULL) {
		log_error("event=ct_log_list_error error=\"%s\"", err);
		free(err);
		free(m);
		return NULL;
	}
	m->watch = ctmon_watch_from_config(cfg);
	m->http = http_client_new(base, &ho);
	/* a resolver of its own, from [dns] as elsewhere; without one, findings say that
	 * their CAA was not checked */
	if ((m->dns = dns_new(base, cfg->dns.unbound_config, &err)) == NULL) {
		log_error("event=ctmon_dns_error error=\"%s\"", err);
		free(err);
	}
	m->leases = xcalloc(m->list->nlogs + 1, sizeof(*m->leases));
	for (size_t i = 0; i < m->list->nlogs; i++) {
		char id[45], *name;

		ct_log_id_text(&m->list->logs[i], id);
		name = xasprintf("ct:%s", id);
		m->leases[i] = node_lease(node, name);
		free(name);
	}
	m->tick = event_new(base, -1, EV_PERSIST, ctmon_tick, m);
	if (m->tick == NULL)
		fatalx("cannot create the CT monitor's timer");
	event_add(m->tick, &tv);
	log_info("event=ctmon_start logs=%zu skipped=%zu watch=\"%s\" interval=%" PRId64,
		 m->list->nlogs, m->list->nskipped, cfg->ctmon.watch, cfg->ctmon.interval);
	return m;
}

void ctmon_stop(struct ctmon *m)
{
	if (m == NULL)
		return;
	event_free(m->tick);
	ct_follow_cancel(m->round);	/* dropped; the log resumes at the next start */
	http_client_free(m->http);
	if (m->dns != NULL)
		dns_free(m->dns);
	ct_watch_free(m->watch);
	ct_loglist_free(m->list);
	free(m->leases);
	free(m);
}
