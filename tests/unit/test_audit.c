/*
 * test_audit.c - the parsers behind postwarden audit: TXT strings joined, the MTA-STS and
 * TLS-RPT record syntaxes (RFC 8461 3.1, RFC 8460 3), SRV RDATA, and the SMTP exchange up
 * to STARTTLS, including data a server sends where it must not.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ctmon/audit.h"

static void test_txt_join(void)
{
	char out[64];
	static const unsigned char two[] = "\x07v=STSv1\x0a; id=abc12";
	static const unsigned char nul[] = "\x03" "a\0b";
	static const unsigned char cut[] = "\x09short";

	CHECK(audit_txt_join(two, sizeof(two) - 1, out, sizeof(out)) == 17);
	CHECK_STREQ(out, "v=STSv1; id=abc12");
	CHECK(audit_txt_join(nul, 4, out, sizeof(out)) == -1);
	CHECK(audit_txt_join(cut, sizeof(cut) - 1, out, sizeof(out)) == -1);
	CHECK(audit_txt_join(two, sizeof(two) - 1, out, 17) == -1);	/* no room for the NUL */
	CHECK(audit_txt_join(two, 0, out, sizeof(out)) == 0 && out[0] == '\0');
}

static void test_mta_sts(void)
{
	char id[33];

	CHECK(audit_mta_sts_parse("v=STSv1; id=20260101T000000", id) == AUDIT_TXT_OK);
	CHECK_STREQ(id, "20260101T000000");
	CHECK(audit_mta_sts_parse("v=STSv1;id=a;", id) == AUDIT_TXT_OK);
	CHECK(audit_mta_sts_parse("v=STSv1 ;\tid=x1 ; ext_1=v", id) == AUDIT_TXT_OK);
	CHECK_STREQ(id, "x1");
	CHECK(audit_mta_sts_parse("v=spf1 -all", id) == AUDIT_TXT_OTHER);
	CHECK(audit_mta_sts_parse("v=STSv10; id=a", id) == AUDIT_TXT_OTHER);
	CHECK(audit_mta_sts_parse("v=STSv1", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; ", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; id=", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; id=a-b", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; id=123456789012345678901234567890123", id) ==
	      AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; id=a; id=b", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1;; id=a", id) == AUDIT_TXT_BAD);
	CHECK(audit_mta_sts_parse("v=STSv1; id=a; bad field", id) == AUDIT_TXT_BAD);
}

static void test_tlsrpt(void)
{
	size_t n;

	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=mailto:tls@example.org", &n) == AUDIT_TXT_OK);
	CHECK(n == 1);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1;rua=mailto:a@x.org , https://r.example/tls;", &n) ==
	      AUDIT_TXT_OK);
	CHECK(n == 2);
	CHECK(audit_tlsrpt_parse("v=STSv1; id=a", &n) == AUDIT_TXT_OTHER);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1", &n) == AUDIT_TXT_BAD);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=", &n) == AUDIT_TXT_BAD);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=http://r.example/", &n) == AUDIT_TXT_BAD);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=mailto:nobody", &n) == AUDIT_TXT_BAD);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=mailto:a@x.org,", &n) == AUDIT_TXT_BAD);
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; ext=1", &n) == AUDIT_TXT_BAD);	/* no rua */
	CHECK(audit_tlsrpt_parse("v=TLSRPTv1; rua=mailto:a@x.org; rua=mailto:b@x.org", &n) ==
	      AUDIT_TXT_BAD);
}

static void test_srv(void)
{
	static const unsigned char ok[] = "\x00\x0a\x00\x01\x01\xd1\x04mail\x07" "example\x03org";
	static const unsigned char root[] = "\x00\x00\x00\x00\x00\x00";	/* + NUL: "." */
	static const unsigned char extra[] = "\x00\x00\x00\x00\x00\x00\x00\x01";
	struct audit_srv s;

	CHECK(audit_srv_parse(ok, sizeof(ok), &s));	/* the final NUL is the root label */
	CHECK(s.prio == 10 && s.weight == 1 && s.port == 465);
	CHECK_STREQ(s.target, "mail.example.org");
	free(s.target);
	CHECK(audit_srv_parse(root, sizeof(root), &s));
	CHECK_STREQ(s.target, ".");
	free(s.target);
	CHECK(!audit_srv_parse(ok, 6, &s));
	CHECK(!audit_srv_parse(ok, sizeof(ok) - 1, &s));	/* name cut short */
	CHECK(!audit_srv_parse(extra, sizeof(extra) - 1, &s));	/* a byte after the name */
}

/* Feed the server's side in one piece; the state it ends in and what was sent. */
static enum audit_smtp_state smtp(const char *server, char *sent, size_t sentlen)
{
	struct audit_smtp s = { 0 };
	size_t off = 0, len = strlen(server);

	sent[0] = '\0';
	for (;;) {
		size_t used;
		const char *send;
		bool more = audit_smtp_feed(&s, server + off, len - off, &used, &send);

		off += used;
		if (send != NULL)
			strncat(sent, send, sentlen - strlen(sent) - 1);
		if (!more || send == NULL)
			return s.state;
	}
}

static void test_smtp(void)
{
	char sent[256];

	CHECK(smtp("220 mx ESMTP\r\n250-mx\r\n250-SIZE 1\r\n250 STARTTLS\r\n220 go\r\n", sent,
		   sizeof(sent)) == AUDIT_SMTP_TLS);
	CHECK_STREQ(sent, "EHLO audit.postwarden.invalid\r\nSTARTTLS\r\n");
	CHECK(smtp("220 mx\r\n250-mx\r\n250 8BITMIME\r\n", sent, sizeof(sent)) ==
	      AUDIT_SMTP_NO_TLS);
	CHECK(smtp("220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 not now\r\n", sent, sizeof(sent)) ==
	      AUDIT_SMTP_NO_TLS);
	CHECK(smtp("554 go away\r\n", sent, sizeof(sent)) == AUDIT_SMTP_REFUSED);
	CHECK(sent[0] == '\0');
	CHECK(smtp("220 mx\r\n500 what\r\n", sent, sizeof(sent)) == AUDIT_SMTP_REFUSED);
	CHECK(smtp("HTTP/1.1 400 Bad\r\n", sent, sizeof(sent)) == AUDIT_SMTP_BAD);
	/* bytes after the 220 to STARTTLS would be read as if inside TLS */
	CHECK(smtp("220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 go\r\n250 injected\r\n", sent, sizeof(sent)) ==
	      AUDIT_SMTP_BAD);
	/* the first line of the EHLO reply is the server's name, not a keyword */
	CHECK(smtp("220 mx\r\n250 STARTTLS\r\n", sent, sizeof(sent)) == AUDIT_SMTP_NO_TLS);
	/* an incomplete greeting waits for more */
	CHECK(smtp("220 mx", sent, sizeof(sent)) == AUDIT_SMTP_GREETING);
}

static void test_report(void)
{
	struct audit_report r;
	json_t *j;

	audit_report_init(&r, "example.org");
	audit_add(&r, "mx", "example.org", AUDIT_PASS, "10 mx.example.org", "Nothing to do.");
	audit_add(&r, "caa", "example.org", AUDIT_WARN, "none", "Publish CAA.");
	CHECK(!audit_failed(&r));
	j = audit_report_json(&r);
	CHECK_STREQ(json_string_value(json_object_get(j, "result")), "warn");
	json_decref(j);
	audit_add(&r, "tlsa", "mx.example.org[192.0.2.1]:25", AUDIT_FAIL, "no match", "Fix.");
	CHECK(audit_failed(&r));
	j = audit_report_json(&r);
	CHECK_STREQ(json_string_value(json_object_get(j, "result")), "fail");
	CHECK(json_integer_value(json_object_get(json_object_get(j, "counts"), "fail")) == 1);
	CHECK(json_array_size(json_object_get(j, "lines")) == 3);
	json_decref(j);
	audit_report_free(&r);
}

TEST_MAIN(test_txt_join, test_mta_sts, test_tlsrpt, test_srv, test_smtp, test_report)
