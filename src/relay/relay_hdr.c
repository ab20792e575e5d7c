/*
 * relay_hdr.c - the "TLS-Required: No" header scanner; see relay_hdr.h.
 *
 * Fields are unfolded as they arrive; the scan stops at the empty line that ends the header
 * section (or at the first line that is no header field), so a "TLS-Required: No" in the
 * body never lifts the guarantee.
 */
#include "relay_hdr.h"

#include <string.h>
#include <strings.h>

#include "strutil.h"

void relay_hdr_init(struct relay_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->line_start = true;
}

/* A complete (unfolded) header field: is it "TLS-Required: No"? */
static void relay_hdr_field(struct relay_hdr *h)
{
	char *colon, *name, *value;

	if (h->flen == 0)
		return;
	if (h->overflow) {
		h->flen = 0;
		h->overflow = false;
		return;
	}
	h->field[h->flen] = '\0';
	h->flen = 0;
	colon = strchr(h->field, ':');
	if (colon == NULL) {
		h->done = true;	/* not a header field: the header section is over */
		return;
	}
	*colon = '\0';
	name = str_trim(h->field);
	value = str_trim(colon + 1);
	if (strcasecmp(name, "TLS-Required") == 0 && strcasecmp(value, "No") == 0)
		h->tls_required_no = true;
	if (strcasecmp(name, "Require-TLS") == 0 && strcasecmp(value, "yes") == 0)
		h->require_tls = true;
}

/* One byte of a line: a new field starts, or the current one continues (unfolded). */
static void relay_hdr_byte(struct relay_hdr *h, char c)
{
	if (h->line_start) {
		h->line_start = false;
		if (c != ' ' && c != '\t')
			relay_hdr_field(h);
		else
			c = ' ';	/* unfold */
		if (h->done)
			return;
	}
	h->line_len++;
	if (h->flen + 1 < RELAY_HDR_FIELD_MAX)
		h->field[h->flen++] = c;
	else
		h->overflow = true;
}

void relay_hdr_scan(struct relay_hdr *h, const char *data, size_t len)
{
	for (size_t i = 0; i < len && !h->done; i++) {
		char c = data[i];

		/* CR counts only as part of CRLF; a bare CR is an ordinary byte of the field. */
		if (h->cr) {
			h->cr = false;
			if (c != '\n')
				relay_hdr_byte(h, '\r');
			if (h->done)
				break;
		}
		if (c == '\r') {
			h->cr = true;
			continue;
		}
		if (c == '\n') {
			if (h->line_len == 0) {
				relay_hdr_field(h);
				h->done = true;
			}
			h->line_len = 0;
			h->line_start = true;
			continue;
		}
		relay_hdr_byte(h, c);
	}
}

void relay_hdr_finish(struct relay_hdr *h)
{
	if (!h->done)
		relay_hdr_field(h);
}
