/*
 * carddav_xml.c - the bounded multistatus reader; see carddav_xml.h.
 *
 * One pass over the bytes with a stack of open element names. Text is gathered for the
 * element being read and handed to dav_text() when it closes; what it means depends on the
 * element and its parent (an href inside current-user-principal is the principal, an href
 * directly inside response is the response's own). Properties are gathered per propstat
 * and kept only when that propstat's status is 2xx: a multiget answers a missing card with
 * a 404 propstat, which must not look like an empty card.
 */
#include "carddav_xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xmalloc.h"

#define DAV_NAME_MAX 64

struct dav_props {
	bool collection, addressbook, sync_collection;
	char *displayname, *etag, *address_data, *principal, *home;
	int status;
};

struct dav_parser {
	const char *p, *end;
	char stack[DAV_XML_MAX_DEPTH][DAV_NAME_MAX];
	int depth;
	struct buf text;
	bool in_response, in_propstat;
	struct dav_resp cur;
	struct dav_props props;
	struct dav_ms *out;
	const char *err;
};

static void dav_props_clear(struct dav_props *p)
{
	free(p->displayname);
	free(p->etag);
	free(p->address_data);
	free(p->principal);
	free(p->home);
	memset(p, 0, sizeof(*p));
}

static void dav_resp_clear(struct dav_resp *r)
{
	free(r->href);
	free(r->displayname);
	free(r->etag);
	free(r->address_data);
	free(r->principal);
	free(r->home);
	memset(r, 0, sizeof(*r));
}

void dav_ms_free(struct dav_ms *ms)
{
	if (ms == NULL)
		return;
	for (size_t i = 0; i < ms->n; i++)
		dav_resp_clear(&ms->resp[i]);
	free(ms->resp);
	free(ms->sync_token);
	memset(ms, 0, sizeof(*ms));
}

/* Move a string field from a propstat into the response (a later one wins). */
static void dav_take(char **dst, char **src)
{
	if (*src == NULL)
		return;
	free(*dst);
	*dst = *src;
	*src = NULL;
}

static void dav_propstat_end(struct dav_parser *ps)
{
	struct dav_props *p = &ps->props;

	if (p->status >= 200 && p->status < 300) {
		ps->cur.collection |= p->collection;
		ps->cur.addressbook |= p->addressbook;
		ps->cur.sync_collection |= p->sync_collection;
		dav_take(&ps->cur.displayname, &p->displayname);
		dav_take(&ps->cur.etag, &p->etag);
		dav_take(&ps->cur.address_data, &p->address_data);
		dav_take(&ps->cur.principal, &p->principal);
		dav_take(&ps->cur.home, &p->home);
		if (ps->cur.status == 0)
			ps->cur.status = p->status;
	}
	dav_props_clear(p);
}

static int dav_response_end(struct dav_parser *ps)
{
	struct dav_ms *ms = ps->out;

	if (ps->cur.href == NULL) {	/* a response without href says nothing usable */
		dav_resp_clear(&ps->cur);
		return 0;
	}
	if (ms->n >= DAV_XML_MAX_RESPONSES) {
		ps->err = "too many responses";
		return -1;
	}
	ms->resp = xrealloc(ms->resp, (ms->n + 1) * sizeof(*ms->resp));
	ms->resp[ms->n++] = ps->cur;
	memset(&ps->cur, 0, sizeof(ps->cur));
	return 0;
}

/* "HTTP/1.1 404 Not Found" -> 404; 0 when malformed. */
static int dav_status_code(const char *s)
{
	const char *sp = strchr(s, ' ');
	int code = 0;

	if (sp == NULL)
		return 0;
	for (int i = 1; i <= 3; i++) {
		if (sp[i] < '0' || sp[i] > '9')
			return 0;
		code = code * 10 + (sp[i] - '0');
	}
	return code;
}

static const char *dav_parent(const struct dav_parser *ps)
{
	return ps->depth >= 2 ? ps->stack[ps->depth - 2] : "";
}

static void dav_set(char **dst, const char *text)
{
	free(*dst);
	*dst = xstrdup(text);
}

/* An element closed: give its text a meaning by its name and parent. */
static void dav_text(struct dav_parser *ps, const char *name, const char *text)
{
	const char *parent = dav_parent(ps);
	struct dav_props *p = &ps->props;

	if (!ps->in_response) {
		if (strcmp(name, "sync-token") == 0 && strcmp(parent, "multistatus") == 0)
			dav_set(&ps->out->sync_token, text);
		return;
	}
	if (strcmp(name, "href") == 0) {
		if (strcmp(parent, "response") == 0 && ps->cur.href == NULL)
			dav_set(&ps->cur.href, text);
		else if (strcmp(parent, "current-user-principal") == 0)
			dav_set(&p->principal, text);
		else if (strcmp(parent, "addressbook-home-set") == 0 && p->home == NULL)
			dav_set(&p->home, text);
	} else if (strcmp(name, "status") == 0) {
		if (strcmp(parent, "propstat") == 0)
			p->status = dav_status_code(text);
		else if (strcmp(parent, "response") == 0)
			ps->cur.status = dav_status_code(text);
	} else if (!ps->in_propstat) {
		return;
	} else if (strcmp(name, "displayname") == 0) {
		dav_set(&p->displayname, text);
	} else if (strcmp(name, "getetag") == 0) {
		dav_set(&p->etag, text);
	} else if (strcmp(name, "address-data") == 0) {
		dav_set(&p->address_data, text);
	} else if (strcmp(name, "collection") == 0 && strcmp(parent, "resourcetype") == 0) {
		p->collection = true;
	} else if (strcmp(name, "addressbook") == 0 && strcmp(parent, "resourcetype") == 0) {
		p->addressbook = true;
	} else if (strcmp(name, "sync-collection") == 0 && strcmp(parent, "report") == 0) {
		p->sync_collection = true;
	}
}

static int dav_open(struct dav_parser *ps, const char *name)
{
	if (ps->depth >= DAV_XML_MAX_DEPTH) {
		ps->err = "XML nested too deeply";
		return -1;
	}
	snprintf(ps->stack[ps->depth++], DAV_NAME_MAX, "%s", name);
	buf_reset(&ps->text);
	if (strcmp(name, "response") == 0 && ps->depth == 2) {
		dav_resp_clear(&ps->cur);
		ps->in_response = true;
	} else if (strcmp(name, "propstat") == 0 && ps->in_response) {
		dav_props_clear(&ps->props);
		ps->in_propstat = true;
	}
	return 0;
}

static int dav_close(struct dav_parser *ps, const char *name)
{
	const char *top;

	if (ps->depth == 0 || strcmp(ps->stack[ps->depth - 1], name) != 0) {
		ps->err = "mismatched XML end tag";
		return -1;
	}
	top = ps->stack[ps->depth - 1];
	if (buf_add(&ps->text, "", 1) < 0) {
		ps->err = "XML text too long";
		return -1;
	}
	dav_text(ps, top, (const char *)ps->text.data);
	buf_reset(&ps->text);
	if (strcmp(top, "propstat") == 0 && ps->in_propstat) {
		dav_propstat_end(ps);
		ps->in_propstat = false;
	} else if (strcmp(top, "response") == 0 && ps->depth == 2 && ps->in_response) {
		ps->in_response = false;
		ps->depth--;
		return dav_response_end(ps);
	}
	ps->depth--;
	return 0;
}

/* Append one code point as UTF-8. */
static int dav_add_utf8(struct buf *b, uint32_t c)
{
	unsigned char u[4];
	size_t n;

	if (c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return -1;
	if (c < 0x80) {
		u[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (unsigned char)(0xC0 | (c >> 6));
		u[1] = (unsigned char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (c >> 12));
		u[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (c >> 18));
		u[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		u[3] = (unsigned char)(0x80 | (c & 0x3F));
		n = 4;
	}
	return buf_add(b, u, n);
}

/* An entity or character reference at ps->p ('&'). */
static int dav_entity(struct dav_parser *ps)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	const char *s = ps->p + 1;
	size_t left = (size_t)(ps->end - s);

	for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		size_t n = strlen(ents[i].name);

		if (left >= n && memcmp(s, ents[i].name, n) == 0) {
			ps->p = s + n;
			return buf_add(&ps->text, &ents[i].c, 1);
		}
	}
	if (left >= 3 && s[0] == '#') {
		bool hex = s[1] == 'x';
		uint32_t c = 0;
		const char *q = s + (hex ? 2 : 1);
		int digits = 0;

		for (; q < ps->end && *q != ';' && digits < 8; q++, digits++) {
			int v;

			if (*q >= '0' && *q <= '9')
				v = *q - '0';
			else if (hex && *q >= 'a' && *q <= 'f')
				v = *q - 'a' + 10;
			else if (hex && *q >= 'A' && *q <= 'F')
				v = *q - 'A' + 10;
			else
				return -1;
			c = c * (hex ? 16 : 10) + (uint32_t)v;
		}
		if (q >= ps->end || *q != ';' || digits == 0)
			return -1;
		ps->p = q + 1;
		return dav_add_utf8(&ps->text, c);
	}
	return -1;
}

/* Skip to just past the string term; -1 when it never comes. */
static int dav_skip_past(struct dav_parser *ps, const char *term)
{
	size_t n = strlen(term);

	while ((size_t)(ps->end - ps->p) >= n) {
		if (memcmp(ps->p, term, n) == 0) {
			ps->p += n;
			return 0;
		}
		ps->p++;
	}
	ps->err = "unterminated XML construct";
	return -1;
}

static bool dav_name_char(char c)
{
	return c != '\0' && !strchr(" \t\r\n/>=\"'<", c);
}

/* A tag at ps->p ('<' already seen, p at the next byte). */
static int dav_tag(struct dav_parser *ps)
{
	bool closing = false, empty = false;
	const char *start, *colon = NULL, *q;
	char name[DAV_NAME_MAX];
	size_t n;

	if (ps->p < ps->end && *ps->p == '/') {
		closing = true;
		ps->p++;
	}
	start = ps->p;
	while (ps->p < ps->end && dav_name_char(*ps->p)) {
		if (*ps->p == ':')
			colon = ps->p;
		ps->p++;
	}
	if (ps->p == start) {
		ps->err = "malformed XML tag";
		return -1;
	}
	q = colon ? colon + 1 : start;
	n = (size_t)(ps->p - q);
	if (n == 0) {		/* "<x:" has a prefix and no local name */
		ps->err = "malformed XML tag";
		return -1;
	}
	if (n >= DAV_NAME_MAX)
		n = DAV_NAME_MAX - 1;	/* long names match nothing we look for */
	memcpy(name, q, n);
	name[n] = '\0';
	/* attributes: skipped, quotes honoured so a '>' inside a value does not end the tag */
	while (ps->p < ps->end && *ps->p != '>') {
		if (*ps->p == '"' || *ps->p == '\'') {
			char quote[2] = { *ps->p, '\0' };

			ps->p++;
			if (dav_skip_past(ps, quote) < 0)
				return -1;
			continue;
		}
		if (*ps->p == '<') {
			ps->err = "malformed XML tag";
			return -1;
		}
		empty = *ps->p == '/';
		ps->p++;
	}
	if (ps->p >= ps->end) {
		ps->err = "unterminated XML tag";
		return -1;
	}
	ps->p++;
	if (closing)
		return dav_close(ps, name);
	if (dav_open(ps, name) < 0)
		return -1;
	return empty ? dav_close(ps, name) : 0;
}

/* The markup at ps->p ('<'). */
static int dav_markup(struct dav_parser *ps)
{
	size_t left = (size_t)(ps->end - ps->p);

	if (left >= 4 && memcmp(ps->p, "<!--", 4) == 0) {
		ps->p += 4;
		return dav_skip_past(ps, "-->");
	}
	if (left >= 9 && memcmp(ps->p, "<![CDATA[", 9) == 0) {
		const char *start = ps->p + 9;

		ps->p = start;
		if (dav_skip_past(ps, "]]>") < 0)
			return -1;
		if (buf_add(&ps->text, start, (size_t)(ps->p - 3 - start)) < 0) {
			ps->err = "XML text too long";
			return -1;
		}
		return 0;
	}
	if (left >= 2 && ps->p[1] == '?') {
		ps->p += 2;
		return dav_skip_past(ps, "?>");
	}
	if (left >= 2 && ps->p[1] == '!') {
		ps->err = "XML declarations (DOCTYPE) are not accepted";
		return -1;
	}
	ps->p++;
	return dav_tag(ps);
}

static int dav_run(struct dav_parser *ps)
{
	while (ps->p < ps->end) {
		const char *lt;

		if (*ps->p == '<') {
			if (dav_markup(ps) < 0)
				return -1;
			continue;
		}
		if (*ps->p == '&') {
			if (dav_entity(ps) < 0) {
				ps->err = ps->err ? ps->err : "bad XML entity";
				return -1;
			}
			continue;
		}
		if (*ps->p == '\0') {
			ps->err = "NUL in XML";
			return -1;
		}
		/* a run of plain text up to the next markup or entity */
		lt = ps->p;
		while (lt < ps->end && *lt != '<' && *lt != '&' && *lt != '\0')
			lt++;
		if (ps->depth > 0 && buf_add(&ps->text, ps->p, (size_t)(lt - ps->p)) < 0) {
			ps->err = "XML text too long";
			return -1;
		}
		ps->p = lt;
	}
	if (ps->depth != 0) {
		ps->err = "XML ends inside an element";
		return -1;
	}
	return 0;
}

int dav_ms_parse(const char *xml, size_t len, struct dav_ms *out, const char **err)
{
	struct dav_parser *ps;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > DAV_XML_MAX) {
		*err = "multistatus body too large";
		return -1;
	}
	ps = xcalloc(1, sizeof(*ps));
	ps->p = xml;
	ps->end = xml + len;
	ps->out = out;
	buf_init(&ps->text, len + 1);
	rc = dav_run(ps);
	if (rc == 0 && out->n == 0 && strcmp(ps->stack[0], "multistatus") != 0) {
		ps->err = "not a DAV multistatus";
		rc = -1;
	}
	if (rc < 0) {
		*err = ps->err ? ps->err : "malformed XML";
		dav_ms_free(out);
	}
	dav_resp_clear(&ps->cur);
	dav_props_clear(&ps->props);
	buf_free(&ps->text);
	free(ps);
	return rc;
}

char *dav_xml_escape(const char *s)
{
	struct buf b;

	buf_init(&b, 0);
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_adds(&b, "&lt;"); break;
		case '>': buf_adds(&b, "&gt;"); break;
		case '&': buf_adds(&b, "&amp;"); break;
		case '"': buf_adds(&b, "&quot;"); break;
		default: buf_add(&b, s, 1); break;
		}
	}
	buf_add(&b, "", 1);
	return buf_release(&b, NULL);
}
