/*
 * fuzz_ct_entry.c - libFuzzer target: CT log entries and certificate DER.
 *
 * The first byte chooses the reader: 0 an RFC 6962 MerkleTreeLeaf, 1 a static-ct-api data
 * tile, 2 a certificate's names and identity, 3 the names through the watch list. Whatever
 * parses must stay inside the input, and what is read back must be consistent with it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_entry.h"
#include "ctmon/ct_match.h"
#include "ctmon/ct_names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
	return p == NULL || (p >= base && n <= size && p - base <= (ptrdiff_t)(size - n));
}

static void check_entry(const struct ct_entry *e, const uint8_t *base, size_t size)
{
	uint8_t h[CT_HASH_LEN];

	if (!inside(e->der, e->der_len, base, size) || !inside(e->te, e->te_len, base, size) ||
	    !inside(e->ext, e->ext_len, base, size) ||
	    !inside(e->precert, e->precert_len, base, size) ||
	    !inside(e->chain, e->chain_count * CT_HASH_LEN, base, size))
		abort();
	if (e->der_len == 0 || e->der_len > CT_ENTRY_MAX)
		abort();
	if ((e->type == CT_ENTRY_PRECERT) != (e->issuer_key_hash != NULL))
		abort();
	ct_entry_leaf_hash(e, h);
}

static void fuzz_leaf(const uint8_t *p, size_t n)
{
	struct ct_entry e;
	const char *err = NULL;

	if (ct_leaf_parse(p, n, &e, &err) == 0)
		check_entry(&e, p, n);
	else if (err == NULL)
		abort();
}

static void fuzz_tile(const uint8_t *p, size_t n)
{
	static struct ct_entry e[CT_TILE_WIDTH];
	const char *err = NULL;
	size_t count;

	if (ct_tile_parse(p, n, 0, e, &count, &err) == 0) {
		if (count == 0 || count > CT_TILE_WIDTH)
			abort();
		for (size_t i = 0; i < count; i++)
			check_entry(&e[i], p, n);
	} else if (err == NULL) {
		abort();
	}
}

static struct ct_cert cert;

static void fuzz_names(const uint8_t *p, size_t n, bool watch)
{
	static struct ct_watch *w;
	const char *err = NULL;
	uint8_t id[CT_IDENTITY_LEN];
	char ip[CT_IP_TEXT_MAX];

	if (w == NULL) {
		w = ct_watch_new();
		if (ct_watch_add(w, ".example.org", &err) < 0 || ct_watch_add(w, "a.b", &err) < 0)
			abort();
	}
	(void)ct_cert_identity(p, n, id, &err);
	if (ct_cert_read(p, n, &cert, &err) < 0) {
		if (err == NULL)
			abort();
		return;
	}
	if (cert.n_names > CT_NAMES_MAX || !inside(cert.tbs, cert.tbs_len, p, n) ||
	    !inside(cert.spki, cert.spki_len, p, n) || !inside(cert.issuer, cert.issuer_len, p, n))
		abort();
	for (size_t i = 0; i < cert.n_names; i++) {
		if (!inside(cert.names[i].p, cert.names[i].len, p, n))
			abort();
		if (cert.names[i].kind == CT_NAME_IP && ct_name_ip_text(&cert.names[i], ip,
									sizeof(ip)) < 0)
			abort();
	}
	if (watch)
		(void)ct_watch_match_cert(w, &cert);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size < 1)
		return 0;
	/* An exact-size copy: a read past the end is caught even for the last byte. */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		fuzz_leaf(copy, size - 1);
		break;
	case 1:
		fuzz_tile(copy, size - 1);
		break;
	case 2:
		fuzz_names(copy, size - 1, false);
		break;
	default:
		fuzz_names(copy, size - 1, true);
		break;
	}
	free(copy);
	return 0;
}
