/*
 * fuzz_audit_sts.c - libFuzzer target for what audit reads from the MTA-STS policy host:
 * the HTTP response (status line and headers, audit_http_response), then as the audit does
 * its Content-Type judged and the policy body after it parsed by the relay's parser, and
 * each MX host matched against the policy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/audit.h"
#include "relay/relay_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct sts_policy pol;
	char ctype[64], err[80];
	size_t off = 0;
	int status = 0;

	if (size == 0 || !audit_http_response(p, size, &status, ctype, &off))
		return 0;
	if (off > size || status < 0 || status > 999 || strlen(ctype) > 63)
		abort();
	(void)sts_content_type_ok(ctype);
	if (!sts_policy_parse(p + off, size - off, &pol, err, sizeof(err)))
		return 0;
	if (pol.nmx > STS_MX_MAX || pol.max_age < 0 || pol.max_age > STS_MAX_AGE_MAX)
		abort();
	(void)sts_policy_match(&pol, "mx.example.org");
	sts_policy_clear(&pol);
	return 0;
}
