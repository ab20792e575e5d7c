/*
 * relay_dsn.h - delivery status notifications (RFC 3464) to the sender of a message.
 *
 * Two events: recipients stopped by the TLS-sending guarantee (held, status 5.7.10, with an
 * explanation a non-expert understands and how to release the message once), and ordinary
 * failures (5xx replies, null MX, no such domain, queue lifetime over). Building is a pure
 * function of its input; the scheduler queues the result with queue_inject.
 */
#ifndef PW_RELAY_DSN_H
#define PW_RELAY_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay_policy.h"

enum dsn_kind {
	DSN_HELD,	/* the guarantee stopped delivery to these recipients */
	DSN_FAILED,	/* permanent failure or queue lifetime over */
};

struct dsn_rcpt {
	const char *addr;
	const char *orcpt;		/* "rfc822;addr" as given, or NULL */
	const char *mx;			/* host, or NULL when no host was reached */
	const char *status;		/* "5.7.10", "5.1.1", ... */
	const char *diagnostic;		/* technical reason (remote reply or our text) */
	enum policy_reason reason;
};

struct dsn_input {
	enum dsn_kind kind;
	const char *language;		/* "en" or "de" */
	const char *hostname;		/* Reporting-MTA and MAILER-DAEMON domain */
	const char *msg_id;		/* queue ID of the original message */
	const char *envid;		/* or NULL */
	const char *sender;		/* the original envelope sender: the notification's To */
	int64_t arrival;
	int64_t now;
	int hold_days;
	const struct dsn_rcpt *rcpts;
	size_t nrcpt;
	const char *headers;		/* the original header block, or NULL */
	size_t headers_len;
};

/* May a message from sender get a notification at all (not null sender, not one of ours)? */
bool dsn_allowed(const char *sender, bool notification);
/* Does a recipient's NOTIFY parameter (NULL: default) ask for failure reports? */
bool dsn_rcpt_wants(const char *notify);
/* The whole notification message (header and body, CRLF line ends); caller frees. */
char *dsn_build(const struct dsn_input *in, size_t *len);
/* One sentence saying why delivery to a recipient failed, for people; caller frees. */
char *dsn_explain(enum policy_reason r, const char *host, const char *diagnostic, bool german);

#endif
