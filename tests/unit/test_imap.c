/*
 * test_imap.c - IMAP responses: splitting the stream with literals and bounds, the head of
 * a streamed FETCH body, parsing status responses with codes, FETCH with literals and
 * sections, LIST; modified UTF-7.
 */
#include <stdlib.h>
#include <string.h>

#include "migrate/imap_parse.h"
#include "migrate/imap_utf7.h"
#include "unit.h"

static void test_need(void)
{
	const char *s = "* 1 FETCH (BODY[] {5}\r\nhello UID 3)\r\nA1 OK done\r\n";

	CHECK(imap_resp_need(s, strlen(s), 1000, 1000) == 37);
	CHECK(imap_resp_need(s, 20, 1000, 1000) == 0);	/* literal not complete */
	CHECK(imap_resp_need(s, 25, 1000, 1000) == 0);
	CHECK(imap_resp_need(s, strlen(s), 1000, 4) == -1);	/* literal over the bound */
	CHECK(imap_resp_need(s, strlen(s), 10, 1000) == -1);	/* line over the bound */
	CHECK(imap_resp_need("A1 OK", 5, 1000, 1000) == 0);
	CHECK(imap_resp_need("A1 OK very long", 15, 5, 1000) == -1);
	/* a huge announced literal is refused, not waited for */
	CHECK(imap_resp_need("* 1 FETCH (BODY[] {99999999999999999999}\r\n", 43, 1000, 1 << 30) == -1);
}

/* The head of a FETCH whose BODY[] literal is streamed; other responses are not heads. */
static void test_stream_head(void)
{
	const char *s = "* 12 FETCH (UID 7 BODY[] {30000000}\r\nFrom: a\r\n";
	uint64_t lit = 0;

	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == 37 && lit == 30000000);
	CHECK(imap_stream_head(s, 20, 1000, &lit) == 0);	/* line not complete */
	CHECK(imap_stream_head(s, strlen(s), 10, &lit) == -1);	/* line over the bound */
	s = "* 1 fetch (body[] {5}\r\nhello)\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == 23 && lit == 5);
	/* not the body, not FETCH, not untagged, no literal at the end */
	s = "* 1 FETCH (UID 7 BODY[HEADER] {5}\r\nhello)\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
	s = "* 1 FETCH (UID 7 XBODY[] {5}\r\nhello)\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
	s = "* 1 LIST () \"/\" {5}\r\nhello\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
	s = "A1 FETCH (BODY[] {5}\r\nhello)\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
	s = "* 1 FETCH (UID 7 FLAGS ())\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
	s = "* 3 EXISTS\r\n";
	CHECK(imap_stream_head(s, strlen(s), 1000, &lit) == -2);
}

static void test_status(void)
{
	struct imap_resp r;
	const char *err;
	const char *s = "* OK [UIDVALIDITY 1234] UIDs valid\r\n";

	CHECK(imap_resp_parse(s, strlen(s), &r, &err));
	CHECK(r.kind == IMAP_RESP_UNTAGGED && r.status == IMAP_ST_OK);
	CHECK_STREQ(r.code, "UIDVALIDITY");
	CHECK(r.code_arg_len == 4 && memcmp(r.code_arg, "1234", 4) == 0);
	CHECK(r.text_len == 10 && memcmp(r.text, "UIDs valid", 10) == 0);
	imap_resp_free(&r);

	s = "a7 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n";
	CHECK(imap_resp_parse(s, strlen(s), &r, &err));
	CHECK(r.kind == IMAP_RESP_TAGGED && r.status == IMAP_ST_NO);
	CHECK_STREQ(r.tag, "a7");
	CHECK_STREQ(r.code, "OVERQUOTA");
	imap_resp_free(&r);

	s = "+ \r\n";
	CHECK(imap_resp_parse(s, strlen(s), &r, &err) && r.kind == IMAP_RESP_CONT);
	imap_resp_free(&r);

	s = "a7 FOO bar\r\n";	/* control: a tagged response must be a status */
	CHECK(!imap_resp_parse(s, strlen(s), &r, &err));
}

static void test_fetch(void)
{
	struct imap_resp r;
	const char *err;
	const struct imap_node *n;
	uint32_t v;
	const char *s = "* 12 FETCH (UID 77 FLAGS (\\Seen $Forwarded) INTERNALDATE "
			"\"01-Jan-2001 10:00:00 +0100\" RFC822.SIZE 5 "
			"BODY[HEADER.FIELDS (MESSAGE-ID)] {3}\r\nx\r\n BODY[] {5}\r\nab)cd)\r\n";

	CHECK(imap_resp_parse(s, strlen(s), &r, &err));
	CHECK(r.has_number && r.number == 12);
	CHECK_STREQ(r.name, "FETCH");
	CHECK(r.args.nchild == 1 && r.args.child->type == IMAP_LIST);
	n = imap_fetch_item(r.args.child, "UID");
	CHECK(imap_node_u32(n, &v) && v == 77);
	n = imap_fetch_item(r.args.child, "FLAGS");
	CHECK(n && n->type == IMAP_LIST && n->nchild == 2 && imap_node_is(n->child->next, "$forwarded"));
	n = imap_fetch_item(r.args.child, "INTERNALDATE");
	CHECK(n && n->type == IMAP_STRING && n->len == 26);
	n = imap_fetch_item(r.args.child, "BODY[]");
	CHECK(n && n->type == IMAP_STRING && n->len == 5 && memcmp(n->p, "ab)cd", 5) == 0);
	n = imap_fetch_item(r.args.child, "BODY[HEADER.FIELDS (MESSAGE-ID)]");
	CHECK(n && n->len == 3);
	imap_resp_free(&r);

	/* a literal claiming more than there is */
	s = "* 1 FETCH (BODY[] {50}\r\nshort)\r\n";
	CHECK(!imap_resp_parse(s, strlen(s), &r, &err));
	s = "* 1 FETCH (FLAGS (\\Seen)\r\n";	/* unbalanced */
	CHECK(!imap_resp_parse(s, strlen(s), &r, &err));
}

static void test_list(void)
{
	struct imap_resp r;
	const char *err;
	const char *s = "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n";

	CHECK(imap_resp_parse(s, strlen(s), &r, &err));
	CHECK_STREQ(r.name, "LIST");
	CHECK(r.args.nchild == 3);
	CHECK(r.args.child->next->type == IMAP_STRING && r.args.child->next->p[0] == '/');
	CHECK(r.args.child->next->next->len == 10);
	imap_resp_free(&r);

	s = "* LIST () NIL INBOX\r\n";
	CHECK(imap_resp_parse(s, strlen(s), &r, &err));
	CHECK(r.args.child->next->type == IMAP_NIL);
	imap_resp_free(&r);

	s = "* CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND\r\n";
	CHECK(imap_resp_parse(s, strlen(s), &r, &err) && r.args.nchild == 3);
	imap_resp_free(&r);
	CHECK(imap_words_has("IMAP4rev1 LITERAL+ MULTIAPPEND", 30, "literal+"));
	CHECK(!imap_words_has("IMAP4rev1 LITERAL+ MULTIAPPEND", 30, "LITERAL"));
}

static void test_depth(void)
{
	char s[200] = "* X ";
	struct imap_resp r;
	const char *err;

	for (int i = 0; i < 40; i++)
		strcat(s, "(");
	for (int i = 0; i < 40; i++)
		strcat(s, ")");
	strcat(s, "\r\n");
	CHECK(!imap_resp_parse(s, strlen(s), &r, &err));
}

static void test_utf7(void)
{
	char *e, *d;

	e = imap_utf7_encode("Entw\xc3\xbcrfe", 9);
	CHECK_STREQ(e, "Entw&APw-rfe");
	free(e);
	e = imap_utf7_encode("A&B", 3);
	CHECK_STREQ(e, "A&-B");
	free(e);
	e = imap_utf7_encode("\xe5\x8f\xb0\xe5\x8c\x97", 6);	/* RFC 3501 example */
	CHECK_STREQ(e, "&U,BTFw-");
	free(e);
	e = imap_utf7_encode("\xf0\x9f\x93\xa7 Mail", 9);	/* outside the BMP */
	d = e ? imap_utf7_decode(e, strlen(e)) : NULL;
	CHECK_STREQ(d, "\xf0\x9f\x93\xa7 Mail");
	free(e);
	free(d);
	d = imap_utf7_decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-", 31);
	CHECK_STREQ(d, "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
	free(d);
	CHECK(imap_utf7_decode("&AGE-", 5) == NULL);	/* ASCII encoded: refused */
	CHECK(imap_utf7_decode("&U,BTFw", 7) == NULL);	/* unterminated */
	CHECK(imap_utf7_decode("a\xc3\xa4", 3) == NULL);	/* 8-bit */
	CHECK(imap_utf7_encode("\xc3", 1) == NULL);	/* bad UTF-8 */
	d = imap_utf7_decode("&-", 2);
	CHECK_STREQ(d, "&");
	free(d);
}

TEST_MAIN(test_need, test_stream_head, test_status, test_fetch, test_list, test_depth, test_utf7)
