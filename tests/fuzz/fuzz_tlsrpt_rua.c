/*
 * fuzz_tlsrpt_rua.c - libFuzzer target for the TLS-RPT record (RFC 8460 3) as the relay
 * reads it from whoever answers for _smtp._tls.DOMAIN: the TXT RDATA picked and joined,
 * then the record parsed into its report addresses and each mailto: address decoded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_tlsrpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char txt[TLSRPT_TXT_MAX + 1], addr[256];
	struct tlsrpt_rua rua;
	const uint8_t *rr[1] = { data };
	size_t len[1] = { size };
	int found = tlsrpt_txt_pick(rr, len, 1, txt, sizeof(txt));

	if (found == 1 && strlen(txt) > TLSRPT_TXT_MAX)
		abort();
	/* the raw bytes as a record, too */
	if (tlsrpt_rua_parse((const char *)data, size, &rua) == 0) {
		if (rua.n == 0 || rua.n > TLSRPT_MAX_RUA)
			abort();
		for (size_t i = 0; i < rua.n; i++) {
			if (strlen(rua.uri[i]) > TLSRPT_URI_MAX)
				abort();
			if (strncmp(rua.uri[i], "mailto:", 7) == 0 &&
			    !tlsrpt_mailto_addr(rua.uri[i], addr, sizeof(addr)))
				abort();
		}
	}
	return 0;
}
