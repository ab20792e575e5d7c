/*
 * relay_data.h - message data on the wire, both ways: splitting what a client sends after
 * DATA into lines, deciding where the data ends, and dot-stuffing on the way out.
 *
 * SMTP smuggling lives in the gap between two MTAs' ideas of a line end: one that ends lines
 * at a bare CR or a bare LF sees "." lines (and so message ends) where a CRLF-strict one sees
 * content. So both directions here follow one rule: a line ends at CRLF, at a bare LF or at
 * a bare CR; only CRLF "." CRLF ends the data; and what goes out has CRLF line ends only,
 * with every line that begins with "." stuffed. Whatever a client sends, the next hop then
 * reads exactly the one message we read, however it splits lines.
 *
 * Pure functions over byte buffers (the output side appends to an evbuffer), so the rules
 * are unit-tested and fuzzed without sockets.
 */
#ifndef PW_RELAY_DATA_H
#define PW_RELAY_DATA_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

enum data_eol {
	DATA_EOL_CRLF,
	DATA_EOL_LF,		/* a bare LF */
	DATA_EOL_CR,		/* a bare CR */
};

enum data_split_rc {
	DATA_SPLIT_MORE,	/* no complete line yet: wait for more input */
	DATA_SPLIT_LINE,	/* a line of *len octets ended by *eol */
	DATA_SPLIT_LONG,	/* more than max octets without a line end: drop *consumed octets */
};

/*
 * Find the first line in p[0..n); give at most max + 2 octets (more are never looked at).
 * LINE: *len octets of content, then the line end; *consumed = *len + its length.
 * LONG: the first *consumed octets belong to an overlong line and hold no line end.
 * MORE: no line end yet, or a CR is the last octet (a CRLF may be arriving).
 */
enum data_split_rc data_split(const char *p, size_t n, size_t max, size_t *len,
			      size_t *consumed, enum data_eol *eol);

/* Reading DATA: what the previous line ends said. */
struct data_in {
	bool prev_crlf;		/* the previous line ended with CRLF (true at the start) */
	unsigned bare;		/* lines that ended with a bare CR or bare LF */
};

void data_in_init(struct data_in *d);
/*
 * One line of message data. True when it is the end of the data (a "." line between two
 * CRLFs); else the line is content and *line, *len are moved past a stuffed leading dot.
 */
bool data_in_line(struct data_in *d, const char **line, size_t *len, enum data_eol eol);

/* Writing DATA: where the previous chunk stopped. */
struct data_out {
	bool bol;		/* at the beginning of a line */
	bool cr;		/* the last octet was a CR whose line end is not written yet */
};

void data_out_init(struct data_out *o);
/* Append p[0..n) to out with every line end as CRLF and every leading dot doubled. */
void data_out_stuff(struct data_out *o, struct evbuffer *out, const char *p, size_t n);
/* The data is over: end an unfinished line, then the final ".\r\n". */
void data_out_end(struct data_out *o, struct evbuffer *out);

#endif
