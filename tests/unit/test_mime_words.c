/*
 * test_mime_words.c - RFC 2047 encoded words decoded into UTF-8: B and Q, the charsets
 * decoded here and one through iconv, adjacent words joined, invalid words kept as written,
 * and the output bound.
 */
#include "unit.h"

#include "mime_words.h"

static void dec_is(const char *in, const char *want)
{
	char *s = mime_words_decode(in, strlen(in), 1024);

	CHECK_STREQ(s, want);
	free(s);
}

static void test_plain_and_single_words(void)
{
	dec_is("Hello world", "Hello world");		/* control: nothing to decode */
	dec_is("", "");
	dec_is("=?UTF-8?B?R3LDvMOfZQ==?=", "Gr\xc3\xbc\xc3\x9f" "e");
	dec_is("=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Berlin?=", "Gr\xc3\xbc\xc3\x9f" "e aus Berlin");
	dec_is("=?ISO-8859-1?Q?K=F6ln?=", "K\xc3\xb6ln");
	dec_is("=?iso-8859-15?q?=A4_5?=", "\xe2\x82\xac 5");	/* the euro sign of latin-9 */
	dec_is("=?iso-8859-1?q?=A4?=", "\xc2\xa4");		/* ...is the currency sign in latin-1 */
	dec_is("=?US-ASCII?Q?plain?=", "plain");
	dec_is("=?UTF-8*de?Q?Sprache?=", "Sprache");		/* RFC 2231 language */
	dec_is("Re: =?UTF-8?B?w6Q=?= und mehr", "Re: \xc3\xa4 und mehr");
	dec_is("=?UTF-8?B?w6Q?=", "\xc3\xa4");			/* padding left out */
	/* another charset through iconv */
	dec_is("=?windows-1252?Q?=80?=", "\xe2\x82\xac");
	dec_is("=?KOI8-R?B?8NLJ18XU?=", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82");
}

static void test_adjacent_words(void)
{
	/* white space between encoded words goes, between a word and text it stays */
	dec_is("=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab");
	dec_is("=?UTF-8?Q?a?=\r\n =?ISO-8859-1?Q?=E9?=", "a\xc3\xa9");
	dec_is("=?UTF-8?Q?a?= x =?UTF-8?Q?b?=", "a x b");
	dec_is("=?UTF-8?Q?a_?= =?UTF-8?Q?b?=", "a b");		/* encoded space kept */
	/* one character split over two words of one charset comes out whole */
	dec_is("=?UTF-8?B?w6?= =?UTF-8?B?pA?=", "\xc3\xa4");
	dec_is("=?UTF-8?Q?=C3?= =?UTF-8?Q?=A4?=", "\xc3\xa4");
	/* ...but not over two charsets: each half is invalid alone and stays as written */
	dec_is("=?UTF-8?Q?=C3?= =?utf8?Q?=A4?=", "=?UTF-8?Q?=C3?= =?utf8?Q?=A4?=");
	dec_is("=?UTF-8?Q?ok?= =?utf8?Q?=A4?=", "ok =?utf8?Q?=A4?=");
	dec_is("=?UTF-8?Q?=A4?= =?utf8?Q?ok?=", "=?UTF-8?Q?=A4?= ok");
}

static void test_invalid_kept(void)
{
	dec_is("=?UTF-8?B?!!!?=", "=?UTF-8?B?!!!?=");		/* bad base64 */
	dec_is("=?UTF-8?Q?=ZZ?=", "=?UTF-8?Q?=ZZ?=");		/* bad Q escape */
	dec_is("=?UTF-8?Q?=C3?=", "=?UTF-8?Q?=C3?=");		/* cut UTF-8 */
	dec_is("=?US-ASCII?Q?=E9?=", "=?US-ASCII?Q?=E9?=");
	dec_is("=?no-such-charset?Q?a?=", "=?no-such-charset?Q?a?=");
	dec_is("=?UTF-8?X?a?=", "=?UTF-8?X?a?=");		/* unknown encoding */
	dec_is("=?UTF-8?Q?a b?=", "=?UTF-8?Q?a b?=");		/* space inside */
	dec_is("=?UTF-8?Q?unterminated", "=?UTF-8?Q?unterminated");
	dec_is("=?../etc?Q?a?=", "=?../etc?Q?a?=");
	dec_is("=?UTF-8//TRANSLIT?Q?a?=", "=?UTF-8//TRANSLIT?Q?a?=");
	/* a bad word next to a good one: the good one is still decoded */
	dec_is("=?UTF-8?B?!?= =?UTF-8?Q?ok?=", "=?UTF-8?B?!?= ok");
}

static void test_bounds(void)
{
	char in[4096], *s;
	size_t n = 0;

	/* many words of a two-byte character: cut at a character boundary */
	while (n + 20 < sizeof(in))
		n += (size_t)snprintf(in + n, sizeof(in) - n, "=?UTF-8?Q?=C3=A4?= ");
	s = mime_words_decode(in, n, 101);
	CHECK(strlen(s) == 100);
	CHECK(mime_words_utf8_valid((unsigned char *)s, strlen(s)));
	free(s);
	s = mime_words_decode("=?UTF-8?Q?=C3=A4=C3=A4?=", 24, 3);
	CHECK_STREQ(s, "\xc3\xa4");
	free(s);
	/* a word longer than MIME_WORDS_MAX_WORD stays as written */
	char big[MIME_WORDS_MAX_WORD + 64];
	memcpy(big, "=?UTF-8?Q?", 10);
	memset(big + 10, 'a', MIME_WORDS_MAX_WORD);
	memcpy(big + 10 + MIME_WORDS_MAX_WORD, "?=", 3);
	s = mime_words_decode(big, strlen(big), sizeof(big));
	CHECK_STREQ(s, big);
	free(s);
	/* the length given is what is read: no NUL is needed */
	s = mime_words_decode("=?UTF-8?Q?ab?=XYZ", 14, 100);
	CHECK_STREQ(s, "ab");
	free(s);
}

static void test_utf8_valid(void)
{
	CHECK(mime_words_utf8_valid((const unsigned char *)"a\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80", 10));
	CHECK(!mime_words_utf8_valid((const unsigned char *)"\xc0\xaf", 2));	/* overlong */
	CHECK(!mime_words_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));	/* surrogate */
	CHECK(!mime_words_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));
	CHECK(!mime_words_utf8_valid((const unsigned char *)"\xe2\x82", 2));
	char raw[] = "K\xf6ln \xc3\xa4 \xe2\x82 \xf0\x9f\x98\x80\xc3";
	mime_words_utf8_scrub(raw);
	CHECK_STREQ(raw, "K?ln \xc3\xa4 ?? \xf0\x9f\x98\x80?");
}

TEST_MAIN(test_plain_and_single_words, test_adjacent_words, test_invalid_kept, test_bounds,
	  test_utf8_valid)
