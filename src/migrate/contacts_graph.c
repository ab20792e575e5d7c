/*
 * contacts_graph.c - Microsoft Graph contact JSON to vCard 4.0; see contacts_graph.h.
 *
 * The fields mapped are those of Graph's contact resource: displayName, givenName,
 * middleName, surname, title, generation, nickName, emailAddresses[].address,
 * businessPhones[], homePhones[], mobilePhone, companyName, department, jobTitle,
 * birthday, homeAddress, businessAddress, otherAddress, personalNotes, businessHomePage,
 * categories and id. Anything else of a contact is not carried over.
 */
#include "contacts_graph.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "xmalloc.h"

#define GRAPH_MAX_CONTACTS_PAGE	10000

static const char *graph_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void graph_text(struct vcard_out *v, const char *prop, json_t *o, const char *key)
{
	vcard_out_text(v, prop, graph_str(o, key));
}

/* Every string of an array property. */
static void graph_list(struct vcard_out *v, const char *prop, json_t *o, const char *key)
{
	json_t *a = json_object_get(o, key), *e;
	size_t i;

	if (!json_is_array(a))
		return;
	json_array_foreach(a, i, e)
		if (json_is_string(e))
			vcard_out_text(v, prop, json_string_value(e));
}

static void graph_adr(struct vcard_out *v, const char *prop, json_t *o, const char *key)
{
	json_t *a = json_object_get(o, key);
	const char *parts[7];

	if (!json_is_object(a))
		return;
	/* ADR: post office box; extended; street; locality; region; postal code; country */
	parts[0] = "";
	parts[1] = "";
	parts[2] = graph_str(a, "street");
	parts[3] = graph_str(a, "city");
	parts[4] = graph_str(a, "state");
	parts[5] = graph_str(a, "postalCode");
	parts[6] = graph_str(a, "countryOrRegion");
	vcard_out_struct(v, prop, parts, 7);
}

/* "1990-05-17T11:59:59Z" -> "19900517": vCard 4.0's date. */
static void graph_bday(struct vcard_out *v, json_t *o)
{
	const char *b = graph_str(o, "birthday");
	char d[9];

	if (b == NULL || strlen(b) < 10 || b[4] != '-' || b[7] != '-')
		return;
	memcpy(d, b, 4);
	memcpy(d + 4, b + 5, 2);
	memcpy(d + 6, b + 8, 2);
	d[8] = '\0';
	for (int i = 0; i < 8; i++)
		if (d[i] < '0' || d[i] > '9')
			return;
	vcard_out_text(v, "BDAY", d);
}

static void graph_emails(struct vcard_out *v, json_t *c, const char **first)
{
	json_t *a = json_object_get(c, "emailAddresses"), *e;
	size_t i;

	if (!json_is_array(a))
		return;
	json_array_foreach(a, i, e) {
		const char *addr = json_is_object(e) ? graph_str(e, "address") : NULL;

		if (addr && *addr) {
			if (*first == NULL)
				*first = addr;
			vcard_out_text(v, "EMAIL", addr);
		}
	}
}

/* One contact to a card; NULL when it holds nothing to keep. */
static char *graph_contact(json_t *c, size_t *len)
{
	struct vcard_out *v = vcard_out_new();
	const char *n[5], *email = NULL, *company, *dept, *fn;

	n[0] = graph_str(c, "surname");
	n[1] = graph_str(c, "givenName");
	n[2] = graph_str(c, "middleName");
	n[3] = graph_str(c, "title");
	n[4] = graph_str(c, "generation");
	vcard_out_struct(v, "N", n, 5);
	graph_text(v, "NICKNAME", c, "nickName");
	graph_emails(v, c, &email);
	graph_list(v, "TEL;TYPE=work", c, "businessPhones");
	graph_list(v, "TEL;TYPE=home", c, "homePhones");
	graph_text(v, "TEL;TYPE=cell", c, "mobilePhone");
	company = graph_str(c, "companyName");
	dept = graph_str(c, "department");
	if (company && *company) {
		const char *org[2] = { company, dept ? dept : "" };

		vcard_out_struct(v, "ORG", org, dept && *dept ? 2 : 1);
	}
	graph_text(v, "TITLE", c, "jobTitle");
	graph_bday(v, c);
	graph_adr(v, "ADR;TYPE=home", c, "homeAddress");
	graph_adr(v, "ADR;TYPE=work", c, "businessAddress");
	graph_adr(v, "ADR", c, "otherAddress");
	graph_text(v, "NOTE", c, "personalNotes");
	graph_text(v, "URL", c, "businessHomePage");
	graph_list(v, "CATEGORIES", c, "categories");
	fn = graph_str(c, "displayName");
	if (vcard_out_empty(v) && (fn == NULL || *fn == '\0')) {
		vcard_out_free(v);
		return NULL;
	}
	vcard_out_text(v, "FN", fn && *fn ? fn : (company && *company ? company : email));
	return vcard_out_finish(v, graph_str(c, "id"), email, len);
}

int contacts_graph_page(const char *json, size_t len, struct vcard_list *out, char **next,
			size_t *skipped, const char **err)
{
	json_t *root, *value, *c;
	json_error_t jerr;
	size_t i;
	const char *link;

	*next = NULL;
	if (len > GRAPH_PAGE_MAX) {
		*err = "Graph answer too large";
		return -1;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		*err = "Graph answer is not a JSON object";
		return -1;
	}
	value = json_object_get(root, "value");
	if (!json_is_array(value) || json_array_size(value) > GRAPH_MAX_CONTACTS_PAGE) {
		json_decref(root);
		*err = "Graph answer has no usable \"value\" list";
		return -1;
	}
	json_array_foreach(value, i, c) {
		size_t clen = 0;
		char *card = json_is_object(c) ? graph_contact(c, &clen) : NULL;

		if (card == NULL || out->n >= VCARD_MAX_CARDS) {
			free(card);
			(*skipped)++;
			continue;
		}
		out->card = xrealloc(out->card, (out->n + 1) * sizeof(*out->card));
		out->len = xrealloc(out->len, (out->n + 1) * sizeof(*out->len));
		out->card[out->n] = card;
		out->len[out->n++] = clen;
	}
	link = graph_str(root, "@odata.nextLink");
	if (link && *link)
		*next = xstrdup(link);
	json_decref(root);
	return 0;
}
