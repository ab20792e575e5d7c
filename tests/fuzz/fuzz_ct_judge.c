/*
 * fuzz_ct_judge.c - arbitrary bytes as the extra_data of an RFC 6962 x509_entry (the chain
 * whose first certificate is the issuer) and as an issuer certificate served by a
 * static-ct-api log: the issuer key hash is read or refused, never read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_judge.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy = xmalloc(size ? size : 1);	/* exact size: ASan sees overreads */
	char key[65];

	memcpy(copy, data, size);
	if (ct_judge_chain_issuer_key(copy, size, key) == 0 && strlen(key) != 64)
		abort();
	if (ct_judge_cert_key(copy, size, key) == 0 && strlen(key) != 64)
		abort();
	free(copy);
	return 0;
}
