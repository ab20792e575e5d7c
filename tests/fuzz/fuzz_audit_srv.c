/*
 * fuzz_audit_srv.c - libFuzzer target for the SRV RDATA audit reads (RFC 6186 records of
 * the submission and IMAP services), from the zone being audited or whoever answers for it.
 * The TXT records audit reads go through the relay's parsers (fuzz_sts_txt.c,
 * fuzz_tlsrpt_rua.c).
 */
#include <stdint.h>
#include <stdlib.h>

#include "ctmon/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_srv srv;

	if (audit_srv_parse(data, size, &srv)) {
		if (srv.target == NULL)
			abort();
		free(srv.target);
	}
	return 0;
}
