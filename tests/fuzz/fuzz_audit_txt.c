/*
 * fuzz_audit_txt.c - libFuzzer target for what audit reads from DNS: TXT RDATA joined into
 * one string, the MTA-STS and TLS-RPT record syntaxes on the result, and SRV RDATA. All of
 * it comes from the zone being audited, or from whoever answers for it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/audit.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char txt[AUDIT_TXT_MAX + 1], id[33] = "";
	struct audit_srv srv;
	size_t nrua = 0;
	int n = dns_txt_join(data, size, txt, sizeof(txt));

	if (n >= 0) {
		if ((size_t)n != strlen(txt) || (size_t)n > AUDIT_TXT_MAX)
			abort();
		if (audit_mta_sts_parse(txt, id) == AUDIT_TXT_OK &&
		    (strlen(id) < 1 || strlen(id) > 32))
			abort();
		if (audit_tlsrpt_parse(txt, &nrua) == AUDIT_TXT_OK && nrua == 0)
			abort();
	}
	if (audit_srv_parse(data, size, &srv)) {
		if (srv.target == NULL)
			abort();
		free(srv.target);
	}
	return 0;
}
