/*
 * relay_tlsrpt.h - TLS reporting (RFC 8460): every delivery attempt's TLS outcome counted
 * per policy domain (the recipient domain) and UTC day, and the daily reports made from
 * those counts (relay_tlsrpt_report.c).
 *
 * The SMTP client calls tlsrpt_note_session / tlsrpt_note_failure at its outcome points;
 * the counts stay in memory and are added to table tlsrpt_counts in one transaction every
 * TLSRPT_FLUSH_SECONDS and at shutdown, so a delivery never waits for the database.
 */
#ifndef PW_RELAY_TLSRPT_H
#define PW_RELAY_TLSRPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay_policy.h"

struct db;
struct relay;
struct mta;
struct mta_host;

#define TLSRPT_FLUSH_SECONDS 5
#define TLSRPT_MAX_KEYS 100000		/* distinct rows kept in memory between two flushes */

/* The RFC 8460 4.3 result types; TLSRPT_SUCCESS counts a successful session. */
enum tlsrpt_result {
	TLSRPT_SUCCESS,
	TLSRPT_STARTTLS_NOT_SUPPORTED,
	TLSRPT_CERT_HOST_MISMATCH,
	TLSRPT_CERT_EXPIRED,
	TLSRPT_CERT_NOT_TRUSTED,
	TLSRPT_VALIDATION_FAILURE,
	TLSRPT_TLSA_INVALID,
	TLSRPT_DNSSEC_INVALID,
	TLSRPT_DANE_REQUIRED,
	TLSRPT_STS_POLICY_FETCH_ERROR,
	TLSRPT_STS_POLICY_INVALID,
	TLSRPT_STS_WEBPKI_INVALID,
	TLSRPT_NRESULT,
};

/* "starttls-not-supported", ...; "" for TLSRPT_SUCCESS. */
const char *tlsrpt_result_name(enum tlsrpt_result r);
/* The result type a security failure of the SMTP client is reported as. */
enum tlsrpt_result tlsrpt_result_of(enum policy_reason r);

/*
 * One counted row (the columns of tlsrpt_counts). Successes have result TLSRPT_SUCCESS and
 * no addresses; failures name the sending and receiving IP.
 */
struct tlsrpt_row {
	char day[11];			/* "YYYY-MM-DD", UTC */
	const char *domain;		/* policy domain */
	const char *policy_type;	/* "tlsa", "sts", "no-policy-found" */
	const char *policy_string;	/* the policy's lines joined by '\n', or "" */
	const char *mx_host;
	enum tlsrpt_result result;
	const char *sending_ip;
	const char *receiving_ip;
	uint64_t count;
};

/*
 * The policy in force for a session to host h (NULL: none reached yet) given the outcome r:
 * *type and a newly allocated *string. This one function decides what policy a count
 * belongs to: "tlsa" where DANE applied to the host, "no-policy-found" otherwise. MTA-STS
 * adds "sts" here (with its policy text as the string).
 */
void tlsrpt_policy_of(const struct mta *m, const struct mta_host *h, enum tlsrpt_result r,
		      const char **type, char **string);

/* The in-memory counts. */
struct tlsrpt;

struct tlsrpt *tlsrpt_new(void);
void tlsrpt_free(struct tlsrpt *t);
/* Add row->count to the row's count (strings are copied). False when the table is full. */
bool tlsrpt_add(struct tlsrpt *t, const struct tlsrpt_row *row);
/* Distinct rows waiting for the next flush. */
size_t tlsrpt_pending(const struct tlsrpt *t);
/*
 * Add every pending count to tlsrpt_counts in one transaction; on success the memory is
 * emptied, on a database error (returned, a DB_* code) the counts stay for the next try.
 */
int tlsrpt_flush(struct tlsrpt *t, struct db *db);

/* "YYYY-MM-DD" of a time in UTC. */
void tlsrpt_day(int64_t t, char out[11]);

/* ---- serve: the relay's counts -------------------------------------------------------- */

/* Start counting for relay r (when [tlsrpt] enabled): r->tlsrpt and its flush timer. */
void tlsrpt_start(struct relay *r);
/* Flush what is left and stop (shutdown). */
void tlsrpt_stop(struct relay *r);

/* ---- the SMTP client's outcome points (relay_mta.c) ------------------------------------ */

/* A transaction begins on m's connection: TLS used (success) or not (STARTTLS missing). */
void tlsrpt_note_session(struct mta *m);
/* A security failure r of the current host (or of the domain, before a host). */
void tlsrpt_note_failure(struct mta *m, enum policy_reason r);

#endif
