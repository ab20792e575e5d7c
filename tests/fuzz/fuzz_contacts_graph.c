/*
 * fuzz_contacts_graph.c - libFuzzer target for a page of Microsoft Graph contacts (JSON);
 * every card made must split back into exactly one card.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/contacts_graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vcard_list l = { 0 }, back;
	size_t skipped = 0;
	const char *err = NULL;
	char *next = NULL;

	if (contacts_graph_page((const char *)data, size, &l, &next, &skipped, &err) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			if (vcard_split(l.card[i], l.len[i], &back, &err) < 0 || back.n != 1)
				abort();
			vcard_list_free(&back);
		}
	}
	free(next);
	vcard_list_free(&l);
	return 0;
}
