/*
 * test_reply.c - the SMTP reply parser: single and multi-line replies, enhanced status codes,
 * EHLO keywords, partial input and malformed or oversized replies.
 */
#include <string.h>

#include "relay/relay_reply.h"
#include "xmalloc.h"
#include "unit.h"

static enum reply_result parse(const char *s, struct reply *r, size_t *used)
{
	return reply_parse(s, strlen(s), r, used);
}

static void test_single_line(void)
{
	struct reply r;
	size_t used;

	CHECK(parse("250 2.1.0 Ok\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.code == 250);
	CHECK_STREQ(r.enhanced, "2.1.0");
	CHECK(r.nlines == 1);
	CHECK_STREQ(r.lines[0], "2.1.0 Ok");
	CHECK(used == 14);
	reply_free(&r);

	CHECK(parse("220\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.code == 220 && r.nlines == 1 && r.enhanced[0] == '\0');
	reply_free(&r);

	/* bare LF accepted, and only the first reply is consumed */
	CHECK(parse("354 go ahead\n250 next\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.code == 354 && used == 13);
	reply_free(&r);
}

static void test_multi_line(void)
{
	struct reply r;
	size_t used;
	const char *ehlo = "250-mx.example.test\r\n250-PIPELINING\r\n250-starttls\r\n"
			   "250-SIZE 1000\r\n250 DSN\r\n";

	CHECK(parse(ehlo, &r, &used) == REPLY_DONE);
	CHECK(r.code == 250 && r.nlines == 5 && used == strlen(ehlo));
	CHECK(reply_has_keyword(&r, "STARTTLS"));
	CHECK(reply_has_keyword(&r, "SIZE"));
	CHECK(reply_has_keyword(&r, "DSN"));
	CHECK(!reply_has_keyword(&r, "8BITMIME"));
	CHECK(!reply_has_keyword(&r, "PIPE"));
	/* the greeting line's first word is not a keyword */
	CHECK(!reply_has_keyword(&r, "mx.example.test"));
	reply_free(&r);
}

static void test_partial(void)
{
	struct reply r;
	size_t used;

	CHECK(parse("", &r, &used) == REPLY_NEED_MORE);
	CHECK(parse("250-first\r\n", &r, &used) == REPLY_NEED_MORE);
	CHECK(parse("250-first\r\n250 sec", &r, &used) == REPLY_NEED_MORE);
	CHECK(parse("25", &r, &used) == REPLY_NEED_MORE);
}

static void test_enhanced(void)
{
	struct reply r;
	size_t used;

	CHECK(parse("550 5.7.1 denied\r\n", &r, &used) == REPLY_DONE);
	CHECK_STREQ(r.enhanced, "5.7.1");
	reply_free(&r);
	CHECK(parse("550 5.1.10 null\r\n", &r, &used) == REPLY_DONE);
	CHECK_STREQ(r.enhanced, "5.1.10");
	reply_free(&r);
	/* class must match the reply code */
	CHECK(parse("550 4.7.1 odd\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.enhanced[0] == '\0');
	reply_free(&r);
	CHECK(parse("451 4.3.0\r\n", &r, &used) == REPLY_DONE);
	CHECK_STREQ(r.enhanced, "4.3.0");
	reply_free(&r);
	CHECK(parse("550 5.1234.1 x\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.enhanced[0] == '\0');
	reply_free(&r);
	CHECK(parse("550 5.1 x\r\n", &r, &used) == REPLY_DONE);
	CHECK(r.enhanced[0] == '\0');
	reply_free(&r);
}

static void test_bad(void)
{
	struct reply r;
	size_t used;
	char *big;

	CHECK(parse("hello\r\n", &r, &used) == REPLY_BAD);
	CHECK(parse("25x ok\r\n", &r, &used) == REPLY_BAD);
	CHECK(parse("650 ok\r\n", &r, &used) == REPLY_BAD);
	CHECK(parse("150 ok\r\n", &r, &used) == REPLY_BAD);
	CHECK(parse("250_ok\r\n", &r, &used) == REPLY_BAD);
	/* code changes within a reply */
	CHECK(parse("250-a\r\n251 b\r\n", &r, &used) == REPLY_BAD);
	/* NUL inside a line */
	CHECK(reply_parse("250 a\0b\r\n", 9, &r, &used) == REPLY_BAD);

	/* an endless line is refused as soon as it is too long */
	big = xmalloc(REPLY_MAX_LINE + 10);
	memset(big, 'a', REPLY_MAX_LINE + 9);
	memcpy(big, "250 ", 4);
	big[REPLY_MAX_LINE + 9] = '\0';
	CHECK(parse(big, &r, &used) == REPLY_BAD);
	free(big);

	/* too many lines */
	{
		size_t n = (REPLY_MAX_LINES + 1) * 6 + 1;
		char *many = xmalloc(n + 8);
		size_t o = 0;

		for (int i = 0; i < REPLY_MAX_LINES + 1; i++) {
			memcpy(many + o, "250-x\n", 6);
			o += 6;
		}
		memcpy(many + o, "250 y\n", 7);
		CHECK(parse(many, &r, &used) == REPLY_BAD);
		free(many);
	}
}

static void test_text(void)
{
	struct reply r;
	size_t used;
	char *t;

	CHECK(parse("550-5.1.1 no \"such\"\r\n550 5.1.1 user\x01\r\n", &r, &used) == REPLY_DONE);
	t = reply_text(&r);
	CHECK_STREQ(t, "550 5.1.1 no ?such? 5.1.1 user?");
	free(t);
	reply_free(&r);
}

TEST_MAIN(test_single_line, test_multi_line, test_partial, test_enhanced, test_bad, test_text)
