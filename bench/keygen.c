/*
 * keygen.c - OpenPGP keys for the key directory benchmark, fast: gpg needs about a
 * second per key, librnp a millisecond or so.
 *
 *   keygen OUTDIR DOMAIN FIRST COUNT
 *
 * writes OUTDIR/userNNNNN.pgp for NNNNN = FIRST .. FIRST+COUNT-1: the binary public key of
 * an EdDSA (Ed25519) primary key with the user ID "userNNNNN <userNNNNN@DOMAIN>" and an
 * ECDH Curve25519 encryption subkey, no expiry. Files that exist already are kept, so a
 * second run only fills gaps. The secret keys are thrown away.
 *
 * Built by bench/keydir_bench.py: cc -O2 keygen.c $(pkg-config --cflags --libs librnp).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

static void die(const char *what, rnp_result_t rc)
{
	fprintf(stderr, "keygen: %s failed: %s\n", what, rnp_result_to_string(rc));
	exit(1);
}

#define TRY(call)                                  \
	do {                                       \
		rnp_result_t rc_ = (call);         \
		if (rc_ != RNP_SUCCESS)            \
			die(#call, rc_);           \
	} while (0)

/* Generate one key pair for userid; return the exported public key (caller frees). */
static uint8_t *keygen_one(rnp_ffi_t ffi, const char *userid, size_t *len)
{
	rnp_op_generate_t op = NULL, sub = NULL;
	rnp_key_handle_t primary = NULL, subkey = NULL;
	rnp_output_t out = NULL;
	uint8_t *buf = NULL, *copy;

	TRY(rnp_op_generate_create(&op, ffi, "EDDSA"));
	TRY(rnp_op_generate_set_userid(op, userid));
	TRY(rnp_op_generate_set_expiration(op, 0));
	TRY(rnp_op_generate_execute(op));
	TRY(rnp_op_generate_get_key(op, &primary));
	TRY(rnp_op_generate_subkey_create(&sub, ffi, primary, "ECDH"));
	TRY(rnp_op_generate_set_curve(sub, "Curve25519"));
	TRY(rnp_op_generate_set_expiration(sub, 0));
	TRY(rnp_op_generate_execute(sub));
	TRY(rnp_op_generate_get_key(sub, &subkey));
	TRY(rnp_output_to_memory(&out, 0));
	TRY(rnp_key_export(primary, out, RNP_KEY_EXPORT_PUBLIC | RNP_KEY_EXPORT_SUBKEYS));
	TRY(rnp_output_memory_get_buf(out, &buf, len, false));
	copy = malloc(*len);
	if (copy == NULL) {
		fprintf(stderr, "keygen: out of memory\n");
		exit(1);
	}
	memcpy(copy, buf, *len);
	rnp_output_destroy(out);
	rnp_key_handle_destroy(subkey);
	rnp_key_handle_destroy(primary);
	rnp_op_generate_destroy(sub);
	rnp_op_generate_destroy(op);
	/* One key at a time in the keyring: memory stays flat however many are made. */
	TRY(rnp_unload_keys(ffi, RNP_KEY_UNLOAD_PUBLIC | RNP_KEY_UNLOAD_SECRET));
	return copy;
}

/* Write path via a temporary file, so an interrupted run leaves no half key behind. */
static void keygen_write(const char *path, const uint8_t *data, size_t len)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%.4090s.tmp", path);
	f = fopen(tmp, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "keygen: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	rnp_ffi_t ffi = NULL;
	long first, count, made = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: keygen OUTDIR DOMAIN FIRST COUNT\n");
		return 2;
	}
	first = strtol(argv[3], NULL, 10);
	count = strtol(argv[4], NULL, 10);
	if (first < 0 || count < 0 || first + count > 100000) {
		fprintf(stderr, "keygen: FIRST and COUNT must stay within 0..99999\n");
		return 2;
	}
	TRY(rnp_ffi_create(&ffi, "GPG", "GPG"));
	for (long i = first; i < first + count; i++) {
		char path[4096], userid[512];
		uint8_t *key;
		size_t len;

		if (snprintf(path, sizeof(path), "%s/user%05ld.pgp", argv[1], i) >= 4000) {
			fprintf(stderr, "keygen: OUTDIR is too long\n");
			return 2;
		}
		if (access(path, F_OK) == 0)
			continue;
		snprintf(userid, sizeof(userid), "user%05ld <user%05ld@%s>", i, i, argv[2]);
		key = keygen_one(ffi, userid, &len);
		keygen_write(path, key, len);
		free(key);
		made++;
	}
	rnp_ffi_destroy(ffi);
	printf("%ld\n", made);
	return 0;
}
