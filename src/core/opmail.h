/*
 * opmail.h - the header of a mail postwarden writes to the provider's operator (alerts of
 * the CT monitor and of the downgrade memory), so that every such mail looks alike.
 */
#ifndef PW_OPMAIL_H
#define PW_OPMAIL_H

#include "buf.h"

/*
 * Append the header of an operator alert to b: From "postwarden WHO <postmaster@hostname>",
 * To to, Subject "[postwarden] subject", Date, a Message-ID ending in ".tag@hostname",
 * Auto-Submitted, and a UTF-8 text/plain body to follow.
 */
void opmail_header(struct buf *b, const char *hostname, const char *who, const char *to,
		   const char *subject, const char *tag);

#endif
