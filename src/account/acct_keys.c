/*
 * acct_keys.c - the signed-in user's keys on the account API (see acct_keys.h).
 *
 * Listing reads the key directory's store on the loop and asks DNS (DNSSEC-validating,
 * libunbound on the loop) for each owner name; the answer goes out when every look-up is
 * back. A key counts as validating at a name when the answer is SECURE and holds exactly
 * the record the directory publishes for it.
 *
 * Publishing and removing use the directory's own functions, as "postwarden keys" does:
 * keydir_publish (keys_accept against the account's addresses: only the user's own, one
 * minimised copy per address) and keydir_unpublish, then one reconciliation. The DNS update
 * of a reconciliation blocks, so a job runs in a thread with its own database connection,
 * and the loop looks for its end with a short timer. What could not be updated stays
 * pending and serve's key directory timer retries it, as after the command line.
 */
#include "acct_keys.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "account.h"
#include "account/acct_http.h"
#include "dns.h"
#include "log.h"
#include "schema.h"
#include "xmalloc.h"

#define KEYS_POLL_MS 20		/* how often the loop looks for a finished job */

struct keys_job;

struct acct_keys {
	struct acct_http *http;		/* borrowed */
	struct dns *dns;		/* borrowed; NULL: nothing validates */
	struct keys_job *jobs;		/* publish and remove jobs in threads */
	size_t njobs;
};

/* ---- pure parts ------------------------------------------------------------------------ */

bool acct_keys_answer_matches(const struct dns_answer *a, const struct keydir_key *k)
{
	size_t pre = k->rrtype == KEYDIR_RR_SMIMEA ? 3 : 0;

	if (a == NULL || a->status != DNS_OK || a->security != DNS_SECURE ||
	    a->qtype != (int)k->rrtype)
		return false;
	for (size_t i = 0; i < a->nrr; i++) {
		const struct dns_rr *rr = &a->rrs[i];

		if (rr->len != k->len + pre)
			continue;
		/* S/MIME: "3 0 0" (DANE-EE, full certificate) before the DER, as the store makes */
		if (pre && (rr->data[0] != 3 || rr->data[1] != 0 || rr->data[2] != 0))
			continue;
		if (k->len == 0 || memcmp(rr->data + pre, k->data, k->len) == 0)
			return true;
	}
	return false;
}

/* Percent-encode all but RFC 3986 unreserved characters. */
static char *keys_pct(const char *s)
{
	char *out = xmalloc(strlen(s) * 3 + 1), *p = out;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			*p++ = (char)c;
		else
			p += sprintf(p, "%%%02X", c);
	}
	*p = '\0';
	return out;
}

char *acct_keys_wkd_url(const struct keydir_key *k)
{
	const char *at = strrchr(k->address, '@');
	char *local, *enc, *url;

	if (k->wkd_hash == NULL || *k->wkd_hash == '\0' || at == NULL)
		return NULL;
	local = xstrndup(k->address, (size_t)(at - k->address));
	enc = keys_pct(local);
	/* the advanced method: the host the directory's WKD tree is meant to be served as */
	url = xasprintf("https://openpgpkey.%s/.well-known/openpgpkey/%s/hu/%s?l=%s",
			k->wkd_domain, k->wkd_domain, k->wkd_hash, enc);
	free(enc);
	free(local);
	return url;
}

bool acct_keys_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 16 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* The entry of keys[i]'s key in a (by kind and fingerprint), or a new one. */
static json_t *keys_entry(json_t *a, const struct keydir_key *k)
{
	const char *kind = keys_kind_name(k->kind);
	size_t i;
	json_t *e;

	json_array_foreach(a, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "type")), kind) == 0 &&
		    strcasecmp(json_string_value(json_object_get(e, "fingerprint")),
			       k->fingerprint) == 0)
			return e;
	}
	e = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:[], s:[], s:b}", "id",
		      k->fingerprint, "type", kind, "fingerprint", k->fingerprint, "algorithm",
		      k->algorithm, "bits", (json_int_t)k->bits, "created", (json_int_t)k->created,
		      "expires", (json_int_t)k->expires, "published_at", (json_int_t)k->published,
		      "addresses", "published", "pending", 0);
	if (e == NULL)
		fatalx("cannot encode a key");
	json_array_append_new(a, e);
	return e;
}

static void keys_add_dns(json_t *pub, const struct keydir_key *k, const char *name, bool valid)
{
	json_array_append_new(pub, json_pack("{s:s, s:s, s:s, s:s, s:b}", "kind", "dns", "type",
					     keydir_rrtype_name(k->rrtype), "name", name, "address",
					     k->address, "validates", valid));
}

json_t *acct_keys_json(struct keydir_key *const *keys, size_t n, const bool *valid)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		const struct keydir_key *k = keys[i];
		json_t *e = keys_entry(a, k), *pub = json_object_get(e, "published");
		char *url = acct_keys_wkd_url(k);

		json_array_append_new(json_object_get(e, "addresses"), json_string(k->address));
		keys_add_dns(pub, k, k->owner, valid && valid[2 * i]);
		if (k->owner_lc && *k->owner_lc)
			keys_add_dns(pub, k, k->owner_lc, valid && valid[2 * i + 1]);
		if (url)
			json_array_append_new(pub, json_pack("{s:s, s:s, s:s}", "kind", "wkd", "url",
							     url, "address", k->address));
		free(url);
		if (k->pending) {
			json_object_set_new(e, "pending", json_true());
			if (k->error)
				json_object_set_new(e, "error", json_string(k->error));
		}
	}
	return json_pack("{s:o}", "keys", a);
}

/* ---- the user's copies ------------------------------------------------------------------ */

/* Every copy published for the account's addresses; NULL with *n 0 when none. */
static struct keydir_key **keys_of(struct db *db, const struct account *acct, size_t *n)
{
	struct keydir_key **all = NULL;

	*n = 0;
	for (size_t i = 0; i <= acct->naliases; i++) {
		const char *addr = i == 0 ? acct->primary : acct->aliases[i - 1];
		size_t m;
		struct keydir_key **l = keydir_store_list(db, addr, &m);

		if (m > 0) {
			all = xreallocarray(all, *n + m, sizeof(*all));
			memcpy(all + *n, l, m * sizeof(*l));
			*n += m;
		}
		free(l);
	}
	return all;
}

/* The signed-in user's account; NULL after answering (no account: 404; database: 503). */
static struct account *keys_account(struct acct_req *req)
{
	struct db *db = acct_http_db(acct_req_server(req));
	const struct acct_who *who = acct_req_who(req);
	struct account *acct = account_find(db, who->address);

	if (acct == NULL)
		acct_reply_error(req, db_error(db) != DB_OK ? 503 : 404,
				 db_error(db) != DB_OK ? "the database cannot be read now: try again "
				 "in a minute" : "postwarden has no account for your address: ask "
				 "your provider to add it");
	return acct;
}

/* ---- GET: list, with one DNS look-up per name --------------------------------------- */

/* One look-up: the list and the slot it fills. */
struct keys_lookup {
	struct keys_list *l;
	size_t slot;
	int handle;		/* -1: not running */
};

struct keys_list {
	struct acct_keys *ak;
	struct acct_req *req;
	struct keydir_key **keys;
	size_t n;
	bool *valid;		/* 2 per copy: owner, owner_lc */
	struct keys_lookup *lookups;	/* 2 per copy */
	size_t outstanding;
};

static void keys_list_free(struct keys_list *l)
{
	keydir_key_list_free(l->keys, l->n);
	free(l->valid);
	free(l->lookups);
	free(l);
}

static void keys_list_reply(struct keys_list *l)
{
	acct_reply_json(l->req, 200, acct_keys_json(l->keys, l->n, l->valid));
	keys_list_free(l);
}

static void keys_lookup_cb(struct dns_answer *a, void *arg)
{
	struct keys_lookup *lk = arg;
	struct keys_list *l = lk->l;

	l->valid[lk->slot] = acct_keys_answer_matches(a, l->keys[lk->slot / 2]);
	lk->handle = -1;
	dns_answer_free(a);
	if (--l->outstanding == 0)
		keys_list_reply(l);
}

/* The server stops before every answer is back: cancel the look-ups. */
static void keys_list_abort(struct acct_req *req, void *arg)
{
	struct keys_list *l = arg;

	for (size_t i = 0; i < 2 * l->n; i++)
		if (l->lookups[i].handle >= 0)
			dns_cancel(l->ak->dns, l->lookups[i].handle);
	keys_list_free(l);
}

static void keys_list_start(struct keys_list *l)
{
	for (size_t i = 0; i < 2 * l->n; i++) {
		const struct keydir_key *k = l->keys[i / 2];
		const char *name = i % 2 ? k->owner_lc : k->owner;
		struct keys_lookup *lk = &l->lookups[i];

		*lk = (struct keys_lookup){ .l = l, .slot = i, .handle = -1 };
		if (l->ak->dns == NULL || name == NULL || *name == '\0')
			continue;
		l->outstanding++;
		if ((lk->handle = dns_resolve(l->ak->dns, name, k->rrtype, keys_lookup_cb, lk)) < 0)
			l->outstanding--;
	}
}

static void keys_get(struct acct_keys *ak, struct acct_req *req)
{
	struct db *db = acct_http_db(acct_req_server(req));
	struct account *acct = keys_account(req);
	struct keys_list *l;

	if (acct == NULL)
		return;
	l = xcalloc(1, sizeof(*l));
	l->ak = ak;
	l->req = req;
	l->keys = keys_of(db, acct, &l->n);
	account_free(acct);
	l->valid = xcalloc(2 * l->n + 1, sizeof(*l->valid));
	l->lookups = xcalloc(2 * l->n + 1, sizeof(*l->lookups));
	/* counted as one until every look-up is started, so none can answer early */
	l->outstanding = 1;
	keys_list_start(l);
	if (--l->outstanding == 0) {
		keys_list_reply(l);
		return;
	}
	acct_req_on_abort(req, keys_list_abort, l);
}

/* ---- POST and DELETE: a job in a thread ------------------------------------------------ */

struct keys_job {
	struct acct_keys *ak;
	struct acct_req *req;		/* NULL once aborted */
	const struct pw_config *cfg;	/* borrowed */
	struct account *acct;
	bool remove;
	char *fingerprint;		/* remove: the key */
	uint8_t *data;			/* publish: the key as given */
	size_t len;
	/* results, written by the thread */
	int rc;				/* publish: keydir_publish's; remove: copies removed */
	char *msg;
	struct keys_info info;
	struct keydir_report rep;
	pthread_t thread;
	atomic_bool done;
	struct event *poll;
	struct keys_job *next;
};

static void *keys_job_thread(void *arg)
{
	struct keys_job *j = arg;
	char *err = NULL;
	struct db *db = schema_open(j->cfg, schema_serve_mode(j->cfg), &err);
	int64_t now = (int64_t)time(NULL);

	if (db == NULL) {
		j->rc = -1;
		j->msg = xasprintf("the database cannot be opened now (%s): try again in a minute", err);
		free(err);
		atomic_store(&j->done, true);
		return NULL;
	}
	struct keydir kd = { .cfg = j->cfg, .db = db };
	if (j->remove) {
		j->rc = 0;
		for (size_t i = 0; i <= j->acct->naliases; i++)
			j->rc += (int)keydir_unpublish(&kd, i == 0 ? j->acct->primary
							      : j->acct->aliases[i - 1],
						       j->fingerprint);
		if (j->rc == 0 && db_error(db) != DB_OK) {
			j->rc = -1;
			j->msg = xasprintf("the database cannot be changed now (%s): try again in "
					   "a minute", db_errmsg(db));
		}
	} else {
		j->rc = keydir_publish(&kd, j->acct, j->data, j->len, now, &j->info, &j->msg);
	}
	if (j->rc > 0 || (j->rc == 0 && !j->remove))
		(void)keydir_reconcile(&kd, false, now, &j->rep);
	db_close(db);
	atomic_store(&j->done, true);
	return NULL;
}

static void keys_job_free(struct keys_job *j)
{
	if (j->poll)
		event_free(j->poll);
	account_free(j->acct);
	free(j->fingerprint);
	free(j->data);
	free(j->msg);
	keys_info_free(&j->info);
	keydir_report_free(&j->rep);
	free(j);
}

static void keys_job_unlink(struct keys_job *j)
{
	struct acct_keys *ak = j->ak;

	for (struct keys_job **pp = &ak->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			ak->njobs--;
			return;
		}
	}
}

static json_t *keys_job_result(struct keys_job *j)
{
	json_t *o;

	if (j->remove)
		o = json_pack("{s:s, s:i}", "id", j->fingerprint, "removed", j->rc);
	else {
		json_t *addrs = json_array();

		for (size_t i = 0; i < j->info.ncopies; i++)
			json_array_append_new(addrs, json_string(j->info.copies[i].address));
		o = json_pack("{s:s, s:s, s:s, s:o}", "id", j->info.fingerprint, "type",
			      keys_kind_name(j->info.kind), "fingerprint", j->info.fingerprint,
			      "addresses", addrs);
	}
	/* stored either way; what DNS did not take yet, serve's timer retries */
	json_object_set_new(o, "pending", json_boolean(j->rep.failed > 0));
	if (j->rep.error)
		json_object_set_new(o, "dns_error", json_string(j->rep.error));
	return o;
}

static void keys_job_answer(struct keys_job *j)
{
	if (j->rc < 0)	/* a refused key (400), or a database that could not be changed */
		acct_reply_error_code(j->req, j->remove ? 503 : 400,
				      j->remove ? "unavailable" : "key_refused",
				      j->msg ? j->msg : "the key was refused");
	else if (j->remove && j->rc == 0)
		acct_reply_error_code(j->req, 404, "key_not_yours",
				      "no such key is published for your addresses");
	else
		acct_reply_json(j->req, j->remove ? 200 : 201, keys_job_result(j));
}

static void keys_job_poll(evutil_socket_t fd, short what, void *arg)
{
	struct keys_job *j = arg;
	struct timeval tv = { 0, KEYS_POLL_MS * 1000 };

	if (!atomic_load(&j->done)) {
		event_add(j->poll, &tv);
		return;
	}
	pthread_join(j->thread, NULL);
	keys_job_unlink(j);
	if (j->req != NULL)
		keys_job_answer(j);
	keys_job_free(j);
}

static void keys_job_abort(struct acct_req *req, void *arg)
{
	struct keys_job *j = arg;

	j->req = NULL;	/* the thread finishes; the poll or acct_keys_free reaps it */
}

/* Start j in a thread (ownership passes to the job list); answers 429 when too many run. */
static void keys_job_start(struct acct_keys *ak, struct keys_job *j)
{
	struct timeval tv = { 0, KEYS_POLL_MS * 1000 };

	if (ak->njobs >= ACCT_KEYS_MAX_JOBS) {
		acct_req_add_header(j->req, "Retry-After", "5");
		acct_reply_error_code(j->req, 429, "busy",
				      "too many key changes at once: try again in a moment");
		keys_job_free(j);
		return;
	}
	j->ak = ak;
	j->cfg = acct_http_cfg(acct_req_server(j->req));
	atomic_init(&j->done, false);
	j->poll = evtimer_new(acct_http_base(ak->http), keys_job_poll, j);
	if (j->poll == NULL || pthread_create(&j->thread, NULL, keys_job_thread, j) != 0)
		fatalx("cannot start a key job");
	j->next = ak->jobs;
	ak->jobs = j;
	ak->njobs++;
	acct_req_on_abort(j->req, keys_job_abort, j);
	event_add(j->poll, &tv);
}

static void keys_post(struct acct_keys *ak, struct acct_req *req)
{
	json_t *body = acct_req_json(req, 0), *key;
	struct keys_job *j;
	struct account *acct;

	if (body == NULL)
		return;
	key = json_object_get(body, "key");
	if (!json_is_string(key) || json_string_length(key) == 0) {
		json_decref(body);
		acct_reply_error(req, 400, "key: give your public key as text (an armored OpenPGP "
				 "key or a PEM certificate)");
		return;
	}
	if ((acct = keys_account(req)) == NULL) {
		json_decref(body);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->req = req;
	j->acct = acct;
	j->len = json_string_length(key);
	j->data = xmemdup(json_string_value(key), j->len);
	json_decref(body);
	log_info("event=account_key_publish address=%s bytes=%zu", acct->primary, j->len);
	keys_job_start(ak, j);
}

/* Is a copy of fingerprint published for one of acct's addresses (the loop's read)? */
static bool keys_owned(struct db *db, const struct account *acct, const char *fingerprint)
{
	size_t n;
	struct keydir_key **keys = keys_of(db, acct, &n);
	bool found = false;

	for (size_t i = 0; i < n && !found; i++)
		found = strcasecmp(keys[i]->fingerprint, fingerprint) == 0;
	keydir_key_list_free(keys, n);
	return found;
}

static void keys_delete(struct acct_keys *ak, struct acct_req *req, const char *id)
{
	struct db *db = acct_http_db(acct_req_server(req));
	struct account *acct;
	struct keys_job *j;

	if (!acct_keys_id_ok(id)) {
		acct_reply_error(req, 404, "no such key: the ID is a key's fingerprint");
		return;
	}
	if ((acct = keys_account(req)) == NULL)
		return;
	/* another user's key is as unknown as a key that does not exist */
	if (!keys_owned(db, acct, id)) {
		account_free(acct);
		acct_reply_error_code(req, 404, "key_not_yours",
				      "no such key is published for your addresses");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->req = req;
	j->acct = acct;
	j->remove = true;
	j->fingerprint = xstrdup(id);
	log_info("event=account_key_remove address=%s fingerprint=%s", acct->primary, id);
	keys_job_start(ak, j);
}

/* ---- routes ------------------------------------------------------------------------------ */

static void keys_handle(struct acct_req *req, void *arg)
{
	struct acct_keys *ak = arg;
	const char *rest = acct_req_rest(req);
	enum acct_method m = acct_req_method(req);

	if (*rest == '\0' && (m == ACCT_GET || m == ACCT_HEAD))
		keys_get(ak, req);
	else if (*rest == '\0' && m == ACCT_POST)
		keys_post(ak, req);
	else if (*rest == '/' && rest[1] != '\0' && strchr(rest + 1, '/') == NULL &&
		 m == ACCT_DELETE)
		keys_delete(ak, req, rest + 1);
	else if (*rest == '/' && rest[1] != '\0' && strchr(rest + 1, '/') == NULL)
		acct_reply_error(req, 405, "a key is removed with DELETE");
	else if (*rest == '\0')
		acct_reply_error(req, 405, "list keys with GET, publish one with POST");
	else
		acct_reply_error(req, 404, "no such endpoint");
}

struct acct_keys *acct_keys_register(struct acct_http *h, struct dns *dns)
{
	struct acct_keys *ak = xcalloc(1, sizeof(*ak));

	ak->http = h;
	ak->dns = dns;
	acct_route(h, ACCT_GET | ACCT_POST | ACCT_DELETE, "/v1/keys", 0, keys_handle, ak);
	return ak;
}

void acct_keys_free(struct acct_keys *ak)
{
	if (ak == NULL)
		return;
	while (ak->jobs) {
		struct keys_job *j = ak->jobs;

		ak->jobs = j->next;
		pthread_join(j->thread, NULL);
		keys_job_free(j);
	}
	free(ak);
}
