/*
 * test_mig_api.c - the body of POST /v1/migrations: required members, one source secret,
 * unknown members, bounds, and errors that never quote what the body holds; mail and
 * contacts jobs each with the members of their own kind. (Whether a mail job's destination
 * password is required depends on the node's [migrate] master_user: the integration tests
 * check that.)
 */
#include <string.h>

#include "migrate/mig_api.h"
#include "unit.h"

#define GOOD "{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"a@gmx.de\"," \
	     "\"source_password\":\"Pw-1\",\"destination_user\":\"alice\"," \
	     "\"destination_password\":\"Pw-2\""

static int parse(const char *body, struct mig_api_body *b, const char **err)
{
	*err = NULL;
	return mig_api_body_parse(body, strlen(body), b, err);
}

static void test_good_body(void)
{
	struct mig_api_body b;
	const char *err;

	CHECK(parse(GOOD "}", &b, &err) == 0);
	CHECK_STREQ(b.kind, "mail");
	CHECK_STREQ(b.source, "gmx");
	CHECK_STREQ(b.source_user, "a@gmx.de");
	CHECK_STREQ(b.destination_user, "alice");
	CHECK(b.source_cred && b.source_cred->len == 4 && strcmp(b.source_cred->secret, "Pw-1") == 0);
	CHECK(b.destination_cred && strcmp(b.destination_cred->secret, "Pw-2") == 0);
	CHECK(!b.token && b.job == 0 && b.source_host == NULL);
	mig_api_body_free(&b);
	CHECK(parse("{\"kind\":\"mail\",\"source\":\"imaps://h:993\",\"source_user\":\"u\","
		    "\"source_token\":\"tok\",\"oauth\":\"xoauth2\",\"destination_user\":\"d\","
		    "\"destination_password\":\"p\",\"job\":12}", &b, &err) == 0);
	CHECK(b.token && b.job == 12 && strcmp(b.oauth, "xoauth2") == 0);
	mig_api_body_free(&b);
	/* no destination password: a node with [migrate] master_user needs none (a node
	 * without one refuses the job when it reads its settings, not the parser) */
	CHECK(parse("{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"u\","
		    "\"source_password\":\"p\",\"destination_user\":\"d\"}", &b, &err) == 0);
	CHECK(b.destination_cred == NULL && strcmp(b.destination_user, "d") == 0);
	mig_api_body_free(&b);
}

static void test_refused_bodies(void)
{
	static const char *const bad[] = {
		"", "[]", "{", "null", GOOD ",\"extra\":1}", GOOD ",\"source_token\":\"t\"}",
		GOOD ",\"job\":0}", GOOD ",\"job\":\"7\"}", GOOD ",\"oauth\":\"basic\"}",
		GOOD ",\"kind\":\"mail\"}",	/* a duplicate member */
		"{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"u\",\"source_password\":\"p\","
		"\"destination_password\":\"q\"}",
		GOOD ",\"source_url\":\"https://h/\"}",	/* a contacts member in a mail job */
		"{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"\",\"source_password\":\"p\","
		"\"destination_user\":\"d\",\"destination_password\":\"q\"}",
		"{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"u\",\"source_password\":\"p\\u0000x\","
		"\"destination_user\":\"d\",\"destination_password\":\"q\"}",
	};
	struct mig_api_body b;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(bad[i], &b, &err) == -1);
		CHECK(err != NULL);
		CHECK(err == NULL || (strstr(err, "Pw-") == NULL && strstr(err, "gmx.de") == NULL));
	}
}

#define CONTACTS "{\"kind\":\"contacts\",\"destination_user\":\"alice\"," \
		 "\"destination_password\":\"Pw-2\","

static void test_contacts_bodies(void)
{
	static const char *const good[] = {
		(CONTACTS "\"source\":\"gmx\",\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"https://dav.example/\",\"source_user\":\"u\","
		 "\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"carddav\",\"source_url\":\"http://127.0.0.1:5/\","
		 "\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		/* a token names the account: no user needed */
		(CONTACTS "\"source\":\"outlook\",\"source_token\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmail\",\"source_token\":\"Pw-1\",\"job\":3}"),
	};
	static const char *const bad[] = {
		(CONTACTS "\"source\":\"vcard\",\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"imaps://h\",\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"carddav\",\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmx\",\"source_url\":\"ftp://h/\",\"source_user\":\"u\","
		 "\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmx\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmx\",\"source_user\":\"u\"}"),
		(CONTACTS "\"source\":\"outlook\",\"source_user\":\"u\",\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmx\",\"source_host\":\"h\",\"source_user\":\"u\","
		 "\"source_password\":\"Pw-1\"}"),
		(CONTACTS "\"source\":\"gmx\",\"oauth\":\"xoauth2\",\"source_token\":\"Pw-1\"}"),
		("{\"kind\":\"contacts\",\"source\":\"gmx\",\"source_user\":\"u\","
		 "\"source_password\":\"Pw-1\",\"destination_user\":\"d\"}"),
	};
	struct mig_api_body b;
	const char *err;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(parse(good[i], &b, &err) == 0);
		if (err == NULL) {
			CHECK_STREQ(b.kind, "contacts");
			CHECK(strcmp(b.source_cred->secret, "Pw-1") == 0);
			CHECK(strcmp(b.destination_cred->secret, "Pw-2") == 0);
			mig_api_body_free(&b);
		}
	}
	CHECK(parse(good[2], &b, &err) == 0);
	CHECK_STREQ(b.source_url, "http://127.0.0.1:5/");
	mig_api_body_free(&b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(parse(bad[i], &b, &err) == -1);
		CHECK(err != NULL && strstr(err, "Pw-") == NULL);
	}
}

static void test_bounds(void)
{
	static char body[MIG_API_MAX_BODY + 256];
	struct mig_api_body b;
	const char *err;
	char *p;

	/* a password of MIG_CRED_MAX bytes is taken, one byte more is refused */
	for (int extra = 0; extra <= 1; extra++) {
		p = body + sprintf(body, "{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"u\","
				   "\"destination_user\":\"d\",\"destination_password\":\"q\","
				   "\"source_password\":\"");
		memset(p, 'x', MIG_CRED_MAX + extra);
		strcpy(p + MIG_CRED_MAX + extra, "\"}");
		CHECK(parse(body, &b, &err) == (extra ? -1 : 0));
		if (!extra) {
			CHECK(b.source_cred->len == MIG_CRED_MAX);
			mig_api_body_free(&b);
		} else {
			CHECK(strstr(err, "xxxx") == NULL);
		}
	}
	/* a body over the bound is not parsed at all */
	memset(body, ' ', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	memcpy(body, GOOD "}", strlen(GOOD "}"));
	CHECK(mig_api_body_parse(body, MIG_API_MAX_BODY + 1, &b, &err) == -1);
	CHECK_STREQ(err, "the body is too large");
	CHECK(mig_api_body_parse(body, MIG_API_MAX_BODY, &b, &err) == 0);	/* control */
	mig_api_body_free(&b);
}

TEST_MAIN(test_good_body, test_refused_bodies, test_contacts_bodies, test_bounds)
