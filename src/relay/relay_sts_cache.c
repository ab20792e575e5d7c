/*
 * relay_sts_cache.c - MTA-STS (RFC 8461) for a destination domain, on the event loop.
 *
 * The policy of a domain: the "_mta-sts" TXT record (validating resolver), then the row in
 * mta_sts_policies when it is still fresh and its id is the TXT record's, else the policy
 * fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt with the project's HTTP client
 * (certificate checked against the system store and [relay] ca_file, no redirects, 64 KiB,
 * [mta_sts] fetch_timeout). A failed fetch keeps a cached policy that has not expired (5.1);
 * a cached policy past half its max_age is refetched in the background. Fetches for the same
 * domain are shared by every session waiting for them.
 *
 * Second part: what the SMTP client (relay_mta.c, relay_mta_route.c) asks about the policy
 * for the host it talks to. Under "enforce" only matching MX hosts with a valid certificate
 * over TLS 1.2+ get the mail; a failure is a security failure that defers for every sender.
 * Under "testing" the failure is logged and delivery goes on. DANE wins (RFC 8461 2): a host
 * with a usable DNSSEC-validated TLSA set is not checked against the policy.
 */
#include "relay_mta_priv.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "relay_tlsrpt.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

/* most seconds between background refreshes of a domain (a quarter of max_age if less) */
#define STS_REFETCH_MIN		300

struct sts_fetch;

struct sts_lookup {
	struct relay *relay;
	char *domain;
	sts_cb cb;
	void *arg;
	int dns_handle;
	struct sts_fetch *fetch;	/* waiting for this fetch, or NULL */
	struct sts_lookup *next_waiter;
	/* the cached row, when there is one */
	bool have_cached;
	struct sts_policy cached;
	int64_t cached_expires;
};

/* One HTTPS fetch in flight for a domain, with the lookups waiting for it. */
struct sts_fetch {
	struct sts_cache *cache;
	char *domain;
	char id[STS_ID_MAX + 1];
	int handle;
	struct sts_lookup *waiters;
	struct sts_fetch *next;
};

/*
 * What the database said about a domain's policy, believed on this node for STS_MEMO_TTL
 * seconds: a message to a domain costs a database read at most once a minute, not once per
 * message (most domains have no policy, and that answer is kept too).
 */
#define STS_MEMO_BUCKETS	1024
#define STS_MEMO_MAX		8192	/* entries; when full, all are forgotten */
#define STS_MEMO_TTL		60

struct sts_memo {
	struct sts_memo *next;
	char *domain;
	bool have;			/* a policy is cached for the domain */
	struct sts_policy policy;
	int64_t expires;
	int64_t loaded;			/* when the database was asked (or the policy fetched) */
};

struct sts_cache {
	struct relay *relay;
	struct http_client *http;
	struct sts_fetch *fetches;
	struct sts_memo *memo[STS_MEMO_BUCKETS];
	size_t nmemo;
};

/* ---- the database -------------------------------------------------------------------- */

/* The cached policy of domain (re-parsed from its text); false when none or unreadable. */
static bool sts_db_load(struct relay *relay, const char *domain, struct sts_policy *p,
			int64_t *expires)
{
	struct db_stmt *st;
	bool ok = false;
	char err[80];

	if (relay->db == NULL)
		return false;
	st = db_prepare_cached(relay->db, "SELECT id, policy, expires FROM mta_sts_policies "
				     "WHERE domain = ?");
	if (st == NULL)
		return false;
	db_bind_text(st, 1, domain);
	if (db_step_row(relay->db, st)) {
		const char *text = db_col_text(st, 1);

		if (sts_policy_parse(text, strlen(text), p, err, sizeof(err))) {
			snprintf(p->id, sizeof(p->id), "%s", db_col_text(st, 0));
			*expires = db_col_int(st, 2);
			ok = true;
		}
	}
	db_release(relay->db, st);
	return ok;
}

static void sts_db_store(struct relay *relay, const char *domain, const struct sts_policy *p,
			 int64_t now)
{
	struct db_stmt *st;
	struct buf mx;

	if (relay->db == NULL)
		return;
	buf_init(&mx, 0);
	for (size_t i = 0; i < p->nmx; i++)
		buf_addf(&mx, "%s%s", i ? " " : "", p->mx[i]);
	st = db_prepare_cached(relay->db,
		"INSERT INTO mta_sts_policies (domain, id, mode, mx, max_age, policy, fetched, "
		"expires, last_attempt, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
		"ON CONFLICT (domain) DO UPDATE SET id = excluded.id, mode = excluded.mode, "
		"mx = excluded.mx, max_age = excluded.max_age, policy = excluded.policy, "
		"fetched = excluded.fetched, expires = excluded.expires, "
		"last_attempt = excluded.last_attempt, last_error = NULL");
	if (st != NULL) {
		db_bind_text(st, 1, domain);
		db_bind_text(st, 2, p->id);
		db_bind_text(st, 3, sts_mode_name(p->mode));
		db_bind_text(st, 4, mx.len ? (const char *)mx.data : "");
		db_bind_int(st, 5, p->max_age);
		db_bind_text(st, 6, p->text);
		db_bind_int(st, 7, now);
		db_bind_int(st, 8, now + p->max_age);
		db_bind_int(st, 9, now);
		if (db_step_done(relay->db, st) != DB_DONE)
			log_warn("event=mta_sts_store domain=%s error=\"%s\"", domain,
				 db_errmsg(relay->db));
		db_release(relay->db, st);
	}
	buf_free(&mx);
}

static void sts_db_note_error(struct relay *relay, const char *domain, const char *error,
			      int64_t now)
{
	struct db_stmt *st;

	if (relay->db == NULL)
		return;
	st = db_prepare_cached(relay->db, "UPDATE mta_sts_policies SET last_attempt = ?, "
				     "last_error = ? WHERE domain = ?");
	if (st == NULL)
		return;
	db_bind_int(st, 1, now);
	db_bind_text(st, 2, error);
	db_bind_text(st, 3, domain);
	(void)db_step_done(relay->db, st);
	db_release(relay->db, st);
}

/* When the last fetch of domain was tried (0: never or unknown). */
static int64_t sts_db_last_attempt(struct relay *relay, const char *domain)
{
	struct db_stmt *st;
	int64_t t = 0;

	if (relay->db == NULL)
		return 0;
	st = db_prepare_cached(relay->db, "SELECT last_attempt FROM mta_sts_policies "
				     "WHERE domain = ?");
	if (st == NULL)
		return 0;
	db_bind_text(st, 1, domain);
	if (db_step_row(relay->db, st))
		t = db_col_int(st, 0);
	db_release(relay->db, st);
	return t;
}

/* ---- the policies in memory ------------------------------------------------------------- */

static struct sts_cache *sts_cache_get(struct relay *relay);

static struct sts_memo **sts_memo_bucket(struct sts_cache *c, const char *domain)
{
	uint32_t h = 2166136261u;

	for (const char *p = domain; *p; p++)
		h = (h ^ (uint32_t)tolower((unsigned char)*p)) * 16777619u;
	return &c->memo[h % STS_MEMO_BUCKETS];
}

static void sts_memo_clear(struct sts_cache *c)
{
	for (size_t i = 0; i < STS_MEMO_BUCKETS; i++)
		while (c->memo[i] != NULL) {
			struct sts_memo *e = c->memo[i];

			c->memo[i] = e->next;
			sts_policy_clear(&e->policy);
			free(e->domain);
			free(e);
		}
	c->nmemo = 0;
}

/* Remember what is known of domain's policy (p NULL: none) as of now. */
static void sts_memo_put(struct relay *relay, const char *domain, const struct sts_policy *p,
			 int64_t expires, int64_t now)
{
	struct sts_cache *c = sts_cache_get(relay);
	struct sts_memo **b = sts_memo_bucket(c, domain), *e;

	for (e = *b; e != NULL && strcasecmp(e->domain, domain) != 0; e = e->next)
		;
	if (e == NULL) {
		if (c->nmemo >= STS_MEMO_MAX) {
			sts_memo_clear(c);
			b = sts_memo_bucket(c, domain);
		}
		e = xcalloc(1, sizeof(*e));
		e->domain = xstrdup(domain);
		e->next = *b;
		*b = e;
		c->nmemo++;
	}
	sts_policy_clear(&e->policy);
	e->have = p != NULL;
	if (p != NULL)
		sts_policy_copy(&e->policy, p);
	e->expires = expires;
	e->loaded = now;
}

/* The cached policy of domain: from memory while fresh, else from the database. */
static bool sts_cached_policy(struct relay *relay, const char *domain, struct sts_policy *p,
			      int64_t *expires, int64_t now)
{
	struct sts_memo *e = *sts_memo_bucket(sts_cache_get(relay), domain);
	bool have;

	for (; e != NULL && strcasecmp(e->domain, domain) != 0; e = e->next)
		;
	if (e != NULL && now - e->loaded < STS_MEMO_TTL) {
		if (e->have) {
			sts_policy_copy(p, &e->policy);
			*expires = e->expires;
		}
		return e->have;
	}
	have = sts_db_load(relay, domain, p, expires);
	sts_memo_put(relay, domain, have ? p : NULL, have ? *expires : 0, now);
	return have;
}

/* ---- answering lookups ----------------------------------------------------------------- */

static void sts_lookup_free(struct sts_lookup *l)
{
	if (l->dns_handle > 0)
		dns_cancel(l->relay->dns, l->dns_handle);
	sts_policy_clear(&l->cached);
	free(l->domain);
	free(l);
}

/* Call the lookup's callback with pol (or none) and free the lookup. */
static void sts_answer(struct sts_lookup *l, const struct sts_policy *pol, bool cached,
		       int64_t expires, const char *error)
{
	struct sts_answer a = { .domain = l->domain, .from_cache = cached, .error = error,
				.expires = expires };

	if (pol != NULL) {
		a.have_policy = true;
		a.policy = *pol;
	}
	l->cb(&a, l->arg);
	sts_lookup_free(l);
}

/* The cached policy while it has not expired, else nothing (with error). */
static void sts_answer_cached(struct sts_lookup *l, const char *error)
{
	if (l->have_cached && l->cached_expires > time(NULL))
		sts_answer(l, &l->cached, true, l->cached_expires, error);
	else
		sts_answer(l, NULL, false, 0, error);
}

/* ---- fetching ---------------------------------------------------------------------------- */

static struct sts_cache *sts_cache_get(struct relay *relay)
{
	if (relay->sts_cache == NULL) {
		const struct pw_config *cfg = relay->cfg;
		struct http_client_opts o = {
			.allow_private = cfg->mta_sts.allow_private,
			.ca_file = cfg->relay.ca_file && cfg->relay.ca_file[0] ?
				   cfg->relay.ca_file : NULL,
			.user_agent = "postwarden-mta-sts",
		};

		/*
		 * ca_file replaces libcurl's CA bundle only; Debian's libcurl keeps its CA path
		 * (/etc/ssl/certs), so the system store is trusted as well.
		 */
		relay->sts_cache = xcalloc(1, sizeof(*relay->sts_cache));
		relay->sts_cache->relay = relay;
		relay->sts_cache->http = http_client_new(relay->base, &o);
		if (relay->sts_cache->http == NULL)
			fatalx("cannot create the MTA-STS HTTP client");
	}
	return relay->sts_cache;
}

/* "HOST:PORT:ADDR:PORT" (curl's CONNECT_TO) for the policy host [mta_sts] hosts names. */
static char *sts_connect_to(const char *hosts, const char *host, unsigned port)
{
	char addr[64];
	bool v6;

	if (!str_list_value(hosts, host, addr, sizeof(addr)))
		return NULL;
	v6 = strchr(addr, ':') != NULL;
	return xasprintf("%s:%u:%s%s%s:%u", host, port, v6 ? "[" : "", addr, v6 ? "]" : "", port);
}

/* Check a response and parse its policy; NULL on success, else a short reason (static). */
static const char *sts_response_policy(const struct http_response *r, struct sts_policy *p,
				       char *err, size_t errlen)
{
	const char *ct = r->content_type;

	if (r->result != HTTP_OK) {
		snprintf(err, errlen, "fetch failed: %s%s%s", http_result_str(r->result),
			 r->error ? ": " : "", r->error ? r->error : "");
		return err;
	}
	if (r->status >= 300 && r->status < 400) {
		snprintf(err, errlen, "HTTP %ld redirect%s%s not followed", r->status,
			 r->location ? " to " : "", r->location ? r->location : "");
		return err;
	}
	if (r->status != 200) {
		snprintf(err, errlen, "HTTP status %ld", r->status);
		return err;
	}
	if (!sts_content_type_ok(ct)) {
		snprintf(err, errlen, "Content-Type %s is not text/plain", ct ? ct : "missing");
		return err;
	}
	{
		char perr[80];

		if (!sts_policy_parse(r->body, r->len, p, perr, sizeof(perr))) {
			snprintf(err, errlen, "invalid policy: %s", perr);
			return err;
		}
	}
	return NULL;
}

static void sts_fetch_unlink(struct sts_fetch *f)
{
	for (struct sts_fetch **pp = &f->cache->fetches; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
}

static void sts_fetch_done(struct http_response *resp, void *arg)
{
	struct sts_fetch *f = arg;
	struct relay *relay = f->cache->relay;
	struct sts_policy p;
	char err[300];
	const char *problem = sts_response_policy(resp, &p, err, sizeof(err));
	int64_t now = time(NULL);
	struct sts_lookup *l;

	http_response_free(resp);
	sts_fetch_unlink(f);
	stats_mta_sts_fetch(problem == NULL);
	if (problem == NULL) {
		snprintf(p.id, sizeof(p.id), "%s", f->id);
		sts_db_store(relay, f->domain, &p, now);
		sts_memo_put(relay, f->domain, &p, now + p.max_age, now);
		log_info("event=mta_sts_fetched domain=%s id=%s mode=%s max_age=%lld mx=%zu",
			 f->domain, p.id, sts_mode_name(p.mode), (long long)p.max_age, p.nmx);
	} else {
		sts_db_note_error(relay, f->domain, problem, now);
		log_warn("event=mta_sts_fetch_failed domain=%s id=%s error=\"%s\"", f->domain,
			 f->id, problem);
	}
	while ((l = f->waiters) != NULL) {
		f->waiters = l->next_waiter;
		l->fetch = NULL;
		if (problem == NULL)
			sts_answer(l, &p, false, now + p.max_age, NULL);
		else
			sts_answer_cached(l, problem);
	}
	if (problem == NULL)
		sts_policy_clear(&p);
	free(f->domain);
	free(f);
}

/* Start (or join) the fetch of domain's policy under TXT id; l waits for it unless NULL. */
static bool sts_fetch(struct relay *relay, const char *domain, const char *id,
		      struct sts_lookup *l)
{
	struct sts_cache *c = sts_cache_get(relay);
	const struct mta_sts_conf *sc = &relay->cfg->mta_sts;
	struct http_request_opts o = { .timeout_ms = sc->fetch_timeout * 1000,
				       .max_body = STS_POLICY_MAX };
	struct sts_fetch *f;
	char *host, *url, *cto;

	for (f = c->fetches; f != NULL; f = f->next)
		if (strcmp(f->domain, domain) == 0 && strcmp(f->id, id) == 0)
			break;
	if (f == NULL) {
		host = xasprintf("mta-sts.%s", domain);
		url = sc->port == 443 ? xasprintf("https://%s/.well-known/mta-sts.txt", host) :
		      xasprintf("https://%s:%u/.well-known/mta-sts.txt", host, (unsigned)sc->port);
		cto = sts_connect_to(sc->hosts, host, (unsigned)sc->port);
		o.connect_to = cto;
		f = xcalloc(1, sizeof(*f));
		f->cache = c;
		f->domain = xstrdup(domain);
		snprintf(f->id, sizeof(f->id), "%s", id);
		f->handle = http_get(c->http, url, &o, sts_fetch_done, f);
		log_debug("event=mta_sts_fetch domain=%s url=%s", domain, url);
		free(host);
		free(url);
		free(cto);
		if (f->handle < 0) {
			free(f->domain);
			free(f);
			return false;
		}
		f->next = c->fetches;
		c->fetches = f;
	}
	if (l != NULL) {
		l->fetch = f;
		l->next_waiter = f->waiters;
		f->waiters = l;
	}
	return true;
}

/* ---- the TXT record ---------------------------------------------------------------------- */

/* The TXT answer's verdict; id filled when STS_TXT_OK. */
static enum sts_txt_result sts_txt_answer_parse(const struct dns_answer *a,
					       char id[STS_ID_MAX + 1])
{
	enum sts_txt_result res;
	char **txts;
	size_t n = 0;

	id[0] = '\0';
	if (a->status != DNS_OK || a->security == DNS_BOGUS)
		return STS_TXT_NONE;
	txts = xcalloc(a->nrr ? a->nrr : 1, sizeof(char *));
	for (size_t i = 0; i < a->nrr; i++) {
		char t[STS_TXT_MAX];

		if (dns_txt_join(a->rrs[i].data, a->rrs[i].len, t, sizeof(t)) >= 0)
			txts[n++] = xstrdup(t);
	}
	res = sts_txt_set((const char *const *)txts, n, id);
	for (size_t i = 0; i < n; i++)
		free(txts[i]);
	free(txts);
	return res;
}

static void sts_txt_answer(struct dns_answer *a, void *arg)
{
	struct sts_lookup *l = arg;
	char id[STS_ID_MAX + 1];
	enum sts_txt_result res = sts_txt_answer_parse(a, id);
	bool bogus = a->security == DNS_BOGUS, servfail = a->status == DNS_SERVFAIL;
	int64_t now = time(NULL);

	l->dns_handle = 0;
	dns_answer_free(a);
	l->have_cached = sts_cached_policy(l->relay, l->domain, &l->cached, &l->cached_expires,
					   now);
	if (l->have_cached && l->cached_expires <= now) {
		sts_policy_clear(&l->cached);
		l->have_cached = false;
	}
	if (res != STS_TXT_OK) {
		/* no (usable) record: a cached policy still applies until it expires (3.3) */
		sts_answer_cached(l, bogus ? "the _mta-sts TXT answer failed DNSSEC validation" :
				  servfail ? "the _mta-sts TXT lookup failed" :
				  res == STS_TXT_INVALID ? "invalid _mta-sts TXT record" : NULL);
		return;
	}
	if (l->have_cached && strcmp(l->cached.id, id) == 0) {
		/* fresh enough; past half its life it is refreshed in the background */
		int64_t gap = l->cached.max_age / 4 < STS_REFETCH_MIN ? l->cached.max_age / 4 :
			      STS_REFETCH_MIN;

		if (now > l->cached_expires - l->cached.max_age / 2 &&
		    now - sts_db_last_attempt(l->relay, l->domain) > gap)
			(void)sts_fetch(l->relay, l->domain, id, NULL);
		sts_answer(l, &l->cached, true, l->cached_expires, NULL);
		return;
	}
	if (!sts_fetch(l->relay, l->domain, id, l))
		sts_answer_cached(l, "the policy fetch could not start");
}

struct sts_lookup *sts_lookup_start(struct relay *relay, const char *domain, sts_cb cb,
				    void *arg)
{
	struct sts_lookup *l = xcalloc(1, sizeof(*l));
	char *name = xasprintf("_mta-sts.%s", domain);

	l->relay = relay;
	l->domain = xstrdup(domain);
	l->cb = cb;
	l->arg = arg;
	l->dns_handle = dns_resolve(relay->dns, name, DNS_RR_TXT, sts_txt_answer, l);
	free(name);
	if (l->dns_handle < 0) {
		l->dns_handle = 0;
		sts_lookup_free(l);
		return NULL;
	}
	return l;
}

void sts_lookup_cancel(struct sts_lookup *l)
{
	if (l == NULL)
		return;
	if (l->fetch != NULL) {	/* the fetch goes on: its result is cached for the next one */
		for (struct sts_lookup **pp = &l->fetch->waiters; *pp; pp = &(*pp)->next_waiter)
			if (*pp == l) {
				*pp = l->next_waiter;
				break;
			}
	}
	sts_lookup_free(l);
}

void sts_cache_free(struct relay *relay)
{
	struct sts_cache *c = relay->sts_cache;

	if (c == NULL)
		return;
	while (c->fetches != NULL) {
		struct sts_fetch *f = c->fetches;
		struct sts_lookup *l;

		c->fetches = f->next;
		http_cancel(c->http, f->handle);
		while ((l = f->waiters) != NULL) {
			f->waiters = l->next_waiter;
			sts_lookup_free(l);
		}
		free(f->domain);
		free(f);
	}
	http_client_free(c->http);
	sts_memo_clear(c);
	free(c);
	relay->sts_cache = NULL;
}

/* ---- the SMTP client's questions ----------------------------------------------------------- */

static void mta_sts_answer(const struct sts_answer *a, void *arg)
{
	struct mta *m = arg;
	struct mta_probe *p = m->job->probe;

	m->sts_req = NULL;
	if (a->have_policy) {
		sts_policy_copy(&m->sts, &a->policy);
		m->sts_mode = a->policy.mode;
	}
	if (a->error != NULL)
		m->sts_error = xstrdup(a->error);
	if (p != NULL) {
		p->sts_looked_up = true;
		p->sts_have = a->have_policy;
		p->sts_cached = a->from_cache;
		if (a->have_policy)
			sts_policy_copy(&p->sts, &a->policy);
		p->sts_error = a->error ? xstrdup(a->error) : NULL;
	}
	log_debug("event=mta_sts id=%s domain=%s mode=%s policy_id=%s cached=%d error=\"%s\"",
		  m->job->msg_id, m->job->domain, sts_mode_name(m->sts_mode), m->sts.id,
		  a->from_cache, a->error ? a->error : "");
	mta_route_mx(m);
}

bool mta_sts_begin(struct mta *m)
{
	sts_policy_clear(&m->sts);
	m->sts_mode = STS_MODE_NONE;
	free(m->sts_error);
	m->sts_error = NULL;
	if (!m->relay->cfg->mta_sts.enabled || m->job->notification)
		return false;
	m->sts_req = sts_lookup_start(m->relay, m->job->domain, mta_sts_answer, m);
	return m->sts_req != NULL;
}

/* Is the policy to be applied to the current host at all? */
static bool mta_sts_applies(const struct mta *m)
{
	const struct mta_host *h = m->hi < m->nhost ? &m->hosts[m->hi] : NULL;

	/* DANE wins: a host with a usable, validated TLSA set is DANE's (RFC 8461 2) */
	return m->sts_mode != STS_MODE_NONE && h != NULL && h->dane != DANE_AUTH;
}

/* The host failed the policy: under enforce it fails (false), under testing it is noted. */
static bool mta_sts_failed(struct mta *m, enum policy_reason r, const char *detail)
{
	char *t = xasprintf(STS_REASON_PREFIX " of %s (id %s, mode %s): %s", m->job->domain,
			    m->sts.id, sts_mode_name(m->sts_mode), detail);

	m->sts_failures++;
	stats_mta_sts_failure(sts_mode_name(m->sts_mode));
	log_info("event=mta_sts_failure id=%s domain=%s mx=%s mode=%s reason=%s detail=\"%s\"",
		 m->job->msg_id, m->job->domain, mta_host(m) ? mta_host(m)->name : "-",
		 sts_mode_name(m->sts_mode), policy_reason_name(r), detail);
	if (m->sts_mode != STS_MODE_ENFORCE) {
		tlsrpt_note_failure(m, r);	/* testing: the reports tell the receiver */
		m->conn.rpt_noted = true;
		free(t);
		return true;
	}
	mta_host_failed(m, r, t);
	free(t);
	return false;
}

bool mta_sts_host_ok(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	bool ok;
	char *t;

	if (!mta_sts_applies(m) || sts_policy_match(&m->sts, h->name))
		return true;
	t = xasprintf("%s does not match the policy's mx patterns", h->name);
	ok = mta_sts_failed(m, REASON_STS_MX_MISMATCH, t);
	free(t);
	return ok;
}

bool mta_sts_requires_tls(const struct mta *m)
{
	return m->sts_mode == STS_MODE_ENFORCE && mta_sts_applies(m);
}

static bool mta_sts_version_ok(const char *v)
{
	return strcmp(v, "TLSv1.2") == 0 || strcmp(v, "TLSv1.3") == 0;
}

bool mta_sts_tls_ok(struct mta *m)
{
	const struct tls_info *ti = &m->conn.tinfo;
	bool ok;
	char *t;

	m->conn.sts_ok = false;
	if (!mta_sts_applies(m) || m->conn.dane == DANE_AUTH)
		return true;
	if (ti->webpki_valid && mta_sts_version_ok(ti->version)) {
		m->conn.sts_ok = m->sts_mode == STS_MODE_ENFORCE;
		return true;
	}
	if (!ti->webpki_valid)
		t = xasprintf("the certificate of %s is not valid for its name: %s",
			      mta_host(m)->name, ti->webpki_error[0] ? ti->webpki_error : "unknown");
	else
		t = xasprintf("%s negotiated %s, MTA-STS needs TLS 1.2 or newer",
			      mta_host(m)->name, ti->version);
	ok = mta_sts_failed(m, REASON_STS_CERT, t);
	free(t);
	return ok;
}

bool mta_sts_plain_ok(struct mta *m, const char *what)
{
	bool ok;
	char *t;

	if (!mta_sts_applies(m))
		return true;
	t = xasprintf("%s: %s", mta_host(m)->name, what);
	ok = mta_sts_failed(m, REASON_STS_NO_TLS, t);
	free(t);
	return ok;
}

bool mta_sts_enforced(const struct mta *m)
{
	return m->conn.tls && m->conn.sts_ok;
}

void mta_sts_free(struct mta *m)
{
	sts_lookup_cancel(m->sts_req);
	m->sts_req = NULL;
	sts_policy_clear(&m->sts);
	free(m->sts_error);
	m->sts_error = NULL;
}
