/*
 * fuzz_keydir_refusal.c - arbitrary bytes as a DNS server's error reply to an update or a
 * zone transfer of the key directory, put into words by keydir_dns_refusal: with TSIG on
 * and the query's MAC (the reply's signature is checked), with the MAC unknown, and
 * without TSIG.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keydir/keydir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A MAC as ldns holds it: two bytes of length, then 32 bytes of HMAC-SHA256. */
	static const uint8_t mac[34] = { 0, 32, 1, 2, 3, 4, 5, 6, 7, 8 };
	struct keydir_conf kc = { .tsig_name = "pw-keydir", .tsig_algorithm = "hmac-sha256",
				  .tsig_secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0" };
	struct keydir_conf nokey = { .tsig_name = "", .tsig_secret = "" };
	char *t[3];

	if (size > 65535)
		return 0;
	t[0] = keydir_dns_refusal(&kc, "keys.test", data, size, mac, sizeof(mac));
	t[1] = keydir_dns_refusal(&kc, "keys.test", data, size, NULL, 0);
	t[2] = keydir_dns_refusal(&nokey, "keys.test", data, size, NULL, 0);
	for (int i = 0; i < 3; i++) {
		if (t[i] == NULL || t[i][0] == '\0' || strlen(t[i]) > 1024)
			abort();
		free(t[i]);
	}
	return 0;
}
