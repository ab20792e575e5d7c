/*
 * fuzz_audit_smtp.c - libFuzzer target for the SMTP side of audit's STARTTLS probe: the
 * greeting, EHLO and STARTTLS replies of the server being audited, fed in pieces as they
 * might arrive, as the probe does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_smtp s;
	size_t start = 0, end = 0, step;
	const char *p = (const char *)data;

	if (size == 0)
		return 0;
	/* the first byte chooses how many bytes arrive per read */
	step = (size_t)data[0] % 64 + 1;
	p++;
	size--;
	memset(&s, 0, sizeof(s));
	while (end < size) {
		size_t used = 0;
		const char *send = NULL;
		bool more;

		end = size - end < step ? size : end + step;
		/* as the probe: what was not consumed stays buffered for the next read */
		more = audit_smtp_feed(&s, p + start, end - start, &used, &send);
		if (used > end - start || memchr(s.last, '\0', sizeof(s.last)) == NULL)
			abort();
		start += used;
		if (!more)
			break;
	}
	return 0;
}
