/*
 * contacts_graph.h - Microsoft Graph contacts (GET /me/contacts, Outlook.com, Hotmail and
 * Office 365) turned into vCard 4.0 cards.
 *
 * One page of the JSON answer at a time: its "value" array of contacts and its
 * "@odata.nextLink" for the next page.
 */
#ifndef PW_CONTACTS_GRAPH_H
#define PW_CONTACTS_GRAPH_H

#include <stddef.h>

#include "vcard.h"

#define GRAPH_PAGE_MAX	(16 * 1024 * 1024)	/* one page of contacts */

/*
 * Parse one page: its contacts appended to out as vCard 4.0 (UID from the contact's id, so a
 * second run names them the same), *next set to a new copy of @odata.nextLink or NULL.
 * Contacts with no name, address or number are counted in *skipped. 0, or -1 with *err.
 */
int contacts_graph_page(const char *json, size_t len, struct vcard_list *out, char **next,
			size_t *skipped, const char **err);

#endif
