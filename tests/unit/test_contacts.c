/*
 * test_contacts.c - the address book migration's parsers: the DAV multistatus reader,
 * splitting and reading vCards, vCard 4.0 output, Google/Outlook CSV and Graph JSON.
 */
#include <string.h>

#include "unit.h"
#include "migrate/carddav.h"
#include "migrate/carddav_xml.h"
#include "migrate/contacts_csv.h"
#include "migrate/contacts_graph.h"
#include "migrate/vcard.h"

static const char ms_multiget[] =
	"<?xml version=\"1.0\"?>\n"
	"<d:multistatus xmlns:d=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:carddav\">"
	"<d:response><d:href>/u/book/a.vcf</d:href><d:propstat><d:prop>"
	"<d:getetag>\"e1\"</d:getetag>"
	"<C:address-data>BEGIN:VCARD\r\nVERSION:3.0\r\nFN:J&#246;rg &amp; Co\r\n"
	"END:VCARD\r\n</C:address-data>"
	"</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"
	"<d:response><d:href>/u/book/gone.vcf</d:href>"
	"<d:propstat><d:prop><C:address-data/></d:prop>"
	"<d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>"
	"<d:sync-token>http://x/sync/7</d:sync-token>"
	"</d:multistatus>";

static void test_multistatus_multiget(void)
{
	struct dav_ms ms;
	const char *err = NULL;

	CHECK(dav_ms_parse(ms_multiget, strlen(ms_multiget), &ms, &err) == 0);
	CHECK(ms.n == 2);
	if (ms.n != 2)
		return;
	CHECK_STREQ(ms.resp[0].href, "/u/book/a.vcf");
	CHECK(ms.resp[0].status == 200);
	CHECK_STREQ(ms.resp[0].etag, "\"e1\"");
	/* CRLF kept, entities and character references decoded */
	CHECK_STREQ(ms.resp[0].address_data,
		    "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:J\xc3\xb6rg & Co\r\nEND:VCARD\r\n");
	/* a 404 propstat is not an empty card */
	CHECK(ms.resp[1].address_data == NULL);
	CHECK(ms.resp[1].status == 0);
	CHECK_STREQ(ms.sync_token, "http://x/sync/7");
	dav_ms_free(&ms);
}

static void test_multistatus_discovery(void)
{
	static const char xml[] =
		"<multistatus xmlns=\"DAV:\"><response><href>/</href><propstat><prop>"
		"<current-user-principal><href>/alice/</href></current-user-principal>"
		"<resourcetype><collection/></resourcetype>"
		"</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
		"<response><href>/alice/c/</href><propstat><prop>"
		"<resourcetype><collection/><CR:addressbook xmlns:CR=\"urn:ietf:params:xml:ns:carddav\"/>"
		"</resourcetype><displayname><![CDATA[Fr<eunde]]></displayname>"
		"<supported-report-set><supported-report><report><sync-collection/></report>"
		"</supported-report></supported-report-set>"
		"</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>";
	struct dav_ms ms;
	const char *err = NULL;

	CHECK(dav_ms_parse(xml, strlen(xml), &ms, &err) == 0);
	CHECK(ms.n == 2);
	if (ms.n != 2)
		return;
	CHECK_STREQ(ms.resp[0].principal, "/alice/");
	CHECK(!ms.resp[0].addressbook);
	CHECK(ms.resp[1].addressbook && ms.resp[1].collection && ms.resp[1].sync_collection);
	CHECK_STREQ(ms.resp[1].displayname, "Fr<eunde");
	dav_ms_free(&ms);
}

static void test_multistatus_refused(void)
{
	static const char *const bad[] = {
		"<!DOCTYPE x [<!ENTITY a \"b\">]><multistatus/>",
		"<multistatus><response></multistatus>",
		"<multistatus>&bogus;</multistatus>",
		"<html><body>login</body></html>",
		"<multistatus><response><href>/x",
		"<:",
		"<multistatus><d:/></multistatus>",
	};
	struct dav_ms ms;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		CHECK(dav_ms_parse(bad[i], strlen(bad[i]), &ms, &err) < 0 && err != NULL);
	}
	/* control: an empty multistatus is fine */
	CHECK(dav_ms_parse("<multistatus/>", 14, &ms, &err) == 0 && ms.n == 0);
	dav_ms_free(&ms);
}

static void test_vcard_split_get(void)
{
	static const char f[] =
		"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:abc-1\r\nFN:A\r\n ndrea\r\nEND:VCARD\r\n"
		"junk between\n"
		"BEGIN:VCARD\nVERSION:3.0\nitem1.X-ADDRESSBOOKSERVER-KIND:group\nUID:a/b\nEND:VCARD\n";
	struct vcard_list l;
	const char *err = NULL;
	char *v;

	CHECK(vcard_split(f, strlen(f), &l, &err) == 0);
	CHECK(l.n == 2);
	if (l.n != 2)
		return;
	CHECK(strncmp(l.card[0], "BEGIN:VCARD\r\n", 13) == 0);
	CHECK(strcmp(l.card[0] + l.len[0] - 11, "END:VCARD\r\n") == 0);
	v = vcard_get(l.card[0], l.len[0], "fn");
	CHECK_STREQ(v, "Andrea");
	free(v);
	CHECK(!vcard_is_group(l.card[0], l.len[0]));
	CHECK(vcard_is_group(l.card[1], l.len[1]));
	v = vcard_resource_name(l.card[0], l.len[0]);
	CHECK_STREQ(v, "abc-1.vcf");
	free(v);
	v = vcard_resource_name(l.card[1], l.len[1]);	/* "a/b" is no path segment: hashed */
	CHECK(v && strlen(v) == 68 && strchr(v, '/') == NULL);
	free(v);
	vcard_list_free(&l);
	CHECK(vcard_split("BEGIN:VCARD\nFN:x\n", 17, &l, &err) < 0);
	CHECK(vcard_split("END:VCARD\n", 10, &l, &err) < 0);
}

static void test_vcard_out(void)
{
	struct vcard_out *v = vcard_out_new();
	const char *n[5] = { "M\xc3\xbcller", "Ann", "", "", "" };
	size_t len;
	char *c, *again;

	vcard_out_struct(v, "N", n, 5);
	vcard_out_text(v, "NOTE", "a;b,c\nd");
	vcard_out_text(v, "X-LONG", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	c = vcard_out_finish(v, NULL, "Ann M\xc3\xbcller", &len);
	CHECK(strncmp(c, "BEGIN:VCARD\r\nVERSION:4.0\r\n", 26) == 0);
	CHECK(strstr(c, "NOTE:a\\;b\\,c\\nd\r\n") != NULL);
	CHECK(strstr(c, "FN:Ann M\xc3\xbcller\r\n") != NULL);
	CHECK(strstr(c, "\r\n UID:") == NULL && strstr(c, "\r\nUID:") != NULL);
	/* folded, and no fold splits the two bytes of an é */
	CHECK(strstr(c, "\r\n ") != NULL && strstr(c, "\xc3\r\n") == NULL);
	again = vcard_get(c, len, "X-LONG");
	CHECK(again && strlen(again) == 80);
	free(again);
	/* the same contact gives the same UID */
	v = vcard_out_new();
	vcard_out_struct(v, "N", n, 5);
	vcard_out_text(v, "NOTE", "a;b,c\nd");
	vcard_out_text(v, "X-LONG", "x");
	again = vcard_out_finish(v, NULL, "Ann M\xc3\xbcller", &len);
	CHECK(strncmp(strstr(again, "UID:"), strstr(c, "UID:"), 36) != 0);	/* control */
	free(again);
	free(c);
}

static void test_csv_google_outlook(void)
{
	static const char google[] =
		"\xEF\xBB\xBF" "First Name,Middle Name,Last Name,Nickname,Birthday,Notes,"
		"E-mail 1 - Label,E-mail 1 - Value,E-mail 2 - Value,Phone 1 - Value,"
		"Organization Name\r\n"
		"J\xc3\xb6rg,,Schmidt,,1980-02-03,\"line1\nline2, \"\"q\"\"\",* Home,"
		"j@example.org,j2@example.org,+49 30 1,ACME\r\n"
		",,,,,,,,,,\r\n"
		",,,,,just a note,,,,,\r\n";
	static const char outlook[] =
		"First Name,Middle Name,Last Name,Title,Company,Job Title,E-mail Address,"
		"E-mail 2 Address,Mobile Phone,Business Phone,Home Phone,Notes\n"
		"Ana,,L\xc3\xb3pez,,Foo SA,CTO,ana@example.com,,+34 600,+34 91,,\n";
	struct vcard_list l = { 0 };
	size_t skipped = 0;
	const char *err = NULL;

	CHECK(contacts_csv_to_vcards(google, strlen(google), &l, &skipped, &err) == 0);
	CHECK(l.n == 2 && skipped == 0);
	if (l.n == 2) {
		CHECK(strstr(l.card[0], "FN:J\xc3\xb6rg Schmidt\r\n") != NULL);
		CHECK(strstr(l.card[0], "N:Schmidt;J\xc3\xb6rg;;;\r\n") != NULL);
		CHECK(strstr(l.card[0], "EMAIL:j@example.org\r\nEMAIL:j2@example.org\r\n") != NULL);
		CHECK(strstr(l.card[0], "NOTE:line1\\nline2\\, \"q\"\r\n") != NULL);
		CHECK(strstr(l.card[0], "ORG:ACME\r\n") != NULL);
		CHECK(strstr(l.card[0], "Home") == NULL);	/* the label column is not a value */
	}
	vcard_list_free(&l);
	CHECK(contacts_csv_to_vcards(outlook, strlen(outlook), &l, &skipped, &err) == 0);
	CHECK(l.n == 1);
	if (l.n == 1) {
		CHECK(strstr(l.card[0], "FN:Ana L\xc3\xb3pez\r\n") != NULL);
		CHECK(strstr(l.card[0], "TEL;TYPE=cell:+34 600\r\n") != NULL);
		CHECK(strstr(l.card[0], "TEL;TYPE=work:+34 91\r\n") != NULL);
		CHECK(strstr(l.card[0], "TITLE:CTO\r\n") != NULL);
	}
	vcard_list_free(&l);
	CHECK(contacts_csv_to_vcards("a,b\n1,2\n", 8, &l, &skipped, &err) < 0);
	CHECK(contacts_csv_to_vcards("Name\n\"x", 7, &l, &skipped, &err) < 0);
	vcard_list_free(&l);
}

static void test_graph_page(void)
{
	static const char page[] =
		"{\"value\":[{\"id\":\"AAMk1\",\"displayName\":\"Zo\xc3\xab Q\",\"givenName\":\"Zo\xc3\xab\","
		"\"surname\":\"Q\",\"emailAddresses\":[{\"name\":\"Z\",\"address\":\"z@example.net\"}],"
		"\"businessPhones\":[\"+1 555\"],\"mobilePhone\":null,\"birthday\":"
		"\"1990-05-17T11:59:59Z\",\"homeAddress\":{\"street\":\"1 Main St\",\"city\":\"X\"}},"
		"{\"id\":\"empty\"}],"
		"\"@odata.nextLink\":\"https://graph.example/v1.0/me/contacts?$skip=10\"}";
	struct vcard_list l = { 0 };
	size_t skipped = 0;
	const char *err = NULL;
	char *next = NULL;

	CHECK(contacts_graph_page(page, strlen(page), &l, &next, &skipped, &err) == 0);
	CHECK(l.n == 1 && skipped == 1);
	CHECK_STREQ(next, "https://graph.example/v1.0/me/contacts?$skip=10");
	if (l.n == 1) {
		CHECK(strstr(l.card[0], "UID:AAMk1\r\n") != NULL);
		CHECK(strstr(l.card[0], "FN:Zo\xc3\xab Q\r\n") != NULL);
		CHECK(strstr(l.card[0], "BDAY:19900517\r\n") != NULL);
		CHECK(strstr(l.card[0], "ADR;TYPE=home:;;1 Main St;X;;;\r\n") != NULL);
		CHECK(strstr(l.card[0], "TEL;TYPE=work:+1 555\r\n") != NULL);
	}
	free(next);
	vcard_list_free(&l);
	CHECK(contacts_graph_page("{\"error\":{}}", 12, &l, &next, &skipped, &err) < 0);
	CHECK(contacts_graph_page("[", 1, &l, &next, &skipped, &err) < 0);
}

static void test_urls(void)
{
	char *u;

	u = carddav_resolve("https://dav.example/a/b/", "/x/y.vcf");
	CHECK_STREQ(u, "https://dav.example/x/y.vcf");
	free(u);
	u = carddav_resolve("http://127.0.0.1:8080/a/b/", "c.vcf");
	CHECK_STREQ(u, "http://127.0.0.1:8080/a/b/c.vcf");
	free(u);
	u = carddav_resolve("https://dav.example/a/", "https://p01.dav.example/z/");
	CHECK_STREQ(u, "https://p01.dav.example/z/");
	free(u);
	CHECK(carddav_resolve("https://dav.example/", "file:///etc/passwd") == NULL);
	u = carddav_origin("https://dav.example:8443/x/y");
	CHECK_STREQ(u, "https://dav.example:8443");
	free(u);
	CHECK(carddav_origin("ftp://x/") == NULL);
	u = carddav_last_segment("https://dav.example/u/Friends%20Book/");
	CHECK_STREQ(u, "Friends%20Book");
	free(u);
	u = carddav_last_segment("/u/book/card.vcf");
	CHECK_STREQ(u, "card.vcf");
	free(u);
}

TEST_MAIN(test_urls, test_multistatus_multiget, test_multistatus_discovery, test_multistatus_refused,
	  test_vcard_split_get, test_vcard_out, test_csv_google_outlook, test_graph_page)
