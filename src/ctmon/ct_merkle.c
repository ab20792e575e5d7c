/*
 * ct_merkle.c - Merkle tree arithmetic of Certificate Transparency (RFC 9162 2.1) and of
 * C2SP tlog-tiles. See ct_merkle.h. Proof verification follows the RFC's algorithms step
 * by step; every length and index is checked before it is used, because proofs, stored
 * states and tiles all come from outside.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "ct_merkle.h"
#include "log.h"

/* ---- hashing ---- */

/*
 * One fetched SHA-256 and one digest context per thread: fetching the algorithm and
 * allocating a context for every node hash would cost more than the hash itself, and
 * appending runs at millions of node hashes a second.
 */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha_key;
static EVP_MD *sha_md;
static _Thread_local EVP_MD_CTX *sha_ctx;

static void sha_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha_setup(void)
{
	sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (sha_md == NULL)
		fatalx("ct_merkle: OpenSSL has no SHA-256");
	if (pthread_key_create(&sha_key, sha_ctx_free) != 0)
		fatalx("ct_merkle: pthread_key_create failed");
}

/* This thread's context, already set to SHA-256. */
static EVP_MD_CTX *sha_thread_ctx(void)
{
	if (sha_ctx != NULL)
		return sha_ctx;
	pthread_once(&sha_once, sha_setup);
	sha_ctx = EVP_MD_CTX_new();
	if (sha_ctx == NULL || pthread_setspecific(sha_key, sha_ctx) != 0)
		fatalx("ct_merkle: out of memory");
	if (!EVP_DigestInit_ex2(sha_ctx, sha_md, NULL))
		fatalx("ct_merkle: SHA-256 failed");
	return sha_ctx;
}

/* A NULL type re-initialises the context's own digest: measurably cheaper per hash. */
static void sha_start(EVP_MD_CTX *ctx)
{
	if (!EVP_DigestInit_ex2(ctx, NULL, NULL))
		fatalx("ct_merkle: SHA-256 failed");
}

static void sha_finish(EVP_MD_CTX *ctx, uint8_t out[CT_HASH_LEN])
{
	if (!EVP_DigestFinal_ex(ctx, out, NULL))
		fatalx("ct_merkle: SHA-256 failed");
}

static void sha256(const uint8_t *data, size_t len, uint8_t out[CT_HASH_LEN])
{
	EVP_MD_CTX *ctx = sha_thread_ctx();

	sha_start(ctx);
	if (!EVP_DigestUpdate(ctx, data, len))
		fatalx("ct_merkle: SHA-256 failed");
	sha_finish(ctx, out);
}

void ct_merkle_empty_root(uint8_t out[CT_HASH_LEN])
{
	sha256(NULL, 0, out);
}

void ct_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[CT_HASH_LEN])
{
	uint8_t small[1 + 256];
	EVP_MD_CTX *ctx;

	if (len < sizeof(small)) {	/* one update is cheaper than two */
		small[0] = 0x00;
		if (len > 0)
			memcpy(small + 1, data, len);
		sha256(small, 1 + len, out);
		return;
	}
	ctx = sha_thread_ctx();
	sha_start(ctx);
	if (!EVP_DigestUpdate(ctx, "\0", 1) || !EVP_DigestUpdate(ctx, data, len))
		fatalx("ct_merkle: SHA-256 failed");
	sha_finish(ctx, out);
}

void ct_merkle_node_hash(const uint8_t left[CT_HASH_LEN], const uint8_t right[CT_HASH_LEN],
			 uint8_t out[CT_HASH_LEN])
{
	uint8_t in[1 + 2 * CT_HASH_LEN];

	in[0] = 0x01;
	memcpy(in + 1, left, CT_HASH_LEN);
	memcpy(in + 1 + CT_HASH_LEN, right, CT_HASH_LEN);
	sha256(in, sizeof(in), out);
}

static bool hash_eq(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, CT_HASH_LEN) == 0;
}

/* ---- proofs (RFC 9162 2.1.3.2 and 2.1.4.2) ---- */

static bool proof_shape_ok(const uint8_t *proof, size_t proof_len)
{
	return proof_len <= CT_PROOF_MAX && (proof_len == 0 || proof != NULL);
}

bool ct_merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[CT_HASH_LEN],
				const uint8_t *proof, size_t proof_len,
				const uint8_t root[CT_HASH_LEN])
{
	uint64_t fn = index, sn;
	uint8_t r[CT_HASH_LEN];

	if (index >= size || !proof_shape_ok(proof, proof_len))
		return false;
	sn = size - 1;
	memcpy(r, leaf_hash, CT_HASH_LEN);
	for (size_t i = 0; i < proof_len; i++) {
		const uint8_t *p = proof + i * CT_HASH_LEN;

		if (sn == 0)
			return false;	/* proof longer than the path to the root */
		if ((fn & 1) || fn == sn) {
			ct_merkle_node_hash(p, r, r);
			/* the right edge: levels where this node has no right sibling */
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ct_merkle_node_hash(r, p, r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(r, root);
}

/* The trivial cases the RFC's algorithm does not cover: equal sizes and the empty tree. */
static bool consistency_trivial(uint64_t size1, uint64_t size2, const uint8_t *root1,
				const uint8_t *root2, size_t proof_len)
{
	uint8_t empty[CT_HASH_LEN];

	if (proof_len != 0)
		return false;
	if (size1 == size2)
		return hash_eq(root1, root2);
	ct_merkle_empty_root(empty);
	return hash_eq(root1, empty);
}

bool ct_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[CT_HASH_LEN],
				  const uint8_t root2[CT_HASH_LEN], const uint8_t *proof,
				  size_t proof_len)
{
	uint8_t fr[CT_HASH_LEN], sr[CT_HASH_LEN];
	uint64_t fn, sn;
	size_t i = 0;

	if (size1 > size2 || !proof_shape_ok(proof, proof_len))
		return false;
	if (size1 == size2 || size1 == 0)
		return consistency_trivial(size1, size2, root1, root2, proof_len);
	if (proof_len == 0)
		return false;
	/* a first tree of 2^k leaves is itself a node of the second: its root starts the path */
	if ((size1 & (size1 - 1)) == 0) {
		memcpy(fr, root1, CT_HASH_LEN);
	} else {
		memcpy(fr, proof, CT_HASH_LEN);
		i = 1;
	}
	memcpy(sr, fr, CT_HASH_LEN);
	fn = size1 - 1;
	sn = size2 - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < proof_len; i++) {
		const uint8_t *c = proof + i * CT_HASH_LEN;

		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			ct_merkle_node_hash(c, fr, fr);
			ct_merkle_node_hash(c, sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ct_merkle_node_hash(sr, c, sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(fr, root1) && hash_eq(sr, root2);
}

/* ---- the Merkle stream ---- */

void ct_merkle_stream_init(struct ct_merkle_stream *s)
{
	memset(s, 0, sizeof(*s));
}

/* Adds one leaf hash; the caller has checked that size stays below the maximum. */
static void stream_push(struct ct_merkle_stream *s, const uint8_t leaf_hash[CT_HASH_LEN])
{
	uint8_t h[CT_HASH_LEN];
	unsigned b = 0;

	memcpy(h, leaf_hash, CT_HASH_LEN);
	/* binary carry: each set low bit is a complete left sibling that now gets its pair */
	while ((s->size >> b) & 1) {
		ct_merkle_node_hash(s->sub[b], h, h);
		b++;
	}
	memcpy(s->sub[b], h, CT_HASH_LEN);
	s->size++;
}

bool ct_merkle_stream_append(struct ct_merkle_stream *s, const uint8_t leaf_hash[CT_HASH_LEN])
{
	if (s->size >= CT_MERKLE_MAX_SIZE)
		return false;
	stream_push(s, leaf_hash);
	return true;
}

bool ct_merkle_stream_append_many(struct ct_merkle_stream *s, const uint8_t *leaf_hashes,
				  size_t count)
{
	if ((uint64_t)count > CT_MERKLE_MAX_SIZE - s->size)
		return false;
	for (size_t i = 0; i < count; i++)
		stream_push(s, leaf_hashes + i * CT_HASH_LEN);
	return true;
}

void ct_merkle_stream_root(const struct ct_merkle_stream *s, uint8_t out[CT_HASH_LEN])
{
	uint8_t r[CT_HASH_LEN];
	bool have = false;

	if (s->size == 0) {
		ct_merkle_empty_root(out);
		return;
	}
	/* the smallest subtree is the rightmost: fold leftwards, larger subtrees on the left */
	for (unsigned b = 0; b < 64; b++) {
		if (!((s->size >> b) & 1))
			continue;
		if (have) {
			ct_merkle_node_hash(s->sub[b], r, r);
		} else {
			memcpy(r, s->sub[b], CT_HASH_LEN);
			have = true;
		}
	}
	memcpy(out, r, CT_HASH_LEN);
}

bool ct_merkle_stream_verify_consistency(const struct ct_merkle_stream *s, uint64_t size2,
					 const uint8_t root2[CT_HASH_LEN], const uint8_t *proof,
					 size_t proof_len)
{
	uint8_t root1[CT_HASH_LEN];

	ct_merkle_stream_root(s, root1);
	return ct_merkle_verify_consistency(s->size, size2, root1, root2, proof, proof_len);
}

#define STATE_VERSION 1
#define STATE_HEAD 9	/* version byte and 8-byte size */

static size_t state_len(uint64_t size)
{
	return STATE_HEAD + (size_t)__builtin_popcountll(size) * CT_HASH_LEN;
}

/*
 * The walk of RFC 9162 2.1.3.2: a sibling taken on the left sits at the height reached
 * after the node without a right sibling has climbed.
 */
bool ct_merkle_stream_from_inclusion(struct ct_merkle_stream *s, uint64_t index, uint64_t size,
				     const uint8_t *proof, size_t proof_len)
{
	uint64_t fn = index, sn = size - 1, covered = 0;
	unsigned height = 0;

	ct_merkle_stream_init(s);
	if (index >= size || proof_len > 64)
		return false;
	for (size_t i = 0; i < proof_len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
				height++;
			}
			if (height >= 64 || ((covered >> height) & 1))
				return false;
			memcpy(s->sub[height], proof + i * CT_HASH_LEN, CT_HASH_LEN);
			covered |= (uint64_t)1 << height;
		}
		fn >>= 1;
		sn >>= 1;
		height++;
	}
	if (covered != index) {
		ct_merkle_stream_init(s);
		return false;
	}
	s->size = covered;
	return true;
}

size_t ct_merkle_stream_save(const struct ct_merkle_stream *s, uint8_t *out, size_t cap)
{
	size_t len = state_len(s->size), at = STATE_HEAD;

	if (cap < len)
		return 0;
	out[0] = STATE_VERSION;
	for (unsigned i = 0; i < 8; i++)
		out[1 + i] = (uint8_t)(s->size >> (56 - 8 * i));
	for (unsigned b = 0; b < 64; b++) {
		if ((s->size >> b) & 1) {
			memcpy(out + at, s->sub[b], CT_HASH_LEN);
			at += CT_HASH_LEN;
		}
	}
	return len;
}

bool ct_merkle_stream_load(struct ct_merkle_stream *s, const uint8_t *in, size_t len)
{
	uint64_t size = 0;
	size_t at = STATE_HEAD;

	if (in == NULL || len < STATE_HEAD || len > CT_MERKLE_STATE_MAX || in[0] != STATE_VERSION)
		return false;
	for (unsigned i = 0; i < 8; i++)
		size = size << 8 | in[1 + i];
	if (size > CT_MERKLE_MAX_SIZE || len != state_len(size))
		return false;
	ct_merkle_stream_init(s);
	s->size = size;
	for (unsigned b = 0; b < 64; b++) {
		if ((size >> b) & 1) {
			memcpy(s->sub[b], in + at, CT_HASH_LEN);
			at += CT_HASH_LEN;
		}
	}
	return true;
}

void ct_merkle_hashes_root(const uint8_t *hashes, size_t count, uint8_t out[CT_HASH_LEN])
{
	struct ct_merkle_stream s;

	ct_merkle_stream_init(&s);
	if (!ct_merkle_stream_append_many(&s, hashes, count))
		fatalx("ct_merkle: %zu hashes are too many for one tree", count);
	ct_merkle_stream_root(&s, out);
}

/* ---- tiles (C2SP tlog-tiles) ---- */

uint64_t ct_tile_entries(uint64_t size, unsigned level)
{
	if (level >= 64 / CT_TILE_HEIGHT)
		return 0;	/* shifting by 64 or more is undefined; no such entries */
	return size >> (CT_TILE_HEIGHT * level);
}

unsigned ct_tile_levels(uint64_t size)
{
	unsigned l = 0;

	while (ct_tile_entries(size, l) > 0)
		l++;
	return l;
}

uint64_t ct_tile_count(uint64_t size, unsigned level)
{
	uint64_t e = ct_tile_entries(size, level);

	return e / CT_TILE_WIDTH + (e % CT_TILE_WIDTH != 0);
}

unsigned ct_tile_width(uint64_t size, unsigned level, uint64_t index)
{
	uint64_t e = ct_tile_entries(size, level);

	if (index < e / CT_TILE_WIDTH)
		return CT_TILE_WIDTH;
	if (index == e / CT_TILE_WIDTH)
		return (unsigned)(e % CT_TILE_WIDTH);
	return 0;
}

/* "x001/x234/067": three-digit groups, every group but the last marked with x. */
static bool tile_index_path(char *buf, size_t cap, uint64_t index)
{
	unsigned groups[8], n = 0;
	size_t at = 0;

	do {
		groups[n++] = (unsigned)(index % 1000);
		index /= 1000;
	} while (index > 0);
	while (n-- > 0) {
		int w = snprintf(buf + at, cap - at, n > 0 ? "x%03u/" : "%03u", groups[n]);

		if (w < 0 || (size_t)w >= cap - at)
			return false;
		at += (size_t)w;
	}
	return true;
}

static bool tile_path_in(char *buf, size_t cap, const char *dir, uint64_t index, unsigned width)
{
	int w;
	size_t at;

	if (width == 0 || width > CT_TILE_WIDTH)
		return false;
	w = snprintf(buf, cap, "tile/%s/", dir);
	if (w < 0 || (size_t)w >= cap)
		return false;
	at = (size_t)w;
	if (!tile_index_path(buf + at, cap - at, index))
		return false;
	if (width == CT_TILE_WIDTH)
		return true;
	at = strlen(buf);
	w = snprintf(buf + at, cap - at, ".p/%u", width);
	return w >= 0 && (size_t)w < cap - at;
}

bool ct_tile_path(char *buf, size_t cap, unsigned level, uint64_t index, unsigned width)
{
	char dir[4];

	if (level > 63)
		return false;
	snprintf(dir, sizeof(dir), "%u", level);
	return tile_path_in(buf, cap, dir, index, width);
}

bool ct_tile_data_path(char *buf, size_t cap, uint64_t index, unsigned width)
{
	return tile_path_in(buf, cap, "data", index, width);
}

bool ct_tile_parent_hash(const struct ct_tile *full, uint8_t out[CT_HASH_LEN])
{
	if (full->width != CT_TILE_WIDTH || full->hashes == NULL)
		return false;
	ct_merkle_hashes_root(full->hashes, CT_TILE_WIDTH, out);
	return true;
}

/*
 * A tile at (level, index) holding at least width entries. pref is looked at first, so
 * that ct_tile_verify's tile is the one the root is computed from.
 */
static const struct ct_tile *tile_find(const struct ct_tile *pref, const struct ct_tile *tiles,
				       size_t ntiles, unsigned level, uint64_t index,
				       unsigned width)
{
	if (pref != NULL && pref->level == level && pref->index == index && pref->width >= width)
		return pref;
	for (size_t i = 0; i < ntiles; i++) {
		const struct ct_tile *t = &tiles[i];

		if (t->level == level && t->index == index && t->width >= width &&
		    t->width <= CT_TILE_WIDTH && t->hashes != NULL)
			return t;
	}
	return NULL;
}

/*
 * Hash of the perfect subtree of 2^b leaves that bit b of size stands for. Its node
 * lies at height b = 8L + r: the root of 2^r consecutive level-L entries, which always
 * sit in one tile because 2^r divides 256.
 */
static bool tile_subtree(uint64_t size, unsigned b, const struct ct_tile *pref,
			 const struct ct_tile *tiles, size_t ntiles, uint8_t out[CT_HASH_LEN])
{
	unsigned level = b / CT_TILE_HEIGHT, r = b % CT_TILE_HEIGHT;
	uint64_t first = ((size >> b) - 1) << r;
	unsigned off = (unsigned)(first % CT_TILE_WIDTH), count = 1u << r;
	const struct ct_tile *t;

	t = tile_find(pref, tiles, ntiles, level, first / CT_TILE_WIDTH, off + count);
	if (t == NULL)
		return false;
	ct_merkle_hashes_root(t->hashes + (size_t)off * CT_HASH_LEN, count, out);
	return true;
}

static bool tile_root_pref(uint64_t size, const struct ct_tile *pref, const struct ct_tile *tiles,
			   size_t ntiles, uint8_t out[CT_HASH_LEN])
{
	uint8_t r[CT_HASH_LEN], h[CT_HASH_LEN];
	bool have = false;

	if (size == 0) {
		ct_merkle_empty_root(out);
		return true;
	}
	for (unsigned b = 0; b < 64; b++) {
		if (!((size >> b) & 1))
			continue;
		if (!tile_subtree(size, b, pref, tiles, ntiles, h))
			return false;
		if (have) {
			ct_merkle_node_hash(h, r, r);
		} else {
			memcpy(r, h, CT_HASH_LEN);
			have = true;
		}
	}
	memcpy(out, r, CT_HASH_LEN);
	return true;
}

bool ct_tile_root(uint64_t size, const struct ct_tile *tiles, size_t ntiles,
		  uint8_t out[CT_HASH_LEN])
{
	return tile_root_pref(size, NULL, tiles, ntiles, out);
}

/* From a full tile one level up: does the parent's entry equal the root of the tile? */
static const struct ct_tile *tile_climb(uint64_t size, const struct ct_tile *cur,
					const struct ct_tile *tiles, size_t ntiles)
{
	uint8_t h[CT_HASH_LEN];
	unsigned off = (unsigned)(cur->index % CT_TILE_WIDTH);
	uint64_t pidx = cur->index / CT_TILE_WIDTH;
	unsigned pw = ct_tile_width(size, cur->level + 1, pidx);
	const struct ct_tile *p;

	if (pw == 0 || !ct_tile_parent_hash(cur, h))
		return NULL;
	p = tile_find(NULL, tiles, ntiles, cur->level + 1, pidx, pw);
	if (p == NULL || !hash_eq(p->hashes + (size_t)off * CT_HASH_LEN, h))
		return NULL;
	return p;
}

bool ct_tile_verify(uint64_t size, const uint8_t root[CT_HASH_LEN], const struct ct_tile *tile,
		    const struct ct_tile *tiles, size_t ntiles)
{
	struct ct_tile cur;
	uint8_t r[CT_HASH_LEN];

	if (tile == NULL || tile->hashes == NULL ||
	    tile->width != ct_tile_width(size, tile->level, tile->index))
		return false;	/* also rejects width 0 and tiles beyond size */
	cur = *tile;
	/* at most 8 levels: a full tile at level 7 would need 2^64 leaves */
	while (cur.width == CT_TILE_WIDTH) {
		const struct ct_tile *p = tile_climb(size, &cur, tiles, ntiles);

		if (p == NULL)
			return false;
		cur = *p;
		/* a wider (later) parent tile: only its prefix belongs to this tree */
		cur.width = ct_tile_width(size, cur.level, cur.index);
	}
	/* the partial right edge: every one of its entries goes into the root */
	return tile_root_pref(size, &cur, tiles, ntiles, r) && hash_eq(r, root);
}
