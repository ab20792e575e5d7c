/*
 * test_audit.c - the audit's own parsers behind postwarden audit: SRV RDATA, the SMTP
 * exchange up to STARTTLS (including data a server sends where it must not) and the HTTP
 * response of the policy fetch. The MTA-STS and TLS-RPT syntaxes are the relay's, tested in
 * test_relay_sts.c and test_relay_tlsrpt.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "ctmon/audit.h"
#include "relay/relay_sts.h"

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

static void test_http_response(void)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nServer: x\r\n"
				 "Content-Type: Text/Plain; charset=utf-8\r\n\r\nbody";
	static const char nul[] = "HTTP/1.0 200 OK\r\nX: a\0b\r\n\r\n";
	char ctype[64], longer[160];
	size_t off = 0;
	int status = 0;

	CHECK(audit_http_response(ok, strlen(ok), &status, ctype, &off));
	CHECK(status == 200);
	CHECK_STREQ(ctype, "Text/Plain; charset=utf-8");	/* as served */
	CHECK(sts_content_type_ok(ctype));
	CHECK_STREQ(ok + off, "body");
	CHECK(HTTP("HTTP/1.1 200 OK\r\ncontent-type:\ttext/html \r\n\r\n"));
	CHECK_STREQ(ctype, "text/html");
	CHECK(!sts_content_type_ok(ctype));
	/* a long value is cut, still judged by its start */
	snprintf(longer, sizeof(longer), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; x=%0100d"
		 "\r\n\r\n", 0);
	CHECK(HTTP(longer));
	CHECK(strlen(ctype) == 63 && strncmp(ctype, "text/plain; x=000", 17) == 0);
	CHECK(sts_content_type_ok(ctype));
	CHECK(HTTP("HTTP/1.0 404 Not Found\n\n"));
	CHECK(status == 404 && ctype[0] == '\0' && off == 24);
	CHECK(!HTTP("HTTP/1.0 200 OK\r\n"));	/* no end */
	CHECK(!HTTP("SSH-2.0-x\r\n\r\n"));
	CHECK(!HTTP("HTTP/1.1 20 OK\r\n\r\n"));
	CHECK(!HTTP("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"));
	CHECK(!audit_http_response(nul, sizeof(nul) - 1, &status, ctype, &off));
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

TEST_MAIN(test_srv, test_smtp, test_http_response, test_report)
