/*
 * mime_words.h - decoding of RFC 2047 encoded words ("=?charset?B|Q?text?=") in an
 * unstructured header value such as Subject, into UTF-8.
 *
 * UTF-8, US-ASCII, ISO-8859-1 and ISO-8859-15 are decoded here; other charsets go through
 * glibc's iconv. Adjacent encoded words (only white space between them) are joined without
 * that space, and the bytes of adjacent words of one charset are converted together (a
 * character split across two words comes out whole). An encoded word that cannot be
 * decoded (bad base64 or Q text, unknown charset, bytes invalid in it) is kept as written.
 */
#ifndef PW_MIME_WORDS_H
#define PW_MIME_WORDS_H

#include <stddef.h>

#define MIME_WORDS_MAX_IN 16384		/* input beyond this is not read */
#define MIME_WORDS_MAX_WORD 1024	/* a longer encoded word is kept as written */

/*
 * The value of in[0..len) with its encoded words decoded; at most max_out bytes (cut at a
 * UTF-8 character boundary where the decoded text is cut), NUL-terminated, for the caller
 * to free. Text outside encoded words is copied unchanged.
 */
char *mime_words_decode(const char *in, size_t len, size_t max_out);

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
int mime_words_utf8_valid(const unsigned char *s, size_t n);

/* Every byte of s that is not part of a well-formed UTF-8 character becomes '?' (raw
 * 8-bit text outside encoded words, for JSON, which must be UTF-8). */
void mime_words_utf8_scrub(char *s);

#endif
