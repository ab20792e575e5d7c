/*
 * relay_downgrade.h - the downgrade memory: what each destination domain last offered in
 * TLS, and the decision to defer mail to a domain that used to offer valid TLS and now
 * offers none (or an invalid certificate), which is what a man in the middle stripping
 * STARTTLS looks like.
 *
 * The decision (downgrade_decide) and the change to the record (downgrade_update) are pure
 * functions with a table test; the storage (the tls_history table) and the relay's hook
 * (mta_downgrade_check, relay_mta_priv.h) live in relay_downgrade.c.
 */
#ifndef PW_RELAY_DOWNGRADE_H
#define PW_RELAY_DOWNGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

#define DG_NAME_MAX	256	/* a DNS name and its NUL */
#define DG_WHAT_MAX	160	/* the downgrade in words */

/* What one connection showed, at the moment MAIL would be sent. */
struct dg_sight {
	bool tls;			/* the connection is encrypted */
	char version[16];		/* "TLSv1.3", "" without TLS */
	bool cert_valid;		/* WebPKI-valid for the MX name (tls_info.webpki_valid) */
	bool dane;			/* DANE authenticated the certificate */
	bool mta_sts;			/* an MTA-STS enforce policy's checks passed */
	char cert_error[96];		/* why the certificate is not valid, or "" */
};

/* One row of tls_history. */
struct dg_record {
	char domain[DG_NAME_MAX];
	char mx[DG_NAME_MAX];		/* the MX host of the last sighting */
	int64_t last_seen;		/* the last sighting (0: never) */
	char version[16];		/* TLS version seen last, "" for none */
	bool cert_valid, dane, mta_sts;	/* as seen last */
	int64_t last_good;		/* the last sighting of valid TLS (0: none remembered) */
	int64_t downgrade_since;	/* first sighting of the current downgrade, 0: none */
	char what[DG_WHAT_MAX];		/* the current (or last) downgrade in words */
	int64_t alerted;		/* when the operator was told of it, 0: not yet */
};

enum dg_verdict {
	DG_SEND,		/* no downgrade: go on as the sender's policy says */
	DG_DEFER_FIRST,		/* a new downgrade: defer, and tell the operator */
	DG_DEFER,		/* a known downgrade within defer_for: defer */
	DG_SEND_EXPIRED,	/* a downgrade older than defer_for: go on, forget the good TLS */
};

const char *downgrade_verdict_name(enum dg_verdict v);
/* Valid TLS: encrypted, and the certificate checked by WebPKI, DANE or MTA-STS. */
bool downgrade_sight_good(const struct dg_sight *s);
/* The downgrade s shows, in words, into out. */
void downgrade_describe(const struct dg_sight *s, char *out, size_t len);
/*
 * The decision for a connection showing s, given the domain's record (NULL: none). A
 * sender with the guarantee is never deferred here (it never goes plaintext anyway);
 * remember 0 turns the memory off.
 */
enum dg_verdict downgrade_decide(const struct dg_record *rec, const struct dg_sight *s,
				 bool guarantee, int64_t remember, int64_t defer_for, int64_t now);
/* The record after verdict v on sighting s through mx at now. */
void downgrade_update(struct dg_record *rec, const struct dg_sight *s, enum dg_verdict v,
		      const char *mx, int64_t now);

/* How often an unchanged record's dates are written again (seconds). */
#define DG_REFRESH 60

/*
 * Must rec (updated at now) be written, given what was stored (NULL: nothing)? Only when
 * something but its dates changed, or the stored sighting is DG_REFRESH or more old: a busy
 * destination does not cost a database write per connection.
 */
bool downgrade_changed(const struct dg_record *stored, const struct dg_record *rec,
		       int64_t now);

/* ---- storage: the tls_history table ---------------------------------------------------- */

/* Load the record of domain (lower case): 1 found, 0 none, -1 database error. */
int downgrade_load(struct db *db, const char *domain, struct dg_record *rec);
/* Write rec (insert or replace); 0 or -1. */
int downgrade_store(struct db *db, const struct dg_record *rec);
/*
 * Mark the start of a downgrade unless another session (or node) did first: true when this
 * call did, so that the operator is told once.
 */
bool downgrade_claim(struct db *db, const struct dg_record *rec);
/* Forget domain: 1 removed, 0 there was none, -1 database error. */
int downgrade_forget(struct db *db, const char *domain);

#endif
