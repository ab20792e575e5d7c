/*
 * fuzz_sts_txt.c - libFuzzer target for the "_mta-sts" TXT record (relay_sts.c): the input
 * as TXT RDATA (length-prefixed strings, joined by dns_txt_join), then its text as a record and as a set of two.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "relay/relay_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char txt[STS_TXT_MAX], id[STS_ID_MAX + 1];
	const char *set[2];

	if (dns_txt_join(data, size, txt, sizeof(txt)) < 0)
		return 0;
	if (strlen(txt) >= STS_TXT_MAX)
		abort();
	if (sts_txt_parse(txt, id) == STS_TXT_OK && (id[0] == '\0' || strlen(id) > STS_ID_MAX))
		abort();
	set[0] = txt;
	set[1] = "v=spf1 -all";
	(void)sts_txt_set(set, 2, id);
	return 0;
}
