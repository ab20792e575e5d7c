/*
 * test_acct_extra.c - the pure parts of the account API's keys, migrations, compose help
 * and certificates: the recipients body, the transport told for each probe verdict with
 * the guarantee on and off, which DNS answers count as "validates", the key list's
 * grouping and WKD URL, job and key IDs, and the certificate fingerprints.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "unit.h"
#include "account/acct_certs.h"
#include "account/acct_compose.h"
#include "account/acct_keys.h"
#include "account/acct_migrate.h"
#include "dns.h"
#include "migrate/mig_api.h"
#include "migrate/mig_job.h"
#include "xmalloc.h"

static void free_addrs(char **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

static int parse(const char *body, size_t *n, char ***addrs)
{
	const char *err = NULL;
	int rc = acct_compose_parse(body, strlen(body), addrs, n, &err);

	CHECK(rc == 0 ? err == NULL : err != NULL);
	return rc;
}

static void test_compose_parse(void)
{
	char **a, *big;
	size_t n, off;

	CHECK(parse("{\"recipients\":[\"a@example.org\",\"B@Other.test\"]}", &n, &a) == 0);
	CHECK(n == 2);
	CHECK_STREQ(a[0], "a@example.org");
	CHECK_STREQ(a[1], "B@Other.test");
	free_addrs(a, n);
	CHECK(parse("{\"recipients\":[]}", &n, &a) == 0 && n == 0);
	free_addrs(a, n);
	/* not an object, no array, a number among them, a NUL inside, duplicate keys */
	CHECK(parse("[]", &n, &a) < 0);
	CHECK(parse("{}", &n, &a) < 0);
	CHECK(parse("{\"recipients\":\"a@b\"}", &n, &a) < 0);
	CHECK(parse("{\"recipients\":[\"a@b\",1]}", &n, &a) < 0);
	CHECK(parse("{\"recipients\":[\"a\\u0000@b\"]}", &n, &a) < 0);
	CHECK(parse("{\"recipients\":[],\"recipients\":[]}", &n, &a) < 0);
	CHECK(parse("{\"recipients\":[", &n, &a) < 0);
	/* 100 addresses pass, 101 do not */
	big = xmalloc(64 * 1024);
	off = (size_t)sprintf(big, "{\"recipients\":[");
	for (int i = 0; i < 101; i++) {
		if (i == 100) {
			strcpy(big + off, "]}");
			CHECK(parse(big, &n, &a) == 0 && n == 100);
			free_addrs(a, n);
		}
		off += (size_t)sprintf(big + off, "%s\"u%d@example.org\"", i ? "," : "", i);
	}
	strcpy(big + off, "]}");
	CHECK(parse(big, &n, &a) < 0);
	/* one address over 320 bytes */
	off = (size_t)sprintf(big, "{\"recipients\":[\"");
	memset(big + off, 'x', 321);
	strcpy(big + off + 321, "\"]}");
	CHECK(parse(big, &n, &a) < 0);
	free(big);
}

static const char *transport(enum policy_action v, bool dane, bool guarantee, const char *want_in)
{
	struct acct_compose_probe p = { .verdict = v, .dane = dane, .host = "mx.example.test",
					.tls = "TLSv1.3", .why = "the server does not offer TLS" };
	char *reason = NULL;
	const char *t = acct_compose_transport(&p, guarantee, &reason);

	CHECK(reason != NULL && strstr(reason, want_in) != NULL);
	free(reason);
	return t;
}

static void test_compose_transport(void)
{
	CHECK_STREQ(transport(POLICY_PROCEED, true, true, "DANE"), "dane");
	CHECK_STREQ(transport(POLICY_PROCEED, true, false, "mx.example.test"), "dane");
	CHECK_STREQ(transport(POLICY_PROCEED, false, true, "TLSv1.3"), "tls");
	CHECK_STREQ(transport(POLICY_PROCEED, false, false, "TLS"), "tls");
	/* a security failure: held under the guarantee, sent without it when it is off */
	CHECK_STREQ(transport(POLICY_HOLD, false, true, "does not offer TLS"), "stop");
	CHECK_STREQ(transport(POLICY_HOLD, false, false, "guarantee is off"), "plaintext");
	/* an outage or a domain without mail stops either way */
	CHECK_STREQ(transport(POLICY_DEFER, false, false, "does not offer TLS"), "stop");
	CHECK_STREQ(transport(POLICY_BOUNCE, false, true, "does not offer TLS"), "stop");
}

static struct keydir_key *key(const char *addr, enum keys_kind kind, const char *fpr,
			      const uint8_t *data, size_t len)
{
	struct keydir_key *k = xcalloc(1, sizeof(*k));
	bool pgp = kind == KEYS_OPENPGP;

	k->address = xstrdup(addr);
	k->kind = kind;
	k->fingerprint = xstrdup(fpr);
	k->algorithm = xstrdup("EDDSA");
	k->bits = 255;
	k->data = xmemdup(data, len);
	k->len = len;
	k->rrtype = pgp ? KEYDIR_RR_OPENPGPKEY : KEYDIR_RR_SMIMEA;
	k->owner = xasprintf("abc.%s.example.test", pgp ? "_openpgpkey" : "_smimecert");
	k->owner_lc = xstrdup(pgp && addr[0] == 'A' ? "def._openpgpkey.example.test" : "");
	k->wkd_domain = xstrdup(pgp ? "example.test" : "");
	k->wkd_hash = xstrdup(pgp ? "kei1q4tipxxu1yj79k9kfukdhfy631xe" : "");
	return k;
}

static void test_keys_answer(void)
{
	static const uint8_t data[] = { 1, 2, 3, 4 }, smime_rd[] = { 3, 0, 0, 1, 2, 3, 4 },
			     other[] = { 1, 2, 3, 5 };
	struct keydir_key *pgp = key("a@example.test", KEYS_OPENPGP, "AB", data, 4);
	struct keydir_key *smime = key("a@example.test", KEYS_SMIME, "CD", data, 4);
	struct dns_rr rrs[2] = { { (uint8_t *)other, 4 }, { (uint8_t *)data, 4 } };
	struct dns_answer a = { .qtype = DNS_RR_OPENPGPKEY, .status = DNS_OK,
				.security = DNS_SECURE, .rrs = rrs, .nrr = 2 };

	CHECK(acct_keys_answer_matches(&a, pgp));
	a.security = DNS_INSECURE;	/* unsigned: does not validate */
	CHECK(!acct_keys_answer_matches(&a, pgp));
	a.security = DNS_BOGUS;
	CHECK(!acct_keys_answer_matches(&a, pgp));
	a.security = DNS_SECURE;
	a.nrr = 1;			/* only another key there */
	CHECK(!acct_keys_answer_matches(&a, pgp));
	a.status = DNS_NXDOMAIN;
	a.nrr = 0;
	CHECK(!acct_keys_answer_matches(&a, pgp));
	CHECK(!acct_keys_answer_matches(NULL, pgp));
	/* S/MIME: "3 0 0" before the certificate */
	rrs[0] = (struct dns_rr){ (uint8_t *)smime_rd, sizeof(smime_rd) };
	a = (struct dns_answer){ .qtype = DNS_RR_SMIMEA, .status = DNS_OK, .security = DNS_SECURE,
				 .rrs = rrs, .nrr = 1 };
	CHECK(acct_keys_answer_matches(&a, smime));
	rrs[0] = (struct dns_rr){ (uint8_t *)data, 4 };	/* the DER without the prefix */
	CHECK(!acct_keys_answer_matches(&a, smime));
	a.qtype = DNS_RR_OPENPGPKEY;	/* the wrong type */
	CHECK(!acct_keys_answer_matches(&a, smime));
	keydir_key_free(pgp);
	keydir_key_free(smime);
}

static void test_keys_json(void)
{
	static const uint8_t data[] = { 1, 2, 3 };
	struct keydir_key *keys[3] = {
		key("Alice@example.test", KEYS_OPENPGP, "AAAA", data, 3),
		key("al@example.test", KEYS_OPENPGP, "AAAA", data, 3),
		key("alice@example.test", KEYS_SMIME, "BBBB", data, 3),
	};
	bool valid[6] = { true, false, true, false, false, false };
	json_t *j = acct_keys_json(keys, 3, valid), *a = json_object_get(j, "keys"), *k, *pub;
	char *url = acct_keys_wkd_url(keys[0]);

	CHECK_STREQ(url, "https://openpgpkey.example.test/.well-known/openpgpkey/example.test/hu/"
			 "kei1q4tipxxu1yj79k9kfukdhfy631xe?l=Alice");
	free(url);
	CHECK(acct_keys_wkd_url(keys[2]) == NULL);
	/* two copies of one key are one entry with two addresses */
	CHECK(json_array_size(a) == 2);
	k = json_array_get(a, 0);
	CHECK_STREQ(json_string_value(json_object_get(k, "id")), "AAAA");
	CHECK_STREQ(json_string_value(json_object_get(k, "type")), "openpgp");
	CHECK(json_array_size(json_object_get(k, "addresses")) == 2);
	pub = json_object_get(k, "published");
	/* Alice: owner, lower-cased owner, WKD; al: owner, WKD */
	CHECK(json_array_size(pub) == 5);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(pub, 0), "kind")), "dns");
	CHECK(json_is_true(json_object_get(json_array_get(pub, 0), "validates")));
	CHECK(json_is_false(json_object_get(json_array_get(pub, 1), "validates")));
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(pub, 2), "kind")), "wkd");
	CHECK(json_is_true(json_object_get(json_array_get(pub, 3), "validates")));
	k = json_array_get(a, 1);
	CHECK_STREQ(json_string_value(json_object_get(k, "type")), "smime");
	pub = json_object_get(k, "published");
	CHECK(json_array_size(pub) == 1);
	CHECK_STREQ(json_string_value(json_object_get(json_array_get(pub, 0), "type")), "SMIMEA");
	json_decref(j);
	/* without look-ups nothing validates */
	j = acct_keys_json(keys, 3, NULL);
	k = json_array_get(json_object_get(j, "keys"), 0);
	CHECK(json_is_false(json_object_get(json_array_get(json_object_get(k, "published"), 0),
					    "validates")));
	json_decref(j);
	for (int i = 0; i < 3; i++)
		keydir_key_free(keys[i]);
}

static void test_ids(void)
{
	CHECK(acct_keys_id_ok("0123456789ABCDEF"));
	CHECK(acct_keys_id_ok("0123456789abcdef0123456789abcdef01234567"));
	CHECK(!acct_keys_id_ok("0123456789ABCDE"));
	CHECK(!acct_keys_id_ok("0123456789ABCDEG"));
	CHECK(!acct_keys_id_ok("../../etc/passwd0000"));
	CHECK(acct_migrate_id("/12") == 12);
	CHECK(acct_migrate_id("/0") == 0);
	CHECK(acct_migrate_id("/12/x") == 0);
	CHECK(acct_migrate_id("/-1") == 0);
	CHECK(acct_migrate_id("12") == 0);
	CHECK(acct_migrate_id("/99999999999999999999999") == 0);
}

/* A self-signed certificate for mail.example.test in a temporary file. */
static char *write_cert(char *dir)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	char *path = xasprintf("%s/cert.pem", dir);
	FILE *f;

	CHECK(pk != NULL && x != NULL);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"mail.example.test",
				   -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	ASN1_TIME_set_string(X509_getm_notAfter(x), "20300102030405Z");
	X509_set_pubkey(x, pk);
	X509_sign(x, pk, EVP_sha256());
	f = fopen(path, "w");
	CHECK(f != NULL && PEM_write_X509(f, x) == 1);
	fclose(f);
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(pk);
	return path;
}

static void test_certs(void)
{
	char dir[] = "/tmp/pw-acct-certs-XXXXXX";
	char *path, *missing;
	json_t *j, *c;
	const char *fp;

	CHECK(mkdtemp(dir) != NULL);
	path = write_cert(dir);
	missing = xasprintf("%s/missing.pem", dir);
	{
		const char *files[] = { path, missing, path, "" };
		const char *uses[] = { "smtp", "smtp", "https", "https" };

		j = acct_certs_json(files, uses, 4);
	}
	/* the missing file is left out, the same file twice listed once */
	CHECK(json_array_size(json_object_get(j, "certificates")) == 1);
	c = json_array_get(json_object_get(j, "certificates"), 0);
	CHECK_STREQ(json_string_value(json_object_get(c, "name")), "mail.example.test");
	CHECK_STREQ(json_string_value(json_object_get(c, "used_for")), "smtp");
	CHECK_STREQ(json_string_value(json_object_get(c, "not_after")), "2030-01-02T03:04:05Z");
	fp = json_string_value(json_object_get(c, "sha256"));
	CHECK(fp != NULL && strlen(fp) == 95 && fp[2] == ':');
	CHECK(strlen(json_string_value(json_object_get(c, "spki_sha256"))) == 64);
	json_decref(j);
	unlink(path);
	rmdir(dir);
	free(path);
	free(missing);
}

static int status_error(int st, json_t *j, const char *want)
{
	const char *e = json_string_value(json_object_get(j, "error"));

	CHECK(e != NULL && strstr(e, want) != NULL);
	json_decref(j);
	return st;
}

/* The account API's view of the jobs: one destination user's, never another's. */
static void test_migrate_user(void)
{
	char dir[] = "/tmp/pw-acct-mig-XXXXXX";
	struct db *db = unit_temp_db(dir);
	struct pw_config cfg;
	struct mig_api *api;
	int64_t anna, bert;
	json_t *j;
	bool retry;
	int st;
	static const char other[] = "{\"kind\":\"mail\",\"source\":\"gmx\",\"source_user\":\"x\","
				    "\"source_password\":\"p\",\"destination_user\":\"bert@example.test\"}";

	memset(&cfg, 0, sizeof(cfg));
	cfg.migrate.jobs = 2;
	cfg.migrate.destination = "";
	cfg.migrate.master_user = "";
	cfg.server.node = "n1";
	api = mig_api_new(&cfg, db);
	anna = mig_job_create(db, "mail", "anna@example.test");
	bert = mig_job_create(db, "mail", "bert@example.test");
	CHECK(anna > 0 && bert > 0);
	st = mig_api_user_list(api, "anna@example.test", &j);
	CHECK(st == 200 && json_array_size(json_object_get(j, "jobs")) == 1);
	CHECK(json_integer_value(json_object_get(json_array_get(json_object_get(j, "jobs"), 0),
						 "id")) == anna);
	json_decref(j);
	CHECK(mig_api_user_get(api, "anna@example.test", anna, &j) == 200);
	json_decref(j);
	/* bert's job is as unknown to anna as one that does not exist */
	st = mig_api_user_get(api, "anna@example.test", bert, &j);
	CHECK(status_error(st, j, "no such job") == 404);
	st = mig_api_user_cancel(api, "anna@example.test", bert, &j);
	CHECK(status_error(st, j, "no such job") == 404);
	st = mig_api_user_get(api, "anna@example.test", bert + 100, &j);
	CHECK(status_error(st, j, "no such job") == 404);
	st = mig_api_user_start(api, "anna@example.test", other, strlen(other), &j, &retry);
	CHECK(status_error(st, j, "own account") == 400);
	/* the same body as bert's own: past the owner check, refused for this node's setup */
	st = mig_api_user_start(api, "bert@example.test", other, strlen(other), &j, &retry);
	CHECK(status_error(st, j, "destination") == 400);
	CHECK(!retry);
	CHECK(mig_api_user_cancel(api, "bert@example.test", bert, &j) == 202);
	json_decref(j);
	mig_api_free(api);
	db_close(db);
	unit_remove_dir(dir);
}

TEST_MAIN(test_migrate_user, test_compose_parse, test_compose_transport, test_keys_answer, test_keys_json,
	  test_ids, test_certs)
