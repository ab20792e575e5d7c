/*
 * fuzz_mig_api.c - libFuzzer target for the body of POST /v1/migrations (JSON, jansson):
 * a body that parses has every required member of its kind (mail or contacts), and its
 * secrets fit the credential bound.
 * (destination_password may be absent from a mail job: a node with [migrate] master_user
 * needs none.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/mig_api.h"
#include "migrate/mig_contacts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_api_body b;
	const char *err = NULL;

	if (mig_api_body_parse((const char *)data, size, &b, &err) == 0) {
		bool contacts = strcmp(b.kind, "contacts") == 0;

		if ((!contacts && strcmp(b.kind, "mail") != 0) || b.source == NULL ||
		    (b.source_user == NULL && !(contacts && b.token)) ||
		    b.destination_user == NULL || b.source_cred == NULL ||
		    (b.destination_cred != NULL && b.destination_cred->len > MIG_CRED_MAX) ||
		    b.source_cred->len > MIG_CRED_MAX ||
		    strlen(b.source_cred->secret) != b.source_cred->len || b.job < 0)
			abort();
		/* a contacts job: a CardDAV/Graph source, never a file, and the destination's
		 * password (no master user at a CardDAV server); mail keeps its members */
		if (contacts && (b.source_host || b.oauth || b.destination_cred == NULL ||
				 (mig_contacts_preset(b.source) &&
				  mig_contacts_is_file(mig_contacts_preset(b.source)))))
			abort();
		if (!contacts && b.source_url)
			abort();
		if (b.source_url && strlen(b.source_url) > MIG_API_MAX_URL)
			abort();
		mig_api_body_free(&b);
	} else if (err == NULL) {
		abort();
	}
	return 0;
}
