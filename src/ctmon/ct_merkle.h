/*
 * ct_merkle.h - Merkle tree arithmetic of Certificate Transparency (RFC 6962 / RFC 9162
 * section 2.1) and of C2SP tlog-tiles: leaf and node hashes, inclusion and consistency
 * proofs, a compact "Merkle stream" that folds leaf hashes into O(log n) subtree hashes,
 * and the tile arithmetic of static logs (which tiles exist, their paths, the tree hash
 * of size N computed from tile entries, and the checks that tie tiles to a root).
 *
 * Everything here is pure computation over bytes; every input may come from a log and is
 * checked: a malformed proof, state or tile is a false return, never a crash.
 */
#ifndef PW_CT_MERKLE_H
#define PW_CT_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_HASH_LEN 32
#define CT_PROOF_MAX 64		/* a tree of 2^64 leaves needs no longer proof */
#define CT_TILE_HEIGHT 8
#define CT_TILE_WIDTH 256	/* 2^CT_TILE_HEIGHT entries per full tile */
#define CT_TILE_PATH_MAX 96	/* enough for "tile/63/x018/.../615.p/255" */

/* Largest tree size the stream accepts: the top bit stays free so sizes never wrap. */
#define CT_MERKLE_MAX_SIZE (UINT64_C(1) << 63)

/* SHA-256 of nothing: the root of the empty tree. */
void ct_merkle_empty_root(uint8_t out[CT_HASH_LEN]);
/* SHA-256(0x00 || data) */
void ct_merkle_leaf_hash(const uint8_t *data, size_t len, uint8_t out[CT_HASH_LEN]);
/* SHA-256(0x01 || left || right); out may be left or right. */
void ct_merkle_node_hash(const uint8_t left[CT_HASH_LEN], const uint8_t right[CT_HASH_LEN],
			 uint8_t out[CT_HASH_LEN]);
/* Tree hash over count consecutive leaf hashes (a perfect tree when count is 2^k). */
void ct_merkle_hashes_root(const uint8_t *hashes, size_t count, uint8_t out[CT_HASH_LEN]);

/*
 * RFC 9162 2.1.3.2: does leaf_hash sit at index in the tree of size whose root is root?
 * proof is proof_len hashes of CT_HASH_LEN bytes, leaf side first.
 */
bool ct_merkle_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf_hash[CT_HASH_LEN],
				const uint8_t *proof, size_t proof_len,
				const uint8_t root[CT_HASH_LEN]);

/*
 * RFC 9162 2.1.4.2: is the tree (size2, root2) an extension of (size1, root1)?
 * size1 == size2 needs an empty proof and equal roots; size1 == 0 needs an empty proof
 * and root1 equal to the empty-tree hash (every tree extends the empty one).
 */
bool ct_merkle_verify_consistency(uint64_t size1, uint64_t size2, const uint8_t root1[CT_HASH_LEN],
				  const uint8_t root2[CT_HASH_LEN], const uint8_t *proof,
				  size_t proof_len);

/*
 * A Merkle stream (compact range [0, size)): one subtree hash per set bit of size,
 * sub[b] being the hash of the 2^b leaves that bit b stands for. Appending is a binary
 * carry, so it costs one node hash per leaf on average and the state stays small enough
 * to be stored after every verified batch.
 */
struct ct_merkle_stream {
	uint64_t size;
	uint8_t sub[64][CT_HASH_LEN];	/* valid where bit b of size is set */
};

#define CT_MERKLE_STATE_MAX (1 + 8 + 64 * CT_HASH_LEN)	/* serialised state, bytes */

void ct_merkle_stream_init(struct ct_merkle_stream *s);
/* false (nothing appended) if the stream would pass CT_MERKLE_MAX_SIZE */
bool ct_merkle_stream_append(struct ct_merkle_stream *s, const uint8_t leaf_hash[CT_HASH_LEN]);
bool ct_merkle_stream_append_many(struct ct_merkle_stream *s, const uint8_t *leaf_hashes,
				  size_t count);
/* The tree hash of everything appended so far (the empty-tree hash for size 0). */
void ct_merkle_stream_root(const struct ct_merkle_stream *s, uint8_t out[CT_HASH_LEN]);
/* Is (size2, root2) an extension of the stream's tree? See ct_merkle_verify_consistency. */
bool ct_merkle_stream_verify_consistency(const struct ct_merkle_stream *s, uint64_t size2,
					 const uint8_t root2[CT_HASH_LEN], const uint8_t *proof,
					 size_t proof_len);
/*
 * The stream of leaves 0 .. index-1 from a verified inclusion proof of leaf index in a tree
 * of size leaves: the proof's siblings on the left of the leaf are exactly their subtrees.
 * A monitor starting inside a log (at its end, or a backfill from an index) gets its
 * compact range this way without reading the entries before. False when they do not
 * make up exactly those leaves.
 */
bool ct_merkle_stream_from_inclusion(struct ct_merkle_stream *s, uint64_t index, uint64_t size,
				     const uint8_t *proof, size_t proof_len);
/*
 * State as bytes: version 1, size as 8 bytes big-endian, then the subtree hashes from
 * the lowest set bit up. Returns the length written (at most CT_MERKLE_STATE_MAX).
 */
size_t ct_merkle_stream_save(const struct ct_merkle_stream *s, uint8_t *out, size_t cap);
/* false, s unchanged, unless the bytes are exactly one state as written above */
bool ct_merkle_stream_load(struct ct_merkle_stream *s, const uint8_t *in, size_t len);

/*
 * Tiles (C2SP tlog-tiles). A level-L tile entry is the hash of a perfect subtree of
 * 256^L leaves; tile index N at level L holds entries [N*256, N*256+width).
 */
struct ct_tile {
	unsigned level;
	uint64_t index;
	unsigned width;		/* 1..CT_TILE_WIDTH */
	const uint8_t *hashes;	/* width * CT_HASH_LEN bytes, borrowed */
};

/* Number of levels that have at least one entry in a tree of size (0 for size 0). */
unsigned ct_tile_levels(uint64_t size);
/* Entries at level in a tree of size (size >> (8 * level)). */
uint64_t ct_tile_entries(uint64_t size, unsigned level);
/* Number of tiles at level (full ones, plus one partial if any). */
uint64_t ct_tile_count(uint64_t size, unsigned level);
/* Width of tile index at level for size: 256 when full, 1..255 partial, 0 none. */
unsigned ct_tile_width(uint64_t size, unsigned level, uint64_t index);

/*
 * Paths: "tile/L/x001/x234/067[.p/W]" for hash tiles and "tile/data/...[.p/W]" for data
 * tiles (static-ct-api); width CT_TILE_WIDTH means full (no .p/W). false if width is 0
 * or more than 256, level above 63 or the buffer too small.
 */
bool ct_tile_path(char *buf, size_t cap, unsigned level, uint64_t index, unsigned width);
bool ct_tile_data_path(char *buf, size_t cap, uint64_t index, unsigned width);

/*
 * The value the level-(L+1) entry for a full level-L tile must have: the root of its 256
 * entries. false if the tile is not full.
 */
bool ct_tile_parent_hash(const struct ct_tile *full, uint8_t out[CT_HASH_LEN]);

/*
 * Tree hash of size from tile entries. Only the right-edge tile of each level is
 * needed; any tile that holds the needed entries will do (a full tile holds every
 * partial one's entries). false if an entry is missing.
 */
bool ct_tile_root(uint64_t size, const struct ct_tile *tiles, size_t ntiles,
		  uint8_t out[CT_HASH_LEN]);

/*
 * Is tile (of any level, full or the partial right edge) part of the tree (size, root)?
 * Climbs from a full tile to the entry that its parent tile holds for it, up to the
 * partial right edge, which with the other edge tiles in tiles must give root.
 */
bool ct_tile_verify(uint64_t size, const uint8_t root[CT_HASH_LEN], const struct ct_tile *tile,
		    const struct ct_tile *tiles, size_t ntiles);

#endif
