/*
 * fuzz_relay_data.c - libFuzzer target: message data in and out (relay_data.c).
 *
 * The input is what a client sends after DATA. It is read as relay_smtpd reads it (lines
 * ended by CRLF, bare LF or bare CR; end at CRLF "." CRLF), the stored data is then sent on
 * as relay_mta sends it, in chunks whose size the first byte chooses. Checked:
 *   - what is stored has CRLF line ends only;
 *   - what goes out holds no bare CR and no bare LF, and no "." line before the final one,
 *     so a receiver that splits lines at CR, at LF or at CRLF sees the same single end;
 *   - a CRLF-strict receiver that unstuffs gets back exactly what was stored.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "relay/relay_data.h"

#define LINE_MAX_FUZZ 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read data as smtpd does; the stored bytes (malloc'd) and their length. */
static char *read_in(const char *p, size_t n, size_t *slen)
{
	struct data_in d;
	char *stored = malloc(2 * n + 3);
	size_t off = 0;

	if (stored == NULL)
		abort();
	*slen = 0;
	data_in_init(&d);
	while (off < n) {
		size_t len = 0, used = 0;
		enum data_eol eol = DATA_EOL_CRLF;
		const char *line = p + off;
		enum data_split_rc rc = data_split(line, n - off, LINE_MAX_FUZZ, &len, &used, &eol);

		if (rc == DATA_SPLIT_MORE)
			break;
		if (used == 0)
			abort();	/* no progress */
		off += used;
		if (rc == DATA_SPLIT_LONG)
			continue;
		if (len > LINE_MAX_FUZZ)
			abort();
		if (data_in_line(&d, &line, &len, eol))
			break;
		memcpy(stored + *slen, line, len);
		memcpy(stored + *slen + len, "\r\n", 2);
		*slen += len + 2;
	}
	return stored;
}

/* The stored data must be CRLF-only. */
static void check_crlf_only(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			abort();
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			abort();
	}
}

/*
 * The wire form: CRLF only, the last line ".", no other "." line, and read back by a
 * CRLF-strict receiver (unstuffing) it equals the stored data.
 */
static void check_wire(const char *w, size_t wn, const char *stored, size_t slen)
{
	char *back = malloc(wn + 1);
	size_t blen = 0, start = 0;

	if (back == NULL)
		abort();
	check_crlf_only(w, wn);
	if (wn < 3 || memcmp(w + wn - 3, ".\r\n", 3) != 0)
		abort();
	for (size_t i = 0; i + 1 < wn; i++) {
		size_t len;

		if (w[i] != '\r')
			continue;
		len = i - start;
		if (len == 1 && w[start] == '.') {
			if (i + 2 != wn)
				abort();	/* an end before the end */
			break;
		}
		if (len > 0 && w[start] == '.') {
			if (len < 2 || w[start + 1] != '.')
				abort();	/* a leading dot not stuffed */
			memcpy(back + blen, w + start + 1, len - 1);
			blen += len - 1;
		} else {
			memcpy(back + blen, w + start, len);
			blen += len;
		}
		memcpy(back + blen, "\r\n", 2);
		blen += 2;
		start = i + 2;
	}
	if (blen != slen || memcmp(back, stored, slen) != 0)
		abort();
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *out;
	struct data_out o;
	char *stored, *wire, *raw_wire;
	size_t slen, wn, step;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 13 + 1;
	data++;
	size--;
	stored = read_in((const char *)data, size, &slen);
	check_crlf_only(stored, slen);

	out = evbuffer_new();
	data_out_init(&o);
	for (size_t off = 0; off < slen; off += step)
		data_out_stuff(&o, out, stored + off, slen - off < step ? slen - off : step);
	data_out_end(&o, out);
	wn = evbuffer_get_length(out);
	wire = (char *)evbuffer_pullup(out, -1);
	check_wire(wire, wn, stored, slen);
	evbuffer_free(out);

	/* Raw input straight to the output side (a spool file with bare line ends). */
	out = evbuffer_new();
	data_out_init(&o);
	for (size_t off = 0; off < size; off += step)
		data_out_stuff(&o, out, (const char *)data + off, size - off < step ? size - off : step);
	data_out_end(&o, out);
	wn = evbuffer_get_length(out);
	raw_wire = (char *)evbuffer_pullup(out, -1);
	check_crlf_only(raw_wire, wn);
	for (size_t i = 0; i + 4 < wn; i++)
		if (raw_wire[i] == '\n' && raw_wire[i + 1] == '.' && raw_wire[i + 2] == '\r')
			abort();	/* an early "." line */
	if (wn > 0 && raw_wire[0] == '.' && wn != 3)
		if (raw_wire[1] == '\r')
			abort();
	evbuffer_free(out);
	free(stored);
	return 0;
}
