/*
 * acct_compose.c - POST /v1/recipients/status (see acct_compose.h): per recipient, the
 * relay's verdict for this user and the best key found.
 *
 * The verdict comes from the relay's SMTP client in probe mode (mta_start with a probe, as
 * "postwarden tls-check" runs it): MX, addresses and TLSA with DNSSEC, then EHLO, STARTTLS
 * and the handshake on each MX host, never MAIL. A probe is made for a sender with the
 * guarantee; whether this user's guarantee is in force decides what its failure means
 * (held, or sent without that protection). Keys come from key search (src/keysearch),
 * the same search as /v1/keys/search of the admin API.
 *
 * Everything runs on the loop. A request waits for the probes and searches it needs; each
 * domain and each address has one cache entry, shared by every request that asks while it
 * is being looked up and kept for ACCT_COMPOSE_TTL seconds after, so that a compose window
 * asking again at each keystroke costs nothing. At most ACCT_COMPOSE_MAX_PROBES probes run
 * at once (one request may name 100 domains); the rest wait their turn. A request is
 * answered after ACCT_COMPOSE_WAIT seconds at the latest: what is still being looked up
 * then is marked "pending" (its look-up goes on and fills the cache for the next ask).
 */
#include "acct_compose.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "account.h"
#include "account/acct_http.h"
#include "keysearch/keysearch.h"
#include "keysearch/ks.h"
#include "log.h"
#include "relay/relay_delivery.h"
#include "strutil.h"
#include "xmalloc.h"

enum entry_state {
	ENTRY_WAITING,		/* a probe not started yet (too many running) */
	ENTRY_RUNNING,
	ENTRY_DONE,
};

/* One domain: its probe and what it found. */
struct compose_domain {
	char *domain;		/* A-labels, lower case */
	enum entry_state state;
	int64_t expires;
	int refs;		/* pending requests using it */
	struct acct_compose *c;
	struct mta_job job;
	struct mta *mta;
	struct acct_compose_probe found;
	struct compose_domain *next;
};

/* One address: its key search and the best key. */
struct compose_addr {
	char *address;		/* lower case: the cache key */
	enum entry_state state;
	int64_t expires;
	int refs;
	struct acct_compose *c;
	int handle;		/* the running search */
	json_t *key;		/* null or the key */
	struct compose_addr *next;
};

/* One request waiting for its entries. */
struct compose_req {
	struct acct_compose *c;
	struct acct_req *req;
	bool guarantee;		/* the user's, now */
	size_t n;
	char **addrs;		/* as given */
	struct compose_domain **dom;	/* NULL: not a valid address */
	struct compose_addr **key;	/* NULL: not searched */
	struct event *deadline;		/* answer with what is known by then */
	struct compose_req *next;
};

struct acct_compose {
	struct acct_http *http;		/* borrowed */
	struct relay *relay;		/* borrowed */
	struct keysearch *ks;		/* borrowed, or NULL */
	struct compose_domain *domains;
	size_t ndomains;
	struct compose_addr *addrs;
	size_t naddrs;
	size_t probes;			/* running */
	struct compose_req *reqs;
};

/* ---- pure parts ------------------------------------------------------------------------ */

int acct_compose_parse(const char *data, size_t len, char ***addrs, size_t *n,
		       const char **err)
{
	json_error_t je;
	json_t *o, *a, *v;
	size_t i;

	*addrs = NULL;
	*n = 0;
	if (len > ACCT_COMPOSE_MAX_BODY) {
		*err = "the body is too large";
		return -1;
	}
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		*err = "the body is not a JSON object";
		json_decref(o);
		return -1;
	}
	a = json_object_get(o, "recipients");
	if (!json_is_array(a)) {
		*err = "recipients: an array of mail addresses";
		json_decref(o);
		return -1;
	}
	if (json_array_size(a) > ACCT_COMPOSE_MAX_RCPTS) {
		*err = "recipients: at most 100 addresses at a time";
		json_decref(o);
		return -1;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) > ACCT_COMPOSE_MAX_ADDR ||
		    memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
			*err = "recipients: each one a mail address of at most 320 bytes";
			json_decref(o);
			return -1;
		}
	}
	*n = json_array_size(a);
	*addrs = xcalloc(*n + 1, sizeof(char *));
	json_array_foreach(a, i, v)
		(*addrs)[i] = xstrdup(json_string_value(v));
	json_decref(o);
	return 0;
}

const char *acct_compose_transport(const struct acct_compose_probe *p, bool guarantee,
				   char **reason)
{
	const char *why = p->why ? p->why : "the relay cannot deliver to this domain now";

	if (p->verdict == POLICY_PROCEED) {
		*reason = p->dane ? xasprintf("encrypted, and the server's certificate is "
					      "verified with DANE (%s%s%s)", p->host ? p->host : "",
					      p->tls ? ", " : "", p->tls ? p->tls : "")
				  : xasprintf("encrypted with TLS (%s%s%s)", p->host ? p->host : "",
					      p->tls ? ", " : "", p->tls ? p->tls : "");
		return p->dane ? "dane" : "tls";
	}
	/* a security failure holds a guaranteed message; without the guarantee it goes anyway */
	if (p->verdict == POLICY_HOLD && !guarantee) {
		*reason = xasprintf("your TLS-sending guarantee is off, so this message would go "
				    "without that protection: %s", why);
		return "plaintext";
	}
	if (p->verdict == POLICY_HOLD)
		*reason = xasprintf("your TLS-sending guarantee would stop this message: %s", why);
	else
		*reason = xstrdup(why);
	return "stop";
}

/* ---- the caches ------------------------------------------------------------------------- */

static void domain_free(struct compose_domain *d)
{
	if (d->mta)
		mta_cancel(d->mta);
	mta_probe_free(d->job.probe);
	free(d->job.msg_id);
	free(d->job.sender);
	free(d->job.domain);
	free(d->found.host);
	free(d->found.tls);
	free(d->found.why);
	free(d->domain);
	free(d);
}

static void addr_free(struct compose_addr *a)
{
	if (a->state == ENTRY_RUNNING && a->c->ks)
		keysearch_cancel(a->c->ks, a->handle);
	json_decref(a->key);
	free(a->address);
	free(a);
}

/* Drop entries no request uses that expired (or, when over max, the oldest done ones). */
static void prune_domains(struct acct_compose *c, int64_t now)
{
	for (struct compose_domain **pp = &c->domains; *pp;) {
		struct compose_domain *d = *pp;

		if (d->refs == 0 && d->state == ENTRY_DONE &&
		    (d->expires <= now || c->ndomains > ACCT_COMPOSE_MAX_DOMAINS)) {
			*pp = d->next;
			c->ndomains--;
			domain_free(d);
		} else {
			pp = &d->next;
		}
	}
}

static void prune_addrs(struct acct_compose *c, int64_t now)
{
	for (struct compose_addr **pp = &c->addrs; *pp;) {
		struct compose_addr *a = *pp;

		if (a->refs == 0 && a->state == ENTRY_DONE &&
		    (a->expires <= now || c->naddrs > ACCT_COMPOSE_MAX_ADDRS)) {
			*pp = a->next;
			c->naddrs--;
			addr_free(a);
		} else {
			pp = &a->next;
		}
	}
}

/* ---- requests ---------------------------------------------------------------------------- */

static void creq_free(struct compose_req *r)
{
	if (r->deadline)
		event_free(r->deadline);
	for (size_t i = 0; i < r->n; i++) {
		if (r->dom[i])
			r->dom[i]->refs--;
		if (r->key[i])
			r->key[i]->refs--;
		free(r->addrs[i]);
	}
	free(r->addrs);
	free(r->dom);
	free(r->key);
	free(r);
}

static void creq_unlink(struct compose_req *r)
{
	for (struct compose_req **pp = &r->c->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			return;
		}
	}
}

static bool creq_ready(const struct compose_req *r)
{
	for (size_t i = 0; i < r->n; i++)
		if ((r->dom[i] && r->dom[i]->state != ENTRY_DONE) ||
		    (r->key[i] && r->key[i]->state != ENTRY_DONE))
			return false;
	return true;
}

/* One recipient's answer; what is still being looked up is "pending". */
static json_t *creq_entry_json(const struct compose_req *r, size_t i)
{
	const struct compose_domain *d = r->dom[i];
	const struct compose_addr *k = r->key[i];
	bool pending = (d && d->state != ENTRY_DONE) || (k && k->state != ENTRY_DONE);
	char *reason = NULL;
	const char *t = "stop";
	json_t *o;

	if (d == NULL)
		reason = xstrdup("not a valid mail address");
	else if (d->state != ENTRY_DONE)
		reason = xstrdup("the domain's mail servers are still being checked: ask again in a "
				 "few seconds");
	else
		t = acct_compose_transport(&d->found, r->guarantee, &reason);
	o = json_pack("{s:s, s:s, s:s, s:O, s:b}", "address", r->addrs[i], "transport", t,
		      "reason", reason, "key", k && k->state == ENTRY_DONE && k->key ? k->key
										   : json_null(),
		      "pending", pending);
	free(reason);
	return o;
}

static json_t *creq_json(const struct compose_req *r)
{
	json_t *a = json_array();

	for (size_t i = 0; i < r->n; i++)
		json_array_append_new(a, creq_entry_json(r, i));
	return json_pack("{s:o}", "recipients", a);
}

/* A slow domain (a server that does not answer) must not hold the compose window. */
static void creq_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct compose_req *r = arg;

	creq_unlink(r);
	log_info("event=account_recipients_partial recipients=%zu", r->n);
	acct_reply_json(r->req, 200, creq_json(r));
	creq_free(r);
}

/* Answer every request whose entries are all done. */
static void creq_answer_ready(struct acct_compose *c)
{
	for (struct compose_req **pp = &c->reqs; *pp;) {
		struct compose_req *r = *pp;

		if (!creq_ready(r)) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		acct_reply_json(r->req, 200, creq_json(r));
		creq_free(r);
	}
}

static void creq_abort(struct acct_req *req, void *arg)
{
	struct compose_req *r = arg;

	creq_unlink(r);
	creq_free(r);
}

/* ---- probes ---------------------------------------------------------------------------- */

static void probe_start_waiting(struct acct_compose *c);

/* What the probe found, kept for the domain. */
static void probe_keep(struct compose_domain *d)
{
	const struct mta_probe *p = d->job.probe;

	d->found.verdict = p->verdict;
	d->found.why = mta_probe_reason(p, d->domain);
	for (size_t i = 0; i < p->nhost; i++) {
		const struct mta_probe_host *h = &p->hosts[i];

		if (!h->ok)
			continue;
		/* the relay takes the first usable host in preference order */
		d->found.dane = h->dane == DANE_AUTH && h->tls.dane == TLS_DANE_RESULT_PASS;
		d->found.host = xstrdup(h->name);
		d->found.tls = h->tls.version[0] ? xstrdup(h->tls.version) : NULL;
		break;
	}
}

static void probe_done(struct mta_job *job, void *arg)
{
	struct compose_domain *d = arg;
	struct acct_compose *c = d->c;

	d->mta = NULL;	/* mta_finish freed it */
	probe_keep(d);
	log_info("event=account_probe domain=%s verdict=%s dane=%s", d->domain,
		 policy_action_name(d->found.verdict), d->found.dane ? "yes" : "no");
	mta_probe_free(d->job.probe);
	d->job.probe = NULL;
	d->state = ENTRY_DONE;
	d->expires = (int64_t)time(NULL) + ACCT_COMPOSE_TTL;
	c->probes--;
	probe_start_waiting(c);
	creq_answer_ready(c);
}

static void probe_start(struct compose_domain *d)
{
	struct acct_compose *c = d->c;

	d->state = ENTRY_RUNNING;
	c->probes++;
	d->job.msg_id = xstrdup("recipients-status");
	d->job.sender = xstrdup("");
	d->job.domain = xstrdup(d->domain);
	d->job.guarantee = true;
	d->job.probe = xcalloc(1, sizeof(*d->job.probe));
	d->mta = mta_start(c->relay, &d->job, probe_done, d);
}

static void probe_start_waiting(struct acct_compose *c)
{
	for (struct compose_domain *d = c->domains; d && c->probes < ACCT_COMPOSE_MAX_PROBES;
	     d = d->next)
		if (d->state == ENTRY_WAITING)
			probe_start(d);
}

/* The entry for domain (A-labels): a fresh one, or one being looked up. */
static struct compose_domain *domain_get(struct acct_compose *c, const char *domain,
					 int64_t now)
{
	struct compose_domain *d;

	for (d = c->domains; d; d = d->next)
		if (strcmp(d->domain, domain) == 0 && (d->state != ENTRY_DONE || d->expires > now))
			return d;
	d = xcalloc(1, sizeof(*d));
	d->c = c;
	d->domain = xstrdup(domain);
	d->state = ENTRY_WAITING;
	d->next = c->domains;
	c->domains = d;
	c->ndomains++;
	return d;
}

/* ---- key search ------------------------------------------------------------------------ */

/* The recommended key as {"type","fingerprint","source","trust"}, or null. */
static json_t *key_json(const struct ks_result *r)
{
	const struct ks_key *k;
	const char *source = NULL;

	if (r == NULL || r->recommended < 0 || (size_t)r->recommended >= r->nkeys)
		return json_null();
	k = &r->keys[r->recommended];
	for (size_t i = 0; i < k->nsrcs && source == NULL; i++)
		if (k->srcs[i].trust == k->trust)
			source = k->srcs[i].source;
	return json_pack("{s:s, s:s, s:s?, s:s}", "type", keys_kind_name(k->hit.kind),
			 "fingerprint", k->hit.fingerprint, "source", source, "trust",
			 ks_trust_name(k->trust));
}

static void search_done(struct ks_result *result, void *arg)
{
	struct compose_addr *a = arg;

	a->key = key_json(result);
	ks_result_free(result);
	a->state = ENTRY_DONE;
	a->expires = (int64_t)time(NULL) + ACCT_COMPOSE_TTL;
	creq_answer_ready(a->c);
}

static struct compose_addr *addr_get(struct acct_compose *c, const char *address, int64_t now)
{
	char *lc = str_lower(xstrdup(address));
	struct compose_addr *a;

	for (a = c->addrs; a; a = a->next) {
		if (strcmp(a->address, lc) == 0 && (a->state != ENTRY_DONE || a->expires > now)) {
			free(lc);
			return a;
		}
	}
	a = xcalloc(1, sizeof(*a));
	a->c = c;
	a->address = lc;
	a->state = ENTRY_RUNNING;
	a->next = c->addrs;
	c->addrs = a;
	c->naddrs++;
	a->handle = keysearch_start(c->ks, address, KS_TYPE_ANY, false, search_done, a);
	return a;
}

/* ---- the handler ------------------------------------------------------------------------- */

/* Is the user's guarantee in force now? (No account: no guarantee, as the relay decides.) */
static bool user_guarantee(struct acct_req *req)
{
	struct db *db = acct_http_db(acct_req_server(req));
	struct account *acct = account_find(db, acct_req_who(req)->address);
	bool on = acct && account_guarantee_active(acct, (int64_t)time(NULL));

	account_free(acct);
	return on;
}

/* Fill r's entries; the domain of an address that is not one stays NULL. */
static void creq_entries(struct acct_compose *c, struct compose_req *r, int64_t now)
{
	for (size_t i = 0; i < r->n; i++) {
		const char *dom = addr_valid(r->addrs[i]) ? addr_domain(r->addrs[i]) : NULL;
		char *ascii = dom ? domain_to_ascii(dom) : NULL;

		if (ascii == NULL)
			continue;
		r->dom[i] = domain_get(c, ascii, now);
		r->dom[i]->refs++;
		free(ascii);
		if (c->ks) {
			r->key[i] = addr_get(c, r->addrs[i], now);
			r->key[i]->refs++;
		}
	}
}

static void compose_handle(struct acct_req *req, void *arg)
{
	struct acct_compose *c = arg;
	size_t len;
	const char *body = acct_req_body(req, &len), *err = NULL;
	int64_t now = (int64_t)time(NULL);
	struct timeval wait = { ACCT_COMPOSE_WAIT, 0 };
	struct compose_req *r;
	char **addrs;
	size_t n;

	if (acct_compose_parse(body ? body : "", body ? len : 0, &addrs, &n, &err) < 0) {
		acct_reply_error(req, 400, err);
		return;
	}
	prune_domains(c, now);
	prune_addrs(c, now);
	r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->req = req;
	r->guarantee = user_guarantee(req);
	r->n = n;
	r->addrs = addrs;
	r->dom = xcalloc(n + 1, sizeof(*r->dom));
	r->key = xcalloc(n + 1, sizeof(*r->key));
	creq_entries(c, r, now);
	probe_start_waiting(c);
	r->next = c->reqs;
	c->reqs = r;
	r->deadline = evtimer_new(acct_http_base(c->http), creq_deadline, r);
	if (r->deadline == NULL)
		fatalx("cannot create a timer");
	evtimer_add(r->deadline, &wait);
	acct_req_on_abort(req, creq_abort, r);
	/* every answer cached: at once (a search's callback never runs inside its start) */
	creq_answer_ready(c);
}

struct acct_compose *acct_compose_register(struct acct_http *h, struct relay *relay,
					   struct keysearch *ks)
{
	struct acct_compose *c = xcalloc(1, sizeof(*c));

	c->http = h;
	c->relay = relay;
	c->ks = ks;
	acct_route(h, ACCT_POST, "/v1/recipients/status", ACCT_EXACT, compose_handle, c);
	return c;
}

void acct_compose_free(struct acct_compose *c)
{
	if (c == NULL)
		return;
	while (c->reqs) {
		struct compose_req *r = c->reqs;

		c->reqs = r->next;
		creq_free(r);
	}
	while (c->domains) {
		struct compose_domain *d = c->domains;

		c->domains = d->next;
		domain_free(d);
	}
	while (c->addrs) {
		struct compose_addr *a = c->addrs;

		c->addrs = a->next;
		addr_free(a);
	}
	free(c);
}
