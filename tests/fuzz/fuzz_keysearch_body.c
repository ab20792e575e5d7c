/*
 * fuzz_keysearch_body.c - libFuzzer target: an answer from a keyserver, WKD or DNS as key
 * search parses it: split into armored blocks and primary keys (ks_body_split), each
 * checked with keys_accept for one searched address (ks_body_keys). Seeds: one armored
 * block with two keys, two binary keys back to back, and text around an armored key.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keysearch/ks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_outcome o = { 0 };
	struct ks_chunk *chunks;
	size_t n = ks_body_split(data, size, &chunks), accepted;

	if (n > KS_MAX_KEYS_PER_BODY)
		abort();
	for (size_t i = 0; i < n; i++)
		if (chunks[i].len == 0 || chunks[i].len > size + 1)
			abort();	/* decoded base64 is never longer than its text */
	ks_chunks_free(chunks, n);
	accepted = ks_body_keys(data, size, "alice@example.org", 1800000000, KS_TRUST_HKP,
				"fuzz", &o);
	if (accepted != o.nhits)
		abort();
	for (size_t i = 0; i < o.nhits; i++)
		if (strcmp(o.hits[i].uid, "alice@example.org") != 0 &&
		    strcasecmp(o.hits[i].uid, "alice@example.org") != 0)
			abort();
	ks_outcome_release(&o);
	return 0;
}
