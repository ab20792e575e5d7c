/*
 * mig_contacts_job.c - an address book job under serve's API (see mig_contacts_job.h).
 *
 * The copy blocks on one request at a time, so it runs in a thread of its own and this
 * one (the job's thread) watches it: four times a second it writes the books and counters
 * to the record and reads the cancel mark, like a mail job's watcher does.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "config.h"
#include "log.h"
#include "mig_api.h"
#include "mig_contacts.h"
#include "mig_contacts_job.h"
#include "mig_job.h"
#include "xmalloc.h"

#define POLL_NS (250 * 1000 * 1000)

struct mig_contacts_job {
	struct mig_contacts_opts o;
	char *src_url, *src_user, *dst_url, *dst_user;	/* src_url NULL: the preset's */
	struct mig_cred *src_cred, *dst_cred;
	/* what is replaced in every text that is kept: URL, host[:port], host, user */
	char *scrub[4];
	struct mig_contacts c;
	atomic_bool over;	/* the copy's thread has returned */
};

/* Wipe and free a string that named the source. */
static void wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* "host[:port]" of an http(s) URL (userinfo dropped), and the host alone. */
static void url_host(const char *url, char **hostport, char **host)
{
	const char *a = strstr(url, "://"), *end, *at, *hend, *c;

	*hostport = *host = NULL;
	if (a == NULL)
		return;
	a += 3;
	end = a + strcspn(a, "/?#");
	for (at = a; at < end; at++)
		if (*at == '@')
			a = at + 1;
	if (end == a)
		return;
	*hostport = xstrndup(a, (size_t)(end - a));
	hend = end;
	if (*a == '[' && (c = memchr(a, ']', (size_t)(end - a))) != NULL)
		hend = c + 1;
	else if (*a != '[' && (c = memchr(a, ':', (size_t)(end - a))) != NULL)
		hend = c;
	*host = xstrndup(a, (size_t)(hend - a));
}

struct mig_contacts_job *mig_contacts_job_new(struct mig_api_body *b,
					      const struct pw_config *cfg, const char **err)
{
	const struct mig_contacts_preset *p = mig_contacts_preset(b->source);
	struct mig_contacts_job *j;
	const char *url;

	if (*cfg->migrate.carddav_destination == '\0') {
		*err = "[migrate] carddav_destination is not set on this node";
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	if (p == NULL) {	/* a URL: a CardDAV server */
		p = mig_contacts_preset("carddav");
		j->src_url = xstrdup(b->source);
	} else if (b->source_url) {
		j->src_url = xstrdup(b->source_url);
	}
	url = j->src_url ? j->src_url : p->url;
	j->src_user = b->source_user ? xstrdup(b->source_user) : NULL;
	j->dst_url = xstrdup(cfg->migrate.carddav_destination);
	j->dst_user = xstrdup(b->destination_user);
	j->src_cred = b->source_cred;
	j->dst_cred = b->destination_cred;
	b->source_cred = b->destination_cred = NULL;
	j->scrub[0] = xstrdup(url);
	url_host(url, &j->scrub[1], &j->scrub[2]);
	j->scrub[3] = j->src_user ? xstrdup(j->src_user) : NULL;
	j->o = (struct mig_contacts_opts){ .preset = p, .from_url = j->src_url,
		.from_user = j->src_user, .from_cred = j->src_cred, .oauth = b->token,
		.to_url = j->dst_url, .to_user = j->dst_user, .to_cred = j->dst_cred,
		.allow_private = cfg->migrate.allow_private,
		.ca_file = cfg->migrate.ca_file[0] ? cfg->migrate.ca_file : NULL };
	return j;
}

void mig_contacts_job_free(struct mig_contacts_job *j)
{
	if (j == NULL)
		return;
	mig_cred_free(j->src_cred);
	mig_cred_free(j->dst_cred);
	wipe_free(j->src_url);
	wipe_free(j->src_user);
	free(j->dst_url);
	free(j->dst_user);
	for (size_t i = 0; i < sizeof(j->scrub) / sizeof(j->scrub[0]); i++)
		wipe_free(j->scrub[i]);
	free(j);
}

/* ---- what the record gets ----------------------------------------------------------------- */

/* s with every text of the source replaced (s freed; NULL stays NULL). */
static char *scrub(const struct mig_contacts_job *j, char *s)
{
	static const char *const with[] = { "the old provider's address", "the old provider's server",
					    "the old provider's server", "the old user name" };

	for (size_t i = 0; s && i < sizeof(j->scrub) / sizeof(j->scrub[0]); i++) {
		const char *what = j->scrub[i];
		char *at;

		if (what == NULL || *what == '\0')
			continue;
		while ((at = strstr(s, what)) != NULL) {
			char *n = xasprintf("%.*s%s%s", (int)(at - s), s, with[i], at + strlen(what));

			free(s);
			s = n;
		}
	}
	return s;
}

/* The counters as the record keeps them (the caller holds the lock). */
static void progress_locked(const struct mig_contacts *c, struct mig_progress *p)
{
	uint64_t found = 0;

	for (size_t i = 0; i < c->nbooks; i++)
		found += c->book[i].cards;
	memset(p, 0, sizeof(*p));
	p->folders_total = (int)(c->books_total > c->nbooks ? c->books_total : c->nbooks);
	p->folders_done = (int)c->books_done;
	p->msgs_total = found > c->existing ? found - c->existing : 0;
	p->msgs_done = c->copied;
	p->bytes_total = p->bytes_done = c->bytes_copied;
	p->failed = c->failed;
}

/* Scrub the texts, write the books that changed and return the counters. */
static void save(struct mig_contacts_job *j, struct db *db, int64_t id, struct mig_progress *p)
{
	struct mig_contacts *c = &j->c;

	pthread_mutex_lock(&c->lock);
	c->fatal = scrub(j, c->fatal);
	for (size_t i = 0; i < c->nbooks; i++) {
		struct mig_contacts_book *b = &c->book[i];
		struct mig_job_folder row;

		if (!b->dirty)
			continue;
		b->error = scrub(j, b->error);
		row = (struct mig_job_folder){ .folder = b->name, .dest = b->name,
			.messages = b->copied + b->existing, .bytes = b->bytes, .failed = b->failed,
			.started = b->started, .finished = b->finished, .error = b->error };
		if (mig_job_save_folder(db, id, &row) == 0)
			b->dirty = false;
	}
	progress_locked(c, p);
	pthread_mutex_unlock(&c->lock);
}

static void *copy_thread(void *arg)
{
	struct mig_contacts_job *j = arg;

	(void)mig_contacts_run(&j->c);
	atomic_store(&j->over, true);
	return NULL;
}

static const char *end_state(const struct mig_contacts *c, bool serve_stopping)
{
	if (c->fatal)
		return "failed";
	if (c->stopped)
		return serve_stopping ? "interrupted" : "cancelled";
	return c->failed > 0 ? "partial" : "done";
}

void mig_contacts_job_run(struct mig_contacts_job *j, struct db *db, int64_t id,
			  const atomic_bool *stopping)
{
	struct mig_progress p;
	pthread_t th;
	bool asked = false;
	const char *state;

	mig_contacts_init(&j->c, &j->o);
	if (pthread_create(&th, NULL, copy_thread, j) != 0)
		fatalx("cannot start an address book copy");
	while (!atomic_load(&j->over)) {
		struct timespec ts = { 0, POLL_NS };

		nanosleep(&ts, NULL);
		save(j, db, id, &p);
		if (!asked && (mig_job_beat(db, id, &p) == 1 || atomic_load(stopping))) {
			asked = true;
			mig_contacts_stop(&j->c);
		}
	}
	pthread_join(th, NULL);
	/* the credentials are not needed any more: wiped now, not when the job is reaped */
	mig_cred_free(j->src_cred);
	mig_cred_free(j->dst_cred);
	j->src_cred = j->dst_cred = NULL;
	save(j, db, id, &p);
	(void)mig_job_beat(db, id, &p);
	state = end_state(&j->c, atomic_load(stopping));
	(void)mig_job_finish(db, id, state, &p, j->c.fatal);
	log_info("event=migration_end job=%lld kind=contacts state=%s address_books=%d "
		 "contacts=%llu existing=%llu failed=%llu", (long long)id, state,
		 p.folders_total, (unsigned long long)p.msgs_done,
		 (unsigned long long)j->c.existing, (unsigned long long)p.failed);
	mig_contacts_free(&j->c);
}
