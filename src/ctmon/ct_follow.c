/*
 * ct_follow.c - one verified round over an RFC 6962 log; see ct_follow.h.
 *
 * The round is a chain of requests, one at a time: get-sth; get-sth-consistency when the
 * tree grew; when the round starts at an index k > 0 with no stored compact range (the
 * first contact starting at the log's end, or a backfill from k), entry k-1 and its
 * inclusion proof, whose left-hand siblings are the subtrees of the first k-1 leaves;
 * then get-entries until the signed size. Findings are kept in memory until the entries
 * hashed to the signed root: nothing is reported from entries that did not.
 */
#include "ct_follow.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ctmon/ct_entry.h"
#include "ctmon/ct_judge.h"
#include "ctmon/ct_merkle.h"
#include "ctmon/ct_names.h"
#include "ctmon/ct_sth.h"
#include "ctmon/ct_store.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define CT_STH_TIMEOUT_MS	15000
#define CT_ENTRIES_TIMEOUT_MS	60000
#define CT_ENTRIES_BODY_MAX	(16 * 1024 * 1024)
#define CT_PROOF_BODY_MAX	(64 * 1024)
#define CT_DEFAULT_BATCH	256
#define CT_RETRIES		4	/* a request answered 429, 5xx or not at all */
#define CT_RETRY_AFTER_MAX	60	/* longer Retry-After: the round ends, the next one asks */

/* Owned copies of a finding's texts (struct ct_finding borrows them). */
struct ct_held {
	struct ct_finding f;
	char *names, *issuer, *serial, *spki, *reason;
	char *issuer_key;		/* hex SHA-256 of the issuer's SPKI, or NULL */
	char *issuer_fp;		/* static X.509 entry: the issuer to fetch, hex */
	char **caa_names;		/* watched DNS names, for the CAA check */
	size_t ncaa_names;
};

/* Issuers of a static-ct-api log fetched in this round: fingerprint -> key hash. */
struct ct_issuer_key {
	char fp[65], key[65];
};

struct ct_follow {
	struct ct_follow_opts o;
	ct_round_cb cb;
	void *arg;
	char log_id[45];
	char *base;			/* the log's URL, ending in '/' */
	struct ct_log_pos pos;		/* as stored when the round began */
	struct ct_sth sth;		/* the tree head this round verified */
	struct ct_merkle_stream stream;	/* leaves 0 .. next-1, once have_range */
	bool have_range;		/* stream is the compact range of the first next leaves */
	uint64_t next;			/* next entry to fetch; UINT64_MAX: the head's size */
	uint8_t start_leaf[CT_HASH_LEN];	/* entry next-1, while its proof is fetched */
	struct ct_held *found;
	size_t nfound;
	struct ct_round_report rep;
	int req;			/* the request in flight (http_cancel), or -1 */
	/* the request, as it is sent again after a 429, a 5xx or a failure to connect */
	char *path;
	long timeout_ms;
	size_t max_body;
	http_cb on_answer;
	unsigned tries;
	struct event *retry_ev;
	bool tiles;			/* a static-ct-api log: checkpoint and tiles */
	int range_bit;			/* static start: the next bit of next to fill, or -1 */
	uint64_t range_at;		/* static start: the first leaf of that subtree */
	/* judging (ct_judge): */
	const struct ct_raw_entry *raw;	/* get-entries: the entry being matched (extra_data) */
	struct ct_issuer_key *issuers;	/* static-ct-api issuers fetched this round */
	size_t nissuers;
	struct ct_judge_caa *caa;	/* the round's CAA answers, while they are looked up */
};

void ct_log_id_text(const struct ct_log *log, char buf[45])
{
	EVP_EncodeBlock((unsigned char *)buf, log->log_id, CT_LOG_ID_LEN);
}

/* ---- ending the round --------------------------------------------------------------- */

static void ct_follow_free(struct ct_follow *f)
{
	for (size_t i = 0; i < f->nfound; i++) {
		free(f->found[i].names);
		free(f->found[i].issuer);
		free(f->found[i].serial);
		free(f->found[i].spki);
		free(f->found[i].reason);
		free(f->found[i].issuer_key);
		free(f->found[i].issuer_fp);
		ct_judge_strv_free(f->found[i].caa_names, f->found[i].ncaa_names);
	}
	free(f->found);
	free(f->issuers);
	ct_judge_caa_free(f->caa);
	free(f->base);
	free(f->path);
	if (f->retry_ev != NULL)
		event_free(f->retry_ev);
	ct_log_pos_free(&f->pos);
	ct_sth_clear(&f->sth);
	free(f->rep.message);
	free(f);
}

static void ct_follow_end(struct ct_follow *f)
{
	f->cb(&f->rep, f->arg);
	ct_follow_free(f);
}

/* The round cannot go on now (network, a bad answer, the database): tried again later. */
static void ct_follow_error(struct ct_follow *f, char *message)
{
	log_warn("event=ct_log_error log=%s url=%s error=\"%s\"", f->log_id, f->base, message);
	f->rep.result = CT_ROUND_ERROR;
	f->rep.message = message;
	ct_follow_end(f);
}

/* The log misbehaved: store the alert with its evidence; the log is not advanced. */
static void ct_follow_alert(struct ct_follow *f, const char *kind, char *message,
			    const char *evidence)
{
	log_warn("event=ct_alert kind=%s log=%s url=%s message=\"%s\"", kind, f->log_id, f->base,
		 message);
	ct_store_alert_add(f->o.db, kind, f->log_id, message, evidence);
	f->rep.result = CT_ROUND_ALERT;
	f->rep.alert = kind;
	f->rep.message = message;
	ct_follow_end(f);
}

/* ---- requests ----------------------------------------------------------------------- */

static void ct_follow_step(struct ct_follow *f);

/* Send the current request (again). */
static void ct_follow_send(struct ct_follow *f)
{
	struct http_request_opts ro = { .timeout_ms = f->timeout_ms, .max_body = f->max_body,
					.decode_gzip = true };
	char *url = xasprintf("%s%s", f->base, f->path);

	f->req = http_get(f->o.http, url, &ro, f->on_answer, f);
	free(url);
	if (f->req < 0)
		ct_follow_error(f, xstrdup("the request could not be started"));
}

static void ct_follow_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	ct_follow_send(arg);
}

/* GET base + path; the response goes to cb; a request that cannot start ends the round. */
static void ct_follow_get(struct ct_follow *f, const char *path, long timeout_ms,
			  size_t max_body, http_cb cb)
{
	free(f->path);
	f->path = xstrdup(path);
	f->timeout_ms = timeout_ms;
	f->max_body = max_body;
	f->on_answer = cb;
	f->tries = 0;
	ct_follow_send(f);
}

/*
 * A 429, a 5xx or no answer: ask again after Retry-After (when the log says how long, and
 * it is not long) or after 1, 2, 4 s; true when that is arranged.
 */
static bool ct_follow_retry(struct ct_follow *f, const struct http_response *r)
{
	bool transient = r->result == HTTP_OK ? r->status == 429 || r->status >= 500
			 : r->result == HTTP_ERR_TIMEOUT || r->result == HTTP_ERR_CONNECT;
	struct timeval tv = { (time_t)1 << f->tries, 0 };

	if (!transient || f->tries + 1 >= CT_RETRIES || f->o.base == NULL ||
	    r->retry_after > CT_RETRY_AFTER_MAX)
		return false;
	if (r->retry_after > 0)
		tv.tv_sec = r->retry_after;
	if (f->retry_ev == NULL && (f->retry_ev = evtimer_new(f->o.base, ct_follow_retry_cb,
							      f)) == NULL)
		fatalx("cannot create a timer");
	f->tries++;
	f->req = -1;
	log_debug("event=ct_retry log=%s path=%s status=%ld wait=%lds", f->log_id, f->path,
		  r->status, (long)tv.tv_sec);
	evtimer_add(f->retry_ev, &tv);
	return true;
}

/* A response that is not a 200 with a body: asked again later, or the round's error. */
static bool ct_follow_answer_ok(struct ct_follow *f, struct http_response *r, const char *what)
{
	if (r->result == HTTP_OK && r->status == 200)
		return true;
	if (ct_follow_retry(f, r))
		return false;
	if (r->result != HTTP_OK)
		ct_follow_error(f, xasprintf("%s: %s", what, r->error ? r->error :
					     http_result_str(r->result)));
	else
		ct_follow_error(f, xasprintf("%s: HTTP status %ld", what, r->status));
	return false;
}

static char *ct_hex(const uint8_t *p, size_t n)
{
	char *s = xmalloc(2 * n + 1);

	hex_encode(p, n, s);
	return s;
}

/* Two signed tree heads as the evidence of an alert (JSON text; caller frees). */
static char *ct_heads_evidence(const struct ct_log_pos *old, const struct ct_sth *new_head,
			       const char *body)
{
	char *old_root = ct_hex(old->root_hash, CT_HASH_LEN);
	char *new_root = ct_hex(new_head->root_hash, CT_HASH_LEN);
	json_t *o = json_pack("{s:{s:I, s:s, s:I}, s:{s:I, s:s, s:I}, s:s}",
		"verified", "tree_size", (json_int_t)old->tree_size, "root_hash", old_root,
		"timestamp", (json_int_t)old->sth_timestamp,
		"received", "tree_size", (json_int_t)new_head->tree_size, "root_hash", new_root,
		"timestamp", (json_int_t)new_head->timestamp, "get_sth", body ? body : "");
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	free(old_root);
	free(new_root);
	return text;
}

/* ---- the tree head ------------------------------------------------------------------ */

static void ct_on_consistency(struct http_response *r, void *arg);

/* Compare the new head with the verified one; false when the round ended (an alert). */
static bool ct_follow_compare_heads(struct ct_follow *f, const char *body)
{
	const struct ct_log_pos *p = &f->pos;
	char *ev;

	if (!p->has_root)
		return true;
	if (f->sth.tree_size < (uint64_t)p->tree_size) {
		ev = ct_heads_evidence(p, &f->sth, body);
		ct_follow_alert(f, "shrunk", xasprintf("the log's tree shrank from %" PRId64
			" to %" PRIu64 " entries", p->tree_size, f->sth.tree_size), ev);
		free(ev);
		return false;
	}
	if (f->sth.tree_size == (uint64_t)p->tree_size &&
	    memcmp(f->sth.root_hash, p->root_hash, CT_HASH_LEN) != 0) {
		ev = ct_heads_evidence(p, &f->sth, body);
		ct_follow_alert(f, "split_view", xasprintf("two different trees of %" PRIu64
			" entries, both signed by the log", f->sth.tree_size), ev);
		free(ev);
		return false;
	}
	return true;
}

static void ct_on_sth(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	char *err = NULL;

	if (!ct_follow_answer_ok(f, r, "get-sth")) {
		http_response_free(r);
		return;
	}
	if (ct_sth_parse(r->body, r->len, &f->sth, &err) < 0) {
		ct_follow_error(f, xasprintf("get-sth: %s", err));
		free(err);
		http_response_free(r);
		return;
	}
	if (ct_sth_verify(&f->sth, f->o.log, &err) < 0) {
		ct_follow_alert(f, "bad_signature", xasprintf("the tree head's signature does not "
			"verify with the log's key: %s", err), r->body);
		free(err);
		http_response_free(r);
		return;
	}
	f->rep.tree_size = f->sth.tree_size;
	if (!ct_follow_compare_heads(f, r->body)) {
		http_response_free(r);
		return;
	}
	if (f->pos.has_root && f->sth.tree_size > (uint64_t)f->pos.tree_size) {
		char *path = xasprintf("ct/v1/get-sth-consistency?first=%" PRId64 "&second=%" PRIu64,
				       f->pos.tree_size, f->sth.tree_size);

		http_response_free(r);
		ct_follow_get(f, path, CT_STH_TIMEOUT_MS, CT_PROOF_BODY_MAX, ct_on_consistency);
		free(path);
		return;
	}
	http_response_free(r);
	ct_follow_step(f);
}

static void ct_on_consistency(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_consistency c = { 0 };
	char *err = NULL, *ev;
	bool ok;

	if (!ct_follow_answer_ok(f, r, "get-sth-consistency")) {
		http_response_free(r);
		return;
	}
	if (ct_consistency_parse(r->body, r->len, &c, &err) < 0) {
		ev = ct_heads_evidence(&f->pos, &f->sth, r->body);
		ct_follow_alert(f, "inconsistent", xasprintf("the consistency proof is malformed: %s",
								err), ev);
		free(ev);
		free(err);
		http_response_free(r);
		return;
	}
	ok = ct_merkle_verify_consistency((uint64_t)f->pos.tree_size, f->sth.tree_size,
					  f->pos.root_hash, f->sth.root_hash,
					  (const uint8_t *)c.hashes, c.nhashes);
	ct_consistency_clear(&c);
	if (!ok) {
		ev = ct_heads_evidence(&f->pos, &f->sth, r->body);
		ct_follow_alert(f, "inconsistent", xasprintf("the tree of %" PRIu64 " entries is not "
			"an extension of the verified tree of %" PRId64, f->sth.tree_size,
			f->pos.tree_size), ev);
		free(ev);
		http_response_free(r);
		return;
	}
	http_response_free(r);
	ct_follow_step(f);
}

/* ---- starting inside the log -------------------------------------------------------- */

static void ct_on_start_entry(struct http_response *r, void *arg);
static void ct_on_start_proof(struct http_response *r, void *arg);

/* The stream must start at index k > 0: fetch entry k-1, then its proof. */
static void ct_follow_start_inside(struct ct_follow *f)
{
	char *path = xasprintf("ct/v1/get-entries?start=%" PRIu64 "&end=%" PRIu64, f->next - 1,
			       f->next - 1);

	ct_follow_get(f, path, CT_ENTRIES_TIMEOUT_MS, CT_ENTRIES_BODY_MAX, ct_on_start_entry);
	free(path);
}

static void ct_on_start_entry(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_entries es = { 0 };
	struct ct_entry e;
	const char *perr = NULL;
	char *err = NULL, b64[45], *enc, *path;

	if (!ct_follow_answer_ok(f, r, "get-entries")) {
		http_response_free(r);
		return;
	}
	if (ct_entries_parse(r->body, r->len, CT_ENTRIES_BODY_MAX, &es, &err) < 0 ||
	    es.nentries < 1 ||
	    ct_leaf_parse(es.entries[0].leaf_input, es.entries[0].leaf_input_len, &e, &perr) < 0) {
		ct_follow_error(f, xasprintf("get-entries: %s", err ? err : perr ? perr :
					     "no entry in the answer"));
		free(err);
		ct_entries_clear(&es);
		http_response_free(r);
		return;
	}
	ct_entry_leaf_hash(&e, f->start_leaf);
	ct_entries_clear(&es);
	http_response_free(r);
	EVP_EncodeBlock((unsigned char *)b64, f->start_leaf, CT_HASH_LEN);
	enc = http_urlencode(b64);
	path = xasprintf("ct/v1/get-proof-by-hash?hash=%s&tree_size=%" PRIu64, enc,
			 f->sth.tree_size);
	ct_follow_get(f, path, CT_STH_TIMEOUT_MS, CT_PROOF_BODY_MAX, ct_on_start_proof);
	free(path);
	free(enc);
}

static void ct_on_start_proof(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_consistency path = { 0 };
	uint64_t index = 0, k = f->next;
	char *err = NULL;
	bool ok;

	if (!ct_follow_answer_ok(f, r, "get-proof-by-hash")) {
		http_response_free(r);
		return;
	}
	ok = ct_proof_parse(r->body, r->len, &index, &path, &err) == 0 && index == k - 1 &&
	     ct_merkle_verify_inclusion(index, f->sth.tree_size, f->start_leaf,
					(const uint8_t *)path.hashes, path.nhashes,
					f->sth.root_hash) &&
	     ct_merkle_stream_from_inclusion(&f->stream, index, f->sth.tree_size,
					     (const uint8_t *)path.hashes, path.nhashes) &&
	     ct_merkle_stream_append(&f->stream, f->start_leaf);
	ct_consistency_clear(&path);
	http_response_free(r);
	if (!ok) {
		ct_follow_error(f, xasprintf("cannot start at entry %" PRIu64 ": no valid inclusion "
					     "proof for entry %" PRIu64 "%s%s", k, k - 1,
					     err ? ": " : "", err ? err : ""));
		free(err);
		return;
	}
	f->have_range = true;
	ct_follow_step(f);
}

/* ---- entries ------------------------------------------------------------------------ */

static void ct_on_entries(struct http_response *r, void *arg);

/*
 * Entry index e matched the watch list: keep it as a finding of this round. It is judged
 * when the round's entries hashed to the signed root (ct_follow_judge), once the issuers
 * and CAA answers it needs are known.
 */
static void ct_keep(struct ct_follow *f, uint64_t index, const struct ct_entry *e,
		    const struct ct_cert *c)
{
	uint8_t spki[CT_HASH_LEN];
	char key[65];
	struct ct_held *h;
	const char *err;

	f->found = xreallocarray(f->found, f->nfound + 1, sizeof(*f->found));
	h = &f->found[f->nfound++];
	memset(h, 0, sizeof(*h));
	if (ct_cert_identity(e->der, e->der_len, h->f.identity, &err) < 0)
		memset(h->f.identity, 0, sizeof(h->f.identity));
	EVP_Digest(c->spki, c->spki_len, spki, NULL, EVP_sha256(), NULL);
	h->spki = ct_hex(spki, CT_HASH_LEN);
	h->serial = ct_hex(c->serial, c->serial_len);
	h->issuer = ct_judge_issuer_text(c);
	h->names = ct_judge_names_text(c);
	h->ncaa_names = ct_judge_caa_names(f->o.watch, c, &h->caa_names);
	/* The issuer's key: a precertificate entry carries its hash; for a certificate it is
	 * the first of the chain (RFC 6962 extra_data), or fetched by fingerprint (static). */
	if (e->issuer_key_hash != NULL)
		h->issuer_key = ct_hex(e->issuer_key_hash, CT_KEYHASH_LEN);
	else if (f->raw != NULL && ct_judge_chain_issuer_key(f->raw->extra_data,
							      f->raw->extra_data_len, key) == 0)
		h->issuer_key = xstrdup(key);
	else if (e->chain != NULL && e->chain_count > 0)
		h->issuer_fp = ct_hex(e->chain, CT_HASH_LEN);
	h->f.names = h->names;
	h->f.issuer = h->issuer;
	h->f.serial = h->serial;
	h->f.spki_sha256 = h->spki;
	h->f.not_before = (int64_t)c->not_before;
	h->f.not_after = (int64_t)c->not_after;
	h->f.index = (int64_t)index;
	h->f.precert = e->type == CT_ENTRY_PRECERT;
}

static void ct_follow_fetch_entries(struct ct_follow *f)
{
	uint64_t last = f->next + f->o.batch - 1;
	char *path;

	if (last >= f->sth.tree_size)
		last = f->sth.tree_size - 1;
	path = xasprintf("ct/v1/get-entries?start=%" PRIu64 "&end=%" PRIu64, f->next, last);
	ct_follow_get(f, path, CT_ENTRIES_TIMEOUT_MS, CT_ENTRIES_BODY_MAX, ct_on_entries);
	free(path);
}

/* Hash entry next into the stream and match its certificate. */
static void ct_follow_leaf(struct ct_follow *f, const struct ct_entry *e)
{
	uint8_t leaf[CT_HASH_LEN];
	struct ct_cert *c = xmalloc(sizeof(*c));
	const char *err = NULL;

	ct_entry_leaf_hash(e, leaf);
	ct_merkle_stream_append(&f->stream, leaf);
	/* a certificate that cannot be read is logged data all the same: hashed, not matched */
	if (ct_cert_read(e->der, e->der_len, c, &err) == 0 &&
	    ct_watch_match_cert(f->o.watch, c) >= 0)
		ct_keep(f, f->next, e, c);
	free(c);
	f->next++;
	f->rep.entries++;
}

/* Hash and match one entry; false when it is not a leaf at all (an error of the round). */
static bool ct_follow_entry(struct ct_follow *f, const struct ct_raw_entry *raw, char **why)
{
	struct ct_entry e;
	const char *err = NULL;

	if (ct_leaf_parse(raw->leaf_input, raw->leaf_input_len, &e, &err) < 0) {
		*why = xasprintf("entry %" PRIu64 " is not a Merkle tree leaf: %s", f->next, err);
		return false;
	}
	f->raw = raw;		/* its extra_data names the issuer (ct_keep) */
	ct_follow_leaf(f, &e);
	f->raw = NULL;
	return true;
}

static void ct_on_entries(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_entries es = { 0 };
	char *err = NULL;

	if (!ct_follow_answer_ok(f, r, "get-entries")) {
		http_response_free(r);
		return;
	}
	if (ct_entries_parse(r->body, r->len, CT_ENTRIES_BODY_MAX, &es, &err) < 0 ||
	    es.nentries == 0) {
		ct_follow_error(f, xasprintf("get-entries from %" PRIu64 ": %s", f->next,
					     err ? err : "no entries in the answer"));
		free(err);
		ct_entries_clear(&es);
		http_response_free(r);
		return;
	}
	http_response_free(r);
	for (size_t i = 0; i < es.nentries && f->next < f->sth.tree_size; i++) {
		if (!ct_follow_entry(f, &es.entries[i], &err)) {
			ct_entries_clear(&es);
			ct_follow_error(f, err);
			return;
		}
	}
	ct_entries_clear(&es);
	ct_follow_step(f);	/* fewer than asked: the next request follows up */
}

/* ---- static-ct-api: checkpoint and tiles -------------------------------------------- */

#define CT_TILE_BODY_MAX	(8 * 1024 * 1024)	/* 256 entries with their chains */

static void ct_on_checkpoint(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_checkpoint cp;
	char *err = NULL;

	if (!ct_follow_answer_ok(f, r, "checkpoint")) {
		http_response_free(r);
		return;
	}
	if (ct_checkpoint_verify(r->body, r->len, f->o.log, &cp, &err) < 0) {
		ct_follow_alert(f, "bad_signature", xasprintf("the checkpoint does not verify with "
			"the log's key: %s", err), r->body);
		free(err);
		http_response_free(r);
		return;
	}
	f->sth = cp.sth;		/* taken over: the checkpoint keeps nothing of it */
	memset(&cp.sth, 0, sizeof(cp.sth));
	ct_checkpoint_clear(&cp);
	f->rep.tree_size = f->sth.tree_size;
	/* no proof to ask for: the entries, hashed onto the verified prefix, must give the
	 * signed root, which proves the new tree an extension of the old one */
	if (ct_follow_compare_heads(f, r->body))
		ct_follow_step(f);
	http_response_free(r);
}

static void ct_on_data_tile(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	struct ct_entry *es;
	size_t count = 0, first = (size_t)(f->next % CT_TILE_WIDTH);
	uint64_t t = f->next / CT_TILE_WIDTH;
	unsigned w = ct_tile_width(f->sth.tree_size, 0, t);
	const char *err = NULL;

	if (!ct_follow_answer_ok(f, r, "data tile")) {
		http_response_free(r);
		return;
	}
	es = xcalloc(CT_TILE_WIDTH, sizeof(*es));
	if (ct_tile_parse((const uint8_t *)r->body, r->len, w, es, &count, &err) < 0) {
		ct_follow_error(f, xasprintf("data tile %" PRIu64 ": %s", t, err));
	} else {
		for (size_t i = first; i < count; i++)
			ct_follow_leaf(f, &es[i]);
		ct_follow_step(f);
	}
	free(es);
	http_response_free(r);
}

static void ct_follow_fetch_tile(struct ct_follow *f)
{
	uint64_t t = f->next / CT_TILE_WIDTH;
	char path[128];

	if (!ct_tile_data_path(path, sizeof(path), t, ct_tile_width(f->sth.tree_size, 0, t))) {
		ct_follow_error(f, xstrdup("no data tile for the next entry"));
		return;
	}
	ct_follow_get(f, path, CT_ENTRIES_TIMEOUT_MS, CT_TILE_BODY_MAX, ct_on_data_tile);
}

static void ct_on_hash_tile(struct http_response *r, void *arg);

/*
 * The next subtree of the first next leaves, from the hash tiles: a subtree of 2^b leaves
 * is 2^(b%8) consecutive entries of one tile at level b/8, combined. The result is only
 * trusted because the round's root is checked at its end.
 */
static void ct_static_next_subtree(struct ct_follow *f)
{
	while (f->range_bit >= 0 && !((f->next >> f->range_bit) & 1))
		f->range_bit--;
	if (f->range_bit < 0) {
		f->stream.size = f->next;
		f->have_range = true;
		ct_follow_step(f);
		return;
	}
	unsigned level = (unsigned)f->range_bit / 8;
	uint64_t index = f->range_at >> (8 * level), t = index / CT_TILE_WIDTH;
	char path[128];

	if (!ct_tile_path(path, sizeof(path), level, t, ct_tile_width(f->sth.tree_size, level, t))) {
		ct_follow_error(f, xasprintf("no hash tile at level %u for entry %" PRIu64, level,
					     f->range_at));
		return;
	}
	ct_follow_get(f, path, CT_STH_TIMEOUT_MS, CT_TILE_WIDTH * CT_HASH_LEN, ct_on_hash_tile);
}

static void ct_on_hash_tile(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	unsigned b = (unsigned)f->range_bit, level = b / 8;
	uint64_t index = f->range_at >> (8 * level), t = index / CT_TILE_WIDTH;
	size_t off = (size_t)(index % CT_TILE_WIDTH), n = (size_t)1 << (b % 8);
	unsigned w = ct_tile_width(f->sth.tree_size, level, t);

	if (!ct_follow_answer_ok(f, r, "hash tile")) {
		http_response_free(r);
		return;
	}
	if (r->len != (size_t)w * CT_HASH_LEN || off + n > w) {
		ct_follow_error(f, xasprintf("hash tile %u/%" PRIu64 " has %zu bytes, not %u hashes",
					     level, t, r->len, w));
		http_response_free(r);
		return;
	}
	ct_merkle_hashes_root((const uint8_t *)r->body + off * CT_HASH_LEN, n, f->stream.sub[b]);
	http_response_free(r);
	f->range_at += (uint64_t)1 << b;
	f->range_bit--;
	ct_static_next_subtree(f);
}

/* ---- the end of the entries: the root, then the database ----------------------------- */

static void ct_follow_issuers(struct ct_follow *f);

static void ct_follow_finish(struct ct_follow *f)
{
	uint8_t root[CT_HASH_LEN];

	ct_merkle_stream_root(&f->stream, root);
	if (memcmp(root, f->sth.root_hash, CT_HASH_LEN) != 0) {
		char *got = ct_hex(root, CT_HASH_LEN), *want = ct_hex(f->sth.root_hash, CT_HASH_LEN);
		char *ev = xasprintf("{\"tree_size\":%" PRIu64 ",\"signed_root\":\"%s\","
				     "\"root_of_entries\":\"%s\"}", f->sth.tree_size, want, got);

		ct_follow_alert(f, "entries_mismatch", xasprintf("the entries the log served do "
			"not hash to its signed root of %" PRIu64 " entries; nothing from them is "
			"reported", f->sth.tree_size), ev);
		free(ev);
		free(got);
		free(want);
		return;
	}
	ct_follow_issuers(f);	/* then the CAA answers, the verdicts, the database */
}

/* The findings, judged, and the log's new position, in one transaction. */
static void ct_follow_store(struct ct_follow *f)
{
	uint8_t state[CT_MERKLE_STATE_MAX];
	struct ct_log_pos to = f->pos;
	struct ct_finding *fs;
	size_t fresh = 0;
	int rc;

	to.log_id = f->log_id;
	to.tree_size = (int64_t)f->sth.tree_size;
	memcpy(to.root_hash, f->sth.root_hash, CT_HASH_LEN);
	to.has_root = true;
	to.sth_timestamp = (int64_t)f->sth.timestamp;
	to.next_index = (int64_t)f->next;
	to.range_len = ct_merkle_stream_save(&f->stream, state, sizeof(state));
	to.range_state = state;
	fs = xcalloc(f->nfound + 1, sizeof(*fs));
	for (size_t i = 0; i < f->nfound; i++)
		fs[i] = f->found[i].f;
	rc = ct_store_advance(f->o.db, &to, f->pos.next_index, fs, f->nfound, &fresh);
	free(fs);
	if (rc != DB_OK) {
		ct_follow_error(f, xstrdup(rc == DB_CONSTRAINT ? "another node advanced this log "
			"meanwhile" : db_errmsg(f->o.db)));
		return;
	}
	f->rep.findings = f->nfound;
	f->rep.new_findings = fresh;
	f->rep.result = CT_ROUND_OK;
	log_info("event=ct_round log=%s tree_size=%" PRIu64 " entries=%" PRIu64 " findings=%zu "
		 "new=%zu", f->log_id, f->sth.tree_size, f->rep.entries, f->nfound, fresh);
	ct_follow_end(f);
}

/* ---- judging the findings of the round ----------------------------------------------- */

/* Every CAA answer is in: judge each finding, then write. */
static void ct_follow_judged(void *arg)
{
	struct ct_follow *f = arg;
	struct ct_judge_opts jo = { .expected_keys = f->o.expected_keys,
		.allowed_issuers = f->o.allowed_issuers, .issuer_caa = f->o.issuer_caa };

	for (size_t i = 0; i < f->nfound; i++) {
		struct ct_held *h = &f->found[i];
		struct ct_judge_cert jcert = { .issuer = h->issuer, .issuer_key = h->issuer_key,
			.spki = h->spki, .caa_names = h->caa_names, .ncaa_names = h->ncaa_names };
		struct ct_verdict v;

		ct_judge(&jo, &jcert, f->caa, &v);
		free(h->reason);
		h->reason = v.reason;
		h->f.verdict = v.verdict;
		h->f.reason = h->reason;
		h->f.caa = v.caa;
		h->f.issuer_key_sha256 = h->issuer_key;
	}
	ct_follow_store(f);
}

/*
 * The CAA of every watched name of the round's findings, each name once: looked up now,
 * when the certificate is seen. An answer that cannot be had does not hold the log back:
 * the finding says CAA was not checked, and why.
 */
static void ct_follow_caa(struct ct_follow *f)
{
	f->caa = ct_judge_caa_new(f->o.base, f->o.dns);
	for (size_t i = 0; i < f->nfound; i++)
		for (size_t j = 0; j < f->found[i].ncaa_names; j++)
			ct_judge_caa_want(f->caa, f->found[i].caa_names[j]);
	ct_judge_caa_run(f->caa, ct_follow_judged, f);
}

static void ct_on_issuer(struct http_response *r, void *arg);

/* The key hash of an issuer fetched in this round ("" when unreadable), or NULL. */
static const char *ct_follow_issuer_known(const struct ct_follow *f, const char *fp)
{
	for (size_t i = 0; i < f->nissuers; i++)
		if (strcmp(f->issuers[i].fp, fp) == 0)
			return f->issuers[i].key;
	return NULL;
}

/*
 * A static-ct-api data tile names a certificate's chain by fingerprints; the issuer itself
 * is at issuer/<hex fingerprint>. It is fetched only for the round's matching X.509
 * entries (a precertificate entry carries its issuer's key hash), once per round.
 */
static void ct_follow_issuers(struct ct_follow *f)
{
	for (size_t i = 0; i < f->nfound; i++) {
		struct ct_held *h = &f->found[i];
		const char *key;
		char *path;

		if (h->issuer_fp == NULL || h->issuer_key != NULL)
			continue;
		if ((key = ct_follow_issuer_known(f, h->issuer_fp)) != NULL) {
			if (*key)
				h->issuer_key = xstrdup(key);
			free(h->issuer_fp);
			h->issuer_fp = NULL;
			continue;
		}
		path = xasprintf("issuer/%s", h->issuer_fp);
		ct_follow_get(f, path, CT_STH_TIMEOUT_MS, CT_ENTRY_MAX, ct_on_issuer);
		free(path);
		return;
	}
	ct_follow_caa(f);
}

static void ct_on_issuer(struct http_response *r, void *arg)
{
	struct ct_follow *f = arg;
	const char *fp = f->path + strlen("issuer/");
	struct ct_issuer_key ik = { .key = "" };
	unsigned char md[CT_HASH_LEN];
	char got[65];

	if (!ct_follow_answer_ok(f, r, "issuer")) {
		http_response_free(r);
		return;
	}
	EVP_Digest(r->body, r->len, md, NULL, EVP_sha256(), NULL);
	hex_encode(md, sizeof(md), got);
	if (strcmp(got, fp) != 0) {
		ct_follow_error(f, xasprintf("the issuer served for fingerprint %s has another "
					     "SHA-256 (%s)", fp, got));
		http_response_free(r);
		return;
	}
	snprintf(ik.fp, sizeof(ik.fp), "%s", fp);
	if (ct_judge_cert_key((const uint8_t *)r->body, r->len, ik.key) < 0)
		ik.key[0] = '\0';	/* not a certificate we can read: its key stays unknown */
	http_response_free(r);
	f->issuers = xreallocarray(f->issuers, f->nissuers + 1, sizeof(*f->issuers));
	f->issuers[f->nissuers++] = ik;
	ct_follow_issuers(f);
}

/* The next request of the round, or its end. */
static void ct_follow_step(struct ct_follow *f)
{
	if (f->next == UINT64_MAX)	/* first contact, starting at the end */
		f->next = f->sth.tree_size;
	if (f->next > f->sth.tree_size) {
		ct_follow_error(f, xasprintf("entry %" PRIu64 " is beyond the log's %" PRIu64
					     " entries", f->next, f->sth.tree_size));
		return;
	}
	if (!f->have_range && f->next == 0) {
		ct_merkle_stream_init(&f->stream);
		f->have_range = true;
	}
	if (!f->have_range && f->tiles) {
		ct_merkle_stream_init(&f->stream);
		f->range_bit = 63;
		f->range_at = 0;
		ct_static_next_subtree(f);	/* the compact range from the hash tiles */
	} else if (!f->have_range) {
		ct_follow_start_inside(f);	/* the compact range from an inclusion proof */
	} else if (f->next < f->sth.tree_size) {
		if (f->tiles)
			ct_follow_fetch_tile(f);
		else
			ct_follow_fetch_entries(f);
	} else {
		ct_follow_finish(f);
	}
}

/* ---- the start ---------------------------------------------------------------------- */

/*
 * Where this round's entries start: a backfill's index, the stored position (with its
 * compact range), or on first contact the log's end or its start.
 */
static void ct_follow_position(struct ct_follow *f)
{
	const struct ct_log_pos *p = &f->pos;

	ct_merkle_stream_init(&f->stream);
	if (f->o.from >= 0) {
		f->next = (uint64_t)f->o.from;
	} else if (p->has_root && p->range_state != NULL &&
		   ct_merkle_stream_load(&f->stream, p->range_state, p->range_len)) {
		f->have_range = true;
		f->next = f->stream.size;
	} else if (p->has_root) {
		f->next = (uint64_t)p->next_index;	/* the range is rebuilt from a proof */
	} else {
		f->next = f->o.start_at_end ? UINT64_MAX : 0;
	}
}

struct ct_follow *ct_follow_round(const struct ct_follow_opts *opts, ct_round_cb cb, void *arg)
{
	struct ct_follow *f = xcalloc(1, sizeof(*f));
	bool tiles = opts->log->api == CT_API_STATIC;
	const char *url = tiles ? opts->log->monitoring_url : opts->log->url;
	int rc;

	f->o = *opts;
	f->req = -1;
	if (f->o.batch == 0)
		f->o.batch = CT_DEFAULT_BATCH;
	if (f->o.expected_keys == NULL)
		f->o.expected_keys = "";
	if (f->o.allowed_issuers == NULL)
		f->o.allowed_issuers = "";
	f->cb = cb;
	f->arg = arg;
	ct_log_id_text(opts->log, f->log_id);
	f->base = xasprintf("%s%s", url, url[0] && url[strlen(url) - 1] == '/' ? "" : "/");
	f->tiles = tiles;
	rc = ct_store_log_load(opts->db, f->log_id, &f->pos);
	if (rc == DB_DONE &&	/* first contact: its row, written once */
	    ct_store_log_register(opts->db, f->log_id, f->base,
				  tiles ? "static" : "rfc6962") == DB_OK)
		rc = ct_store_log_load(opts->db, f->log_id, &f->pos);
	if (rc != DB_ROW) {
		ct_follow_error(f, xasprintf("cannot read the log's state: %s",
					     db_errmsg(opts->db)));
		return NULL;
	}
	ct_follow_position(f);
	if (tiles)
		ct_follow_get(f, "checkpoint", CT_STH_TIMEOUT_MS, CT_NOTE_MAX_BYTES, ct_on_checkpoint);
	else
		ct_follow_get(f, "ct/v1/get-sth", CT_STH_TIMEOUT_MS, CT_STH_MAX_BYTES, ct_on_sth);
	return f;
}

void ct_follow_cancel(struct ct_follow *f)
{
	if (f == NULL)
		return;
	if (f->req >= 0)
		http_cancel(f->o.http, f->req);
	ct_follow_free(f);
}
