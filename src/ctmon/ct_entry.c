/*
 * ct_entry.c - reading RFC 6962 MerkleTreeLeaf records and static-ct-api data tiles.
 *
 * The structures are TLS presentation language (RFC 6962 section 3.4, C2SP static-ct-api):
 * big-endian integers and vectors prefixed by their length in 1 to 3 bytes. A small cursor
 * reads them; every read checks the length against what remains, so no input can make a
 * read go past the buffer.
 */
#include "ctmon/ct_entry.h"

#include <string.h>

#include <openssl/evp.h>

#include "log.h"

/* A cursor over the unread part of the input. */
struct tls_cur {
	const uint8_t *p;
	size_t n;
};

static bool cur_uint(struct tls_cur *c, size_t bytes, uint64_t *v)
{
	if (c->n < bytes)
		return false;
	*v = 0;
	for (size_t i = 0; i < bytes; i++)
		*v = (*v << 8) | c->p[i];
	c->p += bytes;
	c->n -= bytes;
	return true;
}

static bool cur_bytes(struct tls_cur *c, size_t len, const uint8_t **out)
{
	if (c->n < len)
		return false;
	*out = c->p;
	c->p += len;
	c->n -= len;
	return true;
}

/* A vector with a prefix of lenbytes; its length must be within [min, max]. */
static bool cur_vec(struct tls_cur *c, size_t lenbytes, size_t min, size_t max,
		    const uint8_t **out, size_t *len)
{
	uint64_t l;

	if (!cur_uint(c, lenbytes, &l) || l < min || l > max)
		return false;
	*len = (size_t)l;
	return cur_bytes(c, *len, out);
}

/*
 * The static-ct-api CtExtensions: a list of (uint8 type, opaque data<0..2^16-1>). RFC 6962
 * logs leave the field empty or opaque, so a list that does not parse is not an error; it
 * only yields no leaf index.
 */
static void ext_leaf_index(struct ct_entry *e)
{
	struct tls_cur c = { e->ext, e->ext_len };

	while (c.n > 0) {
		uint64_t type;
		const uint8_t *d;
		size_t dl;

		if (!cur_uint(&c, 1, &type) || !cur_vec(&c, 2, 0, 0xffff, &d, &dl))
			return;
		if (type == 0 && dl == 5) {
			struct tls_cur dc = { d, dl };

			e->has_leaf_index = cur_uint(&dc, 5, &e->leaf_index);
		}
	}
}

/* A TimestampedEntry (RFC 6962 section 3.4); records where it starts and ends. */
static int read_timestamped_entry(struct tls_cur *c, struct ct_entry *e, const char **err)
{
	const uint8_t *start = c->p;
	uint64_t type;

	if (!cur_uint(c, 8, &e->timestamp) || !cur_uint(c, 2, &type)) {
		*err = "the timestamped entry is truncated";
		return -1;
	}
	if (type == CT_ENTRY_X509) {
		e->type = CT_ENTRY_X509;
	} else if (type == CT_ENTRY_PRECERT) {
		e->type = CT_ENTRY_PRECERT;
		if (!cur_bytes(c, CT_KEYHASH_LEN, &e->issuer_key_hash)) {
			*err = "the precertificate entry's issuer key hash is truncated";
			return -1;
		}
	} else {
		*err = "the entry type is neither x509_entry nor precert_entry";
		return -1;
	}
	if (!cur_vec(c, 3, 1, CT_ENTRY_MAX, &e->der, &e->der_len)) {
		*err = "the entry's certificate is empty, truncated or larger than 1 MiB";
		return -1;
	}
	if (!cur_vec(c, 2, 0, 0xffff, &e->ext, &e->ext_len)) {
		*err = "the entry's extensions are truncated";
		return -1;
	}
	e->te = start;
	e->te_len = (size_t)(c->p - start);
	if (e->te_len > CT_ENTRY_MAX) {
		*err = "the entry is larger than 1 MiB";
		return -1;
	}
	ext_leaf_index(e);
	return 0;
}

int ct_leaf_parse(const uint8_t *p, size_t n, struct ct_entry *e, const char **err)
{
	struct tls_cur c = { p, n };
	uint64_t version, leaf_type;

	memset(e, 0, sizeof(*e));
	if (n > CT_ENTRY_MAX + 2) {
		*err = "the leaf is larger than 1 MiB";
		return -1;
	}
	if (!cur_uint(&c, 1, &version) || !cur_uint(&c, 1, &leaf_type)) {
		*err = "the leaf is truncated";
		return -1;
	}
	if (version != 0 || leaf_type != 0) {
		*err = "the leaf is not a v1 timestamped_entry";
		return -1;
	}
	if (read_timestamped_entry(&c, e, err) < 0)
		return -1;
	if (c.n != 0) {
		*err = "the leaf has bytes after its end";
		return -1;
	}
	return 0;
}

/* One TileLeaf: the TimestampedEntry, the precertificate if any, the chain fingerprints. */
static int read_tile_leaf(struct tls_cur *c, struct ct_entry *e, const char **err)
{
	const uint8_t *chain;
	size_t chain_len;

	memset(e, 0, sizeof(*e));
	if (read_timestamped_entry(c, e, err) < 0)
		return -1;
	if (e->type == CT_ENTRY_PRECERT &&
	    !cur_vec(c, 3, 1, CT_ENTRY_MAX, &e->precert, &e->precert_len)) {
		*err = "the tile entry's precertificate is empty, truncated or larger than 1 MiB";
		return -1;
	}
	if (!cur_vec(c, 2, 0, 0xffff, &chain, &chain_len) || chain_len % CT_HASH_LEN != 0) {
		*err = "the tile entry's chain is truncated or not a list of SHA-256 hashes";
		return -1;
	}
	e->chain = chain_len ? chain : NULL;
	e->chain_count = chain_len / CT_HASH_LEN;
	return 0;
}

int ct_tile_parse(const uint8_t *p, size_t n, size_t want, struct ct_entry *out,
		  size_t *count, const char **err)
{
	struct tls_cur c = { p, n };
	size_t i = 0;

	*count = 0;
	if (want > CT_TILE_WIDTH) {
		*err = "a data tile holds at most 256 entries";
		return -1;
	}
	while (c.n > 0) {
		if (i == CT_TILE_WIDTH || (want && i == want)) {
			*err = "the data tile holds more entries than its width";
			return -1;
		}
		if (read_tile_leaf(&c, &out[i], err) < 0)
			return -1;
		i++;
	}
	if (i == 0 || (want && i != want)) {
		*err = "the data tile holds fewer entries than its width";
		return -1;
	}
	*count = i;
	return 0;
}

void ct_entry_leaf_hash(const struct ct_entry *e, uint8_t out[CT_HASH_LEN])
{
	/* RFC 6962 2.1 leaf prefix 0x00, then MerkleTreeLeaf version v1 and timestamped_entry. */
	static const uint8_t prefix[3] = { 0, 0, 0 };
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prefix, sizeof(prefix)) != 1 ||
	    EVP_DigestUpdate(ctx, e->te, e->te_len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		fatalx("ct: SHA-256 failed");
	EVP_MD_CTX_free(ctx);
}
