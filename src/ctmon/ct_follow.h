/*
 * ct_follow.h - one round over one log, on the event loop: the signed tree head (get-sth,
 * or a static-ct-api checkpoint) is fetched and verified and compared with the last one
 * verified (an RFC 6962 log must prove the extension with a consistency proof); the new
 * entries are fetched (get-entries, whose servers return fewer than asked: the round
 * follows up; or data tiles, full and partial, gzip'd or not), hashed into the stored
 * compact range and matched against the watch list; only when they hash to the signed
 * root are their findings and the log's new position written, in one transaction.
 * Anything else (a bad signature, a failed proof, two trees of one size, a shrinking
 * tree, entries that do not hash to the root) is an alert of its own kind with its
 * evidence, and the log is not advanced past it.
 */
#ifndef PW_CT_FOLLOW_H
#define PW_CT_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "dns.h"
#include "http.h"
#include "ctmon/ct_loglist.h"
#include "ctmon/ct_match.h"

struct event_base;
struct ct_follow;

/* How a round ended. */
enum ct_round_result {
	CT_ROUND_OK,		/* the log is verified up to its current tree head */
	CT_ROUND_ALERT,		/* the log misbehaved: an alert was stored, nothing advanced */
	CT_ROUND_ERROR,		/* unreachable, a bad answer, the database: tried again later */
};

struct ct_round_report {
	enum ct_round_result result;
	uint64_t tree_size;		/* of the tree head verified (0 if none) */
	uint64_t entries;		/* entries checked in this round */
	uint64_t findings;		/* entries that matched the watch list */
	uint64_t new_findings;		/* certificates not found before */
	const char *alert;		/* kind, for CT_ROUND_ALERT */
	char *message;			/* one sentence for CT_ROUND_ALERT and CT_ROUND_ERROR */
};

typedef void (*ct_round_cb)(const struct ct_round_report *r, void *arg);

struct ct_follow_opts {
	struct event_base *base;	/* for the pauses before a request is sent again */
	struct db *db;
	struct http_client *http;
	const struct ct_log *log;
	const struct ct_watch *watch;
	const char *expected_keys;	/* lower-case hex SPKI pins, comma-separated */
	const char *allowed_issuers;	/* names or hex key hashes, comma-separated ("": any) */
	const char *issuer_caa;		/* [ctmon] issuer_caa: CAA identities of issuers */
	struct dns *dns;		/* for the CAA check; NULL: CAA is not checked */
	bool start_at_end;		/* first contact: only entries logged from now on */
	int64_t from;			/* >= 0: check entries from this index (backfill) */
	unsigned batch;			/* entries asked for per request (default 256) */
};

/* The log's ID as it is stored (base64); buf of 45 bytes. */
void ct_log_id_text(const struct ct_log *log, char buf[45]);

/*
 * Start a round; cb runs on the loop when it ends, and the round is freed after it. NULL
 * when it ended at once (cb has run: the log's state could not be read).
 */
struct ct_follow *ct_follow_round(const struct ct_follow_opts *opts, ct_round_cb cb, void *arg);
/* Drop a round in flight without its callback (serve stops); it resumes at the next start. */
void ct_follow_cancel(struct ct_follow *f);

#endif
