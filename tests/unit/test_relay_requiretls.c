/*
 * test_relay_requiretls.c - which connections may carry a REQUIRETLS message (RFC 8689 4.2.1):
 * every combination of TLS, DANE, MTA-STS and the REQUIRETLS keyword, as a table.
 */
#include <string.h>

#include "relay/relay_requiretls.h"
#include "unit.h"

static void test_missing(void)
{
	static const struct {
		bool tls, dane, sts, offered;
		const char *want;	/* NULL: may carry it; else a word of the reason */
	} t[] = {
		{ true, true, false, true, NULL },
		{ true, false, true, true, NULL },
		{ true, true, true, true, NULL },
		{ true, true, false, false, "does not support REQUIRETLS" },
		{ true, false, true, false, "does not support REQUIRETLS" },
		{ true, false, false, true, "neither" },
		{ true, false, false, false, "neither" },
		{ false, false, false, true, "does not use TLS" },
		{ false, true, true, true, "does not use TLS" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *got = requiretls_missing(t[i].tls, t[i].dane, t[i].sts, t[i].offered);

		if (t[i].want == NULL)
			CHECK(got == NULL);
		else
			CHECK(got != NULL && strstr(got, t[i].want) != NULL);
	}
}

TEST_MAIN(test_missing)
