/*
 * keydir.h - the public key directory: users' keys kept in the database and published as
 * OPENPGPKEY (RFC 7929) and SMIMEA (RFC 8162) records and as a Web Key Directory tree.
 *
 * The store is the truth. Every change to it marks the DNS names and WKD files it affects
 * as pending (database triggers, so that an account deleted with its keys is covered too);
 * reconciling a pending name computes what should be published there from the store and
 * replaces what is published: one RFC 2136 "delete this type at this name, add each record"
 * per name (TSIG-signed), or a rewritten zone file fragment, or a rewritten WKD file. That
 * makes every step idempotent: a failed update is simply tried again.
 *
 * Files: keydir.c (publish, unpublish, reconcile, sync, expiry), keydir_store.c (SQL),
 * keydir_dns.c (UPDATE and AXFR over TCP with ldns), keydir_file.c (atomic files: zone
 * file fragment, WKD tree), keydir_timer.c (the retry and expiry timer of serve).
 */
#ifndef PW_KEYDIR_H
#define PW_KEYDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "account.h"
#include "config.h"
#include "db.h"
#include "keys/keys.h"

#define KEYDIR_RR_OPENPGPKEY 61
#define KEYDIR_RR_SMIMEA 53
#define KEYDIR_WKD 0			/* pending "rrtype" of a WKD file */
#define KEYDIR_MAX_UPDATE 60000		/* bytes of records per UPDATE message */
#define KEYDIR_DNS_TIMEOUT_MS 10000	/* connect, send, and each reply */
/* The longest one batch of a reconciliation acts: its DNS update, with room to spare. */
#define KEYDIR_ACT_MS (KEYDIR_DNS_TIMEOUT_MS + 2000)

struct keydir {
	const struct pw_config *cfg;	/* borrowed */
	struct db *db;			/* borrowed */
	/*
	 * NULL, or asked before each DNS update of a reconciliation: may this process still
	 * act for the update's longest time (serve: while it holds the lease "keydir")?
	 */
	bool (*may_act)(void *arg, int64_t ms);
	void *may_act_arg;
};

/* One stored copy: one key (or certificate) published for one address. */
struct keydir_key {
	int64_t id;
	char *address;
	enum keys_kind kind;
	char *fingerprint;
	char *algorithm;
	unsigned bits;
	int64_t created;
	int64_t expires;	/* 0: never */
	int64_t published;
	uint8_t *data;		/* minimised key / DER certificate */
	size_t len;
	uint16_t rrtype;
	char *owner;		/* DNS owner name, lower-case, no trailing dot */
	char *owner_lc;		/* name for the lower-cased local-part, or "" */
	char *wkd_domain;	/* "" for S/MIME */
	char *wkd_hash;
	bool pending;		/* one of its names waits to be reconciled */
	char *error;		/* the last error of a pending name, or NULL */
};

/* One change made to what is published, for the report of sync and reconcile. */
struct keydir_change {
	char *action;	/* "add", "remove" (DNS records), "write", "delete" (files) */
	char *where;	/* "dns", "zone-file", "wkd" */
	char *name;	/* owner name, or path below wkd_dir */
	char *type;	/* "OPENPGPKEY", "SMIMEA", "WKD", "zone-file", "policy" */
};

struct keydir_report {
	struct keydir_change *changes;
	size_t nchanges;
	size_t done;		/* names reconciled */
	size_t failed;		/* names left pending */
	char *error;		/* the first error, or NULL */
};

/* ---- keydir.c: what the command line and serve call ---------------------------------- */

/*
 * Check data with keys_accept against every address of acct and store one copy per
 * address it carries (replacing an earlier copy of the same key). -1 with *msg (for the
 * user) when refused or when an address cannot be published. *info receives the result.
 */
int keydir_publish(struct keydir *kd, const struct account *acct, const uint8_t *data,
		   size_t len, int64_t now, struct keys_info *info, char **msg);
/* The two halves of keydir_publish. keydir_check touches no database: threads may run it. */
int keydir_check(const struct pw_config *cfg, const struct account *acct, const uint8_t *data,
		 size_t len, int64_t now, struct keys_info *info, char **msg);
/* Store what keydir_check accepted; on -1 *info is freed and *msg set. */
int keydir_store_checked(struct keydir *kd, const struct account *acct, const uint8_t *data,
			 size_t len, int64_t now, struct keys_info *info, char **msg);
/* Remove the copies published for addr (only the key fingerprint when not NULL); count. */
size_t keydir_unpublish(struct keydir *kd, const char *addr, const char *fingerprint);
/* Remove keys that expire before now + expiry_margin; count. */
size_t keydir_expire(struct keydir *kd, int64_t now);
/*
 * Make published state equal to the store for pending names: all of them, or only those
 * due at now. 0 when nothing failed; -1 when some names stay pending (rep->error).
 */
int keydir_reconcile(struct keydir *kd, bool all, int64_t now, struct keydir_report *rep);
/*
 * Compare what DNS (by AXFR) and the WKD tree hold with the store, repair both ways and
 * report each change. 0, or -1 with rep->error when something could not be read or fixed.
 */
int keydir_sync(struct keydir *kd, int64_t now, struct keydir_report *rep);
/* The zone (from [keydir] zones) that holds domain's records, or NULL (caller frees). */
char *keydir_zone_of(const struct pw_config *cfg, const char *domain);
/* Domain of an owner name "<hash>.<label>.<domain>" (borrowed pointer), or NULL. */
const char *keydir_owner_domain(const char *owner);
const char *keydir_rrtype_name(uint16_t rrtype);
void keydir_report_add(struct keydir_report *rep, const char *action, const char *where,
		       const char *name, const char *type);
void keydir_report_free(struct keydir_report *rep);
/* Path of the zone file fragment and of the WKD root (caller frees). */
char *keydir_zone_file(const struct pw_config *cfg);
char *keydir_wkd_dir(const struct pw_config *cfg);

/* ---- keydir_store.c: the tables of schema migration 2 -------------------------------- */

/* Insert a copy (the triggers mark its names pending); false if it could not be stored. */
bool keydir_store_insert(struct db *db, int64_t account_id, const struct keydir_key *k,
			 const uint8_t *original, size_t original_len);
/* Delete the copy of (address, kind, fingerprint), if any. */
void keydir_store_delete_copy(struct db *db, const char *addr, const char *kind,
			      const char *fingerprint);
/* Copies for addr (NULL: all), ordered by address and id; *n set. */
struct keydir_key **keydir_store_list(struct db *db, const char *addr, size_t *n);
void keydir_key_free(struct keydir_key *k);
void keydir_key_list_free(struct keydir_key **list, size_t n);

/* A pending name, as read by a reconciler. */
struct keydir_pending {
	char *owner;
	uint16_t rrtype;
	int64_t gen;
};

/* Up to max pending names after (owner, rrtype) in order; due only: next_attempt <= now. */
struct keydir_pending *keydir_store_pending(struct db *db, bool all, int64_t now,
					    const char *after_owner, int after_type, size_t max,
					    size_t *n);
void keydir_pending_free(struct keydir_pending *p, size_t n);
/* Clear a mark if nothing marked the name again since it was read (same gen). */
void keydir_store_pending_done(struct db *db, const struct keydir_pending *p);
/* Record a failure: try again at next_attempt. */
void keydir_store_pending_failed(struct db *db, const struct keydir_pending *p, const char *error,
				 int64_t next_attempt);
/* Mark a name pending now (sync found it differs). */
void keydir_store_mark(struct db *db, const char *owner, uint16_t rrtype);

/* Records wanted at (owner, rrtype): the RDATA of each, in id order. */
struct keydir_rdata {
	uint8_t *data;
	size_t len;
};
struct keydir_rdata *keydir_store_rdata(struct db *db, const char *owner, uint16_t rrtype,
					size_t *n);
/* Contents of the WKD file "domain/hash": the binary keys concatenated; NULL if none. */
uint8_t *keydir_store_wkd(struct db *db, const char *domain, const char *hash, size_t *len);
void keydir_rdata_free(struct keydir_rdata *rd, size_t n);

/* ---- keydir_dns.c: RFC 2136 UPDATE and AXFR, TSIG-signed, over TCP -------------------- */

/* Replace the type records at owner with rd[] (n == 0: remove them). */
struct keydir_rrset {
	const char *owner;
	uint16_t type;
	const struct keydir_rdata *rd;
	size_t n;
};

/* Bytes this RRset adds to an UPDATE message (an upper bound). */
size_t keydir_dns_rrset_size(const struct keydir_rrset *set);
/* Send one UPDATE for zone with sets[] (caller keeps it under KEYDIR_MAX_UPDATE). */
int keydir_dns_update(const struct keydir_conf *kc, const char *zone, const struct keydir_rrset *sets,
		      size_t n, char **err);
typedef void (*keydir_dns_rr_cb)(void *arg, const char *owner, uint16_t type, const uint8_t *rdata,
				 size_t len);
/* Transfer zone; cb gets every record (owner lower-case without trailing dot). */
int keydir_dns_axfr(const struct keydir_conf *kc, const char *zone, keydir_dns_rr_cb cb, void *arg,
		    char **err);
/* A zone transfer being read: what its next message must match. */
struct keydir_axfr {
	uint16_t id;		/* the query's message ID */
	uint8_t *mac;		/* the MAC the next message is signed over, as ldns holds it */
	size_t mac_len;
	bool next;		/* after the first message: signed over the previous, timers only */
	int soas;		/* SOA records seen; the transfer ends at the second */
};
/* Take one message of a transfer (wire, len <= 65535): check it, hand its records to cb.
 * 1 when the transfer is complete, 0 when more must come, -1 + *err. */
int keydir_dns_axfr_msg(const struct keydir_conf *kc, const char *zone, struct keydir_axfr *x,
			const uint8_t *wire, size_t len, keydir_dns_rr_cb cb, void *arg, char **err);
/* Why the server refused a query of ours, in words, from its reply (wire, len <= 65535):
 * rcode, TSIG error, signed or not. mac: the query's TSIG MAC as ldns holds it (with its
 * length), NULL when unknown (then the reply's signature is not looked at). */
char *keydir_dns_refusal(const struct keydir_conf *kc, const char *zone, const uint8_t *wire,
			 size_t len, const uint8_t *mac, size_t mac_len);

/* ---- keydir_file.c: files written atomically ----------------------------------------- */

/* Write path (tmp + fsync + rename), creating missing directories (0755); mode 0644. */
int keydir_file_write(const char *path, const void *data, size_t len, char **err);
/* Read a whole file of at most max bytes; NULL when missing or larger. */
uint8_t *keydir_file_read(const char *path, size_t max, size_t *len);
/* Rewrite the zone file fragment from the store; *changed when its content differs. */
int keydir_file_zone(struct keydir *kd, bool *changed, char **err);
/* Write or delete the WKD file "domain/hash" from the store; *action "write"/"delete"/NULL. */
int keydir_file_wkd(struct keydir *kd, const char *domain, const char *hash, const char **action,
		    char **err);
/* Make the WKD tree equal to the store, reporting what changed. */
int keydir_file_wkd_sync(struct keydir *kd, struct keydir_report *rep);

/* ---- keydir_timer.c: the retry and expiry timer of serve ----------------------------- */

struct event_base;
struct keydir_timer;

/*
 * Reconcile pending names every retry_interval and expire keys daily, in a worker thread;
 * with a lease (borrowed, renewed by the caller), only while it is held.
 */
struct lease;
struct keydir_timer *keydir_timer_start(struct event_base *base, const struct pw_config *cfg,
					const struct lease *lease);
/* Stop the timer and wait for a running pass. */
void keydir_timer_stop(struct keydir_timer *t);

#endif
