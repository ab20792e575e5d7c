/*
 * fuzz_recipients_status.c - libFuzzer target for the body of POST /v1/recipients/status
 * (JSON, jansson): a body that parses gives at most 100 addresses, each a NUL-free string
 * of at most 320 bytes, and the transport told for it is one of the four names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account/acct_compose.h"
#include "log.h"
#include "strutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *err = NULL;
	char **addrs;
	size_t n;

	if (acct_compose_parse((const char *)data, size, &addrs, &n, &err) < 0) {
		if (err == NULL)
			abort();
		return 0;
	}
	if (n > ACCT_COMPOSE_MAX_RCPTS)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct acct_compose_probe p = { .verdict = (enum policy_action)(i % 7),
						.dane = i % 2, .host = addrs[i],
						.why = (char *)addr_domain(addrs[i]) };
		char *reason = NULL;
		const char *t = acct_compose_transport(&p, i % 3 == 0, &reason);

		if (strlen(addrs[i]) > ACCT_COMPOSE_MAX_ADDR || reason == NULL ||
		    (strcmp(t, "dane") && strcmp(t, "tls") && strcmp(t, "stop") &&
		     strcmp(t, "plaintext")))
			abort();
		free(reason);
		free(addrs[i]);
	}
	free(addrs);
	return 0;
}
