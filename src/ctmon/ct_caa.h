/*
 * ct_caa.h - CAA (RFC 8659): which CAs a domain lets issue. The relevant record set is
 * found by tree climbing (the name itself, then each parent, up to but not including the
 * root) through the DNSSEC-validating resolver; its issue and issuewild properties
 * (RFC 8657 parameters such as accounturi are kept in the value) decide whether a CA,
 * known by its CAA identity ("letsencrypt.org"), may issue for a name. A CA named in a
 * certificate's issuer is mapped to its CAA identities by [ctmon] issuer_caa and a short
 * built-in table of public CAs.
 */
#ifndef PW_CT_CAA_H
#define PW_CT_CAA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

#define CT_CAA_TAG_MAX		15	/* RFC 8659 4.1: tag length 1..15 */
#define CT_CAA_VALUE_MAX	1024	/* longer values are refused as malformed */

struct ct_caa_rr {
	uint8_t flags;			/* bit 128: issuer critical */
	char *tag;			/* lower-case: "issue", "issuewild", "iodef", ... */
	char *value;			/* as published (RFC 8659 4.2 syntax, unparsed) */
};

/* The relevant CAA record set of a name. */
struct ct_caa {
	char *owner;			/* where the set was found; "" when none (any CA may issue) */
	enum dns_security security;	/* of the answer that decided it */
	struct ct_caa_rr *rrs;
	size_t n;
};

/* Parse one CAA RDATA; -1 when malformed (out untouched). */
int ct_caa_rr_parse(const uint8_t *rdata, size_t len, struct ct_caa_rr *out);
void ct_caa_rr_clear(struct ct_caa_rr *rr);

/* caa is NULL when the look-up failed (SERVFAIL, BOGUS); err then says why. */
typedef void (*ct_caa_cb)(struct ct_caa *caa, const char *err, void *arg);

/*
 * Tree climbing on the event loop; cb owns caa (ct_caa_free). -1 when it could not start
 * (cb is then never called). A wildcard name ("*.example.org") is looked up without its
 * "*." label, as CAs do; trailing dots and upper case do not matter.
 */
int ct_caa_lookup(struct dns *dns, const char *name, ct_caa_cb cb, void *arg);
/* The same, with a handle for ct_caa_cancel (NULL when it could not start). */
struct ct_caa_query;
struct ct_caa_query *ct_caa_start(struct dns *dns, const char *name, ct_caa_cb cb, void *arg);
/* Stop a look-up whose callback has not run yet; its callback then never runs. */
void ct_caa_cancel(struct ct_caa_query *q);
/* The same, blocking, for command-line tools; NULL with *err (caller frees) on failure. */
struct ct_caa *ct_caa_lookup_sync(struct dns *dns, const char *name, char **err);
void ct_caa_free(struct ct_caa *caa);

/*
 * One step of the climb, shared by both forms: what the answer for qname means. DONE with
 * *out the relevant set (its records, or an empty set when qname has no parent below the
 * root), CLIMB to qname's parent, or FAIL with *err (BOGUS, SERVFAIL).
 */
enum ct_caa_step { CT_CAA_DONE, CT_CAA_CLIMB, CT_CAA_FAIL };
enum ct_caa_step ct_caa_step(const struct dns_answer *a, const char *qname,
			     struct ct_caa **out, char **err);

/*
 * Does caa let the CA with CAA identity issue for a name (wildcard: the certificate's name
 * is "*.something", so issuewild rules when present)? An empty set allows every CA; an
 * unknown critical property allows none (RFC 8659 4.5). identity may be a comma-separated
 * list (as ct_caa_identities gives it): allowed when any of them is. RFC 8657 parameters
 * (accounturi, validationmethods) cannot be checked from a certificate and are ignored.
 */
bool ct_caa_allows(const struct ct_caa *caa, const char *identity, bool wildcard);

/*
 * The CAA identities of the CA that issued a certificate, comma-separated (caller frees),
 * or NULL when unknown: first [ctmon] issuer_caa ("ISSUER=identity ..." items, comma-
 * separated, ISSUER being a name as in the issuer's O or CN or the hex SHA-256 of the
 * issuer's key), then the built-in table. issuer_key_sha256 may be NULL.
 */
char *ct_caa_identities(const char *issuer_text, const char *issuer_key_sha256,
			const char *issuer_caa_conf);

#endif
