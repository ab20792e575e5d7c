/*
 * ct_merkle_bench.c - how fast the CT Merkle stream folds in precomputed leaf hashes,
 * and how fast whole leaf hashes (for a typical 1.5 kB entry) are made, on one core.
 * The monitor's aim (100,000 entries a second per core) leaves the tree arithmetic a
 * small share only if appending runs at millions of hashes a second.
 *
 *   cc -O2 -D_GNU_SOURCE -Isrc -Isrc/lib bench/ct_merkle_bench.c src/ctmon/ct_merkle.c \
 *      src/lib/log.c -lcrypto -o build/ct_merkle_bench && build/ct_merkle_bench [N]
 *
 * Run by hand; not part of make bench (no peer to compare with).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctmon/ct_merkle.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 4000000;
	uint8_t *leaves = malloc(n * CT_HASH_LEN), root[CT_HASH_LEN], entry[1500];
	struct ct_merkle_stream s;
	double t0, t1, t2;
	size_t m = n / 10 + 1;

	if (leaves == NULL || n < 10)
		return 1;
	memset(entry, 0x42, sizeof(entry));
	t0 = now();
	for (size_t i = 0; i < m; i++) {
		memcpy(entry, &i, sizeof(i));
		ct_merkle_leaf_hash(entry, sizeof(entry), leaves + i * CT_HASH_LEN);
	}
	t1 = now();
	for (size_t i = m; i < n; i++) {	/* the rest: cheap distinct hashes, not timed */
		memcpy(leaves + i * CT_HASH_LEN, leaves + (i % m) * CT_HASH_LEN, CT_HASH_LEN);
		memcpy(leaves + i * CT_HASH_LEN, &i, sizeof(i));
	}
	ct_merkle_stream_init(&s);
	t2 = now();
	if (!ct_merkle_stream_append_many(&s, leaves, n))
		return 1;
	ct_merkle_stream_root(&s, root);
	t1 -= t0;
	t2 = now() - t2;
	printf("leaf hashes of 1500-byte entries: %zu in %.3f s = %.0f per second\n", m, t1,
	       (double)m / t1);
	printf("stream append of precomputed leaf hashes: %zu in %.3f s = %.0f per second\n", n,
	       t2, (double)n / t2);
	printf("root %02x%02x%02x%02x...\n", root[0], root[1], root[2], root[3]);
	free(leaves);
	return 0;
}
