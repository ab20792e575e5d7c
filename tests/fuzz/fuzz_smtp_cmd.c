/*
 * fuzz_smtp_cmd.c - libFuzzer target for the SMTP command parser and xtext coding.
 *
 * Every input is parsed as one command line with and without SMTPUTF8; a success must
 * give the fields its verb promises, a failure a reply line starting with its code.
 * xtext that decodes must survive an encode/decode round trip unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_smtp_cmd.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_parse(const char *line, size_t len, bool utf8)
{
	struct smtp_cmd cmd;
	int rc = smtp_cmd_parse(line, len, utf8, &cmd);

	if (rc != 0) {
		if (atoi(cmd.error) != rc)
			abort();
		return;
	}
	if ((cmd.verb == SMTP_MAIL || cmd.verb == SMTP_RCPT) &&
	    (cmd.path == NULL || strlen(cmd.path) > SMTP_PATH_MAX))
		abort();
	if (cmd.verb == SMTP_RCPT && *cmd.path == '\0')
		abort();
	if ((cmd.verb == SMTP_EHLO || cmd.verb == SMTP_HELO) && cmd.arg == NULL)
		abort();
	smtp_cmd_free(&cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char *dec, *enc, *again;

	fuzz_parse(s, size, false);
	fuzz_parse(s, size, true);
	dec = smtp_xtext_decode(s, size);
	if (dec) {
		enc = smtp_xtext_encode(dec);
		again = smtp_xtext_decode(enc, strlen(enc));
		if (again == NULL || strcmp(again, dec) != 0)
			abort();
		free(again);
		free(enc);
		free(dec);
	}
	return 0;
}
