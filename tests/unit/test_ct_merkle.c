/*
 * test_ct_merkle.c - the CT Merkle arithmetic against a reference written straight from
 * RFC 6962 2.1.1-2.1.2 (recursive MTH, PATH and PROOF): stream roots, every inclusion
 * and consistency proof of small trees with their tampered twins, saved and restored
 * streams, tile paths, and tree hashes computed from tiles around tile edges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_merkle.h"
#include "unit.h"

#define H CT_HASH_LEN

/* ---- the reference: RFC 6962 2.1.1 and 2.1.2, recursion as written there ---- */

/* Largest power of two smaller than n (n > 1). */
static size_t split_point(size_t n)
{
	size_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* MTH over the leaf hashes d[0..n) (already leaf-hashed). */
static void ref_mth(const uint8_t *d, size_t n, uint8_t out[H])
{
	uint8_t l[H], r[H];
	size_t k;

	if (n == 0) {
		ct_merkle_empty_root(out);
		return;
	}
	if (n == 1) {
		memcpy(out, d, H);
		return;
	}
	k = split_point(n);
	ref_mth(d, k, l);
	ref_mth(d + k * H, n - k, r);
	ct_merkle_node_hash(l, r, out);
}

/* PATH(m, D[n]) appended to out; returns the new count. */
static size_t ref_path(size_t m, const uint8_t *d, size_t n, uint8_t *out, size_t at)
{
	size_t k;

	if (n <= 1)
		return at;
	k = split_point(n);
	if (m < k) {
		at = ref_path(m, d, k, out, at);
		ref_mth(d + k * H, n - k, out + at * H);
	} else {
		at = ref_path(m - k, d + k * H, n - k, out, at);
		ref_mth(d, k, out + at * H);
	}
	return at + 1;
}

/* SUBPROOF(m, D[n], b) appended to out; returns the new count. */
static size_t ref_subproof(size_t m, const uint8_t *d, size_t n, int b, uint8_t *out, size_t at)
{
	size_t k;

	if (m == n) {
		if (b)
			return at;
		ref_mth(d, n, out + at * H);
		return at + 1;
	}
	k = split_point(n);
	if (m <= k) {
		at = ref_subproof(m, d, k, b, out, at);
		ref_mth(d + k * H, n - k, out + at * H);
	} else {
		at = ref_subproof(m - k, d + k * H, n - k, 0, out, at);
		ref_mth(d, k, out + at * H);
	}
	return at + 1;
}

/* Cheap distinct leaf hashes: the leaf hash of the index as 8 bytes. */
static uint8_t *make_leaves(size_t n)
{
	uint8_t *d = malloc(n * H + 1);

	for (size_t i = 0; i < n; i++) {
		uint8_t b[8];

		for (unsigned j = 0; j < 8; j++)
			b[j] = (uint8_t)((uint64_t)i >> (8 * j));
		ct_merkle_leaf_hash(b, sizeof(b), d + i * H);
	}
	return d;
}

/* ---- hashes ---- */

static int hex_eq(const uint8_t *h, const char *hex)
{
	char s[2 * H + 1];

	for (size_t i = 0; i < H; i++)
		snprintf(s + 2 * i, 3, "%02x", h[i]);
	return strcmp(s, hex) == 0;
}

static void test_known_hashes(void)
{
	uint8_t h[H], l[H], r[H], both[H];
	uint8_t big[1000];

	ct_merkle_empty_root(h);
	CHECK(hex_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	/* leaf hash of the empty string: SHA-256 of the single byte 0x00 */
	ct_merkle_leaf_hash(NULL, 0, h);
	CHECK(hex_eq(h, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
	CHECK(!hex_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	/* the long-input path of the leaf hash agrees with a node-free computation */
	memset(big, 7, sizeof(big));
	ct_merkle_leaf_hash(big, 200, l);
	ct_merkle_leaf_hash(big, 1000, r);
	CHECK(memcmp(l, r, H) != 0);
	ct_merkle_node_hash(l, r, both);
	ct_merkle_node_hash(r, l, h);
	CHECK(memcmp(both, h, H) != 0);
	ct_merkle_hashes_root(big, 0, h);
	CHECK(hex_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

/* ---- stream ---- */

static void test_stream_roots(void)
{
	uint8_t *d = make_leaves(300);
	struct ct_merkle_stream s;
	uint8_t a[H], b[H];
	int bad = 0;

	ct_merkle_stream_init(&s);
	ct_merkle_stream_root(&s, a);
	ref_mth(d, 0, b);
	CHECK(memcmp(a, b, H) == 0);
	for (size_t n = 1; n <= 300; n++) {
		CHECK(ct_merkle_stream_append(&s, d + (n - 1) * H));
		ct_merkle_stream_root(&s, a);
		ref_mth(d, n, b);
		bad += memcmp(a, b, H) != 0;
	}
	CHECK(bad == 0);
	CHECK(s.size == 300);
	/* a run appended at once gives the same */
	ct_merkle_stream_init(&s);
	CHECK(ct_merkle_stream_append_many(&s, d, 77));
	CHECK(ct_merkle_stream_append_many(&s, d + 77 * H, 223));
	ct_merkle_stream_root(&s, b);
	CHECK(memcmp(a, b, H) == 0);
	/* control: one leaf different, another root */
	ct_merkle_stream_init(&s);
	CHECK(ct_merkle_stream_append_many(&s, d + H, 299));
	CHECK(ct_merkle_stream_append(&s, d));
	ct_merkle_stream_root(&s, b);
	CHECK(memcmp(a, b, H) != 0);
	free(d);
}

static void test_stream_limits(void)
{
	struct ct_merkle_stream s;
	uint8_t leaf[H] = {1};

	ct_merkle_stream_init(&s);
	s.size = CT_MERKLE_MAX_SIZE - 1;	/* the hashes do not matter for the bound */
	CHECK(ct_merkle_stream_append(&s, leaf));
	CHECK(s.size == CT_MERKLE_MAX_SIZE);
	CHECK(!ct_merkle_stream_append(&s, leaf));
	CHECK(s.size == CT_MERKLE_MAX_SIZE);
	s.size = CT_MERKLE_MAX_SIZE - 1;
	CHECK(!ct_merkle_stream_append_many(&s, leaf, 2));
	CHECK(s.size == CT_MERKLE_MAX_SIZE - 1);
}

static void test_stream_save_load(void)
{
	uint8_t *d = make_leaves(300);
	struct ct_merkle_stream s, t;
	uint8_t buf[CT_MERKLE_STATE_MAX], a[H], b[H];
	size_t len;

	for (size_t mid = 0; mid <= 300; mid += 37) {
		ct_merkle_stream_init(&s);
		CHECK(ct_merkle_stream_append_many(&s, d, mid));
		len = ct_merkle_stream_save(&s, buf, sizeof(buf));
		CHECK(len == 9 + (size_t)__builtin_popcountll(mid) * H);
		memset(&t, 0xaa, sizeof(t));
		CHECK(ct_merkle_stream_load(&t, buf, len));
		CHECK(t.size == mid);
		ct_merkle_stream_root(&s, a);
		ct_merkle_stream_root(&t, b);
		CHECK(memcmp(a, b, H) == 0);
		CHECK(ct_merkle_stream_append_many(&t, d + mid * H, 300 - mid));
		ct_merkle_stream_root(&t, a);
		ref_mth(d, 300, b);
		CHECK(memcmp(a, b, H) == 0);
	}
	/* malformed states are refused, the stream untouched */
	ct_merkle_stream_init(&s);
	CHECK(ct_merkle_stream_append_many(&s, d, 7));
	len = ct_merkle_stream_save(&s, buf, sizeof(buf));
	CHECK(len == 9 + 3 * H);
	CHECK(ct_merkle_stream_save(&s, buf, len - 1) == 0);
	t.size = 5;
	CHECK(!ct_merkle_stream_load(&t, buf, len - 1));
	CHECK(!ct_merkle_stream_load(&t, buf, len + 1));
	CHECK(!ct_merkle_stream_load(&t, buf, 8));
	CHECK(!ct_merkle_stream_load(&t, NULL, 0));
	buf[0] = 2;
	CHECK(!ct_merkle_stream_load(&t, buf, len));
	buf[0] = 1;
	buf[8] = 8;	/* size 8 has one subtree, not three */
	CHECK(!ct_merkle_stream_load(&t, buf, len));
	buf[8] = 7;
	buf[1] = 0x80;	/* 2^63 + 7: beyond the maximum size */
	CHECK(!ct_merkle_stream_load(&t, buf, len + H));	/* four subtrees */
	CHECK(t.size == 5);
	buf[1] = 0;
	CHECK(ct_merkle_stream_load(&t, buf, len));
	CHECK(t.size == 7);
	free(d);
}

/* ---- inclusion ---- */

/*
 * A second tree size is bound to its root by the log's signature, not by the proof: for
 * leaf 9, every size from 65 to 127 walks the same path (left subtree of 64, then one
 * right sibling), so a proof checks out against another size of the same shape. A size
 * whose path has another length must fail.
 */
static size_t ref_path_len(size_t m, size_t n)
{
	size_t k;

	if (n <= 1)
		return 0;
	k = split_point(n);
	return 1 + (m < k ? ref_path_len(m, k) : ref_path_len(m - k, n - k));
}

/* The number of hashes SUBPROOF(m, D[n], b) gives: its recursion without the hashing. */
static size_t ref_subproof_len(size_t m, size_t n, int b)
{
	size_t k;

	if (m == n)
		return b ? 0 : 1;
	k = split_point(n);
	return 1 + (m <= k ? ref_subproof_len(m, k, b) : ref_subproof_len(m - k, n - k, 0));
}

static int wrong_shape(size_t m, size_t j, size_t np)
{
	return m >= j || ref_path_len(m, j) != np;
}

static int wrong_proof_len(size_t m, size_t j, size_t np)
{
	return ref_subproof_len(m, j, 1) != np;
}

/*
 * Which bytes of a proof get flipped and which wrong indexes and sizes are tried: all
 * up to 40 leaves; beyond, every ninth byte (3 or 4 in each hash, at moving places) and
 * every fifth index and size, which keeps the test to seconds under ASan.
 */
static size_t byte_step(size_t n)
{
	return n <= 40 ? 1 : 9;
}

static size_t other_step(size_t n)
{
	return n <= 40 ? 1 : 5;
}

/* Every one-byte, one-hash and index/size tamper of a valid proof fails. */
static int inclusion_tampers_pass(const uint8_t *leaf, size_t m, size_t n,
				  uint8_t *p, size_t np, const uint8_t *root)
{
	uint8_t other[H];
	int passed = 0;

	for (size_t i = 0; i < np * H; i += byte_step(n)) {
		p[i] ^= 0x01;
		passed += ct_merkle_verify_inclusion(m, n, leaf, p, np, root);
		p[i] ^= 0x01;
	}
	memset(other, 0x5a, H);
	for (size_t i = 0; i < np; i++) {
		uint8_t keep[H];

		memcpy(keep, p + i * H, H);
		memcpy(p + i * H, other, H);
		passed += ct_merkle_verify_inclusion(m, n, leaf, p, np, root);
		memcpy(p + i * H, keep, H);
	}
	for (size_t j = 0; j < n + 2; j += other_step(n))
		passed += j != m && ct_merkle_verify_inclusion(j, n, leaf, p, np, root);
	for (size_t j = 0; j < n + 3; j += other_step(n))
		passed += j != n && wrong_shape(m, j, np) &&
			  ct_merkle_verify_inclusion(m, j, leaf, p, np, root);
	if (np > 0)
		passed += ct_merkle_verify_inclusion(m, n, leaf, p, np - 1, root);
	memcpy(p + np * H, other, H);
	passed += ct_merkle_verify_inclusion(m, n, leaf, p, np + 1, root);
	return passed;
}

static void test_inclusion(void)
{
	uint8_t *d = make_leaves(80);
	uint8_t proof[(CT_PROOF_MAX + 1) * H], root[H], bad_root[H], bad_leaf[H];
	int ok = 0, total = 0, tamper = 0;

	for (size_t n = 1; n <= 80; n++) {
		ref_mth(d, n, root);
		memcpy(bad_root, root, H);
		bad_root[31] ^= 0x80;
		for (size_t m = 0; m < n; m++) {
			size_t np = ref_path(m, d, n, proof, 0);

			total++;
			ok += ct_merkle_verify_inclusion(m, n, d + m * H, proof, np, root);
			memcpy(bad_leaf, d + m * H, H);
			bad_leaf[0] ^= 1;
			tamper += ct_merkle_verify_inclusion(m, n, bad_leaf, proof, np, root);
			tamper += ct_merkle_verify_inclusion(m, n, d + m * H, proof, np, bad_root);
			tamper += inclusion_tampers_pass(d + m * H, m, n, proof, np, root);
		}
	}
	CHECK(ok == total);
	CHECK(total == 80 * 81 / 2);
	CHECK(tamper == 0);
	/* bounds: index beyond size, a proof over the maximum length, no proof pointer */
	ref_mth(d, 1, root);
	CHECK(ct_merkle_verify_inclusion(0, 1, d, NULL, 0, root));
	CHECK(!ct_merkle_verify_inclusion(1, 1, d, NULL, 0, root));
	CHECK(!ct_merkle_verify_inclusion(0, 0, d, NULL, 0, root));
	CHECK(!ct_merkle_verify_inclusion(0, 2, d, NULL, 1, root));
	CHECK(!ct_merkle_verify_inclusion(UINT64_MAX - 1, UINT64_MAX, d, proof,
					  CT_PROOF_MAX + 1, root));
	free(d);
}

/* ---- consistency ---- */

static int consistency_tampers_pass(size_t m, size_t n, const uint8_t *r1, const uint8_t *r2,
				    uint8_t *p, size_t np)
{
	uint8_t other[H];
	int passed = 0;

	for (size_t i = 0; i < np * H; i += byte_step(n)) {
		p[i] ^= 0x40;
		passed += ct_merkle_verify_consistency(m, n, r1, r2, p, np);
		p[i] ^= 0x40;
	}
	memset(other, 0xa5, H);
	for (size_t i = 0; i < np; i++) {
		uint8_t keep[H];

		memcpy(keep, p + i * H, H);
		memcpy(p + i * H, other, H);
		passed += ct_merkle_verify_consistency(m, n, r1, r2, p, np);
		memcpy(p + i * H, keep, H);
	}
	for (size_t j = 0; j <= n + 2; j += other_step(n)) {
		passed += j != m && ct_merkle_verify_consistency(j, n, r1, r2, p, np);
		passed += j != n && (j < m || wrong_proof_len(m, j, np)) &&
			  ct_merkle_verify_consistency(m, j, r1, r2, p, np);
	}
	if (np > 0)
		passed += ct_merkle_verify_consistency(m, n, r1, r2, p, np - 1);
	memcpy(p + np * H, other, H);
	passed += ct_merkle_verify_consistency(m, n, r1, r2, p, np + 1);
	return passed;
}

/* The stream of leaves 0 .. m-1 from the inclusion proof of leaf m, for every m and n. */
static void test_stream_from_inclusion(void)
{
	uint8_t *d = make_leaves(80);
	uint8_t proof[(CT_PROOF_MAX + 1) * H], want[H], got[H];
	struct ct_merkle_stream s;
	int good = 0, total = 0, wrong = 0;

	for (size_t n = 1; n <= 80; n++) {
		for (size_t m = 0; m < n; m++) {
			size_t np = ref_path(m, d, n, proof, 0);

			total++;
			if (!ct_merkle_stream_from_inclusion(&s, m, n, proof, np))
				continue;
			ref_mth(d, m, want);
			ct_merkle_stream_root(&s, got);
			good += s.size == m && memcmp(want, got, H) == 0;
			/* the same proof read for another leaf makes up other leaves */
			if (m + 1 < n && ct_merkle_stream_from_inclusion(&s, m + 1, n, proof, np)) {
				ref_mth(d, m + 1, want);
				ct_merkle_stream_root(&s, got);
				wrong += memcmp(want, got, H) == 0;
			}
		}
	}
	CHECK(good == total);
	CHECK(wrong == 0);
	CHECK(!ct_merkle_stream_from_inclusion(&s, 5, 5, proof, 0));
	free(d);
}

static void test_consistency(void)
{
	uint8_t *d = make_leaves(80);
	uint8_t proof[(CT_PROOF_MAX + 1) * H], r1[H], r2[H], bad[H];
	int ok = 0, total = 0, tamper = 0;

	for (size_t n = 1; n <= 80; n++) {
		ref_mth(d, n, r2);
		for (size_t m = 1; m <= n; m++) {
			size_t np = ref_subproof(m, d, n, 1, proof, 0);

			ref_mth(d, m, r1);
			total++;
			ok += ct_merkle_verify_consistency(m, n, r1, r2, proof, np);
			memcpy(bad, r1, H);
			bad[5] ^= 2;
			tamper += ct_merkle_verify_consistency(m, n, bad, r2, proof, np);
			memcpy(bad, r2, H);
			bad[5] ^= 2;
			tamper += ct_merkle_verify_consistency(m, n, r1, bad, proof, np);
			tamper += m < n && ct_merkle_verify_consistency(n, m, r2, r1, proof, np);
			tamper += consistency_tampers_pass(m, n, r1, r2, proof, np);
		}
	}
	CHECK(ok == total);
	CHECK(total == 80 * 81 / 2);
	CHECK(tamper == 0);
	free(d);
}

static void test_consistency_edges(void)
{
	uint8_t *d = make_leaves(80);
	uint8_t proof[CT_PROOF_MAX * H], empty[H], r1[H], r2[H];
	struct ct_merkle_stream s;
	size_t np;

	ct_merkle_empty_root(empty);
	ref_mth(d, 13, r2);
	/* m == 0: the empty tree, an empty proof, any later tree */
	CHECK(ct_merkle_verify_consistency(0, 13, empty, r2, NULL, 0));
	CHECK(ct_merkle_verify_consistency(0, 0, empty, empty, NULL, 0));
	CHECK(!ct_merkle_verify_consistency(0, 13, r2, r2, NULL, 0));
	memset(proof, 0, H);
	CHECK(!ct_merkle_verify_consistency(0, 13, empty, r2, proof, 1));
	/* m == n: equal roots and an empty proof only */
	CHECK(ct_merkle_verify_consistency(13, 13, r2, r2, NULL, 0));
	CHECK(!ct_merkle_verify_consistency(13, 13, r2, empty, NULL, 0));
	CHECK(!ct_merkle_verify_consistency(13, 13, r2, r2, proof, 1));
	/* m < n never with an empty proof */
	ref_mth(d, 12, r1);
	CHECK(!ct_merkle_verify_consistency(12, 13, r1, r2, NULL, 0));
	CHECK(!ct_merkle_verify_consistency(12, 13, r1, r2, proof, CT_PROOF_MAX + 1));
	/* the stream's state leads to a later root */
	ct_merkle_stream_init(&s);
	CHECK(ct_merkle_stream_append_many(&s, d, 21));
	ref_mth(d, 80, r2);
	np = ref_subproof(21, d, 80, 1, proof, 0);
	CHECK(ct_merkle_stream_verify_consistency(&s, 80, r2, proof, np));
	proof[3] ^= 1;
	CHECK(!ct_merkle_stream_verify_consistency(&s, 80, r2, proof, np));
	free(d);
}

/* ---- tiles ---- */

static void test_tile_paths(void)
{
	char p[CT_TILE_PATH_MAX];

	CHECK(ct_tile_path(p, sizeof(p), 0, 0, 256));
	CHECK_STREQ(p, "tile/0/000");
	CHECK(ct_tile_path(p, sizeof(p), 0, 255, 256));
	CHECK_STREQ(p, "tile/0/255");
	CHECK(ct_tile_path(p, sizeof(p), 1, 256, 256));
	CHECK_STREQ(p, "tile/1/256");
	CHECK(ct_tile_path(p, sizeof(p), 2, 1000, 256));
	CHECK_STREQ(p, "tile/2/x001/000");
	CHECK(ct_tile_path(p, sizeof(p), 0, 1234067, 256));
	CHECK_STREQ(p, "tile/0/x001/x234/067");
	CHECK(ct_tile_path(p, sizeof(p), 0, 1234067, 17));
	CHECK_STREQ(p, "tile/0/x001/x234/067.p/17");
	CHECK(ct_tile_data_path(p, sizeof(p), 1234067, 256));
	CHECK_STREQ(p, "tile/data/x001/x234/067");
	CHECK(ct_tile_data_path(p, sizeof(p), 5, 1));
	CHECK_STREQ(p, "tile/data/005.p/1");
	CHECK(ct_tile_path(p, sizeof(p), 63, UINT64_MAX, 255));
	CHECK_STREQ(p, "tile/63/x018/x446/x744/x073/x709/x551/615.p/255");
	CHECK(!ct_tile_path(p, sizeof(p), 0, 1, 0));
	CHECK(!ct_tile_path(p, sizeof(p), 0, 1, 257));
	CHECK(!ct_tile_path(p, sizeof(p), 64, 1, 256));
	CHECK(!ct_tile_path(p, 12, 0, 1234067, 256));
	CHECK(!ct_tile_path(p, 22, 0, 1234067, 17));
}

static void test_tile_shapes(void)
{
	CHECK(ct_tile_levels(0) == 0);
	CHECK(ct_tile_levels(255) == 1);
	CHECK(ct_tile_levels(256) == 2);
	CHECK(ct_tile_levels(65536) == 3);
	CHECK(ct_tile_levels(UINT64_MAX) == 8);
	CHECK(ct_tile_count(70000, 0) == 274);
	CHECK(ct_tile_width(70000, 0, 272) == 256);
	CHECK(ct_tile_width(70000, 0, 273) == 112);
	CHECK(ct_tile_width(70000, 0, 274) == 0);
	CHECK(ct_tile_count(70000, 1) == 2);
	CHECK(ct_tile_width(70000, 1, 1) == 17);
	CHECK(ct_tile_count(70000, 2) == 1);
	CHECK(ct_tile_width(70000, 2, 0) == 1);
	CHECK(ct_tile_count(70000, 3) == 0);
	CHECK(ct_tile_count(256, 0) == 1 && ct_tile_width(256, 0, 0) == 256);
	CHECK(ct_tile_width(256, 0, 1) == 0);
	CHECK(ct_tile_entries(UINT64_MAX, 8) == 0);
}

/* Every tile of a tree: per level an array of entries (reference MTH of each group). */
struct tiled {
	uint64_t size;
	unsigned levels;
	uint8_t *entries[4];
	struct ct_tile *tiles;
	size_t ntiles;
};

static void tiled_build(struct tiled *t, const uint8_t *d, uint64_t size)
{
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	t->size = size;
	t->levels = ct_tile_levels(size);
	for (unsigned l = 0; l < t->levels; l++) {
		uint64_t e = ct_tile_entries(size, l), span = (uint64_t)1 << (8 * l);

		t->entries[l] = malloc(e * H + 1);
		for (uint64_t i = 0; i < e; i++)
			ref_mth(d + i * span * H, span, t->entries[l] + i * H);
		n += ct_tile_count(size, l);
	}
	t->tiles = calloc(n + 1, sizeof(*t->tiles));
	for (unsigned l = 0; l < t->levels; l++) {
		for (uint64_t i = 0; i < ct_tile_count(size, l); i++) {
			struct ct_tile *c = &t->tiles[t->ntiles++];

			c->level = l;
			c->index = i;
			c->width = ct_tile_width(size, l, i);
			c->hashes = t->entries[l] + i * 256 * H;
		}
	}
}

static void tiled_free(struct tiled *t)
{
	for (unsigned l = 0; l < t->levels; l++)
		free(t->entries[l]);
	free(t->tiles);
}

/* Only the right-edge tile of each level, as a client fetches them. */
static size_t edge_tiles(const struct tiled *t, struct ct_tile *out)
{
	size_t n = 0;

	for (size_t i = 0; i < t->ntiles; i++) {
		const struct ct_tile *c = &t->tiles[i];

		if (c->width < 256)
			out[n++] = *c;
	}
	return n;
}

static void check_tile_root(const uint8_t *d, uint64_t size)
{
	struct tiled t;
	struct ct_tile edge[8];
	uint8_t want[H], got[H];
	size_t ne;

	tiled_build(&t, d, size);
	ref_mth(d, size, want);
	CHECK(ct_tile_root(size, t.tiles, t.ntiles, got) && memcmp(got, want, H) == 0);
	ne = edge_tiles(&t, edge);
	CHECK(ct_tile_root(size, edge, ne, got) && memcmp(got, want, H) == 0);
	/* control: without the level-0 edge tile (when there is one) no root */
	if (ne > 0 && edge[0].level == 0)
		CHECK(!ct_tile_root(size, edge + 1, ne - 1, got));
	/* a later full tile in place of a partial one holds the same prefix */
	if (size % 256 != 0) {
		struct tiled later;

		tiled_build(&later, d, size - size % 256 + 256);
		edge[0] = later.tiles[size / 256];
		CHECK(edge[0].width == 256);
		CHECK(ct_tile_root(size, edge, ne, got) && memcmp(got, want, H) == 0);
		tiled_free(&later);
	}
	tiled_free(&t);
}

static void test_tile_roots(void)
{
	static const uint64_t sizes[] = { 0, 1, 2, 255, 256, 257, 511, 512, 1000, 65535, 65536,
					  65537, 70000 };
	uint8_t *d = make_leaves(70400);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_tile_root(d, sizes[i]);
	free(d);
}

static void test_tile_verify(void)
{
	uint8_t *d = make_leaves(70000);
	uint8_t root[H], keep[H], h[H];
	struct tiled t;
	struct ct_tile tile;

	tiled_build(&t, d, 70000);
	ref_mth(d, 70000, root);
	/* full level-0 tile 3 climbs through level-1 tile 0 to the level-2 edge */
	tile = t.tiles[3];
	CHECK(tile.level == 0 && tile.index == 3 && tile.width == 256);
	CHECK(ct_tile_verify(70000, root, &tile, t.tiles, t.ntiles));
	CHECK(ct_tile_parent_hash(&tile, h) && memcmp(h, t.entries[1] + 3 * H, H) == 0);
	/* the partial level-0 edge, and a level-1 tile */
	CHECK(ct_tile_verify(70000, root, &t.tiles[273], t.tiles, t.ntiles));
	CHECK(t.tiles[274].level == 1);
	CHECK(ct_tile_verify(70000, root, &t.tiles[274], t.tiles, t.ntiles));
	/* a tampered entry, wrong shapes, a wrong root, missing parents all fail */
	memcpy(keep, t.entries[0] + 3 * 256 * H + 100 * H, H);
	t.entries[0][3 * 256 * H + 100 * H] ^= 1;
	CHECK(!ct_tile_verify(70000, root, &tile, t.tiles, t.ntiles));
	memcpy(t.entries[0] + 3 * 256 * H + 100 * H, keep, H);
	t.entries[0][273 * 256 * H + 5 * H] ^= 1;
	CHECK(!ct_tile_verify(70000, root, &t.tiles[273], t.tiles, t.ntiles));
	t.entries[0][273 * 256 * H + 5 * H] ^= 1;
	CHECK(ct_tile_verify(70000, root, &t.tiles[273], t.tiles, t.ntiles));
	tile.width = 255;
	CHECK(!ct_tile_verify(70000, root, &tile, t.tiles, t.ntiles));
	CHECK(!ct_tile_parent_hash(&tile, h));
	tile = t.tiles[273];
	tile.width = 111;
	CHECK(!ct_tile_verify(70000, root, &tile, t.tiles, t.ntiles));
	CHECK(!ct_tile_verify(70001, root, &t.tiles[273], t.tiles, t.ntiles));
	root[0] ^= 1;
	CHECK(!ct_tile_verify(70000, root, &t.tiles[3], t.tiles, t.ntiles));
	root[0] ^= 1;
	CHECK(!ct_tile_verify(70000, root, &t.tiles[3], t.tiles, 274));	/* no level 1 */
	tiled_free(&t);
	free(d);
}

TEST_MAIN(test_known_hashes, test_stream_roots, test_stream_limits, test_stream_save_load,
	  test_stream_from_inclusion,
	  test_inclusion, test_consistency, test_consistency_edges, test_tile_paths,
	  test_tile_shapes, test_tile_roots, test_tile_verify)
