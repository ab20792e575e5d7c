/*
 * test_keys_names.c - OPENPGPKEY/SMIMEA owner names, WKD hashes and z-base-32: known
 * answers from RFC 7929 and the WKD draft, and GnuPG's own output for a generated key
 * (gpg --with-wkd-hash, gpg --export-options export-dane).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "keys/keys.h"
#include "keys/keyfix.h"
#include "unit.h"
#include "xmalloc.h"

static void test_setup(void)
{
	keyfix_generate("pw-keynames", "names");
}

static void test_cleanup(void)
{
	keyfix_cleanup();
}

static void test_known_answers(void)
{
	char *s;

	s = keys_dane_name("hugh@example.com", "_openpgpkey");
	CHECK_STREQ(s, "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey."
		       "example.com");
	free(s);
	s = keys_dane_name("hugh@Example.COM.", "_smimecert");
	CHECK_STREQ(s, "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._smimecert."
		       "example.com");
	free(s);
	s = keys_wkd_hash("Joe.Doe");
	CHECK_STREQ(s, "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
	free(s);
	s = keys_wkd_hash("joe.doe");
	CHECK_STREQ(s, "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
	CHECK(s && strlen(s) == 32);
	free(s);
}

/* The local-part is hashed as given: case matters for DANE, not for WKD. */
static void test_case(void)
{
	char *a = keys_dane_name("Hugh@example.com", "_openpgpkey");
	char *b = keys_dane_name("hugh@example.com", "_openpgpkey");

	CHECK(a && b && strcmp(a, b) != 0);
	CHECK(a && strlen(a) == 56 + strlen("._openpgpkey.example.com"));
	for (size_t i = 0; a && i < 56; i++)
		CHECK(isxdigit((unsigned char)a[i]) && !isupper((unsigned char)a[i]));
	free(a);
	free(b);
}

static void test_bad_input(void)
{
	CHECK(keys_dane_name("nodomain", "_openpgpkey") == NULL);
	CHECK(keys_dane_name("@example.com", "_openpgpkey") == NULL);
	CHECK(keys_dane_name("user@", "_openpgpkey") == NULL);
	CHECK(keys_dane_name("user@.", "_openpgpkey") == NULL);
	CHECK(keys_dane_name("user@example.com", "") == NULL);
}

static void test_zbase32(void)
{
	static const uint8_t ff = 0xff, zero = 0, two[2] = { 0xf0, 0xbf };
	char *s;

	s = keys_zbase32(&zero, 1);
	CHECK_STREQ(s, "yy");
	free(s);
	/* 11111 111(00): alphabet[31] = '9', alphabet[28] = 'h' */
	s = keys_zbase32(&ff, 1);
	CHECK_STREQ(s, "9h");
	free(s);
	/* 11110 00010 11111 1(0000): 30 '6', 2 'n', 31 '9', 16 'o' */
	s = keys_zbase32(two, 2);
	CHECK_STREQ(s, "6n9o");
	free(s);
	s = keys_zbase32(two, 0);
	CHECK_STREQ(s, "");
	free(s);
}

/* The address inside a gpg listing's user ID field ("Name <a@b>" or "a@b"). */
static char *uid_addr(const char *uid)
{
	const char *lt = strrchr(uid, '<');

	if (lt)
		return xstrndup(lt + 1, strcspn(lt + 1, ">"));
	return xstrdup(uid);
}

/* gpg --with-wkd-hash prints "hash@domain" under every user ID. */
static void test_wkd_against_gpg(void)
{
	char *text = (char *)keyfix_read("wkd-list.txt", NULL), *save = NULL, *line, *addr = NULL;
	int compared = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "uid", 3) == 0) {
			free(addr);
			addr = uid_addr(strchr(line, ']') ? strchr(line, ']') + 2 : line + 3);
			continue;
		}
		while (*line == ' ')
			line++;
		if (addr && strlen(line) > 33 && line[32] == '@') {
			char *local = xstrndup(addr, strcspn(addr, "@"));
			char *h = keys_wkd_hash(local);

			CHECK(h && strncmp(line, h, 32) == 0);
			CHECK(strcasecmp(line + 33, strchr(addr, '@') + 1) == 0);
			compared++;
			free(h);
			free(local);
			free(addr);
			addr = NULL;
		}
	}
	CHECK(compared == 4);
	free(addr);
	free(text);
}

/*
 * gpg --export-options export-dane: "$ORIGIN _openpgpkey.DOMAIN.", "; UID", "HASH TYPE61".
 * GnuPG lower-cases the local-part first, so the lower-cased address must give its name.
 */
static void test_dane_against_gpg(void)
{
	char *text = (char *)keyfix_read("dane.txt", NULL), *save = NULL, *line, *origin = NULL, *addr = NULL;
	int compared = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "$ORIGIN ", 8) == 0) {
			free(origin);
			origin = xstrndup(line + 8, strlen(line + 8) - 1);	/* no root dot */
		} else if (strncmp(line, "; ", 2) == 0 && strchr(line, '@')) {
			free(addr);
			addr = uid_addr(line + 2);
		} else if (origin && addr && strstr(line, " TYPE61 ")) {
			char *lower = xstrdup(addr), *name, *want;

			for (char *p = lower; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			name = keys_dane_name(lower, "_openpgpkey");
			want = xasprintf("%.*s.%s", (int)strcspn(line, " "), line, origin);
			CHECK_STREQ(name, want);
			compared++;
			free(name);
			free(want);
			free(lower);
		}
	}
	CHECK(compared >= 4);
	free(origin);
	free(addr);
	free(text);
}

TEST_MAIN(test_setup, test_known_answers, test_case, test_bad_input, test_zbase32,
	  test_wkd_against_gpg, test_dane_against_gpg, test_cleanup)
