/*
 * ct_names_bench.c - how fast the CT monitor's hot path reads a certificate: names found
 * per second on one core by ct_cert_read (plus the watch list test), beside OpenSSL's
 * d2i_X509 with its SAN and CN read the usual way, on the same realistic certificate
 * (RSA-2048 key and signature, five SANs, the extensions a public CA adds, an SCT list;
 * about 1.5 kB). Also the leaf path: MerkleTreeLeaf parse plus its leaf hash.
 *
 * Run by hand from the top of the tree:
 *   cc -O2 -D_GNU_SOURCE -Isrc -Isrc/lib -o /tmp/ct_names_bench bench/ct_names_bench.c \
 *      src/ctmon/ct_names.c src/ctmon/ct_match.c src/ctmon/ct_entry.c src/lib/log.c \
 *      src/lib/xmalloc.c -lcrypto && /tmp/ct_names_bench [SECONDS]
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

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);

	if (ext == NULL) {
		fprintf(stderr, "extension %d failed\n", nid);
		exit(1);
	}
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

static void add_raw(X509 *x, const char *oid, const uint8_t *v, size_t n)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext;

	ASN1_OCTET_STRING_set(os, v, (int)n);
	ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
}

/* An SCT list of the usual size: three SCTs of about 120 bytes (dummy bytes here). */
static void add_sct_list(X509 *x)
{
	uint8_t v[4 + 360];

	memset(v, 0x5a, sizeof(v));
	v[0] = 0x04;
	v[1] = 0x82;
	v[2] = (uint8_t)((sizeof(v) - 4) >> 8);
	v[3] = (uint8_t)(sizeof(v) - 4);
	add_raw(x, "1.3.6.1.4.1.11129.2.4.2", v, sizeof(v));
}

static X509 *make_realistic(void)
{
	EVP_PKEY *ca_key = EVP_RSA_gen(2048), *key = EVP_RSA_gen(2048);
	X509 *ca = X509_new(), *x = X509_new();
	X509_NAME *cn = X509_NAME_new(), *sn = X509_NAME_new();
	X509V3_CTX ctx;
	uint8_t aki[24];

	X509_NAME_add_entry_by_txt(cn, "C", MBSTRING_ASC, (const uint8_t *)"US", -1, -1, 0);
	X509_NAME_add_entry_by_txt(cn, "O", MBSTRING_ASC, (const uint8_t *)"Example Trust", -1, -1, 0);
	X509_NAME_add_entry_by_txt(cn, "CN", MBSTRING_ASC, (const uint8_t *)"R11", -1, -1, 0);
	X509_set_subject_name(ca, cn);
	X509_set_issuer_name(ca, cn);
	X509_set_pubkey(ca, ca_key);
	X509_NAME_add_entry_by_txt(sn, "CN", MBSTRING_ASC, (const uint8_t *)"mail.example.org", -1,
				   -1, 0);
	X509_set_version(x, 2);
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), 0x04a1b2c3d4e5f607ULL);
	X509_set_issuer_name(x, cn);
	X509_set_subject_name(x, sn);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 90 * 86400);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	add_conf(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment");
	add_conf(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
	add_conf(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
	add_conf(x, &ctx, NID_subject_key_identifier, "hash");
	/* authorityKeyIdentifier: keyIdentifier [0] of 20 bytes. */
	memset(aki, 0x3c, sizeof(aki));
	memcpy(aki, "\x30\x16\x80\x14", 4);
	add_raw(x, "2.5.29.35", aki, sizeof(aki));
	add_conf(x, &ctx, NID_info_access, "OCSP;URI:http://r11.o.example-trust.org,"
		 "caIssuers;URI:http://r11.i.example-trust.org/");
	add_conf(x, &ctx, NID_subject_alt_name, "DNS:mail.example.org,DNS:imap.example.org,"
		 "DNS:smtp.example.org,DNS:www.example.org,DNS:example.org");
	/* certificatePolicies: the CA/B Forum domain-validated policy. */
	add_raw(x, "2.5.29.32", (const uint8_t *)"\x30\x0a\x30\x08\x06\x06\x67\x81\x0c\x01\x02\x01",
		12);
	add_conf(x, &ctx, NID_crl_distribution_points, "URI:http://r11.c.example-trust.org/12.crl");
	add_sct_list(x);
	X509_sign(x, ca_key, EVP_sha256());
	X509_NAME_free(cn);
	X509_NAME_free(sn);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(ca_key);
	return x;
}

/* The OpenSSL way, as a monitor using it would: parse all, then read SANs and CN. */
static size_t openssl_names(const uint8_t *der, size_t n)
{
	const uint8_t *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)n);
	GENERAL_NAMES *gns;
	size_t count = 0;
	int idx = -1;

	if (x == NULL)
		exit(1);
	gns = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	count += gns ? (size_t)sk_GENERAL_NAME_num(gns) : 0;
	GENERAL_NAMES_free(gns);
	while ((idx = X509_NAME_get_index_by_NID(X509_get_subject_name(x), NID_commonName,
						 idx)) >= 0)
		count++;
	X509_free(x);
	return count;
}

int main(int argc, char **argv)
{
	static struct ct_cert cert;
	double secs = argc > 1 ? atof(argv[1]) : 2.0, t0, t;
	X509 *x = make_realistic();
	uint8_t *der = NULL, *leaf, h[32];
	int n = i2d_X509(x, &der);
	struct ct_watch *w = ct_watch_new();
	struct ct_entry e;
	const char *err;
	size_t iters = 0, names = 0, leaf_len;
	long hits = 0;

	ct_watch_add(w, ".example.com", &err);
	ct_watch_add(w, "other.example.net", &err);
	printf("certificate: %d bytes\n", n);

	t0 = now();
	do {
		for (int i = 0; i < 10000; i++) {
			if (ct_cert_read(der, (size_t)n, &cert, &err) < 0)
				return 1;
			names += cert.n_names;
			hits += ct_watch_match_cert(w, &cert) >= 0;
		}
		iters += 10000;
	} while ((t = now() - t0) < secs);
	printf("ct_cert_read + match: %.0f certificates/s, %.0f names/s (%zu names each, %ld hits)\n",
	       (double)iters / t, (double)names / t, cert.n_names, hits);

	/* The leaf path: a MerkleTreeLeaf holding it, parsed and hashed, then read. */
	leaf_len = 2 + 8 + 2 + 3 + (size_t)n + 2;
	leaf = calloc(1, leaf_len);
	leaf[12] = (uint8_t)(n >> 16);
	leaf[13] = (uint8_t)(n >> 8);
	leaf[14] = (uint8_t)n;
	memcpy(leaf + 15, der, (size_t)n);
	iters = 0;
	t0 = now();
	do {
		for (int i = 0; i < 10000; i++) {
			if (ct_leaf_parse(leaf, leaf_len, &e, &err) < 0 ||
			    ct_cert_read(e.der, e.der_len, &cert, &err) < 0)
				return 1;
			ct_entry_leaf_hash(&e, h);
			hits += ct_watch_match_cert(w, &cert) >= 0;
		}
		iters += 10000;
	} while ((t = now() - t0) < secs);
	printf("leaf parse + leaf hash + read + match: %.0f entries/s\n", (double)iters / t);

	iters = 0;
	names = 0;
	t0 = now();
	do {
		for (int i = 0; i < 1000; i++)
			names += openssl_names(der, (size_t)n);
		iters += 1000;
	} while ((t = now() - t0) < secs);
	printf("OpenSSL d2i_X509 + SAN + CN: %.0f certificates/s, %.0f names/s\n",
	       (double)iters / t, (double)names / t);
	free(leaf);
	OPENSSL_free(der);
	X509_free(x);
	ct_watch_free(w);
	return 0;
}
