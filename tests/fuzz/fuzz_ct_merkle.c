/*
 * fuzz_ct_merkle.c - libFuzzer target: the CT Merkle code on bytes from outside. The
 * input is read as a stored stream state (which must load only if saving it gives the
 * same bytes back), as an inclusion proof, as a consistency proof (also from the loaded
 * stream) and as a set of tiles with a tree size. Nothing may crash or leak, and the
 * answers that must hold do: a loaded state's root verifies against itself, and tiles
 * built from the input's hashes give the stream's root for every one of them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_merkle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define H CT_HASH_LEN

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Sizes and indexes from the input, but often small ones, where proofs can pass. */
static uint64_t size_from(const uint8_t *p)
{
	uint64_t v = get64(p);

	return (p[0] & 0x80) ? v : v % 300;
}

static void fuzz_state(const uint8_t *data, size_t size)
{
	struct ct_merkle_stream s;
	uint8_t out[CT_MERKLE_STATE_MAX], root[H];
	size_t len;

	if (!ct_merkle_stream_load(&s, data, size))
		return;
	len = ct_merkle_stream_save(&s, out, sizeof(out));
	if (len != size || memcmp(out, data, size) != 0)
		abort();
	ct_merkle_stream_root(&s, root);
	if (!ct_merkle_stream_verify_consistency(&s, s.size, root, NULL, 0))
		abort();
	if (size >= H && ct_merkle_stream_append(&s, data) && s.size == 0)
		abort();
}

/* index, size, leaf hash, root, then proof hashes: all from the input. */
static void fuzz_inclusion(const uint8_t *data, size_t size)
{
	size_t head = 16 + 2 * H, n;

	if (size < head)
		return;
	n = (size - head) / H;
	(void)ct_merkle_verify_inclusion(size_from(data), size_from(data + 8), data + 16,
					 data + head, n > CT_PROOF_MAX + 2 ? CT_PROOF_MAX + 2 : n,
					 data + 16 + H);
}

static void fuzz_consistency(const uint8_t *data, size_t size)
{
	size_t head = 16 + 2 * H, n;
	struct ct_merkle_stream s;

	if (size < head)
		return;
	n = (size - head) / H;
	if (n > CT_PROOF_MAX + 2)
		n = CT_PROOF_MAX + 2;
	(void)ct_merkle_verify_consistency(size_from(data), size_from(data + 8), data + 16,
					   data + 16 + H, data + head, n);
	ct_merkle_stream_init(&s);
	(void)ct_merkle_stream_append_many(&s, data + head, n);
	(void)ct_merkle_stream_verify_consistency(&s, size_from(data + 8), data + 16 + H,
						  data + head, n);
}

/*
 * size, then tiles: level (1 byte), index (1 byte), width (1 byte: 0 means 256) and
 * that many hashes while the input lasts.
 */
static void fuzz_tiles(const uint8_t *data, size_t size)
{
	struct ct_tile tiles[16];
	size_t nt = 0, at = 8;
	uint64_t tsize;
	uint8_t root[H] = { 0 };
	char path[CT_TILE_PATH_MAX];

	if (size < 8)
		return;
	tsize = get64(data) >> (data[0] & 63);
	while (nt < 16 && at + 3 <= size) {
		struct ct_tile *t = &tiles[nt];
		unsigned w = data[at + 2] ? data[at + 2] : 256;

		t->level = data[at] % 4;
		t->index = data[at + 1];
		t->width = w;
		at += 3;
		if ((size - at) / H < w)
			break;
		t->hashes = data + at;
		at += (size_t)w * H;
		(void)ct_tile_path(path, sizeof(path), t->level, get64(data), w);
		nt++;
	}
	(void)ct_tile_root(tsize, tiles, nt, root);
	for (size_t i = 0; i < nt; i++)
		(void)ct_tile_verify(tsize, root, &tiles[i], tiles, nt);
}

/*
 * Leaf hashes of the input's 8-byte pieces (so that 4 kB make two full tiles): level-0
 * tiles of them and level-1 entries made with ct_tile_parent_hash must give the same
 * root as the stream, and each tile must verify against it.
 */
#define VS_MAX 600

static void fuzz_tiles_vs_stream(const uint8_t *data, size_t size)
{
	static uint8_t leaves[VS_MAX * H];
	struct ct_tile tiles[4];
	struct ct_merkle_stream s;
	uint8_t level1[2 * H], want[H], got[H];
	size_t n = size / 8 < VS_MAX ? size / 8 : VS_MAX, nt = 0, full = n / CT_TILE_WIDTH;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		ct_merkle_leaf_hash(data + 8 * i, 8, leaves + i * H);
	for (size_t i = 0; i * CT_TILE_WIDTH < n; i++)
		tiles[nt++] = (struct ct_tile){ .level = 0, .index = i,
			.width = ct_tile_width(n, 0, i), .hashes = leaves + i * CT_TILE_WIDTH * H };
	for (size_t i = 0; i < full; i++)
		if (!ct_tile_parent_hash(&tiles[i], level1 + i * H))
			abort();
	if (full > 0)
		tiles[nt++] = (struct ct_tile){ .level = 1, .index = 0, .width = (unsigned)full,
						.hashes = level1 };
	ct_merkle_stream_init(&s);
	if (!ct_merkle_stream_append_many(&s, leaves, n))
		abort();
	ct_merkle_stream_root(&s, want);
	if (!ct_tile_root(n, tiles, nt, got) || memcmp(got, want, H) != 0)
		abort();
	for (size_t i = 0; i < nt; i++)
		if (!ct_tile_verify(n, want, &tiles[i], tiles, nt))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)	/* a state is at most 2057 bytes, a proof 64 hashes */
		return 0;
	fuzz_state(data, size);
	fuzz_inclusion(data, size);
	fuzz_consistency(data, size);
	fuzz_tiles(data, size);
	fuzz_tiles_vs_stream(data, size);
	return 0;
}
