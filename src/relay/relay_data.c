/*
 * relay_data.c - line ends, the end of the data and dot-stuffing; see relay_data.h.
 */
#include "relay_data.h"

#include <string.h>

#include <event2/buffer.h>

/*
 * The position of the first CR or LF in p[i..n), or n. memchr looks at many octets at a
 * time; the LF is only looked for before the CR, so the scan stays linear in the line.
 */
static size_t data_next_eol(const char *p, size_t i, size_t n)
{
	const char *cr, *lf;
	size_t end;

	if (i >= n)
		return n;
	cr = memchr(p + i, '\r', n - i);
	end = cr ? (size_t)(cr - p) : n;
	lf = memchr(p + i, '\n', end - i);
	return lf ? (size_t)(lf - p) : end;
}

enum data_split_rc data_split(const char *p, size_t n, size_t max, size_t *len,
			      size_t *consumed, enum data_eol *eol)
{
	size_t i;

	if (n > max + 2)
		n = max + 2;
	i = data_next_eol(p, 0, n);
	if (i > max) {
		*consumed = i;
		return DATA_SPLIT_LONG;
	}
	if (i == n)
		return DATA_SPLIT_MORE;
	*len = i;
	if (p[i] == '\n') {
		*eol = DATA_EOL_LF;
		*consumed = i + 1;
		return DATA_SPLIT_LINE;
	}
	if (i + 1 == n)
		return DATA_SPLIT_MORE;
	*eol = p[i + 1] == '\n' ? DATA_EOL_CRLF : DATA_EOL_CR;
	*consumed = i + (*eol == DATA_EOL_CRLF ? 2 : 1);
	return DATA_SPLIT_LINE;
}

void data_in_init(struct data_in *d)
{
	d->prev_crlf = true;
	d->bare = 0;
}

bool data_in_line(struct data_in *d, const char **line, size_t *len, enum data_eol eol)
{
	bool prev_crlf = d->prev_crlf;

	d->prev_crlf = eol == DATA_EOL_CRLF;
	if (eol != DATA_EOL_CRLF)
		d->bare++;
	/* A "." next to a bare line end is content: a CRLF-strict MTA in front of us saw no
	 * end there, so neither do we (it goes out as a stuffed "..", never as an end). */
	if (*len == 1 && (*line)[0] == '.' && prev_crlf && eol == DATA_EOL_CRLF)
		return true;
	if (*len > 0 && (*line)[0] == '.') {
		(*line)++;
		(*len)--;
	}
	return false;
}

void data_out_init(struct data_out *o)
{
	o->bol = true;
	o->cr = false;
}

/*
 * Runs without a line end or a leading dot go out in one piece; so does a CRLF inside the
 * chunk. Only bare line ends, a CR at the chunk's end and leading dots break the run.
 */
void data_out_stuff(struct data_out *o, struct evbuffer *out, const char *p, size_t n)
{
	size_t start = 0, i = 0;

	while (i < n) {
		char c = p[i];

		if (o->cr) {
			/* the CR that ended the previous chunk: CRLF or a bare CR, CRLF either way */
			o->cr = false;
			o->bol = true;
			evbuffer_add(out, "\r\n", 2);
			start = i;
			if (c == '\n') {
				start = ++i;
				continue;
			}
		}
		if (c == '.' && o->bol) {
			evbuffer_add(out, p + start, i - start);
			evbuffer_add(out, ".", 1);
			start = i++;
			o->bol = false;
		} else if (c == '\r' && i + 1 < n && p[i + 1] == '\n') {
			i += 2;
			o->bol = true;
		} else if (c == '\r' || c == '\n') {
			evbuffer_add(out, p + start, i - start);
			start = ++i;
			if (c == '\r') {
				o->cr = true;	/* decided by the next octet */
			} else {
				evbuffer_add(out, "\r\n", 2);
				o->bol = true;
			}
		} else {
			/* inside a line: nothing changes up to its end */
			o->bol = false;
			i = data_next_eol(p, i + 1, n);
		}
	}
	evbuffer_add(out, p + start, n - start);
}

void data_out_end(struct data_out *o, struct evbuffer *out)
{
	if (o->cr || !o->bol)
		evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, ".\r\n", 3);
	o->cr = false;
	o->bol = true;
}
