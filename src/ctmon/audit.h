/*
 * audit.h - "postwarden audit DOMAIN": the provider's own domain as a careful outsider
 * sees it. DNSSEC, the MX hosts and their STARTTLS, the TLS versions and certificates
 * served on ports 25, 465, 587, 993 and 443, TLSA records matched by OpenSSL's DANE against
 * what is served, CAA against the issuers of the certificates the CT monitor found, and
 * the MTA-STS and TLS-RPT records. Every finding is a line: pass, warn or fail, with one
 * sentence saying what to do.
 *
 * The parsers of outside input (TXT and SRV RDATA, the HTTP response of the policy fetch,
 * the SMTP replies of the greeting/EHLO/STARTTLS exchange) are pure functions with bounds,
 * each behind a fuzz target; the MTA-STS and TLS-RPT syntaxes are the relay's. The probes
 * are blocking with deadlines: audit is a command-line tool with no event loop to keep free.
 */
#ifndef PW_AUDIT_H
#define PW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#include "db.h"
#include "dns.h"

#define AUDIT_TXT_MAX		4096	/* a TXT record's strings joined; longer is malformed */
#define AUDIT_MAX_HOSTS		8	/* MX or SRV targets probed per service */
#define AUDIT_MAX_ADDRS		4	/* addresses probed per host */
#define AUDIT_CONNECT_MS	5000	/* TCP connect */
#define AUDIT_STEP_MS		5000	/* each read, write or handshake step */
#define AUDIT_ENDPOINT_MS	15000	/* everything on one address and port */
#define AUDIT_WARN_DAYS		21	/* a certificate expiring sooner is a warning */
#define AUDIT_FINDINGS_MAX	1000	/* CT findings compared with CAA */
#define AUDIT_CAA_NAMES		64	/* distinct names whose CAA is looked up */

enum audit_status {
	AUDIT_PASS,
	AUDIT_WARN,
	AUDIT_FAIL,
};

struct audit_line {
	char *check;		/* "dnssec", "mx", "starttls", "tls", "certificate", "tlsa", ... */
	char *subject;		/* "example.org", "mx1.example.org[192.0.2.1]:25" */
	enum audit_status status;
	char *found;		/* what was seen */
	char *todo;		/* one sentence: what to do */
};

struct audit_report {
	char *domain;
	struct audit_line *lines;
	size_t n, cap;
};

const char *audit_status_name(enum audit_status s);	/* "pass", "warn", "fail" */

void audit_report_init(struct audit_report *r, const char *domain);
void audit_report_free(struct audit_report *r);
void audit_add(struct audit_report *r, const char *check, const char *subject,
	       enum audit_status status, const char *found, const char *todo);
bool audit_failed(const struct audit_report *r);
json_t *audit_report_json(const struct audit_report *r);

/* -- parsers of outside input ------------------------------------------------------ */

/*
 * The MTA-STS and TLS-RPT records and the MTA-STS policy are read with the relay's parsers
 * (relay_sts.h, relay_tlsrpt.h), so that the audit judges them as the relay's senders do.
 */

#define AUDIT_HTTP_HEAD_MAX	8192		/* status line and headers of the policy fetch */

/*
 * An HTTP/1.0 or 1.1 response read to the end (the request is HTTP/1.0: no chunked
 * body): the status, the Content-Type value (white space cut, at most 63 bytes, "" when
 * absent) and where the body starts. false when malformed or when the head exceeds
 * AUDIT_HTTP_HEAD_MAX.
 */
bool audit_http_response(const char *data, size_t len, int *status, char ctype[64],
			 size_t *body_off);

/* An SRV RDATA (RFC 2782); target "." means the service is not offered. */
struct audit_srv {
	uint16_t prio, weight, port;
	char *target;		/* lower-case, no trailing dot */
};
bool audit_srv_parse(const uint8_t *rdata, size_t len, struct audit_srv *out);

/* The SMTP side of a STARTTLS probe: greeting, EHLO, STARTTLS; replies from a stranger. */
enum audit_smtp_state {
	AUDIT_SMTP_GREETING,	/* waiting for the 220 greeting */
	AUDIT_SMTP_EHLO,	/* EHLO sent */
	AUDIT_SMTP_STARTTLS,	/* STARTTLS sent */
	AUDIT_SMTP_TLS,		/* 220 to STARTTLS: start the handshake */
	AUDIT_SMTP_NO_TLS,	/* STARTTLS not offered or refused */
	AUDIT_SMTP_REFUSED,	/* no 220 greeting, or EHLO refused */
	AUDIT_SMTP_BAD,		/* not SMTP: malformed or oversized reply */
};

struct audit_smtp {
	enum audit_smtp_state state;
	char last[160];		/* the last reply, printable, for the line's "found" */
};

/*
 * Feed what was received so far; consumes whole replies (*used), moves the state and
 * says what to send next in *send (a static string, or NULL). Returns true while more
 * input is needed in the new state.
 */
bool audit_smtp_feed(struct audit_smtp *s, const char *data, size_t len, size_t *used,
		     const char **send);

/* -- the audit ------------------------------------------------------------------------ */

struct audit_ctx {
	struct dns *dns;		/* borrowed: the validating resolver */
	struct db *db;			/* borrowed; NULL: CT findings are not compared */
	const char *issuer_caa;		/* [ctmon] issuer_caa */
	SSL_CTX *ctx;			/* borrowed: the project's client context (TLS 1.2+) */
	int64_t now;			/* unix time, for expiry */
};

/* Run every check on domain (lower-case A-labels, no trailing dot) into r. */
void audit_run(struct audit_ctx *a, const char *domain, struct audit_report *r);

#endif
