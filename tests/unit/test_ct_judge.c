/*
 * test_ct_judge.c - the verdict on a certificate for a watched name: each expectation
 * broken alone and together (which verdict wins, what the reason names), allowed_issuers
 * by name and by issuer key hash, the CAA outcomes without a resolver, and the issuer key
 * read from an RFC 6962 X509ChainEntry (well-formed and malformed).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ctmon/ct_judge.h"
#include "log.h"
#include "strutil.h"
#include "unit.h"
#include "xmalloc.h"

#define PIN "1111111111111111111111111111111111111111111111111111111111111111"
#define IKEY "2222222222222222222222222222222222222222222222222222222222222222"

/* A CAA run with no resolver: every name is answered "not checked" at once. */
static void done_flag(void *arg)
{
	*(int *)arg += 1;
}

static void test_verdicts(void)
{
	char *names[] = { "www.example.org" };
	struct ct_judge_cert c = { .issuer = "/C=US/O=Example CA/CN=Issuing 1", .issuer_key = IKEY,
				   .spki = PIN, .caa_names = names, .ncaa_names = 1 };
	struct ct_judge_opts o = { .expected_keys = "aaaa, " PIN, .allowed_issuers = "Example CA",
				   .issuer_caa = "" };
	struct ct_judge_caa *jc = ct_judge_caa_new(NULL, NULL);
	struct ct_verdict v;
	int done = 0;

	ct_judge_caa_want(jc, "www.example.org");
	ct_judge_caa_want(jc, "WWW.example.org");	/* once */
	ct_judge_caa_run(jc, done_flag, &done);
	CHECK(done == 1);

	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "expected");
	CHECK_STREQ(v.caa, "not_checked");
	CHECK(strstr(v.reason, "an expected key, from an allowed issuer") == v.reason);
	CHECK(strstr(v.reason, "CAA not checked for www.example.org: no resolver") != NULL);
	free(v.reason);

	/* allowed_issuers by the issuer's key hash, case-insensitive; by the CN */
	o.allowed_issuers = "Other CA, " "2222222222222222222222222222222222222222222222222222222"
			    "22222222A";
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "issuer_not_allowed");	/* a different hash */
	CHECK(strstr(v.reason, "(key SHA-256 " IKEY ")") != NULL);
	free(v.reason);
	o.allowed_issuers = "Other CA, 2222222222222222222222222222222222222222222222222222222222222222";
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "expected");
	free(v.reason);
	o.allowed_issuers = "issuing 1";
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "expected");
	free(v.reason);
	c.issuer_key = NULL;	/* unknown key: only the names can match */
	o.allowed_issuers = IKEY;
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "issuer_not_allowed");
	CHECK(strstr(v.reason, "key SHA-256") == NULL);
	free(v.reason);
	o.allowed_issuers = "";	/* any */
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "expected");
	free(v.reason);

	/* key and issuer both wrong: unknown_key wins, both named */
	o.expected_keys = "aaaa";
	o.allowed_issuers = "Other CA";
	ct_judge(&o, &c, jc, &v);
	CHECK_STREQ(v.verdict, "unknown_key");
	CHECK(strstr(v.reason, "expected_keys") != NULL && strstr(v.reason, "allowed_issuers"));
	free(v.reason);

	/* no watched DNS name, no CAA run */
	c.ncaa_names = 0;
	ct_judge(&o, &c, NULL, &v);
	CHECK_STREQ(v.caa, "not_checked");
	free(v.reason);
	ct_judge_caa_free(jc);
}

/* A DER certificate with a fresh EC key; *spki_hash gets the hex SHA-256 of its SPKI. */
static unsigned char *make_cert(int *len, char spki_hash[65])
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char *der = NULL, *spki = NULL, md[32];
	int n;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"Issuer", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	*len = i2d_X509(x, &der);
	n = i2d_PUBKEY(k, &spki);
	EVP_Digest(spki, (size_t)n, md, NULL, EVP_sha256(), NULL);
	hex_encode(md, sizeof(md), spki_hash);
	OPENSSL_free(spki);
	X509_free(x);
	EVP_PKEY_free(k);
	return der;
}

static void put24(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 16);
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)v;
}

static void test_chain_issuer_key(void)
{
	char want[65], got[65] = "";
	int len;
	unsigned char *der = make_cert(&len, want);
	uint8_t *extra = xmalloc((size_t)len + 6 + 10);

	/* u24 chain length || u24 certificate length || DER, then a second (empty-ish) one */
	put24(extra, (size_t)len + 3);
	put24(extra + 3, (size_t)len);
	memcpy(extra + 6, der, (size_t)len);
	CHECK(ct_judge_chain_issuer_key(extra, (size_t)len + 6, got) == 0);
	CHECK_STREQ(got, want);
	CHECK(ct_judge_cert_key(der, (size_t)len, got) == 0);
	CHECK_STREQ(got, want);

	/* malformed: cut short, lengths beyond the data, empty chain, not a certificate */
	CHECK(ct_judge_chain_issuer_key(extra, (size_t)len + 5, got) == -1);
	CHECK(ct_judge_chain_issuer_key(extra, 2, got) == -1);
	CHECK(ct_judge_chain_issuer_key(NULL, 0, got) == -1);
	put24(extra, 0);
	CHECK(ct_judge_chain_issuer_key(extra, (size_t)len + 6, got) == -1);
	put24(extra, (size_t)len + 3);
	put24(extra + 3, (size_t)len + 1);
	CHECK(ct_judge_chain_issuer_key(extra, (size_t)len + 6, got) == -1);
	put24(extra + 3, (size_t)len);
	extra[6] ^= 0xff;
	CHECK(ct_judge_chain_issuer_key(extra, (size_t)len + 6, got) == -1);
	free(extra);
	OPENSSL_free(der);
}

static void setup(void)
{
	log_init("test", LOG_LEVEL_ERROR, NULL);
}

TEST_MAIN(setup, test_verdicts, test_chain_issuer_key)
