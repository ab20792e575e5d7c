/*
 * ct_judge.h - judging a certificate for a watched name: expected, or which expectation it
 * breaks. Three are checked: its key is one of [ctmon] expected_keys; its issuer is one of
 * [ctmon] allowed_issuers (by O or CN, or by the SHA-256 of the issuer's key); and the CAA
 * of each watched name (RFC 8659, through the DNSSEC-validating resolver, looked up when
 * the certificate is seen, not when it was issued) lets the issuer's CAA identity issue.
 *
 * CAA answers are looked up once per name per round (struct ct_judge_caa, on the event
 * loop, a few at a time) before the findings of the round are judged and written.
 */
#ifndef PW_CT_JUDGE_H
#define PW_CT_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "ctmon/ct_match.h"
#include "ctmon/ct_names.h"

#define CT_JUDGE_CAA_PARALLEL	8	/* CAA look-ups in flight at once */
#define CT_JUDGE_CAA_TIMEOUT_S	60	/* all of a round's look-ups; then "not checked" */

struct ct_judge_opts {
	const char *expected_keys;	/* lower-case hex SPKI pins, comma-separated */
	const char *allowed_issuers;	/* names or hex key hashes, comma-separated ("": any) */
	const char *issuer_caa;		/* [ctmon] issuer_caa */
};

/* What the judge needs of a certificate (all borrowed). */
struct ct_judge_cert {
	const char *issuer;		/* one line, "/C=US/O=Let's Encrypt/CN=R3" */
	const char *issuer_key;		/* hex SHA-256 of the issuer's SPKI, or NULL: unknown */
	const char *spki;		/* hex SHA-256 of the certificate's SPKI */
	char *const *caa_names;		/* watched DNS names, "*." kept for wildcards */
	size_t ncaa_names;
};

/* The judgement. verdict and caa are static strings; reason is the caller's to free. */
struct ct_verdict {
	const char *verdict;	/* expected, caa_not_allowed, unknown_key, issuer_not_allowed */
	const char *caa;	/* allowed, no_caa, not_allowed, issuer_unknown, not_checked */
	char *reason;		/* one sentence or a few joined by "; " */
};

/* The issuer Name as one line of text (caller frees). */
char *ct_judge_issuer_text(const struct ct_cert *c);
/* The names of c, comma-separated, each once (caller frees). */
char *ct_judge_names_text(const struct ct_cert *c);
/*
 * The watched DNS names of c whose CAA is checked (SAN dNSNames, or the CN when there are
 * none), lower case, each once; *out is an array the caller frees with ct_judge_strv_free.
 */
size_t ct_judge_caa_names(const struct ct_watch *w, const struct ct_cert *c, char ***out);
void ct_judge_strv_free(char **v, size_t n);
/*
 * The hex SHA-256 of the SubjectPublicKeyInfo of a certificate (DER) into out; -1 when it
 * cannot be read. For an issuer: the key hash allowed_issuers and issuer_caa may name.
 */
int ct_judge_cert_key(const uint8_t *der, size_t len, char out[65]);
/*
 * The key hash of the first certificate of an RFC 6962 X509ChainEntry (get-entries
 * extra_data of an x509_entry: u24 length, then u24-length certificates), the issuer of
 * the logged certificate; -1 when there is none or it is malformed.
 */
int ct_judge_chain_issuer_key(const uint8_t *extra, size_t len, char out[65]);

/*
 * The CAA answers of one round, by name. dns NULL: every name is "not checked". base (may
 * be NULL) bounds the run to CT_JUDGE_CAA_TIMEOUT_S: a resolver that keeps a round waiting
 * holds the log back for no more than that.
 */
struct ct_judge_caa;
struct event_base;
struct ct_judge_caa *ct_judge_caa_new(struct event_base *base, struct dns *dns);
/* Ask for the CAA of name (a certificate name; a wildcard's is its parent's) in the run. */
void ct_judge_caa_want(struct ct_judge_caa *jc, const char *name);
/*
 * Look up every name wanted and not yet answered; done runs once all are answered (on the
 * loop, or at once when nothing is left to ask). Never fails: an answer that cannot be had
 * is kept as the reason CAA was not checked.
 */
void ct_judge_caa_run(struct ct_judge_caa *jc, void (*done)(void *arg), void *arg);
/* Cancels the look-ups in flight (done is then never called). */
void ct_judge_caa_free(struct ct_judge_caa *jc);

/* Judge one certificate; caa may be NULL (CAA not checked). */
void ct_judge(const struct ct_judge_opts *o, const struct ct_judge_cert *c,
	      const struct ct_judge_caa *caa, struct ct_verdict *out);

#endif
