/*
 * carddav.h - a CardDAV client (RFC 6352) for moving address books: discovery from the
 * well-known URL through the principal to the address book home set, the address books
 * in it, their cards by addressbook-multiget in batches, and writing cards with PUT and
 * If-None-Match: * so that a card that is already there is left alone (412).
 *
 * It runs its own event loop and one request at a time: a migration command waits for each
 * answer anyway, and servers throttle clients that open many connections. Every answer is
 * bounded (CARDDAV_MAX_PROPFIND, CARDDAV_MAX_REPORT).
 */
#ifndef PW_CARDDAV_H
#define PW_CARDDAV_H

#include <stdbool.h>
#include <stddef.h>

#include "carddav_xml.h"

struct mig_cred;

#define CARDDAV_MAX_PROPFIND	(16 * 1024 * 1024)
#define CARDDAV_MAX_REPORT	(64 * 1024 * 1024)
#define CARDDAV_BATCH		50	/* cards per addressbook-multiget */
#define CARDDAV_TIMEOUT_MS	60000

enum carddav_auth { CARDDAV_AUTH_NONE, CARDDAV_AUTH_BASIC, CARDDAV_AUTH_BEARER };

struct carddav_opts {
	enum carddav_auth auth;
	const char *user;		/* for basic; borrowed */
	const struct mig_cred *cred;	/* password or token; borrowed, copied into a header */
	bool allow_private;		/* loopback and private addresses (tests) */
	const char *ca_file;
};

struct carddav;

/* NULL with *err when the HTTP client cannot start. */
struct carddav *carddav_new(const struct carddav_opts *o, const char **err);
/* Frees the client and wipes its Authorization header. */
void carddav_free(struct carddav *d);

/* The last error's text (owned by d), for the message that says what to do. */
const char *carddav_error(const struct carddav *d);
/* The HTTP status of the last answer (0 when none). */
long carddav_last_status(const struct carddav *d);

struct carddav_book {
	char *url;		/* absolute, ending in '/' */
	char *name;		/* the last path segment (percent-encoded as sent) */
	char *displayname;	/* or NULL */
	bool sync_collection;	/* offers the sync-collection report (RFC 6578) */
};

struct carddav_books {
	struct carddav_book *b;
	size_t n;
};

/*
 * From a server URL (or a principal or home set URL) to the address book home set:
 * *home is a new absolute URL. 0, or -1 (carddav_error says why).
 */
int carddav_discover(struct carddav *d, const char *url, char **home);
/* Every address book in a home set (or the URL itself when it is one). 0, or -1. */
int carddav_list_books(struct carddav *d, const char *home, struct carddav_books *out);
void carddav_books_free(struct carddav_books *b);

/*
 * The card hrefs of an address book (absolute URLs): by sync-collection with no token when
 * the book offers it (*used_sync set), else (or when that fails) by PROPFIND Depth 1.
 * 0, or -1.
 */
int carddav_list_cards(struct carddav *d, const struct carddav_book *book, char ***hrefs,
		       size_t *n, bool *used_sync);
/*
 * addressbook-multiget of n card URLs (at most CARDDAV_BATCH); out's responses hold the
 * cards (address_data NULL for one the server did not send). 0, or -1.
 */
int carddav_multiget(struct carddav *d, const char *book, char *const *urls, size_t n,
		     struct dav_ms *out);

/* Create an address book at url (ending in '/'); 0 when created or already there, or -1. */
int carddav_make_book(struct carddav *d, const char *url, const char *displayname);

enum carddav_put_result { CARDDAV_PUT_CREATED, CARDDAV_PUT_EXISTS, CARDDAV_PUT_FAILED };
/* PUT a card with If-None-Match: *; FAILED leaves the status in carddav_last_status. */
enum carddav_put_result carddav_put(struct carddav *d, const char *url, const char *card,
				    size_t len);

/* One card of carddav_put_many: url, card and len in; res and status out. */
struct carddav_put_item {
	char *url;		/* owned by the caller */
	const char *card;	/* borrowed */
	size_t len;
	enum carddav_put_result res;
	long status;		/* the answer's HTTP status; 0 when none came */
};

#define CARDDAV_PUT_WINDOW 4	/* PUTs in flight at once */

/*
 * PUT n cards with If-None-Match: *, CARDDAV_PUT_WINDOW at a time; a card whose answer was
 * a 429 or 503, or none, is sent again alone with carddav_put's retries.
 */
void carddav_put_many(struct carddav *d, struct carddav_put_item *items, size_t n);

/* GET url with the client's authorization (Graph pages); the response or NULL. */
struct http_response *carddav_get(struct carddav *d, const char *url, size_t max_body);

/* Resolve href against base: a new absolute URL, or NULL when it points off http(s). */
char *carddav_resolve(const char *base, const char *href);
/* "scheme://host[:port]" of an absolute URL, as a new string; NULL when malformed. */
char *carddav_origin(const char *url);
/* The last non-empty path segment of a URL, as a new string. */
char *carddav_last_segment(const char *url);

#endif
