/*
 * fuzz_http_query.c - libFuzzer target for query-string parsing and URL encoding.
 *
 * Input: one byte giving a name length, the name, then the rest as a query string.
 * http_query_param must never return more than the query held; and any value that
 * http_urlencode encodes must come back unchanged from http_query_param.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every encoded byte is unreserved or part of a %XX escape. */
static void fuzz_check_encoded(const char *e)
{
	for (; *e; e++) {
		if (*e == '%') {
			if (!strchr("0123456789ABCDEF", e[1]) || !strchr("0123456789ABCDEF", e[2]) ||
			    e[1] == '\0' || e[2] == '\0')
				abort();
			e += 2;
		} else if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789-._~", *e)) {
			abort();
		}
	}
}

/* Encode name and value into a query behind a decoy pair; parsing must give value back. */
static void fuzz_round_trip(const char *name, const char *value)
{
	char *en = http_urlencode(name), *ev = http_urlencode(value);
	char *q = xasprintf("%%2A=1&%s=%s&%s=second", en, ev, en);
	char *back = http_query_param(q, name);

	fuzz_check_encoded(en);
	fuzz_check_encoded(ev);
	if (strlen(q) <= HTTP_MAX_QUERY && *name && strcmp(name, "*") != 0) {
		if (back == NULL || strcmp(back, value) != 0)
			abort();
	}
	if (strlen(q) > HTTP_MAX_QUERY && back != NULL)
		abort();
	free(back);
	free(q);
	free(ev);
	free(en);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t nlen;
	char *name, *query, *v;

	if (size < 1)
		return 0;
	nlen = data[0];
	if (nlen > size - 1)
		nlen = size - 1;
	name = xstrndup((const char *)data + 1, nlen);
	query = xstrndup((const char *)data + 1 + nlen, size - 1 - nlen);
	v = http_query_param(query, name);
	if (v != NULL && (strlen(query) > HTTP_MAX_QUERY || strlen(v) > strlen(query)))
		abort();
	free(v);
	fuzz_round_trip(name, query);
	free(query);
	free(name);
	return 0;
}
