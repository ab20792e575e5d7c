/*
 * fuzz_carddav_xml.c - libFuzzer target for the DAV multistatus reader (what a CardDAV
 * server answers to PROPFIND and REPORT).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/carddav_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dav_ms ms;
	const char *err = NULL;

	if (dav_ms_parse((const char *)data, size, &ms, &err) == 0) {
		for (size_t i = 0; i < ms.n; i++)
			if (ms.resp[i].href == NULL)
				abort();	/* a kept response always has its href */
		dav_ms_free(&ms);
	} else if (err == NULL) {
		abort();
	}
	return 0;
}
