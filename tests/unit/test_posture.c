/*
 * test_posture.c - the certificate posture's pure parts: which names may stand in records,
 * what CAA records say for each combination of options, and which values are refused.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ctmon/posture.h"
#include "strutil.h"

static void test_domain_names(void)
{
	CHECK(hostname_valid("example.org"));
	CHECK(hostname_valid("mx-1.example.org"));
	CHECK(hostname_valid("xn--bcher-kva.example"));
	CHECK(!hostname_valid(""));
	CHECK(!hostname_valid("lets encrypt"));
	CHECK(!hostname_valid(".example.org"));
	CHECK(!hostname_valid("example..org"));
	CHECK(!hostname_valid("-x.example.org"));
	CHECK(!hostname_valid("x-.example.org"));
	CHECK(!hostname_valid("ex\"ample.org"));
	CHECK(!hostname_valid("bücher.example"));
	char label[80];
	memset(label, 'a', 64);
	strcpy(label + 64, ".org");
	CHECK(!hostname_valid(label));	/* a label of 64 bytes */
	memmove(label, label + 1, strlen(label));	/* 63 bytes: the largest allowed */
	CHECK(hostname_valid(label));
}

/* The records for cas with the other options of c; NULL when refused. */
static char *caa(struct posture_caa c, char **err)
{
	*err = NULL;
	return posture_caa_records(&c, err);
}

static void test_caa(void)
{
	const char *one[] = { "letsencrypt.org" }, *two[] = { "letsencrypt.org", "sectigo.com" };
	const char *bad_ca[] = { "Let's Encrypt" };
	char *out, *err;

	out = caa((struct posture_caa){ .domain = "example.org", .cas = one, .ncas = 1 }, &err);
	CHECK_STREQ(out, "example.org. IN CAA 0 issue \"letsencrypt.org\"\n"
			 "example.org. IN CAA 0 issuewild \";\"\n");
	free(out);
	out = caa((struct posture_caa){ .domain = "example.org", .cas = two, .ncas = 2,
		.wildcard = true, .account = "https://ca.example/acct/1", .methods = "dns-01",
		.iodef = "https://example.org/caa-report" }, &err);
	CHECK_STREQ(out,
		"example.org. IN CAA 0 issue \"letsencrypt.org; accounturi=https://ca.example/acct/1;"
		" validationmethods=dns-01\"\n"
		"example.org. IN CAA 0 issuewild \"letsencrypt.org; accounturi=https://ca.example/acct/1;"
		" validationmethods=dns-01\"\n"
		"example.org. IN CAA 0 issue \"sectigo.com; accounturi=https://ca.example/acct/1;"
		" validationmethods=dns-01\"\n"
		"example.org. IN CAA 0 issuewild \"sectigo.com; accounturi=https://ca.example/acct/1;"
		" validationmethods=dns-01\"\n"
		"example.org. IN CAA 0 iodef \"https://example.org/caa-report\"\n");
	free(out);
	/* refused, with a sentence that names the value */
	CHECK(caa((struct posture_caa){ .domain = "example.org", .cas = bad_ca, .ncas = 1 },
		  &err) == NULL && strstr(err, "Let's Encrypt") != NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "example.org" }, &err) == NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "exa mple.org", .cas = one, .ncas = 1 },
		  &err) == NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "example.org", .cas = one, .ncas = 1,
		.account = "https://ca.example/a;b" }, &err) == NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "example.org", .cas = one, .ncas = 1,
		.account = "http://ca.example/a" }, &err) == NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "example.org", .cas = one, .ncas = 1,
		.methods = "dns-01; x" }, &err) == NULL);
	free(err);
	CHECK(caa((struct posture_caa){ .domain = "example.org", .cas = one, .ncas = 1,
		.iodef = "ftp://example.org" }, &err) == NULL && strstr(err, "iodef") != NULL);
	free(err);
}

TEST_MAIN(test_domain_names, test_caa)
