/*
 * mig_contacts.h - copying a user's address books to the provider's CardDAV server: from
 * their old provider (CardDAV, or Microsoft Graph for Outlook.com/Office 365) or from an
 * exported file (vCard, Google or Outlook CSV). The command line (cli_migrate_contacts.c)
 * and serve's API (mig_api.c) both run it.
 *
 * mig_contacts_run blocks (the CardDAV client runs its own loop, one request at a time) and
 * is meant for a thread of its own; another thread may read the counters under the lock and
 * ask it to stop. Cards read over CardDAV are written byte for byte under their own resource
 * names with If-None-Match: *, so a second run adds only what is missing. The engine keeps
 * nothing of the source: its texts (errors, book names) never quote the source URL, user or
 * a credential, except what the server itself put in an error (the API scrubs those).
 */
#ifndef PW_MIG_CONTACTS_H
#define PW_MIG_CONTACTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "carddav.h"
#include "mig_cred.h"

#define MIG_CONTACTS_MAX_REASONS 16
#define MIG_CONTACTS_GRAPH_PAGES 10000
#define MIG_CONTACTS_MAX_BOOKS	 1000

enum mig_contacts_kind { MIG_CONTACTS_CARDDAV, MIG_CONTACTS_GRAPH, MIG_CONTACTS_VCARD_FILE,
			 MIG_CONTACTS_CSV_FILE };

struct mig_contacts_preset {
	const char *name;
	enum mig_contacts_kind kind;
	const char *url;	/* NULL: a URL or a file must be given */
	enum carddav_auth auth;
};

/* The preset called name (carddav, gmail, icloud, ..., outlook, vcard, ...), or NULL. */
const struct mig_contacts_preset *mig_contacts_preset(const char *name);
/* Is it read from a file (no URL, no credential)? */
bool mig_contacts_is_file(const struct mig_contacts_preset *p);

struct mig_contacts_opts {
	const struct mig_contacts_preset *preset;
	const char *from_url;		/* the source (the preset's when NULL) */
	const char *from_user;		/* for basic authentication, or NULL */
	const char *from_file;		/* for the file kinds */
	const struct mig_cred *from_cred;	/* password or token; borrowed */
	bool oauth;			/* the source credential is a bearer token */
	const char *to_url;		/* the provider's CardDAV server */
	const char *to_user;
	const struct mig_cred *to_cred;	/* borrowed */
	const char *to_book;		/* the book that file and Graph imports go to */
	bool allow_private;
	const char *ca_file;
	/* called after each batch of cards (in the running thread), or NULL */
	void (*progress)(void *arg);
	void *progress_arg;
};

/* Why cards were not copied, counted by reason. */
struct mig_contacts_reason {
	char *text;
	size_t count;
};

/* One destination address book: what the job record shows as a folder. */
struct mig_contacts_book {
	char *name;		/* the resource name at the destination */
	uint64_t cards, copied, existing, failed, bytes;
	time_t started, finished;
	bool dirty;		/* changed since the caller last saved it */
	char *error;		/* why the book stopped, with advice, or NULL */
};

struct mig_contacts {
	struct mig_contacts_opts o;
	pthread_mutex_t lock;	/* everything below, for readers in other threads */
	size_t books_total, books_done;
	uint64_t seen, copied, existing, failed;
	uint64_t bytes_seen, bytes_copied;	/* card bytes read; written as new */
	size_t synced_books;			/* listed by sync-collection */
	struct mig_contacts_book *book;
	size_t nbooks;
	struct mig_contacts_reason reasons[MIG_CONTACTS_MAX_REASONS];
	size_t nreasons;
	/* what stopped the whole run, with advice, or NULL; like the books' errors, a reader
	 * holding the lock may replace it with a scrubbed copy */
	char *fatal;
	atomic_bool stop;	/* mig_contacts_stop: no new batch, no new book */
	bool stopped;		/* the run ended because it was asked to */
	/* the run's own */
	struct carddav *dst;
	char *dst_home;
};

void mig_contacts_init(struct mig_contacts *c, const struct mig_contacts_opts *o);
/* Copy everything; 0, or -1 with c->fatal. Blocks: run it in a thread of its own. */
int mig_contacts_run(struct mig_contacts *c);
/* Ask the run to stop after the request it is waiting for (any thread). */
void mig_contacts_stop(struct mig_contacts *c);
void mig_contacts_free(struct mig_contacts *c);

#endif
