/*
 * test_acct.c - the account API's pure parts and its session and sign-in state on a real
 * SQLite file: the Cookie parser, static paths, base64url, SSO assertions (right, expired,
 * too far ahead, forged, malformed), the sign-in body, session timeouts, sign-out, the
 * failure counts of the rate limit, and the subject read from a message header.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "account.h"
#include "account/acct_http.h"
#include "account/acct_login.h"
#include "account/acct_session.h"
#include "account/acct_user.h"
#include "config.h"
#include "unit.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"

/* Every status has its code; the ones a page translates do not change. */
static void test_error_code(void)
{
	CHECK_STREQ(acct_error_code(400), "bad_request");
	CHECK_STREQ(acct_error_code(401), "not_signed_in");
	CHECK_STREQ(acct_error_code(404), "not_found");
	CHECK_STREQ(acct_error_code(429), "rate_limited");
	CHECK_STREQ(acct_error_code(503), "unavailable");
	CHECK_STREQ(acct_error_code(500), "server_error");
	CHECK_STREQ(acct_error_code(418), "bad_request");
}

static void test_cookie(void)
{
	char *v;

	CHECK_STREQ((v = acct_cookie_get("a=1; pw_session=xyz; b=2", "pw_session")), "xyz");
	free(v);
	CHECK_STREQ((v = acct_cookie_get("pw_session=\"q\"", "pw_session")), "q");
	free(v);
	/* a longer name that starts with the same letters is another cookie */
	CHECK(acct_cookie_get("pw_session2=x", "pw_session") == NULL);
	CHECK(acct_cookie_get("xpw_session=x", "pw_session") == NULL);
	CHECK(acct_cookie_get("pw_session=", "pw_session") == NULL);
	CHECK(acct_cookie_get("pw_session=a b", "pw_session") == NULL);
	CHECK(acct_cookie_get(NULL, "pw_session") == NULL);
	CHECK(acct_cookie_get("", "pw_session") == NULL);
	/* over 512 bytes: refused, not cut */
	char big[700] = "pw_session=";
	memset(big + 11, 'a', 600);
	big[611] = '\0';
	CHECK(acct_cookie_get(big, "pw_session") == NULL);
}

static void test_static_path(void)
{
	CHECK(acct_static_path_ok("/"));
	CHECK(acct_static_path_ok("/index.html"));
	CHECK(acct_static_path_ok("/js/app.js"));
	CHECK(!acct_static_path_ok("/../etc/passwd"));
	CHECK(!acct_static_path_ok("/a/../b"));
	CHECK(!acct_static_path_ok("/.git/config"));
	CHECK(!acct_static_path_ok("//etc/passwd"));
	CHECK(!acct_static_path_ok("/a\\b"));
	CHECK(!acct_static_path_ok("relative"));
	CHECK(!acct_static_path_ok(""));
}

static void test_b64url(void)
{
	const unsigned char data[] = { 0xfb, 0xff, 0x00, 0x41 };
	char *e = acct_b64url_encode(data, sizeof(data));
	unsigned char *d;
	size_t n = 0;

	CHECK_STREQ(e, "-_8AQQ");
	d = acct_b64url_decode(e, strlen(e), 100, &n);
	CHECK(d && n == 4 && memcmp(d, data, 4) == 0);
	free(d);
	d = acct_b64url_decode("-_8AQQ==", 8, 100, &n);
	CHECK(d && n == 4);
	free(d);
	CHECK(acct_b64url_decode("a+b/", 4, 100, &n) == NULL);	/* standard alphabet refused */
	CHECK(acct_b64url_decode("abcde", 5, 100, &n) == NULL);	/* impossible length */
	CHECK(acct_b64url_decode(e, strlen(e), 3, &n) == NULL);	/* over the bound */
	free(e);
	e = acct_token_new();
	CHECK(strlen(e) == ACCT_TOKEN_LEN);
	free(e);
}

/* An assertion as the webmail makes it. */
static char *make_assertion(const char *payload_json, const char *secret)
{
	char *p = acct_b64url_encode((const unsigned char *)payload_json, strlen(payload_json));
	unsigned char mac[32];
	unsigned int len = 0;
	char *m, *out;

	HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)p, strlen(p), mac, &len);
	m = acct_b64url_encode(mac, len);
	out = malloc(strlen(p) + strlen(m) + 2);
	sprintf(out, "%s.%s", p, m);
	free(p);
	free(m);
	return out;
}

static int sso(const char *a, int64_t now, char **sub, const char **err)
{
	return acct_sso_verify(a, strlen(a), SECRET, now, sub, err);
}

static void test_sso(void)
{
	const int64_t now = 1800000000;
	const char *err = NULL;
	char *sub = NULL, *a;

	a = make_assertion("{\"sub\":\"anna@example.org\",\"exp\":1800000060}", SECRET);
	CHECK(sso(a, now, &sub, &err) == 0);
	CHECK_STREQ(sub, "anna@example.org");
	free(sub);
	/* expired: exp is now or past */
	CHECK(sso(a, 1800000060, &sub, &err) < 0 && strstr(err, "expired"));
	/* one flipped character of the MAC */
	a[strlen(a) - 3] = a[strlen(a) - 3] == 'A' ? 'B' : 'A';
	CHECK(sso(a, now, &sub, &err) < 0 && strstr(err, "signature"));
	free(a);
	/* another secret */
	a = make_assertion("{\"sub\":\"anna@example.org\",\"exp\":1800000060}", SECRET "x");
	CHECK(sso(a, now, &sub, &err) < 0 && strstr(err, "signature"));
	free(a);
	/* too far ahead */
	a = make_assertion("{\"sub\":\"anna@example.org\",\"exp\":1800000301}", SECRET);
	CHECK(sso(a, now, &sub, &err) < 0 && strstr(err, "ahead"));
	free(a);
	a = make_assertion("{\"sub\":\"anna@example.org\",\"exp\":1800000300}", SECRET);
	CHECK(sso(a, now, &sub, &err) == 0);
	free(sub);
	free(a);
	/* signed but not an address, no exp, exp a string, not JSON */
	const char *bad[] = { "{\"sub\":\"anna\",\"exp\":1800000060}", "{\"sub\":\"a@b.org\"}",
			      "{\"sub\":\"a@b.org\",\"exp\":\"1800000060\"}", "[1]", "nope" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		a = make_assertion(bad[i], SECRET);
		CHECK(sso(a, now, &sub, &err) < 0 && sub == NULL);
		free(a);
	}
	/* shapes */
	CHECK(sso("", now, &sub, &err) < 0);
	CHECK(sso("abc", now, &sub, &err) < 0);
	CHECK(sso("a.b.c", now, &sub, &err) < 0);
	CHECK(acct_sso_verify("ab\0.c", 5, SECRET, now, &sub, &err) < 0);
}

static void test_login_body(void)
{
	const char *err = NULL;
	struct mig_cred *pw = NULL;
	char *addr = NULL;
	const char *ok = "{\"address\":\"anna@example.org\",\"password\":\"s e\\\"cret\"}";

	CHECK(acct_login_body_parse(ok, strlen(ok), &addr, &pw, &err) == 0);
	CHECK_STREQ(addr, "anna@example.org");
	CHECK(pw && pw->len == 8 && memcmp(pw->secret, "s e\"cret", 8) == 0);
	free(addr);
	mig_cred_free(pw);
	const char *bad[] = { "", "[]", "{\"address\":\"anna@example.org\"}",
			      "{\"address\":\"anna\",\"password\":\"x\"}",
			      "{\"address\":\"anna@example.org\",\"password\":\"\"}",
			      "{\"address\":\"anna@example.org\",\"password\":\"a\\u0000b\"}",
			      "{\"address\":\"anna@example.org\",\"password\":\"a\\r\\nb\"}",
			      "{\"address\":\"a@b.org\",\"address\":\"c@d.org\",\"password\":\"x\"}" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(acct_login_body_parse(bad[i], strlen(bad[i]), &addr, &pw, &err) < 0);
		CHECK(addr == NULL && pw == NULL && err != NULL);
	}
}

static void test_session_alive(void)
{
	/* created 100, idle 30, lifetime 60 */
	CHECK(acct_session_alive(100, 100, 129, 30, 60));
	CHECK(!acct_session_alive(100, 100, 130, 30, 60));	/* idle */
	CHECK(acct_session_alive(100, 150, 159, 30, 60));
	CHECK(!acct_session_alive(100, 155, 160, 30, 60));	/* absolute */
	CHECK(!acct_session_alive(1000, 1000, 100, 30, 60));	/* from the future */
}

static void test_sessions_in_db(void)
{
	char dir[] = "/tmp/pw-acct-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct account_conf c = { .idle_timeout = 30, .session_lifetime = 60 };
	struct acct_who who = { 0 };
	char *sid = NULL, *csrf = NULL, *sid2 = NULL, *csrf2 = NULL, hash[65];

	CHECK(acct_session_create(db, &c, "anna@example.org", "imap", 1000, &sid, &csrf) == 0);
	CHECK(sid && csrf && strcmp(sid, csrf) != 0 && strlen(sid) == ACCT_TOKEN_LEN);
	/* only the hash is stored */
	acct_sha256_hex(sid, hash);
	CHECK(db_query_int(db, "SELECT count(*) FROM acct_sessions", -1) == 1);
	struct db_stmt *st = db_prepare(db, "SELECT sid_hash FROM acct_sessions");
	CHECK(db_step_row(db, st) && strcmp(db_col_text(st, 0), hash) == 0 &&
	      strcmp(db_col_text(st, 0), sid) != 0);
	db_finalize(st);

	CHECK(acct_session_lookup(db, &c, sid, 1020, &who));
	CHECK_STREQ(who.address, "anna@example.org");
	CHECK_STREQ(who.csrf, csrf);
	acct_who_clear(&who);
	/* used at 1020: alive at 1045 (idle from 1020), then idle past 1075 */
	CHECK(acct_session_lookup(db, &c, sid, 1045, &who));
	acct_who_clear(&who);
	CHECK(!acct_session_lookup(db, &c, sid, 1076, &who) && who.address == NULL);
	/* the expired row was deleted */
	CHECK(db_query_int(db, "SELECT count(*) FROM acct_sessions", -1) == 0);

	/* lifetime: used every 20 s, gone at 60 */
	CHECK(acct_session_create(db, &c, "anna@example.org", "sso", 2000, &sid2, &csrf2) == 0);
	for (int t = 2020; t < 2060; t += 20) {
		CHECK(acct_session_lookup(db, &c, sid2, t, &who));
		acct_who_clear(&who);
	}
	CHECK(!acct_session_lookup(db, &c, sid2, 2060, &who));
	free(sid2);
	free(csrf2);

	/* sign-out; a wrong or malformed id finds nothing */
	CHECK(acct_session_create(db, &c, "bob@example.org", "imap", 3000, &sid2, &csrf2) == 0);
	CHECK(!acct_session_lookup(db, &c, csrf2, 3001, &who));
	CHECK(!acct_session_lookup(db, &c, "short", 3001, &who));
	CHECK(!acct_session_lookup(db, &c, NULL, 3001, &who));
	acct_sha256_hex(sid2, hash);
	CHECK(acct_session_delete(db, hash) == 0);
	CHECK(!acct_session_lookup(db, &c, sid2, 3001, &who));

	char *ck = acct_session_cookie(&c, sid2);
	CHECK(strstr(ck, "HttpOnly") && strstr(ck, "; Secure") && strstr(ck, "SameSite=Strict"));
	free(ck);
	c.insecure_cookie = true;
	ck = acct_session_cookie(&c, NULL);
	CHECK(strstr(ck, "Max-Age=0") && !strstr(ck, "Secure"));
	free(ck);
	free(sid);
	free(csrf);
	free(sid2);
	free(csrf2);
	db_close(db);
	unit_remove_dir(dir);
}

static void test_rate_limit(void)
{
	char dir[] = "/tmp/pw-acct-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct account_conf c = { .login_failures = 3, .login_window = 60 };

	CHECK(acct_login_blocked(db, &c, "anna@example.org", "127.0.0.1", 1000) == 0);
	acct_login_failed(db, &c, "anna@example.org", "127.0.0.1", 1000);
	acct_login_failed(db, &c, "Anna@Example.org", "127.0.0.2", 1010);
	CHECK(acct_login_blocked(db, &c, "anna@example.org", "127.0.0.3", 1011) == 0);
	acct_login_failed(db, &c, "anna@example.org", "127.0.0.3", 1020);
	/* three for the address (any case): blocked until the first leaves the window */
	CHECK(acct_login_blocked(db, &c, "ANNA@example.org", "127.0.0.9", 1021) == 39);
	CHECK(acct_login_blocked(db, &c, "bob@example.org", "127.0.0.9", 1021) == 0);
	CHECK(acct_login_blocked(db, &c, "anna@example.org", "127.0.0.9", 1060) == 0);
	/* per client: three addresses from one client */
	acct_login_failed(db, &c, "x@example.org", "10.0.0.1", 2000);
	acct_login_failed(db, &c, "y@example.org", "10.0.0.1", 2001);
	acct_login_failed(db, &c, NULL, "10.0.0.1", 2002);
	CHECK(acct_login_blocked(db, &c, "z@example.org", "10.0.0.1", 2003) == 57);
	CHECK(acct_login_blocked(db, &c, "z@example.org", "10.0.0.2", 2003) == 0);
	/* old failures are swept when a new one is recorded */
	CHECK(db_query_int(db, "SELECT count(*) FROM acct_login_failures WHERE at < 2000", -1) == 0);
	db_close(db);
	unit_remove_dir(dir);
}

static void test_subject(void)
{
	const char *h = "From: a@b\r\nSubject: Hello\r\n  world\r\nTo: c@d\r\n\r\nSubject: body\r\n";
	char *s = acct_header_subject(h, strlen(h));

	CHECK_STREQ(s, "Hello  world");	/* unfolding removes only the line break */
	free(s);
	s = acct_header_subject("To: x\n\nSubject: no\n", 20);
	CHECK_STREQ(s, "");
	free(s);
	char big[2000] = "subject: ";
	memset(big + 9, 'x', 1500);
	big[1509] = '\0';
	s = acct_header_subject(big, strlen(big));
	CHECK(strlen(s) <= ACCT_SUBJECT_MAX && strlen(s) >= ACCT_SUBJECT_MAX - 1);
	free(s);
	s = acct_header_subject("Subject: a\tb\x01" "c\n", 14);
	CHECK_STREQ(s, "a b c");
	free(s);
	/* encoded words, folded between two of them, are decoded and joined */
	h = "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n =?ISO-8859-1?Q?_aus_K=F6ln?=\r\n\r\n";
	s = acct_header_subject(h, strlen(h));
	CHECK_STREQ(s, "Gr\xc3\xbc\xc3\x9f" "e aus K\xc3\xb6ln");
	free(s);
	/* raw 8-bit text that is not UTF-8 is shown with '?' (a JSON string must be UTF-8) */
	h = "Subject: K\xf6ln =?UTF-8?Q?=C3=A4?=\n";
	s = acct_header_subject(h, strlen(h));
	CHECK_STREQ(s, "K?ln \xc3\xa4");
	free(s);
	/* a decoded control character is blanked like a raw one */
	s = acct_header_subject("Subject: =?UTF-8?Q?a=0Ab?=\n", 26);
	CHECK_STREQ(s, "a b");
	free(s);
	/* a long subject of encoded words: decoded whole, then cut between characters */
	char enc[3000] = "Subject: ";
	for (int k = 0; k < 150; k++)
		strcat(enc, "=?UTF-8?Q?=C3=A4?= ");
	s = acct_header_subject(enc, strlen(enc));
	CHECK(strlen(s) == ACCT_SUBJECT_MAX && (unsigned char)s[0] == 0xc3 &&
	      (unsigned char)s[ACCT_SUBJECT_MAX - 1] == 0xa4);
	free(s);
}

TEST_MAIN(test_error_code, test_cookie, test_static_path, test_b64url, test_sso,
	  test_login_body, test_session_alive, test_sessions_in_db, test_rate_limit, test_subject)
