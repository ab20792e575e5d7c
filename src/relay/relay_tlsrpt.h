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
#include <stdio.h>

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
/* The certificate-* type of an MX certificate that failed MTA-STS's WebPKI check. */
enum tlsrpt_result tlsrpt_cert_result(const struct tls_info *ti);

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

/* ---- the daily reports (relay_tlsrpt_report.c) ----------------------------------------- */

#define TLSRPT_TXT_MAX 2048		/* the _smtp._tls TXT record, strings joined */
#define TLSRPT_MAX_RUA 8		/* report addresses used from one record */
#define TLSRPT_URI_MAX 512

/* The report addresses of a TLS-RPT record (RFC 8460 3): "mailto:..." or "https://...". */
struct tlsrpt_rua {
	char uri[TLSRPT_MAX_RUA][TLSRPT_URI_MAX + 1];
	size_t n;
};

/*
 * Parse a TLS-RPT TXT record ("v=TLSRPTv1; rua=mailto:a@b,https://c/d"): 0 with the
 * mailto: and https: addresses in *out (others are skipped), -1 when it is not a valid
 * record, is longer than TLSRPT_TXT_MAX, or names no usable address.
 */
int tlsrpt_rua_parse(const char *txt, size_t len, struct tlsrpt_rua *out);
/*
 * The one TLS-RPT record among TXT RDATA rrs (each a series of character-strings) into out
 * (NUL-terminated): 1 found, 0 none (an unreadable record counts as none), -1 several or
 * longer than outlen (no report, RFC 8460 3).
 */
int tlsrpt_txt_pick(const uint8_t *const *rr, const size_t *rrlen, size_t nrr, char *out,
		    size_t outlen);
/* The address of a mailto: URI (percent-decoded, no query) into out; false when invalid. */
bool tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen);

/* Who reports what: the fixed parts of one report. */
struct tlsrpt_meta {
	const char *organization;
	const char *contact;
	const char *submitter;		/* the reporting domain ([server] hostname) */
	const char *from;		/* sender of reports by mail */
	const char *domain;		/* the policy domain */
	char day[11];
};

/*
 * The RFC 8460 JSON report (caller frees) for meta's domain and day from its counted rows
 * (any order; rows of other domains or days must not be passed). *report_id is set to the
 * report-id used (caller frees).
 */
char *tlsrpt_report_json(const struct tlsrpt_meta *meta, const struct tlsrpt_row *rows,
			 size_t n, char **report_id);
/* gzip data; the compressed bytes (caller frees) and their length. */
unsigned char *tlsrpt_gzip(const void *data, size_t len, size_t *outlen);
/* The attachment's file name (RFC 8460 5.3), caller frees. */
char *tlsrpt_filename(const struct tlsrpt_meta *meta);
/* The report mail to address to (RFC 8460 5.3) with the gzip'd report attached. */
char *tlsrpt_mail(const struct tlsrpt_meta *meta, const char *report_id, const char *to,
		  const unsigned char *gz, size_t gzlen, size_t *len);

/* Deliver a report mail through the relay: true when it was accepted for delivery. */
typedef bool (*tlsrpt_mail_fn)(void *arg, const char *from, const char *to, const char *data,
			       size_t len);

struct tlsrpt_run_result {
	unsigned reports;		/* domains reported to */
	unsigned no_rua;		/* domains without a usable TLS-RPT record */
	unsigned failed;		/* deliveries (mail or POST) that failed */
	unsigned skipped;		/* DNS failures: left for a later run */
	bool stopped;			/* the lease was lost: the rest left for later */
};

struct pw_config;
struct event_base;
struct dns;
struct lease;

struct tlsrpt_run_opts {
	const struct pw_config *cfg;
	struct event_base *base;
	struct db *db;
	struct dns *dns;
	const char *day;		/* "YYYY-MM-DD" */
	bool dry_run;			/* print the JSON to out, send and record nothing */
	FILE *out;
	tlsrpt_mail_fn mail;
	void *mail_arg;
	const struct lease *lease;	/* serve: act only while held; NULL: always */
	void (*done)(void *arg, const struct tlsrpt_run_result *res);
	void *done_arg;
};

struct tlsrpt_run;
/*
 * Report day to every domain with counts that publishes a TLS-RPT record and was not
 * reported to yet for that day; done runs on the loop at the end.
 */
struct tlsrpt_run *tlsrpt_run_start(const struct tlsrpt_run_opts *opts);
/* Stop a run (done is not called) and free it; also to free it after done. */
void tlsrpt_run_free(struct tlsrpt_run *run);

/* serve: yesterday's reports once a day after [tlsrpt] send_at, under lease. */
struct tlsrpt_sched;
struct tlsrpt_sched *tlsrpt_sched_start(struct relay *r, const struct lease *lease);
void tlsrpt_sched_stop(struct tlsrpt_sched *s);

#endif
