/*
 * contacts_csv.h - Google's and Outlook's CSV exports of contacts, turned into vCard 4.0.
 *
 * The CSV is RFC 4180 (quoted fields may hold commas, quotes and line breaks; a UTF-8 BOM
 * is skipped). Columns are found by their header names, so either export (and the older
 * Google layout) works whatever the column order: Google's "First Name", "E-mail 1 - Value",
 * "Phone 1 - Value", "Organization Name"...; Outlook's "First Name", "E-mail Address",
 * "Mobile Phone", "Company"...
 */
#ifndef PW_CONTACTS_CSV_H
#define PW_CONTACTS_CSV_H

#include <stddef.h>

#include "vcard.h"

#define CSV_FILE_MAX	(64 * 1024 * 1024)
#define CSV_MAX_COLUMNS	512
#define CSV_FIELD_MAX	(64 * 1024)

/*
 * Turn a CSV export into cards (appended to out). Rows with nothing usable are skipped and
 * counted in *skipped. 0, or -1 with *err when the file is not a contacts CSV.
 */
int contacts_csv_to_vcards(const char *text, size_t len, struct vcard_list *out,
			   size_t *skipped, const char **err);

#endif
