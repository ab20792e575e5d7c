/*
 * test_relay_sts.c - the MTA-STS parsers and MX matching (relay_sts.c): TXT records, policy
 * texts valid and broken, and the wildcard rule of RFC 8461 4.1, each with a control case.
 */
#include "unit.h"

#include "relay/relay_dsn.h"
#include "relay/relay_policy.h"
#include "relay/relay_sts.h"

static bool parse(const char *s, struct sts_policy *p, char *err)
{
	return sts_policy_parse(s, strlen(s), p, err, 80);
}

static void test_txt(void)
{
	char id[STS_ID_MAX + 1];
	const char *one[] = { "v=spf1 -all", "v=STSv1; id=20261205T01" };
	const char *two[] = { "v=STSv1; id=a", "v=STSv1; id=b" };
	const uint8_t rd[] = { 8, 'v', '=', 'S', 'T', 'S', 'v', '1', ';', 5, ' ', 'i', 'd', '=', 'x' };
	const uint8_t bad[] = { 9, 'v', '=' };
	char txt[STS_TXT_MAX];

	CHECK(sts_txt_parse("v=STSv1; id=abc123", id) == STS_TXT_OK);
	CHECK_STREQ(id, "abc123");
	CHECK(sts_txt_parse("v=STSv1;id=x;", id) == STS_TXT_OK);
	CHECK_STREQ(id, "x");
	CHECK(sts_txt_parse("v=STSv1; ext=1; id=Z9", id) == STS_TXT_OK);
	CHECK_STREQ(id, "Z9");
	CHECK(sts_txt_parse("v=STSv1 ;\tid=x1 ; ext_1=v", id) == STS_TXT_OK);	/* blanks */
	CHECK_STREQ(id, "x1");
	/* RFC 8461 3.1: an extension name may hold "-" and "." */
	CHECK(sts_txt_parse("v=STSv1; id=a1; my-ext.v2=x", id) == STS_TXT_OK);
	CHECK_STREQ(id, "a1");
	CHECK(sts_txt_parse("v=STSv1;", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1; id=", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1;; id=a", id) == STS_TXT_INVALID);	/* empty field */
	CHECK(sts_txt_parse("v=STSv1; id=a; bad field", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1; id=with-dash", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1; id=123456789012345678901234567890123", id) == STS_TXT_INVALID);
	CHECK(sts_txt_parse("v=STSv1; id=12345678901234567890123456789012", id) == STS_TXT_OK);
	CHECK(sts_txt_parse("v=STSv10; id=1", id) == STS_TXT_NONE);
	CHECK(sts_txt_parse("v=spf1 -all", id) == STS_TXT_NONE);
	CHECK(sts_txt_set(one, 2, id) == STS_TXT_OK);
	CHECK_STREQ(id, "20261205T01");
	CHECK(sts_txt_set(two, 2, id) == STS_TXT_INVALID);
	CHECK(sts_txt_set(one, 1, id) == STS_TXT_NONE);
	CHECK(dns_txt_join(rd, sizeof(rd), txt, sizeof(txt)) >= 0);
	CHECK_STREQ(txt, "v=STSv1; id=x");
	CHECK(dns_txt_join(bad, sizeof(bad), txt, sizeof(txt)) < 0);
}

static void test_policy(void)
{
	const char *good = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
			   "mx: *.Example.NET.\r\nmax_age: 604800\r\nfuture: x\r\n";
	struct sts_policy p;
	char err[80];

	CHECK(sts_policy_parse(good, strlen(good), &p, err, sizeof(err)));
	CHECK(p.mode == STS_MODE_ENFORCE);
	CHECK(p.max_age == 604800);
	CHECK(p.nmx == 2);
	if (p.nmx == 2) {
		CHECK_STREQ(p.mx[0], "mail.example.com");
		CHECK_STREQ(p.mx[1], "*.example.net");
	}
	CHECK_STREQ(p.text, good);
	sts_policy_clear(&p);
	/* LF only, testing, first occurrence wins */
	CHECK(parse("version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\n"
			       "max_age: 31557600\n", &p, err));
	CHECK(p.mode == STS_MODE_TESTING);
	sts_policy_clear(&p);
	CHECK(parse("version: STSv1\nmode: none\nmax_age: 1\n", &p, err));
	CHECK(p.mode == STS_MODE_NONE && p.nmx == 0);
	sts_policy_clear(&p);
	CHECK(!parse("version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", &p, err));
	CHECK(!parse("version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", &p, err));
	CHECK(!parse("version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n", &p, err));
	CHECK(!parse("version: STSv1\nmode: enforce\nmax_age: 1\n", &p, err));
	CHECK_STREQ(err, "no mx pattern");
	CHECK(!parse("version: STSv1\nmode: enforce\nmx: a.b\n", &p, err));
	CHECK(!parse("version: STSv1\nmode: enforce\nmx: *a.b\nmax_age: 1\n", &p, err));
	CHECK(!parse("<html>\n", &p, err));
	CHECK(!parse("", &p, err));
	CHECK(!parse("version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n", &p, err));
	/* control: the last line's end is optional, max_age 0 is allowed */
	CHECK(parse("version: STSv1\nmode: none\nmax_age: 0", &p, err));
	CHECK(p.max_age == 0);
	sts_policy_clear(&p);
}

/* RFC 8461 3.3: the policy is served as text/plain, parameters allowed. */
static void test_content_type(void)
{
	CHECK(sts_content_type_ok("text/plain"));
	CHECK(sts_content_type_ok("Text/Plain; charset=utf-8"));
	CHECK(sts_content_type_ok("text/plain ;charset=utf-8"));
	CHECK(!sts_content_type_ok("text/plainx"));
	CHECK(!sts_content_type_ok("text/html"));
	CHECK(!sts_content_type_ok("text/pla"));
	CHECK(!sts_content_type_ok(""));
	CHECK(!sts_content_type_ok(NULL));
}

static void test_policy_size(void)
{
	size_t n = STS_POLICY_MAX + 1;
	char *big = malloc(n);
	struct sts_policy p;
	char err[80];

	memset(big, '\n', n);
	memcpy(big, "version: STSv1\nmode: none\nmax_age: 1\n", 37);
	CHECK(!sts_policy_parse(big, n, &p, err, sizeof(err)));
	CHECK(sts_policy_parse(big, n - 1, &p, err, sizeof(err)));	/* control */
	sts_policy_clear(&p);
	free(big);
}

static void test_match(void)
{
	CHECK(sts_mx_match("mail.example.com", "MAIL.example.com."));
	CHECK(!sts_mx_match("mail.example.com", "mail2.example.com"));
	CHECK(sts_mx_match("*.example.com", "mx1.example.com"));
	CHECK(!sts_mx_match("*.example.com", "a.mx1.example.com"));	/* one label only */
	CHECK(!sts_mx_match("*.example.com", "example.com"));
	CHECK(!sts_mx_match("*.example.com", ".example.com"));
	CHECK(!sts_mx_match("*.example.com", "mx1.example.org"));
	CHECK(!sts_mx_match("*.example.com", "mx1xexample.com"));
	CHECK(!sts_mx_match("", "a"));
}

/* An MTA-STS failure defers for every sender (the guarantee holds only its own failures),
 * bounces as a security failure and is named in the notification. */
static void test_reasons(void)
{
	enum policy_reason sts[] = { REASON_STS_MX_MISMATCH, REASON_STS_CERT, REASON_STS_NO_TLS };

	for (size_t i = 0; i < 3; i++) {
		char *t = dsn_explain(sts[i], "mx.example.com", "detail", false);

		CHECK(policy_reason_is_sts(sts[i]));
		CHECK(policy_reason_is_security(sts[i]));
		CHECK(policy_exhausted(true, false, sts[i], 1, 0, 100) == POLICY_DEFER);
		CHECK_STREQ(policy_status(sts[i], true), "5.7.10");
		CHECK(strstr(t, "MTA-STS") != NULL);
		free(t);
	}
	/* control: the guarantee's own security failure still holds */
	CHECK(!policy_reason_is_sts(REASON_DANE_MISMATCH));
	CHECK(policy_exhausted(true, false, REASON_DANE_MISMATCH, 1, 0, 100) == POLICY_HOLD);
	CHECK_STREQ(policy_reason_name(REASON_STS_CERT), "sts_certificate");
	CHECK(sts_reason_text(STS_REASON_PREFIX " of example.com (id 1, mode enforce): x"));
	CHECK(!sts_reason_text("mx.example.com said: 450"));
	CHECK(!sts_reason_text(NULL));
}

TEST_MAIN(test_txt, test_policy, test_policy_size, test_content_type, test_match, test_reasons)
