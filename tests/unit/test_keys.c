/*
 * test_keys.c - keys_accept on real keys and certificates made at start by
 * tests/unit/keys/gen-keys.py (GnuPG in a private home, python3-cryptography): every
 * refusal, and the minimised copies read back with librnp and with gpg --import.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>

#include "keys/keys.h"
#include "keys/keyfix.h"
#include "unit.h"
#include "xmalloc.h"

#define DAY 86400

static struct keys_policy test_policy(void)
{
	struct keys_policy p = {
		.now = (int64_t)time(NULL),
		.expiry_margin = 7 * DAY,
		.max_record_size = 16384,
	};
	return p;
}

/* keys_accept on a fixture with the given allowed addresses. */
static enum keys_error accept_file(const char *name, char *const *allowed, size_t n,
				   const struct keys_policy *p, struct keys_info *info, char **msg)
{
	size_t len;
	uint8_t *data = keyfix_read(name, &len);
	enum keys_error e;

	free(*msg);	/* a refusal's message from an earlier call */
	*msg = NULL;
	e = keys_accept(data, len, allowed, n, p, info, msg);
	if (e != KEYS_OK)
		fprintf(stderr, "%s: %s: %s\n", name, keys_error_name(e), *msg);

	free(data);
	return e;
}

/* Expect a refusal: the error, a message containing want (if not NULL), no copies. */
static void expect_refusal(const char *name, const char *addr, const struct keys_policy *p,
			   enum keys_error want, const char *want_text)
{
	char *allowed[] = { (char *)addr };
	struct keys_info info;
	char *msg = NULL;
	enum keys_error e = accept_file(name, allowed, 1, p, &info, &msg);

	if (e != want)
		fprintf(stderr, "%s: got %s (%s), want %s\n", name, keys_error_name(e),
			msg ? msg : "", keys_error_name(want));
	CHECK(e == want);
	CHECK(msg != NULL && strlen(msg) > 10);
	CHECK(info.ncopies == 0 && info.copies == NULL);
	if (want_text && msg && strstr(msg, want_text) == NULL) {
		fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", name, msg, want_text);
		CHECK(strstr(msg, want_text) != NULL);
	}
	free(msg);
	keys_info_free(&info);
}

/* ---- reading copies back with librnp ---- */

struct rnp_view {
	rnp_ffi_t ffi;
	rnp_key_handle_t key;
};

static bool rnp_view_open(struct rnp_view *v, const uint8_t *data, size_t len)
{
	rnp_input_t in = NULL;
	rnp_identifier_iterator_t it = NULL;
	const char *id = NULL;
	bool ok;

	memset(v, 0, sizeof(*v));
	if (rnp_ffi_create(&v->ffi, "GPG", "GPG") != RNP_SUCCESS)
		return false;
	ok = rnp_input_from_memory(&in, data, len, false) == RNP_SUCCESS &&
	     rnp_import_keys(v->ffi, in, RNP_LOAD_SAVE_PUBLIC_KEYS, NULL) == RNP_SUCCESS;
	rnp_input_destroy(in);
	if (ok && rnp_identifier_iterator_create(v->ffi, &it, "fingerprint") == RNP_SUCCESS) {
		while (v->key == NULL && rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS &&
		       id) {
			rnp_key_handle_t k = NULL;
			bool primary = false;

			rnp_locate_key(v->ffi, "fingerprint", id, &k);
			if (k && rnp_key_is_primary(k, &primary) == RNP_SUCCESS && primary)
				v->key = k;
			else
				rnp_key_handle_destroy(k);
		}
		rnp_identifier_iterator_destroy(it);
	}
	return ok && v->key != NULL;
}

static void rnp_view_close(struct rnp_view *v)
{
	rnp_key_handle_destroy(v->key);
	rnp_ffi_destroy(v->ffi);
}

static size_t rnp_uid_count(struct rnp_view *v)
{
	size_t n = 0;

	rnp_key_get_uid_count(v->key, &n);
	return n;
}

static size_t rnp_subkey_count(struct rnp_view *v)
{
	size_t n = 0;

	rnp_key_get_subkey_count(v->key, &n);
	return n;
}

/* User ID i's text (caller frees) and its number of signatures, newest creation time. */
static char *rnp_uid_info(struct rnp_view *v, size_t i, size_t *nsigs, uint32_t *newest)
{
	rnp_uid_handle_t uid = NULL;
	void *data = NULL;
	size_t n = 0;
	char *text = NULL;

	*nsigs = 0;
	*newest = 0;
	if (rnp_key_get_uid_handle_at(v->key, i, &uid) != RNP_SUCCESS)
		return NULL;
	if (rnp_uid_get_data(uid, &data, &n) == RNP_SUCCESS)
		text = xstrndup(data, n);
	rnp_buffer_destroy(data);
	rnp_uid_get_signature_count(uid, nsigs);
	for (size_t j = 0; j < *nsigs; j++) {
		rnp_signature_handle_t sig = NULL;
		uint32_t c = 0;

		rnp_uid_get_signature_at(uid, j, &sig);
		rnp_signature_get_creation(sig, &c);
		if (c > *newest)
			*newest = c;
		rnp_signature_handle_destroy(sig);
	}
	rnp_uid_handle_destroy(uid);
	return text;
}

static bool rnp_key_valid(struct rnp_view *v)
{
	bool valid = false;

	return rnp_key_is_valid(v->key, &valid) == RNP_SUCCESS && valid;
}

/* ---- reading copies back with gpg ---- */

static int gpg_home_counter;

/* Import data into a fresh GnuPG home; returns its --with-colons --list-sigs listing. */
static char *gpg_import_listing(const uint8_t *data, size_t len)
{
	int home_no = gpg_home_counter++;
	char *home = xasprintf("%s/h%d", keyfix_dir, home_no);
	char *file = xasprintf("%s/import.pgp", home);
	char *cmd, *out;
	FILE *f;
	size_t n;

	mkdir(home, 0700);
	f = fopen(file, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len) {
		if (f)
			fclose(f);
		free(home);
		free(file);
		return NULL;
	}
	fclose(f);
	cmd = xasprintf("gpg --homedir '%s' --batch --quiet --import '%s' 2>/dev/null && "
			"gpg --homedir '%s' --batch --with-colons --list-sigs > '%s/list' "
			"2>/dev/null; gpgconf --homedir '%s' --kill all >/dev/null 2>&1",
			home, file, home, home, home);
	if (system(cmd) != 0)
		fprintf(stderr, "gpg import failed: %s\n", cmd);
	free(cmd);
	free(file);
	file = xasprintf("h%d/list", home_no);
	out = (char *)keyfix_read(file, &n);
	free(file);
	free(home);
	return out;
}

/* Number of colon-listing records of a type ("uid", "uat", "sub", "sig"). */
static size_t listing_count(const char *listing, const char *type)
{
	size_t n = 0, tl = strlen(type);

	for (const char *p = listing; p && *p;) {
		if (strncmp(p, type, tl) == 0 && p[tl] == ':')
			n++;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return n;
}

/* ---- tests ---- */

static void test_setup(void)
{
	keyfix_generate("pw-keys", "");
}

static void test_cleanup(void)
{
	keyfix_cleanup();
}

/* Ed25519 with a Cv25519 subkey: accepted, one copy, identical from armored input. */
static void test_ed25519_accepted(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	struct keys_info info, info2;
	char *msg = NULL, *fpr = keyfix_fpr("ed25519"), *listing;
	struct rnp_view v;
	size_t nsigs;
	uint32_t newest;
	char *uid;

	CHECK(accept_file("ed25519.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(msg == NULL);
	CHECK(info.kind == KEYS_OPENPGP);
	CHECK_STREQ(info.fingerprint, fpr);
	CHECK_STREQ(info.algorithm, "EDDSA");
	CHECK(info.created > p.now - 600 && info.created <= p.now);
	CHECK(info.expires == 0);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		CHECK_STREQ(info.copies[0].address, "alice@example.org");
		CHECK(rnp_view_open(&v, info.copies[0].data, info.copies[0].len));
		CHECK(rnp_key_valid(&v));
		CHECK(rnp_uid_count(&v) == 1);
		CHECK(rnp_subkey_count(&v) == 1);
		uid = rnp_uid_info(&v, 0, &nsigs, &newest);
		CHECK_STREQ(uid, "Alice <alice@example.org>");
		CHECK(nsigs == 1);
		free(uid);
		rnp_view_close(&v);
		listing = gpg_import_listing(info.copies[0].data, info.copies[0].len);
		CHECK(listing != NULL && strstr(listing, fpr) != NULL);
		CHECK(listing_count(listing, "uid") == 1 && listing_count(listing, "sub") == 1);
		free(listing);
	}
	CHECK(accept_file("ed25519.asc", allowed, 1, &p, &info2, &msg) == KEYS_OK);
	CHECK(info2.ncopies == 1 && info.ncopies == 1 &&
	      info2.copies[0].len == info.copies[0].len &&
	      memcmp(info2.copies[0].data, info.copies[0].data, info.copies[0].len) == 0);
	keys_info_free(&info);
	keys_info_free(&info2);
	free(fpr);
}

static void test_rsa3072_accepted(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "ROSA@example.org" };
	struct keys_info info;
	char *msg = NULL, *fpr = keyfix_fpr("rsa3072"), *listing;

	CHECK(accept_file("rsa3072.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK_STREQ(info.algorithm, "RSA");
	CHECK(info.bits == 3072);
	CHECK_STREQ(info.fingerprint, fpr);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		CHECK_STREQ(info.copies[0].address, "rosa@example.org");
		listing = gpg_import_listing(info.copies[0].data, info.copies[0].len);
		CHECK(listing != NULL && listing_count(listing, "pub") == 1 &&
		      listing_count(listing, "sub") == 1 && listing_count(listing, "uid") == 1);
		free(listing);
	}
	keys_info_free(&info);
	free(msg);
	free(fpr);
}

static void test_weak_rsa1024(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("rsa1024.pgp", "walt@example.org", &p, KEYS_ERR_WEAK, "1024 bits");
}

static void test_sign_only(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("signonly.pgp", "sid@example.org", &p, KEYS_ERR_NO_ENCRYPTION,
		       "encryption subkey");
}

static void test_revoked(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("revoked.pgp", "rex@example.org", &p, KEYS_ERR_REVOKED, "revoked");
}

/* Made with a faked clock on 2020-01-01 with a one-day expiry. */
static void test_expired(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("expired.pgp", "olga@example.org", &p, KEYS_ERR_EXPIRED,
		       "expired on 2020-01-02");
}

/* Expires in two days: refused with a seven-day margin, accepted with one day. */
static void test_expiring_soon(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "sue@example.org" };
	struct keys_info info;
	char *msg = NULL;

	expect_refusal("expiring.pgp", "sue@example.org", &p, KEYS_ERR_EXPIRED, "7 days");
	p.expiry_margin = DAY;
	CHECK(accept_file("expiring.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	CHECK(info.expires > p.now + DAY && info.expires <= p.now + 2 * DAY + 60);
	keys_info_free(&info);
	free(msg);
}

/* Its only encryption subkey expired in 2020: refused; with a new one: the old one goes. */
static void test_expired_subkey(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "ivy@example.org" };
	struct keys_info info;
	char *msg = NULL;
	struct rnp_view v;
	size_t len;
	uint8_t *orig = keyfix_read("renewed.pgp", &len);

	expect_refusal("oldsub.pgp", "ivy@example.org", &p, KEYS_ERR_EXPIRED,
		       "encryption subkey expired on 2020-01-02");
	CHECK(rnp_view_open(&v, orig, len));
	CHECK(rnp_subkey_count(&v) == 2);
	rnp_view_close(&v);
	CHECK(accept_file("renewed.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		CHECK(rnp_view_open(&v, info.copies[0].data, info.copies[0].len));
		CHECK(rnp_subkey_count(&v) == 1);
		CHECK(rnp_key_valid(&v));
		rnp_view_close(&v);
	}
	keys_info_free(&info);
	free(orig);
	free(msg);
}

/* Bob's certification on Carol's user ID is in the upload, not in the copy. */
static void test_third_party_removed(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "carol@example.org" };
	struct keys_info info;
	char *msg = NULL, *bob = keyfix_fpr("bob"), *listing, *uid;
	size_t len, nsigs;
	uint32_t newest;
	uint8_t *orig = keyfix_read("certified.pgp", &len);
	struct rnp_view v;
	const char *bob_keyid = bob + strlen(bob) - 16;

	/* The fixture really carries the certification. */
	CHECK(rnp_view_open(&v, orig, len));
	uid = rnp_uid_info(&v, 0, &nsigs, &newest);
	CHECK(nsigs == 2);
	free(uid);
	rnp_view_close(&v);
	listing = gpg_import_listing(orig, len);
	CHECK(listing != NULL && strstr(listing, bob_keyid) != NULL);
	free(listing);

	CHECK(accept_file("certified.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		CHECK(rnp_view_open(&v, info.copies[0].data, info.copies[0].len));
		uid = rnp_uid_info(&v, 0, &nsigs, &newest);
		CHECK(nsigs == 1);
		free(uid);
		rnp_view_close(&v);
		listing = gpg_import_listing(info.copies[0].data, info.copies[0].len);
		CHECK(listing != NULL && strstr(listing, bob_keyid) == NULL);
		CHECK(listing_count(listing, "uid") == 1);
		free(listing);
	}
	keys_info_free(&info);
	free(orig);
	free(bob);
	free(msg);
}

/* Only the allowed addresses survive, each in its own copy, with its newest self-sig. */
static void test_foreign_uid_and_superseded(void)
{
	struct keys_policy p = test_policy();
	char *one[] = { "Dave@Example.ORG" };
	char *two[] = { "nobody@example.org", "DAVE.second@example.org", "dave@example.org" };
	struct keys_info info;
	char *msg = NULL, *uid, *listing;
	struct rnp_view v;
	size_t len, nsigs;
	uint32_t orig_newest, newest;
	uint8_t *orig = keyfix_read("foreign.pgp", &len);

	CHECK(rnp_view_open(&v, orig, len));
	CHECK(rnp_uid_count(&v) == 3);
	uid = rnp_uid_info(&v, 1, &nsigs, &orig_newest);
	CHECK_STREQ(uid, "Dave <dave@example.org>");
	CHECK(nsigs == 2);	/* the fixture has a superseded self-signature */
	free(uid);
	rnp_view_close(&v);

	CHECK(accept_file("foreign.pgp", one, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		CHECK_STREQ(info.copies[0].address, "dave@example.org");
		CHECK(memmem(info.copies[0].data, info.copies[0].len, "work", 4) == NULL);
		CHECK(memmem(info.copies[0].data, info.copies[0].len, "second", 6) == NULL);
		CHECK(rnp_view_open(&v, info.copies[0].data, info.copies[0].len));
		CHECK(rnp_uid_count(&v) == 1);
		CHECK(rnp_key_valid(&v));
		uid = rnp_uid_info(&v, 0, &nsigs, &newest);
		CHECK_STREQ(uid, "Dave <dave@example.org>");
		CHECK(nsigs == 1 && newest == orig_newest);
		free(uid);
		rnp_view_close(&v);
		listing = gpg_import_listing(info.copies[0].data, info.copies[0].len);
		CHECK(listing != NULL && listing_count(listing, "uid") == 1 &&
		      listing_count(listing, "sig") == 2);	/* uid + subkey binding */
		free(listing);
	}
	keys_info_free(&info);

	CHECK(accept_file("foreign.pgp", two, 3, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 2);
	if (info.ncopies == 2) {
		/* In the order of the allowed list. */
		CHECK_STREQ(info.copies[0].address, "dave.second@Example.ORG");
		CHECK_STREQ(info.copies[1].address, "dave@example.org");
		CHECK(rnp_view_open(&v, info.copies[0].data, info.copies[0].len));
		CHECK(rnp_uid_count(&v) == 1);
		uid = rnp_uid_info(&v, 0, &nsigs, &newest);
		CHECK_STREQ(uid, "dave.second@Example.ORG");
		free(uid);
		rnp_view_close(&v);
	}
	keys_info_free(&info);
	free(orig);
	free(msg);
}

static void test_no_matching_address(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("foreign.pgp", "eve@example.org", &p, KEYS_ERR_NO_ADDRESS,
		       "eve@example.org");
	expect_refusal("foreign.pgp", "eve@example.org", &p, KEYS_ERR_NO_ADDRESS,
		       "dave@work.example");
}

static void test_photo_removed(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "erin@example.org" };
	struct keys_info info;
	char *msg = NULL, *listing;
	size_t len;
	uint8_t *orig = keyfix_read("photo.pgp", &len);

	listing = gpg_import_listing(orig, len);
	CHECK(listing != NULL && listing_count(listing, "uat") == 1);
	free(listing);
	CHECK(accept_file("photo.pgp", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	if (info.ncopies == 1) {
		listing = gpg_import_listing(info.copies[0].data, info.copies[0].len);
		CHECK(listing != NULL && listing_count(listing, "uat") == 0 &&
		      listing_count(listing, "uid") == 1);
		CHECK(memmem(info.copies[0].data, info.copies[0].len, "JFIF", 4) == NULL);
		free(listing);
	}
	keys_info_free(&info);
	free(orig);
	free(msg);
}

/* A window of input bytes that is key material: base64 or binary, not armor words. */
static bool key_material(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == ' ' || p[i] == '-' || p[i] == '\n')
			return false;
	return true;
}

/* No 12-byte window of the input's key material may appear in the message. */
static bool message_leaks(const char *msg, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i + 12 <= len; i++)
		if (key_material(data + i, 12) && memmem(msg, strlen(msg), data + i, 12) != NULL)
			return true;
	return false;
}

static void test_secret_refused(void)
{
	static const char *const files[] = { "secret.asc", "secret.pgp", "subkeys-secret.pgp",
					     "smime-withkey.pem", "smime-keyonly.pem",
					     "smime-keyonly.der" };
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct keys_info info;
		char *msg = NULL;
		size_t len;
		uint8_t *data = keyfix_read(files[i], &len);
		enum keys_error e = keys_accept(data, len, allowed, 1, &p, &info, &msg);

		if (e != KEYS_ERR_SECRET)
			fprintf(stderr, "%s: %s\n", files[i], keys_error_name(e));
		CHECK(e == KEYS_ERR_SECRET);
		CHECK(info.ncopies == 0);
		CHECK(msg != NULL && !message_leaks(msg, data, len));
		CHECK(msg != NULL && strstr(msg, "discarded") != NULL);
		free(msg);
		free(data);
	}
}

static void test_multiple_refused(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("two.pgp", "alice@example.org", &p, KEYS_ERR_MULTIPLE, "2 OpenPGP keys");
	expect_refusal("two.asc", "alice@example.org", &p, KEYS_ERR_MULTIPLE, NULL);
	expect_refusal("smime-two.pem", "alice@example.org", &p, KEYS_ERR_MULTIPLE, NULL);
}

/* Every prefix of a good key is refused; a cut inside a packet says "truncated". */
static void test_truncated(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	size_t len, bad = 0;
	uint8_t *data = keyfix_read("ed25519.pgp", &len);
	struct keys_info info;
	char *msg = NULL;

	for (size_t cut = 1; cut < len; cut++) {
		enum keys_error e = keys_accept(data, cut, allowed, 1, &p, &info, &msg);

		if (e == KEYS_OK)
			bad++;
		keys_info_free(&info);
		free(msg);
	}
	CHECK(bad == 0);
	CHECK(keys_accept(data, len / 2, allowed, 1, &p, &info, &msg) == KEYS_ERR_NOT_A_KEY);
	CHECK(msg && strstr(msg, "truncated") != NULL);
	free(msg);
	free(data);

	data = keyfix_read("smime-good.der", &len);
	CHECK(keys_accept(data, len - 10, allowed, 1, &p, &info, &msg) == KEYS_ERR_NOT_A_KEY);
	free(msg);
	free(data);
}

static void test_garbage(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	static const char *const inputs[] = {
		"hello world",
		("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 at all!!\n"
		 "-----END PGP PUBLIC KEY BLOCK-----\n"),
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		("-----BEGIN PGP MESSAGE-----\n\nowGbwMvMwCE2\n"
		 "-----END PGP MESSAGE-----\n"),
		"\x99\x00\x05zzzzz",
		"\xb4\x05hello",
		"\x30\x03\x02\x01\x01",
	};
	uint8_t rnd[2048];
	struct keys_info info;
	char *msg = NULL;

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		enum keys_error e = keys_accept((const uint8_t *)inputs[i], strlen(inputs[i]),
						allowed, 1, &p, &info, &msg);

		if (e != KEYS_ERR_NOT_A_KEY)
			fprintf(stderr, "garbage %zu: %s %s\n", i, keys_error_name(e), msg);
		CHECK(e == KEYS_ERR_NOT_A_KEY);
		CHECK(msg != NULL);
		free(msg);
	}
	srand(42);
	for (size_t i = 0; i < sizeof(rnd); i++)
		rnd[i] = (uint8_t)rand();
	rnd[0] = 0x99;		/* looks like an old-format public key packet */
	CHECK(keys_accept(rnd, sizeof(rnd), allowed, 1, &p, &info, &msg) != KEYS_OK);
	free(msg);
	CHECK(keys_accept(rnd, 0, allowed, 1, &p, &info, &msg) == KEYS_ERR_NOT_A_KEY);
	free(msg);
}

static void test_too_big(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	uint8_t *big = xcalloc(KEYS_MAX_UPLOAD + 1, 1);
	struct keys_info info;
	char *msg = NULL;

	big[0] = 0x99;
	CHECK(keys_accept(big, KEYS_MAX_UPLOAD + 1, allowed, 1, &p, &info, &msg) ==
	      KEYS_ERR_TOO_BIG);
	free(msg);
	free(big);
}

/* Drop every signature packet of a binary key: user IDs without self-signatures. */
static size_t strip_signatures(const uint8_t *in, size_t len, uint8_t *out)
{
	size_t off = 0, o = 0;

	while (off < len) {
		uint8_t b = in[off];
		size_t hdr, n, tag;

		if (b & 0x40) {
			tag = b & 0x3f;
			if (in[off + 1] < 192) {
				hdr = 2;
				n = in[off + 1];
			} else {
				hdr = 3;
				n = ((size_t)(in[off + 1] - 192) << 8) + in[off + 2] + 192;
			}
		} else {
			tag = (b >> 2) & 15;
			hdr = (b & 3) == 0 ? 2 : 3;
			n = (b & 3) == 0 ? in[off + 1] : ((size_t)in[off + 1] << 8) | in[off + 2];
		}
		if (tag != 2) {
			memcpy(out + o, in + off, hdr + n);
			o += hdr + n;
		}
		off += hdr + n;
	}
	return o;
}

static void test_no_selfsig(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	size_t len, n;
	uint8_t *data = keyfix_read("ed25519.pgp", &len), *stripped = xmalloc(len);
	struct keys_info info;
	char *msg = NULL;
	enum keys_error e;

	n = strip_signatures(data, len, stripped);
	CHECK(n < len);
	e = keys_accept(stripped, n, allowed, 1, &p, &info, &msg);
	CHECK(e == KEYS_ERR_NO_SELFSIG);
	CHECK(msg && strstr(msg, "self-signature") != NULL);
	free(msg);

	/* A self-signature whose last byte is damaged does not verify either. */
	memcpy(stripped, data, len);
	{
		size_t off = 0, uid_sig_end = 0;

		/* public key packet, user ID packet, then the certification */
		for (int i = 0; i < 3 && off < len; i++) {
			size_t hdr = (data[off] & 0x40) ? (data[off + 1] < 192 ? 2 : 3) :
						       ((data[off] & 3) == 0 ? 2 : 3);
			size_t pl = hdr == 2 ? data[off + 1] :
				    (data[off] & 0x40) ?
					    ((size_t)(data[off + 1] - 192) << 8) + data[off + 2] + 192 :
					    ((size_t)data[off + 1] << 8) | data[off + 2];
			off += hdr + pl;
			uid_sig_end = off;
		}
		stripped[uid_sig_end - 2] ^= 0x55;
	}
	e = keys_accept(stripped, len, allowed, 1, &p, &info, &msg);
	if (e != KEYS_ERR_NO_SELFSIG)
		fprintf(stderr, "damaged self-sig: %s %s\n", keys_error_name(e), msg);
	CHECK(e == KEYS_ERR_NO_SELFSIG);
	free(msg);
	free(stripped);
	free(data);
}

static void test_record_size(void)
{
	struct keys_policy p = test_policy();

	p.max_record_size = 600;
	expect_refusal("rsa3072.pgp", "rosa@example.org", &p, KEYS_ERR_RECORD_SIZE,
		       "limit of 600 bytes");
	expect_refusal("smime-good.pem", "alice@example.org", &p, KEYS_ERR_RECORD_SIZE, "600");
}

static void test_armor(void)
{
	size_t len;
	uint8_t *data = keyfix_read("ed25519.pgp", &len);
	char *armored = keys_armor(data, len);
	struct keys_policy p = test_policy();
	char *allowed[] = { "alice@example.org" };
	struct keys_info info;
	char *msg = NULL;

	CHECK(armored != NULL &&
	      strncmp(armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----", 36) == 0);
	CHECK(armored && strstr(armored, "-----END PGP PUBLIC KEY BLOCK-----") != NULL);
	if (armored) {
		CHECK(keys_accept((uint8_t *)armored, strlen(armored), allowed, 1, &p, &info,
				  &msg) == KEYS_OK);
		keys_info_free(&info);
	}
	free(msg);
	free(armored);
	free(data);
}

/* ---- S/MIME ---- */

static void test_smime_good(void)
{
	struct keys_policy p = test_policy();
	char *allowed[] = { "ALICE@example.org", "alice.alias@example.org" };
	struct keys_info info;
	char *msg = NULL;
	size_t dlen;
	uint8_t *der = keyfix_read("smime-good.der", &dlen), md[32];
	char hex[65];
	unsigned int mdlen;

	EVP_Digest(der, dlen, md, &mdlen, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02X", md[i]);

	CHECK(accept_file("smime-good.pem", allowed, 2, &p, &info, &msg) == KEYS_OK);
	CHECK(info.kind == KEYS_SMIME);
	CHECK_STREQ(info.algorithm, "RSA");
	CHECK(info.bits == 2048);
	CHECK_STREQ(info.fingerprint, hex);
	CHECK(info.ncopies == 2);
	if (info.ncopies == 2) {
		CHECK_STREQ(info.copies[0].address, "alice@example.org");
		CHECK_STREQ(info.copies[1].address, "alice.alias@example.org");
		CHECK(info.copies[0].len == dlen && memcmp(info.copies[0].data, der, dlen) == 0);
	}
	keys_info_free(&info);

	CHECK(accept_file("smime-good.der", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1);
	keys_info_free(&info);
	CHECK(accept_file("smime-ec.pem", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK_STREQ(info.algorithm, "EC");
	keys_info_free(&info);
	/* An address only in the subject's emailAddress. */
	CHECK(accept_file("smime-subject.pem", allowed, 1, &p, &info, &msg) == KEYS_OK);
	CHECK(info.ncopies == 1 && strcmp(info.copies[0].address, "Alice@Example.ORG") == 0);
	keys_info_free(&info);
	free(msg);
	free(der);
}

static void test_smime_refusals(void)
{
	struct keys_policy p = test_policy();

	expect_refusal("smime-other.pem", "alice@example.org", &p, KEYS_ERR_NO_ADDRESS,
		       "bob@example.net");
	expect_refusal("smime-ca.pem", "alice@example.org", &p, KEYS_ERR_NO_ADDRESS,
		       "no e-mail address");
	expect_refusal("smime-expired.pem", "alice@example.org", &p, KEYS_ERR_EXPIRED,
		       "expired on 2020-06-01");
	expect_refusal("smime-soon.pem", "alice@example.org", &p, KEYS_ERR_EXPIRED, "expires on");
	expect_refusal("smime-rsa1024.pem", "alice@example.org", &p, KEYS_ERR_WEAK, "1024 bits");
	expect_refusal("smime-signonly.pem", "alice@example.org", &p, KEYS_ERR_NO_ENCRYPTION,
		       "keyEncipherment");
	expect_refusal("smime-ed25519.pem", "alice@example.org", &p, KEYS_ERR_NO_ENCRYPTION,
		       "ED25519");
	p.expiry_margin = DAY;
	{
		char *allowed[] = { "alice@example.org" };
		struct keys_info info;
		char *msg = NULL;

		CHECK(accept_file("smime-soon.pem", allowed, 1, &p, &info, &msg) == KEYS_OK);
		keys_info_free(&info);
		free(msg);
	}
}

static void test_error_names(void)
{
	for (int i = KEYS_OK; i <= KEYS_ERR_RECORD_SIZE; i++) {
		CHECK(strcmp(keys_error_name((enum keys_error)i), "unknown") != 0);
		for (int j = KEYS_OK; j < i; j++)
			CHECK(strcmp(keys_error_name((enum keys_error)i),
				     keys_error_name((enum keys_error)j)) != 0);
	}
	CHECK_STREQ(keys_error_name(KEYS_ERR_SECRET), "secret-key");
	CHECK_STREQ(keys_error_name(KEYS_ERR_REVOKED), "revoked");
	CHECK_STREQ(keys_kind_name(KEYS_OPENPGP), "openpgp");
	CHECK_STREQ(keys_kind_name(KEYS_SMIME), "smime");
}

TEST_MAIN(test_setup, test_ed25519_accepted, test_rsa3072_accepted, test_weak_rsa1024,
	  test_sign_only, test_revoked, test_expired, test_expiring_soon, test_expired_subkey,
	  test_third_party_removed, test_foreign_uid_and_superseded, test_no_matching_address,
	  test_photo_removed, test_secret_refused, test_multiple_refused, test_truncated,
	  test_garbage, test_too_big, test_no_selfsig, test_record_size, test_armor,
	  test_smime_good, test_smime_refusals, test_error_names, test_cleanup)
