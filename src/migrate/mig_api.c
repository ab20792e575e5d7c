/*
 * mig_api.c - migration jobs started, watched and cancelled through serve's API (see
 * mig_api.h): the request body parser, the routes, and the thread that runs one job.
 *
 * Concurrency: at most [migrate] jobs run at once on a node; a POST beyond that is
 * answered 429 with Retry-After (nothing is queued: a queued job would hold the user's
 * password in memory for an unknown time, and the account page can simply try again).
 * Cancellation and liveness go through the job record: DELETE on any node sets its cancel
 * mark, which the running node reads at its next progress write (four times a second);
 * a job whose node stopped writing for MIG_JOB_STALE seconds shows as interrupted and can
 * be restarted with a POST naming it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "config.h"
#include "db.h"
#include "http.h"
#include "log.h"
#include "mig_api.h"
#include "mig_contacts.h"
#include "mig_contacts_job.h"
#include "mig_job.h"
#include "mig_mail.h"
#include "mig_mail_map.h"
#include "schema.h"
#include "xmalloc.h"

#define MIG_API_PREFIX "/v1/migrations"
#define MIG_API_POLL_NS (250 * 1000 * 1000)
#define MIG_API_RETRY_AFTER "30"

/* ---- the body ------------------------------------------------------------------------ */

/* Wipe a JSON string's bytes in jansson's own copy (before json_decref frees it). */
static void wipe_json_string(json_t *v)
{
	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

/* An optional string member: NULL when absent; -1 when not a usable string. */
static int get_str(json_t *o, const char *key, size_t max, char **out)
{
	json_t *v = json_object_get(o, key);
	size_t len;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	len = json_string_length(v);
	if (len == 0 || len > max || memchr(json_string_value(v), '\0', len) != NULL)
		return -1;
	*out = xstrndup(json_string_value(v), len);
	return 0;
}

/* An optional secret member, straight into wiped memory. */
static int get_cred(json_t *o, const char *key, struct mig_cred **out)
{
	json_t *v = json_object_get(o, key);
	size_t len;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -1;
	len = json_string_length(v);
	if (len == 0 || len > MIG_CRED_MAX || memchr(json_string_value(v), '\0', len) != NULL)
		return -1;
	*out = mig_cred_from_string(json_string_value(v), len);
	return 0;
}

static const char *const body_keys[] = {
	"kind", "source", "source_host", "source_user", "source_password", "source_token",
	"oauth", "destination_user", "destination_password", "job", "source_url", NULL,
};

static bool known_key(const char *k)
{
	for (size_t i = 0; body_keys[i]; i++)
		if (strcmp(body_keys[i], k) == 0)
			return true;
	return false;
}

/* The members, checked one by one; *err says which one is wrong. */
static int body_fields(json_t *o, struct mig_api_body *b, const char **err)
{
	struct mig_cred *pw = NULL, *tok = NULL;
	json_t *job = json_object_get(o, "job");
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		if (!known_key(k)) {
			*err = "unknown member in the body";
			return -1;
		}
	}
#define STR(key, max, field) \
	if (get_str(o, key, max, &b->field) < 0) { *err = key ": not a usable string"; return -1; }
	STR("kind", 16, kind);
	STR("source", MIG_API_MAX_NAME, source);
	STR("source_host", MIG_API_MAX_NAME, source_host);
	STR("source_user", MIG_API_MAX_NAME, source_user);
	STR("destination_user", MIG_API_MAX_NAME, destination_user);
	STR("oauth", 16, oauth);
	STR("source_url", MIG_API_MAX_URL, source_url);
#undef STR
	if (get_cred(o, "source_password", &pw) < 0 || get_cred(o, "source_token", &tok) < 0 ||
	    get_cred(o, "destination_password", &b->destination_cred) < 0) {
		mig_cred_free(pw);
		mig_cred_free(tok);
		*err = "a password or token: not a string of 1 to 8192 bytes";
		return -1;
	}
	b->source_cred = tok ? tok : pw;
	b->token = tok != NULL;
	if (pw && tok) {
		mig_cred_free(pw);
		*err = "give source_password or source_token, not both";
		return -1;
	}
	if (job != NULL && (!json_is_integer(job) || json_integer_value(job) <= 0)) {
		*err = "job: a job id";
		return -1;
	}
	b->job = job ? (int64_t)json_integer_value(job) : 0;
	return 0;
}

/* An http(s) URL (a contacts job's source). */
static bool is_http_url(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

/* What a contacts job needs: a source_user unless a token says who it is. */
static int body_check_contacts(const struct mig_api_body *b, const char **err)
{
	const struct mig_contacts_preset *p = b->source ? mig_contacts_preset(b->source) : NULL;

	if (b->source == NULL || (p == NULL && !is_http_url(b->source)) ||
	    (p && mig_contacts_is_file(p)))
		*err = "source: a contacts preset (carddav, gmail, icloud, yahoo, aol, gmx, webde, "
		       "outlook) or an http(s) URL";
	else if (b->source_url && !is_http_url(b->source_url))
		*err = "source_url: an http(s) URL";
	else if (p && p->url == NULL && b->source_url == NULL)
		*err = "source_url: required with this source";
	else if (b->source_host || b->oauth)
		*err = "source_host and oauth are for mail jobs";
	else if (p && p->auth == CARDDAV_AUTH_BEARER && b->source_cred && !b->token)
		*err = "source_token: this source takes an OAuth token";
	else if (b->source_user == NULL && !b->token)
		*err = "source_user: required";
	else if (b->source_cred == NULL)
		*err = "source_password or source_token: required";
	else if (b->destination_user == NULL)
		*err = "destination_user: required";
	else if (b->destination_cred == NULL)
		*err = "destination_password: required";
	else
		return 0;
	return -1;
}

/* What every job needs. */
static int body_check(const struct mig_api_body *b, const char **err)
{
	if (b->kind && strcmp(b->kind, "contacts") == 0)
		return body_check_contacts(b, err);
	if (b->kind == NULL || strcmp(b->kind, "mail") != 0)
		*err = "kind: mail or contacts";
	else if (b->source_url)
		*err = "source_url is for contacts jobs";
	else if (b->source == NULL)
		*err = "source: a preset or imaps://HOST[:PORT]";
	else if (b->source_user == NULL)
		*err = "source_user: required";
	else if (b->source_cred == NULL)
		*err = "source_password or source_token: required";
	else if (b->destination_user == NULL)
		*err = "destination_user: required";
	else if (b->oauth && strcmp(b->oauth, "xoauth2") != 0 &&
		 strcmp(b->oauth, "oauthbearer") != 0)
		*err = "oauth: xoauth2 or oauthbearer";
	else
		return 0;
	return -1;
}

/*
 * Parse and check a body; with user (the account API), destination_user is that user: the
 * body may leave it out or repeat it, but never name another.
 */
static int body_parse(const char *data, size_t len, struct mig_api_body *b, const char *user,
		      const char **err)
{
	json_error_t je;
	json_t *o;
	const char *k;
	json_t *v;
	int rc;

	memset(b, 0, sizeof(*b));
	if (len > MIG_API_MAX_BODY) {
		*err = "the body is too large";
		return -1;
	}
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	OPENSSL_cleanse(&je, sizeof(je));	/* its text quotes the body */
	if (o == NULL || !json_is_object(o)) {
		*err = "the body is not a JSON object";
		json_decref(o);
		return -1;
	}
	rc = body_fields(o, b, err);
	if (rc == 0 && user != NULL) {
		if (b->destination_user && strcasecmp(b->destination_user, user) != 0) {
			*err = "destination_user: you can only move mail into your own account";
			rc = -1;
		} else {
			free(b->destination_user);
			b->destination_user = xstrdup(user);
		}
	}
	if (rc == 0)
		rc = body_check(b, err);
	json_object_foreach(o, k, v)
		wipe_json_string(v);
	json_decref(o);
	if (rc < 0)
		mig_api_body_free(b);
	return rc;
}

int mig_api_body_parse(const char *data, size_t len, struct mig_api_body *b, const char **err)
{
	return body_parse(data, len, b, NULL, err);
}

void mig_api_body_free(struct mig_api_body *b)
{
	free(b->kind);
	free(b->source);
	free(b->source_host);
	free(b->source_url);
	free(b->source_user);
	free(b->destination_user);
	free(b->oauth);
	mig_cred_free(b->source_cred);
	mig_cred_free(b->destination_cred);
	memset(b, 0, sizeof(*b));
}

/* ---- one job in a thread -------------------------------------------------------------- */

struct mig_run {
	struct mig_api *api;
	int64_t id;
	struct mig_mail_opts o;
	struct mig_cred *src_cred, *dst_cred;
	struct mig_contacts_job *contacts;	/* an address book job; NULL: mail */
	pthread_t thread;
	atomic_bool over;	/* the thread has ended: join it */
	bool no_db;		/* the thread could not open the database: the loop records it */
	struct mig_run *next;
};

struct mig_api {
	const struct pw_config *cfg;	/* borrowed */
	struct db *db;			/* serve's, borrowed */
	struct mig_run *runs;
	atomic_bool stopping;		/* serve is stopping: jobs end as interrupted */
};

/*
 * Replace every occurrence of what (the source server or user name) in s by "the old
 * provider's server" / "the old user": an error from the old server may quote them, and
 * nothing of the source may reach the database.
 */
static char *scrub(char *s, const char *what, const char *with)
{
	char *at;

	if (s == NULL || what == NULL || *what == '\0')
		return s;
	while ((at = strstr(s, what)) != NULL) {
		char *n = xasprintf("%.*s%s%s", (int)(at - s), s, with, at + strlen(what));

		free(s);
		s = n;
	}
	return s;
}

static char *scrub_all(const struct mig_run *r, char *s)
{
	s = scrub(s, r->o.src.host, "the old provider's server");
	s = scrub(s, r->o.src.user, "the old user name");
	return s;
}

/* Scrub the texts that the job record will hold (under the job's lock). */
static void scrub_mail(struct mig_run *r, struct mig_mail *m)
{
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nfolders; i++)
		m->folders[i].error = scrub_all(r, m->folders[i].error);
	m->fatal = scrub_all(r, m->fatal);
	pthread_mutex_unlock(&m->lock);
}

/* Workers to the end, folder state and progress written four times a second. */
static bool run_workers(struct mig_run *r, struct mig_mail *m, struct db *db)
{
	pthread_t th[16];
	struct mig_progress p;
	int n, running;
	bool cancelled = false;

	mig_mail_start(m, th, &n);
	running = n;
	while (running > 0) {
		struct timespec ts = { 0, MIG_API_POLL_NS };

		nanosleep(&ts, NULL);
		running = 0;
		for (int i = 0; i < n; i++)
			if (th[i] != 0 && pthread_tryjoin_np(th[i], NULL) == 0)
				th[i] = 0;
		for (int i = 0; i < n; i++)
			running += th[i] != 0;
		scrub_mail(r, m);
		(void)mig_job_save(db, r->id, m);
		mig_mail_progress(m, &p);
		if (!cancelled && (mig_job_beat(db, r->id, &p) == 1 || r->api->stopping)) {
			cancelled = true;
			mig_mail_stop(m);
		}
	}
	return cancelled;
}

static const char *end_state(struct mig_run *r, struct mig_mail *m, bool stopped)
{
	struct mig_progress p;

	mig_mail_progress(m, &p);
	if (m->fatal)
		return "failed";
	if (stopped)
		return r->api->stopping ? "interrupted" : "cancelled";
	if (p.failed > 0 || p.folders_done < p.folders_total)
		return "partial";
	for (size_t i = 0; i < m->nfolders; i++)
		if (m->folders[i].error)
			return "partial";
	return "done";
}

/*
 * [migrate] master_password_file, read at the job's start (so a changed password needs no
 * restart) into r->dst_cred, which the job wipes when it ends. false when the file cannot
 * be used: the job is then recorded as failed with the reason.
 */
static bool master_cred(struct mig_run *r, struct db *db)
{
	struct mig_progress none = { 0 };
	char *err = NULL, *msg;

	if (*r->api->cfg->migrate.master_user == '\0')
		return true;
	r->dst_cred = mig_cred_from_file(r->api->cfg->migrate.master_password_file, &err);
	r->o.dst.cred = r->dst_cred;
	if (r->dst_cred != NULL)
		return true;
	msg = xasprintf("destination: [migrate] master_password_file: %s. What to do: the "
			"provider's administrator must fix the file, then run the job again", err);
	(void)mig_job_finish(db, r->id, "failed", &none, msg);
	log_error("event=migration_end job=%lld state=failed error=\"%s\"", (long long)r->id, msg);
	free(msg);
	free(err);
	return false;
}

static void *run_thread(void *arg)
{
	struct mig_run *r = arg;
	struct mig_mail m;
	struct mig_progress p;
	const char *state = "failed";
	char *err = NULL;
	bool stopped = false;
	struct db *db = schema_open(r->api->cfg, DB_OPEN_CHECK, &err);

	if (db == NULL) {
		log_error("event=migration_end job=%lld state=failed error=\"database: %s\"",
			  (long long)r->id, err);
		free(err);
		r->no_db = true;
		atomic_store(&r->over, true);
		return NULL;
	}
	if (r->contacts != NULL) {
		mig_contacts_job_run(r->contacts, db, r->id, &r->api->stopping);
		db_close(db);
		atomic_store(&r->over, true);
		return NULL;
	}
	if (!master_cred(r, db)) {
		mig_cred_free(r->src_cred);
		r->src_cred = NULL;
		db_close(db);
		atomic_store(&r->over, true);
		return NULL;
	}
	if (mig_mail_prepare(&m, &r->o) && mig_job_load(db, r->id, &m) == 0)
		stopped = run_workers(r, &m, db);
	/* the credentials are not needed any more: wipe them now, not at the reaping */
	mig_cred_free(r->src_cred);
	mig_cred_free(r->dst_cred);
	r->src_cred = r->dst_cred = NULL;
	scrub_mail(r, &m);
	(void)mig_job_save(db, r->id, &m);
	mig_mail_progress(&m, &p);
	(void)mig_job_beat(db, r->id, &p);
	state = end_state(r, &m, stopped);
	(void)mig_job_finish(db, r->id, state, &p, m.fatal);
	log_info("event=migration_end job=%lld state=%s messages=%llu bytes=%llu failed=%llu",
		 (long long)r->id, state, (unsigned long long)p.msgs_done,
		 (unsigned long long)p.bytes_done, (unsigned long long)p.failed);
	mig_mail_free(&m);
	db_close(db);
	atomic_store(&r->over, true);
	return NULL;
}

static void run_free(struct mig_run *r)
{
	mig_contacts_job_free(r->contacts);
	mig_cred_free(r->src_cred);
	mig_cred_free(r->dst_cred);
	free(r->o.src.host);
	free(r->o.src.port);
	free(r->o.src.user);
	free(r->o.dst.host);
	free(r->o.dst.port);
	free(r->o.dst.user);
	free(r);
}

/* Join the threads that ended; the number still running. */
static size_t reap(struct mig_api *api)
{
	struct mig_run **pp = &api->runs;
	size_t n = 0;

	while (*pp) {
		struct mig_run *r = *pp;

		if (atomic_load(&r->over)) {
			pthread_join(r->thread, NULL);
			if (r->no_db) {
				struct mig_progress none = { 0 };

				(void)mig_job_finish(api->db, r->id, "failed", &none,
						     "this node could not open the database for the "
						     "job. What to do: run the job again");
			}
			*pp = r->next;
			run_free(r);
		} else {
			n++;
			pp = &r->next;
		}
	}
	return n;
}

/* ---- answers ----------------------------------------------------------------------- */

static int send_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add_printf(evhttp_request_get_output_buffer(req), "%s\n", s);
	evhttp_send_reply(req, code, reason, NULL);
	free(s);
	json_decref(j);
	return code;
}

static int send_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	return send_json(req, code, reason, json_pack("{s:s}", "error", msg));
}

/* ---- POST ---------------------------------------------------------------------------- */

/* The job's endpoints from the body and [migrate]; false with *err. */
static bool run_endpoints(struct mig_run *r, const struct mig_api_body *b,
			  const struct pw_config *cfg, const char **err)
{
	const struct mig_preset *pre = mig_preset_find(b->source);
	struct mig_endpoint *s = &r->o.src, *d = &r->o.dst;

	if (pre != NULL) {
		s->host = xstrdup(pre->host);
		s->port = xstrdup(pre->port);
		s->tls = pre->tls;
		s->gmail = pre->gmail;
		s->hint = pre->hint;
		if (b->source_host &&
		    !mig_server_parse(b->source_host, pre->tls, &s->host, &s->port, &s->tls)) {
			*err = "source_host: not HOST[:PORT]";
			return false;
		}
	} else if (!mig_server_parse(b->source, IMAP_TLS_IMPLICIT, &s->host, &s->port, &s->tls)) {
		*err = "source: not a preset, imaps://HOST[:PORT] or imap://HOST[:PORT]";
		return false;
	}
	if (*cfg->migrate.destination == '\0' ||
	    !mig_server_parse(cfg->migrate.destination, IMAP_TLS_IMPLICIT, &d->host, &d->port,
			      &d->tls)) {
		*err = "[migrate] destination is not set on this node";
		return false;
	}
	s->user = xstrdup(b->source_user);
	s->auth = IMAP_AUTH_PASSWORD;
	if (b->token)
		s->auth = (b->oauth ? strcmp(b->oauth, "xoauth2") == 0 : (pre && pre->gmail)) ?
			  IMAP_AUTH_XOAUTH2 : IMAP_AUTH_OAUTHBEARER;
	d->user = xstrdup(b->destination_user);
	d->auth = IMAP_AUTH_PASSWORD;
	/* with [migrate] master_user the node logs in for the user: no password of theirs */
	if (*cfg->migrate.master_user == '\0' && b->destination_cred == NULL) {
		*err = "destination_password: required (this node has no [migrate] master_user)";
		return false;
	}
	if (*cfg->migrate.master_user != '\0' && strchr(b->destination_user, '*') != NULL) {
		*err = "destination_user: must not contain '*' (the master user separator)";
		return false;
	}
	return true;
}

static void run_options(struct mig_run *r, const struct pw_config *cfg)
{
	r->o.ca_file = cfg->migrate.ca_file[0] ? cfg->migrate.ca_file : NULL;
	r->o.connections = (int)cfg->migrate.connections;
	r->o.timeout = (int)cfg->migrate.timeout;
	r->o.max_message = cfg->migrate.max_message_size;
	r->o.hosts = cfg->migrate.hosts;
	r->o.allow_private = cfg->migrate.allow_private;
	r->o.src.cred = r->src_cred;
	r->o.dst.cred = r->dst_cred;
	if (*cfg->migrate.master_user != '\0') {
		/* Dovecot's master user login; the password is read from its file by the job's
		 * thread, and a user's password sent along is not kept */
		char *user = xasprintf("%s*%s", r->o.dst.user, cfg->migrate.master_user);

		free(r->o.dst.user);
		r->o.dst.user = user;
		mig_cred_free(r->dst_cred);
		r->dst_cred = NULL;
		r->o.dst.cred = NULL;
	}
}

/* The body, read and wiped where it lay; NULL after answering. */
static int read_body(struct evhttp_request *req, struct mig_api_body *b)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *err = NULL;
	unsigned char *data;
	int rc;

	if (len > MIG_API_MAX_BODY)
		return send_error(req, 413, "Payload Too Large", "the body is too large");
	data = evbuffer_pullup(in, -1);
	rc = mig_api_body_parse((const char *)data, len, b, &err);
	if (len > 0)
		OPENSSL_cleanse(data, len);
	evbuffer_drain(in, len);
	return rc < 0 ? send_error(req, 400, "Bad Request", err) : 0;
}

/* An answer made without a request: its status and JSON (the account API sends it). */
struct mig_answer {
	int status;
	json_t *json;
	bool retry_after;	/* 429: add Retry-After */
};

static int answer(struct mig_answer *a, int status, json_t *j)
{
	a->status = status;
	a->json = j;
	return status;
}

static int answer_error(struct mig_answer *a, int status, const char *msg)
{
	return answer(a, status, json_pack("{s:s}", "error", msg));
}

static int send_answer(struct evhttp_request *req, struct mig_answer *a)
{
	static const struct { int status; const char *reason; } reasons[] = {
		{ 200, "OK" }, { 202, "Accepted" }, { 400, "Bad Request" }, { 404, "Not Found" },
		{ 409, "Conflict" }, { 429, "Too Many Requests" }, { 503, "Service Unavailable" },
	};
	const char *reason = "Error";

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == a->status)
			reason = reasons[i].reason;
	if (a->retry_after)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
				  MIG_API_RETRY_AFTER);
	return send_json(req, a->status, reason, a->json);
}

/* The job to run: b->job checked (same user, not running, same kind), or a new one. */
static int64_t post_job(struct mig_api *api, const struct mig_api_body *b, struct mig_answer *a)
{
	char owner[MIG_API_MAX_NAME + 1];
	bool live = false;
	int found;

	if (b->job == 0) {
		int64_t id = mig_job_create(api->db, b->kind, b->destination_user);

		if (id < 0)
			answer_error(a, 503, "the database cannot be written");
		return id;
	}
	found = mig_job_owner(api->db, b->job, owner, sizeof(owner), &live, time(NULL));
	if (found < 0)
		answer_error(a, 503, "the database cannot be read");
	else if (found == 0 || strcmp(owner, b->destination_user) != 0)
		answer_error(a, 404, "no such job for this destination user");
	else if (live)
		answer_error(a, 409, "the job is running");
	else if ((found = mig_job_kind_is(api->db, b->job, b->kind)) != 1)
		found < 0 ? answer_error(a, 503, "the database cannot be read")
			  : answer_error(a, 409, "the job is of another kind");
	return a->json ? -1 : b->job;
}

/* Start the job of a parsed body (consumed): 202, or the refusal. */
static int post_body(struct mig_api *api, struct mig_api_body *b, struct mig_answer *a)
{
	struct mig_run *r;
	const char *err = NULL, *kind;
	int64_t id;

	kind = strcmp(b->kind, "contacts") == 0 ? "contacts" : "mail";
	if (reap(api) >= api->cfg->migrate.jobs) {
		mig_api_body_free(b);
		a->retry_after = true;
		return answer_error(a, 429, "this node runs as many migrations as [migrate] jobs "
				    "allows: try again later");
	}
	r = xcalloc(1, sizeof(*r));
	r->api = api;
	if (*kind == 'c' ? (r->contacts = mig_contacts_job_new(b, api->cfg, &err)) == NULL
			 : !run_endpoints(r, b, api->cfg, &err)) {
		mig_api_body_free(b);
		run_free(r);
		return answer_error(a, 400, err);
	}
	if ((id = post_job(api, b, a)) < 0 || mig_job_claim(api->db, id, api->cfg->server.node) < 0) {
		mig_api_body_free(b);
		run_free(r);
		return a->json ? a->status : answer_error(a, 503, "the database cannot be written");
	}
	r->id = id;
	r->src_cred = b->source_cred;
	r->dst_cred = b->destination_cred;
	b->source_cred = b->destination_cred = NULL;
	mig_api_body_free(b);
	run_options(r, api->cfg);
	if (pthread_create(&r->thread, NULL, run_thread, r) != 0)
		fatalx("cannot start a migration job");
	r->next = api->runs;
	api->runs = r;
	log_info("event=migration_start job=%lld kind=%s node=%s", (long long)id, kind,
		 api->cfg->server.node);
	return answer(a, 202, json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "running"));
}

static int handle_post(struct mig_api *api, struct evhttp_request *req)
{
	struct mig_api_body b;
	struct mig_answer a = { 0 };
	int sent;

	if ((sent = read_body(req, &b)) != 0)
		return sent;
	post_body(api, &b, &a);
	return send_answer(req, &a);
}

/* ---- GET and DELETE ------------------------------------------------------------------ */

/* A job's progress; with user (the account API) only a job of that user, else 404. */
static int get_job(struct mig_api *api, int64_t id, const char *user, struct mig_answer *a)
{
	bool dberr;
	json_t *j;

	if (user != NULL) {
		char owner[MIG_API_MAX_NAME + 1];
		bool live;
		int found = mig_job_owner(api->db, id, owner, sizeof(owner), &live, time(NULL));

		if (found < 0)
			return answer_error(a, 503, "the database cannot be read");
		if (found == 0 || strcasecmp(owner, user) != 0)
			return answer_error(a, 404, "no such job");
	}
	j = mig_job_json(api->db, id, time(NULL), &dberr);
	if (j == NULL)
		return dberr ? answer_error(a, 503, "the database cannot be read")
			     : answer_error(a, 404, "no such job");
	return answer(a, 200, j);
}

static int handle_get(struct mig_api *api, struct evhttp_request *req, int64_t id)
{
	struct mig_answer a = { 0 };

	get_job(api, id, NULL, &a);
	return send_answer(req, &a);
}

static int list_jobs(struct mig_api *api, const char *user, struct mig_answer *a)
{
	bool dberr;
	json_t *l = mig_job_list_json(api->db, user, time(NULL), &dberr);

	if (dberr) {
		json_decref(l);
		return answer_error(a, 503, "the database cannot be read");
	}
	return answer(a, 200, json_pack("{s:o}", "jobs", l));
}

static int handle_list(struct mig_api *api, struct evhttp_request *req, const char *query)
{
	char *user = query ? http_query_param(query, "user") : NULL;
	struct mig_answer a = { 0 };

	if (user == NULL || *user == '\0' || strlen(user) > MIG_API_MAX_NAME) {
		free(user);
		return send_error(req, 400, "Bad Request", "user: the destination user is required");
	}
	list_jobs(api, user, &a);
	free(user);
	return send_answer(req, &a);
}

/* Cancel a job; with user only a job of that user, else 404. */
static int cancel_job(struct mig_api *api, int64_t id, const char *user, struct mig_answer *a)
{
	int rc;

	if (user != NULL) {
		char owner[MIG_API_MAX_NAME + 1];
		bool live;
		int found = mig_job_owner(api->db, id, owner, sizeof(owner), &live, time(NULL));

		if (found < 0)
			return answer_error(a, 503, "the database cannot be read");
		if (found == 0 || strcasecmp(owner, user) != 0)
			return answer_error(a, 404, "no such job");
	}
	rc = mig_job_cancel(api->db, id);
	if (rc < 0)
		return answer_error(a, 503, "the database cannot be written");
	if (rc == 0)
		return answer_error(a, 404, "no such job");
	log_info("event=migration_cancel job=%lld", (long long)id);
	return answer(a, 202, json_pack("{s:I,s:s}", "id", (json_int_t)id, "state", "cancelling"));
}

static int handle_delete(struct mig_api *api, struct evhttp_request *req, int64_t id)
{
	struct mig_answer a = { 0 };

	cancel_job(api, id, NULL, &a);
	return send_answer(req, &a);
}

/* "/v1/migrations/123" -> 123; 0 when not a job path. */
static int64_t path_id(const char *rest)
{
	char *end;
	long long v;

	if (*rest != '/' || rest[1] < '1' || rest[1] > '9')
		return 0;
	errno = 0;
	v = strtoll(rest + 1, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

int mig_api_handle(struct mig_api *api, struct evhttp_request *req, const char *path,
		   const char *query)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *rest = path + strlen(MIG_API_PREFIX);
	int64_t id;

	(void)reap(api);	/* ended jobs joined, and a job that could not start recorded */
	if (*rest == '\0') {
		if (cmd == EVHTTP_REQ_POST)
			return handle_post(api, req);
		if (cmd == EVHTTP_REQ_GET)
			return handle_list(api, req, query);
		return send_error(req, 405, "Method Not Allowed", "GET or POST");
	}
	if ((id = path_id(rest)) == 0)
		return send_error(req, 404, "Not Found", "unknown endpoint");
	if (cmd == EVHTTP_REQ_GET)
		return handle_get(api, req, id);
	if (cmd == EVHTTP_REQ_DELETE)
		return handle_delete(api, req, id);
	return send_error(req, 405, "Method Not Allowed", "GET or DELETE");
}

/* ---- the account API: one destination user -------------------------------------- */

int mig_api_user_start(struct mig_api *api, const char *user, const char *body, size_t len,
		       json_t **out, bool *retry_after)
{
	struct mig_api_body b;
	struct mig_answer a = { 0 };
	const char *err = NULL;

	(void)reap(api);
	if (body_parse(body, len, &b, user, &err) < 0)
		answer_error(&a, len > MIG_API_MAX_BODY ? 413 : 400, err);
	else
		post_body(api, &b, &a);
	*out = a.json;
	*retry_after = a.retry_after;
	return a.status;
}

int mig_api_user_get(struct mig_api *api, const char *user, int64_t id, json_t **out)
{
	struct mig_answer a = { 0 };

	(void)reap(api);
	get_job(api, id, user, &a);
	*out = a.json;
	return a.status;
}

int mig_api_user_list(struct mig_api *api, const char *user, json_t **out)
{
	struct mig_answer a = { 0 };

	(void)reap(api);
	list_jobs(api, user, &a);
	*out = a.json;
	return a.status;
}

int mig_api_user_cancel(struct mig_api *api, const char *user, int64_t id, json_t **out)
{
	struct mig_answer a = { 0 };

	(void)reap(api);
	cancel_job(api, id, user, &a);
	*out = a.json;
	return a.status;
}

/* ---- start and stop ------------------------------------------------------------------ */

struct mig_api *mig_api_new(const struct pw_config *cfg, struct db *db)
{
	struct mig_api *api = xcalloc(1, sizeof(*api));
	struct rlimit no_core = { 0, 0 };

	api->cfg = cfg;
	api->db = db;
	/* serve may hold a user's passwords in memory: no core file, no ptrace by the user's
	 * other processes */
	(void)setrlimit(RLIMIT_CORE, &no_core);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	return api;
}

void mig_api_free(struct mig_api *api)
{
	if (api == NULL)
		return;
	atomic_store(&api->stopping, true);
	while (api->runs) {
		struct mig_run *r = api->runs;

		pthread_join(r->thread, NULL);
		api->runs = r->next;
		run_free(r);
	}
	free(api);
}
