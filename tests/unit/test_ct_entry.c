/*
 * test_ct_entry.c - CT log entries and certificate names: a test CA made here with OpenSSL
 * issues a precertificate (with the CT poison) and its final certificate (with an SCT
 * list); the test encodes RFC 6962 MerkleTreeLeaf records and a static-ct-api data tile of
 * them by hand and checks every field read back, the names found, the shared identity,
 * clean failure at every truncation, and the watch list's matching table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ctmon/ct_entry.h"
#include "ctmon/ct_match.h"
#include "ctmon/ct_names.h"
#include "unit.h"
#include "xmalloc.h"

#define NOT_BEFORE 1700000000
#define NOT_AFTER  (NOT_BEFORE + 90 * 86400)
#define SANS "DNS:www.example.org,DNS:mail.example.org,DNS:*.example.org,IP:192.0.2.1," \
	     "DNS:Shop.Example.NET,IP:2001:db8::1"

/* ---- a growing byte buffer for the hand-made encodings ---- */

struct bytes {
	uint8_t *p;
	size_t n;
};

static void put(struct bytes *b, const void *p, size_t n)
{
	b->p = xrealloc(b->p, b->n + n + 1);
	if (n > 0)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_uint(struct bytes *b, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++) {
		uint8_t c = (uint8_t)(v >> (8 * (bytes - 1 - i)));

		put(b, &c, 1);
	}
}

static void put_vec(struct bytes *b, const void *p, size_t n, size_t lenbytes)
{
	put_uint(b, n, lenbytes);
	put(b, p, n);
}

/* ---- the test PKI ---- */

static EVP_PKEY *ca_key, *leaf_key;
static time_t not_before = NOT_BEFORE, not_after = NOT_AFTER;	/* of the next make_cert */
static X509 *ca;
static struct bytes cert_der, precert_der, precert_tbs, other_der, ca_der;

static void add_ext_der(X509 *x, const char *oid, int critical, const uint8_t *v, size_t n)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext;

	ASN1_OCTET_STRING_set(os, v, (int)n);
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
}

static void add_ext_conf(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, nid, value);

	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

/* ct: 0 none, 'p' the poison, 's' an SCT list of dummy bytes; it sits between two others. */
static X509 *make_cert(long serial, const char *cn, const char *sans, int ct)
{
	static const uint8_t poison[] = { 0x05, 0x00 };
	static const uint8_t scts[] = { 0x04, 0x06, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef };
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const uint8_t *)"Example", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	ASN1_TIME_set(X509_getm_notBefore(x), not_before);
	ASN1_TIME_set(X509_getm_notAfter(x), not_after);
	X509_set_pubkey(x, leaf_key);
	add_ext_conf(x, NID_basic_constraints, "critical,CA:FALSE");
	if (ct == 'p')
		add_ext_der(x, "1.3.6.1.4.1.11129.2.4.3", 1, poison, sizeof(poison));
	if (ct == 's')
		add_ext_der(x, "1.3.6.1.4.1.11129.2.4.2", 0, scts, sizeof(scts));
	add_ext_conf(x, NID_subject_alt_name, sans);
	X509_sign(x, ca_key, EVP_sha256());
	return x;
}

static void der_of(X509 *x, struct bytes *b)
{
	uint8_t *p = NULL;
	int n = i2d_X509(x, &p);

	b->p = NULL;
	b->n = 0;
	put(b, p, (size_t)n);
	OPENSSL_free(p);
}

static void test_setup(void)
{
	X509_NAME *name = X509_NAME_new();
	X509 *x;
	uint8_t *p = NULL;
	int n, idx;

	ca_key = EVP_EC_gen("P-256");
	leaf_key = EVP_EC_gen("P-256");
	ca = X509_new();
	X509_set_version(ca, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(ca), 1);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"Test CA", -1, -1, 0);
	X509_set_subject_name(ca, name);
	X509_set_issuer_name(ca, name);
	X509_NAME_free(name);
	X509_gmtime_adj(X509_getm_notBefore(ca), 0);
	X509_gmtime_adj(X509_getm_notAfter(ca), 86400);
	X509_set_pubkey(ca, ca_key);
	X509_sign(ca, ca_key, EVP_sha256());
	der_of(ca, &ca_der);

	x = make_cert(0x1234567890L, "www.example.org", SANS, 's');
	der_of(x, &cert_der);
	X509_free(x);
	x = make_cert(0x1234567890L, "www.example.org", SANS, 'p');
	der_of(x, &precert_der);
	/* The log's precert_entry holds the TBSCertificate without the poison (RFC 6962 3.2). */
	idx = X509_get_ext_by_OBJ(x, OBJ_txt2obj("1.3.6.1.4.1.11129.2.4.3", 1), -1);
	X509_EXTENSION_free(X509_delete_ext(x, idx));
	n = i2d_re_X509_tbs(x, &p);
	put(&precert_tbs, p, (size_t)n);
	OPENSSL_free(p);
	X509_free(x);
	x = make_cert(0x1234567891L, "www.example.org", SANS, 's');
	der_of(x, &other_der);
	X509_free(x);
}

static void test_cleanup(void)
{
	free(cert_der.p);
	free(precert_der.p);
	free(precert_tbs.p);
	free(other_der.p);
	free(ca_der.p);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
}

/* ---- hand-made CT encodings ---- */

static const uint8_t keyhash[32] = { 0xaa, 0xbb, [31] = 0xcc };
static const uint8_t leaf_index_ext[] = { 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02 };

static void put_te(struct bytes *b, uint64_t ts, int precert, const struct bytes *der,
		   const uint8_t *ext, size_t ext_len)
{
	put_uint(b, ts, 8);
	put_uint(b, precert ? 1 : 0, 2);
	if (precert)
		put(b, keyhash, sizeof(keyhash));
	put_vec(b, der->p, der->n, 3);
	put_vec(b, ext, ext_len, 2);
}

static void make_leaf(struct bytes *b, uint64_t ts, int precert, const struct bytes *der)
{
	memset(b, 0, sizeof(*b));
	put_uint(b, 0, 1);	/* version v1 */
	put_uint(b, 0, 1);	/* timestamped_entry */
	put_te(b, ts, precert, der, NULL, 0);
}

/* A tile: the final certificate (two chain hashes), then the precertificate (one). */
static void make_tile(struct bytes *b)
{
	uint8_t fp[64];

	memset(b, 0, sizeof(*b));
	memset(fp, 0x11, 32);
	memset(fp + 32, 0x22, 32);
	put_te(b, 1700000000123ULL, 0, &cert_der, leaf_index_ext, sizeof(leaf_index_ext));
	put_vec(b, fp, 64, 2);
	put_te(b, 1700000000456ULL, 1, &precert_tbs, NULL, 0);
	put_vec(b, precert_der.p, precert_der.n, 3);
	put_vec(b, fp, 32, 2);
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
	EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL);
}

/* The RFC 6962 leaf hash computed the plain way: SHA-256(0x00 || leaf_input). */
static void leaf_hash_of(const struct bytes *leaf, uint8_t out[32])
{
	struct bytes b = { 0 };

	put_uint(&b, 0, 1);
	put(&b, leaf->p, leaf->n);
	sha256(b.p, b.n, out);
	free(b.p);
}

/* An exact-size heap copy, so that AddressSanitizer sees any read past the end. */
static uint8_t *exact(const uint8_t *p, size_t n)
{
	uint8_t *c = xmalloc(n ? n : 1);

	memcpy(c, p, n);
	return c;
}

/* ---- tests ---- */

static void test_leaf_x509(void)
{
	struct bytes leaf;
	struct ct_entry e;
	const char *err = NULL;
	uint8_t h1[32], h2[32];

	make_leaf(&leaf, 1700000000999ULL, 0, &cert_der);
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == 0);
	CHECK(e.timestamp == 1700000000999ULL);
	CHECK(e.type == CT_ENTRY_X509);
	CHECK(e.der_len == cert_der.n && memcmp(e.der, cert_der.p, cert_der.n) == 0);
	CHECK(e.issuer_key_hash == NULL);
	CHECK(e.ext_len == 0 && !e.has_leaf_index);
	CHECK(e.te == leaf.p + 2 && e.te_len == leaf.n - 2);
	ct_entry_leaf_hash(&e, h1);
	leaf_hash_of(&leaf, h2);
	CHECK(memcmp(h1, h2, 32) == 0);
	free(leaf.p);
}

static void test_leaf_precert(void)
{
	struct bytes leaf;
	struct ct_entry e;
	const char *err = NULL;

	make_leaf(&leaf, 42, 1, &precert_tbs);
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == 0);
	CHECK(e.timestamp == 42 && e.type == CT_ENTRY_PRECERT);
	CHECK(e.issuer_key_hash && memcmp(e.issuer_key_hash, keyhash, 32) == 0);
	CHECK(e.der_len == precert_tbs.n && memcmp(e.der, precert_tbs.p, precert_tbs.n) == 0);
	free(leaf.p);
}

static void test_leaf_malformed(void)
{
	struct bytes leaf;
	struct ct_entry e;
	const char *err;

	make_leaf(&leaf, 1, 0, &cert_der);
	/* Control: the whole leaf parses. */
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == 0);
	for (size_t k = 0; k < leaf.n; k++) {
		uint8_t *c = exact(leaf.p, k);

		err = NULL;
		CHECK(ct_leaf_parse(c, k, &e, &err) == -1 && err != NULL);
		free(c);
	}
	put_uint(&leaf, 0, 1);
	err = NULL;
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == -1 && err != NULL);
	leaf.n--;
	leaf.p[11] = 2;		/* entry type: neither x509 nor precert */
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == -1);
	leaf.p[11] = 0;
	leaf.p[0] = 1;		/* version */
	CHECK(ct_leaf_parse(leaf.p, leaf.n, &e, &err) == -1);
	free(leaf.p);
}

/* A certificate length above 1 MiB is refused before any byte of it is needed. */
static void test_leaf_too_large(void)
{
	uint8_t leaf[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x10, 0x00, 0x01 };
	struct ct_entry e;
	const char *err = NULL;

	CHECK(ct_leaf_parse(leaf, sizeof(leaf), &e, &err) == -1 && err != NULL);
}

static void test_tile(void)
{
	struct bytes tile, leaf;
	struct ct_entry e[CT_TILE_WIDTH];
	size_t count = 99;
	const char *err = NULL;
	uint8_t h1[32], h2[32];

	make_tile(&tile);
	CHECK(ct_tile_parse(tile.p, tile.n, 2, e, &count, &err) == 0);
	CHECK(count == 2);
	CHECK(e[0].type == CT_ENTRY_X509 && e[0].timestamp == 1700000000123ULL);
	CHECK(e[0].der_len == cert_der.n && memcmp(e[0].der, cert_der.p, cert_der.n) == 0);
	CHECK(e[0].has_leaf_index && e[0].leaf_index == 0x0102);
	CHECK(e[0].chain_count == 2 && e[0].chain[0] == 0x11 && e[0].chain[32] == 0x22);
	CHECK(e[0].precert == NULL);
	CHECK(e[1].type == CT_ENTRY_PRECERT && e[1].timestamp == 1700000000456ULL);
	CHECK(memcmp(e[1].issuer_key_hash, keyhash, 32) == 0);
	CHECK(e[1].der_len == precert_tbs.n && memcmp(e[1].der, precert_tbs.p, precert_tbs.n) == 0);
	CHECK(e[1].precert_len == precert_der.n &&
	      memcmp(e[1].precert, precert_der.p, precert_der.n) == 0);
	CHECK(e[1].chain_count == 1 && !e[1].has_leaf_index);
	/* The second record hashes as the MerkleTreeLeaf of the same entry would. */
	memset(&leaf, 0, sizeof(leaf));
	put_uint(&leaf, 0, 2);
	put_te(&leaf, 1700000000456ULL, 1, &precert_tbs, NULL, 0);
	ct_entry_leaf_hash(&e[1], h1);
	leaf_hash_of(&leaf, h2);
	CHECK(memcmp(h1, h2, 32) == 0);
	ct_entry_leaf_hash(&e[0], h2);
	CHECK(memcmp(h1, h2, 32) != 0);
	/* Any width, or the wrong one. */
	CHECK(ct_tile_parse(tile.p, tile.n, 0, e, &count, &err) == 0 && count == 2);
	CHECK(ct_tile_parse(tile.p, tile.n, 1, e, &count, &err) == -1);
	CHECK(ct_tile_parse(tile.p, tile.n, 3, e, &count, &err) == -1);
	CHECK(ct_tile_parse(tile.p, tile.n, 257, e, &count, &err) == -1);
	free(leaf.p);
	free(tile.p);
}

static void test_tile_malformed(void)
{
	struct bytes tile;
	struct ct_entry e[CT_TILE_WIDTH];
	size_t count;
	const char *err;

	make_tile(&tile);
	for (size_t k = 0; k < tile.n; k++) {
		uint8_t *c = exact(tile.p, k);

		err = NULL;
		CHECK(ct_tile_parse(c, k, 2, e, &count, &err) == -1 && err != NULL);
		free(c);
	}
	/* A chain that is not a whole number of hashes. */
	tile.p[tile.n - 33] = 31;
	CHECK(ct_tile_parse(tile.p, tile.n - 1, 0, e, &count, &err) == -1);
	free(tile.p);
}

/* 257 small entries: more than a tile can hold. */
static void test_tile_too_many(void)
{
	struct bytes tile = { 0 }, der = { (uint8_t *)"\x30\x00", 2 };
	struct ct_entry *e = xcalloc(CT_TILE_WIDTH, sizeof(*e));
	size_t count;
	const char *err = NULL;

	for (int i = 0; i < CT_TILE_WIDTH; i++) {
		put_te(&tile, (uint64_t)i, 0, &der, NULL, 0);
		put_uint(&tile, 0, 2);
	}
	CHECK(ct_tile_parse(tile.p, tile.n, 0, e, &count, &err) == 0 && count == 256);
	CHECK(e[255].timestamp == 255);
	put_te(&tile, 256, 0, &der, NULL, 0);
	put_uint(&tile, 0, 2);
	CHECK(ct_tile_parse(tile.p, tile.n, 0, e, &count, &err) == -1 && err != NULL);
	CHECK(count == 0);
	free(tile.p);
	free(e);
}

static struct ct_cert cc;

static const char *name_str(const struct ct_name *nm, char *buf, size_t size)
{
	if (nm->kind == CT_NAME_IP) {
		if (ct_name_ip_text(nm, buf, size) < 0)
			return "(bad ip)";
		return buf;
	}
	snprintf(buf, size, "%.*s", (int)nm->len, (const char *)nm->p);
	return buf;
}

static void check_fields(const struct bytes *der, bool poison, bool sct)
{
	const char *err = NULL;
	char buf[CT_IP_TEXT_MAX + 256];
	static const char *const want[] = {
		"www.example.org", "www.example.org", "mail.example.org", "*.example.org",
		"192.0.2.1", "Shop.Example.NET", "2001:db8::1"
	};
	static const enum ct_name_kind kinds[] = {
		CT_NAME_CN, CT_NAME_DNS, CT_NAME_DNS, CT_NAME_DNS, CT_NAME_IP, CT_NAME_DNS, CT_NAME_IP
	};
	X509 *x;
	const uint8_t *p = cert_der.p;
	uint8_t *q = NULL;
	int n;

	CHECK(ct_cert_read(der->p, der->n, &cc, &err) == 0);
	CHECK(err == NULL);
	CHECK(cc.n_names == 7);
	for (size_t i = 0; i < 7 && i < cc.n_names; i++) {
		CHECK(cc.names[i].kind == kinds[i]);
		CHECK_STREQ(name_str(&cc.names[i], buf, sizeof(buf)), want[i]);
	}
	CHECK(cc.not_before == NOT_BEFORE && cc.not_after == NOT_AFTER);
	CHECK(cc.serial_len == 5 && memcmp(cc.serial, "\x12\x34\x56\x78\x90", 5) == 0);
	CHECK(cc.poison == poison && cc.sct_list == sct);
	/* Issuer and key, compared with OpenSSL's encoding of the final certificate. */
	x = d2i_X509(NULL, &p, (long)cert_der.n);
	n = i2d_X509_NAME(X509_get_issuer_name(x), &q);
	CHECK(cc.issuer_len == (size_t)n && memcmp(cc.issuer, q, (size_t)n) == 0);
	OPENSSL_free(q);
	q = NULL;
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &q);
	CHECK(cc.spki_len == (size_t)n && memcmp(cc.spki, q, (size_t)n) == 0);
	OPENSSL_free(q);
	X509_free(x);
}

static void test_names(void)
{
	const char *err = NULL;
	uint8_t *q = NULL;
	int n;
	X509 *x;
	const uint8_t *p = cert_der.p;

	check_fields(&cert_der, false, true);
	/* The TBSCertificate found is the one OpenSSL encodes. */
	x = d2i_X509(NULL, &p, (long)cert_der.n);
	n = i2d_re_X509_tbs(x, &q);
	CHECK(ct_cert_read(cert_der.p, cert_der.n, &cc, &err) == 0);
	CHECK(cc.tbs_len == (size_t)n && memcmp(cc.tbs, q, (size_t)n) == 0);
	OPENSSL_free(q);
	X509_free(x);
	check_fields(&precert_der, true, false);
	check_fields(&precert_tbs, false, false);
	/* The CA has one CN and no SAN. */
	CHECK(ct_cert_read(ca_der.p, ca_der.n, &cc, &err) == 0);
	CHECK(cc.n_names == 1 && cc.names[0].kind == CT_NAME_CN && cc.names[0].len == 7);
}

static void test_names_malformed(void)
{
	const struct bytes *all[] = { &cert_der, &precert_tbs };
	uint8_t id[32];
	const char *err;

	for (size_t a = 0; a < 2; a++) {
		for (size_t k = 0; k < all[a]->n; k++) {
			uint8_t *c = exact(all[a]->p, k);

			err = NULL;
			CHECK(ct_cert_read(c, k, &cc, &err) == -1 && err != NULL);
			err = NULL;
			CHECK(ct_cert_identity(c, k, id, &err) == -1 && err != NULL);
			free(c);
		}
	}
	/* Every byte changed: the reader answers without crashing (ASan would tell). */
	for (size_t i = 0; i < cert_der.n; i++) {
		uint8_t *c = exact(cert_der.p, cert_der.n);

		c[i] ^= 0xff;
		(void)ct_cert_read(c, cert_der.n, &cc, &err);
		(void)ct_cert_identity(c, cert_der.n, id, &err);
		free(c);
	}
	/* Garbage. */
	srand(7);
	for (int i = 0; i < 2000; i++) {
		uint8_t g[64];

		for (size_t j = 0; j < sizeof(g); j++)
			g[j] = (uint8_t)rand();
		g[0] = 0x30;
		g[1] = (uint8_t)(sizeof(g) - 2);
		(void)ct_cert_read(g, sizeof(g), &cc, &err);
	}
	CHECK(ct_cert_read((const uint8_t *)"\x30\x80\x00\x00", 4, &cc, &err) == -1);
	CHECK(ct_cert_read((const uint8_t *)"\x30\x85\x00\x00\x00\x00\x01\x00", 8, &cc, &err) == -1);
}

/* More than 1000 names is refused, not cut short. */
static void test_names_limit(void)
{
	struct bytes sans = { 0 }, der;
	char one[64];
	const char *err = NULL;
	X509 *x;

	for (int i = 0; i < 1000; i++) {
		int n = snprintf(one, sizeof(one), "%sDNS:h%d.example.org", i ? "," : "", i);

		put(&sans, one, (size_t)n);
	}
	put(&sans, "", 1);
	/* 999 SANs and the CN: exactly the limit. */
	sans.n = (size_t)(strstr((char *)sans.p, ",DNS:h999.") - (char *)sans.p);
	sans.p[sans.n] = 0;
	x = make_cert(5, "www.example.org", (char *)sans.p, 0);
	der_of(x, &der);
	X509_free(x);
	CHECK(ct_cert_read(der.p, der.n, &cc, &err) == 0 && cc.n_names == 1000);
	free(der.p);
	sans.p[sans.n] = ',';
	x = make_cert(5, "www.example.org", (char *)sans.p, 0);
	der_of(x, &der);
	X509_free(x);
	CHECK(ct_cert_read(der.p, der.n, &cc, &err) == -1 && err != NULL);
	free(der.p);
	free(sans.p);
}

/* UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5), a leap day. */
static void test_times(void)
{
	struct bytes der;
	const char *err = NULL;
	X509 *x;

	not_before = 1709208000;		/* 2024-02-29 12:00:00 */
	not_after = 2524608000 + 86399;		/* 2050-01-01 23:59:59 */
	x = make_cert(6, "t.example.org", "DNS:t.example.org", 0);
	not_before = NOT_BEFORE;
	not_after = NOT_AFTER;
	der_of(x, &der);
	X509_free(x);
	CHECK(ct_cert_read(der.p, der.n, &cc, &err) == 0);
	CHECK(cc.not_before == 1709208000 && cc.not_after == 2524608000 + 86399);
	free(der.p);
	x = make_cert(7, "t.example.org", "DNS:t.example.org", 0);
	not_before = 946684799;			/* 1999-12-31 23:59:59 */
	ASN1_TIME_set(X509_getm_notBefore(x), not_before);
	not_before = NOT_BEFORE;
	X509_sign(x, ca_key, EVP_sha256());
	der_of(x, &der);
	X509_free(x);
	CHECK(ct_cert_read(der.p, der.n, &cc, &err) == 0 && cc.not_before == 946684799);
	/* Control: a day that does not exist is refused ("991231" -> "990231"). */
	for (size_t i = 0; i + 13 <= der.n; i++)
		if (memcmp(der.p + i, "991231235959Z", 13) == 0)
			memcpy(der.p + i + 2, "02", 2);
	CHECK(ct_cert_read(der.p, der.n, &cc, &err) == -1 && err != NULL);
	free(der.p);
}

static void test_identity(void)
{
	uint8_t a[32], b[32], c[32], d[32], f[32];
	const char *err = NULL;

	CHECK(ct_cert_identity(cert_der.p, cert_der.n, a, &err) == 0);
	CHECK(ct_cert_identity(precert_der.p, precert_der.n, b, &err) == 0);
	CHECK(ct_cert_identity(precert_tbs.p, precert_tbs.n, c, &err) == 0);
	CHECK(ct_cert_identity(other_der.p, other_der.n, d, &err) == 0);
	CHECK(memcmp(a, b, 32) == 0);
	CHECK(memcmp(a, c, 32) == 0);
	CHECK(memcmp(a, d, 32) != 0);
	/* Control: the plain TBS hashes differ, so the removal is what makes them equal. */
	CHECK(ct_cert_read(cert_der.p, cert_der.n, &cc, &err) == 0);
	sha256(cc.tbs, cc.tbs_len, f);
	CHECK(memcmp(f, a, 32) != 0);
	/* A certificate without CT extensions hashes as its own TBS. */
	CHECK(ct_cert_identity(ca_der.p, ca_der.n, a, &err) == 0);
	CHECK(ct_cert_read(ca_der.p, ca_der.n, &cc, &err) == 0);
	sha256(cc.tbs, cc.tbs_len, f);
	CHECK(memcmp(f, a, 32) == 0);
}

static void test_match(void)
{
	struct ct_watch *w = ct_watch_new();
	const char *err = NULL;
	static const struct {
		const char *name;
		bool match;
	} table[] = {
		{ "example.org", true },		/* subtree watch includes its apex */
		{ "www.example.org", true },
		{ "a.b.example.org", true },
		{ "WWW.Example.ORG", true },		/* case */
		{ "www.example.org.", true },		/* trailing dot */
		{ "*.example.org", true },		/* wildcard inside the subtree */
		{ "badexample.org", false },		/* lookalike */
		{ "example.org.evil.com", false },
		{ "example.com", false },
		{ "org", false },
		{ "exact.example.net", true },		/* exact watch */
		{ "EXACT.example.net.", true },
		{ "x.exact.example.net", false },	/* exact: not below */
		{ "example.net", false },
		{ "*.example.net", true },		/* covers exact.example.net */
		{ "*.exact.example.net", false },	/* covers only names below it */
		{ "*.sub.example.com", true },		/* names below a subtree watch */
		{ "deep.sub.example.com", true },
		{ "sub.example.com", true },
		{ "*.com", false },			/* covers one label: not sub.example.com */
		{ "ww w.example.org", false },		/* invalid characters never match */
		{ "www.exam*ple.org", false },
		{ "www..example.org", false },
		{ "*", false },
		{ "", false },
		{ ".", false },
		{ "w\xc3\xa9.example.org", false },
	};
	bool tmp;

	CHECK(ct_watch_add(w, ".example.org", &err) == 0);
	CHECK(ct_watch_add(w, "Exact.Example.NET.", &err) == 0);
	CHECK(ct_watch_add(w, ".sub.example.com", &err) == 0);
	CHECK(ct_watch_add(w, "*.example.com", &err) == -1 && err != NULL);
	CHECK(ct_watch_add(w, "", &err) == -1);
	CHECK(ct_watch_add(w, "a..b", &err) == -1);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		tmp = ct_watch_match(w, table[i].name, strlen(table[i].name));
		if (tmp != table[i].match)
			fprintf(stderr, "match(%s) = %d\n", table[i].name, tmp);
		CHECK(tmp == table[i].match);
	}
	/* Many watched names: the table grows and every one is still found. */
	for (int i = 0; i < 500; i++) {
		char n[64];

		snprintf(n, sizeof(n), "host%d.example.info", i);
		CHECK(ct_watch_add(w, n, &err) == 0);
	}
	CHECK(ct_watch_match(w, "host0.example.info", 18));
	CHECK(ct_watch_match(w, "host499.example.info", 20));
	CHECK(!ct_watch_match(w, "host500.example.info", 20));
	CHECK(ct_watch_match(w, "*.example.info", 14));
	ct_watch_free(w);
}

static void test_match_cert(void)
{
	struct ct_watch *w = ct_watch_new();
	const char *err = NULL;

	CHECK(ct_cert_read(cert_der.p, cert_der.n, &cc, &err) == 0);
	CHECK(ct_watch_add(w, "other.example", &err) == 0);
	CHECK(ct_watch_match_cert(w, &cc) == -1);
	CHECK(ct_watch_add(w, "shop.example.net", &err) == 0);
	CHECK(ct_watch_match_cert(w, &cc) == 5);
	CHECK(ct_watch_add(w, "mail.example.org", &err) == 0);
	CHECK(ct_watch_match_cert(w, &cc) == 2);
	ct_watch_free(w);
}

TEST_MAIN(test_setup, test_leaf_x509, test_leaf_precert, test_leaf_malformed,
	  test_leaf_too_large, test_tile, test_tile_malformed, test_tile_too_many, test_names,
	  test_names_malformed, test_names_limit, test_times, test_identity, test_match, test_match_cert,
	  test_cleanup)
