/*
 * ks_body.c - the keys in an answer from a source. Keyservers may return several armored
 * blocks, or one block or binary file holding several keys (a WKD file may hold one key per
 * user's device): the answer is cut into one candidate per primary key, and each goes through
 * keys_accept with the searched address as the only allowed one. Everything here parses
 * outside input: bounded, and fuzzed (tests/fuzz/fuzz_keysearch_body.c).
 */
#include "ks.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#define KS_ARMOR_BEGIN "-----BEGIN PGP PUBLIC KEY BLOCK-----"
#define KS_ARMOR_END "-----END PGP PUBLIC KEY BLOCK-----"
#define KS_TAG_SECRET_KEY 5
#define KS_TAG_PUBLIC_KEY 6

uint8_t *ks_base64_decode(const char *s, size_t len, size_t *outlen)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	uint8_t *out = xmalloc(len / 4 * 3 + 3);
	int n = 0, fin = 0;

	if (ctx == NULL)
		fatalx("out of memory");
	/* OpenSSL's decoder skips line breaks and white space and stops at the padding. */
	EVP_DecodeInit(ctx);
	if (len > INT_MAX || EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)s, (int)len) < 0 ||
	    EVP_DecodeFinal(ctx, out + n, &fin) < 0) {
		EVP_ENCODE_CTX_free(ctx);
		free(out);
		return NULL;
	}
	EVP_ENCODE_CTX_free(ctx);
	*outlen = (size_t)(n + fin);
	return out;
}

/* Find needle in data[0..len) (not NUL-terminated). */
static const uint8_t *ks_find(const uint8_t *data, size_t len, const char *needle)
{
	size_t nl = strlen(needle);

	return nl <= len ? memmem(data, len, needle, nl) : NULL;
}

/* Start of the base64 of an armored block: after the blank line that ends the headers. */
static const uint8_t *ks_armor_body(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *line = p;

	while (line < end) {
		const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
		const uint8_t *eol = nl ? nl : end;
		size_t n = (size_t)(eol - line);

		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			return nl ? nl + 1 : end;
		if (memchr(line, ':', n) == NULL)
			return line;	/* no headers and no blank line: tolerated */
		line = nl ? nl + 1 : end;
	}
	return end;
}

/* Cut the base64 before the "=XXXX" checksum line. */
static size_t ks_armor_b64_len(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q = p;

	while (q < end) {
		const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));

		if (*q == '=')
			return (size_t)(q - p);
		q = nl ? nl + 1 : end;
	}
	return (size_t)(end - p);
}

/*
 * Length of the OpenPGP packet at data (header included) and its tag; 0 when malformed or
 * truncated. Partial lengths are refused: no key packet uses them.
 */
static size_t ks_packet(const uint8_t *data, size_t len, int *tag)
{
	size_t hdr, body;

	if (len < 2 || !(data[0] & 0x80))
		return 0;
	if (data[0] & 0x40) {
		*tag = data[0] & 0x3f;
		if (data[1] < 192) {
			hdr = 2;
			body = data[1];
		} else if (data[1] < 224) {
			if (len < 3)
				return 0;
			hdr = 3;
			body = ((size_t)(data[1] - 192) << 8) + data[2] + 192;
		} else if (data[1] == 255) {
			if (len < 6)
				return 0;
			hdr = 6;
			body = (size_t)data[2] << 24 | (size_t)data[3] << 16 |
			       (size_t)data[4] << 8 | data[5];
		} else {
			return 0;
		}
	} else {
		static const size_t lensize[4] = { 1, 2, 4, 0 };
		size_t ls = lensize[data[0] & 3];

		*tag = (data[0] >> 2) & 0x0f;
		if (ls == 0)
			return len;	/* indeterminate: the rest */
		if (len < 1 + ls)
			return 0;
		hdr = 1 + ls;
		body = 0;
		for (size_t i = 0; i < ls; i++)
			body = body << 8 | data[1 + i];
	}
	if (body > len - hdr)
		return 0;
	return hdr + body;
}

static bool ks_chunk_add(struct ks_chunk **chunks, size_t *n, const uint8_t *data, size_t len)
{
	if (*n >= KS_MAX_KEYS_PER_BODY || len == 0)
		return false;
	*chunks = xreallocarray(*chunks, *n + 1, sizeof(**chunks));
	(*chunks)[*n].data = xmemdup(data, len);
	(*chunks)[*n].len = len;
	(*n)++;
	return true;
}

/* Cut binary OpenPGP data before each primary key; a malformed tail ends the last key. */
static void ks_split_binary(const uint8_t *data, size_t len, struct ks_chunk **chunks, size_t *n)
{
	size_t off = 0, start = 0;
	bool in_key = false;

	while (off < len) {
		int tag = 0;
		size_t plen = ks_packet(data + off, len - off, &tag);

		if (plen == 0)
			break;
		if (tag == KS_TAG_PUBLIC_KEY || tag == KS_TAG_SECRET_KEY) {
			if (in_key && !ks_chunk_add(chunks, n, data + start, off - start))
				return;
			start = off;
			in_key = true;
		}
		off += plen;
	}
	if (in_key)
		ks_chunk_add(chunks, n, data + start, off - start);
}

/* Binary, or DER: a certificate is handed over whole (keys_accept tells them apart). */
static bool ks_is_openpgp_binary(const uint8_t *data, size_t len)
{
	int tag = 0;

	return len >= 2 && ks_packet(data, len, &tag) > 0 &&
	       (tag == KS_TAG_PUBLIC_KEY || tag == KS_TAG_SECRET_KEY);
}

size_t ks_body_split(const uint8_t *data, size_t len, struct ks_chunk **chunks)
{
	const uint8_t *p = data, *end = data + len;
	size_t n = 0;

	*chunks = NULL;
	if (ks_find(data, len, KS_ARMOR_BEGIN) == NULL) {
		if (ks_is_openpgp_binary(data, len))
			ks_split_binary(data, len, chunks, &n);
		else
			ks_chunk_add(chunks, &n, data, len);
		return n;
	}
	while (p < end && n < KS_MAX_KEYS_PER_BODY) {
		const uint8_t *b = ks_find(p, (size_t)(end - p), KS_ARMOR_BEGIN), *body, *e;
		uint8_t *bin;
		size_t binlen;

		if (b == NULL)
			break;
		body = ks_armor_body(b + strlen(KS_ARMOR_BEGIN), end);
		e = ks_find(body, (size_t)(end - body), KS_ARMOR_END);
		if (e == NULL)
			break;	/* truncated block */
		bin = ks_base64_decode((const char *)body, ks_armor_b64_len(body, e), &binlen);
		if (bin != NULL)
			ks_split_binary(bin, binlen, chunks, &n);
		free(bin);
		p = e + strlen(KS_ARMOR_END);
	}
	return n;
}

void ks_chunks_free(struct ks_chunk *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].data);
	free(c);
}

bool ks_body_accept(const uint8_t *data, size_t len, const char *address, int64_t now,
		    enum ks_trust trust, const char *where, struct ks_outcome *o)
{
	char *allowed[1] = { (char *)address };
	struct keys_policy pol = { .now = now, .expiry_margin = 0, .max_record_size = 0 };
	struct keys_info info;
	struct ks_hit h;
	char *msg = NULL;
	enum keys_error e;

	memset(&info, 0, sizeof(info));
	e = keys_accept(data, len, allowed, 1, &pol, &info, &msg);
	if (e != KEYS_OK || info.ncopies == 0) {
		o->refused++;
		if (e == KEYS_ERR_NOT_A_KEY)
			o->garbage++;
		if (o->refusal == NULL)
			o->refusal = xstrdup(e != KEYS_OK ? keys_error_name(e) : "no-address");
		free(msg);
		keys_info_free(&info);
		return false;
	}
	memset(&h, 0, sizeof(h));
	h.kind = info.kind;
	memcpy(h.fingerprint, info.fingerprint, sizeof(h.fingerprint));
	memcpy(h.algorithm, info.algorithm, sizeof(h.algorithm));
	h.bits = info.bits;
	h.created = info.created;
	h.expires = info.expires;
	h.uid = info.copies[0].address;
	h.data = info.copies[0].data;
	h.len = info.copies[0].len;
	h.trust = trust;
	h.where = (char *)where;
	ks_outcome_add_hit(o, &h);
	keys_info_free(&info);
	free(msg);
	return true;
}

size_t ks_body_keys(const uint8_t *data, size_t len, const char *address, int64_t now,
		    enum ks_trust trust, const char *where, struct ks_outcome *o)
{
	struct ks_chunk *chunks;
	size_t n = ks_body_split(data, len, &chunks), accepted = 0;

	if (n == 0) {
		o->refused++;
		o->garbage++;
		if (o->refusal == NULL)
			o->refusal = xstrdup("not-a-key");
	}
	for (size_t i = 0; i < n; i++)
		if (ks_body_accept(chunks[i].data, chunks[i].len, address, now, trust, where, o))
			accepted++;
	ks_chunks_free(chunks, n);
	return accepted;
}

bool ks_outcome_all_garbage(const struct ks_outcome *o)
{
	return o->nhits == 0 && o->refused > 0 && o->garbage == o->refused;
}
