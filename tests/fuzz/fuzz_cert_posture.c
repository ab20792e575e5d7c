/*
 * fuzz_cert_posture.c - the certificate and public key files `postwarden cert` reads:
 * PEM chains, DER, requests, public keys; every parse either yields keys whose TLSA
 * values can be computed or one error sentence.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ctmon/posture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct posture_chain chain;
	char *err = NULL, hex[65], fp[97];
	EVP_PKEY *key;

	if (posture_parse_chain(data, size, "input", &chain, &err)) {
		for (size_t i = 0; i < chain.n; i++) {
			EVP_PKEY *k = X509_get0_pubkey(chain.certs[i]);

			if (k != NULL)
				posture_spki_sha256_hex(k, hex);
			posture_cert_sha256_colons(chain.certs[i], fp);
			free(posture_cert_host(chain.certs[i]));
			(void)posture_is_ca(chain.certs[i]);
		}
		posture_chain_free(&chain);
	}
	free(err);
	err = NULL;
	key = posture_parse_public_key(data, size, "input", &err);
	if (key != NULL)
		posture_spki_sha256_hex(key, hex);
	EVP_PKEY_free(key);
	free(err);
	return 0;
}
