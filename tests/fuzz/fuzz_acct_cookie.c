/*
 * fuzz_acct_cookie.c - libFuzzer target for the Cookie header parser of the account API:
 * a value found is non-empty, at most 512 bytes, and holds only cookie-octets (no space,
 * quote, comma, semicolon or backslash); the static path check is fuzzed on the same input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account/acct_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *v;

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if ((v = acct_cookie_get(s, "pw_session")) != NULL) {
		size_t n = strlen(v);

		if (n == 0 || n > 512 || strpbrk(v, " \t\";,\\") != NULL)
			abort();
		free(v);
	}
	if (acct_static_path_ok(s) && (strstr(s, "/.") != NULL || s[0] != '/'))
		abort();
	free(s);
	return 0;
}
