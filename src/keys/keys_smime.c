/*
 * keys_smime.c - checking an S/MIME certificate (PEM or DER) with OpenSSL for publication
 * as an SMIMEA record: exactly one certificate, no private key, currently valid, strong
 * enough, able to receive encrypted mail, and naming an allowed address in an rfc822Name
 * or the subject's emailAddress. The published copy is the DER certificate itself.
 *
 * Revocation is not checked here: that needs the issuer's CRL or OCSP responder.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keys/keys_int.h"
#include "log.h"
#include "xmalloc.h"

#define KEYS_SMIME_MIN_BITS 2048
#define KEYS_SMIME_MAX_ADDRS 64
#define KEYS_SMIME_MAX_BLOCKS 16

/* The e-mail addresses a certificate names. */
struct keys_smime_addrs {
	char *addr[KEYS_SMIME_MAX_ADDRS];
	size_t n;
};

static enum keys_error keys_smime_secret(char **msg)
{
	return keys_refuse(msg, KEYS_ERR_SECRET,
			   "This upload contains a private key. It was discarded and nothing was "
			   "stored; upload only the certificate.");
}

/* Whether DER bytes are a private key or a PKCS#12 bundle (which carries one). */
static bool keys_smime_der_is_secret(const uint8_t *data, size_t len)
{
	const unsigned char *p = data;
	EVP_PKEY *pk;
	PKCS12 *p12;
	X509_SIG *enc;
	bool secret = false;

	if (len > LONG_MAX)
		return false;
	if ((pk = d2i_AutoPrivateKey(NULL, &p, (long)len)) != NULL) {
		EVP_PKEY_free(pk);
		secret = true;
	}
	p = data;
	if (!secret && (enc = d2i_X509_SIG(NULL, &p, (long)len)) != NULL) {
		X509_SIG_free(enc);	/* an encrypted PKCS#8 private key */
		secret = true;
	}
	p = data;
	if (!secret && (p12 = d2i_PKCS12(NULL, &p, (long)len)) != NULL) {
		PKCS12_free(p12);
		secret = true;
	}
	ERR_clear_error();
	return secret;
}

/* One DER certificate, nothing after it. */
static enum keys_error keys_smime_read_der(const uint8_t *data, size_t len, X509 **out,
					   char **msg)
{
	const unsigned char *p = data;
	X509 *x, *next;

	if (len > LONG_MAX)
		return keys_refuse(msg, KEYS_ERR_TOO_BIG, "The upload is too large.");
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL) {
		ERR_clear_error();
		if (keys_smime_der_is_secret(data, len))
			return keys_smime_secret(msg);
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "This is neither an OpenPGP public key nor an X.509 certificate "
				   "(or it is truncated).");
	}
	if (p != data + len) {
		const unsigned char *q = p;

		next = d2i_X509(NULL, &q, (long)(len - (size_t)(p - data)));
		ERR_clear_error();
		X509_free(x);
		if (next != NULL) {
			X509_free(next);
			return keys_refuse(msg, KEYS_ERR_MULTIPLE,
					   "The upload holds more than one certificate; upload "
					   "exactly one (the one for your address, without its chain).");
		}
		if (keys_smime_der_is_secret(p, len - (size_t)(p - data)))
			return keys_smime_secret(msg);
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "The certificate is followed by %zu bytes of other data.",
				   len - (size_t)(p - data));
	}
	*out = x;
	return KEYS_OK;
}

/* Walk the PEM blocks: exactly one CERTIFICATE, no private key of any kind. */
static enum keys_error keys_smime_read_pem(const uint8_t *data, size_t len, X509 **out,
					   char **msg)
{
	BIO *bio;
	char *name = NULL, *header = NULL;
	unsigned char *body = NULL;
	long blen = 0;
	size_t nblocks = 0, ncerts = 0;
	uint8_t *der = NULL;
	size_t derlen = 0;
	bool secret = false, damaged = false;
	enum keys_error e;

	/* Also catches private keys whose PEM is damaged and would not parse below. */
	if (memmem(data, len, "PRIVATE KEY-----", 16) != NULL)
		return keys_smime_secret(msg);
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		fatalx("keys: BIO_new_mem_buf failed");
	while (nblocks < KEYS_SMIME_MAX_BLOCKS) {
		if (PEM_read_bio(bio, &name, &header, &body, &blen) != 1) {
			unsigned long err = ERR_peek_last_error();

			damaged = ERR_GET_LIB(err) != ERR_LIB_PEM ||
				  ERR_GET_REASON(err) != PEM_R_NO_START_LINE;
			break;
		}
		nblocks++;
		if (strstr(name, "PRIVATE") != NULL || strstr(name, "PKCS12") != NULL) {
			secret = true;
		} else if ((strcmp(name, "CERTIFICATE") == 0 ||
			    strcmp(name, "X509 CERTIFICATE") == 0) && blen > 0) {
			ncerts++;
			if (der == NULL) {
				der = xmemdup(body, (size_t)blen);
				derlen = (size_t)blen;
			}
		}
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_clear_free(body, (size_t)(blen > 0 ? blen : 0));
		name = header = NULL;
		body = NULL;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (secret)
		e = keys_smime_secret(msg);
	else if (nblocks > 1)
		e = keys_refuse(msg, KEYS_ERR_MULTIPLE,
				"The upload holds %zu PEM blocks; upload exactly one certificate "
				"(the one for your address, without its chain).", nblocks);
	else if (ncerts == 0 && damaged)
		e = keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				"The PEM data is damaged or truncated and could not be decoded.");
	else if (ncerts == 0)
		e = keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				"The PEM data holds no CERTIFICATE block.");
	else
		e = keys_smime_read_der(der, derlen, out, msg);
	free(der);
	return e;
}

/* An ASN1_TIME as unix time; false if unreadable. */
static bool keys_smime_time(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return false;
	*out = (int64_t)timegm(&tm);
	return true;
}

static enum keys_error keys_smime_check_dates(X509 *x, const struct keys_policy *policy,
					      struct keys_info *info, char **msg)
{
	char date[48];

	if (!keys_smime_time(X509_get0_notBefore(x), &info->created) ||
	    !keys_smime_time(X509_get0_notAfter(x), &info->expires))
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "The certificate's validity dates cannot be read.");
	if (info->created > policy->now) {
		keys_format_time(info->created, date, sizeof(date));
		return keys_refuse(msg, KEYS_ERR_EXPIRED,
				   "This certificate is not valid before %s.", date);
	}
	keys_format_time(info->expires, date, sizeof(date));
	if (info->expires <= policy->now)
		return keys_refuse(msg, KEYS_ERR_EXPIRED, "This certificate expired on %s.", date);
	if (info->expires <= policy->now + policy->expiry_margin)
		return keys_refuse(msg, KEYS_ERR_EXPIRED,
				   "This certificate expires on %s, within the next %lld days; "
				   "renew it and upload the new one.", date,
				   (long long)(policy->expiry_margin / 86400));
	return KEYS_OK;
}

/* Key type and size, curve, and the hash of the issuer's signature. */
static enum keys_error keys_smime_check_strength(X509 *x, EVP_PKEY *pk, struct keys_info *info,
						 char **msg)
{
	static const char *const curves[] = { "prime256v1", "secp384r1", "secp521r1",
					      "brainpoolP256r1", "brainpoolP384r1",
					      "brainpoolP512r1" };
	int id = EVP_PKEY_get_base_id(pk), mdnid = NID_undef;
	char group[64] = "";
	size_t glen = 0;
	bool known = false;

	if ((id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS || id == EVP_PKEY_DSA) &&
	    info->bits < KEYS_SMIME_MIN_BITS)
		return keys_refuse(msg, KEYS_ERR_WEAK,
				   "This certificate's %s key has %u bits; at least %d bits are "
				   "required.", info->algorithm, info->bits, KEYS_SMIME_MIN_BITS);
	if (id == EVP_PKEY_EC) {
		if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1)
			group[0] = '\0';
		for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
			if (strcmp(group, curves[i]) == 0)
				known = true;
		if (!known)
			return keys_refuse(msg, KEYS_ERR_WEAK,
					   "This certificate's elliptic curve (%s) is not accepted.",
					   group[0] ? group : "unknown");
	}
	if (X509_get_signature_info(x, &mdnid, NULL, NULL, NULL) == 1 &&
	    (mdnid == NID_md5 || mdnid == NID_sha1 || mdnid == NID_md4 || mdnid == NID_md2))
		return keys_refuse(msg, KEYS_ERR_WEAK,
				   "This certificate is signed with %s, which is no longer accepted.",
				   OBJ_nid2sn(mdnid));
	ERR_clear_error();
	return KEYS_OK;
}

/* RSA with keyEncipherment or EC with keyAgreement, and e-mail protection if restricted. */
static enum keys_error keys_smime_check_encryption(X509 *x, EVP_PKEY *pk, struct keys_info *info,
						   char **msg)
{
	int id = EVP_PKEY_get_base_id(pk);
	uint32_t ku = X509_get_key_usage(x);
	uint32_t need;

	if (id == EVP_PKEY_RSA)
		need = KU_KEY_ENCIPHERMENT;
	else if (id == EVP_PKEY_EC)
		need = KU_KEY_AGREEMENT;
	else
		return keys_refuse(msg, KEYS_ERR_NO_ENCRYPTION,
				   "This certificate's key type (%s) cannot be used to encrypt "
				   "mail.", info->algorithm);
	if (ku != UINT32_MAX && !(ku & need))
		return keys_refuse(msg, KEYS_ERR_NO_ENCRYPTION,
				   "This certificate's key usage does not allow encryption (%s is "
				   "missing).", need == KU_KEY_ENCIPHERMENT ? "keyEncipherment" :
				   "keyAgreement");
	if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(x) & (XKU_SMIME | XKU_ANYEKU)))
		return keys_refuse(msg, KEYS_ERR_NO_ENCRYPTION,
				   "This certificate is not for e-mail protection (its extended key "
				   "usage lacks emailProtection).");
	return KEYS_OK;
}

/* Add the text of an ASN.1 string if it is a plausible address. */
static void keys_smime_add_addr(struct keys_smime_addrs *a, const ASN1_STRING *s)
{
	unsigned char *utf8 = NULL;
	int n;

	if (a->n >= KEYS_SMIME_MAX_ADDRS)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, s);
	if (n > 0 && n <= KEYS_MAX_UID && memchr(utf8, '\0', (size_t)n) == NULL)
		a->addr[a->n++] = xstrndup((const char *)utf8, (size_t)n);
	OPENSSL_free(utf8);
}

/* The rfc822Names of the subjectAltName and the subject's emailAddress attributes. */
static void keys_smime_addresses(X509 *x, struct keys_smime_addrs *a)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const X509_NAME *subj = X509_get_subject_name(x);
	int i = -1;

	for (int j = 0; gens && j < sk_GENERAL_NAME_num(gens); j++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, j);

		if (g->type == GEN_EMAIL)
			keys_smime_add_addr(a, g->d.rfc822Name);
	}
	GENERAL_NAMES_free(gens);
	while ((i = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress, i)) >= 0)
		keys_smime_add_addr(a, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	ERR_clear_error();
}

/* One copy (the DER) per allowed address the certificate names. */
static enum keys_error keys_smime_copies(X509 *x, char *const *allowed, size_t nallowed,
					 const struct keys_policy *policy,
					 struct keys_info *info, char **msg)
{
	struct keys_smime_addrs a = { .n = 0 };
	unsigned char *der = NULL;
	int derlen;
	enum keys_error e = KEYS_OK;

	keys_smime_addresses(x, &a);
	derlen = i2d_X509(x, &der);
	if (derlen <= 0) {
		e = keys_refuse(msg, KEYS_ERR_NOT_A_KEY, "The certificate cannot be encoded.");
	} else if (policy->max_record_size > 0 && (size_t)derlen > policy->max_record_size) {
		e = keys_refuse(msg, KEYS_ERR_RECORD_SIZE,
				"This certificate is %d bytes, more than the limit of %zu bytes "
				"for a published record.", derlen, policy->max_record_size);
	} else {
		for (size_t i = 0; i < nallowed; i++) {
			for (size_t j = 0; j < a.n; j++) {
				if (keys_allowed_index(a.addr[j], &allowed[i], 1) != 0)
					continue;
				keys_add_copy(info, xstrdup(a.addr[j]),
					      xmemdup(der, (size_t)derlen), (size_t)derlen);
				break;
			}
		}
		if (info->ncopies == 0 && a.n == 0) {
			e = keys_refuse(msg, KEYS_ERR_NO_ADDRESS,
					"This certificate names no e-mail address (no rfc822Name and "
					"no emailAddress).");
		} else if (info->ncopies == 0) {
			char *shown = keys_printable(a.addr[0], 100);
			char *want = keys_printable(nallowed && allowed[0] ? allowed[0] : "", 100);

			e = keys_refuse(msg, KEYS_ERR_NO_ADDRESS,
					"This certificate is for %s%s, not for %s%s.", shown,
					a.n > 1 ? " and other addresses" : "", want,
					nallowed > 1 ? " or your other addresses" : "");
			free(shown);
			free(want);
		}
	}
	OPENSSL_free(der);
	for (size_t j = 0; j < a.n; j++)
		free(a.addr[j]);
	return e;
}

/* Fingerprint (SHA-256 of the DER), algorithm and size. */
static void keys_smime_fill_info(X509 *x, EVP_PKEY *pk, struct keys_info *info)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int id = EVP_PKEY_get_base_id(pk);

	info->kind = KEYS_SMIME;
	if (X509_digest(x, EVP_sha256(), md, &n) == 1 && n == 32)
		keys_hex(md, n, info->fingerprint, true);
	snprintf(info->algorithm, sizeof(info->algorithm), "%s",
		 id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_RSA_PSS ? "RSA-PSS" :
		 id == EVP_PKEY_EC ? "EC" : id == EVP_PKEY_DSA ? "DSA" :
		 id == EVP_PKEY_ED25519 ? "ED25519" : id == EVP_PKEY_ED448 ? "ED448" :
		 OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "unknown");
	info->bits = (unsigned)EVP_PKEY_get_bits(pk);
}

enum keys_error keys_smime_accept(const uint8_t *data, size_t len, char *const *allowed,
				  size_t nallowed, const struct keys_policy *policy,
				  struct keys_info *info, char **msg)
{
	X509 *x = NULL;
	EVP_PKEY *pk;
	enum keys_error e;

	if (memmem(data, len, "-----BEGIN ", 11) != NULL)
		e = keys_smime_read_pem(data, len, &x, msg);
	else
		e = keys_smime_read_der(data, len, &x, msg);
	if (e != KEYS_OK)
		return e;
	pk = X509_get0_pubkey(x);
	if (pk == NULL) {
		ERR_clear_error();
		X509_free(x);
		return keys_refuse(msg, KEYS_ERR_NOT_A_KEY,
				   "The certificate's public key cannot be read.");
	}
	keys_smime_fill_info(x, pk, info);
	if ((e = keys_smime_check_dates(x, policy, info, msg)) == KEYS_OK &&
	    (e = keys_smime_check_strength(x, pk, info, msg)) == KEYS_OK &&
	    (e = keys_smime_check_encryption(x, pk, info, msg)) == KEYS_OK)
		e = keys_smime_copies(x, allowed, nallowed, policy, info, msg);
	X509_free(x);
	ERR_clear_error();
	return e;
}
