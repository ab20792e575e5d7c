/*
 * ctmon.c - the CT monitor in serve; see ctmon.h.
 *
 * Rounds run one log at a time (a round is a chain of requests on the loop, never a
 * blocking call). Delivery runs on a timer of its own: every unexpected finding and every
 * alert gets a row per configured channel (mail, webhook, hook) in ct_deliveries; a node
 * claims a due row before it delivers, and records success, or a failure with the next
 * attempt after an exponential backoff, so a channel that fails is retried alone and two
 * nodes never deliver the same row. Mail is composed and queued at once; the webhook's
 * POST and the hook command finish later on the loop. `ct watch --foreground` runs the
 * same monitor without mail and prints each new finding and alert as a JSON line.
 *
 * Health: after each round the log's lease holder judges it stale (no good answer for
 * stale_after, counted from this process's start at the earliest, so that its own
 * downtime is not the log's fault) and its backlog (ct_backlog_judge); a log list given
 * as a URL is fetched at start and every CTMON_LIST_REFRESH, its last good copy kept in
 * state_dir, and a list that cannot be refreshed for stale_after is an alert. Each is one
 * episode (ct_store_health_open/close), delivered like any alert.
 */
#include "ctmon.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "ctmon/ct_follow.h"
#include "ctmon/ct_loglist.h"
#include "ctmon/ct_match.h"
#include "ctmon/ct_notify.h"
#include "ctmon/ct_store.h"
#include "buf.h"
#include "dns.h"
#include "http.h"
#include "lease.h"
#include "log.h"
#include "opmail.h"
#include "strutil.h"
#include "xmalloc.h"

#define CTMON_MAIL_MAX		(256 * 1024)

/* Delivery: rows claimed per pass and channel, rows in flight per channel. */
#define CTMON_DELIVER_PER_PASS	20
#define CTMON_INFLIGHT_MAX	4
/* A claim outlives the longest delivery (webhook timeout, hook kill) by far. */
#define CTMON_CLAIM_SECONDS	300
#define CTMON_BACKOFF_MAX	3600
/* The log list from a URL: refreshed hourly; after a failure, tried again sooner. */
#define CTMON_LIST_REFRESH	3600
#define CTMON_LIST_RETRY_MAX	300
#define CTMON_LIST_TIMEOUT_MS	30000
#define CTMON_LIST_CACHE	"ct-log-list.json"
/* Leases of the logs of every list this process has followed (a refresh reuses them). */
#define CTMON_LEASES_MAX	64

struct ctmon_dlv;

struct ctmon {
	struct event_base *base;
	const struct pw_config *cfg;
	struct db *db;
	struct node *node;
	struct http_client *http;
	struct dns *dns;		/* for the CAA check of findings; NULL: not checked */
	struct ct_loglist *list;	/* NULL until a log list is known */
	struct ct_loglist *pending;	/* a refreshed list, swapped in between ticks */
	struct ct_watch *watch;
	const struct lease **leases;	/* per log of the list; NULL for logs not followed */
	struct ct_backlog *backlog;	/* per log of the list */
	char *lease_names[CTMON_LEASES_MAX];
	const struct lease *lease_objs[CTMON_LEASES_MAX];
	size_t nlease;
	struct event *tick;
	size_t at;			/* the log of the round in flight, or list->nlogs */
	bool running;
	struct ct_follow *round;	/* in flight, or NULL */
	ctmon_mail_fn mail;		/* NULL: mail is left to serve (ct watch) */
	void *mail_arg;
	int64_t started;
	/* delivery */
	struct event *deliver_ev;
	struct ct_hooks *hooks;
	struct ctmon_dlv *inflight;
	FILE *json_out;			/* ct watch --foreground: one line per finding/alert */
	int64_t out_finding, out_alert;	/* the last printed */
	/* the log list from a URL */
	bool list_is_url;
	struct event *list_ev;
	int list_req;
	int64_t list_good;		/* last good fetch (or the start) */
};

/* The file or URL of the log list as its bytes; the cached copy's path for a URL. */
static char *ctmon_list_cache_path(const struct pw_config *cfg)
{
	return config_state_path(cfg, CTMON_LIST_CACHE);
}

static bool ctmon_list_is_url(const struct pw_config *cfg)
{
	return strstr(cfg->ctmon.log_list, "://") != NULL;
}

/* Parse a log list's bytes (from source, for messages). */
static struct ct_loglist *ctmon_parse_list(const struct pw_config *cfg, const char *source,
					   const char *data, size_t len, char **err)
{
	struct ct_loglist_opts lo = { .allow_http = cfg->ctmon.allow_private };
	struct ct_loglist *list = NULL;

	if (len > CT_LOGLIST_MAX_BYTES) {
		*err = xasprintf("the log list %s is larger than %u bytes", source,
				 CT_LOGLIST_MAX_BYTES);
	} else if (ct_loglist_parse(data, len, &lo, &list, err) < 0) {
		char *t = xasprintf("the log list %s: %s", source, *err);

		free(*err);
		*err = t;
	}
	return list;
}

/* A log list file, bounded. */
static struct ct_loglist *ctmon_read_list_file(const struct pw_config *cfg, const char *path,
					       char **err)
{
	struct ct_loglist *list;
	char *data;
	size_t len;
	FILE *f;

	*err = NULL;
	if ((f = fopen(path, "rb")) == NULL) {
		*err = xasprintf("cannot read the log list %s", path);
		return NULL;
	}
	data = xmalloc(CT_LOGLIST_MAX_BYTES + 1);
	len = fread(data, 1, CT_LOGLIST_MAX_BYTES + 1, f);
	fclose(f);
	list = ctmon_parse_list(cfg, path, data, len, err);
	free(data);
	return list;
}

struct ct_loglist *ctmon_read_log_list(const struct pw_config *cfg, char **err)
{
	struct ct_loglist *list;
	char *path;

	if (!ctmon_list_is_url(cfg))
		return ctmon_read_list_file(cfg, cfg->ctmon.log_list, err);
	/* a URL: the last good copy serve or ct watch fetched */
	path = ctmon_list_cache_path(cfg);
	list = ctmon_read_list_file(cfg, path, err);
	if (list == NULL) {
		free(*err);
		*err = xasprintf("no copy of the log list %s yet in %s (serve or ct watch fetches "
				 "it)", cfg->ctmon.log_list, path);
	}
	free(path);
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

/* The header of an alert mail into b. */
static void ctmon_mail_header(const struct ctmon *m, struct buf *b, const char *subject)
{
	opmail_header(b, m->cfg->server.hostname, "CT monitor", m->cfg->ctmon.alert_to, subject,
		      "ct");
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

/* Compose and queue the mail of one row (its id first in columns); false if it failed. */
static bool ctmon_mail_row(struct ctmon *m, const char *sql, int64_t id,
			   bool (*compose)(struct ctmon *, struct db_stmt *))
{
	struct db_stmt *st = db_prepare(m->db, sql);
	bool ok;

	db_bind_int(st, 1, id);
	ok = db_step_row(m->db, st) && compose(m, st);
	db_finalize(st);
	return ok;
}

static bool ctmon_mail_item(struct ctmon *m, const struct ct_due *d)
{
	if (strcmp(d->item, "finding") == 0)
		return ctmon_mail_row(m, "SELECT id, names, issuer, serial, spki_sha256, not_before, "
				      "not_after, reason FROM ct_findings WHERE id = ?", d->id,
				      ctmon_mail_finding);
	return ctmon_mail_row(m, "SELECT id, kind, COALESCE(log_id, ''), message, "
			      "COALESCE(evidence, '') FROM ct_alerts WHERE id = ?", d->id,
			      ctmon_mail_log_alert);
}

/* ---- delivery on every channel ------------------------------------------------------ */

/* One delivery in flight (webhook or hook). */
struct ctmon_dlv {
	struct ctmon *m;
	struct ctmon_dlv *next;
	struct ct_due d;
	const char *channel;
	int http;			/* the webhook's request, or -1 */
	struct ct_webhook webhook;
};

/* The time before attempt number attempts + 1 (attempts made so far, >= 1). */
static int64_t ctmon_backoff(const struct ctmon *m, int attempts)
{
	int64_t base = m->cfg->ctmon.interval < 1 ? 1 : m->cfg->ctmon.interval;
	int64_t delay;

	if (base > 60)
		base = 60;
	delay = base << (attempts > 12 ? 12 : attempts - 1);
	return delay > CTMON_BACKOFF_MAX ? CTMON_BACKOFF_MAX : delay;
}

/* Record how a delivery went. */
static void ctmon_delivered(struct ctmon *m, const struct ct_due *d, const char *channel,
			    bool ok, const char *error)
{
	int64_t now = (int64_t)time(NULL);

	if (ok) {
		ct_store_delivery_done(m->db, d, channel, now);
		log_info("event=ct_alert_delivered channel=%s item=%s id=%" PRId64 " attempt=%d",
			 channel, d->item, d->id, d->attempts + 1);
	} else {
		int64_t delay = ctmon_backoff(m, d->attempts + 1);

		ct_store_delivery_failed(m->db, d, channel, now + delay, error);
		log_warn("event=ct_alert_delivery_failed channel=%s item=%s id=%" PRId64
			 " attempt=%d retry_in=%" PRId64 " error=\"%s\"", channel, d->item, d->id,
			 d->attempts + 1, delay, error ? error : "");
	}
}

static void ctmon_dlv_unlink(struct ctmon_dlv *x)
{
	struct ctmon_dlv **pp = &x->m->inflight;

	while (*pp != NULL && *pp != x)
		pp = &(*pp)->next;
	if (*pp == x)
		*pp = x->next;
}

static void ctmon_dlv_done(bool ok, const char *error, void *arg)
{
	struct ctmon_dlv *x = arg;

	ctmon_dlv_unlink(x);
	ctmon_delivered(x->m, &x->d, x->channel, ok, error);
	free(x);
}

static size_t ctmon_inflight(const struct ctmon *m, const char *channel)
{
	size_t n = 0;

	for (const struct ctmon_dlv *x = m->inflight; x; x = x->next)
		n += x->channel == channel;
	return n;
}

/* Start the webhook's POST or the hook command of one claimed row. */
static void ctmon_dlv_start(struct ctmon *m, const struct ct_due *d, const char *channel,
			    const json_t *doc)
{
	struct ctmon_dlv *x = xcalloc(1, sizeof(*x));
	char *text = ct_notify_text(doc);
	bool started;

	x->m = m;
	x->d = *d;
	x->channel = channel;
	x->http = -1;
	if (strcmp(channel, "webhook") == 0) {
		x->webhook = (struct ct_webhook){ .cb = ctmon_dlv_done, .arg = x };
		x->http = ct_notify_webhook(m->http, m->cfg->ctmon.webhook, text, &x->webhook);
		started = x->http >= 0;
	} else {
		char **env = ct_notify_env(doc);

		started = ct_hooks_run(m->hooks, m->cfg->ctmon.hook, env, text, ctmon_dlv_done, x);
		ct_notify_env_free(env);
	}
	free(text);
	if (!started) {
		ctmon_delivered(m, d, channel, false, "could not start");
		free(x);
		return;
	}
	x->next = m->inflight;
	m->inflight = x;
}

/* Deliver one claimed row on channel. */
static void ctmon_deliver_one(struct ctmon *m, const struct ct_due *d, const char *channel)
{
	json_t *doc;

	if (strcmp(channel, "mail") == 0) {
		bool ok = ctmon_mail_item(m, d);

		ctmon_delivered(m, d, channel, ok, ok ? NULL : "the mail could not be queued");
		return;
	}
	if ((doc = ct_notify_document(m->db, d->item, d->id)) == NULL) {
		ctmon_delivered(m, d, channel, false, "cannot read it from the database");
		return;
	}
	ctmon_dlv_start(m, d, channel, doc);
	json_decref(doc);
}

/* One pass over channel: rows made for new findings and alerts, due ones delivered. */
static void ctmon_deliver_channel(struct ctmon *m, const char *channel, bool deliver)
{
	struct ct_due due[CTMON_DELIVER_PER_PASS];
	int64_t now = (int64_t)time(NULL);
	size_t room = CTMON_DELIVER_PER_PASS, n;

	if (ct_store_delivery_enqueue(m->db, channel, now) != DB_OK || !deliver)
		return;
	if (strcmp(channel, "mail") != 0) {
		size_t busy = ctmon_inflight(m, channel);

		room = busy >= CTMON_INFLIGHT_MAX ? 0 : CTMON_INFLIGHT_MAX - busy;
	}
	if (room == 0)
		return;
	n = ct_store_delivery_due(m->db, channel, now, due, room);
	for (size_t i = 0; i < n; i++)
		if (ct_store_delivery_claim(m->db, &due[i], channel, m->cfg->server.node, now,
					    now + CTMON_CLAIM_SECONDS))
			ctmon_deliver_one(m, &due[i], channel);
}

/* ct watch --foreground: every new unexpected finding and alert as one JSON line. */
static void ctmon_print_new(struct ctmon *m, const char *item, int64_t *cursor)
{
	int64_t ids[CTMON_DELIVER_PER_PASS];
	size_t n = ct_store_ids_after(m->db, item, *cursor, ids, CTMON_DELIVER_PER_PASS);

	for (size_t i = 0; i < n; i++) {
		json_t *doc = ct_notify_document(m->db, item, ids[i]);
		char *text;

		if (doc == NULL)
			break;		/* the database: tried again at the next pass */
		text = ct_notify_text(doc);
		fprintf(m->json_out, "%s\n", text);
		free(text);
		json_decref(doc);
		if (fflush(m->json_out) != 0 || ferror(m->json_out)) {
			/* nobody reads them any more: ct watch ends */
			log_error("event=ct_watch_output_failed");
			event_base_loopbreak(m->base);
			return;
		}
		*cursor = ids[i];
	}
}

static void ctmon_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct ctmon *m = arg;
	const struct ctmon_conf *c = &m->cfg->ctmon;

	(void)fd;
	(void)what;
	/* mail rows are made in ct watch too, for serve to send */
	if (*c->alert_to)
		ctmon_deliver_channel(m, "mail", m->mail != NULL);
	if (*c->webhook)
		ctmon_deliver_channel(m, "webhook", true);
	if (*c->hook)
		ctmon_deliver_channel(m, "hook", true);
	if (m->json_out != NULL) {
		ctmon_print_new(m, "finding", &m->out_finding);
		ctmon_print_new(m, "alert", &m->out_alert);
	}
}

/* ---- health ------------------------------------------------------------------------- */

static void ctmon_health_open(struct ctmon *m, const char *kind, const char *log_id,
			      const char *message, const char *evidence)
{
	if (ct_store_health_open(m->db, kind, log_id, message, evidence))
		log_warn("event=ct_health_alert kind=%s log=%s message=\"%s\"", kind,
			 log_id ? log_id : "-", message);
}

/* After a round of log i: is it stale, does its backlog keep growing? */
static void ctmon_health_round(struct ctmon *m, size_t i, const struct ct_round_report *r)
{
	int64_t now = (int64_t)time(NULL), since;
	struct ct_log_pos pos;
	char id[45];

	ct_log_id_text(&m->list->logs[i], id);
	if (ct_store_log_load(m->db, id, &pos) != DB_ROW)
		return;
	if (r->result == CT_ROUND_OK) {
		ct_store_health_close(m->db, CT_HEALTH_LOG_STALE, id);
	} else {
		since = pos.last_success > m->started ? pos.last_success : m->started;
		if (now - since > m->cfg->ctmon.stale_after) {
			char *msg = xasprintf("no good answer from the log %s for %" PRId64 " s "
					      "(stale_after %" PRId64 " s): %s", pos.url,
					      now - since, m->cfg->ctmon.stale_after,
					      r->message ? r->message : "error");
			json_t *ev = json_pack("{s:s, s:I, s:s}", "url", pos.url,
					       "last_success", (json_int_t)pos.last_success,
					       "error", r->message ? r->message : "");
			char *evs = ct_notify_text(ev);

			ctmon_health_open(m, CT_HEALTH_LOG_STALE, id, msg, evs);
			free(evs);
			json_decref(ev);
			free(msg);
		}
	}
	if (r->tree_size > 0) {
		int64_t backlog = (int64_t)r->tree_size - pos.next_index;
		enum ct_backlog_action act = ct_backlog_judge(&m->backlog[i],
							      backlog < 0 ? 0 : backlog);

		if (act == CT_BACKLOG_OPEN) {
			char *msg = xasprintf("the log %s has %" PRId64 " entries not yet checked, "
					      "more after each of the last %d rounds", pos.url,
					      backlog, CT_BACKLOG_ROUNDS);
			char *ev = xasprintf("{\"tree_size\":%" PRIu64 ",\"next_index\":%" PRId64
					     "}", r->tree_size, pos.next_index);

			ctmon_health_open(m, CT_HEALTH_BACKLOG, id, msg, ev);
			free(ev);
			free(msg);
		} else if (act == CT_BACKLOG_CLOSE) {
			ct_store_health_close(m->db, CT_HEALTH_BACKLOG, id);
		}
	}
	ct_log_pos_free(&pos);
}

/* ---- the log list ------------------------------------------------------------------- */

/* The lease of a log, the same object for the same log across refreshes. */
static const struct lease *ctmon_lease(struct ctmon *m, const struct ct_log *log)
{
	char id[45], *name;
	const struct lease *l;

	ct_log_id_text(log, id);
	name = xasprintf("ct:%s", id);
	for (size_t i = 0; i < m->nlease; i++) {
		if (strcmp(m->lease_names[i], name) == 0) {
			free(name);
			return m->lease_objs[i];
		}
	}
	if (m->nlease == CTMON_LEASES_MAX) {
		log_warn("event=ct_log_skipped log=%s error=\"more than %d logs\"", id,
			 CTMON_LEASES_MAX);
		free(name);
		return NULL;
	}
	l = node_lease(m->node, name);
	m->lease_names[m->nlease] = name;
	m->lease_objs[m->nlease++] = l;
	return l;
}

/* Follow list from now on (never while a round runs: it points into the list). */
static void ctmon_use_list(struct ctmon *m, struct ct_loglist *list)
{
	struct ct_backlog *backlog = xcalloc(list->nlogs + 1, sizeof(*backlog));

	for (size_t i = 0; i < list->nlogs; i++) {
		backlog[i].last = -1;
		/* a log that stays in the list keeps its backlog count and open alert */
		for (size_t j = 0; m->list != NULL && j < m->list->nlogs; j++)
			if (memcmp(m->list->logs[j].log_id, list->logs[i].log_id,
				   CT_LOG_ID_LEN) == 0)
				backlog[i] = m->backlog[j];
	}
	ct_loglist_free(m->list);
	free(m->leases);
	free(m->backlog);
	m->list = list;
	m->backlog = backlog;
	m->leases = xcalloc(list->nlogs + 1, sizeof(*m->leases));
	for (size_t i = 0; i < list->nlogs; i++)
		m->leases[i] = ctmon_lease(m, &list->logs[i]);
	log_info("event=ct_log_list logs=%zu skipped=%zu", list->nlogs, list->nskipped);
}

static void ctmon_list_fetch(evutil_socket_t fd, short what, void *arg);

static void ctmon_list_schedule(struct ctmon *m, int64_t seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };

	evtimer_add(m->list_ev, &tv);
}

/* Keep the good copy in state_dir for a restart while the URL is down. */
static void ctmon_list_save(struct ctmon *m, const char *data, size_t len)
{
	char *path = ctmon_list_cache_path(m->cfg), *tmp = xasprintf("%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	bool ok = f != NULL && fwrite(data, 1, len, f) == len;

	if (f != NULL && fclose(f) != 0)
		ok = false;
	if (!ok || rename(tmp, path) < 0) {
		log_warn("event=ct_log_list_save_failed path=%s", path);
		unlink(tmp);
	}
	free(tmp);
	free(path);
}

static void ctmon_list_failed(struct ctmon *m, const char *error)
{
	int64_t now = (int64_t)time(NULL), retry = m->cfg->ctmon.interval;

	log_warn("event=ct_log_list_error url=%s error=\"%s\"", m->cfg->ctmon.log_list, error);
	if (now - m->list_good > m->cfg->ctmon.stale_after) {
		char *msg = xasprintf("the log list %s could not be refreshed for %" PRId64 " s "
				      "(stale_after %" PRId64 " s): %s; %s", m->cfg->ctmon.log_list,
				      now - m->list_good, m->cfg->ctmon.stale_after, error,
				      m->list ? "the last good copy is followed"
					      : "no copy of it: no log is watched");
		json_t *ev = json_pack("{s:s, s:I, s:s, s:s}", "url", m->cfg->ctmon.log_list,
				       "last_good", (json_int_t)m->list_good, "error", error,
				       "node", m->cfg->server.node);
		char *evs = ct_notify_text(ev);

		ctmon_health_open(m, CT_HEALTH_LIST_STALE, NULL, msg, evs);
		free(evs);
		json_decref(ev);
		free(msg);
	}
	ctmon_list_schedule(m, retry < 1 ? 1 : retry > CTMON_LIST_RETRY_MAX
			    ? CTMON_LIST_RETRY_MAX : retry);
}

static void ctmon_list_got(struct http_response *resp, void *arg)
{
	struct ctmon *m = arg;
	struct ct_loglist *list = NULL;
	char *err = NULL;

	m->list_req = -1;
	if (resp->result != HTTP_OK)
		err = xstrdup(resp->error ? resp->error : http_result_str(resp->result));
	else if (resp->status != 200)
		err = xasprintf("HTTP %ld", resp->status);
	else
		list = ctmon_parse_list(m->cfg, m->cfg->ctmon.log_list, resp->body, resp->len,
					&err);
	if (list == NULL) {
		ctmon_list_failed(m, err);
	} else {
		ctmon_list_save(m, resp->body, resp->len);
		m->list_good = (int64_t)time(NULL);
		ct_store_health_close(m->db, CT_HEALTH_LIST_STALE, NULL);
		ct_loglist_free(m->pending);
		m->pending = list;
		if (!m->running) {
			ctmon_use_list(m, m->pending);
			m->pending = NULL;
		}
		ctmon_list_schedule(m, CTMON_LIST_REFRESH);
	}
	free(err);
	http_response_free(resp);
}

static void ctmon_list_fetch(evutil_socket_t fd, short what, void *arg)
{
	struct ctmon *m = arg;
	struct http_request_opts ro = { .timeout_ms = CTMON_LIST_TIMEOUT_MS,
		.max_body = CT_LOGLIST_MAX_BYTES, .follow_https_redirects = true };

	(void)fd;
	(void)what;
	m->list_req = http_get(m->http, m->cfg->ctmon.log_list, &ro, ctmon_list_got, m);
	if (m->list_req < 0)
		ctmon_list_failed(m, "the request could not start");
}

/* ---- rounds ------------------------------------------------------------------------- */

static void ctmon_next(struct ctmon *m);

static void ctmon_round_done(const struct ct_round_report *r, void *arg)
{
	struct ctmon *m = arg;

	/* the round logged itself; alerts are in the database */
	m->round = NULL;
	if (m->at > 0)
		ctmon_health_round(m, m->at - 1, r);
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
			.start_at_end = strcmp(cfg->ctmon.start, "end") == 0, .from = -1,
			.parallel = (unsigned)cfg->ctmon.parallel,
			.per_second = (unsigned)cfg->ctmon.requests_per_second };

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
	ctmon_deliver(-1, 0, m);
}

static void ctmon_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctmon *m = arg;

	(void)fd;
	(void)what;
	if (m->running)
		return;
	if (m->pending != NULL) {
		ctmon_use_list(m, m->pending);
		m->pending = NULL;
	}
	if (m->list == NULL)
		return;		/* no log list yet (its URL is tried again by its own timer) */
	m->running = true;
	m->at = 0;
	ctmon_next(m);
}

/* The log list at start: the file, or for a URL the last good copy (and a fetch now). */
static bool ctmon_first_list(struct ctmon *m)
{
	char *err = NULL, *path;
	struct ct_loglist *list;

	if (!m->list_is_url) {
		if ((list = ctmon_read_list_file(m->cfg, m->cfg->ctmon.log_list, &err)) == NULL) {
			log_error("event=ct_log_list_error error=\"%s\"", err);
			free(err);
			return false;
		}
		ctmon_use_list(m, list);
		return true;
	}
	path = ctmon_list_cache_path(m->cfg);
	if ((list = ctmon_read_list_file(m->cfg, path, &err)) != NULL) {
		log_info("event=ct_log_list_cached path=%s", path);
		ctmon_use_list(m, list);
	}
	free(err);
	free(path);
	m->list_ev = evtimer_new(m->base, ctmon_list_fetch, m);
	if (m->list_ev == NULL)
		fatalx("cannot create the CT monitor's timer");
	ctmon_list_schedule(m, 0);
	return true;
}

static struct ctmon *ctmon_start_opts(struct event_base *base, const struct pw_config *cfg,
				      struct db *db, struct node *node, ctmon_mail_fn mail,
				      void *mail_arg, FILE *json_out)
{
	struct http_client_opts ho = { .allow_private = cfg->ctmon.allow_private,
		.ca_file = *cfg->ctmon.ca_file ? cfg->ctmon.ca_file : NULL,
		.user_agent = "postwarden-ctmon" };
	struct timeval tv = { cfg->ctmon.interval, 0 };
	struct timeval dv = { cfg->ctmon.interval > 10 ? 10 : cfg->ctmon.interval, 0 };
	struct ctmon *m;
	char *err = NULL;

	if (*cfg->ctmon.log_list == '\0')
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->base = base;
	m->cfg = cfg;
	m->db = db;
	m->node = node;
	m->mail = mail;
	m->mail_arg = mail_arg;
	m->json_out = json_out;
	m->list_req = -1;
	m->started = m->list_good = (int64_t)time(NULL);
	m->list_is_url = ctmon_list_is_url(cfg);
	m->http = http_client_new(base, &ho);
	if (!ctmon_first_list(m)) {
		http_client_free(m->http);
		free(m);
		return NULL;
	}
	if (json_out != NULL) {
		/* what the database holds already was reported before */
		m->out_finding = ct_store_max_id(db, "ct_findings");
		m->out_alert = ct_store_max_id(db, "ct_alerts");
	}
	/* a resolver of its own, from [dns] as elsewhere; without one, findings say that
	 * their CAA was not checked */
	if ((m->dns = dns_new(base, cfg->dns.unbound_config, &err)) == NULL) {
		log_error("event=ctmon_dns_error error=\"%s\"", err);
		free(err);
	}
	m->watch = ctmon_watch_from_config(cfg);
	m->hooks = *cfg->ctmon.hook ? ct_hooks_new(base) : NULL;
	m->tick = event_new(base, -1, EV_PERSIST, ctmon_tick, m);
	m->deliver_ev = event_new(base, -1, EV_PERSIST, ctmon_deliver, m);
	if (m->tick == NULL || m->deliver_ev == NULL)
		fatalx("cannot create the CT monitor's timer");
	event_add(m->tick, &tv);
	event_add(m->deliver_ev, &dv);
	log_info("event=ctmon_start logs=%zu skipped=%zu watch=\"%s\" interval=%" PRId64
		 " list=%s", m->list ? m->list->nlogs : 0, m->list ? m->list->nskipped : 0,
		 cfg->ctmon.watch, cfg->ctmon.interval, m->list_is_url ? "url" : "file");
	return m;
}

struct ctmon *ctmon_start(struct event_base *base, const struct pw_config *cfg, struct db *db,
			  struct node *node, ctmon_mail_fn mail, void *mail_arg)
{
	return ctmon_start_opts(base, cfg, db, node, mail, mail_arg, NULL);
}

struct ctmon *ctmon_start_watch(struct event_base *base, const struct pw_config *cfg,
				struct db *db, struct node *node, FILE *json_out)
{
	return ctmon_start_opts(base, cfg, db, node, NULL, NULL, json_out);
}

void ctmon_stop(struct ctmon *m)
{
	if (m == NULL)
		return;
	event_free(m->tick);
	event_free(m->deliver_ev);
	if (m->list_ev != NULL)
		event_free(m->list_ev);
	ct_follow_cancel(m->round);	/* dropped; the log resumes at the next start */
	/* deliveries in flight: their claims given back for the next start or another node */
	while (m->inflight != NULL) {
		struct ctmon_dlv *x = m->inflight;

		m->inflight = x->next;
		if (x->http >= 0)
			http_cancel(m->http, x->http);
		ct_store_delivery_release(m->db, &x->d, x->channel);
		free(x);
	}
	ct_hooks_free(m->hooks);
	http_client_free(m->http);
	if (m->dns != NULL)
		dns_free(m->dns);
	ct_watch_free(m->watch);
	ct_loglist_free(m->list);
	ct_loglist_free(m->pending);
	for (size_t i = 0; i < m->nlease; i++)
		free(m->lease_names[i]);
	free(m->leases);
	free(m->backlog);
	free(m);
}
