/*
 * vcard.c - splitting, reading and writing vCards; see vcard.h.
 *
 * Splitting works on lines, accepting CRLF or LF: a card starts at a BEGIN:VCARD line and
 * ends at the matching END:VCARD line, and its bytes are handed on untouched. Reading a
 * property unfolds continuation lines (a line that starts with a space or tab) first.
 */
#include "vcard.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "buf.h"
#include "strutil.h"
#include "xmalloc.h"

#define VCARD_LINE_FOLD 75

void vcard_list_free(struct vcard_list *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->card[i]);
	free(l->card);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

/* Does the line [p, p+n) (without its end) say "KEY:VCARD", case-insensitive? */
static bool vcard_line_is(const char *p, size_t n, const char *key)
{
	size_t k = strlen(key);

	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n == k + 6 && strncasecmp(p, key, k) == 0 && strncasecmp(p + k, ":VCARD", 6) == 0;
}

static void vcard_list_add(struct vcard_list *l, const char *p, size_t n)
{
	l->card = xrealloc(l->card, (l->n + 1) * sizeof(*l->card));
	l->len = xrealloc(l->len, (l->n + 1) * sizeof(*l->len));
	l->card[l->n] = xmalloc(n + 1);
	memcpy(l->card[l->n], p, n);
	l->card[l->n][n] = '\0';
	l->len[l->n++] = n;
}

int vcard_split(const char *text, size_t len, struct vcard_list *out, const char **err)
{
	const char *p = text, *end = text + len, *start = NULL;
	int depth = 0;

	memset(out, 0, sizeof(*out));
	if (len > VCARD_FILE_MAX) {
		*err = "vCard file too large";
		return -1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)((nl ? nl : end) - p);

		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (vcard_line_is(p, n, "BEGIN")) {
			/* vCard 2.1 allowed nested cards (AGENT); one level deeper is kept inside */
			if (depth == 0)
				start = p;
			if (++depth > 2) {
				*err = "vCards nested too deeply";
				goto fail;
			}
		} else if (vcard_line_is(p, n, "END")) {
			if (depth == 0) {
				*err = "END:VCARD without BEGIN:VCARD";
				goto fail;
			}
			if (--depth == 0) {
				if (out->n >= VCARD_MAX_CARDS) {
					*err = "too many cards";
					goto fail;
				}
				vcard_list_add(out, start, (size_t)(next - start));
			}
		}
		if (depth > 0 && (size_t)(next - start) > VCARD_MAX) {
			*err = "a card is too large";
			goto fail;
		}
		p = next;
	}
	if (depth != 0) {
		*err = "a card has no END:VCARD";
		goto fail;
	}
	return 0;
fail:
	vcard_list_free(out);
	return -1;
}

/* The unfolded text of the card: continuation lines joined, line ends as "\n". */
static char *vcard_unfold(const char *card, size_t len)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (card[i] == '\r')
			continue;
		if (card[i] == '\n' && i + 1 < len && (card[i + 1] == ' ' || card[i + 1] == '\t')) {
			i++;	/* the fold and its one whitespace go */
			continue;
		}
		out[o++] = card[i];
	}
	out[o] = '\0';
	return out;
}

/* Does the line's property name (before ';' or ':', after any "group.") equal name? */
static const char *vcard_match(const char *line, const char *name)
{
	const char *colon = NULL, *q = line;
	size_t k = strlen(name);

	/* the name ends at the first ';' or ':' (parameters may contain ':' when quoted) */
	while (*q && *q != ';' && *q != ':' && *q != '\n')
		q++;
	if (*q != ';' && *q != ':')
		return NULL;
	{
		const char *dot = memchr(line, '.', (size_t)(q - line));
		const char *nm = dot ? dot + 1 : line;

		if ((size_t)(q - nm) != k || strncasecmp(nm, name, k) != 0)
			return NULL;
	}
	/* the value starts after the first ':' outside double quotes */
	for (bool quoted = false; *q && *q != '\n'; q++) {
		if (*q == '"')
			quoted = !quoted;
		else if (*q == ':' && !quoted) {
			colon = q;
			break;
		}
	}
	return colon ? colon + 1 : NULL;
}

char *vcard_get(const char *card, size_t len, const char *name)
{
	char *text = vcard_unfold(card, len), *line = text, *res = NULL;

	while (line && *line) {
		char *nl = strchr(line, '\n');
		const char *v = vcard_match(line, name);

		if (v) {
			size_t n = nl ? (size_t)(nl - v) : strlen(v);

			res = xmalloc(n + 1);
			memcpy(res, v, n);
			res[n] = '\0';
			break;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return res;
}

bool vcard_is_group(const char *card, size_t len)
{
	char *k = vcard_get(card, len, "KIND");
	bool group;

	if (k == NULL)
		k = vcard_get(card, len, "X-ADDRESSBOOKSERVER-KIND");
	group = k && strcasecmp(str_trim(k), "group") == 0;
	free(k);
	return group;
}

/* A UID fit to be a path segment as it is: letters, digits and "-_.@", not too long. */
static bool vcard_uid_safe(const char *uid)
{
	size_t n = strlen(uid);

	if (n == 0 || n > 200 || uid[0] == '.')
		return false;
	for (const char *p = uid; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_.@", *p))
			return false;
	return true;
}

char *vcard_resource_name(const char *card, size_t len)
{
	char *uid = vcard_get(card, len, "UID"), *name;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];

	if (uid && vcard_uid_safe(str_trim(uid))) {
		name = xasprintf("%s.vcf", str_trim(uid));
		free(uid);
		return name;
	}
	free(uid);
	SHA256((const unsigned char *)card, len, md);
	hex_encode(md, sizeof(md), hex);
	return xasprintf("%s.vcf", hex);
}

/* ---- writing -------------------------------------------------------------------------- */

struct vcard_out {
	struct buf body;	/* the properties, unfolded, one per "\n"-ended line */
	bool has_fn;
};

struct vcard_out *vcard_out_new(void)
{
	struct vcard_out *v = xcalloc(1, sizeof(*v));

	buf_init(&v->body, 0);
	return v;
}

static void vcard_escape_into(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\': buf_adds(b, "\\\\"); break;
		case ',': buf_adds(b, "\\,"); break;
		case ';': buf_adds(b, "\\;"); break;
		case '\n': buf_adds(b, "\\n"); break;
		case '\r': break;
		default: buf_add(b, s, 1); break;
		}
	}
}

void vcard_out_text(struct vcard_out *v, const char *name, const char *value)
{
	if (value == NULL || *value == '\0')
		return;
	if (strcasecmp(name, "FN") == 0)
		v->has_fn = true;
	buf_adds(&v->body, name);
	buf_adds(&v->body, ":");
	vcard_escape_into(&v->body, value);
	buf_adds(&v->body, "\n");
}

void vcard_out_struct(struct vcard_out *v, const char *name, const char *const *parts, size_t n)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		any |= parts[i] && *parts[i];
	if (!any)
		return;
	buf_adds(&v->body, name);
	buf_adds(&v->body, ":");
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_adds(&v->body, ";");
		if (parts[i])
			vcard_escape_into(&v->body, parts[i]);
	}
	buf_adds(&v->body, "\n");
}

void vcard_out_free(struct vcard_out *v)
{
	if (v == NULL)
		return;
	buf_free(&v->body);
	free(v);
}

bool vcard_out_empty(const struct vcard_out *v)
{
	return v->body.len == 0;
}

/* Append one logical line folded at 75 octets, never inside a UTF-8 sequence. */
static void vcard_fold_into(struct buf *b, const char *line, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];

		if (col >= VCARD_LINE_FOLD && (c & 0xC0) != 0x80) {
			buf_adds(b, "\r\n ");
			col = 1;
		}
		buf_add(b, &line[i], 1);
		col++;
	}
	buf_adds(b, "\r\n");
}

char *vcard_out_finish(struct vcard_out *v, const char *uid_hint, const char *fn_fallback,
		       size_t *len)
{
	struct buf out;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	const char *p, *end;

	if (!v->has_fn)
		vcard_out_text(v, "FN", fn_fallback && *fn_fallback ? fn_fallback : "?");
	if (uid_hint && *uid_hint) {
		vcard_out_text(v, "UID", uid_hint);
	} else {
		SHA256((const unsigned char *)v->body.data, v->body.len, md);
		hex_encode(md, 16, hex);	/* 128 bits name a contact well enough */
		hex[32] = '\0';
		buf_addf(&v->body, "UID:%s\n", hex);
	}
	buf_init(&out, 0);
	buf_adds(&out, "BEGIN:VCARD\r\nVERSION:4.0\r\n");
	p = v->body.data;
	end = p + v->body.len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		vcard_fold_into(&out, p, (size_t)(nl - p));
		p = nl + 1;
	}
	buf_adds(&out, "END:VCARD\r\n");
	buf_free(&v->body);
	free(v);
	return buf_release(&out, len);
}
