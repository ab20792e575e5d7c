/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP reply parser: replies from remote MX
 * hosts are hostile input. Parses every reply in the input, as the client does.
 */
#include <stdint.h>
#include <stdlib.h>

#include "relay/relay_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t used;
	struct reply r;

	while (size > 0 && reply_parse(p, size, &r, &used) == REPLY_DONE) {
		char *t = reply_text(&r);

		(void)reply_has_keyword(&r, "STARTTLS");
		if (used == 0 || used > size || r.code < 200 || r.code > 599 || r.nlines == 0)
			abort();
		free(t);
		reply_free(&r);
		p += used;
		size -= used;
	}
	return 0;
}
