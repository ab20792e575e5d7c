/*
 * fuzz_mig_api.c - libFuzzer target for the body of POST /v1/migrations (JSON, jansson):
 * a body that parses has every required member, and its secrets fit the credential bound.
 * (destination_password may be absent: a node with [migrate] master_user needs none.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/mig_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_api_body b;
	const char *err = NULL;

	if (mig_api_body_parse((const char *)data, size, &b, &err) == 0) {
		if (strcmp(b.kind, "mail") != 0 || b.source == NULL || b.source_user == NULL ||
		    b.destination_user == NULL || b.source_cred == NULL ||
		    (b.destination_cred != NULL && b.destination_cred->len > MIG_CRED_MAX) ||
		    b.source_cred->len > MIG_CRED_MAX ||
		    strlen(b.source_cred->secret) != b.source_cred->len || b.job < 0)
			abort();
		mig_api_body_free(&b);
	} else if (err == NULL) {
		abort();
	}
	return 0;
}
