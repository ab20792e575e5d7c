/*
 * test_mig_mail_map.c - presets, special-use folders by attribute and name, name mapping
 * across separators and modified UTF-7, INTERNALDATE parsing.
 */
#include <stdlib.h>
#include <string.h>

#include "migrate/mig_mail_map.h"
#include "unit.h"

static void test_presets(void)
{
	const struct mig_preset *p = mig_preset_find("gmail");

	CHECK(p != NULL && p->gmail && strcmp(p->port, "993") == 0);
	CHECK(mig_preset_find("GMX") != NULL && !mig_preset_find("gmx")->gmail);
	CHECK(mig_preset_find("webde") && mig_preset_find("outlook") && mig_preset_find("icloud") &&
	      mig_preset_find("yahoo") && mig_preset_find("aol"));
	CHECK(mig_preset_find("nosuch") == NULL);
}

static void test_special(void)
{
	CHECK(mig_special_from_attr("\\Sent", 5) == MIG_SU_SENT);
	CHECK(mig_special_from_attr("\\junk", 5) == MIG_SU_JUNK);
	CHECK(mig_special_from_attr("\\HasChildren", 12) == MIG_SU_NONE);
	CHECK(mig_special_from_name("Sent Items") == MIG_SU_SENT);
	CHECK(mig_special_from_name("Gesendet") == MIG_SU_SENT);
	CHECK(mig_special_from_name("Envoy\xc3\xa9s") == MIG_SU_SENT);
	CHECK(mig_special_from_name("Sent Messages") == MIG_SU_SENT);
	CHECK(mig_special_from_name("Papierkorb") == MIG_SU_TRASH);
	CHECK(mig_special_from_name("Deleted Items") == MIG_SU_TRASH);
	CHECK(mig_special_from_name("Spam") == MIG_SU_JUNK);
	CHECK(mig_special_from_name("inbox") == MIG_SU_INBOX);
	CHECK(mig_special_from_name("Projects") == MIG_SU_NONE);
	CHECK(!mig_gmail_skip(MIG_SU_ALL) && mig_gmail_skip(MIG_SU_IMPORTANT) &&
	      mig_gmail_skip(MIG_SU_FLAGGED) && !mig_gmail_skip(MIG_SU_SENT));
	CHECK_STREQ(mig_special_default_name(MIG_SU_SENT), "Sent");
	CHECK_STREQ(mig_special_attr(MIG_SU_DRAFTS), "\\Drafts");
}

static void test_names(void)
{
	char *s = mig_map_name("Work.Projects", '.', '/');

	CHECK_STREQ(s, "Work/Projects");
	free(s);
	s = mig_map_name("a/b.c", '.', '/');	/* '/' inside a component */
	CHECK_STREQ(s, "a_b/c");
	free(s);
	s = mig_map_name("Entw&APw-rfe/x", '/', '/');
	CHECK_STREQ(s, "Entw&APw-rfe/x");
	free(s);
	CHECK(mig_map_name("bad&", '/', '/') == NULL);
}

static void test_dates(void)
{
	CHECK(mig_parse_internaldate("01-Jan-1970 00:00:00 +0000", 26) == 0);
	CHECK(mig_parse_internaldate("01-Jan-1970 01:00:00 +0100", 26) == 0);
	CHECK(mig_parse_internaldate(" 5-Dec-2026 10:00:00 -0130", 26) ==
	      mig_parse_internaldate("05-Dec-2026 11:30:00 +0000", 26));
	CHECK(mig_parse_internaldate("05-Foo-2026 11:30:00 +0000", 26) == -1);
	CHECK(mig_parse_internaldate("garbage", 7) == -1);
}

/* A malformed port leaves nothing freed twice (the caller frees host and port after). */
static void test_server_parse(void)
{
	char *host = NULL, *port = NULL;
	enum imap_tls tls = IMAP_TLS_IMPLICIT;

	CHECK(mig_server_parse("imap://h.example:1143", IMAP_TLS_IMPLICIT, &host, &port, &tls));
	CHECK(strcmp(host, "h.example") == 0 && strcmp(port, "1143") == 0);
	CHECK(tls == IMAP_TLS_STARTTLS);
	CHECK(mig_server_parse("[::1]", IMAP_TLS_IMPLICIT, &host, &port, &tls));
	CHECK(strcmp(host, "::1") == 0 && strcmp(port, "993") == 0 && tls == IMAP_TLS_IMPLICIT);
	CHECK(!mig_server_parse("h.example:99999", IMAP_TLS_IMPLICIT, &host, &port, &tls));
	CHECK(port == NULL);
	CHECK(!mig_server_parse("imaps://user@h.example", IMAP_TLS_IMPLICIT, &host, &port, &tls));
	free(host);
	free(port);
}

TEST_MAIN(test_presets, test_special, test_names, test_dates, test_server_parse)
