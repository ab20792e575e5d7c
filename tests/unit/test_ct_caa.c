/*
 * test_ct_caa.c - CAA: RDATA parsing (well-formed and malformed), the climbing step for each
 * kind of answer, the issue/issuewild decision (empty set, ";" deny-all, critical unknown
 * tag, RFC 8657 parameters) and the CAA identities of issuers from the configuration and
 * from the built-in table.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctmon/ct_caa.h"
#include "log.h"
#include "unit.h"
#include "xmalloc.h"

/* RDATA of "flags tag value" into buf; returns its length. */
static size_t rdata(uint8_t *buf, uint8_t flags, const char *tag, const char *value)
{
	size_t t = strlen(tag), v = strlen(value);

	buf[0] = flags;
	buf[1] = (uint8_t)t;
	memcpy(buf + 2, tag, t);
	memcpy(buf + 2 + t, value, v);
	return 2 + t + v;
}

static void test_rr_parse(void)
{
	uint8_t b[2048];
	struct ct_caa_rr rr = { 0 };
	size_t n = rdata(b, 0, "IsSue", "letsencrypt.org; accounturi=https://x/1");

	CHECK(ct_caa_rr_parse(b, n, &rr) == 0);
	CHECK(rr.flags == 0);
	CHECK_STREQ(rr.tag, "issue");
	CHECK_STREQ(rr.value, "letsencrypt.org; accounturi=https://x/1");
	ct_caa_rr_clear(&rr);
	CHECK(rr.tag == NULL && rr.value == NULL);

	n = rdata(b, 128, "tbs", "");	/* an empty value is allowed */
	CHECK(ct_caa_rr_parse(b, n, &rr) == 0);
	CHECK(rr.flags == 128);
	CHECK_STREQ(rr.value, "");
	ct_caa_rr_clear(&rr);

	/* Malformed: too short, tag longer than the data, empty or over-long or odd tag. */
	CHECK(ct_caa_rr_parse(b, 0, &rr) == -1);
	CHECK(ct_caa_rr_parse((const uint8_t *)"\0", 1, &rr) == -1);
	CHECK(ct_caa_rr_parse((const uint8_t *)"\0\5iss", 5, &rr) == -1);
	CHECK(ct_caa_rr_parse((const uint8_t *)"\0\0x", 3, &rr) == -1);
	n = rdata(b, 0, "abcdefghijklmnop", "x");	/* 16 bytes */
	CHECK(ct_caa_rr_parse(b, n, &rr) == -1);
	n = rdata(b, 0, "abcdefghijklmno", "x");	/* 15: the longest allowed */
	CHECK(ct_caa_rr_parse(b, n, &rr) == 0);
	ct_caa_rr_clear(&rr);
	n = rdata(b, 0, "is-sue", "x");
	CHECK(ct_caa_rr_parse(b, n, &rr) == -1);
	CHECK(ct_caa_rr_parse((const uint8_t *)"\0\5issuea\0b", 10, &rr) == -1);	/* NUL */
	memset(b, 'a', sizeof(b));
	n = rdata(b, 0, "issue", "");
	CHECK(ct_caa_rr_parse(b, n + CT_CAA_VALUE_MAX, &rr) == 0);
	ct_caa_rr_clear(&rr);
	CHECK(ct_caa_rr_parse(b, n + CT_CAA_VALUE_MAX + 1, &rr) == -1);
	CHECK(rr.tag == NULL);	/* untouched on failure */
}

/* An answer of the given records ("flags tag value" triples; tag NULL for raw bytes). */
static struct dns_answer *answer(enum dns_status st, enum dns_security sec, size_t n,
				 const char *const *v)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));
	uint8_t b[2048];

	a->qname = xstrdup("q");
	a->qtype = DNS_RR_CAA;
	a->status = st;
	a->security = sec;
	a->rrs = xcalloc(n + 1, sizeof(*a->rrs));
	for (size_t i = 0; i < n; i++) {
		size_t len = rdata(b, (uint8_t)atoi(v[3 * i]), v[3 * i + 1], v[3 * i + 2]);

		a->rrs[i].data = xmalloc(len);
		memcpy(a->rrs[i].data, b, len);
		a->rrs[i].len = len;
	}
	a->nrr = n;
	return a;
}

static void test_step(void)
{
	static const char *const le[] = { "0", "issue", "letsencrypt.org" };
	struct ct_caa *caa = NULL;
	char *err = NULL;
	struct dns_answer *a = answer(DNS_OK, DNS_SECURE, 1, le);

	CHECK(ct_caa_step(a, "example.org", &caa, &err) == CT_CAA_DONE);
	CHECK(caa != NULL && caa->n == 1 && caa->security == DNS_SECURE);
	CHECK_STREQ(caa ? caa->owner : NULL, "example.org");
	ct_caa_free(caa);
	caa = NULL;
	dns_answer_free(a);

	a = answer(DNS_NODATA, DNS_SECURE, 0, NULL);
	CHECK(ct_caa_step(a, "mail.example.org", &caa, &err) == CT_CAA_CLIMB);
	CHECK(caa == NULL && err == NULL);
	/* The last label below the root: the root itself is not asked, nothing was found. */
	CHECK(ct_caa_step(a, "org", &caa, &err) == CT_CAA_DONE);
	CHECK(caa != NULL && caa->n == 0);
	CHECK_STREQ(caa ? caa->owner : NULL, "");
	CHECK(ct_caa_allows(caa, "anyone.example", false));
	ct_caa_free(caa);
	caa = NULL;
	dns_answer_free(a);

	a = answer(DNS_NXDOMAIN, DNS_INSECURE, 0, NULL);
	CHECK(ct_caa_step(a, "nx.example.org", &caa, &err) == CT_CAA_CLIMB);
	dns_answer_free(a);

	/* Failures are not "no CAA". */
	a = answer(DNS_SERVFAIL, DNS_INSECURE, 0, NULL);
	CHECK(ct_caa_step(a, "example.org", &caa, &err) == CT_CAA_FAIL);
	CHECK(caa == NULL && err != NULL && strstr(err, "example.org") != NULL);
	free(err);
	err = NULL;
	dns_answer_free(a);
	a = answer(DNS_OK, DNS_BOGUS, 1, le);
	a->why_bogus = xstrdup("signature expired");
	CHECK(ct_caa_step(a, "example.org", &caa, &err) == CT_CAA_FAIL);
	CHECK(caa == NULL && err != NULL && strstr(err, "signature expired") != NULL);
	free(err);
	dns_answer_free(a);
}

/* allows() on a set built from triples. */
static bool allows(size_t n, const char *const *v, const char *id, bool wildcard)
{
	struct dns_answer *a = answer(DNS_OK, DNS_SECURE, n, v);
	struct ct_caa *caa = NULL;
	char *err = NULL;
	bool ok;

	if (n == 0) {
		caa = xcalloc(1, sizeof(*caa));
		caa->owner = xstrdup("");
	} else if (ct_caa_step(a, "example.org", &caa, &err) != CT_CAA_DONE) {
		abort();
	}
	ok = ct_caa_allows(caa, id, wildcard);
	ct_caa_free(caa);
	dns_answer_free(a);
	return ok;
}

static void test_allows(void)
{
	static const char *const issue[] = { "0", "issue", "letsencrypt.org",
					     "0", "issue", "pki.goog; accounturi=https://a/1" };
	static const char *const wild[] = { "0", "issue", "letsencrypt.org",
					    "0", "issuewild", "Sectigo.COM" };
	static const char *const nowild[] = { "0", "issue", "letsencrypt.org",
					      "0", "issuewild", ";" };
	static const char *const deny[] = { "0", "issue", ";" };
	static const char *const crit[] = { "0", "issue", "letsencrypt.org",
					    "128", "tbs", "x" };
	static const char *const noncrit[] = { "0", "issue", "letsencrypt.org",
					       "0", "tbs", "x" };
	static const char *const critknown[] = { "128", "issue", "letsencrypt.org",
						 "128", "iodef", "mailto:a@example.org" };
	static const char *const iodef_only[] = { "0", "iodef", "mailto:a@example.org" };
	static const char *const params[] = { "0", "issue",
		" letsencrypt.org ;accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1;"
		" validationmethods=dns-01" };
	static const char *const junk[] = { "0", "issue", "letsencrypt.org extra" };

	CHECK(allows(0, NULL, "anyone.example", false));	/* empty set: any CA */
	CHECK(allows(0, NULL, NULL, true));
	CHECK(allows(2, issue, "letsencrypt.org", false));
	CHECK(allows(2, issue, "PKI.goog", false));
	CHECK(!allows(2, issue, "sectigo.com", false));
	CHECK(!allows(2, issue, NULL, false));		/* unknown issuer: not allowed */
	CHECK(allows(2, issue, "letsencrypt.org", true));	/* no issuewild: issue rules */
	CHECK(allows(2, issue, "digicert.com,pki.goog", false));	/* any of a list */
	CHECK(!allows(2, issue, "digicert.com, sectigo.com", false));
	/* issuewild rules for a wildcard name, issue for the others. */
	CHECK(allows(2, wild, "sectigo.com", true));
	CHECK(!allows(2, wild, "letsencrypt.org", true));
	CHECK(allows(2, wild, "letsencrypt.org", false));
	CHECK(!allows(2, wild, "sectigo.com", false));
	CHECK(!allows(2, nowild, "letsencrypt.org", true));
	CHECK(allows(2, nowild, "letsencrypt.org", false));
	/* ";" alone: nobody. */
	CHECK(!allows(1, deny, "letsencrypt.org", false));
	CHECK(!allows(1, deny, "letsencrypt.org", true));
	/* An unknown critical tag stops every CA; a known critical one or unknown plain one not. */
	CHECK(!allows(2, crit, "letsencrypt.org", false));
	CHECK(allows(2, noncrit, "letsencrypt.org", false));
	CHECK(allows(2, critknown, "letsencrypt.org", false));
	/* No issue property at all: any CA. */
	CHECK(allows(1, iodef_only, "sectigo.com", false));
	/* RFC 8657 parameters after ';' do not hide the CA's name. */
	CHECK(allows(1, params, "letsencrypt.org", false));
	CHECK(!allows(1, params, "letsencrypt.org;", false));
	/* A value off the grammar names no CA. */
	CHECK(!allows(1, junk, "letsencrypt.org", false));
	CHECK(!ct_caa_allows(NULL, "letsencrypt.org", false));
}

/* A critical record that cannot be parsed is an unknown critical property. */
static void test_malformed_in_set(void)
{
	struct dns_answer *a = answer(DNS_OK, DNS_SECURE, 0, NULL);
	struct ct_caa *caa = NULL;
	char *err = NULL;

	a->rrs = xreallocarray(a->rrs, 2, sizeof(*a->rrs));
	a->rrs[0].data = xmalloc(22);
	memcpy(a->rrs[0].data, "\0\5issueletsencrypt.org", 22);
	a->rrs[0].len = 22;
	a->rrs[1].data = xmalloc(4);
	memcpy(a->rrs[1].data, "\x80\x30zz", 4);	/* tag length 48 > what follows */
	a->rrs[1].len = 4;
	a->nrr = 2;
	CHECK(ct_caa_step(a, "example.org", &caa, &err) == CT_CAA_DONE);
	CHECK(caa != NULL && caa->n == 2);
	CHECK(!ct_caa_allows(caa, "letsencrypt.org", false));
	ct_caa_free(caa);
	caa = NULL;
	a->rrs[1].data[0] = 0;	/* the same, not critical: ignored */
	CHECK(ct_caa_step(a, "example.org", &caa, &err) == CT_CAA_DONE);
	CHECK(ct_caa_allows(caa, "letsencrypt.org", false));
	ct_caa_free(caa);
	dns_answer_free(a);
}

static void test_identities(void)
{
	static const char *key = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
	char *id;

	/* The built-in table: by O, and by CN. */
	id = ct_caa_identities("/C=US/O=Let's Encrypt/CN=R3", NULL, "");
	CHECK_STREQ(id, "letsencrypt.org");
	free(id);
	id = ct_caa_identities("/C=US/O=Google Trust Services/CN=WR1", NULL, NULL);
	CHECK_STREQ(id, "pki.goog");
	free(id);
	id = ct_caa_identities("/C=AT/O=ZeroSSL/CN=ZeroSSL RSA Domain Secure Site CA", NULL, "");
	CHECK_STREQ(id, "sectigo.com");
	free(id);
	id = ct_caa_identities("/C=US/O=Amazon/CN=Amazon RSA 2048 M02", NULL, "");
	CHECK_STREQ(id, "amazon.com,amazontrust.com,awstrust.com,amazonaws.com");
	free(id);
	/* Not a prefix match: "Let's Encrypt Staging" is another issuer. */
	CHECK(ct_caa_identities("/O=Let's Encrypt Staging/CN=R3", NULL, "") == NULL);
	CHECK(ct_caa_identities("/O=Example Test CA/CN=Test Issuing CA", NULL, "") == NULL);

	/* [ctmon] issuer_caa: by O, by CN, by key hash; it comes before the table. */
	id = ct_caa_identities("/O=Example Test CA/CN=Test Issuing CA", NULL,
			       "Other=other.example, Example Test CA = ca.example");
	CHECK_STREQ(id, "ca.example");
	free(id);
	id = ct_caa_identities("/O=Example Test CA/CN=Test Issuing CA", NULL,
			       "Test Issuing CA=ca.example,Test Issuing CA=ca2.example,"
			       "Example Test CA=ca.example");
	CHECK_STREQ(id, "ca.example,ca2.example");
	free(id);
	id = ct_caa_identities("/O=Unnamed", key, "AA11BB22CC33DD44EE55FF6600112233445566778899"
			       "AABBCCDDEEFF00112233=keyed.example");
	CHECK_STREQ(id, "keyed.example");
	free(id);
	CHECK(ct_caa_identities("/O=Unnamed", NULL, "aa11=keyed.example") == NULL);
	id = ct_caa_identities("/C=US/O=Let's Encrypt/CN=R3", NULL, "Let's Encrypt=le.example");
	CHECK_STREQ(id, "le.example");
	free(id);
	/* Items without "=" or empty are skipped. */
	id = ct_caa_identities("/O=X", NULL, ",,X,X=,X=x.example");
	CHECK_STREQ(id, "x.example");
	free(id);
}

static void setup(void)
{
	log_init("test", LOG_LEVEL_ERROR, NULL);
}

TEST_MAIN(setup, test_rr_parse, test_step, test_allows, test_malformed_in_set,
	  test_identities)
