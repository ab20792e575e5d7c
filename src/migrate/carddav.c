/*
 * carddav.c - the CardDAV client; see carddav.h.
 *
 * Each request is started on the client's own event base and the loop runs until its
 * callback has fired. Redirects (the well-known URL answers with one) are followed by
 * hand, at most CARDDAV_MAX_REDIRECTS, so that a PROPFIND stays a PROPFIND and its body
 * and Depth go along.
 */
#include "carddav.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "mig_cred.h"
#include "xmalloc.h"

#define CARDDAV_MAX_REDIRECTS	5
#define CARDDAV_RETRIES		3	/* after a 429 or 503 */
#define CARDDAV_RETRY_MAX_S	30	/* longest Retry-After honoured */
#define CARDDAV_RETRY_DEFAULT_S	2
#define CARDDAV_MAX_CARDS_BOOK	100000

struct carddav {
	struct event_base *base;
	struct http_client *http;
	char *auth_header;	/* "Authorization: ..." or NULL; wiped when freed */
	char *error;
	long status;
};

struct carddav_wait {
	struct http_response *resp;
	bool done;
};

static void carddav_set_error(struct carddav *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void carddav_set_error(struct carddav *d, const char *fmt, ...)
{
	va_list ap;
	struct buf b;

	buf_init(&b, 0);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	free(d->error);
	d->error = buf_release(&b, NULL);
}

const char *carddav_error(const struct carddav *d)
{
	return d->error ? d->error : "no error";
}

long carddav_last_status(const struct carddav *d)
{
	return d->status;
}

static char *carddav_basic(const char *user, const struct mig_cred *cred)
{
	size_t ulen = strlen(user), n = ulen + 1 + cred->len;
	unsigned char *plain = xmalloc(n);
	char *b64 = xmalloc(4 * ((n + 2) / 3) + 1), *h;

	memcpy(plain, user, ulen);
	plain[ulen] = ':';
	memcpy(plain + ulen + 1, cred->secret, cred->len);
	EVP_EncodeBlock((unsigned char *)b64, plain, (int)n);
	h = xasprintf("Authorization: Basic %s", b64);
	OPENSSL_cleanse(plain, n);
	OPENSSL_cleanse(b64, strlen(b64));
	free(plain);
	free(b64);
	return h;
}

struct carddav *carddav_new(const struct carddav_opts *o, const char **err)
{
	struct carddav *d = xcalloc(1, sizeof(*d));
	struct http_client_opts ho = { .allow_private = o->allow_private, .ca_file = o->ca_file,
				       .user_agent = "postwarden-migrate" };

	d->base = event_base_new();
	if (d->base == NULL)
		fatalx("event_base_new failed");
	d->http = http_client_new(d->base, &ho);
	if (d->http == NULL) {
		*err = "cannot start the HTTP client";
		event_base_free(d->base);
		free(d);
		return NULL;
	}
	if (o->auth == CARDDAV_AUTH_BASIC && o->cred && o->user)
		d->auth_header = carddav_basic(o->user, o->cred);
	else if (o->auth == CARDDAV_AUTH_BEARER && o->cred)
		d->auth_header = xasprintf("Authorization: Bearer %s", o->cred->secret);
	return d;
}

void carddav_free(struct carddav *d)
{
	if (d == NULL)
		return;
	http_client_free(d->http);
	event_base_free(d->base);
	if (d->auth_header) {
		OPENSSL_cleanse(d->auth_header, strlen(d->auth_header));
		free(d->auth_header);
	}
	free(d->error);
	free(d);
}

/* ---- URLs ----------------------------------------------------------------------------- */

char *carddav_origin(const char *url)
{
	const char *p = strstr(url, "://"), *slash;

	if (p == NULL || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8)))
		return NULL;
	slash = strchr(p + 3, '/');
	if (slash == NULL)
		return xstrdup(url);
	return xstrndup(url, (size_t)(slash - url));
}

char *carddav_resolve(const char *base, const char *href)
{
	char *origin, *res;
	const char *path, *q;

	if (strncasecmp(href, "http://", 7) == 0 || strncasecmp(href, "https://", 8) == 0)
		return xstrdup(href);
	if (strstr(href, "://") != NULL)
		return NULL;
	origin = carddav_origin(base);
	if (origin == NULL)
		return NULL;
	if (href[0] == '/') {
		res = xasprintf("%s%s", origin, href);
	} else {
		/* relative: against the base's directory */
		path = base + strlen(origin);
		q = strrchr(path, '/');
		res = xasprintf("%s%.*s/%s", origin, q ? (int)(q - path) : 0, path, href);
	}
	free(origin);
	return res;
}

char *carddav_last_segment(const char *url)
{
	size_t n = strlen(url);
	const char *start;

	while (n > 0 && url[n - 1] == '/')
		n--;
	start = url + n;
	while (start > url && start[-1] != '/')
		start--;
	return xstrndup(start, (size_t)(url + n - start));
}

/* Same host (and scheme), or an https URL: where the credentials may go. */
static bool carddav_url_ok(const char *from, const char *to)
{
	char *a = carddav_origin(from), *b = carddav_origin(to);
	bool ok = a && b && (strcasecmp(a, b) == 0 || strncasecmp(to, "https://", 8) == 0);

	free(a);
	free(b);
	return ok;
}

/* ---- requests ------------------------------------------------------------------------- */

static void carddav_cb(struct http_response *resp, void *arg)
{
	struct carddav_wait *w = arg;

	w->resp = resp;
	w->done = true;
}

static void carddav_wake(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Wait seconds on the client's loop (a throttled server asked for a pause). */
static void carddav_pause(struct carddav *d, long seconds)
{
	struct timeval tv = { seconds, 0 };
	bool woken = false;
	struct event *ev = evtimer_new(d->base, carddav_wake, &woken);

	if (ev == NULL)
		fatalx("evtimer_new failed");
	evtimer_add(ev, &tv);
	while (!woken)
		if (event_base_loop(d->base, EVLOOP_ONCE) < 0)
			fatalx("event loop failed");
	event_free(ev);
}

/* One request, waited for; NULL (with the error set) when none could be made. */
static struct http_response *carddav_send(struct carddav *d, const char *method,
					  const char *url, const char *const *extra,
					  const char *body, size_t len, size_t max_body)
{
	const char *headers[8];
	struct http_request_opts ro = { .timeout_ms = CARDDAV_TIMEOUT_MS, .max_body = max_body };
	struct carddav_wait w = { NULL, false };
	size_t n = 0;

	if (d->auth_header)
		headers[n++] = d->auth_header;
	for (size_t i = 0; extra && extra[i] && n < 7; i++)
		headers[n++] = extra[i];
	headers[n] = NULL;
	d->status = 0;
	if (http_request(d->http, method, url, headers, body, body ? len : 0, &ro, carddav_cb,
			 &w) < 0) {
		carddav_set_error(d, "cannot send a %s request (is the URL an http(s) URL?)",
				  method);
		return NULL;
	}
	while (!w.done)
		if (event_base_loop(d->base, EVLOOP_ONCE) < 0)
			fatalx("event loop failed");
	if (w.resp->result != HTTP_OK) {
		carddav_set_error(d, "%s failed: %s", method, w.resp->error);
		http_response_free(w.resp);
		return NULL;
	}
	d->status = w.resp->status;
	return w.resp;
}

/*
 * One request; a 429 or 503 (providers throttle migrations) is retried up to
 * CARDDAV_RETRIES times after the pause the server asks for (at most 30 s).
 */
static struct http_response *carddav_once(struct carddav *d, const char *method,
					  const char *url, const char *const *extra,
					  const char *body, size_t len, size_t max_body)
{
	for (int attempt = 0;; attempt++) {
		struct http_response *r = carddav_send(d, method, url, extra, body, len, max_body);
		long wait;

		if (r == NULL || (r->status != 429 && r->status != 503) ||
		    attempt >= CARDDAV_RETRIES)
			return r;
		wait = r->retry_after >= 0 ? r->retry_after : CARDDAV_RETRY_DEFAULT_S;
		if (wait > CARDDAV_RETRY_MAX_S)
			wait = CARDDAV_RETRY_MAX_S;
		http_response_free(r);
		log_info("event=migrate_contacts_throttled status=%ld wait=%ld", d->status, wait);
		carddav_pause(d, wait);
	}
}

/* A request with redirects followed by hand; *final_url is where the answer came from. */
static struct http_response *carddav_call(struct carddav *d, const char *method,
					  const char *url, const char *const *extra,
					  const char *body, size_t len, size_t max_body,
					  char **final_url)
{
	char *cur = xstrdup(url);

	for (int hop = 0;; hop++) {
		struct http_response *r = carddav_once(d, method, cur, extra, body, len, max_body);
		char *next;

		if (r == NULL || r->status < 300 || r->status > 399 || r->location == NULL ||
		    r->status == 304) {
			if (final_url)
				*final_url = cur;
			else
				free(cur);
			return r;
		}
		next = carddav_resolve(cur, r->location);
		http_response_free(r);
		if (hop >= CARDDAV_MAX_REDIRECTS || next == NULL || !carddav_url_ok(cur, next)) {
			carddav_set_error(d, "too many or unsafe redirects");
			free(next);
			free(cur);
			return NULL;
		}
		free(cur);
		cur = next;
	}
}

/* The error for an answer that is not what was asked for. */
static void carddav_status_error(struct carddav *d, const char *what, long status)
{
	if (status == 401)
		carddav_set_error(d, "%s: the server refused the user name or password (401); "
				  "check them, and use an app password where the provider "
				  "requires one", what);
	else if (status == 403)
		carddav_set_error(d, "%s: access denied (403)", what);
	else if (status == 404)
		carddav_set_error(d, "%s: not found (404); check the URL", what);
	else
		carddav_set_error(d, "%s: unexpected HTTP status %ld", what, status);
}

static int carddav_propfind(struct carddav *d, const char *url, const char *depth,
			    const char *props, struct dav_ms *ms, char **final_url)
{
	char *body = xasprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			       "<d:propfind xmlns:d=\"DAV:\" "
			       "xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:prop>%s"
			       "</d:prop></d:propfind>", props);
	char *dh = xasprintf("Depth: %s", depth);
	const char *extra[] = { dh, "Content-Type: application/xml; charset=utf-8", NULL };
	struct http_response *r;
	const char *perr = NULL;
	int rc = -1;

	r = carddav_call(d, "PROPFIND", url, extra, body, strlen(body), CARDDAV_MAX_PROPFIND,
			 final_url);
	free(body);
	free(dh);
	if (r == NULL)
		return -1;
	if (r->status != 207)
		carddav_status_error(d, "PROPFIND", r->status);
	else if (dav_ms_parse(r->body, r->len, ms, &perr) < 0)
		carddav_set_error(d, "PROPFIND: the server's answer is unreadable: %s", perr);
	else
		rc = 0;
	http_response_free(r);
	if (rc < 0 && final_url) {
		free(*final_url);
		*final_url = NULL;
	}
	return rc;
}

/* The first response's value of a property, resolved against url. */
static char *carddav_first(const struct dav_ms *ms, const char *url, bool principal)
{
	for (size_t i = 0; i < ms->n; i++) {
		const char *h = principal ? ms->resp[i].principal : ms->resp[i].home;

		if (h)
			return carddav_resolve(url, h);
	}
	return NULL;
}

/* Is the server URL a bare origin (no path, or "/")? Then the well-known URL is tried. */
static bool carddav_bare(const char *url)
{
	const char *p = strstr(url, "://");
	const char *slash = p ? strchr(p + 3, '/') : NULL;

	return slash == NULL || slash[1] == '\0';
}

int carddav_discover(struct carddav *d, const char *url, char **home)
{
	struct dav_ms ms;
	char *ctx = NULL, *principal = NULL;
	int rc;

	*home = NULL;
	if (carddav_bare(url)) {
		char *origin = carddav_origin(url), *wk;

		if (origin == NULL) {
			carddav_set_error(d, "not an http(s) URL");
			return -1;
		}
		wk = xasprintf("%s/.well-known/carddav", origin);
		free(origin);
		rc = carddav_propfind(d, wk, "0", "<d:current-user-principal/>", &ms, &ctx);
		free(wk);
		if (rc < 0 && d->status == 401)
			return -1;
		if (rc == 0) {
			principal = carddav_first(&ms, ctx, true);
			dav_ms_free(&ms);
		}
	}
	if (principal == NULL) {
		free(ctx);
		ctx = NULL;
		if (carddav_propfind(d, url, "0", "<d:current-user-principal/>"
				     "<card:addressbook-home-set/>", &ms, &ctx) < 0)
			return -1;
		principal = carddav_first(&ms, ctx, true);
		*home = carddav_first(&ms, ctx, false);
		dav_ms_free(&ms);
		if (*home) {
			free(principal);
			free(ctx);
			return 0;
		}
	}
	if (principal == NULL) {
		/* no principal: the URL is taken as the home set (or an address book) itself */
		*home = ctx;
		return 0;
	}
	free(ctx);
	ctx = NULL;
	rc = carddav_propfind(d, principal, "0", "<card:addressbook-home-set/>", &ms, &ctx);
	if (rc == 0) {
		*home = carddav_first(&ms, ctx, false);
		dav_ms_free(&ms);
		if (*home == NULL)
			carddav_set_error(d, "the principal has no address book home set: "
					  "the server may not offer CardDAV for this account");
	}
	free(principal);
	free(ctx);
	return *home ? 0 : -1;
}

void carddav_books_free(struct carddav_books *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->b[i].url);
		free(b->b[i].name);
		free(b->b[i].displayname);
	}
	free(b->b);
	memset(b, 0, sizeof(*b));
}

int carddav_list_books(struct carddav *d, const char *home, struct carddav_books *out)
{
	struct dav_ms ms;
	char *ctx = NULL;

	memset(out, 0, sizeof(*out));
	if (carddav_propfind(d, home, "1", "<d:resourcetype/><d:displayname/>"
			     "<d:supported-report-set/>", &ms, &ctx) < 0)
		return -1;
	for (size_t i = 0; i < ms.n; i++) {
		struct carddav_book *b;
		char *url;

		if (!ms.resp[i].addressbook)
			continue;
		url = carddav_resolve(ctx, ms.resp[i].href);
		if (url == NULL)
			continue;
		if (url[strlen(url) - 1] != '/') {
			char *u = xasprintf("%s/", url);

			free(url);
			url = u;
		}
		out->b = xrealloc(out->b, (out->n + 1) * sizeof(*out->b));
		b = &out->b[out->n++];
		b->url = url;
		b->name = carddav_last_segment(url);
		b->displayname = ms.resp[i].displayname ? xstrdup(ms.resp[i].displayname) : NULL;
		b->sync_collection = ms.resp[i].sync_collection;
	}
	dav_ms_free(&ms);
	free(ctx);
	return 0;
}

/* Keep the member hrefs of a listing: not collections, not removed, on a safe host. */
static void carddav_members(const struct dav_ms *ms, const char *ctx, char ***hrefs, size_t *n)
{
	for (size_t i = 0; i < ms->n && *n < CARDDAV_MAX_CARDS_BOOK; i++) {
		char *url;

		if (ms->resp[i].collection || ms->resp[i].status == 404)
			continue;	/* the book itself, a sub-collection, a removed member */
		url = carddav_resolve(ctx, ms->resp[i].href);
		if (url == NULL || !carddav_url_ok(ctx, url) || strcmp(url, ctx) == 0) {
			free(url);
			continue;
		}
		*hrefs = xrealloc(*hrefs, (*n + 1) * sizeof(**hrefs));
		(*hrefs)[(*n)++] = url;
	}
}

/* sync-collection with an empty token: every member, in one answer. */
static int carddav_sync_list(struct carddav *d, const char *book, struct dav_ms *ms)
{
	static const char body[] =
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		"<d:sync-collection xmlns:d=\"DAV:\"><d:sync-token/><d:sync-level>1</d:sync-level>"
		"<d:prop><d:getetag/></d:prop></d:sync-collection>";
	const char *extra[] = { "Content-Type: application/xml; charset=utf-8", NULL };
	struct http_response *r;
	const char *perr = NULL;
	int rc = -1;

	r = carddav_call(d, "REPORT", book, extra, body, sizeof(body) - 1, CARDDAV_MAX_PROPFIND,
			 NULL);
	if (r == NULL)
		return -1;
	if (r->status == 207 && dav_ms_parse(r->body, r->len, ms, &perr) == 0)
		rc = 0;
	http_response_free(r);
	return rc;
}

int carddav_list_cards(struct carddav *d, const struct carddav_book *book, char ***hrefs,
		       size_t *n, bool *used_sync)
{
	struct dav_ms ms;
	char *ctx = NULL;

	*hrefs = NULL;
	*n = 0;
	*used_sync = false;
	if (book->sync_collection && carddav_sync_list(d, book->url, &ms) == 0) {
		*used_sync = true;
		carddav_members(&ms, book->url, hrefs, n);
		dav_ms_free(&ms);
		return 0;
	}
	if (carddav_propfind(d, book->url, "1", "<d:resourcetype/><d:getetag/>", &ms, &ctx) < 0)
		return -1;
	carddav_members(&ms, ctx, hrefs, n);
	dav_ms_free(&ms);
	free(ctx);
	return 0;
}

/* The path part of an absolute URL (what goes into an href). */
static const char *carddav_path(const char *url)
{
	const char *p = strstr(url, "://");
	const char *slash = p ? strchr(p + 3, '/') : NULL;

	return slash ? slash : "/";
}

int carddav_multiget(struct carddav *d, const char *book, char *const *urls, size_t n,
		     struct dav_ms *out)
{
	struct buf b;
	struct http_response *r;
	const char *extra[] = { "Depth: 1", "Content-Type: application/xml; charset=utf-8", NULL };
	const char *perr = NULL;
	int rc = -1;

	buf_init(&b, 0);
	buf_adds(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		 "<card:addressbook-multiget xmlns:d=\"DAV:\" "
		 "xmlns:card=\"urn:ietf:params:xml:ns:carddav\">"
		 "<d:prop><d:getetag/><card:address-data/></d:prop>");
	for (size_t i = 0; i < n; i++) {
		char *e = dav_xml_escape(carddav_path(urls[i]));

		buf_addf(&b, "<d:href>%s</d:href>", e);
		free(e);
	}
	buf_adds(&b, "</card:addressbook-multiget>");
	r = carddav_call(d, "REPORT", book, extra, b.data, b.len, CARDDAV_MAX_REPORT, NULL);
	buf_free(&b);
	if (r == NULL)
		return -1;
	if (r->status != 207)
		carddav_status_error(d, "REPORT addressbook-multiget", r->status);
	else if (dav_ms_parse(r->body, r->len, out, &perr) < 0)
		carddav_set_error(d, "REPORT: the server's answer is unreadable: %s", perr);
	else
		rc = 0;
	http_response_free(r);
	return rc;
}

int carddav_make_book(struct carddav *d, const char *url, const char *displayname)
{
	char *dn = dav_xml_escape(displayname ? displayname : "");
	char *body = xasprintf("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			       "<d:mkcol xmlns:d=\"DAV:\" "
			       "xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:set><d:prop>"
			       "<d:resourcetype><d:collection/><card:addressbook/></d:resourcetype>"
			       "%s%s%s</d:prop></d:set></d:mkcol>",
			       *dn ? "<d:displayname>" : "", dn, *dn ? "</d:displayname>" : "");
	const char *extra[] = { "Content-Type: application/xml; charset=utf-8", NULL };
	struct http_response *r;
	struct dav_ms ms;
	char *ctx = NULL;
	int rc = -1;

	free(dn);
	/* already there (as an address book)? then it is used as it is */
	if (carddav_propfind(d, url, "0", "<d:resourcetype/>", &ms, &ctx) == 0) {
		bool book = ms.n > 0 && ms.resp[0].addressbook;

		dav_ms_free(&ms);
		free(ctx);
		free(body);
		if (!book)
			carddav_set_error(d, "the destination has a collection there that is not "
					  "an address book");
		return book ? 0 : -1;
	}
	r = carddav_call(d, "MKCOL", url, extra, body, strlen(body), CARDDAV_MAX_PROPFIND, NULL);
	free(body);
	if (r == NULL)
		return -1;
	if (r->status == 201)
		rc = 0;
	else
		carddav_status_error(d, "creating the destination address book", r->status);
	http_response_free(r);
	return rc;
}

enum carddav_put_result carddav_put(struct carddav *d, const char *url, const char *card,
				    size_t len)
{
	const char *extra[] = { "If-None-Match: *", "Content-Type: text/vcard; charset=utf-8",
				NULL };
	struct http_response *r = carddav_once(d, "PUT", url, extra, card, len,
					      CARDDAV_MAX_PROPFIND);
	enum carddav_put_result res;

	if (r == NULL)
		return CARDDAV_PUT_FAILED;
	if (r->status == 201 || r->status == 204 || r->status == 200)
		res = CARDDAV_PUT_CREATED;
	else if (r->status == 412)
		res = CARDDAV_PUT_EXISTS;
	else {
		res = CARDDAV_PUT_FAILED;
		carddav_status_error(d, "PUT", r->status);
	}
	http_response_free(r);
	return res;
}

struct carddav_put_window {
	struct carddav *d;
	struct carddav_put_item *items;
	size_t n, next, done;
};

struct carddav_put_slot {
	struct carddav_put_window *w;
	size_t i;
};

static void carddav_put_start(struct carddav_put_window *w);

static void carddav_put_done(struct http_response *resp, void *arg)
{
	struct carddav_put_slot *slot = arg;
	struct carddav_put_window *w = slot->w;
	struct carddav_put_item *it = &w->items[slot->i];

	it->status = resp->result == HTTP_OK ? resp->status : 0;
	if (it->status == 201 || it->status == 204 || it->status == 200)
		it->res = CARDDAV_PUT_CREATED;
	else if (it->status == 412)
		it->res = CARDDAV_PUT_EXISTS;
	else
		it->res = CARDDAV_PUT_FAILED;
	http_response_free(resp);
	free(slot);
	w->done++;
	carddav_put_start(w);
}

/* Fill the window with the next cards. */
static void carddav_put_start(struct carddav_put_window *w)
{
	struct http_request_opts ro = { .timeout_ms = CARDDAV_TIMEOUT_MS,
					.max_body = CARDDAV_MAX_PROPFIND };
	const char *headers[4];
	size_t h = 0;

	if (w->d->auth_header)
		headers[h++] = w->d->auth_header;
	headers[h++] = "If-None-Match: *";
	headers[h++] = "Content-Type: text/vcard; charset=utf-8";
	headers[h] = NULL;
	while (w->next < w->n && w->next - w->done < CARDDAV_PUT_WINDOW) {
		struct carddav_put_item *it = &w->items[w->next];
		struct carddav_put_slot *slot = xcalloc(1, sizeof(*slot));

		slot->w = w;
		slot->i = w->next++;
		if (http_request(w->d->http, "PUT", it->url, headers, it->card, it->len, &ro,
				 carddav_put_done, slot) < 0) {
			free(slot);
			it->res = CARDDAV_PUT_FAILED;
			it->status = 0;
			w->done++;
		}
	}
}

void carddav_put_many(struct carddav *d, struct carddav_put_item *items, size_t n)
{
	struct carddav_put_window w = { d, items, n, 0, 0 };

	carddav_put_start(&w);
	while (w.done < w.n)
		if (event_base_loop(d->base, EVLOOP_ONCE) < 0)
			fatalx("event loop failed");
	/* throttled or unanswered: once more, one at a time, with the pauses asked for */
	for (size_t i = 0; i < n; i++) {
		if (items[i].res != CARDDAV_PUT_FAILED ||
		    (items[i].status != 0 && items[i].status != 429 && items[i].status != 503))
			continue;
		items[i].res = carddav_put(d, items[i].url, items[i].card, items[i].len);
		items[i].status = d->status;
	}
}

struct http_response *carddav_get(struct carddav *d, const char *url, size_t max_body)
{
	const char *extra[] = { "Accept: application/json", NULL };

	return carddav_once(d, "GET", url, extra, NULL, 0, max_body);
}
