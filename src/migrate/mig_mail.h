/*
 * mig_mail.h - copying a mailbox from one IMAP server to another, exactly and resumably.
 *
 * The copy runs in worker threads with blocking connections (one source and one destination
 * connection per worker, at most `connections` per source server), never on an event loop;
 * the caller polls progress from its own thread (the command line draws a bar, serve can
 * report it through its API) and persists folder state with mig_job.
 *
 * Exactness: each message's bytes, its flags and keywords (\Recent dropped) and its
 * INTERNALDATE are appended as fetched; folders keep their tree (separator translated,
 * modified UTF-7) and subscriptions; special-use folders land in the destination's own.
 * Repeatability: a folder's messages already at the destination (same Message-ID, size and
 * INTERNALDATE, counted as a multiset) are never appended again, so a second run, a run after
 * a cut connection and a run after the source's UIDVALIDITY changed create no duplicate;
 * the saved UIDVALIDITY and highest UID copied let a run skip what it copied before.
 * Memory: a message over 1 MiB is streamed from the source's FETCH into the destination's
 * APPEND in pieces, never held whole; one cut off midway is not stored, nor counted.
 */
#ifndef PW_MIG_MAIL_H
#define PW_MIG_MAIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "imap.h"
#include "mig_cred.h"

struct mig_endpoint {
	char *host, *port;
	enum imap_tls tls;
	char *user;
	enum imap_auth auth;
	const struct mig_cred *cred;	/* borrowed */
	bool gmail;			/* Gmail's folder quirks */
	const char *hint;		/* the preset's advice, or NULL */
};

struct mig_mail_opts {
	struct mig_endpoint src, dst;
	const char *ca_file;		/* NULL: system store */
	int connections;		/* workers, each one source and one destination connection */
	int timeout;			/* seconds per network operation */
	uint64_t max_message;		/* larger messages are reported, not copied */
	bool no_compress;		/* do not ask for COMPRESS=DEFLATE */
	bool compress_local;		/* ask for it even from a source on a loopback address */
	bool delete_source;		/* after verifying, expunge copied messages at the source */
	const char *hosts;		/* "name=address, ..." fixed addresses ([migrate] hosts) */
	bool allow_private;		/* the source may be on a non-public address */
};

struct mig_folder {
	char *src;		/* source name, modified UTF-7 as the server lists it */
	char *dst;		/* destination name */
	char *display;		/* UTF-8, for progress and the summary */
	int special;		/* enum mig_special */
	bool subscribed, noselect, skip;
	bool all_mail;		/* Gmail's All Mail: after every other folder, only the rest */
	uint32_t saved_uidvalidity, saved_last_uid;	/* from the job record */
	/* results, written by the worker that owns the folder (under the job's lock) */
	uint32_t uidvalidity, last_uid;
	uint64_t copied, bytes, present, failed;
	time_t started, finished;
	bool done, dirty;
	char *error;		/* why the folder failed, or NULL */
	char *failures;		/* one line per message not copied: "UID 12: reason" */
};

struct mig_progress {
	int folders_total, folders_done;
	uint64_t msgs_total, msgs_done, bytes_total, bytes_done, failed;
};

struct mig_mail {
	struct mig_mail_opts o;
	SSL_CTX *ssl;
	struct mig_folder *folders;
	size_t nfolders;
	size_t next;		/* next folder for a worker */
	pthread_mutex_t lock;
	struct mig_progress p;
	bool dest_full;		/* OVERQUOTA seen: stop appending everywhere */
	char dsep;		/* destination separator */
	char *dst_special[10];	/* the destination's own special-use folders, by kind */
	char *fatal;		/* a job-level failure with advice, or NULL */
	/* Gmail: the keys of every message in the other folders, so All Mail adds only the rest */
	struct msgkey_set *seen;
	pthread_cond_t cond;	/* a folder finished (All Mail waits for the others) */
	_Atomic int stop;	/* mig_mail_stop: no new batch, no new folder */
	/* workers log in one after another: Dovecot 2.3 has been seen to panic on a deadlock
	 * of its list index lock when several sessions of one user start at the same moment */
	pthread_mutex_t open_lock;
};

/*
 * Check both logins and make the plan (folders, mapping) on one pair of connections.
 * false with m->fatal (advice included) when the job cannot start.
 */
bool mig_mail_prepare(struct mig_mail *m, const struct mig_mail_opts *o);
/* Give the folder its saved state before mig_mail_run (mig_job). */
struct mig_folder *mig_mail_folder(struct mig_mail *m, const char *src);
/* Start the workers; returns at once. */
void mig_mail_start(struct mig_mail *m, pthread_t *threads, int *nthreads);
/* Sleep for ns nanoseconds, join the workers that ended; how many still run. */
int mig_mail_wait(pthread_t *threads, int nthreads, long ns);
/*
 * Ask the workers to stop cleanly (any thread): each finishes the batch it is appending,
 * takes no new folder and returns; what was copied stays, and a later run resumes.
 */
void mig_mail_stop(struct mig_mail *m);
/* Copy of the progress counters. */
void mig_mail_progress(struct mig_mail *m, struct mig_progress *p);
void mig_mail_free(struct mig_mail *m);

/* The advice for a failed connection or login, for the summary. */
const char *mig_mail_advice(enum imap_fail f, const char *code, bool source, const char *hint);

#endif
