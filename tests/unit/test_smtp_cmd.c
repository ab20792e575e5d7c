/*
 * test_smtp_cmd.c - the SMTP command parser: every verb, ESMTP parameters of MAIL and RCPT,
 * DSN xtext decoding, address syntax with and without SMTPUTF8, and the replies for bad input.
 */
#include <string.h>

#include "relay/relay_smtp_cmd.h"
#include "xmalloc.h"
#include "unit.h"

/* Parse a NUL-terminated line; returns the reply code (0 = ok). */
static int parse(const char *line, bool utf8, struct smtp_cmd *cmd)
{
	return smtp_cmd_parse(line, strlen(line), utf8, cmd);
}

/* The code a line gets, freeing whatever was parsed. */
static int code_of(const char *line, bool utf8)
{
	struct smtp_cmd cmd;
	int rc = parse(line, utf8, &cmd);

	if (rc == 0)
		smtp_cmd_free(&cmd);
	else if (strncmp(cmd.error, "", 1) == 0 || atoi(cmd.error) != rc)
		return -1;	/* the reply line must start with its code */
	return rc;
}

static void test_verbs(void)
{
	struct smtp_cmd c;

	CHECK(parse("EHLO mta.example.org", false, &c) == 0);
	CHECK(c.verb == SMTP_EHLO);
	CHECK_STREQ(c.arg, "mta.example.org");
	smtp_cmd_free(&c);
	CHECK(parse("helo [192.0.2.1]", false, &c) == 0);
	CHECK(c.verb == SMTP_HELO);
	CHECK_STREQ(c.arg, "[192.0.2.1]");
	smtp_cmd_free(&c);
	CHECK(parse("data", false, &c) == 0 && c.verb == SMTP_DATA);
	smtp_cmd_free(&c);
	CHECK(parse("RSET", false, &c) == 0 && c.verb == SMTP_RSET);
	smtp_cmd_free(&c);
	CHECK(parse("QUIT", false, &c) == 0 && c.verb == SMTP_QUIT);
	smtp_cmd_free(&c);
	CHECK(parse("NOOP whatever", false, &c) == 0 && c.verb == SMTP_NOOP);
	smtp_cmd_free(&c);
	CHECK(parse("HELP", false, &c) == 0 && c.verb == SMTP_HELP && c.arg == NULL);
	smtp_cmd_free(&c);
	CHECK(parse("VRFY postmaster", false, &c) == 0 && c.verb == SMTP_VRFY);
	CHECK_STREQ(c.arg, "postmaster");
	smtp_cmd_free(&c);
	CHECK(parse("StartTLS", false, &c) == 0 && c.verb == SMTP_STARTTLS);
	smtp_cmd_free(&c);

	CHECK(code_of("EHLO", false) == 501);
	CHECK(code_of("EHLO a b", false) == 501);
	CHECK(code_of("DATA now", false) == 501);
	CHECK(code_of("QUIT x", false) == 501);
	CHECK(code_of("STARTTLS x", false) == 501);
	CHECK(code_of("VRFY", false) == 501);
	CHECK(code_of("EXPN list", false) == 502);
	CHECK(code_of("AUTH PLAIN", false) == 502);
	CHECK(code_of("BDAT 10 LAST", false) == 502);
	CHECK(code_of("FOO", false) == 500);
	CHECK(code_of("", false) == 500);
	CHECK(code_of("MAILFROM:<a@b.c>", false) == 500);
}

static void test_mail(void)
{
	struct smtp_cmd c;

	CHECK(parse("MAIL FROM:<anna@example.org>", false, &c) == 0);
	CHECK(c.verb == SMTP_MAIL);
	CHECK_STREQ(c.path, "anna@example.org");
	CHECK(!c.has_size && c.body == SMTP_BODY_NONE && !c.smtputf8 && c.ret == SMTP_RET_NONE);
	CHECK(!c.requiretls);
	smtp_cmd_free(&c);

	/* RFC 8689 */
	CHECK(parse("MAIL FROM:<anna@example.org> SIZE=10 requiretls", false, &c) == 0);
	CHECK(c.requiretls && c.has_size);
	smtp_cmd_free(&c);

	/* the space Postfix puts after the colon */
	CHECK(parse("mail from: <anna@example.org>", false, &c) == 0);
	CHECK_STREQ(c.path, "anna@example.org");
	smtp_cmd_free(&c);

	/* null sender */
	CHECK(parse("MAIL FROM:<>", false, &c) == 0);
	CHECK_STREQ(c.path, "");
	smtp_cmd_free(&c);

	/* every parameter */
	CHECK(parse("MAIL FROM:<a@b.example> SIZE=12345 BODY=8BITMIME RET=HDRS ENVID=QQ+2B+3Dx+20y",
		    false, &c) == 0);
	CHECK(c.has_size && c.size == 12345);
	CHECK(c.body == SMTP_BODY_8BITMIME);
	CHECK(c.ret == SMTP_RET_HDRS);
	CHECK_STREQ(c.envid, "QQ+=x y");
	smtp_cmd_free(&c);
	CHECK(parse("MAIL FROM:<a@b.example> body=7bit ret=full smtputf8", false, &c) == 0);
	CHECK(c.body == SMTP_BODY_7BIT && c.ret == SMTP_RET_FULL && c.smtputf8);
	smtp_cmd_free(&c);

	/* source route is dropped */
	CHECK(parse("MAIL FROM:<@relay.example,@other.example:a@b.example>", false, &c) == 0);
	CHECK_STREQ(c.path, "a@b.example");
	smtp_cmd_free(&c);

	/* quoted local part */
	CHECK(parse("MAIL FROM:<\"john doe\\\"x\"@b.example>", false, &c) == 0);
	CHECK_STREQ(c.path, "\"john doe\\\"x\"@b.example");
	smtp_cmd_free(&c);

	/* address literal */
	CHECK(parse("MAIL FROM:<a@[192.0.2.7]>", false, &c) == 0);
	CHECK_STREQ(c.path, "a@[192.0.2.7]");
	smtp_cmd_free(&c);

	/* size beyond 64 bits saturates rather than wrapping */
	CHECK(parse("MAIL FROM:<a@b.example> SIZE=99999999999999999999", false, &c) == 0);
	CHECK(c.size == UINT64_MAX);
	smtp_cmd_free(&c);

	CHECK(code_of("MAIL FROM:a@b.example", false) == 501);		/* no brackets */
	CHECK(code_of("MAIL FROM:<a@b.example", false) == 501);
	CHECK(code_of("MAIL FROM:<a>", false) == 501);			/* no domain */
	CHECK(code_of("MAIL FROM:<a@>", false) == 501);
	CHECK(code_of("MAIL FROM:<@b.example>", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b..example>", false) == 501);
	CHECK(code_of("MAIL FROM:<a@-b.example>", false) == 501);
	CHECK(code_of("MAIL FROM:<a b@c.example>", false) == 501);
	CHECK(code_of("MAIL TO:<a@b.example>", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example>x", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> SIZE=", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> SIZE=12x", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> BODY=9BIT", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> BODY=BINARYMIME", false) == 504);
	CHECK(code_of("MAIL FROM:<a@b.example> RET=ALL", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> SMTPUTF8=yes", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> REQUIRETLS=yes", false) == 501);
	CHECK(code_of("MAIL FROM:<a@b.example> REQUIRETLS REQUIRETLS", false) == 501);
	CHECK(code_of("RCPT TO:<a@b.example> REQUIRETLS", false) == 555);	/* MAIL only */
	CHECK(code_of("MAIL FROM:<a@b.example> ENVID=a+2", false) == 501);	/* bad xtext */
	CHECK(code_of("MAIL FROM:<a@b.example> ENVID=a+0A", false) == 501);	/* control */
	CHECK(code_of("MAIL FROM:<a@b.example> AUTH=<>", false) == 555);
	CHECK(code_of("MAIL FROM:<a@b.example> X-FOO", false) == 555);
	CHECK(code_of("MAIL FROM:<a@b.example> NOTIFY=NEVER", false) == 555);	/* RCPT only */
	CHECK(code_of("MAIL FROM:<a@b.example> =x", false) == 501);
	/* ENVID longer than 100 characters */
	{
		char line[300];
		snprintf(line, sizeof(line), "MAIL FROM:<a@b.example> ENVID=%0101d", 0);
		CHECK(code_of(line, false) == 501);
	}
	/* local part over 64 octets */
	{
		char line[300] = "MAIL FROM:<";
		memset(line + strlen(line), 'x', 65);
		strcat(line, "@b.example>");
		CHECK(code_of(line, false) == 501);
	}
}

static void test_rcpt(void)
{
	struct smtp_cmd c;
	char *s;

	CHECK(parse("RCPT TO:<bob@example.net>", false, &c) == 0);
	CHECK(c.verb == SMTP_RCPT);
	CHECK_STREQ(c.path, "bob@example.net");
	CHECK(c.notify == 0 && c.orcpt == NULL);
	smtp_cmd_free(&c);

	CHECK(parse("RCPT TO: <bob@example.net> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@example.net",
		    false, &c) == 0);
	CHECK(c.notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY));
	CHECK_STREQ(c.orcpt, "rfc822;bob+x@example.net");
	s = smtp_notify_string(c.notify);
	CHECK_STREQ(s, "SUCCESS,DELAY");
	free(s);
	smtp_cmd_free(&c);

	CHECK(parse("RCPT TO:<bob@example.net> notify=never", false, &c) == 0);
	CHECK(c.notify == SMTP_NOTIFY_NEVER);
	s = smtp_notify_string(c.notify);
	CHECK_STREQ(s, "NEVER");
	free(s);
	smtp_cmd_free(&c);

	CHECK(parse("RCPT TO:<bob@example.net> NOTIFY=FAILURE,SUCCESS,DELAY", false, &c) == 0);
	s = smtp_notify_string(c.notify);
	CHECK_STREQ(s, "SUCCESS,FAILURE,DELAY");
	free(s);
	smtp_cmd_free(&c);

	CHECK(code_of("RCPT TO:<>", false) == 501);
	CHECK(code_of("RCPT TO:<bob>", false) == 501);
	CHECK(code_of("RCPT FROM:<bob@example.net>", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> NOTIFY=NEVER,SUCCESS", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> NOTIFY=SOMETIMES", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> NOTIFY=SUCCESS,", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> NOTIFY=DELAY,DELAY", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> NOTIFY=", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> ORCPT=bob@example.net", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> ORCPT=rfc822;", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> ORCPT=rfc822;a+ZZ", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> ORCPT=rfc822;a ORCPT=rfc822;b", false) == 501);
	CHECK(code_of("RCPT TO:<bob@example.net> SIZE=10", false) == 555);	/* MAIL only */
}

static void test_utf8(void)
{
	struct smtp_cmd c;

	/* MAIL decides from its own SMTPUTF8 parameter */
	CHECK(code_of("MAIL FROM:<j\xc3\xb6rg@example.org>", false) == 553);
	CHECK(parse("MAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8", false, &c) == 0);
	CHECK_STREQ(c.path, "j\xc3\xb6rg@example.org");
	smtp_cmd_free(&c);
	/* RCPT from the transaction's state */
	CHECK(code_of("RCPT TO:<m\xc3\xbcller@b\xc3\xa4r.example>", false) == 553);
	CHECK(code_of("RCPT TO:<m\xc3\xbcller@b\xc3\xa4r.example>", true) == 0);
	/* broken UTF-8 is never accepted */
	CHECK(code_of("RCPT TO:<m\xc3@example.org>", true) == 500);
	CHECK(code_of("RCPT TO:<m\xed\xa0\x80@example.org>", true) == 500);	/* surrogate */
	CHECK(code_of("RCPT TO:<m\xc0\xafx@example.org>", true) == 500);	/* overlong */
}

static void test_bad_input(void)
{
	struct smtp_cmd c;
	char line[5000];

	/* control characters and NUL */
	CHECK(smtp_cmd_parse("NOOP\0x", 6, false, &c) == 500);
	CHECK(code_of("NOOP \x01", false) == 500);
	CHECK(code_of("MAIL FROM:<a@b.example>\r", false) == 500);
	CHECK(code_of("RCPT TO:<a\x7f@b.example>", false) == 500);

	/* 510 octets are fine for any command, more only for MAIL and RCPT */
	memset(line, 0, sizeof(line));
	memcpy(line, "NOOP ", 5);
	memset(line + 5, 'x', 505);
	CHECK(code_of(line, false) == 0);
	line[510] = 'x';
	CHECK(code_of(line, false) == 500);
	CHECK(strstr((parse(line, false, &c), c.error), "too long") != NULL);

	/* MAIL with many parameters up to 4094 octets: the length itself is accepted */
	memset(line, 0, sizeof(line));
	strcpy(line, "MAIL FROM:<a@b.example>");
	while (strlen(line) < 600)
		strcat(line, " BODY=7BIT");
	CHECK(code_of(line, false) == 501);	/* duplicate BODY, not "too long" */
	memset(line, 'x', sizeof(line) - 1);
	memcpy(line, "MAIL FROM:<", 11);
	line[sizeof(line) - 1] = '\0';
	CHECK(code_of(line, false) == 500);

	/* path over 256 octets */
	memset(line, 0, sizeof(line));
	strcpy(line, "RCPT TO:<a@");
	for (int i = 0; i < 5; i++)
		strcat(line, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.");
	strcat(line, "example>");
	CHECK(code_of(line, false) == 501);

	/* domain label over 63 octets */
	memset(line, 0, sizeof(line));
	strcpy(line, "RCPT TO:<a@");
	memset(line + strlen(line), 'd', 64);
	strcat(line, ".example>");
	CHECK(code_of(line, false) == 501);
}

static void test_xtext(void)
{
	char *s;

	s = smtp_xtext_decode("a+2Bb+3D+20c", 12);
	CHECK_STREQ(s, "a+b= c");
	free(s);
	CHECK(smtp_xtext_decode("a+2", 3) == NULL);
	CHECK(smtp_xtext_decode("a+g0", 4) == NULL);
	CHECK(smtp_xtext_decode("a=b", 3) == NULL);
	CHECK(smtp_xtext_decode("a b", 3) == NULL);
	CHECK(smtp_xtext_decode("+00", 3) == NULL);
	CHECK(smtp_xtext_decode("+C3+A4", 6) == NULL);	/* only ASCII may be hex-encoded */
	s = smtp_xtext_encode("a+b= c\x01");
	CHECK_STREQ(s, "a+2Bb+3D+20c+01");
	free(s);
	s = smtp_xtext_encode("");
	CHECK_STREQ(s, "");
	free(s);
	CHECK(smtp_notify_string(0) == NULL);
}

TEST_MAIN(test_verbs, test_mail, test_rcpt, test_utf8, test_bad_input, test_xtext)
