/*
 * contacts_csv.c - CSV contact exports to vCard 4.0; see contacts_csv.h.
 *
 * The header row names the columns; a table maps the names both exports use to vCard
 * properties. Columns that repeat with a number ("E-mail 2 - Value", "E-mail 3 Address")
 * are matched by pattern, so every address and phone number is kept, not only the first.
 */
#include "contacts_csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "strutil.h"
#include "xmalloc.h"

struct csv_row {
	char **f;
	size_t n;
};

struct csv_reader {
	const char *p, *end;
	const char *err;
};

static void csv_row_free(struct csv_row *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->f[i]);
	free(r->f);
	memset(r, 0, sizeof(*r));
}

/* Read one field; *last says whether the row ended after it. */
static char *csv_field(struct csv_reader *cr, bool *last)
{
	struct buf b;

	buf_init(&b, CSV_FIELD_MAX);
	*last = false;
	if (cr->p < cr->end && *cr->p == '"') {
		cr->p++;
		for (;;) {
			if (cr->p >= cr->end) {
				cr->err = "a quoted CSV field does not end";
				goto fail;
			}
			if (*cr->p == '"') {
				if (cr->p + 1 < cr->end && cr->p[1] == '"') {
					if (buf_add(&b, "\"", 1) < 0)
						goto toolong;
					cr->p += 2;
					continue;
				}
				cr->p++;
				break;
			}
			if (buf_add(&b, cr->p, 1) < 0)
				goto toolong;
			cr->p++;
		}
	} else {
		const char *s = cr->p;

		while (cr->p < cr->end && *cr->p != ',' && *cr->p != '\n' && *cr->p != '\r')
			cr->p++;
		if (buf_add(&b, s, (size_t)(cr->p - s)) < 0)
			goto toolong;
	}
	if (cr->p >= cr->end) {
		*last = true;
	} else if (*cr->p == ',') {
		cr->p++;
	} else if (*cr->p == '\r' || *cr->p == '\n') {
		if (*cr->p == '\r')
			cr->p++;
		if (cr->p < cr->end && *cr->p == '\n')
			cr->p++;
		*last = true;
	} else {
		cr->err = "text after a quoted CSV field";
		goto fail;
	}
	return buf_release(&b, NULL);
toolong:
	cr->err = "a CSV field is too long";
fail:
	buf_free(&b);
	return NULL;
}

/* One row; 0 at its end, 1 at the end of input (row empty), -1 on error. */
static int csv_read_row(struct csv_reader *cr, struct csv_row *row)
{
	bool last = false;

	memset(row, 0, sizeof(*row));
	if (cr->p >= cr->end)
		return 1;
	while (!last) {
		char *f = csv_field(cr, &last);

		if (f == NULL) {
			csv_row_free(row);
			return -1;
		}
		if (row->n >= CSV_MAX_COLUMNS) {
			free(f);
			csv_row_free(row);
			cr->err = "too many CSV columns";
			return -1;
		}
		row->f = xrealloc(row->f, (row->n + 1) * sizeof(*row->f));
		row->f[row->n++] = f;
	}
	return 0;
}

/* What a column becomes. */
enum csv_kind {
	CSV_NONE, CSV_NAME, CSV_GIVEN, CSV_MIDDLE, CSV_FAMILY, CSV_PREFIX, CSV_SUFFIX,
	CSV_NICK, CSV_EMAIL, CSV_PHONE, CSV_ORG, CSV_TITLE, CSV_BDAY, CSV_NOTE, CSV_URL,
	CSV_PHONE_CELL, CSV_PHONE_HOME, CSV_PHONE_WORK, CSV_CATEGORIES,
};

static const struct {
	const char *name;
	enum csv_kind kind;
} csv_exact[] = {
	{ "Name", CSV_NAME },
	{ "Display Name", CSV_NAME },
	{ "First Name", CSV_GIVEN }, { "Given Name", CSV_GIVEN },
	{ "Middle Name", CSV_MIDDLE }, { "Additional Name", CSV_MIDDLE },
	{ "Last Name", CSV_FAMILY }, { "Family Name", CSV_FAMILY },
	{ "Name Prefix", CSV_PREFIX }, { "Title", CSV_PREFIX },
	{ "Name Suffix", CSV_SUFFIX }, { "Suffix", CSV_SUFFIX },
	{ "Nickname", CSV_NICK },
	{ "Organization Name", CSV_ORG }, { "Organization 1 - Name", CSV_ORG },
	{ "Company", CSV_ORG },
	{ "Organization Title", CSV_TITLE }, { "Organization 1 - Title", CSV_TITLE },
	{ "Job Title", CSV_TITLE },
	{ "Birthday", CSV_BDAY },
	{ "Notes", CSV_NOTE },
	{ "Web Page", CSV_URL }, { "Website 1 - Value", CSV_URL },
	{ "Mobile Phone", CSV_PHONE_CELL },
	{ "Home Phone", CSV_PHONE_HOME }, { "Home Phone 2", CSV_PHONE_HOME },
	{ "Business Phone", CSV_PHONE_WORK }, { "Business Phone 2", CSV_PHONE_WORK },
	{ "Other Phone", CSV_PHONE },
	{ "Categories", CSV_CATEGORIES },
};

/* Numbered columns: "E-mail 2 - Value" (Google), "E-mail 2 Address" (Outlook). */
static enum csv_kind csv_pattern(const char *h)
{
	size_t n = strlen(h);

	if (strncasecmp(h, "E-mail ", 7) == 0 &&
	    ((n > 8 && strcasecmp(h + n - 8, " - Value") == 0) ||
	     (n > 8 && strcasecmp(h + n - 8, " Address") == 0)))
		return CSV_EMAIL;
	if (strncasecmp(h, "Phone ", 6) == 0 && n > 8 && strcasecmp(h + n - 8, " - Value") == 0)
		return CSV_PHONE;
	return CSV_NONE;
}

static enum csv_kind csv_column_kind(const char *header)
{
	for (size_t i = 0; i < sizeof(csv_exact) / sizeof(csv_exact[0]); i++)
		if (strcasecmp(header, csv_exact[i].name) == 0)
			return csv_exact[i].kind;
	return csv_pattern(header);
}

/* Google puts several values into one cell, separated by " ::: ". */
static void csv_multi(struct vcard_out *v, const char *prop, const char *cell)
{
	char *copy = xstrdup(cell), *p = copy;

	for (;;) {
		char *sep = strstr(p, " ::: ");

		if (sep)
			*sep = '\0';
		vcard_out_text(v, prop, str_trim(p));
		if (!sep)
			break;
		p = sep + 5;
	}
	free(copy);
}

static const char *csv_prop(enum csv_kind k)
{
	switch (k) {
	case CSV_NICK: return "NICKNAME";
	case CSV_EMAIL: return "EMAIL";
	case CSV_PHONE: return "TEL";
	case CSV_PHONE_CELL: return "TEL;TYPE=cell";
	case CSV_PHONE_HOME: return "TEL;TYPE=home";
	case CSV_PHONE_WORK: return "TEL;TYPE=work";
	case CSV_ORG: return "ORG";
	case CSV_TITLE: return "TITLE";
	case CSV_BDAY: return "BDAY";
	case CSV_NOTE: return "NOTE";
	case CSV_URL: return "URL";
	case CSV_CATEGORIES: return "CATEGORIES";
	default: return NULL;
	}
}

/* One data row to a card; NULL when it holds nothing usable. */
static char *csv_row_card(const enum csv_kind *kinds, const struct csv_row *row, size_t *len)
{
	struct vcard_out *v = vcard_out_new();
	const char *n[5] = { "", "", "", "", "" };	/* family;given;middle;prefix;suffix */
	const char *fn = NULL, *fallback = NULL;
	char *fnbuf = NULL, *card;

	for (size_t i = 0; i < row->n; i++) {
		const char *cell = row->f[i];

		if (*cell == '\0')
			continue;
		switch (kinds[i]) {
		case CSV_NAME: fn = cell; break;
		case CSV_FAMILY: n[0] = cell; break;
		case CSV_GIVEN: n[1] = cell; break;
		case CSV_MIDDLE: n[2] = cell; break;
		case CSV_PREFIX: n[3] = cell; break;
		case CSV_SUFFIX: n[4] = cell; break;
		case CSV_NONE: break;
		default:
			if (kinds[i] == CSV_EMAIL && fallback == NULL)
				fallback = cell;
			csv_multi(v, csv_prop(kinds[i]), cell);
			break;
		}
	}
	vcard_out_struct(v, "N", n, 5);
	if (vcard_out_empty(v) && fn == NULL) {
		vcard_out_free(v);
		return NULL;
	}
	if (fn == NULL && (*n[1] || *n[0])) {
		fnbuf = xasprintf("%s%s%s", n[1], *n[1] && *n[0] ? " " : "", n[0]);
		fn = fnbuf;
	}
	vcard_out_text(v, "FN", fn ? fn : fallback);
	card = vcard_out_finish(v, NULL, fallback, len);
	free(fnbuf);
	return card;
}

/* The row with only the cells that have a column in the header. */
static char *csv_card_of(const enum csv_kind *kinds, size_t ncols, struct csv_row *row,
			 size_t *len)
{
	size_t n = row->n;
	char *card;

	if (row->n > ncols)
		row->n = ncols;	/* cells past the header have no name: ignored */
	card = csv_row_card(kinds, row, len);
	row->n = n;
	return card;
}

int contacts_csv_to_vcards(const char *text, size_t len, struct vcard_list *out,
			   size_t *skipped, const char **err)
{
	struct csv_reader cr = { text, text + len, NULL };
	struct csv_row head, row;
	enum csv_kind *kinds;
	size_t known = 0, ncols;
	int rc;

	*skipped = 0;
	if (len > CSV_FILE_MAX) {
		*err = "CSV file too large";
		return -1;
	}
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		cr.p += 3;
	if (csv_read_row(&cr, &head) != 0) {
		*err = cr.err ? cr.err : "empty CSV file";
		return -1;
	}
	ncols = head.n;
	kinds = xcalloc(ncols, sizeof(*kinds));
	for (size_t i = 0; i < ncols; i++)
		if ((kinds[i] = csv_column_kind(str_trim(head.f[i]))) != CSV_NONE)
			known++;
	csv_row_free(&head);
	if (known == 0) {
		free(kinds);
		*err = "no known contact columns in the CSV header (Google or Outlook export)";
		return -1;
	}
	while ((rc = csv_read_row(&cr, &row)) == 0) {
		size_t clen = 0;
		char *card = csv_card_of(kinds, ncols, &row, &clen);
		bool blank = true;

		for (size_t i = 0; i < row.n; i++)
			blank &= row.f[i][0] == '\0';
		csv_row_free(&row);
		if (card == NULL) {
			*skipped += blank ? 0 : 1;
			continue;
		}
		if (out->n >= VCARD_MAX_CARDS) {
			free(card);
			free(kinds);
			*err = "too many contacts";
			return -1;
		}
		out->card = xrealloc(out->card, (out->n + 1) * sizeof(*out->card));
		out->len = xrealloc(out->len, (out->n + 1) * sizeof(*out->len));
		out->card[out->n] = card;
		out->len[out->n++] = clen;
	}
	free(kinds);
	if (rc < 0) {
		*err = cr.err;
		return -1;
	}
	return 0;
}
