/*
 * fuzz_relay_hdr.c - libFuzzer target: the "TLS-Required: No" and "Require-TLS: yes"
 * scanner on message data.
 *
 * The first byte chooses where the data is split into chunks; the verdict must not depend
 * on the split, and can only be "yes" when the data holds the field name at all.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay/relay_hdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool contains_ci(const uint8_t *p, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp((const char *)p + i, needle, m) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relay_hdr whole, parts;
	size_t step;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 17 + 1;
	data++;
	size--;
	relay_hdr_init(&whole);
	relay_hdr_scan(&whole, (const char *)data, size);
	relay_hdr_finish(&whole);
	relay_hdr_init(&parts);
	for (size_t off = 0; off < size; off += step)
		relay_hdr_scan(&parts, (const char *)data + off, size - off < step ? size - off : step);
	relay_hdr_finish(&parts);
	if (whole.tls_required_no != parts.tls_required_no)
		abort();
	if (whole.tls_required_no && !contains_ci(data, size, "TLS-Required"))
		abort();
	if (whole.require_tls != parts.require_tls)
		abort();
	if (whole.require_tls && !contains_ci(data, size, "Require-TLS"))
		abort();
	return 0;
}
