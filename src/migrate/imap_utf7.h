/*
 * imap_utf7.h - mailbox names in modified UTF-7 (RFC 3501 5.1.3) to and from UTF-8.
 */
#ifndef PW_IMAP_UTF7_H
#define PW_IMAP_UTF7_H

#include <stddef.h>

/* Longest mailbox name handled, in either form. */
#define IMAP_NAME_MAX 1024

/* UTF-8 to modified UTF-7; NULL when the input is not valid UTF-8 or too long. */
char *imap_utf7_encode(const char *utf8, size_t len);
/* Modified UTF-7 to UTF-8; NULL when the input is not valid modified UTF-7 or too long. */
char *imap_utf7_decode(const char *mutf7, size_t len);

#endif
