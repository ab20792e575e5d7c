/*
 * ct_entry.h - reading Certificate Transparency log entries: an RFC 6962 MerkleTreeLeaf
 * (the leaf_input of get-entries) and a static-ct-api data tile (a sequence of TileLeaf).
 *
 * Both give the same record. Its pointers point into the caller's buffer (nothing is
 * copied, because this runs for every entry of every log), so the buffer must outlive the
 * records. Every length is checked against what remains; malformed input gives an error
 * sentence, never a crash.
 */
#ifndef PW_CT_ENTRY_H
#define PW_CT_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ctmon/ct_merkle.h"

#define CT_ENTRY_MAX      (1024 * 1024)	/* one entry (and each certificate in it) */
#define CT_TILE_WIDTH     256		/* entries in a full data tile */
#define CT_KEYHASH_LEN    32

enum ct_entry_type { CT_ENTRY_X509 = 0, CT_ENTRY_PRECERT = 1 };

struct ct_entry {
	uint64_t timestamp;			/* milliseconds since the epoch */
	enum ct_entry_type type;
	/* x509: the certificate DER; precert: the TBSCertificate DER (poison removed). */
	const uint8_t *der;
	size_t der_len;
	const uint8_t *issuer_key_hash;		/* precert only: 32 bytes, else NULL */
	const uint8_t *ext;			/* CtExtensions, opaque in RFC 6962 */
	size_t ext_len;
	bool has_leaf_index;			/* static-ct-api leaf_index extension */
	uint64_t leaf_index;
	/* The TimestampedEntry encoding: the leaf hash is over 0x00 0x00 0x00 || te. */
	const uint8_t *te;
	size_t te_len;
	/* Data tiles only: the submitted precertificate and the chain's SHA-256s. */
	const uint8_t *precert;
	size_t precert_len;
	const uint8_t *chain;			/* chain_count fingerprints of 32 bytes */
	size_t chain_count;
};

/* Read one MerkleTreeLeaf (version v1, timestamped_entry). 0 or -1 with *err set. */
int ct_leaf_parse(const uint8_t *p, size_t n, struct ct_entry *e, const char **err);

/*
 * Read a data tile into out[0..CT_TILE_WIDTH-1] and set *count. want is the tile's
 * width (256 for a full tile, W for .p/W); 0 accepts any width from 1 to 256.
 */
int ct_tile_parse(const uint8_t *p, size_t n, size_t want, struct ct_entry *out,
		  size_t *count, const char **err);

/* The RFC 6962 leaf hash of the entry: SHA-256(0x00 || MerkleTreeLeaf). */
void ct_entry_leaf_hash(const struct ct_entry *e, uint8_t out[CT_HASH_LEN]);

#endif
