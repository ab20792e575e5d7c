/*
 * strutil.c - small parsers and string helpers; see strutil.h.
 */
#include "strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <idn2.h>

#include "log.h"
#include "xmalloc.h"

/* Parse digits followed by an optional one-letter unit from units/mults. */
static bool parse_scaled(const char *s, const char *units, const uint64_t *mults, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return false;
	if (*end != '\0') {
		const char *u = strchr(units, tolower((unsigned char)*end));
		if (u == NULL || end[1] != '\0')
			return false;
		mult = mults[u - units];
	}
	if (v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

bool parse_duration(const char *s, int64_t *seconds)
{
	static const uint64_t mults[] = { 1, 60, 3600, 86400, 604800 };
	uint64_t v;

	if (!parse_scaled(s, "smhdw", mults, &v) || v > INT64_MAX)
		return false;
	*seconds = (int64_t)v;
	return true;
}

bool parse_size(const char *s, uint64_t *bytes)
{
	static const uint64_t mults[] = { 1, 1024, 1024 * 1024, 1024 * 1024 * 1024 };

	return parse_scaled(s, "bkmg", mults, bytes);
}

bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

bool parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const uint64_t one[] = { 1 };
	uint64_t v;

	if (!parse_scaled(s, "", one, &v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

void format_duration(int64_t seconds, char *buf, size_t len)
{
	static const struct { int64_t secs; char unit; } units[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	size_t off = 0;

	if (seconds <= 0) {
		snprintf(buf, len, "0s");
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < 4 && seconds > 0; i++) {
		if (seconds < units[i].secs)
			continue;
		int n = snprintf(buf + off, len - off, "%lld%c",
				 (long long)(seconds / units[i].secs), units[i].unit);
		if (n < 0 || (size_t)n >= len - off)
			return;
		off += (size_t)n;
		seconds %= units[i].secs;
	}
}

char *str_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

char *str_lower(char *s)
{
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

bool str_has_prefix_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

bool addr_valid(const char *s)
{
	const char *at = strrchr(s, '@');
	size_t len = strlen(s);

	if (at == NULL || at == s || at[1] == '\0' || len > 254 || at - s > 64)
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
	}
	for (const char *p = at + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c != '.' && c != '-' && !isalnum(c) && c < 0x80)
			return false;
	}
	return at[1] != '.' && s[len - 1] != '.';
}

char *addr_canonical(const char *s)
{
	char *c = xstrdup(s);
	char *at = strrchr(c, '@');

	if (at)
		str_lower(at + 1);
	return c;
}

const char *addr_domain(const char *s)
{
	const char *at = strrchr(s, '@');

	return at ? at + 1 : NULL;
}

void random_id(char out[17])
{
	unsigned char raw[8];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		fatal("getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02X", raw[i]);
}

int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void format_date(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "never");
		return;
	}
	strftime(buf, len, "%Y-%m-%d", &tm);
}

bool hostname_valid(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

char *domain_to_ascii(const char *name)
{
	size_t len = strlen(name);
	char *in, *out = NULL;

	if (len == 0 || len > 1024)
		return NULL;
	in = xstrdup(name);
	if (in[len - 1] == '.')
		in[len - 1] = '\0';
	if (idn2_to_ascii_8z(in, &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
		out = NULL;
	free(in);
	if (out != NULL && !hostname_valid(str_lower(out))) {
		idn2_free(out);
		out = NULL;
	}
	if (out != NULL) {	/* hand back memory of our own allocator */
		char *copy = xstrdup(out);

		idn2_free(out);
		out = copy;
	}
	return out;
}

void hex_encode(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The next comma-separated item of *p, blanks trimmed (*len bytes at the result); NULL at
 * the end. Advances *p past the item's comma. */
static const char *str_list_next(const char **p, size_t *len)
{
	const char *item = *p, *end;

	if (item == NULL || *item == '\0')
		return NULL;
	end = strchr(item, ',');
	*len = end ? (size_t)(end - item) : strlen(item);
	*p = end ? end + 1 : NULL;
	while (*len && (*item == ' ' || *item == '\t')) {
		item++;
		(*len)--;
	}
	while (*len && (item[*len - 1] == ' ' || item[*len - 1] == '\t'))
		(*len)--;
	return item;
}

bool str_list_has(const char *list, const char *item)
{
	size_t n = strlen(item), len;

	for (const char *p = list, *it; (it = str_list_next(&p, &len)) != NULL;)
		if (n > 0 && len == n && strncasecmp(it, item, n) == 0)
			return true;
	return false;
}

bool str_list_value(const char *list, const char *key, char *out, size_t outsz)
{
	size_t n = strlen(key), len;

	for (const char *p = list, *it; (it = str_list_next(&p, &len)) != NULL;) {
		const char *eq = memchr(it, '=', len);
		const char *v;
		size_t nl, vl;

		if (eq == NULL)
			continue;
		for (nl = (size_t)(eq - it); nl && (it[nl - 1] == ' ' || it[nl - 1] == '\t'); nl--)
			;
		if (nl != n || n == 0 || strncasecmp(it, key, n) != 0)
			continue;
		v = eq + 1;
		vl = len - (size_t)(eq - it) - 1;
		for (; vl && (*v == ' ' || *v == '\t'); v++)
			vl--;
		if (vl >= outsz)
			return false;
		memcpy(out, v, vl);
		out[vl] = '\0';
		return true;
	}
	return false;
}
