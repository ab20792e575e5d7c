/*
 * relay_sts.c - the pure parts of MTA-STS (RFC 8461): the "_mta-sts" TXT record (3.1), the
 * policy text (3.2) and MX host matching (4.1). Everything here reads outside input, so
 * every length is bounded and nothing is trusted to be NUL-terminated except where stated.
 */
#include "relay_sts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xmalloc.h"

static bool sts_id_valid(const char *s, size_t n)
{
	if (n == 0 || n > STS_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]))
			return false;
	return true;
}

/* RFC 8461 3.1: "v=STSv1" first, then "; " separated fields, id required, others ignored. */
enum sts_txt_result sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1])
{
	const char *p = txt;
	bool have_id = false;

	id[0] = '\0';
	if (strncmp(p, "v=STSv1", 7) != 0 || (p[7] != '\0' && p[7] != ';' && p[7] != ' ' &&
					      p[7] != '\t'))
		return STS_TXT_NONE;
	p += 7;
	while (*p != '\0') {
		const char *k, *v, *e;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (*p != ';')
			return STS_TXT_INVALID;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;		/* a trailing ";" is allowed */
		k = p;
		while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')
			p++;
		if (p == k || *p != '=')
			return STS_TXT_INVALID;
		v = ++p;
		while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		e = p;
		if ((size_t)(v - k) == 3 && strncmp(k, "id=", 3) == 0 && !have_id) {
			if (!sts_id_valid(v, (size_t)(e - v)))
				return STS_TXT_INVALID;
			memcpy(id, v, (size_t)(e - v));
			id[e - v] = '\0';
			have_id = true;
		}
	}
	return have_id ? STS_TXT_OK : STS_TXT_INVALID;
}

enum sts_txt_result sts_txt_set(const char *const *txts, size_t n, char id[STS_ID_MAX + 1])
{
	enum sts_txt_result res = STS_TXT_NONE;
	char one[STS_ID_MAX + 1];

	id[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		enum sts_txt_result r = sts_txt_parse(txts[i], one);

		if (r == STS_TXT_NONE)
			continue;
		if (res != STS_TXT_NONE) {	/* more than one STSv1 record: no policy */
			id[0] = '\0';
			return STS_TXT_INVALID;
		}
		res = r;
		if (r == STS_TXT_OK)
			memcpy(id, one, sizeof(one));
	}
	return res;
}

void sts_policy_clear(struct sts_policy *p)
{
	for (size_t i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	free(p->text);
	memset(p, 0, sizeof(*p));
}

void sts_policy_copy(struct sts_policy *dst, const struct sts_policy *src)
{
	*dst = *src;
	dst->mx = xcalloc(src->nmx ? src->nmx : 1, sizeof(char *));
	for (size_t i = 0; i < src->nmx; i++)
		dst->mx[i] = xstrdup(src->mx[i]);
	dst->text = src->text ? xstrdup(src->text) : NULL;
}

bool sts_content_type_ok(const char *ct)
{
	return ct != NULL && strncasecmp(ct, "text/plain", 10) == 0 &&
	       (ct[10] == '\0' || ct[10] == ';' || ct[10] == ' ');
}

bool sts_reason_text(const char *reason)
{
	return reason != NULL && strncmp(reason, STS_REASON_PREFIX,
					 sizeof(STS_REASON_PREFIX) - 1) == 0;
}

const char *sts_mode_name(enum sts_mode m)
{
	return m == STS_MODE_ENFORCE ? "enforce" : m == STS_MODE_TESTING ? "testing" : "none";
}

bool sts_mode_parse(const char *s, enum sts_mode *m)
{
	if (strcmp(s, "enforce") == 0)
		*m = STS_MODE_ENFORCE;
	else if (strcmp(s, "testing") == 0)
		*m = STS_MODE_TESTING;
	else if (strcmp(s, "none") == 0)
		*m = STS_MODE_NONE;
	else
		return false;
	return true;
}

/* An mx value: a domain name with an optional "*." in front (lowercased in place). */
static bool sts_mx_valid(char *v)
{
	char *s = v;
	size_t n = strlen(v), label = 0;

	if (n == 0 || n > STS_MX_LEN)
		return false;
	if (s[0] == '*') {
		if (s[1] != '.')
			return false;
		s += 2;
	}
	if (*s == '\0' || *s == '.')
		return false;
	for (; *s != '\0'; s++) {
		*s = (char)tolower((unsigned char)*s);
		if (*s == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*s) || *s == '-' || *s == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	if (v[n - 1] == '.')
		v[n - 1] = '\0';
	return true;
}

struct sts_seen {
	bool version, mode, max_age;
};

static bool sts_field(struct sts_policy *p, struct sts_seen *seen, const char *k, char *v,
		      char *err, size_t errlen)
{
	if (strcmp(k, "version") == 0) {
		if (seen->version)
			return true;	/* only the first occurrence counts */
		seen->version = true;
		if (strcmp(v, "STSv1") != 0) {
			snprintf(err, errlen, "version is not STSv1");
			return false;
		}
	} else if (strcmp(k, "mode") == 0) {
		if (seen->mode)
			return true;
		seen->mode = true;
		if (!sts_mode_parse(v, &p->mode)) {
			snprintf(err, errlen, "unknown mode");
			return false;
		}
	} else if (strcmp(k, "max_age") == 0) {
		char *end;
		unsigned long long a;

		if (seen->max_age)
			return true;
		seen->max_age = true;
		if (!isdigit((unsigned char)v[0]) || strlen(v) > 10 ||
		    (a = strtoull(v, &end, 10), *end != '\0') || a > STS_MAX_AGE_MAX) {
			snprintf(err, errlen, "bad max_age");
			return false;
		}
		p->max_age = (int64_t)a;
	} else if (strcmp(k, "mx") == 0) {
		if (!sts_mx_valid(v)) {
			snprintf(err, errlen, "bad mx pattern");
			return false;
		}
		if (p->nmx >= STS_MX_MAX) {
			snprintf(err, errlen, "too many mx patterns");
			return false;
		}
		p->mx = xreallocarray(p->mx, p->nmx + 1, sizeof(char *));
		p->mx[p->nmx++] = xstrdup(v);
	}
	return true;	/* other fields are extensions: ignored (RFC 8461 3.2) */
}

/* One line (NUL-terminated, no line end): "key:" WSP* value WSP*. */
static bool sts_line(struct sts_policy *p, struct sts_seen *seen, char *l, char *err,
		     size_t errlen)
{
	char *colon = strchr(l, ':'), *v, *e;

	if (colon == NULL || colon == l) {
		snprintf(err, errlen, "line without a field name");
		return false;
	}
	*colon = '\0';
	for (char *k = l; *k != '\0'; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-' && *k != '.') {
			snprintf(err, errlen, "bad field name");
			return false;
		}
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return sts_field(p, seen, l, v, err, errlen);
}

bool sts_policy_parse(const char *body, size_t len, struct sts_policy *p, char *err,
		      size_t errlen)
{
	struct sts_seen seen = { false, false, false };
	char *buf;
	size_t st = 0;
	bool ok = true;

	memset(p, 0, sizeof(*p));
	if (len > STS_POLICY_MAX) {
		snprintf(err, errlen, "policy larger than %d bytes", STS_POLICY_MAX);
		return false;
	}
	if (memchr(body, '\0', len) != NULL) {
		snprintf(err, errlen, "NUL byte in the policy");
		return false;
	}
	buf = xmalloc(len + 1);
	memcpy(buf, body, len);
	buf[len] = '\0';
	for (size_t i = 0; ok && i <= len; i++) {
		if (i < len && buf[i] != '\n')
			continue;
		buf[i] = '\0';
		if (i > st && buf[i - 1] == '\r')
			buf[i - 1] = '\0';
		if (buf[st] != '\0')	/* empty lines (the last one, CRLF CRLF) are skipped */
			ok = sts_line(p, &seen, buf + st, err, errlen);
		st = i + 1;
	}
	free(buf);
	if (ok && (!seen.version || !seen.mode || !seen.max_age)) {
		snprintf(err, errlen, "%s missing", !seen.version ? "version" :
			 !seen.mode ? "mode" : "max_age");
		ok = false;
	}
	if (ok && p->mode != STS_MODE_NONE && p->nmx == 0) {
		snprintf(err, errlen, "no mx pattern");
		ok = false;
	}
	if (!ok) {
		sts_policy_clear(p);
		return false;
	}
	p->text = xmalloc(len + 1);
	memcpy(p->text, body, len);
	p->text[len] = '\0';
	return true;
}

/* host without a trailing dot, its length in *n. */
static const char *sts_trim(const char *s, size_t *n)
{
	*n = strlen(s);
	if (*n > 0 && s[*n - 1] == '.')
		(*n)--;
	return s;
}

bool sts_mx_match(const char *pattern, const char *host)
{
	size_t pn, hn;
	const char *p = sts_trim(pattern, &pn), *h = sts_trim(host, &hn);

	if (pn == 0 || hn == 0)
		return false;
	if (pn >= 2 && p[0] == '*' && p[1] == '.') {
		const char *dot = memchr(h, '.', hn);
		size_t rest;

		/* exactly one label, not empty, in front of the suffix */
		if (dot == NULL || dot == h)
			return false;
		rest = hn - (size_t)(dot + 1 - h);
		return rest == pn - 2 && rest > 0 && strncasecmp(dot + 1, p + 2, rest) == 0;
	}
	return pn == hn && strncasecmp(p, h, hn) == 0;
}

bool sts_policy_match(const struct sts_policy *p, const char *host)
{
	for (size_t i = 0; i < p->nmx; i++)
		if (sts_mx_match(p->mx[i], host))
			return true;
	return false;
}
