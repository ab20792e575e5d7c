/*
 * test_audit.c - the parsers behind postwarden audit: TXT strings joined, the MTA-STS and
 * TLS-RPT record syntaxes (RFC 8461 3.1, RFC 8460 3), SRV RDATA, and the SMTP exchange up
 * to STARTTLS, including data a server sends where it must not.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ctmon/audit.h"

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

/* Literal input, its length counted here */
#define HTTP(lit) audit_http_response((lit), strlen(lit), &status, ctype, &off)
#define STS(lit) audit_sts_policy_parse((lit), strlen(lit), &p)

static void test_http_response(void)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nServer: x\r\n"
				 "Content-Type: Text/Plain; charset=utf-8\r\n\r\nbody";
	static const char nul[] = "HTTP/1.0 200 OK\r\nX: a\0b\r\n\r\n";
	char ctype[64];
	size_t off = 0;
	int status = 0;

	CHECK(audit_http_response(ok, strlen(ok), &status, ctype, &off));
	CHECK(status == 200);
	CHECK_STREQ(ctype, "text/plain");
	CHECK_STREQ(ok + off, "body");
	CHECK(HTTP("HTTP/1.0 404 Not Found\n\n"));
	CHECK(status == 404 && ctype[0] == '\0' && off == 24);
	CHECK(!HTTP("HTTP/1.0 200 OK\r\n"));	/* no end */
	CHECK(!HTTP("SSH-2.0-x\r\n\r\n"));
	CHECK(!HTTP("HTTP/1.1 20 OK\r\n\r\n"));
	CHECK(!HTTP("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"));
	CHECK(!audit_http_response(nul, sizeof(nul) - 1, &status, ctype, &off));
}

static void test_sts_policy(void)
{
	struct audit_sts_policy p;
	static const char good[] = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.org\r\n"
				   "mx: *.backup.example.org\r\nmax_age: 604800\r\n";
	static const char none[] = "version: STSv1\nmode: none\nmax_age: 0";

	CHECK(audit_sts_policy_parse(good, strlen(good), &p));
	CHECK_STREQ(p.mode, "enforce");
	CHECK(p.nmx == 2 && p.max_age == 604800);
	CHECK_STREQ(p.mx[1], "*.backup.example.org");
	audit_sts_policy_clear(&p);
	CHECK(audit_sts_policy_parse(none, strlen(none), &p));	/* no mx needed, no final LF */
	audit_sts_policy_clear(&p);
	CHECK(!STS("version: STSv1\nmode: enforce\nmax_age: 1\n"));
	CHECK(!STS("version: STSv2\nmode: none\nmax_age: 1\n"));
	CHECK(!STS("version: STSv1\nmode: on\nmax_age: 1\n"));
	CHECK(!STS("version: STSv1\nmode: none\nmax_age: 31557601\n"));
	CHECK(!STS("version: STSv1\nmode: none\n"));
	CHECK(!STS("version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n"));
	CHECK(!STS("<html>"));
	CHECK(!STS(""));
	/* unknown keys are ignored */
	CHECK(STS("version: STSv1\nfoo: bar\nmode: testing\nmx: a.org\n"
				     "max_age: 5\n"));
	CHECK_STREQ(p.mode, "testing");
	audit_sts_policy_clear(&p);
}

static void test_sts_mx_match(void)
{
	CHECK(audit_sts_mx_match("mx.example.org", "MX.example.org"));
	CHECK(audit_sts_mx_match("*.example.org", "mx.example.org"));
	CHECK(!audit_sts_mx_match("*.example.org", "a.mx.example.org"));	/* one label only */
	CHECK(!audit_sts_mx_match("*.example.org", "example.org"));
	CHECK(!audit_sts_mx_match("mx.example.org", "mx2.example.org"));
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

TEST_MAIN(test_mta_sts, test_tlsrpt, test_srv, test_smtp, test_http_response,
	  test_sts_policy, test_sts_mx_match, test_report)
