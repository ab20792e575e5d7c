/*
 * relay_hdr.h - finds "TLS-Required: No" (RFC 8689) and postwarden's "Require-TLS: yes" (a
 * user's client asking for REQUIRETLS, docs/requiretls.md) in the header section of a message
 * as its data streams in, in chunks of any size, with a fixed amount of memory.
 */
#ifndef PW_RELAY_HDR_H
#define PW_RELAY_HDR_H

#include <stdbool.h>
#include <stddef.h>

#define RELAY_HDR_FIELD_MAX 256	/* longer fields cannot be "TLS-Required: No" and are skipped */

struct relay_hdr {
	bool done;		/* past the header section */
	bool line_start;
	bool cr;		/* a CR was seen: a line end if LF follows */
	size_t line_len;	/* bytes of the current physical line, CR excluded */
	char field[RELAY_HDR_FIELD_MAX];
	size_t flen;
	bool overflow;
	bool tls_required_no;	/* the result */
	bool require_tls;	/* "Require-TLS: yes": the client asks for REQUIRETLS */
};

void relay_hdr_init(struct relay_hdr *h);
/* Feed the next chunk of message data (CRLF or LF line ends). */
void relay_hdr_scan(struct relay_hdr *h, const char *data, size_t len);
/* The data ended: judge a last field that had no line end. */
void relay_hdr_finish(struct relay_hdr *h);

#endif
