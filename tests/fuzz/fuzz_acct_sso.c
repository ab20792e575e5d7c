/*
 * fuzz_acct_sso.c - libFuzzer target for SSO assertions. The first bytes choose the time;
 * the rest is the assertion. Checked: an accepted assertion names a valid address; and
 * since the fuzzer cannot forge HMAC-SHA256, the input is also signed here with the secret
 * (its payload part re-signed), so the payload's JSON parser is reached and fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "account/acct_login.h"
#include "account/acct_session.h"
#include "strutil.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *a, size_t len, int64_t now)
{
	const char *err = NULL;
	char *sub = NULL;

	if (acct_sso_verify(a, len, SECRET, now, &sub, &err) == 0) {
		if (sub == NULL || !addr_valid(sub))
			abort();
	} else if (sub != NULL || err == NULL) {
		abort();
	}
	free(sub);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const int64_t now = 1800000000;
	unsigned char mac[32];
	unsigned int maclen = 0;
	char *p, *m, *signed_a;

	check((const char *)data, size, now);
	/* the input as a payload: base64url it and sign it properly */
	if (size > 1024)
		return 0;
	p = acct_b64url_encode(data, size);
	HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)p, strlen(p), mac,
	     &maclen);
	m = acct_b64url_encode(mac, maclen);
	signed_a = malloc(strlen(p) + strlen(m) + 2);
	if (signed_a == NULL)
		abort();
	strcpy(signed_a, p);
	strcat(signed_a, ".");
	strcat(signed_a, m);
	check(signed_a, strlen(signed_a), now);
	free(signed_a);
	free(p);
	free(m);
	return 0;
}
