/*
 * fuzz_sts_policy.c - libFuzzer target for the MTA-STS policy text a receiver serves
 * (relay_sts.c): parse it, then match every pattern against a few host names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sts_policy p, q;
	char err[80];

	if (!sts_policy_parse((const char *)data, size, &p, err, sizeof(err)))
		return 0;
	if (p.nmx > STS_MX_MAX || p.max_age < 0 || p.max_age > STS_MAX_AGE_MAX ||
	    p.text == NULL || (p.mode != STS_MODE_NONE && p.nmx == 0))
		abort();
	for (size_t i = 0; i < p.nmx; i++) {
		if (strlen(p.mx[i]) > STS_MX_LEN)
			abort();
		(void)sts_mx_match(p.mx[i], "mx.example.org");
		(void)sts_mx_match(p.mx[i], p.mx[i]);
	}
	sts_policy_copy(&q, &p);
	sts_policy_clear(&p);
	sts_policy_clear(&q);
	return 0;
}
