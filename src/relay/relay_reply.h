/*
 * relay_reply.h - parser for SMTP replies from remote servers (RFC 5321 4.2, RFC 3463 codes).
 *
 * Replies come from hosts on the internet and are hostile input: every line and the number
 * of lines are bounded, and anything that is not "DDD[ -]text" ends the session.
 */
#ifndef PW_RELAY_REPLY_H
#define PW_RELAY_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define REPLY_MAX_LINE	2048	/* bytes per line incl. CRLF (RFC 5321 says 512) */
#define REPLY_MAX_LINES	64	/* lines per reply (EHLO lists keywords, one per line) */

struct reply {
	int code;		/* 200..599 */
	char enhanced[16];	/* "5.7.1" from the first line, or "" */
	char **lines;		/* text after "DDD-" of each line, enhanced code kept */
	size_t nlines;
};

enum reply_result {
	REPLY_NEED_MORE = 0,	/* no complete reply yet */
	REPLY_DONE = 1,		/* *r filled, *used bytes consumed */
	REPLY_BAD = -1,		/* malformed, too long or too many lines */
};

/*
 * Parse one complete reply from data[0..len). Lines end with CRLF (a bare LF is accepted).
 * On REPLY_DONE *r holds the reply (free with reply_free) and *used the bytes it took.
 */
enum reply_result reply_parse(const char *data, size_t len, struct reply *r, size_t *used);
void reply_free(struct reply *r);
/* Is an EHLO keyword (case-insensitive, first word of a line after the first) present? */
bool reply_has_keyword(const struct reply *r, const char *keyword);
/* The reply as one printable line "550 5.1.1 text text", bounded and without controls; caller frees. */
char *reply_text(const struct reply *r);

#endif
