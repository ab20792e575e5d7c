/*
 * fuzz_mime_words.c - libFuzzer target: RFC 2047 decoding of a header value. The output
 * must stay within its bound and be valid UTF-8 whenever the input is, and always after
 * mime_words_utf8_scrub.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime_words.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max = size > 0 ? 1 + data[0] * 4 : 64;
	char *s = mime_words_decode((const char *)data, size, max);
	size_t n = strlen(s);

	if (n > max)
		fatalx("decoded text past its bound");
	if (mime_words_utf8_valid(data, size) && memchr(data, 0, size) == NULL &&
	    !mime_words_utf8_valid((const unsigned char *)s, n))
		fatalx("valid UTF-8 in, invalid out");
	mime_words_utf8_scrub(s);
	if (strlen(s) != n || !mime_words_utf8_valid((const unsigned char *)s, n))
		fatalx("scrubbed text still not UTF-8");
	free(s);
	return 0;
}
