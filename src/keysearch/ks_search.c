/*
 * ks_search.c - one key search: every configured source starts at once on the event loop,
 * each with its own timer ([keysearch] source_timeout) inside the search's deadline. Sources
 * answered from the cache finish at once.
 *
 * The caller is answered as soon as no source still asked could return a key ranked above
 * the best one found (ks_better_may_come), or, when it asked for a complete answer, when
 * the last source is done (or the deadline cancels the rest). Sources still asked when the
 * caller was answered go on in the background, so that their answers reach the cache; the
 * search is freed when the last one is done.
 *
 * A source whose lookup (same source, same address) is already in flight for another
 * search joins it instead of asking again: it gets that lookup's outcome when it ends.
 * A complete result made only from cached outcomes is cached as a whole, with its JSON.
 */
#include "ks.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "http.h"
#include "log.h"
#include "stats.h"
#include "strutil.h"
#include "xmalloc.h"

/* One configured source instance: a kind and, for keyservers, a base URL. */
struct ks_src_def {
	enum ks_source_kind kind;
	char *server;
	int order;
};

struct keysearch {
	struct event_base *base;
	const struct pw_config *cfg;		/* borrowed */
	struct dns *dns;			/* borrowed */
	struct db *db;				/* borrowed */
	struct http_client *http;
	struct ks_cache *cache;
	struct ks_src_def *defs;
	size_t ndefs;
	struct ks_search *searches;
	int next_id;
};

struct ks_src {
	struct ks_search *s;
	const struct ks_src_def *def;
	struct ks_outcome out;
	bool started, done, cached, no_cache;
	int64_t start_ms, end_ms, elapsed_ms;
	int64_t cache_expires;		/* when cached: when the cache entry expires */
	struct event *timer;
	void *state;
	char *cache_key;
	struct ks_src *leader;		/* the lookup in flight this one joined, or NULL */
	struct ks_src *followers;	/* sources that joined this lookup */
	struct ks_src *next_follower;
};

struct ks_search {
	struct keysearch *ks;
	int id;
	char *address;
	enum ks_type type;
	struct ks_src *srcs;
	size_t nsrcs, pending;
	int64_t start_ms;
	struct event *deadline, *finish;
	keysearch_cb cb;		/* NULL once answered (or cancelled) */
	void *arg;
	bool complete;			/* the caller waits for every source */
	bool starting;			/* sources are being started: do not answer yet */
	struct ks_result *answer;	/* a whole answer from the cache */
	struct ks_search *next;
};

static const char *ks_kind_name(enum ks_source_kind k)
{
	static const char *const names[] = { "local", "dns", "wkd", "vks", "hkp" };

	return names[k];
}

/* ---- configuration --------------------------------------------------------------------- */

static void ks_def_add(struct keysearch *ks, enum ks_source_kind kind, const char *server)
{
	ks->defs = xreallocarray(ks->defs, ks->ndefs + 1, sizeof(*ks->defs));
	ks->defs[ks->ndefs] = (struct ks_src_def){ kind, server ? xstrdup(server) : NULL,
						   (int)ks->ndefs };
	ks->ndefs++;
}

/* One source instance per keyserver base URL; a trailing slash is dropped. */
static int ks_def_servers(struct keysearch *ks, enum ks_source_kind kind, const char *list,
			  char **err)
{
	char *copy = xstrdup(list), *save = NULL;
	int n = 0;

	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		size_t len = strlen(t);

		while (len > 0 && t[len - 1] == '/')
			t[--len] = '\0';
		if (!str_has_prefix_ci(t, "https://") && !str_has_prefix_ci(t, "http://")) {
			*err = xasprintf("[keysearch] %s_servers: \"%s\" is not an http(s) URL",
					 ks_kind_name(kind), t);
			free(copy);
			return -1;
		}
		ks_def_add(ks, kind, t);
		n++;
	}
	free(copy);
	return n;
}

static int ks_parse_sources(struct keysearch *ks, const struct keysearch_conf *kc, char **err)
{
	char *copy = xstrdup(kc->sources), *save = NULL;
	int rc = 0;

	for (char *t = strtok_r(copy, ", \t", &save); t && rc == 0;
	     t = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(t, "local") == 0)
			ks_def_add(ks, KS_SRC_LOCAL, NULL);
		else if (strcmp(t, "dns") == 0)
			ks_def_add(ks, KS_SRC_DNS, NULL);
		else if (strcmp(t, "wkd") == 0)
			ks_def_add(ks, KS_SRC_WKD, NULL);
		else if (strcmp(t, "vks") == 0)
			rc = ks_def_servers(ks, KS_SRC_VKS, kc->vks_servers, err) < 0 ? -1 : 0;
		else if (strcmp(t, "hkp") == 0)
			rc = ks_def_servers(ks, KS_SRC_HKP, kc->hkp_servers, err) < 0 ? -1 : 0;
		else {
			*err = xasprintf("[keysearch] sources: unknown source \"%s\" (local, dns, "
					 "wkd, vks, hkp)", t);
			rc = -1;
		}
	}
	free(copy);
	return rc;
}

struct keysearch *keysearch_new(struct event_base *base, const struct pw_config *cfg,
				struct dns *dns, struct db *db, char **err)
{
	struct keysearch *ks = xcalloc(1, sizeof(*ks));
	struct http_client_opts ho = {
		.allow_private = cfg->keysearch.allow_private,
		.ca_file = *cfg->keysearch.ca_file ? cfg->keysearch.ca_file : NULL,
		.user_agent = "postwarden",
	};

	ks->base = base;
	ks->cfg = cfg;
	ks->dns = dns;
	ks->db = db;
	ks->next_id = 1;
	if (ks_parse_sources(ks, &cfg->keysearch, err) < 0) {
		keysearch_free(ks);
		return NULL;
	}
	if ((ks->http = http_client_new(base, &ho)) == NULL) {
		*err = xstrdup("cannot create the HTTP client for key search");
		keysearch_free(ks);
		return NULL;
	}
	ks->cache = ks_cache_new(cfg->keysearch.cache_entries);
	return ks;
}

/* ---- what sources see ------------------------------------------------------------------ */

const char *ks_src_address(const struct ks_src *src) { return src->s->address; }
enum ks_type ks_src_type(const struct ks_src *src) { return src->s->type; }
struct ks_outcome *ks_src_outcome(struct ks_src *src) { return &src->out; }
struct dns *ks_src_dns(const struct ks_src *src) { return src->s->ks->dns; }
struct db *ks_src_db(const struct ks_src *src) { return src->s->ks->db; }
struct http_client *ks_src_http(const struct ks_src *src) { return src->s->ks->http; }
const char *ks_src_server(const struct ks_src *src) { return src->def->server; }
void *ks_src_state(const struct ks_src *src) { return src->state; }
void ks_src_set_state(struct ks_src *src, void *state) { src->state = state; }

const struct keysearch_conf *ks_src_conf(const struct ks_src *src)
{
	return &src->s->ks->cfg->keysearch;
}

long ks_src_time_left_ms(const struct ks_src *src)
{
	int64_t left = src->end_ms - monotonic_ms();

	return left < 1 ? 1 : (long)left;
}

/* ---- running --------------------------------------------------------------------------- */

/* Leave the lookup src joined. */
static void ks_src_unfollow(struct ks_src *src)
{
	struct ks_src **pp = &src->leader->followers;

	while (*pp && *pp != src)
		pp = &(*pp)->next_follower;
	if (*pp)
		*pp = src->next_follower;
	src->leader = NULL;
	src->next_follower = NULL;
}

static void ks_src_cancel(struct ks_src *src)
{
	if (src->leader) {
		ks_src_unfollow(src);
		return;
	}
	switch (src->def->kind) {
	case KS_SRC_LOCAL:
		break;
	case KS_SRC_DNS:
		ks_dns_cancel(src);
		break;
	case KS_SRC_WKD:
		ks_wkd_cancel(src);
		break;
	case KS_SRC_VKS:
	case KS_SRC_HKP:
		ks_vks_cancel(src);
		break;
	}
	src->state = NULL;
}

/* The key of a whole cached answer for address and type. */
static char *ks_answer_key(enum ks_type type, const char *address)
{
	return xasprintf("=%d|%s", (int)type, address);
}

/* A source's answer for address changed: whole answers made from the old one go. */
static void ks_answer_drop(struct keysearch *ks, const char *address)
{
	static const enum ks_type types[] = { KS_TYPE_ANY, KS_TYPE_OPENPGP, KS_TYPE_SMIME };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char *key = ks_answer_key(types[i], address);

		ks_cache_drop(ks->cache, key);
		free(key);
	}
}

/* The rank of the best key found so far by finished sources; false when none. */
static bool ks_search_best(const struct ks_search *s, struct ks_rank *best)
{
	bool found = false;

	for (size_t i = 0; i < s->nsrcs; i++) {
		const struct ks_src *src = &s->srcs[i];

		for (size_t j = 0; src->done && j < src->out.nhits; j++) {
			const struct ks_hit *h = &src->out.hits[j];
			struct ks_rank r = { h->trust, src->def->order };

			if (!ks_type_wants(s->type, h->kind))
				continue;
			if (!found || ks_rank_above(&r, best))
				*best = r;
			found = true;
		}
	}
	return found;
}

/* Whether the caller can be answered now: nothing still asked could rank above. */
static bool ks_search_may_answer(const struct ks_search *s)
{
	struct ks_rank best, *out = xcalloc(s->nsrcs ? s->nsrcs : 1, sizeof(*out));
	size_t n = 0;
	bool found = ks_search_best(s, &best), better;

	for (size_t i = 0; i < s->nsrcs; i++)
		if (s->srcs[i].started && !s->srcs[i].done)
			out[n++] = (struct ks_rank){ ks_kind_best_trust(s->srcs[i].def->kind),
						     s->srcs[i].def->order };
	better = ks_better_may_come(found ? &best : NULL, out, n);
	free(out);
	return !better;
}

/* Answer (or free) the search when it is time. */
static void ks_search_check(struct ks_search *s)
{
	if (s->pending == 0 ||
	    (s->cb && !s->complete && !s->starting && ks_search_may_answer(s)))
		event_active(s->finish, EV_TIMEOUT, 0);
}

void ks_src_done(struct ks_src *src)
{
	struct ks_search *s = src->s;
	int64_t ttl;

	if (src->done)
		return;
	src->done = true;
	src->elapsed_ms = monotonic_ms() - src->start_ms;
	if (src->timer)
		event_del(src->timer);
	if (src->out.detail == NULL)
		ks_outcome_set(&src->out, src->out.status, "%s", ks_status_name(src->out.status));
	stats_keysearch_source(ks_kind_name(src->def->kind), ks_status_name(src->out.status),
			       (long long)src->elapsed_ms);
	ttl = ks_cache_ttl(&src->out, &s->ks->cfg->keysearch);
	if (src->cache_key && !src->no_cache && ttl > 0) {
		ks_cache_put(s->ks->cache, src->cache_key, &src->out, (int64_t)time(NULL) + ttl);
		ks_answer_drop(s->ks, s->address);
	}
	/* Those that joined this lookup get its outcome (already cached, if at all). */
	while (src->followers) {
		struct ks_src *f = src->followers;

		src->followers = f->next_follower;
		f->leader = NULL;
		f->next_follower = NULL;
		ks_outcome_release(&f->out);
		ks_outcome_copy(&f->out, &src->out);
		f->no_cache = true;
		ks_src_done(f);
	}
	s->pending--;
	ks_search_check(s);
}

/* The source's time (or the search's deadline) is up: keep what arrived, stop the rest. */
static void ks_src_timeout(struct ks_src *src, const char *why)
{
	if (src->done)
		return;
	ks_src_cancel(src);
	src->no_cache = true;
	if (src->out.nhits > 0)
		ks_outcome_set(&src->out, KS_FOUND, "%s; other lookups cut off", why);
	else
		ks_outcome_set(&src->out, KS_TIMEOUT, "%s", why);
	ks_src_done(src);
}

static void ks_src_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ks_src *src = arg;
	bool cut = src->end_ms < src->start_ms + ks_src_conf(src)->source_timeout * 1000;

	ks_src_timeout(src, cut ? "search deadline reached" : "no answer within source_timeout");
}

static void ks_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ks_search *s = arg;

	for (size_t i = 0; i < s->nsrcs; i++)
		ks_src_timeout(&s->srcs[i], "search deadline reached");
}

static void ks_search_unlink(struct ks_search *s)
{
	struct ks_search **pp = &s->ks->searches;

	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
}

/* Free a search; sources still running are cancelled first. */
static void ks_search_free(struct ks_search *s)
{
	for (size_t i = 0; i < s->nsrcs; i++) {
		struct ks_src *src = &s->srcs[i];

		if (src->started && !src->done)
			ks_src_cancel(src);
		/* Those that joined a lookup that goes away wait for their own timers. */
		for (struct ks_src *f = src->followers, *next; f; f = next) {
			next = f->next_follower;
			f->leader = NULL;
			f->next_follower = NULL;
		}
		src->followers = NULL;
		if (src->timer)
			event_free(src->timer);
		ks_outcome_release(&src->out);
		free(src->cache_key);
	}
	if (s->deadline)
		event_free(s->deadline);
	if (s->finish)
		event_free(s->finish);
	ks_result_free(s->answer);
	free(s->srcs);
	free(s->address);
	free(s);
}

/* Merge what the sources have now; sources still asked are listed as pending. */
static struct ks_result *ks_search_result(struct ks_search *s)
{
	struct ks_merge_in *in = xcalloc(s->nsrcs ? s->nsrcs : 1, sizeof(*in));
	struct ks_outcome pending = { .status = KS_PENDING,
				      .detail = (char *)"still asked, in the background" };
	struct ks_result *r;
	int64_t now = monotonic_ms();

	for (size_t i = 0; i < s->nsrcs; i++) {
		struct ks_src *src = &s->srcs[i];
		bool open = src->started && !src->done;

		in[i] = (struct ks_merge_in){ ks_kind_name(src->def->kind), src->def->server,
					      src->def->order, src->cached,
					      open ? now - src->start_ms : src->elapsed_ms,
					      open ? &pending : &src->out };
	}
	r = ks_merge(s->address, s->type, in, s->nsrcs);
	r->elapsed_ms = now - s->start_ms;
	free(in);
	return r;
}

/*
 * Keep r as a whole answer when it was made from cached outcomes only (then it is what the
 * next search would make again), until the first of them or of its keys expires.
 */
static void ks_search_keep_answer(struct ks_search *s, struct ks_result *r)
{
	int64_t expires = INT64_MAX;
	bool any = false;
	char *key;

	if (!r->complete)
		return;
	for (size_t i = 0; i < s->nsrcs; i++) {
		const struct ks_src *src = &s->srcs[i];

		if (src->def->kind == KS_SRC_LOCAL)
			continue;	/* asked again every time: see ks_answer_fits */
		if (src->started)
			return;		/* asked over the network, or timed out */
		if (src->cached) {
			any = true;
			if (src->cache_expires < expires)
				expires = src->cache_expires;
		}
	}
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i].hit.expires != 0 && r->keys[i].hit.expires < expires)
			expires = r->keys[i].hit.expires;
	if (!any)
		return;
	key = ks_answer_key(s->type, s->address);
	ks_cache_put_result(s->ks->cache, key, r, expires);
	free(key);
}

static void ks_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ks_search *s = arg;
	struct ks_result *r;
	keysearch_cb cb = s->cb;
	void *cbarg = s->arg;

	if (cb == NULL) {
		/* Answered before: the sources left in the background are done now. */
		if (s->pending == 0) {
			ks_search_unlink(s);
			ks_search_free(s);
		}
		return;
	}
	if (s->answer) {
		r = s->answer;
		s->answer = NULL;
	} else {
		r = ks_search_result(s);
		ks_search_keep_answer(s, r);
	}
	s->cb = NULL;
	log_info("event=keysearch_done keys=%zu sources=%zu complete=%s elapsed_ms=%lld",
		 r->nkeys, s->nsrcs, r->complete ? "yes" : "no",
		 (long long)(monotonic_ms() - s->start_ms));
	if (s->pending == 0) {
		ks_search_unlink(s);
		ks_search_free(s);
	}
	cb(r, cbarg);
}

static bool ks_src_openpgp_only(enum ks_source_kind k)
{
	return k == KS_SRC_WKD || k == KS_SRC_VKS || k == KS_SRC_HKP;
}

/* The same lookup (source and cache key) in flight for another search, or NULL. */
static struct ks_src *ks_src_in_flight(struct keysearch *ks, const struct ks_src *src)
{
	for (struct ks_search *o = ks->searches; o; o = o->next) {
		for (size_t i = 0; o != src->s && i < o->nsrcs; i++) {
			struct ks_src *x = &o->srcs[i];

			if (x->def == src->def && x->started && !x->done && x->leader == NULL &&
			    x->cache_key && strcmp(x->cache_key, src->cache_key) == 0)
				return x;
		}
	}
	return NULL;
}

/* Set src's timer: source_timeout, within the search's deadline. */
static void ks_src_arm(struct ks_search *s, struct ks_src *src)
{
	const struct keysearch_conf *kc = &s->ks->cfg->keysearch;
	int64_t deadline_ms = s->start_ms + kc->deadline * 1000;
	struct timeval tv;

	src->end_ms = src->start_ms + kc->source_timeout * 1000;
	if (src->end_ms > deadline_ms)
		src->end_ms = deadline_ms;
	src->timer = evtimer_new(s->ks->base, ks_src_timer_cb, src);
	tv.tv_sec = (src->end_ms - src->start_ms) / 1000;
	tv.tv_usec = ((src->end_ms - src->start_ms) % 1000) * 1000;
	evtimer_add(src->timer, &tv);
	src->started = true;
	s->pending++;
}

/*
 * Join the same lookup when another search has it in flight (a search right after an
 * early answer, while the rest is still asked): one request per source and address.
 */
static bool ks_src_join(struct ks_search *s, struct ks_src *src)
{
	struct ks_src *leader;

	if (src->cache_key == NULL || s->ks->cfg->keysearch.cache_entries == 0 ||
	    (leader = ks_src_in_flight(s->ks, src)) == NULL)
		return false;
	ks_src_arm(s, src);
	src->leader = leader;
	src->next_follower = leader->followers;
	leader->followers = src;
	return true;
}

/* Start one source, or answer it from the cache. */
static void ks_src_start(struct ks_search *s, struct ks_src *src)
{
	src->start_ms = monotonic_ms();
	if (s->type == KS_TYPE_SMIME && ks_src_openpgp_only(src->def->kind)) {
		ks_outcome_set(&src->out, KS_NONE, "not asked: OpenPGP keys only");
		src->done = true;
		return;
	}
	if (src->def->kind != KS_SRC_LOCAL) {
		src->cache_key = xasprintf("%s|%s|%d|%s", ks_kind_name(src->def->kind),
					   src->def->server ? src->def->server : "",
					   src->def->kind == KS_SRC_DNS ? (int)s->type : 0,
					   s->address);
		if (ks_cache_get(s->ks->cache, src->cache_key, (int64_t)time(NULL), &src->out,
				 &src->cache_expires)) {
			src->cached = true;
			src->done = true;
			return;
		}
	}
	if (ks_src_join(s, src))
		return;
	ks_src_arm(s, src);
	switch (src->def->kind) {
	case KS_SRC_LOCAL:
		ks_local_start(src);
		break;
	case KS_SRC_DNS:
		ks_dns_start(src);
		break;
	case KS_SRC_WKD:
		ks_wkd_start(src);
		break;
	case KS_SRC_VKS:
		ks_vks_start(src);
		break;
	case KS_SRC_HKP:
		ks_hkp_start(src);
		break;
	}
}

/*
 * Ask the directory first (it needs no network and answers at once). True when it has a
 * key: the address is one of the provider's own, and the directory is the authority for it.
 */
static bool ks_directory_answers(struct ks_search *s)
{
	bool found = false;

	for (size_t i = 0; i < s->nsrcs; i++) {
		struct ks_src *src = &s->srcs[i];

		if (src->def->kind != KS_SRC_LOCAL)
			continue;
		ks_src_start(s, src);
		found |= src->done && src->out.status == KS_FOUND;
	}
	return found;
}

/*
 * For the provider's own users no outside source is asked: nothing could outrank the
 * directory, the answer comes without waiting for the network, and keyservers never learn
 * whom the provider's webmail users write to.
 */
static void ks_skip_outside_sources(struct ks_search *s)
{
	for (size_t i = 0; i < s->nsrcs; i++) {
		struct ks_src *src = &s->srcs[i];

		if (src->def->kind == KS_SRC_LOCAL)
			continue;
		ks_outcome_set(&src->out, KS_NONE, "not asked: the address is in this provider's directory");
		src->done = true;
	}
}

/*
 * The local source gives the same outcome as when answer was made (the directory is asked
 * every time: a key may have been published since, by another process).
 */
static bool ks_answer_fits(const struct ks_search *s, const struct ks_result *answer)
{
	if (answer->nreports != s->nsrcs)
		return false;
	for (size_t i = 0; i < s->nsrcs; i++) {
		const struct ks_src *src = &s->srcs[i];
		const struct ks_report *rep = &answer->reports[i];

		if (strcmp(rep->source, ks_kind_name(src->def->kind)) != 0)
			return false;
		if (src->def->kind == KS_SRC_LOCAL &&
		    (rep->status != src->out.status || !src->out.detail ||
		     strcmp(rep->detail, src->out.detail) != 0))
			return false;
	}
	return true;
}

/* A whole cached answer for the search: every other source is then done. */
static void ks_search_cached_answer(struct ks_search *s)
{
	char *key = ks_answer_key(s->type, s->address);
	struct ks_result *r = ks_cache_get_result(s->ks->cache, key, (int64_t)time(NULL));

	if (r && !ks_answer_fits(s, r)) {
		ks_result_free(r);
		ks_cache_drop(s->ks->cache, key);
		r = NULL;
	}
	free(key);
	if (r == NULL)
		return;
	s->answer = r;
	for (size_t i = 0; i < s->nsrcs; i++)
		s->srcs[i].done = true;
}

int keysearch_start(struct keysearch *ks, const char *address, enum ks_type type,
		    bool complete, keysearch_cb cb, void *arg)
{
	struct ks_search *s = xcalloc(1, sizeof(*s));
	struct timeval tv = { ks->cfg->keysearch.deadline, 0 };

	s->ks = ks;
	s->id = ks->next_id;
	ks->next_id = ks->next_id == 0x7fffffff ? 1 : ks->next_id + 1;
	s->address = xstrdup(address);
	s->type = type;
	s->cb = cb;
	s->arg = arg;
	s->complete = complete;
	s->start_ms = monotonic_ms();
	s->finish = event_new(ks->base, -1, 0, ks_finish_cb, s);
	s->deadline = evtimer_new(ks->base, ks_deadline_cb, s);
	evtimer_add(s->deadline, &tv);
	s->next = ks->searches;
	ks->searches = s;
	s->srcs = xcalloc(ks->ndefs ? ks->ndefs : 1, sizeof(*s->srcs));
	s->nsrcs = ks->ndefs;
	/* pending stays above zero until every source started: none finishes the search early. */
	s->pending = 1;
	s->starting = true;
	for (size_t i = 0; i < s->nsrcs; i++) {
		s->srcs[i].s = s;
		s->srcs[i].def = &ks->defs[i];
	}
	if (log_debug_enabled())
		log_debug("event=keysearch_start address=%s type=%s", address, ks_type_name(type));
	if (ks_directory_answers(s))
		ks_skip_outside_sources(s);
	else
		ks_search_cached_answer(s);
	for (size_t i = 0; i < s->nsrcs; i++)
		if (!s->srcs[i].done)
			ks_src_start(s, &s->srcs[i]);
	s->starting = false;
	s->pending--;
	ks_search_check(s);
	return s->id;
}

void keysearch_cancel(struct keysearch *ks, int handle)
{
	for (struct ks_search *s = ks->searches; s; s = s->next) {
		if (s->id == handle) {
			s->cb = NULL;
			if (s->pending == 0) {
				ks_search_unlink(s);
				ks_search_free(s);
			}
			return;
		}
	}
}

void keysearch_free(struct keysearch *ks)
{
	if (ks == NULL)
		return;
	/* Nobody is answered any more: cut every joined lookup before freeing. */
	for (struct ks_search *s = ks->searches; s; s = s->next)
		for (size_t i = 0; i < s->nsrcs; i++)
			s->srcs[i].leader = s->srcs[i].followers = s->srcs[i].next_follower = NULL;
	while (ks->searches) {
		struct ks_search *s = ks->searches;

		ks->searches = s->next;
		ks_search_free(s);
	}
	if (ks->http)
		http_client_free(ks->http);
	ks_cache_free(ks->cache);
	for (size_t i = 0; i < ks->ndefs; i++)
		free(ks->defs[i].server);
	free(ks->defs);
	free(ks);
}
