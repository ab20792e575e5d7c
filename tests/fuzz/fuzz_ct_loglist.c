/*
 * fuzz_ct_loglist.c - libFuzzer target: arbitrary bytes read as a v3 CT log list. The
 * first byte says whether http:// URLs are allowed; the rest is the list. Every kept log
 * must have a loaded key of an accepted type that hashes to its log_id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "ctmon/ct_loglist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A kept log must be what the reader promises. */
static void fuzz_check_log(const struct ct_log *log)
{
	unsigned char *der = NULL, id[SHA256_DIGEST_LENGTH];
	int n;

	if (log->key == NULL || log->description == NULL ||
	    log->state == CT_STATE_RETIRED || log->state == CT_STATE_REJECTED)
		abort();
	if ((log->api == CT_API_RFC6962) != (log->url != NULL) ||
	    (log->api == CT_API_STATIC) != (log->submission_url && log->monitoring_url))
		abort();
	n = i2d_PUBKEY(log->key, &der);
	if (n <= 0)
		abort();
	SHA256(der, (size_t)n, id);
	OPENSSL_free(der);
	if (memcmp(id, log->log_id, sizeof(id)) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ct_loglist_opts opts;
	struct ct_loglist *list = NULL;
	char *err = NULL;

	if (size == 0)
		return 0;
	opts.allow_http = data[0] & 1;
	if (ct_loglist_parse((const char *)data + 1, size - 1, &opts, &list, &err) == 0) {
		if (list == NULL || err != NULL || list->nlogs + list->nskipped > CT_LOGLIST_MAX_LOGS)
			abort();
		for (size_t i = 0; i < list->nlogs; i++)
			fuzz_check_log(&list->logs[i]);
		for (size_t i = 0; i < list->nskipped; i++)
			if (list->skipped[i].what == NULL || list->skipped[i].reason == NULL)
				abort();
		ct_loglist_free(list);
	} else if (list != NULL || err == NULL) {
		abort();
	}
	free(err);
	return 0;
}
