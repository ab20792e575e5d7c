/*
 * fuzz_audit_sts.c - libFuzzer target for what audit reads from the MTA-STS policy host:
 * the HTTP response (status line and headers) and the policy body after it, then each mx
 * pattern matched against a host name, as the audit does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct audit_sts_policy pol;
	char ctype[64];
	size_t off = 0;
	int status = 0;

	if (size == 0 || !audit_http_response(p, size, &status, ctype, &off))
		return 0;
	if (off > size || status < 0 || status > 999 || strlen(ctype) > 63)
		abort();
	if (!audit_sts_policy_parse(p + off, size - off, &pol))
		return 0;
	if (pol.nmx > AUDIT_STS_MX_MAX || pol.mode[0] == '\0' || pol.max_age < 0)
		abort();
	for (size_t i = 0; i < pol.nmx; i++)
		(void)audit_sts_mx_match(pol.mx[i], "mx.example.org");
	audit_sts_policy_clear(&pol);
	return 0;
}
