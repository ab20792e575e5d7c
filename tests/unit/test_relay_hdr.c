/*
 * test_relay_hdr.c - the "TLS-Required: No" and "Require-TLS: yes" scanner: where the fields
 * count and where not.
 */
#include <string.h>

#include "relay/relay_hdr.h"
#include "unit.h"

/* Scan text in chunks of step bytes; the verdict. */
static bool scan(const char *text, size_t step)
{
	struct relay_hdr h;
	size_t len = strlen(text);

	relay_hdr_init(&h);
	for (size_t off = 0; off < len; off += step)
		relay_hdr_scan(&h, text + off, len - off < step ? len - off : step);
	relay_hdr_finish(&h);
	return h.tls_required_no;
}

static void test_field_found_in_any_chunking(void)
{
	static const char *const yes[] = {
		"From: a@b.test\r\nTLS-Required: No\r\n\r\nbody\r\n",
		"tls-required:   no  \r\n\r\n",
		"Subject: x\nTLS-Required:\n\tNo\n\nbody\n",	/* folded, bare LF */
		"From: a@b.test\r\nTLS-Required: No",		/* no line end at all */
	};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		for (size_t step = 1; step <= 7; step++)
			CHECK(scan(yes[i], step));
}

static void test_field_does_not_count_elsewhere(void)
{
	static const char *const no[] = {
		"From: a@b.test\r\n\r\nTLS-Required: No\r\n",	/* in the body */
		"From: a@b.test\r\nnot a field\r\nTLS-Required: No\r\n",	/* header section over */
		"TLS-Required: Yes\r\n\r\n",
		"X-TLS-Required: No\r\n\r\n",
		"Subject: TLS-Required: No\r\n\r\n",
		"TLS-Require\rd:\n no\r\n\r\n",	/* a bare CR is part of the name */
	};

	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		for (size_t step = 1; step <= 7; step++)
			CHECK(!scan(no[i], step));
}

/* A field longer than the scanner keeps is skipped, and the next one still counts. */
static void test_overlong_field_skipped(void)
{
	char text[2 * RELAY_HDR_FIELD_MAX + 64] = "X-Long: ";
	size_t n = strlen(text);

	memset(text + n, 'a', RELAY_HDR_FIELD_MAX + 10);
	strcpy(text + n + RELAY_HDR_FIELD_MAX + 10, "\r\nTLS-Required: No\r\n\r\n");
	CHECK(scan(text, 5));
}

/* "Require-TLS: yes" (a client asking for REQUIRETLS): found like TLS-Required, only in the
 * header section, only with the value yes. */
static bool scan_require(const char *text, size_t step)
{
	struct relay_hdr h;
	size_t len = strlen(text);

	relay_hdr_init(&h);
	for (size_t off = 0; off < len; off += step)
		relay_hdr_scan(&h, text + off, len - off < step ? len - off : step);
	relay_hdr_finish(&h);
	return h.require_tls;
}

static void test_require_tls(void)
{
	for (size_t step = 1; step <= 7; step++) {
		CHECK(scan_require("From: a@b.test\r\nRequire-TLS: yes\r\n\r\nbody\r\n", step));
		CHECK(scan_require("require-tls:\n\tYES\n\n", step));
		CHECK(!scan_require("From: a@b.test\r\n\r\nRequire-TLS: yes\r\n", step));
		CHECK(!scan_require("Require-TLS: no\r\n\r\n", step));
		CHECK(!scan_require("TLS-Required: No\r\n\r\n", step));
		CHECK(!scan("Require-TLS: yes\r\n\r\n", step));
	}
}

TEST_MAIN(test_field_found_in_any_chunking, test_field_does_not_count_elsewhere,
	  test_overlong_field_skipped, test_require_tls)
