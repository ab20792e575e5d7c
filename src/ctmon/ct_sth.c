/*
 * ct_sth.c - parsing and signature checking of CT tree heads, proofs and entries:
 * RFC 6962 sections 3.5 and 4.3-4.6, and the Static CT API checkpoint (C2SP
 * static-ct-api, tlog-checkpoint and signed-note).
 *
 * A tree head is trusted only once its signature verifies with the key from the log
 * list; until then nothing in it is used. The same TreeHeadSignature input is signed in
 * both APIs, so one verifier serves both.
 */
#include <jansson.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_sth.h"
#include "log.h"
#include "xmalloc.h"

#define CT_TLS_HASH_SHA256 4
#define CT_TLS_SIG_RSA 1
#define CT_TLS_SIG_ECDSA 3
#define CT_SIG_MAX 4096		/* RSA-16384 would need 2 KB */
#define CT_NOTE_SIG_TYPE 0x05	/* RFC 6962 TreeHeadSignature, per signed-note */
#define CT_EM_DASH "\xe2\x80\x94 "
#define CT_EM_DASH_LEN 4

static int ct_fail(char **err, const char *msg)
{
	*err = xstrdup(msg);
	return -1;
}

static void ct_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t ct_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void ct_sth_tbs(uint64_t timestamp, uint64_t tree_size, const uint8_t root[CT_HASH_LEN],
		uint8_t out[CT_TBS_LEN])
{
	out[0] = 0;	/* version v1 */
	out[1] = 1;	/* signature_type tree_hash */
	ct_put64(out + 2, timestamp);
	ct_put64(out + 10, tree_size);
	memcpy(out + 18, root, CT_HASH_LEN);
}

/* The algorithm bytes must name what the key is: a mismatch is a forgery attempt. */
static const char *ct_ds_header(const struct ct_log *log, const uint8_t *ds, size_t ds_len)
{
	size_t n;

	if (ds_len < 4)
		return "the signature is truncated";
	if (ds[0] != CT_TLS_HASH_SHA256)
		return "the signature's hash algorithm is not SHA-256";
	if (ds[1] != (log->key_type == CT_KEY_RSA ? CT_TLS_SIG_RSA : CT_TLS_SIG_ECDSA))
		return "the signature's algorithm does not fit the log's key";
	n = (size_t)ds[2] << 8 | ds[3];
	if (n == 0 || n > ds_len - 4)
		return "the signature is truncated";
	if (n < ds_len - 4)
		return "the signature has bytes after its end";
	return NULL;
}

int ct_ds_verify(const struct ct_log *log, const uint8_t *ds, size_t ds_len,
		 const uint8_t *msg, size_t msg_len, char **err)
{
	const char *reason = ct_ds_header(log, ds, ds_len);
	EVP_MD_CTX *ctx;
	int ok;

	if (reason != NULL)
		return ct_fail(err, reason);
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return ct_fail(err, "out of memory verifying a signature");
	/* RSA keys default to PKCS#1 v1.5, which RFC 6962 logs use. */
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, log->key) == 1 &&
	     EVP_DigestVerify(ctx, ds + 4, ds_len - 4, msg, msg_len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return ct_fail(err, "the signature does not verify with the log's key");
	return 0;
}

/* Parse JSON text of at most max bytes into an object. */
static json_t *ct_json_object(const char *json, size_t len, size_t max, const char *what,
			      char **err)
{
	json_t *root;

	if (len > max) {
		*err = xasprintf("the %s response is too large", what);
		return NULL;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		*err = xasprintf("the %s response is not a JSON object", what);
		return NULL;
	}
	return root;
}

/* A base64 string member decoded into a new buffer of at most max bytes. */
static bool ct_json_b64(const json_t *o, const char *key, size_t max, uint8_t **out,
			size_t *len)
{
	const json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!json_is_string(v))
		return false;
	return ct_b64_decode(json_string_value(v), json_string_length(v), max, out, len);
}

/* A base64 string member that must decode to exactly one hash. */
static bool ct_json_hash(const json_t *v, uint8_t out[CT_HASH_LEN])
{
	uint8_t *buf = NULL;
	size_t n = 0;
	bool ok = json_is_string(v) &&
		  ct_b64_decode(json_string_value(v), json_string_length(v), CT_HASH_LEN, &buf,
				&n) && n == CT_HASH_LEN;

	if (ok)
		memcpy(out, buf, CT_HASH_LEN);
	free(buf);
	return ok;
}

static bool ct_json_u64(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

int ct_sth_parse(const char *json, size_t len, struct ct_sth *out, char **err)
{
	json_t *root;
	const char *reason = NULL;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	root = ct_json_object(json, len, CT_STH_MAX_BYTES, "get-sth", err);
	if (root == NULL)
		return -1;
	if (!ct_json_u64(root, "tree_size", &out->tree_size))
		reason = "the get-sth response lacks a tree_size";
	else if (!ct_json_u64(root, "timestamp", &out->timestamp))
		reason = "the get-sth response lacks a timestamp";
	else if (!ct_json_hash(json_object_get(root, "sha256_root_hash"), out->root_hash))
		reason = "the get-sth response's sha256_root_hash is not 32 bytes in base64";
	else if (!ct_json_b64(root, "tree_head_signature", CT_SIG_MAX, &out->signature,
			      &out->signature_len))
		reason = "the get-sth response's tree_head_signature is not base64";
	json_decref(root);
	if (reason != NULL) {
		ct_sth_clear(out);
		return ct_fail(err, reason);
	}
	return 0;
}

int ct_sth_verify(const struct ct_sth *sth, const struct ct_log *log, char **err)
{
	uint8_t tbs[CT_TBS_LEN];

	*err = NULL;
	ct_sth_tbs(sth->timestamp, sth->tree_size, sth->root_hash, tbs);
	return ct_ds_verify(log, sth->signature, sth->signature_len, tbs, sizeof(tbs), err);
}

void ct_sth_clear(struct ct_sth *sth)
{
	free(sth->signature);
	memset(sth, 0, sizeof(*sth));
}

/* The array key of root as at most CT_CONSISTENCY_MAX hashes; -1 with *err. */
static int ct_json_hashes(json_t *root, const char *key, const char *what,
			  struct ct_consistency *out, char **err)
{
	json_t *arr = json_object_get(root, key), *v;
	size_t i;

	if (!json_is_array(arr) || json_array_size(arr) > CT_CONSISTENCY_MAX) {
		*err = xasprintf("the %s response has no \"%s\" array of at most %d hashes", what,
				 key, CT_CONSISTENCY_MAX);
		return -1;
	}
	out->hashes = xcalloc(json_array_size(arr) + 1, CT_HASH_LEN);
	json_array_foreach(arr, i, v) {
		if (!ct_json_hash(v, out->hashes[i])) {
			ct_consistency_clear(out);
			*err = xasprintf("a hash of the %s response is not 32 bytes in base64", what);
			return -1;
		}
	}
	out->nhashes = json_array_size(arr);
	return 0;
}

int ct_consistency_parse(const char *json, size_t len, struct ct_consistency *out,
			 char **err)
{
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	root = ct_json_object(json, len, CT_STH_MAX_BYTES, "get-sth-consistency", err);
	if (root == NULL)
		return -1;
	rc = ct_json_hashes(root, "consistency", "get-sth-consistency", out, err);
	json_decref(root);
	return rc;
}

int ct_proof_parse(const char *json, size_t len, uint64_t *index, struct ct_consistency *out,
		   char **err)
{
	json_t *root, *idx;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	root = ct_json_object(json, len, CT_STH_MAX_BYTES, "get-proof-by-hash", err);
	if (root == NULL)
		return -1;
	idx = json_object_get(root, "leaf_index");
	if (!json_is_integer(idx) || json_integer_value(idx) < 0)
		ct_fail(err, "the get-proof-by-hash response has no leaf_index");
	else if ((rc = ct_json_hashes(root, "audit_path", "get-proof-by-hash", out, err)) == 0)
		*index = (uint64_t)json_integer_value(idx);
	json_decref(root);
	return rc;
}

void ct_consistency_clear(struct ct_consistency *c)
{
	free(c->hashes);
	memset(c, 0, sizeof(*c));
}

/* One entry object; *budget is what the decoded bytes may still take. */
static const char *ct_raw_entry_parse(const json_t *o, struct ct_raw_entry *e, size_t *budget)
{
	if (!json_is_object(o))
		return "an entry is not a JSON object";
	if (!ct_json_b64(o, "leaf_input", *budget, &e->leaf_input, &e->leaf_input_len))
		return "an entry's leaf_input is missing, not base64 or over the size bound";
	*budget -= e->leaf_input_len;
	if (!ct_json_b64(o, "extra_data", *budget, &e->extra_data, &e->extra_data_len))
		return "an entry's extra_data is missing, not base64 or over the size bound";
	*budget -= e->extra_data_len;
	return NULL;
}

/*
 * The fast reading of get-entries. A log's answer is megabytes of base64 in a fixed shape,
 * and a general JSON parser spent most of a round's CPU time copying and checking those
 * strings. This reader takes only that shape (whitespace allowed, the two keys in either
 * order, strings without escapes) and decodes the base64 in place; anything else, valid
 * JSON or not, is left to the full parser (ct_entries_parse_json), so what is accepted
 * and refused does not change (the fuzz target checks the two agree).
 */
struct ct_scan {
	const char *p, *end;
};

static void ct_scan_ws(struct ct_scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* The character c, after whitespace. */
static bool ct_scan_char(struct ct_scan *s, char c)
{
	ct_scan_ws(s);
	if (s->p >= s->end || *s->p != c)
		return false;
	s->p++;
	return true;
}

/* A string without escapes or control characters: its bytes in [*str, *str + *n). */
static bool ct_scan_string(struct ct_scan *s, const char **str, size_t *n)
{
	const char *q;

	if (!ct_scan_char(s, '"'))
		return false;
	for (q = s->p; q < s->end && *q != '"'; q++)
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return false;
	if (q >= s->end)
		return false;
	*str = s->p;
	*n = (size_t)(q - s->p);
	s->p = q + 1;
	return true;
}

/* "key": "base64" for key leaf_input or extra_data, into e (each at most once). */
static bool ct_scan_member(struct ct_scan *s, struct ct_raw_entry *e, size_t *budget)
{
	const char *k, *v;
	size_t kn, vn;
	uint8_t **dst;
	size_t *dlen;

	if (!ct_scan_string(s, &k, &kn) || !ct_scan_char(s, ':') || !ct_scan_string(s, &v, &vn))
		return false;
	if (kn == 10 && memcmp(k, "leaf_input", 10) == 0)
		dst = &e->leaf_input, dlen = &e->leaf_input_len;
	else if (kn == 10 && memcmp(k, "extra_data", 10) == 0)
		dst = &e->extra_data, dlen = &e->extra_data_len;
	else
		return false;
	if (*dst != NULL || !ct_b64_decode(v, vn, *budget, dst, dlen))
		return false;
	*budget -= *dlen;
	return true;
}

/* One {"leaf_input": ..., "extra_data": ...} object. */
static bool ct_scan_entry(struct ct_scan *s, struct ct_raw_entry *e, size_t *budget)
{
	return ct_scan_char(s, '{') && ct_scan_member(s, e, budget) && ct_scan_char(s, ',') &&
	       ct_scan_member(s, e, budget) && ct_scan_char(s, '}');
}

/* 0: read; -1: not this shape (out cleared: the full parser decides). */
static int ct_entries_scan(const char *json, size_t len, size_t max_bytes, struct ct_entries *out)
{
	struct ct_scan s = { json, json + len };
	const char *k;
	size_t kn, budget = max_bytes, cap = 0;

	if (!ct_scan_char(&s, '{') || !ct_scan_string(&s, &k, &kn) || kn != 7 ||
	    memcmp(k, "entries", 7) != 0 || !ct_scan_char(&s, ':') || !ct_scan_char(&s, '['))
		return -1;
	if (!ct_scan_char(&s, ']')) {
		do {
			if (out->nentries == CT_ENTRIES_MAX)
				goto not_this;
			if (out->nentries == cap) {
				cap = cap ? cap * 2 : 64;
				out->entries = xreallocarray(out->entries, cap, sizeof(*out->entries));
			}
			memset(&out->entries[out->nentries], 0, sizeof(*out->entries));
			if (!ct_scan_entry(&s, &out->entries[out->nentries++], &budget))
				goto not_this;
		} while (ct_scan_char(&s, ','));
		if (!ct_scan_char(&s, ']'))
			goto not_this;
	}
	if (!ct_scan_char(&s, '}'))
		goto not_this;
	ct_scan_ws(&s);
	if (s.p != s.end)
		goto not_this;
	if (out->entries == NULL)
		out->entries = xcalloc(1, sizeof(*out->entries));
	return 0;
not_this:
	ct_entries_clear(out);
	return -1;
}

int ct_entries_parse(const char *json, size_t len, size_t max_bytes, struct ct_entries *out,
		     char **err)
{
	size_t max_text = max_bytes > SIZE_MAX / 2 - 4096 ? SIZE_MAX : max_bytes * 2 + 4096;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (len <= max_text && ct_entries_scan(json, len, max_bytes, out) == 0)
		return 0;
	return ct_entries_parse_json(json, len, max_bytes, out, err);
}

int ct_entries_parse_json(const char *json, size_t len, size_t max_bytes,
			  struct ct_entries *out, char **err)
{
	json_t *root, *arr, *v;
	const char *reason = NULL;
	size_t i, budget = max_bytes, max_text;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	/* Base64 is 4/3 of the bytes; twice leaves room for JSON around it. */
	max_text = max_bytes > SIZE_MAX / 2 - 4096 ? SIZE_MAX : max_bytes * 2 + 4096;
	root = ct_json_object(json, len, max_text, "get-entries", err);
	if (root == NULL)
		return -1;
	arr = json_object_get(root, "entries");
	if (!json_is_array(arr) || json_array_size(arr) > CT_ENTRIES_MAX) {
		json_decref(root);
		return ct_fail(err, "the get-entries response has no \"entries\" array of at "
				    "most 1024 entries");
	}
	out->entries = xcalloc(json_array_size(arr) + 1, sizeof(*out->entries));
	json_array_foreach(arr, i, v) {
		out->nentries = i + 1;
		reason = ct_raw_entry_parse(v, &out->entries[i], &budget);
		if (reason != NULL)
			break;
	}
	json_decref(root);
	if (reason != NULL) {
		ct_entries_clear(out);
		return ct_fail(err, reason);
	}
	return 0;
}

void ct_entries_clear(struct ct_entries *e)
{
	for (size_t i = 0; i < e->nentries; i++) {
		free(e->entries[i].leaf_input);
		free(e->entries[i].extra_data);
	}
	free(e->entries);
	memset(e, 0, sizeof(*e));
}

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not valid. */
static size_t ct_utf8_len(const uint8_t *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* signed-note: valid UTF-8 with no control characters but newline. */
static bool ct_note_text_ok(const char *note, size_t len)
{
	const uint8_t *p = (const uint8_t *)note;

	for (size_t i = 0, n; i < len; i += n) {
		if ((p[i] < 0x20 && p[i] != '\n') || p[i] == 0x7f)
			return false;
		n = ct_utf8_len(p + i, len - i);
		if (n == 0)
			return false;
	}
	return true;
}

/* The next line of s[0..len) (without its newline); the text must end with one. */
static bool ct_next_line(const char *s, size_t len, size_t *pos, const char **line,
			 size_t *line_len)
{
	const char *nl;

	if (*pos >= len)
		return false;
	nl = memchr(s + *pos, '\n', len - *pos);
	if (nl == NULL)
		return false;
	*line = s + *pos;
	*line_len = (size_t)(nl - *line);
	*pos += *line_len + 1;
	return true;
}

/* tlog-checkpoint's tree size: ASCII decimal without leading zeros, fits 64 bits. */
static bool ct_parse_size(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* The checkpoint body: origin, size, root hash, then extension lines (counted). */
static const char *ct_checkpoint_body(const char *text, size_t len, struct ct_checkpoint *cp,
				      size_t *nextensions)
{
	const char *line;
	size_t n, pos = 0;
	uint8_t *root = NULL;

	if (!ct_next_line(text, len, &pos, &line, &n) || n == 0)
		return "the checkpoint has no origin line";
	cp->origin = xstrndup(line, n);
	if (!ct_next_line(text, len, &pos, &line, &n) ||
	    !ct_parse_size(line, n, &cp->sth.tree_size))
		return "the checkpoint's tree size is not a decimal number";
	if (!ct_next_line(text, len, &pos, &line, &n) ||
	    !ct_b64_decode(line, n, CT_HASH_LEN, &root, &n) || n != CT_HASH_LEN) {
		free(root);
		return "the checkpoint's root hash is not 32 bytes in base64";
	}
	memcpy(cp->sth.root_hash, root, CT_HASH_LEN);
	free(root);
	*nextensions = 0;
	while (ct_next_line(text, len, &pos, &line, &n)) {
		if (n == 0)
			return "the checkpoint has an empty extension line";
		(*nextensions)++;
	}
	return NULL;
}

/* A signature line "— name base64": the name and the decoded key ID and signature. */
static const char *ct_sig_line(const char *line, size_t len, const char **name,
			       size_t *name_len, uint8_t **blob, size_t *blob_len)
{
	const char *sp;

	if (len < CT_EM_DASH_LEN || memcmp(line, CT_EM_DASH, CT_EM_DASH_LEN) != 0)
		return "a note signature line does not start with an em dash and a space";
	line += CT_EM_DASH_LEN;
	len -= CT_EM_DASH_LEN;
	sp = memchr(line, ' ', len);
	if (sp == NULL || sp == line)
		return "a note signature line has no key name";
	*name = line;
	*name_len = (size_t)(sp - line);
	/* Key names have no plus; the spaces were split on, and controls checked before. */
	if (memchr(line, '+', *name_len) != NULL)
		return "a note signature key name contains a plus sign";
	/* Other signers may use post-quantum signatures of several kilobytes: the line is
	 * bounded by the note, and only the log's signature is held to its key's size. */
	if (!ct_b64_decode(sp + 1, len - *name_len - 1, len, blob, blob_len) ||
	    *blob_len < 5) {
		free(*blob);
		*blob = NULL;
		return "a note signature is not base64 of a key ID and a signature";
	}
	return NULL;
}

/* The RFC6962NoteSignature: timestamp, then a DigitallySigned TreeHeadSignature. */
static int ct_note_sig_verify(const uint8_t *sig, size_t len, const struct ct_log *log,
			      struct ct_sth *sth, char **err)
{
	uint8_t tbs[CT_TBS_LEN];
	char *why = NULL;
	uint64_t timestamp;

	if (len < 8 + 4)
		return ct_fail(err, "the log's checkpoint signature is truncated");
	timestamp = ct_get64(sig);
	ct_sth_tbs(timestamp, sth->tree_size, sth->root_hash, tbs);
	if (ct_ds_verify(log, sig + 8, len - 8, tbs, sizeof(tbs), &why) != 0) {
		*err = xasprintf("the log's checkpoint signature is bad: %s", why);
		free(why);
		return -1;
	}
	/* With several valid signatures by the log, the first one gives the tree head. */
	if (sth->signature == NULL) {
		sth->timestamp = timestamp;
		sth->signature = xmemdup(sig + 8, len - 8);
		sth->signature_len = len - 8;
	}
	return 0;
}

/* Verify the log's signature lines; others are ignored, as signed-note requires. */
static int ct_note_sigs(const char *sigs, size_t len, const struct ct_log *log,
			struct ct_checkpoint *cp, char **err)
{
	uint32_t want = ct_note_key_id(cp->origin, log->log_id);
	size_t pos = 0, line_len, name_len, blob_len, found = 0;
	const char *line, *name, *reason;
	uint8_t *blob = NULL;

	while (ct_next_line(sigs, len, &pos, &line, &line_len)) {
		if (++cp->nsignatures > CT_NOTE_MAX_SIGS)
			return ct_fail(err, "the checkpoint has more than 100 signatures");
		reason = ct_sig_line(line, line_len, &name, &name_len, &blob, &blob_len);
		if (reason != NULL)
			return ct_fail(err, reason);
		if (name_len == strlen(cp->origin) && memcmp(name, cp->origin, name_len) == 0 &&
		    ((uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
		     (uint32_t)blob[2] << 8 | blob[3]) == want) {
			/* A known key whose signature fails rejects the whole note. */
			if (ct_note_sig_verify(blob + 4, blob_len - 4, log, &cp->sth, err) != 0) {
				free(blob);
				return -1;
			}
			found++;
		}
		free(blob);
		blob = NULL;
	}
	if (found == 0)
		return ct_fail(err, "the checkpoint has no signature by the log");
	return 0;
}

/* Split a signed note at its last blank line into text (with its newline) and signatures. */
static bool ct_note_split(const char *note, size_t len, size_t *text_len)
{
	if (len < 3 || note[len - 1] != '\n')
		return false;
	for (size_t i = len - 2; i > 0; i--) {
		if (note[i] == '\n' && note[i - 1] == '\n') {
			*text_len = i;
			return i + 1 < len;
		}
	}
	return false;
}

static int ct_checkpoint_check(const char *note, size_t len, const struct ct_log *log,
			       struct ct_checkpoint *cp, char **err)
{
	size_t text_len, next;
	const char *reason;
	char *want;
	bool same;

	if (log->api != CT_API_STATIC || log->submission_url == NULL)
		return ct_fail(err, "the log is not a tiled log: it has no checkpoint");
	if (len > CT_NOTE_MAX_BYTES)
		return ct_fail(err, "the checkpoint is larger than 1 MiB");
	if (!ct_note_text_ok(note, len))
		return ct_fail(err, "the checkpoint is not UTF-8 text without control characters");
	if (!ct_note_split(note, len, &text_len))
		return ct_fail(err, "the checkpoint is not text, a blank line and signatures");
	reason = ct_checkpoint_body(note, text_len, cp, &next);
	if (reason != NULL)
		return ct_fail(err, reason);
	want = ct_checkpoint_origin(log->submission_url);
	same = want != NULL && strcmp(want, cp->origin) == 0;
	free(want);
	if (!same)
		return ct_fail(err, "the checkpoint's origin is not the log's submission URL");
	/* The RFC 6962 signature does not cover extension lines: static-ct-api forbids them. */
	if (next > 0)
		return ct_fail(err, "the checkpoint has extension lines, which a static-ct-api "
				    "log's checkpoint must not have");
	return ct_note_sigs(note + text_len + 1, len - text_len - 1, log, cp, err);
}

int ct_checkpoint_verify(const char *note, size_t len, const struct ct_log *log,
			 struct ct_checkpoint *out, char **err)
{
	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (ct_checkpoint_check(note, len, log, out, err) != 0) {
		ct_checkpoint_clear(out);
		return -1;
	}
	return 0;
}

void ct_checkpoint_clear(struct ct_checkpoint *cp)
{
	free(cp->origin);
	ct_sth_clear(&cp->sth);
	memset(cp, 0, sizeof(*cp));
}

char *ct_checkpoint_origin(const char *submission_url)
{
	const char *p = strstr(submission_url, "://");
	size_t n;

	if (p == NULL)
		return NULL;
	p += 3;
	n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	return xstrndup(p, n);
}

uint32_t ct_note_key_id(const char *name, const uint8_t log_id[CT_LOG_ID_LEN])
{
	static const uint8_t sep[2] = { 0x0a, CT_NOTE_SIG_TYPE };
	uint8_t d[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, name, strlen(name)) != 1 ||
	    EVP_DigestUpdate(md, sep, sizeof(sep)) != 1 ||
	    EVP_DigestUpdate(md, log_id, CT_LOG_ID_LEN) != 1 ||
	    EVP_DigestFinal_ex(md, d, NULL) != 1)
		fatalx("SHA-256 failed (out of memory?)");
	EVP_MD_CTX_free(md);
	return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}
