/*
 * acct_user.h - the signed-in user's own data:
 *   GET  /v1/me                    {"address","aliases","language"}
 *   GET  /v1/guarantee             {"enabled","active","off_until"}
 *   PUT  /v1/guarantee             {"enabled":true} | {"enabled":false[,"for":seconds]}
 *   GET  /v1/held                  the held messages sent from the user's addresses
 *   POST /v1/held/ID/release       {"recipient": addr} optional: one recipient or all of ID
 *   POST /v1/held/release          every held message of the user
 *   GET  /v1/notifications?days=N  what happened to the user's mail in the last N days
 * A message is the user's when its envelope sender is one of the account's addresses; any
 * other ID is answered 404, exactly as one that does not exist.
 */
#ifndef PW_ACCT_USER_H
#define PW_ACCT_USER_H

#include "acct_http.h"

#define ACCT_MAX_OFF_FOR (30 * 24 * 3600)
#define ACCT_MAX_DAYS 90
#define ACCT_SUBJECT_SCAN 32768	/* bytes of a spool file searched for Subject */
#define ACCT_SUBJECT_MAX 256		/* bytes of the decoded subject shown */
#define ACCT_SUBJECT_RAW 4096		/* bytes of the unfolded field decoded */

/* The Subject of a message header (unfolded, RFC 2047 words decoded into UTF-8, at most
 * ACCT_SUBJECT_MAX bytes; "" if none). */
char *acct_header_subject(const char *data, size_t len);

void acct_user_register(struct acct_http *h);

#endif
