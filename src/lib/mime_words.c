/*
 * mime_words.c - RFC 2047 encoded words of a header value decoded into UTF-8 (see
 * mime_words.h). Used to show the subjects of held messages; outside input throughout, so
 * every length is bounded and anything that does not decode cleanly stays as written.
 */
#include "mime_words.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#define MW_MAX_CHARSET 40

/* One encoded word as written: =?charset?E?text?= */
struct mw_word {
	char charset[MW_MAX_CHARSET + 1];	/* without an RFC 2231 "*language" */
	char enc;				/* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t len;				/* the whole word */
};

/* The run of adjacent words of one charset not yet converted. */
struct mw_dec {
	struct buf out;
	bool full;		/* out reached max_out: the rest is dropped */
	bool run;
	const char *run_start, *run_end;	/* the run as written */
	char charset[MW_MAX_CHARSET + 1];
	struct buf bytes;	/* the run's decoded bytes, in charset */
};

int mime_words_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* The length of the well-formed character at s[0..n), or 0. */
static size_t mw_char_len(const unsigned char *s, size_t n)
{
	size_t k = s[0] < 0x80 ? 1 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;

	if (k > n)
		k = n;
	return mime_words_utf8_valid(s, k) ? k : 0;
}

void mime_words_utf8_scrub(char *s)
{
	size_t n = strlen(s), i = 0;

	while (i < n) {
		size_t k = mw_char_len((unsigned char *)s + i, n - i);

		if (k == 0) {
			s[i] = '?';
			k = 1;
		}
		i += k;
	}
}

/* Append to the output; past max_out cut at a character boundary and stop for good. */
static void mw_out(struct mw_dec *d, const char *p, size_t n)
{
	size_t room = d->out.max - d->out.len;

	if (d->full)
		return;
	if (n > room) {
		n = room;
		while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
			n--;
		d->full = true;
	}
	if (buf_add(&d->out, p, n) < 0)
		d->full = true;
}

static void mw_out_cp(struct mw_dec *d, uint32_t cp)
{
	char u[3];

	if (cp < 0x80) {
		u[0] = (char)cp;
		mw_out(d, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		mw_out(d, u, 2);
	} else {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		mw_out(d, u, 3);
	}
}

/* ISO-8859-15 differs from ISO-8859-1 in eight places. */
static uint32_t mw_latin9(unsigned char c)
{
	switch (c) {
	case 0xa4: return 0x20ac;
	case 0xa6: return 0x0160;
	case 0xa8: return 0x0161;
	case 0xb4: return 0x017d;
	case 0xb8: return 0x017e;
	case 0xbc: return 0x0152;
	case 0xbd: return 0x0153;
	case 0xbe: return 0x0178;
	default: return c;
	}
}

static bool mw_is(const char *cs, const char *const *names)
{
	for (; *names; names++)
		if (strcasecmp(cs, *names) == 0)
			return true;
	return false;
}

/* Other charsets through iconv, into a buffer at most 4 times the input (UTF-8's widest
 * per input byte); false when the charset is unknown or the bytes are not valid in it. */
static bool mw_iconv(struct mw_dec *d, const char *cs, const char *p, size_t n)
{
	iconv_t cd = iconv_open("UTF-8", cs);
	size_t cap = 4 * n + 16, inleft = n, outleft = cap;
	char *outbuf = xmalloc(cap), *o = outbuf, *in = (char *)p;
	bool ok;

	if (cd == (iconv_t)-1) {
		free(outbuf);
		return false;
	}
	ok = iconv(cd, &in, &inleft, &o, &outleft) != (size_t)-1 &&
	     iconv(cd, NULL, NULL, &o, &outleft) != (size_t)-1 &&
	     mime_words_utf8_valid((unsigned char *)outbuf, (size_t)(o - outbuf));
	iconv_close(cd);
	if (ok)
		mw_out(d, outbuf, (size_t)(o - outbuf));
	free(outbuf);
	return ok;
}

/* The run's bytes in its charset, as UTF-8; false (nothing written) when they do not
 * convert. */
static bool mw_convert(struct mw_dec *d, const char *cs, const unsigned char *p, size_t n)
{
	static const char *const utf8[] = { "utf-8", "utf8", NULL };
	static const char *const ascii[] = { "us-ascii", "ascii", NULL };
	static const char *const latin1[] = { "iso-8859-1", "iso8859-1", "latin1", NULL };
	static const char *const latin9[] = { "iso-8859-15", "iso8859-15", "latin9", NULL };

	if (mw_is(cs, utf8)) {
		if (!mime_words_utf8_valid(p, n))
			return false;
		mw_out(d, (const char *)p, n);
	} else if (mw_is(cs, ascii)) {
		for (size_t i = 0; i < n; i++)
			if (p[i] >= 0x80)
				return false;
		mw_out(d, (const char *)p, n);
	} else if (mw_is(cs, latin1) || mw_is(cs, latin9)) {
		bool nine = mw_is(cs, latin9);

		for (size_t i = 0; i < n; i++)
			mw_out_cp(d, nine ? mw_latin9(p[i]) : p[i]);
	} else {
		return mw_iconv(d, cs, (const char *)p, n);
	}
	return true;
}

/* Convert the pending run, or copy it as written when it does not convert (false). */
static bool mw_flush(struct mw_dec *d)
{
	bool ok = true;

	if (!d->run)
		return true;
	if (!mw_convert(d, d->charset, (const unsigned char *)d->bytes.data, d->bytes.len)) {
		mw_out(d, d->run_start, (size_t)(d->run_end - d->run_start));
		ok = false;
	}
	d->run = false;
	buf_reset(&d->bytes);
	return ok;
}

/* Whether p[0..n) starts with a well-formed encoded word; fills w. */
static bool mw_parse(const char *p, size_t n, struct mw_word *w)
{
	size_t i = 2, cs_start = 2, cs_len;

	if (n > MIME_WORDS_MAX_WORD)
		n = MIME_WORDS_MAX_WORD;
	if (n < 8 || p[0] != '=' || p[1] != '?')
		return false;
	while (i < n && p[i] != '?' && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
		i++;
	if (i >= n || p[i] != '?')
		return false;
	cs_len = i - cs_start;
	/* RFC 2231: charset*language */
	const char *star = memchr(p + cs_start, '*', cs_len);
	if (star != NULL)
		cs_len = (size_t)(star - (p + cs_start));
	if (cs_len == 0 || cs_len > MW_MAX_CHARSET)
		return false;
	for (size_t k = 0; k < cs_len; k++) {
		char c = p[cs_start + k];

		/* a name iconv takes as a plain charset: no "//" suffixes, no paths */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':' || c == '+'))
			return false;
	}
	memcpy(w->charset, p + cs_start, cs_len);
	w->charset[cs_len] = '\0';
	if (i + 3 >= n || (p[i + 1] != 'B' && p[i + 1] != 'b' && p[i + 1] != 'Q' &&
			   p[i + 1] != 'q') || p[i + 2] != '?')
		return false;
	w->enc = (p[i + 1] == 'b' || p[i + 1] == 'B') ? 'B' : 'Q';
	i += 3;
	w->text = p + i;
	while (i + 1 < n && !(p[i] == '?' && p[i + 1] == '=')) {
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f || p[i] == '?')
			return false;
		i++;
	}
	if (i + 1 >= n)
		return false;
	w->text_len = (size_t)(p + i - w->text);
	w->len = i + 2;
	return true;
}

static int mw_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int mw_b64(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The word's text decoded into out (appended); false when it is not valid B or Q. */
static bool mw_decode_text(const struct mw_word *w, struct buf *out)
{
	const char *t = w->text;
	size_t n = w->text_len;

	if (w->enc == 'Q') {
		for (size_t i = 0; i < n; i++) {
			char c = t[i];

			if (c == '_') {
				c = ' ';
			} else if (c == '=') {
				if (i + 2 >= n)
					return false;
				int hi = mw_hex(t[i + 1]), lo = mw_hex(t[i + 2]);

				if (hi < 0 || lo < 0)
					return false;
				c = (char)(hi << 4 | lo);
				i += 2;
			}
			if (buf_add(out, &c, 1) < 0)
				return false;
		}
		return true;
	}
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t pad = 0, i;

	for (i = 0; i < n && t[i] != '='; i++) {
		int v = mw_b64(t[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			char c = (char)((acc >> bits) & 0xff);

			if (buf_add(out, &c, 1) < 0)
				return false;
		}
	}
	for (; i < n; i++, pad++)
		if (t[i] != '=')
			return false;
	/* leftover bits must be the zero fill of a whole last group; padding may be left out */
	return bits < 6 && pad <= 2 && (pad == 0 || (n % 4) == 0) && (n - pad) % 4 != 1;
}

/* At an encoded word at p (already parsed as w): join it to the run or start a new one. */
static bool mw_take_word(struct mw_dec *d, const char *p, const struct mw_word *w)
{
	struct buf tmp;
	bool ok;

	buf_init(&tmp, MIME_WORDS_MAX_WORD);
	ok = mw_decode_text(w, &tmp);
	if (ok) {
		if (d->run && strcasecmp(d->charset, w->charset) == 0 &&
		    buf_add(&d->bytes, tmp.data, tmp.len) == 0) {
			d->run_end = p + w->len;
		} else {
			/* the white space after a run that stayed as written stays too; after
			 * a decoded one it goes, unless this run stays as written as well */
			const char *gap = d->run ? d->run_end : p;

			if (!mw_flush(d)) {
				mw_out(d, gap, (size_t)(p - gap));
				gap = p;
			}
			d->run = true;
			d->run_start = gap;
			d->run_end = p + w->len;
			memcpy(d->charset, w->charset, sizeof(d->charset));
			if (buf_add(&d->bytes, tmp.data, tmp.len) < 0)
				fatalx("mime_words: one word outgrew its own bound");
		}
	}
	buf_free(&tmp);
	return ok;
}

char *mime_words_decode(const char *in, size_t len, size_t max_out)
{
	struct mw_dec d = { 0 };
	struct mw_word w;
	size_t i = 0;

	if (len > MIME_WORDS_MAX_IN)
		len = MIME_WORDS_MAX_IN;
	buf_init(&d.out, max_out);
	buf_init(&d.bytes, MIME_WORDS_MAX_IN);
	while (i < len && !d.full) {
		if (d.run) {
			/* white space between two encoded words is dropped (RFC 2047, 6.2) */
			size_t j = i;

			while (j < len && (in[j] == ' ' || in[j] == '\t' || in[j] == '\r' ||
					   in[j] == '\n'))
				j++;
			if (j < len && mw_parse(in + j, len - j, &w) && mw_take_word(&d, in + j, &w)) {
				i = j + w.len;
				continue;
			}
			mw_flush(&d);
		}
		if (in[i] == '=' && mw_parse(in + i, len - i, &w) && mw_take_word(&d, in + i, &w)) {
			i += w.len;
			continue;
		}
		/* a character at a time, so that a cut never splits one */
		size_t k = 1;

		while (i + k < len && k < 4 && ((unsigned char)in[i + k] & 0xc0) == 0x80)
			k++;
		mw_out(&d, in + i, k);
		i += k;
	}
	mw_flush(&d);
	buf_free(&d.bytes);
	char *s = xstrndup(d.out.data ? d.out.data : "", d.out.len);
	buf_free(&d.out);
	return s;
}
