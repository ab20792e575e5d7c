/*
 * imap_utf7.c - modified UTF-7 mailbox names: printable ASCII stands for itself ("&" is
 * "&-"), anything else is UTF-16 in base64 with "," for "/" between "&" and "-".
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_utf7.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Next code point of UTF-8 at s[*i]; -1 when invalid. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	int n;
	int32_t cp, min;

	if (c < 0x80) {
		(*i)++;
		return c;
	}
	if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; min = 0x80; }
	else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; min = 0x800; }
	else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; min = 0x10000; }
	else return -1;
	if (len - *i <= (size_t)n)
		return -1;
	for (int k = 1; k <= n; k++) {
		if ((s[*i + (size_t)k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + (size_t)k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += (size_t)n + 1;
	return cp;
}

static void flush_b64(struct buf *out, const uint16_t *u, size_t n)
{
	uint32_t acc = 0;
	int bits = 0;

	buf_add(out, "&", 1);
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 16) | u[i];
		bits += 16;
		while (bits >= 6) {
			bits -= 6;
			buf_add(out, &b64[(acc >> bits) & 0x3f], 1);
		}
	}
	if (bits > 0)
		buf_add(out, &b64[(acc << (6 - bits)) & 0x3f], 1);
	buf_add(out, "-", 1);
}

char *imap_utf7_encode(const char *utf8, size_t len)
{
	const unsigned char *s = (const unsigned char *)utf8;
	struct buf out;
	uint16_t u[IMAP_NAME_MAX * 2];
	size_t nu = 0, i = 0;

	if (len > IMAP_NAME_MAX)
		return NULL;
	buf_init(&out, 0);
	while (i < len) {
		int32_t cp = utf8_next(s, len, &i);

		if (cp < 0) {
			buf_free(&out);
			return NULL;
		}
		if (cp >= 0x20 && cp <= 0x7e) {
			if (nu > 0) {
				flush_b64(&out, u, nu);
				nu = 0;
			}
			buf_add(&out, cp == '&' ? "&-" : (const char *)&s[i - 1], cp == '&' ? 2 : 1);
			continue;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			u[nu++] = (uint16_t)(0xd800 | (cp >> 10));
			u[nu++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
		} else {
			u[nu++] = (uint16_t)cp;
		}
	}
	if (nu > 0)
		flush_b64(&out, u, nu);
	return buf_release(&out, NULL);
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

static void put_utf8(struct buf *out, uint32_t cp)
{
	char t[4];
	size_t n;

	if (cp < 0x80) { t[0] = (char)cp; n = 1; }
	else if (cp < 0x800) { t[0] = (char)(0xc0 | (cp >> 6)); t[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
	else if (cp < 0x10000) {
		t[0] = (char)(0xe0 | (cp >> 12)); t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		t[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
	} else {
		t[0] = (char)(0xf0 | (cp >> 18)); t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		t[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); t[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
	}
	buf_add(out, t, n);
}

/* Decode the base64 run s[0..n) (between '&' and '-') as UTF-16 into out. */
static bool decode_run(struct buf *out, const char *s, size_t n)
{
	uint32_t acc = 0, hi = 0;
	int bits = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val(s[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 16) {
			uint32_t u;

			bits -= 16;
			u = (acc >> bits) & 0xffff;
			if (hi != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					return false;
				put_utf8(out, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
				hi = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				hi = u;
			} else if (u >= 0xdc00 && u <= 0xdfff) {
				return false;
			} else if (u >= 0x20 && u <= 0x7e) {
				return false;	/* printable ASCII must stand for itself */
			} else {
				put_utf8(out, u);
			}
		}
	}
	/* leftover bits must be zero padding of fewer than 6 bits */
	return hi == 0 && bits < 6 && (acc & ((1u << bits) - 1)) == 0;
}

char *imap_utf7_decode(const char *s, size_t len)
{
	struct buf out;
	size_t i = 0;

	if (len > IMAP_NAME_MAX)
		return NULL;
	buf_init(&out, 0);
	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e)
			goto bad;
		if (c != '&') {
			buf_add(&out, &s[i++], 1);
			continue;
		}
		const char *dash = memchr(s + i + 1, '-', len - i - 1);

		if (dash == NULL)
			goto bad;
		if (dash == s + i + 1)
			buf_add(&out, "&", 1);
		else if (!decode_run(&out, s + i + 1, (size_t)(dash - (s + i + 1))))
			goto bad;
		i = (size_t)(dash - s) + 1;
	}
	return buf_release(&out, NULL);
bad:
	buf_free(&out);
	return NULL;
}
