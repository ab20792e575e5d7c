/*
 * fuzz_keys_upload.c - libFuzzer target: arbitrary bytes uploaded as a public key or
 * certificate, checked against a fixed list of allowed addresses. Also feeds the bytes to
 * the armor and owner-name helpers. Seeds: small real keys and certificates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "keys/keys.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *const fuzz_allowed[] = {
	"alice@example.org", "carol@example.org", "dave@example.org", "erin@example.org",
	"rosa@example.org", "sue@example.org",
};
#define FUZZ_NALLOWED (sizeof(fuzz_allowed) / sizeof(fuzz_allowed[0]))

/* Whether addr is one of the allowed addresses. */
static int fuzz_is_allowed(const char *addr)
{
	for (size_t i = 0; i < FUZZ_NALLOWED; i++)
		if (strcasecmp(addr, fuzz_allowed[i]) == 0)
			return 1;
	return 0;
}

static void fuzz_names(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size < 128 ? size : 128);

	free(keys_dane_name(s, "_openpgpkey"));
	free(keys_wkd_hash(s));
	free(keys_zbase32(data, size < 64 ? size : 64));
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keys_policy policy = {
		.now = (int64_t)time(NULL),
		.expiry_margin = 7 * 86400,
		.max_record_size = 8192,
	};
	struct keys_info info;
	char *msg = NULL;
	enum keys_error e;

	e = keys_accept(data, size, fuzz_allowed, FUZZ_NALLOWED, &policy, &info, &msg);
	if (e == KEYS_OK) {
		if (msg != NULL || info.ncopies == 0 || info.ncopies > FUZZ_NALLOWED)
			abort();
		for (size_t i = 0; i < info.ncopies; i++) {
			if (!fuzz_is_allowed(info.copies[i].address) || info.copies[i].len == 0 ||
			    info.copies[i].len > policy.max_record_size)
				abort();
		}
		if (info.kind == KEYS_OPENPGP)
			free(keys_armor(info.copies[0].data, info.copies[0].len));
	} else if (msg == NULL || *msg == '\0' || info.ncopies != 0 || info.copies != NULL ||
		   strcmp(keys_error_name(e), "unknown") == 0) {
		abort();	/* every refusal says why, and publishes nothing */
	}
	free(msg);
	keys_info_free(&info);
	fuzz_names(data, size);
	return 0;
}
