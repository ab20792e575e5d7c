/*
 * mig_contacts.c - the address book copy (see mig_contacts.h): the presets, the source side
 * (CardDAV books batch by batch, Graph pages, exported files), the destination's books and
 * PUTs, and the counters, per book and in all, that the command line prints and the API
 * keeps in the job record.
 *
 * A failure that stops the run (a login refused, a book that cannot be listed or created)
 * is said of the side it happened on ("the old address book: ..." / "the new address book:
 * ...") and ends with what to do; a card that cannot be copied is counted with its reason
 * and the others go on.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "contacts_csv.h"
#include "contacts_graph.h"
#include "http.h"
#include "mig_contacts.h"
#include "vcard.h"
#include "xmalloc.h"

/* The providers' CardDAV and Graph endpoints; each may be overridden with a URL. */
static const struct mig_contacts_preset presets[] = {
	{ "carddav", MIG_CONTACTS_CARDDAV, NULL, CARDDAV_AUTH_BASIC },
	{ "gmail", MIG_CONTACTS_CARDDAV, "https://www.googleapis.com/.well-known/carddav",
	  CARDDAV_AUTH_BEARER },
	{ "icloud", MIG_CONTACTS_CARDDAV, "https://contacts.icloud.com/", CARDDAV_AUTH_BASIC },
	{ "yahoo", MIG_CONTACTS_CARDDAV, "https://carddav.address.yahoo.com/",
	  CARDDAV_AUTH_BASIC },
	{ "aol", MIG_CONTACTS_CARDDAV, "https://carddav.aol.com/", CARDDAV_AUTH_BASIC },
	{ "gmx", MIG_CONTACTS_CARDDAV, "https://carddav.gmx.net/", CARDDAV_AUTH_BASIC },
	{ "webde", MIG_CONTACTS_CARDDAV, "https://carddav.web.de/", CARDDAV_AUTH_BASIC },
	{ "outlook", MIG_CONTACTS_GRAPH, "https://graph.microsoft.com/v1.0/me/contacts?$top=100",
	  CARDDAV_AUTH_BEARER },
	{ "vcard", MIG_CONTACTS_VCARD_FILE, NULL, CARDDAV_AUTH_NONE },
	{ "google-csv", MIG_CONTACTS_CSV_FILE, NULL, CARDDAV_AUTH_NONE },
	{ "outlook-csv", MIG_CONTACTS_CSV_FILE, NULL, CARDDAV_AUTH_NONE },
};

const struct mig_contacts_preset *mig_contacts_preset(const char *name)
{
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (strcmp(presets[i].name, name) == 0)
			return &presets[i];
	return NULL;
}

bool mig_contacts_is_file(const struct mig_contacts_preset *p)
{
	return p->kind == MIG_CONTACTS_VCARD_FILE || p->kind == MIG_CONTACTS_CSV_FILE;
}

void mig_contacts_init(struct mig_contacts *c, const struct mig_contacts_opts *o)
{
	memset(c, 0, sizeof(*c));
	c->o = *o;
	if (c->o.to_book == NULL)
		c->o.to_book = "contacts";
	if (c->o.from_url == NULL)
		c->o.from_url = o->preset->url;
	pthread_mutex_init(&c->lock, NULL);
	atomic_init(&c->stop, false);
}

void mig_contacts_stop(struct mig_contacts *c)
{
	atomic_store(&c->stop, true);
}

void mig_contacts_free(struct mig_contacts *c)
{
	carddav_free(c->dst);
	free(c->dst_home);
	for (size_t i = 0; i < c->nreasons; i++)
		free(c->reasons[i].text);
	for (size_t i = 0; i < c->nbooks; i++) {
		free(c->book[i].name);
		free(c->book[i].error);
	}
	free(c->book);
	free(c->fatal);
	pthread_mutex_destroy(&c->lock);
	memset(c, 0, sizeof(*c));
}

/* The index of "no destination book" (a source book that cannot be named there). */
#define NO_BOOK ((size_t)-1)

/* ---- counting --------------------------------------------------------------------------- */

/* Asked to stop? Noted once, so the caller can tell a stop from an end. */
static bool stopping(struct mig_contacts *c)
{
	if (!atomic_load(&c->stop))
		return false;
	c->stopped = true;
	return true;
}

static void progress(struct mig_contacts *c)
{
	if (c->o.progress)
		c->o.progress(c->o.progress_arg);
}

/* A new destination book in the counters; its index. */
static size_t book_add(struct mig_contacts *c, const char *name)
{
	size_t i;

	pthread_mutex_lock(&c->lock);
	c->book = xreallocarray(c->book, c->nbooks + 1, sizeof(*c->book));
	i = c->nbooks++;
	memset(&c->book[i], 0, sizeof(c->book[i]));
	c->book[i].name = xstrdup(name);
	c->book[i].started = time(NULL);
	c->book[i].dirty = true;
	pthread_mutex_unlock(&c->lock);
	return i;
}

/* The book is over; failed: the run's failure is its error too (copied under the lock,
 * since a reader may replace the text meanwhile). */
static void book_end(struct mig_contacts *c, size_t bi, bool failed)
{
	pthread_mutex_lock(&c->lock);
	c->book[bi].finished = time(NULL);
	c->book[bi].dirty = true;
	if (failed && c->fatal && c->book[bi].error == NULL)
		c->book[bi].error = xstrdup(c->fatal);
	c->books_done++;
	pthread_mutex_unlock(&c->lock);
}

/* Cards found in book bi (listed, or read from a file or Graph). */
static void book_listed(struct mig_contacts *c, size_t bi, size_t n)
{
	pthread_mutex_lock(&c->lock);
	c->book[bi].cards += n;
	c->book[bi].dirty = true;
	pthread_mutex_unlock(&c->lock);
}

/* One card not copied, counted under its reason (the caller holds the lock). */
static void not_copied_locked(struct mig_contacts *c, size_t bi, const char *why)
{
	c->failed++;
	if (bi != NO_BOOK) {
		c->book[bi].failed++;
		c->book[bi].dirty = true;
	}
	for (size_t i = 0; i < c->nreasons; i++)
		if (strcmp(c->reasons[i].text, why) == 0) {
			c->reasons[i].count++;
			return;
		}
	if (c->nreasons < MIG_CONTACTS_MAX_REASONS) {
		c->reasons[c->nreasons].text = xstrdup(why);
		c->reasons[c->nreasons++].count = 1;
	} else {
		c->reasons[MIG_CONTACTS_MAX_REASONS - 1].count++;	/* the last stands for the rest */
	}
}

static void not_copied(struct mig_contacts *c, size_t bi, const char *why)
{
	pthread_mutex_lock(&c->lock);
	c->seen++;
	not_copied_locked(c, bi, why);
	pthread_mutex_unlock(&c->lock);
}

/* ---- failures with advice ------------------------------------------------------------- */

/* What to do after an HTTP status (0: no answer) from the old or the new server. */
static const char *advice(long status, bool source)
{
	switch (status) {
	case 401:
		return source ? "check the user name and password; where the provider asks for "
				"one, use an app password (or sign in again for a fresh token)"
			      : "check the destination user's password";
	case 403:
		return source ? "check that the account may use its address book over CardDAV "
				"(some providers have it switched off)"
			      : "check that the destination user may write address books";
	case 404:
		return source ? "check the address book URL or the preset"
			      : "check [migrate] carddav_destination";
	case 507:
		return "make room in the new address book, then run the job again";
	case 0:
		return "check that the server can be reached, then run the job again";
	default:
		return "run the job again later: what was copied stays, and nothing is copied twice";
	}
}

/* Set the run's failure (the first one stays): "SIDE: TEXT. What to do: ADVICE". */
static void fail(struct mig_contacts *c, bool source, const char *text, const char *todo)
{
	char *msg = xasprintf("the %s address book: %s. What to do: %s", source ? "old" : "new",
			      text, todo);

	pthread_mutex_lock(&c->lock);
	if (c->fatal == NULL)
		c->fatal = msg;
	else
		free(msg);
	pthread_mutex_unlock(&c->lock);
}

static void fail_dav(struct mig_contacts *c, struct carddav *d, bool source)
{
	fail(c, source, carddav_error(d), advice(carddav_last_status(d), source));
}

/* ---- the destination -------------------------------------------------------------------- */

/* A resource name taken over from the source when it is a plain path segment. */
static bool segment_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@%~+=", *s))
			return false;
	return true;
}

/*
 * Name one card for the destination book (name NULL or not a plain segment: made from the
 * card); false, with the reason counted, when it is not a single vCard.
 */
static bool prepare(struct mig_contacts *c, size_t bi, const char *book, const char *name,
		    const char *card, size_t len, struct carddav_put_item *it)
{
	struct vcard_list one;
	const char *err = NULL;
	char *made = NULL;

	if (vcard_split(card, len, &one, &err) < 0 || one.n != 1) {
		if (err == NULL)
			vcard_list_free(&one);
		not_copied(c, bi, "not a single vCard");
		return false;
	}
	vcard_list_free(&one);
	if (name == NULL || !segment_ok(name))
		name = made = vcard_resource_name(card, len);
	memset(it, 0, sizeof(*it));
	it->url = xasprintf("%s%s", book, name);
	it->card = card;
	it->len = len;
	free(made);
	return true;
}

/* Count one card's PUT (the caller holds the lock). */
static void count_put(struct mig_contacts *c, size_t bi, const struct carddav_put_item *it)
{
	char why[96];

	c->seen++;
	c->bytes_seen += it->len;
	switch (it->res) {
	case CARDDAV_PUT_CREATED:
		c->copied++;
		c->bytes_copied += it->len;
		c->book[bi].copied++;
		c->book[bi].bytes += it->len;
		break;
	case CARDDAV_PUT_EXISTS:
		c->existing++;
		c->book[bi].existing++;
		break;
	case CARDDAV_PUT_FAILED:
		if (it->status > 0)
			snprintf(why, sizeof(why), "the destination refused it (HTTP %ld)",
				 it->status);
		else
			snprintf(why, sizeof(why), "the destination did not answer");
		not_copied_locked(c, bi, why);
		break;
	}
	c->book[bi].dirty = true;
}

/* Write the prepared cards and count what happened to each. */
static void put_items(struct mig_contacts *c, size_t bi, struct carddav_put_item *items,
		      size_t n)
{
	carddav_put_many(c->dst, items, n);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < n; i++)
		count_put(c, bi, &items[i]);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n; i++)
		free(items[i].url);
}

/* The destination address book called name (created when missing); NULL after failing. */
static char *dst_book(struct mig_contacts *c, size_t bi, const char *name,
		      const char *displayname)
{
	const char *home = c->dst_home;
	char *url = xasprintf("%s%s%s/", home, home[strlen(home) - 1] == '/' ? "" : "/", name);

	if (carddav_make_book(c->dst, url, displayname) < 0) {
		free(url);
		fail_dav(c, c->dst, false);
		book_end(c, bi, true);
		return NULL;
	}
	return url;
}

static int destination(struct mig_contacts *c)
{
	struct carddav_opts o = { .auth = CARDDAV_AUTH_BASIC, .user = c->o.to_user,
				  .cred = c->o.to_cred, .allow_private = c->o.allow_private,
				  .ca_file = c->o.ca_file };
	const char *err = NULL;

	c->dst = carddav_new(&o, &err);
	if (c->dst == NULL) {
		fail(c, false, err, advice(-1, false));
		return -1;
	}
	if (carddav_discover(c->dst, c->o.to_url, &c->dst_home) < 0) {
		fail_dav(c, c->dst, false);
		return -1;
	}
	return 0;
}

/* ---- CardDAV sources -------------------------------------------------------------------- */

/* One batch of a source book: multiget, then a PUT per card. */
static int batch(struct mig_contacts *c, size_t bi, struct carddav *src, const char *book,
		 char **urls, size_t n, const char *dbook)
{
	struct dav_ms ms;
	struct carddav_put_item *items;
	size_t k = 0;

	if (carddav_multiget(src, book, urls, n, &ms) < 0)
		return -1;
	items = xcalloc(ms.n ? ms.n : 1, sizeof(*items));
	for (size_t i = 0; i < ms.n; i++) {
		struct dav_resp *x = &ms.resp[i];
		char *seg;

		if (x->address_data == NULL) {
			not_copied(c, bi, "the source sent no data for it");
			continue;
		}
		seg = carddav_last_segment(x->href);
		if (prepare(c, bi, dbook, seg, x->address_data, strlen(x->address_data),
			    &items[k]))
			k++;
		free(seg);
	}
	put_items(c, bi, items, k);
	free(items);
	dav_ms_free(&ms);
	return 0;
}

/* The cards of one listed source book, batch by batch; 0, or -1 with the failure set. */
static int copy_cards(struct mig_contacts *c, size_t bi, struct carddav *src,
		      const struct carddav_book *b, const char *dbook)
{
	char **urls = NULL;
	size_t n = 0;
	bool synced = false;
	int rc = 0;

	if (carddav_list_cards(src, b, &urls, &n, &synced) < 0) {
		fail_dav(c, src, true);
		return -1;
	}
	book_listed(c, bi, n);
	pthread_mutex_lock(&c->lock);
	c->synced_books += synced;
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n && rc == 0 && !stopping(c); i += CARDDAV_BATCH) {
		size_t k = n - i < CARDDAV_BATCH ? n - i : CARDDAV_BATCH;

		if (batch(c, bi, src, b->url, urls + i, k, dbook) < 0) {
			fail_dav(c, src, true);
			rc = -1;
		}
		progress(c);
	}
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
	return rc;
}

static int copy_book(struct mig_contacts *c, struct carddav *src, const struct carddav_book *b)
{
	size_t bi;
	char *dbook;
	int rc;

	if (!segment_ok(b->name)) {
		not_copied(c, NO_BOOK, "an address book name that is not a plain path segment");
		return 0;
	}
	bi = book_add(c, b->name);
	if ((dbook = dst_book(c, bi, b->name, b->displayname)) == NULL)
		return -1;
	rc = copy_cards(c, bi, src, b, dbook);
	free(dbook);
	book_end(c, bi, rc < 0);
	return rc;
}

static int from_carddav(struct mig_contacts *c, struct carddav *src)
{
	struct carddav_books books;
	char *home = NULL;
	int rc = 0;

	if (carddav_discover(src, c->o.from_url, &home) < 0 ||
	    carddav_list_books(src, home, &books) < 0) {
		free(home);
		fail_dav(c, src, true);
		return -1;
	}
	free(home);
	if (books.n == 0) {
		carddav_books_free(&books);
		fail(c, true, "the source account has no address book",
		     "check that the user name is the one whose contacts should move");
		return -1;
	}
	pthread_mutex_lock(&c->lock);
	c->books_total = books.n;
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < books.n && rc == 0 && !stopping(c); i++)
		rc = copy_book(c, src, &books.b[i]);
	carddav_books_free(&books);
	return rc;
}

/* ---- made cards (Graph, files) ----------------------------------------------------------- */

/* Write a list of made cards into the to_book address book; skipped: rows not usable. */
static int put_list(struct mig_contacts *c, const struct vcard_list *l, size_t skipped,
		    const char *why_skipped)
{
	size_t bi = book_add(c, c->o.to_book);
	char *book;

	pthread_mutex_lock(&c->lock);
	c->books_total = 1;
	pthread_mutex_unlock(&c->lock);
	book_listed(c, bi, l->n + skipped);
	for (size_t i = 0; i < skipped; i++)
		not_copied(c, bi, why_skipped);
	if ((book = dst_book(c, bi, c->o.to_book, NULL)) == NULL)
		return -1;
	for (size_t i = 0; i < l->n && !stopping(c); i += CARDDAV_BATCH) {
		size_t n = l->n - i < CARDDAV_BATCH ? l->n - i : CARDDAV_BATCH, k = 0;
		struct carddav_put_item items[CARDDAV_BATCH];

		for (size_t j = 0; j < n; j++)
			if (prepare(c, bi, book, NULL, l->card[i + j], l->len[i + j], &items[k]))
				k++;
		put_items(c, bi, items, k);
		progress(c);
	}
	free(book);
	book_end(c, bi, false);
	return 0;
}

/* One Graph page into all; 1 with *next (or NULL at the end), or -1 with the failure set. */
static int graph_page(struct mig_contacts *c, struct carddav *src, const char *url,
		      struct vcard_list *all, size_t *skipped, char **next)
{
	struct http_response *resp = carddav_get(src, url, GRAPH_PAGE_MAX);
	const char *err = NULL;
	char text[160];

	*next = NULL;
	if (resp == NULL) {
		fail_dav(c, src, true);
		return -1;
	}
	if (resp->status != 200) {
		snprintf(text, sizeof(text), "%s (HTTP %ld)", resp->status == 401 ?
			 "Microsoft Graph refused the token: sign in again for a fresh one" :
			 "Microsoft Graph did not give the contacts", resp->status);
		fail(c, true, text, advice(resp->status, true));
		http_response_free(resp);
		return -1;
	}
	if (contacts_graph_page(resp->body, resp->len, all, next, skipped, &err) < 0) {
		snprintf(text, sizeof(text), "Microsoft Graph's answer: %s", err);
		fail(c, true, text, advice(-1, true));
		http_response_free(resp);
		return -1;
	}
	http_response_free(resp);
	return 1;
}

/* Graph pages, @odata.nextLink after @odata.nextLink, all on the first URL's origin. */
static int from_graph(struct mig_contacts *c, struct carddav *src)
{
	struct vcard_list all = { 0 };
	char *url = xstrdup(c->o.from_url), *origin = carddav_origin(c->o.from_url);
	size_t skipped = 0;
	int rc = -1;

	for (int page = 0; url && page < MIG_CONTACTS_GRAPH_PAGES; page++) {
		char *next = NULL, *norigin;

		if (stopping(c) || graph_page(c, src, url, &all, &skipped, &next) < 0)
			goto out;
		free(url);
		url = NULL;
		norigin = next ? carddav_origin(next) : NULL;
		if (next && (origin == NULL || norigin == NULL || strcmp(origin, norigin) != 0)) {
			free(norigin);
			free(next);
			fail(c, true, "Microsoft Graph's next page is on another host: not followed",
			     "run the job again later");
			goto out;
		}
		free(norigin);
		url = next;
	}
	rc = put_list(c, &all, skipped, "a contact with no name, address or number");
out:
	free(url);
	free(origin);
	vcard_list_free(&all);
	return c->stopped && c->fatal == NULL ? 0 : rc;
}

/* Read a whole file, at most max bytes. */
static char *read_file(const char *path, size_t max, size_t *len, const char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf b;
	char chunk[65536];
	ssize_t n;

	if (fd < 0) {
		*err = "cannot open the file";
		return NULL;
	}
	buf_init(&b, max);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || buf_add(&b, chunk, (size_t)n) < 0) {
			*err = n < 0 ? "cannot read the file" : "the file is too large";
			close(fd);
			buf_free(&b);
			return NULL;
		}
	}
	close(fd);
	return buf_release(&b, len);
}

static int from_file(struct mig_contacts *c)
{
	struct vcard_list l = { 0 };
	size_t len = 0, skipped = 0;
	const char *err = NULL;
	bool csv = c->o.preset->kind == MIG_CONTACTS_CSV_FILE;
	char *text = read_file(c->o.from_file, csv ? CSV_FILE_MAX : VCARD_FILE_MAX, &len, &err);
	int rc;

	if (text == NULL) {
		fail(c, true, err, "check the file's name and that it can be read");
		return -1;
	}
	rc = csv ? contacts_csv_to_vcards(text, len, &l, &skipped, &err)
		 : vcard_split(text, len, &l, &err);
	free(text);
	if (rc < 0) {
		char *msg = xasprintf("the file is not usable: %s", err);

		fail(c, true, msg, "export the address book again, as vCard or CSV");
		free(msg);
		vcard_list_free(&l);
		return -1;
	}
	rc = put_list(c, &l, skipped, "a row with no name, address or number");
	vcard_list_free(&l);
	return rc;
}

/* ---- the run ------------------------------------------------------------------------------ */

static int source(struct mig_contacts *c)
{
	const struct mig_contacts_preset *p = c->o.preset;
	struct carddav_opts so = { .allow_private = c->o.allow_private, .ca_file = c->o.ca_file };
	struct carddav *src;
	const char *err = NULL;
	int rc;

	if (mig_contacts_is_file(p))
		return from_file(c);
	so.auth = c->o.oauth ? CARDDAV_AUTH_BEARER : p->auth;
	so.user = c->o.from_user;
	so.cred = c->o.from_cred;
	if ((src = carddav_new(&so, &err)) == NULL) {
		fail(c, true, err, advice(-1, true));
		return -1;
	}
	rc = p->kind == MIG_CONTACTS_GRAPH ? from_graph(c, src) : from_carddav(c, src);
	carddav_free(src);
	return rc;
}

int mig_contacts_run(struct mig_contacts *c)
{
	int rc = destination(c);

	if (rc == 0 && !stopping(c))
		rc = source(c);
	progress(c);
	return rc;
}
