/*
 * imap_parse.c - splitting the server's byte stream into responses and parsing one response
 * into a tree of atoms, strings and lists (bounds in imap_parse.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "xmalloc.h"

/* If the line [p, p+len) (without CRLF) ends in "{N}" or "{N+}", set *n. */
static bool line_literal(const char *p, size_t len, uint64_t *n)
{
	size_t i;
	uint64_t v = 0;

	if (len < 3 || p[len - 1] != '}')
		return false;
	i = len - 1;
	if (i > 0 && p[i - 1] == '+')
		i--;
	if (i == 0 || !isdigit((unsigned char)p[i - 1]))
		return false;
	while (i > 0 && isdigit((unsigned char)p[i - 1]))
		i--;
	if (i == 0 || p[i - 1] != '{')
		return false;
	for (size_t j = i; isdigit((unsigned char)p[j]); j++) {
		if (v > (UINT64_MAX - 9) / 10) {
			v = UINT64_MAX;	/* over any bound: the caller refuses it */
			break;
		}
		v = v * 10 + (uint64_t)(p[j] - '0');
	}
	*n = v;
	return true;
}

long long imap_resp_need(const char *data, size_t len, size_t max_line, size_t max_literal)
{
	size_t pos = 0;

	if (len == 0)
		return 0;
	for (;;) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t linelen;
		uint64_t lit;

		if (nl == NULL)
			return len - pos > max_line ? -1 : 0;
		linelen = (size_t)(nl - (data + pos));
		if (linelen > max_line)
			return -1;
		if (linelen > 0 && data[pos + linelen - 1] == '\r')
			linelen--;
		if (!line_literal(data + pos, linelen, &lit))
			return (long long)(nl - data) + 1;
		if (lit > max_literal)
			return -1;
		pos = (size_t)(nl - data) + 1;
		if (len - pos < lit)
			return 0;
		if (len - pos == lit)
			return 0;	/* the line after the literal has not begun */
		pos += (size_t)lit;
	}
}

long long imap_stream_head(const char *data, size_t len, size_t max_line, uint64_t *lit)
{
	const char *nl = memchr(data, '\n', len), *p = data, *brace;
	size_t linelen;

	if (nl == NULL)
		return len > max_line ? -1 : 0;
	linelen = (size_t)(nl - data);
	if (linelen > max_line)
		return -1;
	if (linelen > 0 && data[linelen - 1] == '\r')
		linelen--;
	if (!line_literal(data, linelen, lit))
		return -2;
	/* "* N FETCH (... BODY[] {N}": the body literal is the last thing on the line */
	brace = memrchr(data, '{', linelen);
	if (linelen < 2 || p[0] != '*' || p[1] != ' ')
		return -2;
	p += 2;
	if (!isdigit((unsigned char)*p))
		return -2;
	while (p < brace && isdigit((unsigned char)*p))
		p++;
	if ((size_t)(brace - p) < 8 || strncasecmp(p, " FETCH (", 8) != 0)
		return -2;
	if ((size_t)(brace - (p + 8)) < 7 || strncasecmp(brace - 7, "BODY[] ", 7) != 0)
		return -2;
	/* the item must start there: "XBODY[] " is not BODY[] */
	if (brace - 7 != p + 8 && brace[-8] != ' ')
		return -2;
	return (long long)(nl - data) + 1;
}

/* ---- tokenizer ---- */

struct cur {
	const char *p, *end;
	struct imap_resp *r;
	const char *err;
};

static struct imap_node *node_new(struct cur *c)
{
	struct imap_resp *r = c->r;

	if (r->nused == IMAP_MAX_NODES) {
		c->err = "too many elements in a response";
		return NULL;
	}
	/* blocks, so that nodes never move once pointed to */
	if (r->nused % IMAP_NODE_BLOCK == 0)
		r->blocks[r->nused / IMAP_NODE_BLOCK] = xcalloc(IMAP_NODE_BLOCK, sizeof(struct imap_node));
	struct imap_node *n = &r->blocks[r->nused / IMAP_NODE_BLOCK][r->nused % IMAP_NODE_BLOCK];

	r->nused++;
	return n;
}

static bool is_atom_char(char ch)
{
	return ch > ' ' && ch != 0x7f && ch != '(' && ch != ')' && ch != '{' && ch != '"' &&
	       ch != '\r' && ch != '\n';
}

static bool parse_value(struct cur *c, struct imap_node *n, int depth);

static bool parse_quoted(struct cur *c, struct imap_node *n)
{
	struct imap_resp *r = c->r;
	char *out = r->unq + r->unq_len;
	size_t olen = 0;

	c->p++;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\r' || *c->p == '\n') {
			c->err = "line end in a quoted string";
			return false;
		}
		if (*c->p == '\\') {
			c->p++;
			if (c->p == c->end)
				break;
		}
		out[olen++] = *c->p++;
	}
	if (c->p == c->end) {
		c->err = "unterminated quoted string";
		return false;
	}
	c->p++;
	n->type = IMAP_STRING;
	n->p = out;
	n->len = olen;
	r->unq_len += olen;
	return true;
}

static bool parse_literal(struct cur *c, struct imap_node *n)
{
	uint64_t v = 0;
	bool digits = false;

	if (*c->p == '~')
		c->p++;
	if (c->p == c->end || *c->p != '{') {
		c->err = "bad literal";
		return false;
	}
	c->p++;
	while (c->p < c->end && isdigit((unsigned char)*c->p)) {
		if (v > (UINT64_MAX - 9) / 10) {
			c->err = "literal size overflows";
			return false;
		}
		v = v * 10 + (uint64_t)(*c->p++ - '0');
		digits = true;
	}
	if (c->p < c->end && *c->p == '+')
		c->p++;
	if (!digits || c->end - c->p < 3 || c->p[0] != '}' || c->p[1] != '\r' || c->p[2] != '\n') {
		c->err = "bad literal";
		return false;
	}
	c->p += 3;
	if ((uint64_t)(c->end - c->p) < v) {
		c->err = "literal longer than the response";
		return false;
	}
	n->type = IMAP_STRING;
	n->p = c->p;
	n->len = (size_t)v;
	c->p += v;
	return true;
}

static bool parse_atom(struct cur *c, struct imap_node *n)
{
	const char *start = c->p;

	while (c->p < c->end && is_atom_char(*c->p)) {
		if (*c->p == '[') {
			/* a section may hold spaces and parentheses: BODY[HEADER.FIELDS (A B)] */
			const char *close = memchr(c->p, ']', (size_t)(c->end - c->p));

			if (close == NULL || memchr(c->p, '\n', (size_t)(close - c->p)) != NULL) {
				c->err = "unterminated section";
				return false;
			}
			c->p = close;
		}
		c->p++;
	}
	if (c->p == start) {
		c->err = "unexpected character";
		return false;
	}
	n->p = start;
	n->len = (size_t)(c->p - start);
	n->type = (n->len == 3 && strncasecmp(start, "NIL", 3) == 0) ? IMAP_NIL : IMAP_ATOM;
	return true;
}

/* Elements up to ')' (inner) or the end of the line (top level). */
static bool parse_seq(struct cur *c, struct imap_node *list, int depth, bool inner)
{
	struct imap_node *last = NULL;

	list->type = IMAP_LIST;
	list->child = NULL;
	list->nchild = 0;
	for (;;) {
		struct imap_node *n;

		while (c->p < c->end && *c->p == ' ')
			c->p++;
		if (c->p == c->end || *c->p == '\r' || *c->p == '\n') {
			if (inner) {
				c->err = "unbalanced parenthesis";
				return false;
			}
			return true;
		}
		if (*c->p == ')') {
			if (!inner) {
				c->err = "unbalanced parenthesis";
				return false;
			}
			c->p++;
			return true;
		}
		n = node_new(c);
		if (n == NULL)
			return false;
		if (last == NULL)
			list->child = n;
		else
			last->next = n;
		last = n;
		list->nchild++;
		if (!parse_value(c, n, depth))
			return false;
	}
}

static bool parse_value(struct cur *c, struct imap_node *n, int depth)
{
	if (*c->p == '"')
		return parse_quoted(c, n);
	if (*c->p == '{' || *c->p == '~')
		return parse_literal(c, n);
	if (*c->p == '(') {
		if (depth >= IMAP_MAX_DEPTH) {
			c->err = "nested too deeply";
			return false;
		}
		c->p++;
		return parse_seq(c, n, depth + 1, true);
	}
	return parse_atom(c, n);
}

static enum imap_status status_of(const struct imap_node *n)
{
	static const struct { const char *w; enum imap_status st; } map[] = {
		{ "OK", IMAP_ST_OK }, { "NO", IMAP_ST_NO }, { "BAD", IMAP_ST_BAD },
		{ "BYE", IMAP_ST_BYE }, { "PREAUTH", IMAP_ST_PREAUTH },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (imap_node_is(n, map[i].w))
			return map[i].st;
	return IMAP_ST_NONE;
}

/* resp-text: ["[" code [SP arg] "]" SP] text, up to the end of the line. */
static bool parse_resp_text(struct cur *c)
{
	struct imap_resp *r = c->r;
	const char *eol;

	while (c->p < c->end && *c->p == ' ')
		c->p++;
	if (c->p < c->end && *c->p == '[') {
		const char *close = memchr(c->p, ']', (size_t)(c->end - c->p));
		const char *w = c->p + 1, *we;
		size_t wl;

		if (close == NULL) {
			c->err = "unterminated response code";
			return false;
		}
		for (we = w; we < close && *we != ' '; we++)
			;
		wl = (size_t)(we - w);
		if (wl >= sizeof(r->code))
			wl = sizeof(r->code) - 1;
		for (size_t i = 0; i < wl; i++)
			r->code[i] = (char)toupper((unsigned char)w[i]);
		r->code[wl] = '\0';
		if (we < close)
			we++;
		r->code_arg = we;
		r->code_arg_len = (size_t)(close - we);
		c->p = close + 1;
		while (c->p < c->end && *c->p == ' ')
			c->p++;
	}
	eol = memchr(c->p, '\n', (size_t)(c->end - c->p));
	if (eol == NULL)
		eol = c->end;
	r->text = c->p;
	r->text_len = (size_t)(eol - c->p);
	if (r->text_len > 0 && r->text[r->text_len - 1] == '\r')
		r->text_len--;
	c->p = c->end;
	return true;
}

static bool take_word(struct cur *c, char *out, size_t outsz, bool upper)
{
	const char *start = c->p;
	size_t n;

	while (c->p < c->end && *c->p != ' ' && *c->p != '\r' && *c->p != '\n')
		c->p++;
	n = (size_t)(c->p - start);
	if (n == 0 || n >= outsz) {
		c->err = "bad tag or response name";
		return false;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = upper ? (char)toupper((unsigned char)start[i]) : start[i];
	out[n] = '\0';
	if (c->p < c->end && *c->p == ' ')
		c->p++;
	return true;
}

static bool parse_untagged(struct cur *c)
{
	struct imap_resp *r = c->r;
	struct imap_node word;

	if (c->p < c->end && isdigit((unsigned char)*c->p)) {
		uint64_t v = 0;

		while (c->p < c->end && isdigit((unsigned char)*c->p)) {
			v = v * 10 + (uint64_t)(*c->p++ - '0');
			if (v > UINT32_MAX) {
				c->err = "number too large";
				return false;
			}
		}
		r->number = (uint32_t)v;
		r->has_number = true;
		if (c->p < c->end && *c->p == ' ')
			c->p++;
	}
	if (!take_word(c, r->name, sizeof(r->name), true))
		return false;
	word.type = IMAP_ATOM;
	word.p = r->name;
	word.len = strlen(r->name);
	r->status = r->has_number ? IMAP_ST_NONE : status_of(&word);
	if (r->status != IMAP_ST_NONE)
		return parse_resp_text(c);
	return parse_seq(c, &r->args, 0, false);
}

bool imap_resp_parse(const char *data, size_t len, struct imap_resp *r, const char **err)
{
	struct cur c = { data, data + len, r, NULL };
	bool ok;

	memset(r, 0, sizeof(*r));
	r->unq = xmalloc(len + 1);
	r->code_arg = r->text = "";
	r->args.type = IMAP_LIST;
	if (len >= 2 && data[0] == '+' && (data[1] == ' ' || data[1] == '\r')) {
		r->kind = IMAP_RESP_CONT;
		c.p++;
		ok = parse_resp_text(&c);
	} else if (len >= 2 && data[0] == '*' && data[1] == ' ') {
		r->kind = IMAP_RESP_UNTAGGED;
		c.p += 2;
		ok = parse_untagged(&c);
	} else {
		struct imap_node word;

		r->kind = IMAP_RESP_TAGGED;
		ok = take_word(&c, r->tag, sizeof(r->tag), false) &&
		     take_word(&c, r->name, sizeof(r->name), true);
		if (ok) {
			word.type = IMAP_ATOM;
			word.p = r->name;
			word.len = strlen(r->name);
			r->status = status_of(&word);
			if (r->status == IMAP_ST_NONE || r->status == IMAP_ST_PREAUTH) {
				c.err = "a tagged response must be OK, NO or BAD";
				ok = false;
			} else {
				ok = parse_resp_text(&c);
			}
		}
	}
	if (!ok) {
		*err = c.err ? c.err : "malformed response";
		imap_resp_free(r);
		return false;
	}
	return true;
}

void imap_resp_free(struct imap_resp *r)
{
	for (size_t i = 0; i * IMAP_NODE_BLOCK < r->nused; i++)
		free(r->blocks[i]);
	r->nused = 0;
	free(r->unq);
	r->unq = NULL;
}

bool imap_node_is(const struct imap_node *n, const char *atom)
{
	size_t l = strlen(atom);

	return n != NULL && n->type == IMAP_ATOM && n->len == l && strncasecmp(n->p, atom, l) == 0;
}

bool imap_node_u64(const struct imap_node *n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == NULL || n->type != IMAP_ATOM || n->len == 0 || n->len > 19)
		return false;
	for (size_t i = 0; i < n->len; i++) {
		if (!isdigit((unsigned char)n->p[i]))
			return false;
		x = x * 10 + (uint64_t)(n->p[i] - '0');
	}
	*v = x;
	return true;
}

bool imap_node_u32(const struct imap_node *n, uint32_t *v)
{
	uint64_t x;

	if (!imap_node_u64(n, &x) || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

const struct imap_node *imap_fetch_item(const struct imap_node *list, const char *name)
{
	const struct imap_node *n;

	if (list == NULL || list->type != IMAP_LIST)
		return NULL;
	for (n = list->child; n != NULL && n->next != NULL; n = n->next->next)
		if (imap_node_is(n, name))
			return n->next;
	return NULL;
}

bool imap_words_has(const char *words, size_t len, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < len) {
		size_t j = i;

		while (j < len && words[j] != ' ')
			j++;
		if (j - i == wl && strncasecmp(words + i, word, wl) == 0)
			return true;
		i = j + 1;
	}
	return false;
}
