/*
 * fuzz_vcard.c - libFuzzer target for splitting a vCard file and reading its cards
 * (UID, KIND, the resource name made from them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/vcard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcard_list l;
	const char *err = NULL;

	if (vcard_split((const char *)data, size, &l, &err) < 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		char *name = vcard_resource_name(l.card[i], l.len[i]);

		if (strchr(name, '/') != NULL)
			abort();	/* a resource name never leaves its collection */
		free(name);
		(void)vcard_is_group(l.card[i], l.len[i]);
		free(vcard_get(l.card[i], l.len[i], "FN"));
	}
	vcard_list_free(&l);
	return 0;
}
