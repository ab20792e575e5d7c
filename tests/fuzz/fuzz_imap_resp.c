/*
 * fuzz_imap_resp.c - IMAP server responses: the stream splitter with its bounds, the parser
 * and its tree helpers, the head of a streamed message body, and modified UTF-7 names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/imap_parse.h"
#include "migrate/imap_utf7.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct imap_node *n, int depth)
{
	uint64_t v;

	for (; n != NULL; n = n->next) {
		(void)imap_node_u64(n, &v);
		if (n->type == IMAP_LIST && depth < 64)
			walk(n->child, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t off = 0;
	char *s;

	while (off < size) {
		long long n = imap_resp_need(p + off, size - off, 1024, 2048);
		struct imap_resp r;
		const char *err;
		uint64_t lit = 0;
		long long h = imap_stream_head(p + off, size - off, 1024, &lit);

		/* a body head is one whole line of the input, never more */
		if (h > 0 && ((size_t)h > size - off || p[off + (size_t)h - 1] != '\n'))
			abort();
		if (n <= 0)
			break;
		if (imap_resp_parse(p + off, (size_t)n, &r, &err)) {
			walk(r.args.child, 0);
			(void)imap_fetch_item(r.args.child, "BODY[]");
			imap_resp_free(&r);
		}
		off += (size_t)n;
	}
	s = imap_utf7_decode(p, size);
	if (s != NULL) {
		char *back = imap_utf7_encode(s, strlen(s));

		free(back);
		free(s);
	}
	s = imap_utf7_encode(p, size);
	free(s);
	return 0;
}
