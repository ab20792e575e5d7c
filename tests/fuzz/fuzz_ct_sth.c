/*
 * fuzz_ct_sth.c - libFuzzer target for what CT logs publish. The first byte selects the
 * parser (low two bits: get-sth, get-sth-consistency, get-entries, checkpoint) and the
 * log key (bit 2: a fixed P-256 or RSA-2048 key); the rest is the response body. Tree
 * heads and checkpoints are verified as well as parsed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "ctmon/ct_sth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ENTRIES_MAX (64 * 1024)

/*
 * Fixed log keys (public halves of keys made once with openssl genpkey), so that the
 * log IDs and note key IDs stay the same from run to run and inputs in the corpus that
 * reach signature verification keep reaching it.
 */
static const char fuzz_ec_spki[] =
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1m8d2DaELLAwcfRxOhPkc765OE9Bab644QwRvD8V0f4TnpOw"
	"rlz8BPZ9SDh+JYLZQJDJXBgB7YJ+azFQSJKENw==";
static const char fuzz_rsa_spki[] =
	"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3YND7SpvPda8759WH+XCTuwI9VyPkEdyrmCLjvov"
	"3PPn4drL6ivwO25SzkgNOTSp68a5T/ytLFumyTXTz3rQAcAat/1pOEOCIR6ZAzo7l0Wm7eJMYmiID6adTihc"
	"g7qtidTEbcskc8MvX3lJY4IxBuqZDZyHVAr/rDwGGKjqjWV54j42Ezodp5VWJH1wmOJ7zSFO5bIlzGrYWrfa"
	"6qc9OwqQ9S54xaXRTkRgzH0f+cJUxl6X85Cnhrym/zeJKeMLuEuiuHBbfKm+DUWmFxyEawzoeArVPZgJJcdm"
	"osB0AB3CvUl9o6nZN5E3RiCXZe7O1x3/SLpguvJLJ4MZ3kOBAQIDAQAB";

static struct ct_log fuzz_logs[2];

static void fuzz_make_log(struct ct_log *log, const char *spki_b64, enum ct_key_type type)
{
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t n = 0;

	if (!ct_b64_decode(spki_b64, strlen(spki_b64), 1024, &der, &n))
		abort();
	p = der;
	log->key = d2i_PUBKEY(NULL, &p, (long)n);
	if (log->key == NULL)
		abort();
	SHA256(der, n, log->log_id);
	free(der);
	log->key_type = type;
	log->api = CT_API_STATIC;
	log->submission_url = (char *)"https://ct.example.test/fuzz/";
}

/* The keys stay for the life of the process. */
static void fuzz_init(void)
{
	if (fuzz_logs[0].key != NULL)
		return;
	fuzz_make_log(&fuzz_logs[0], fuzz_ec_spki, CT_KEY_ECDSA_P256);
	fuzz_make_log(&fuzz_logs[1], fuzz_rsa_spki, CT_KEY_RSA);
}

static void fuzz_sth(const char *s, size_t n, const struct ct_log *log, char **err)
{
	struct ct_sth sth;

	if (ct_sth_parse(s, n, &sth, err) != 0)
		return;
	if (sth.signature == NULL && sth.signature_len != 0)
		abort();
	(void)ct_sth_verify(&sth, log, err);
	ct_sth_clear(&sth);
}

static void fuzz_consistency(const char *s, size_t n, char **err)
{
	struct ct_consistency c;

	if (ct_consistency_parse(s, n, &c, err) != 0)
		return;
	if (c.nhashes > CT_CONSISTENCY_MAX)
		abort();
	ct_consistency_clear(&c);
}

/* get-proof-by-hash, and the compact range its left-hand siblings would give. */
static void fuzz_proof(const char *s, size_t n, char **err)
{
	struct ct_consistency c;
	struct ct_merkle_stream st;
	uint64_t index = 0;

	if (ct_proof_parse(s, n, &index, &c, err) != 0)
		return;
	if (c.nhashes > CT_CONSISTENCY_MAX)
		abort();
	if (ct_merkle_stream_from_inclusion(&st, index, index + 1 + c.nhashes,
					    (const uint8_t *)c.hashes, c.nhashes) &&
	    st.size != index)
		abort();
	ct_consistency_clear(&c);
}

/* Are two readings of get-entries the same, byte for byte? */
static bool fuzz_same_entries(const struct ct_entries *a, const struct ct_entries *b)
{
	if (a->nentries != b->nentries)
		return false;
	for (size_t i = 0; i < a->nentries; i++) {
		const struct ct_raw_entry *x = &a->entries[i], *y = &b->entries[i];

		if (x->leaf_input_len != y->leaf_input_len ||
		    x->extra_data_len != y->extra_data_len ||
		    memcmp(x->leaf_input, y->leaf_input, x->leaf_input_len) != 0 ||
		    memcmp(x->extra_data, y->extra_data, x->extra_data_len) != 0)
			return false;
	}
	return true;
}

/* get-entries: bounded, and the fast reader accepts and reads exactly what JSON does. */
static void fuzz_entries(const char *s, size_t n, char **err)
{
	struct ct_entries e, ref;
	char *ref_err = NULL;
	size_t total = 0;
	int rc = ct_entries_parse(s, n, FUZZ_ENTRIES_MAX, &e, err);
	int ref_rc = ct_entries_parse_json(s, n, FUZZ_ENTRIES_MAX, &ref, &ref_err);

	free(ref_err);
	if (rc != ref_rc)
		abort();
	if (rc != 0)
		return;
	if (!fuzz_same_entries(&e, &ref))
		abort();
	ct_entries_clear(&ref);
	for (size_t i = 0; i < e.nentries; i++)
		total += e.entries[i].leaf_input_len + e.entries[i].extra_data_len;
	if (e.nentries > CT_ENTRIES_MAX || total > FUZZ_ENTRIES_MAX)
		abort();
	ct_entries_clear(&e);
}

static void fuzz_checkpoint(const char *s, size_t n, const struct ct_log *log, char **err)
{
	struct ct_checkpoint cp;

	if (ct_checkpoint_verify(s, n, log, &cp, err) != 0)
		return;
	/* Only a genuine signature (from a seed) gets here; it must be self-consistent. */
	if (*err != NULL || strcmp(cp.origin, "ct.example.test/fuzz") != 0 ||
	    cp.nsignatures == 0 || cp.nsignatures > CT_NOTE_MAX_SIGS ||
	    ct_sth_verify(&cp.sth, log, err) != 0)
		abort();
	ct_checkpoint_clear(&cp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ct_log *log;
	const char *s = (const char *)data + 1;
	char *err = NULL;

	if (size == 0)
		return 0;
	fuzz_init();
	log = &fuzz_logs[(data[0] >> 2) & 1];
	switch (data[0] & 3) {
	case 0:
		fuzz_sth(s, size - 1, log, &err);
		break;
	case 1:
		if (data[0] & 8)
			fuzz_proof(s, size - 1, &err);
		else
			fuzz_consistency(s, size - 1, &err);
		break;
	case 2:
		fuzz_entries(s, size - 1, &err);
		break;
	default:
		fuzz_checkpoint(s, size - 1, log, &err);
		break;
	}
	free(err);
	return 0;
}
