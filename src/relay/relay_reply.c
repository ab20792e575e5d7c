/*
 * relay_reply.c - parser for SMTP replies from remote servers; see relay_reply.h.
 *
 * The parser is stateless: it is handed everything buffered so far and either finds a
 * complete reply at the start or says it needs more. A line longer than REPLY_MAX_LINE
 * without a line end is an error at once, so a server cannot make us buffer without limit.
 */
#include "relay_reply.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "xmalloc.h"

/* Find the end of the line starting at p; returns its length without the line end, -1 if none. */
static long reply_line_len(const char *p, size_t avail, size_t *eol_len)
{
	const char *nl = memchr(p, '\n', avail);
	size_t n;

	if (nl == NULL)
		return -1;
	n = (size_t)(nl - p);
	*eol_len = 1;
	if (n > 0 && p[n - 1] == '\r') {
		n--;
		*eol_len = 2;
	}
	return (long)n;
}

/* "DDD" with a first digit 2..5 (1xx is not used by SMTP). */
static int reply_code(const char *p, size_t n)
{
	if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]))
		return -1;
	if (p[0] < '2' || p[0] > '5')
		return -1;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

/* RFC 3463 "class.subject.detail" at the start of text whose class matches the code. */
static void reply_enhanced(struct reply *r)
{
	const char *t = r->lines[0];
	size_t i = 0, parts = 0, digits = 0;

	if (t[0] - '0' != r->code / 100 || t[1] != '.')
		return;
	for (i = 0; t[i] != '\0' && i < sizeof(r->enhanced) - 1; i++) {
		if (isdigit((unsigned char)t[i])) {
			if (++digits > 3)
				return;
		} else if (t[i] == '.') {
			if (digits == 0 || ++parts > 2)
				return;
			digits = 0;
		} else {
			break;
		}
	}
	if (parts != 2 || digits == 0 || (t[i] != '\0' && t[i] != ' '))
		return;
	memcpy(r->enhanced, t, i);
	r->enhanced[i] = '\0';
}

enum reply_result reply_parse(const char *data, size_t len, struct reply *r, size_t *used)
{
	size_t off = 0, eol = 0;
	struct reply tmp = { 0 };

	memset(r, 0, sizeof(*r));
	*used = 0;
	for (;;) {
		long n = reply_line_len(data + off, len - off, &eol);
		int code;
		char sep;

		if (n < 0) {
			reply_free(&tmp);
			return len - off >= REPLY_MAX_LINE ? REPLY_BAD : REPLY_NEED_MORE;
		}
		if ((size_t)n + eol > REPLY_MAX_LINE || tmp.nlines >= REPLY_MAX_LINES)
			goto bad;
		code = reply_code(data + off, (size_t)n);
		if (code < 0 || (tmp.nlines > 0 && code != tmp.code))
			goto bad;
		sep = n > 3 ? data[off + 3] : ' ';
		if (sep != ' ' && sep != '-')
			goto bad;
		if (memchr(data + off, '\0', (size_t)n) != NULL)
			goto bad;
		tmp.code = code;
		tmp.lines = xreallocarray(tmp.lines, tmp.nlines + 1, sizeof(*tmp.lines));
		tmp.lines[tmp.nlines++] = n > 4 ? xstrndup(data + off + 4, (size_t)n - 4) : xstrdup("");
		off += (size_t)n + eol;
		if (sep == ' ')
			break;
	}
	reply_enhanced(&tmp);
	*r = tmp;
	*used = off;
	return REPLY_DONE;
bad:
	reply_free(&tmp);
	return REPLY_BAD;
}

void reply_free(struct reply *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	memset(r, 0, sizeof(*r));
}

bool reply_has_keyword(const struct reply *r, const char *keyword)
{
	size_t klen = strlen(keyword);

	for (size_t i = 1; i < r->nlines; i++) {
		const char *l = r->lines[i];

		if (strncasecmp(l, keyword, klen) == 0 && (l[klen] == '\0' || l[klen] == ' '))
			return true;
	}
	return false;
}

char *reply_text(const struct reply *r)
{
	struct buf b;

	buf_init(&b, 0);
	buf_addf(&b, "%d", r->code);
	for (size_t i = 0; i < r->nlines && b.len < 400; i++) {
		buf_adds(&b, " ");
		for (const char *p = r->lines[i]; *p != '\0' && b.len < 400; p++) {
			unsigned char c = (unsigned char)*p;

			buf_add(&b, c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? "?" : p, 1);
		}
	}
	return buf_release(&b, NULL);
}
