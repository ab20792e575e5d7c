/*
 * relay_smtp_cmd.c - parsing one SMTP command line; see relay_smtp_cmd.h.
 *
 * Addresses follow RFC 5321 4.1.2 (dot-string or quoted-string local part, domain or
 * address literal, optional source route which is dropped), with UTF-8 allowed only when
 * the transaction uses SMTPUTF8 (RFC 6531: otherwise 553 5.6.7). "MAIL FROM: <a>" with a
 * space before the bracket is accepted because common MTAs send it. Dots in local parts
 * are not checked for placement: some providers hand out "a..b" and a relay must not
 * refuse what the next hop accepts.
 */
#include "relay_smtp_cmd.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xmalloc.h"

struct verb_name {
	const char *name;
	int verb;		/* enum smtp_verb, or -1: recognised but not implemented */
};

static const struct verb_name verbs[] = {
	{ "HELO", SMTP_HELO }, { "EHLO", SMTP_EHLO }, { "MAIL", SMTP_MAIL },
	{ "RCPT", SMTP_RCPT }, { "DATA", SMTP_DATA }, { "RSET", SMTP_RSET },
	{ "NOOP", SMTP_NOOP }, { "QUIT", SMTP_QUIT }, { "VRFY", SMTP_VRFY },
	{ "HELP", SMTP_HELP }, { "STARTTLS", SMTP_STARTTLS },
	{ "EXPN", -1 }, { "AUTH", -1 }, { "BDAT", -1 }, { "ETRN", -1 }, { "TURN", -1 },
	{ "SEND", -1 }, { "SOML", -1 }, { "SAML", -1 }, { "ATRN", -1 },
};

/* Set the error reply and return its code. */
__attribute__((format(printf, 3, 4)))
static int cmd_error(struct smtp_cmd *cmd, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd->error, sizeof(cmd->error), fmt, ap);
	va_end(ap);
	return code;
}

/* Length of the valid UTF-8 sequence starting at p (at most n bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need;
}

/* Is s[0..n) valid UTF-8 without control characters? */
static bool text_ok(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k;
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		k = utf8_seq(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

static bool is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * Parse a local part at p (up to end); returns the position after it or NULL. *utf8 is set
 * when it contains non-ASCII characters.
 */
static const char *parse_local(const char *p, const char *end, bool *utf8)
{
	const unsigned char *u;

	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			u = (const unsigned char *)p;
			if (*p == '\\') {
				if (++p == end || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
					return NULL;
			} else if (*u >= 0x80) {
				size_t k = utf8_seq(u, (size_t)(end - p));
				if (k == 0)
					return NULL;
				*utf8 = true;
				p += k - 1;
			} else if (*u < 0x20 || *u == 0x7f) {
				return NULL;
			}
		}
		return p < end ? p + 1 : NULL;
	}
	const char *start = p;
	while (p < end) {
		u = (const unsigned char *)p;
		if (*u >= 0x80) {
			size_t k = utf8_seq(u, (size_t)(end - p));
			if (k == 0)
				return NULL;
			*utf8 = true;
			p += k;
		} else if (is_atext(*u) || *u == '.') {
			p++;
		} else {
			break;
		}
	}
	return p > start ? p : NULL;
}

/* Parse a domain or address literal at p; returns the position after it or NULL. */
static const char *parse_domain(const char *p, const char *end, bool *utf8)
{
	const char *start = p;
	size_t label = 0;

	if (p < end && *p == '[') {
		for (p++; p < end && *p != ']'; p++)
			if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || *p == '[' || *p == '\\')
				return NULL;
		return p < end && p - start > 1 ? p + 1 : NULL;
	}
	while (p < end) {
		const unsigned char *u = (const unsigned char *)p;
		if (*u == '.') {
			if (label == 0 || p[-1] == '-')
				return NULL;
			label = 0;
			p++;
			continue;
		}
		if (*u >= 0x80) {
			size_t k = utf8_seq(u, (size_t)(end - p));
			if (k == 0)
				return NULL;
			*utf8 = true;
			p += k;
			label += k;
		} else if (isalnum(*u) || (*u == '-' && label > 0)) {
			p++;
			label++;
		} else {
			break;
		}
		if (label > 63)
			return NULL;
	}
	if (p == start || label == 0 || p[-1] == '-' || p - start > 255)
		return NULL;
	return p;
}

/*
 * Parse "<path>" at *pp. On success stores the address (without brackets and source
 * route) in *out and advances *pp past '>'. Returns 0, 1 for bad syntax, 2 for a non-ASCII
 * address (the caller decides with the SMTPUTF8 state).
 */
static int parse_path(const char **pp, const char *end, char **out, bool *utf8)
{
	const char *p = *pp, *open = p, *local;

	if (p == end || *p != '<')
		return 1;
	p++;
	if (p < end && *p == '>') {
		*out = xstrdup("");
		*pp = p + 1;
		return 0;
	}
	/* A-d-l: "@one,@two:" is obsolete and ignored (RFC 5321 4.1.2, C). */
	if (p < end && *p == '@') {
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (colon == NULL)
			return 1;
		while (p < colon) {
			if (*p != '@' || (p = parse_domain(p + 1, colon, utf8)) == NULL)
				return 1;
			if (p < colon && *p++ != ',')
				return 1;
		}
		p = colon + 1;
	}
	local = p;
	p = parse_local(p, end, utf8);
	if (p == NULL || p - local > 64 || p == end || *p != '@')
		return 1;
	p = parse_domain(p + 1, end, utf8);
	if (p == NULL || p == end || *p != '>' || p + 1 - open > SMTP_PATH_MAX)
		return 1;
	*out = xstrndup(local, (size_t)(p - local));
	*pp = p + 1;
	return 0;
}

char *smtp_xtext_decode(const char *s, size_t len)
{
	char *out = xmalloc(len + 1), *o = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			char hex[3] = { 0 };
			if (i + 2 >= len)
				goto bad;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1]))
				goto bad;
			c = (unsigned char)strtoul(hex, NULL, 16);
			i += 2;
			if (c < 0x20 || c >= 0x7f)	/* keeps the result valid UTF-8 */
				goto bad;
		} else if (c < 0x21 || c == '=' || c >= 0x7f) {
			goto bad;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

char *smtp_xtext_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(3 * n + 1), *o = out;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x21 || c > 0x7e || c == '+' || c == '=')
			o += sprintf(o, "+%02X", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

char *smtp_notify_string(unsigned notify)
{
	char buf[32] = "";

	if (notify == 0)
		return NULL;
	if (notify & SMTP_NOTIFY_NEVER)
		return xstrdup("NEVER");
	if (notify & SMTP_NOTIFY_SUCCESS)
		strcat(buf, ",SUCCESS");
	if (notify & SMTP_NOTIFY_FAILURE)
		strcat(buf, ",FAILURE");
	if (notify & SMTP_NOTIFY_DELAY)
		strcat(buf, ",DELAY");
	return xstrdup(buf + 1);
}

/* Does the keyword kw[0..kwlen) equal name (case-insensitive)? */
static bool kw_is(const char *kw, size_t kwlen, const char *name)
{
	return strlen(name) == kwlen && strncasecmp(kw, name, kwlen) == 0;
}

/* NOTIFY=NEVER | 1#(SUCCESS / FAILURE / DELAY); 0 when malformed. */
static unsigned parse_notify(const char *v, size_t n)
{
	unsigned flags = 0;
	const char *end = v + n;

	while (v < end) {
		const char *comma = memchr(v, ',', (size_t)(end - v));
		size_t k = (size_t)((comma ? comma : end) - v);
		unsigned f;
		if (kw_is(v, k, "NEVER"))
			f = SMTP_NOTIFY_NEVER;
		else if (kw_is(v, k, "SUCCESS"))
			f = SMTP_NOTIFY_SUCCESS;
		else if (kw_is(v, k, "FAILURE"))
			f = SMTP_NOTIFY_FAILURE;
		else if (kw_is(v, k, "DELAY"))
			f = SMTP_NOTIFY_DELAY;
		else
			return 0;
		if (flags & f)
			return 0;
		flags |= f;
		if (comma == NULL)
			break;
		v = comma + 1;
		if (v == end)
			return 0;
	}
	if ((flags & SMTP_NOTIFY_NEVER) && flags != SMTP_NOTIFY_NEVER)
		return 0;
	return flags;
}

/* ORCPT=addr-type ";" xtext; stores "type;decoded" or returns false. */
static bool parse_orcpt(const char *v, size_t n, char **out)
{
	const char *semi = memchr(v, ';', n);
	char *addr;

	if (semi == NULL || semi == v || n > SMTP_ORCPT_MAX)
		return false;
	for (const char *p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
	if (kw_is(v, (size_t)(semi - v), "utf-8"))	/* RFC 6533: UTF-8 as is */
		addr = xstrndup(semi + 1, (size_t)(v + n - semi - 1));
	else
		addr = smtp_xtext_decode(semi + 1, (size_t)(v + n - semi - 1));
	if (addr == NULL || *addr == '\0' || !text_ok(addr, strlen(addr))) {
		free(addr);
		return false;
	}
	*out = xasprintf("%.*s;%s", (int)(semi - v), v, addr);
	free(addr);
	return true;
}

/* One MAIL parameter keyword[=value]; returns 0 or a reply code. */
static int mail_param(struct smtp_cmd *cmd, const char *kw, size_t kwlen, const char *val,
		      size_t vlen, bool has_val)
{
	if (kw_is(kw, kwlen, "SIZE")) {
		uint64_t v = 0;
		if (cmd->has_size)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate SIZE parameter");
		if (!has_val || vlen == 0 || vlen > 20)
			return cmd_error(cmd, 501, "501 5.5.4 Bad SIZE parameter value");
		for (size_t i = 0; i < vlen; i++) {
			if (!isdigit((unsigned char)val[i]))
				return cmd_error(cmd, 501, "501 5.5.4 Bad SIZE parameter value");
			if (v > (UINT64_MAX - 9) / 10)
				v = UINT64_MAX;
			else
				v = v * 10 + (uint64_t)(val[i] - '0');
		}
		cmd->has_size = true;
		cmd->size = v;
	} else if (kw_is(kw, kwlen, "BODY")) {
		if (cmd->body != SMTP_BODY_NONE)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate BODY parameter");
		if (has_val && kw_is(val, vlen, "7BIT"))
			cmd->body = SMTP_BODY_7BIT;
		else if (has_val && kw_is(val, vlen, "8BITMIME"))
			cmd->body = SMTP_BODY_8BITMIME;
		else if (has_val && kw_is(val, vlen, "BINARYMIME"))
			return cmd_error(cmd, 504, "504 5.5.4 BODY=BINARYMIME is not supported");
		else
			return cmd_error(cmd, 501, "501 5.5.4 Bad BODY parameter value");
	} else if (kw_is(kw, kwlen, "SMTPUTF8")) {
		if (has_val)
			return cmd_error(cmd, 501, "501 5.5.4 SMTPUTF8 takes no value");
		if (cmd->smtputf8)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate SMTPUTF8 parameter");
		cmd->smtputf8 = true;
	} else if (kw_is(kw, kwlen, "REQUIRETLS")) {
		if (has_val)
			return cmd_error(cmd, 501, "501 5.5.4 REQUIRETLS takes no value");
		if (cmd->requiretls)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate REQUIRETLS parameter");
		cmd->requiretls = true;
	} else if (kw_is(kw, kwlen, "RET")) {
		if (cmd->ret != SMTP_RET_NONE)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate RET parameter");
		if (has_val && kw_is(val, vlen, "FULL"))
			cmd->ret = SMTP_RET_FULL;
		else if (has_val && kw_is(val, vlen, "HDRS"))
			cmd->ret = SMTP_RET_HDRS;
		else
			return cmd_error(cmd, 501, "501 5.5.4 Bad RET parameter value");
	} else if (kw_is(kw, kwlen, "ENVID")) {
		if (cmd->envid)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate ENVID parameter");
		if (!has_val || vlen == 0 || vlen > SMTP_ENVID_MAX ||
		    (cmd->envid = smtp_xtext_decode(val, vlen)) == NULL)
			return cmd_error(cmd, 501, "501 5.5.4 Bad ENVID parameter value");
	} else {
		return cmd_error(cmd, 555, "555 5.5.4 Unsupported MAIL parameter %.*s",
				 (int)(kwlen > 32 ? 32 : kwlen), kw);
	}
	return 0;
}

/* One RCPT parameter; returns 0 or a reply code. */
static int rcpt_param(struct smtp_cmd *cmd, const char *kw, size_t kwlen, const char *val,
		      size_t vlen, bool has_val)
{
	if (kw_is(kw, kwlen, "NOTIFY")) {
		if (cmd->notify)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate NOTIFY parameter");
		if (!has_val || (cmd->notify = parse_notify(val, vlen)) == 0)
			return cmd_error(cmd, 501, "501 5.5.4 Bad NOTIFY parameter value");
	} else if (kw_is(kw, kwlen, "ORCPT")) {
		if (cmd->orcpt)
			return cmd_error(cmd, 501, "501 5.5.4 Duplicate ORCPT parameter");
		if (!has_val || !parse_orcpt(val, vlen, &cmd->orcpt))
			return cmd_error(cmd, 501, "501 5.5.4 Bad ORCPT parameter value");
	} else {
		return cmd_error(cmd, 555, "555 5.5.4 Unsupported RCPT parameter %.*s",
				 (int)(kwlen > 32 ? 32 : kwlen), kw);
	}
	return 0;
}

/* The ESMTP parameters after a path: SP-separated keyword[=value]. */
static int parse_params(struct smtp_cmd *cmd, const char *p, const char *end)
{
	while (p < end) {
		const char *kw, *val = NULL, *tok;
		size_t kwlen, vlen = 0;
		int rc;

		if (*p == ' ') {
			p++;
			continue;
		}
		tok = p;
		while (p < end && *p != ' ')
			p++;
		kw = tok;
		while (kw < p && (isalnum((unsigned char)*kw) || (*kw == '-' && kw > tok)))
			kw++;
		kwlen = (size_t)(kw - tok);
		if (kwlen == 0 || (kw < p && *kw != '='))
			return cmd_error(cmd, 501, "501 5.5.4 Bad parameter syntax");
		if (kw < p) {
			val = kw + 1;
			vlen = (size_t)(p - val);
			for (size_t i = 0; i < vlen; i++)
				if ((unsigned char)val[i] < 33 || val[i] == '=' || val[i] == 0x7f)
					return cmd_error(cmd, 501, "501 5.5.4 Bad parameter syntax");
		}
		if (cmd->verb == SMTP_MAIL)
			rc = mail_param(cmd, tok, kwlen, val, vlen, val != NULL);
		else
			rc = rcpt_param(cmd, tok, kwlen, val, vlen, val != NULL);
		if (rc)
			return rc;
	}
	return 0;
}

/* "MAIL FROM:<path> params" / "RCPT TO:<path> params"; p points after the verb. */
static int parse_mail_rcpt(struct smtp_cmd *cmd, const char *p, const char *end, bool smtputf8)
{
	const char *kw = cmd->verb == SMTP_MAIL ? " FROM:" : " TO:";
	size_t kwlen = strlen(kw);
	bool utf8 = false;
	int rc;

	if ((size_t)(end - p) < kwlen || strncasecmp(p, kw, kwlen) != 0)
		goto syntax;
	p += kwlen;
	while (p < end && *p == ' ')
		p++;
	rc = parse_path(&p, end, &cmd->path, &utf8);
	if (rc != 0 || (p < end && *p != ' ')) {
		if (cmd->verb == SMTP_MAIL)
			return cmd_error(cmd, 501, "501 5.1.7 Bad sender address syntax");
		return cmd_error(cmd, 501, "501 5.1.3 Bad recipient address syntax");
	}
	if (cmd->verb == SMTP_RCPT && *cmd->path == '\0')
		return cmd_error(cmd, 501, "501 5.1.3 Bad recipient address syntax");
	rc = parse_params(cmd, p, end);
	if (rc)
		return rc;
	if (cmd->verb == SMTP_MAIL)
		smtputf8 = cmd->smtputf8;
	if (utf8 && !smtputf8)
		return cmd_error(cmd, 553, "553 5.6.7 Non-ASCII address requires SMTPUTF8");
	return 0;
syntax:
	if (cmd->verb == SMTP_MAIL)
		return cmd_error(cmd, 501, "501 5.5.4 Syntax: MAIL FROM:<address>");
	return cmd_error(cmd, 501, "501 5.5.4 Syntax: RCPT TO:<address>");
}

/* Argument of HELO/EHLO: one domain or address literal, printable, at most 255 octets. */
static int parse_helo(struct smtp_cmd *cmd, const char *p, const char *end)
{
	const char *name = cmd->verb == SMTP_EHLO ? "EHLO" : "HELO";

	while (p < end && *p == ' ')
		p++;
	while (end > p && end[-1] == ' ')
		end--;
	if (p == end || end - p > 255 || memchr(p, ' ', (size_t)(end - p)) != NULL)
		return cmd_error(cmd, 501, "501 5.5.4 Syntax: %s hostname", name);
	cmd->arg = xstrndup(p, (size_t)(end - p));
	return 0;
}

int smtp_cmd_parse(const char *line, size_t len, bool smtputf8, struct smtp_cmd *cmd)
{
	const char *end = line + len, *p = line;
	const struct verb_name *v = NULL;
	size_t vlen;
	int rc;

	memset(cmd, 0, sizeof(*cmd));
	if (len > SMTP_CMD_MAX_PARAMS)
		return cmd_error(cmd, 500, "500 5.5.2 Error: line too long");
	if (!text_ok(line, len))
		return cmd_error(cmd, 500, "500 5.5.2 Error: bad characters in command");
	while (p < end && *p != ' ')
		p++;
	vlen = (size_t)(p - line);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (kw_is(line, vlen, verbs[i].name))
			v = &verbs[i];
	if (v == NULL)
		return cmd_error(cmd, 500, "500 5.5.2 Error: command not recognized");
	if (v->verb < 0)
		return cmd_error(cmd, 502, "502 5.5.1 Error: command not implemented");
	cmd->verb = (enum smtp_verb)v->verb;
	if (len > SMTP_CMD_MAX && cmd->verb != SMTP_MAIL && cmd->verb != SMTP_RCPT)
		return cmd_error(cmd, 500, "500 5.5.2 Error: line too long");
	switch (cmd->verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		rc = parse_helo(cmd, p, end);
		break;
	case SMTP_MAIL:
	case SMTP_RCPT:
		rc = parse_mail_rcpt(cmd, p, end, smtputf8);
		break;
	case SMTP_DATA:
	case SMTP_RSET:
	case SMTP_QUIT:
	case SMTP_STARTTLS:
		while (p < end && *p == ' ')
			p++;
		rc = p == end ? 0 : cmd_error(cmd, 501, "501 5.5.4 Syntax: %s", v->name);
		break;
	case SMTP_VRFY:
		while (p < end && *p == ' ')
			p++;
		if (p == end) {
			rc = cmd_error(cmd, 501, "501 5.5.4 Syntax: VRFY address");
			break;
		}
		cmd->arg = xstrndup(p, (size_t)(end - p));
		rc = 0;
		break;
	default:	/* NOOP, HELP: argument optional and ignored */
		while (p < end && *p == ' ')
			p++;
		if (p < end)
			cmd->arg = xstrndup(p, (size_t)(end - p));
		rc = 0;
		break;
	}
	if (rc) {
		char error[sizeof(cmd->error)];
		memcpy(error, cmd->error, sizeof(error));
		smtp_cmd_free(cmd);
		memcpy(cmd->error, error, sizeof(error));
	}
	return rc;
}

void smtp_cmd_free(struct smtp_cmd *cmd)
{
	free(cmd->arg);
	free(cmd->path);
	free(cmd->envid);
	free(cmd->orcpt);
	memset(cmd, 0, sizeof(*cmd));
}
