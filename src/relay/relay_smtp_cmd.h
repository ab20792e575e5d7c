/*
 * relay_smtp_cmd.h - parsing one SMTP command line (RFC 5321, with the ESMTP parameters of
 * SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461) and REQUIRETLS
 * (RFC 8689)).
 *
 * A pure function over one line without its CRLF: no session state besides whether the
 * transaction allows UTF-8 addresses. On error it gives the complete reply line to send.
 */
#ifndef PW_RELAY_SMTP_CMD_H
#define PW_RELAY_SMTP_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
#define SMTP_CMD_MAX		510
/* MAIL and RCPT may be longer by their ESMTP parameters (RFC 1870, RFC 3461). */
#define SMTP_CMD_MAX_PARAMS	4094
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets. */
#define SMTP_PATH_MAX		256
/* RFC 3461 4.4: an ENVID is at most 100 characters. */
#define SMTP_ENVID_MAX		100
/* RFC 3461 4.2: an ORCPT parameter is at most 500 characters. */
#define SMTP_ORCPT_MAX		500

enum smtp_verb {
	SMTP_HELO,
	SMTP_EHLO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_HELP,
	SMTP_STARTTLS,
};

enum smtp_body {
	SMTP_BODY_NONE,		/* no BODY parameter */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

enum smtp_ret {
	SMTP_RET_NONE,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

/* RCPT NOTIFY flags; 0 when the parameter was not given. */
#define SMTP_NOTIFY_NEVER	0x1
#define SMTP_NOTIFY_SUCCESS	0x2
#define SMTP_NOTIFY_FAILURE	0x4
#define SMTP_NOTIFY_DELAY	0x8

struct smtp_cmd {
	enum smtp_verb verb;
	char *arg;		/* HELO/EHLO domain, VRFY/HELP/NOOP argument; NULL when none */
	char *path;		/* MAIL/RCPT address without angle brackets; "" = null sender */
	/* MAIL parameters */
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	bool requiretls;		/* RFC 8689: every hop must use verified TLS */
	enum smtp_ret ret;
	char *envid;		/* xtext-decoded, or NULL */
	/* RCPT parameters */
	unsigned notify;	/* SMTP_NOTIFY_* */
	char *orcpt;		/* "addr-type;address" with the address xtext-decoded, or NULL */
	/* on failure: the reply line to send, without CRLF */
	char error[160];
};

/*
 * Parse line[0..len) (no CRLF). smtputf8 says whether the current transaction was started
 * with MAIL ... SMTPUTF8 (for RCPT; MAIL decides from its own parameters). Returns 0 with
 * *cmd filled (free with smtp_cmd_free), or the SMTP reply code (500, 501, 502, 504, 553,
 * 555) with cmd->error set and nothing to free.
 */
int smtp_cmd_parse(const char *line, size_t len, bool smtputf8, struct smtp_cmd *cmd);
void smtp_cmd_free(struct smtp_cmd *cmd);

/* Decode RFC 3461 xtext (ASCII only); NULL when malformed or when it decodes to a control character. */
char *smtp_xtext_decode(const char *s, size_t len);
/* Encode s as xtext, for handing DSN parameters on to the next hop. Caller frees. */
char *smtp_xtext_encode(const char *s);
/* "NEVER" or a comma list in the order SUCCESS,FAILURE,DELAY; NULL for 0. Caller frees. */
char *smtp_notify_string(unsigned notify);

#endif
