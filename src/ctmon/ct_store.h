/*
 * ct_store.h - the CT monitor's state in the shared database (schema 4, 5): per log, the last
 * verified tree head and how far its entries are checked; the findings (certificates for
 * watched names) with where each was seen; alerts about logs. A batch of checked entries
 * is recorded in one transaction together with the log's new position, guarded by the old
 * one, so a restart resumes exactly there and two nodes never both advance a log.
 */
#ifndef PW_CT_STORE_H
#define PW_CT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "ctmon/ct_merkle.h"


/* A log's verified position. */
struct ct_log_pos {
	char *log_id;			/* base64 of the 32-byte log ID */
	char *url;
	char *api;			/* "rfc6962" or "static" */
	int64_t tree_size;		/* of the last verified tree head */
	unsigned char root_hash[CT_HASH_LEN];
	bool has_root;
	int64_t sth_timestamp;		/* ms since the epoch, as the log signed it */
	int64_t next_index;		/* entries before it are checked and matched */
	unsigned char *range_state;	/* compact range of those leaves (opaque bytes) */
	size_t range_len;
	int64_t last_success;
	char *last_error;
};

/* One certificate for a watched name, as the monitor judged it. */
struct ct_finding {
	int64_t id;			/* set by the store */
	unsigned char identity[CT_HASH_LEN];	/* hash of the TBS without poison and SCTs */
	const char *names;		/* comma-separated */
	const char *issuer;
	const char *serial;		/* hex */
	const char *spki_sha256;	/* hex */
	int64_t not_before, not_after;
	const char *issuer_key_sha256;	/* hex SHA-256 of the issuer's SPKI, NULL: unknown */
	const char *verdict;		/* "expected" or the reason kind it alerts for */
	const char *reason;		/* one sentence */
	const char *caa;		/* the CAA check: allowed, no_caa, not_allowed, ... */
	/* where it was seen */
	int64_t index;
	bool precert;
};

/* Register a log on first contact (or update its URL and API); its position is kept. */
int ct_store_log_register(struct db *db, const char *log_id, const char *url, const char *api);
/* The state of log_id: DB_ROW when found (free with ct_log_pos_free), DB_DONE when not. */
int ct_store_log_load(struct db *db, const char *log_id, struct ct_log_pos *out);
void ct_log_pos_free(struct ct_log_pos *st);

/*
 * Record a checked batch: its findings (a finding already known by identity only gains a
 * sighting) and the log's new position, all or nothing. from: the next_index the batch
 * started at; when the stored one differs (another node advanced the log), nothing is
 * written and DB_CONSTRAINT is returned. DB_OK on success. new_findings (may be NULL)
 * receives how many findings were new.
 */
int ct_store_advance(struct db *db, const struct ct_log_pos *to, int64_t from,
		     struct ct_finding *findings, size_t n, size_t *new_findings);

/*
 * A log misbehaved or the monitor's health needs attention; the evidence is kept. The same
 * kind, log and message as an earlier alert adds nothing.
 */
int ct_store_alert_add(struct db *db, const char *kind, const char *log_id,
		       const char *message, const char *evidence);

/* The operator marks a finding handled; false when there is no such finding (or an error). */
bool ct_store_ack(struct db *db, int64_t id, int64_t now);

/*
 * The findings, newest first, as a JSON array (at most limit); unexpected_only: only
 * those whose verdict is not "expected". NULL on a database error.
 */
json_t *ct_store_findings_json(struct db *db, bool unexpected_only, size_t limit);
/* One finding with the logs and entries it was seen in; NULL when absent or on an error. */
json_t *ct_store_finding_json(struct db *db, int64_t id);

/* ---- delivery of findings and alerts (schema 6) ------------------------------------ */

/* One row of ct_deliveries that is due: item "finding" or "alert", and its id. */
struct ct_due {
	char item[8];
	int64_t id;
	int attempts;			/* made so far */
};

/*
 * Make sure every unexpected finding not acked, and every alert, has its row for channel
 * ("mail", "webhook", "hook"); rows already there are kept. DB_OK or the error.
 */
int ct_store_delivery_enqueue(struct db *db, const char *channel, int64_t now);
/* Up to max rows of channel that are due at now and not claimed; how many. */
size_t ct_store_delivery_due(struct db *db, const char *channel, int64_t now,
			     struct ct_due *out, size_t max);
/* Claim a due row for node until until; true when it is this node's to deliver now. */
bool ct_store_delivery_claim(struct db *db, const struct ct_due *d, const char *channel,
			     const char *node, int64_t now, int64_t until);
/* Delivered: done (and the item's alerted column set the first time). */
void ct_store_delivery_done(struct db *db, const struct ct_due *d, const char *channel,
			    int64_t now);
/* Not delivered: one more attempt counted, the next at next_attempt, the claim given up. */
void ct_store_delivery_failed(struct db *db, const struct ct_due *d, const char *channel,
			      int64_t next_attempt, const char *error);
/* Give a claim back untouched (the node stops with a delivery in flight). */
void ct_store_delivery_release(struct db *db, const struct ct_due *d, const char *channel);

/* The largest id of ct_findings or ct_alerts (table), 0 when empty. */
int64_t ct_store_max_id(struct db *db, const char *table);
/* The unexpected findings, or the alerts, with ids above after, up to max, in order. */
size_t ct_store_ids_after(struct db *db, const char *item, int64_t after, int64_t *out,
			  size_t max);

/*
 * Health: open an episode of kind for log_id (NULL: the monitor itself) unless one is
 * open; true when a new alert row was made. Close: the condition is over.
 */
bool ct_store_health_open(struct db *db, const char *kind, const char *log_id,
			  const char *message, const char *evidence);
void ct_store_health_close(struct db *db, const char *kind, const char *log_id);

/* An alert as JSON (id, kind, log_id, log_url, message, evidence, created, resolved). */
json_t *ct_store_alert_json(struct db *db, int64_t id);
/* The identity (TBS hash) of a finding as hex into out (65 bytes); false when absent. */
bool ct_store_finding_identity(struct db *db, int64_t id, char out[65]);

#endif
