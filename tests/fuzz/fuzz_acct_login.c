/*
 * fuzz_acct_login.c - libFuzzer target for the body of POST /v1/session (JSON, jansson): a
 * body that parses has a valid address within the bound and a non-empty password within
 * its bound, without NUL or line breaks (it goes into an IMAP command).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account/acct_login.h"
#include "strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_cred *pw = NULL;
	const char *err = NULL;
	char *addr = NULL;

	if (acct_login_body_parse((const char *)data, size, &addr, &pw, &err) == 0) {
		if (addr == NULL || pw == NULL || !addr_valid(addr) ||
		    strlen(addr) > ACCT_MAX_ADDRESS || pw->len == 0 ||
		    pw->len > ACCT_MAX_PASSWORD || strlen(pw->secret) != pw->len ||
		    strpbrk(pw->secret, "\r\n") != NULL)
			abort();
	} else if (addr != NULL || pw != NULL || err == NULL) {
		abort();
	}
	free(addr);
	mig_cred_free(pw);
	return 0;
}
