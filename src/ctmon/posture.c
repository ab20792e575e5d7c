/*
 * posture.c - TLSA, CAA and fingerprint values for the provider's own certificates; see
 * posture.h. Files are read whole (bounded) and parsed from memory, so a file that is too
 * large or not a certificate gets one clear sentence.
 */
#include "posture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

/* The whole file (at most POSTURE_FILE_MAX bytes); NULL with *err. */
static unsigned char *posture_slurp(const char *path, size_t *len, char **err)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;

	if (f == NULL) {
		*err = xasprintf("cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(POSTURE_FILE_MAX + 1);
	*len = fread(buf, 1, POSTURE_FILE_MAX + 1, f);
	if (ferror(f) || *len > POSTURE_FILE_MAX || *len == 0) {
		*err = ferror(f) ? xasprintf("cannot read %s", path)
		       : *len == 0 ? xasprintf("%s is empty", path)
		       : xasprintf("%s is larger than %d bytes: not a certificate file", path,
				   POSTURE_FILE_MAX);
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

/* Does data (not NUL-terminated) contain the text needle? */
static bool posture_contains(const unsigned char *data, size_t len, const char *needle)
{
	return memmem(data, len, needle, strlen(needle)) != NULL;
}

bool posture_parse_chain(const unsigned char *data, size_t len, const char *what,
			 struct posture_chain *chain, char **err)
{
	BIO *bio;
	X509 *x;

	memset(chain, 0, sizeof(*chain));
	if (len == 0 || len > POSTURE_FILE_MAX) {
		*err = xasprintf("%s holds no certificate (PEM or DER)", what);
		return false;
	}
	bio = BIO_new_mem_buf(data, (int)len);
	if (bio == NULL)
		fatalx("out of memory");
	while (chain->n < POSTURE_CHAIN_MAX && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		chain->certs[chain->n++] = x;
	BIO_free(bio);
	if (chain->n == 0 && data[0] == 0x30) {	/* a DER SEQUENCE: one certificate */
		const unsigned char *p = data;

		x = d2i_X509(NULL, &p, (long)len);
		if (x != NULL)
			chain->certs[chain->n++] = x;
	}
	ERR_clear_error();
	if (chain->n == 0) {
		*err = xasprintf("%s holds no certificate (PEM or DER)", what);
		return false;
	}
	return true;
}

bool posture_read_chain(const char *path, struct posture_chain *chain, char **err)
{
	size_t len;
	unsigned char *data = posture_slurp(path, &len, err);
	bool ok;

	memset(chain, 0, sizeof(*chain));
	if (data == NULL)
		return false;
	ok = posture_parse_chain(data, len, path, chain, err);
	free(data);
	return ok;
}

void posture_chain_free(struct posture_chain *chain)
{
	for (size_t i = 0; i < chain->n; i++)
		X509_free(chain->certs[i]);
	chain->n = 0;
}

/* The public key of the first certificate, request or PUBLIC KEY in a PEM buffer. */
static EVP_PKEY *posture_pem_public_key(const unsigned char *data, size_t len)
{
	BIO *bio = BIO_new_mem_buf(data, (int)len);
	EVP_PKEY *key = NULL;
	X509 *x;
	X509_REQ *req;

	if (bio == NULL)
		fatalx("out of memory");
	if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		key = X509_get_pubkey(x);
		X509_free(x);
	} else if (BIO_reset(bio) == 1 &&
		   (req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL)) != NULL) {
		key = X509_REQ_get_pubkey(req);
		X509_REQ_free(req);
	} else if (BIO_reset(bio) == 1) {
		key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	}
	BIO_free(bio);
	ERR_clear_error();
	return key;
}

EVP_PKEY *posture_parse_public_key(const unsigned char *data, size_t len, const char *what,
				   char **err)
{
	EVP_PKEY *key = NULL;

	if (len > 0 && len <= POSTURE_FILE_MAX && posture_contains(data, len, "PRIVATE KEY-----")) {
		*err = xasprintf("%s holds a private key; give its certificate, certificate "
				 "request or public key (openssl pkey -pubout) instead", what);
		return NULL;
	}
	if (len > 0 && len <= POSTURE_FILE_MAX)
		key = posture_pem_public_key(data, len);
	if (key == NULL && len > 0 && len <= POSTURE_FILE_MAX && data[0] == 0x30) {
		const unsigned char *p = data;	/* DER: a certificate or a public key */
		X509 *x = d2i_X509(NULL, &p, (long)len);

		if (x != NULL) {
			key = X509_get_pubkey(x);
			X509_free(x);
		} else {
			p = data;
			key = d2i_PUBKEY(NULL, &p, (long)len);
		}
		ERR_clear_error();
	}
	if (key == NULL)
		*err = xasprintf("%s holds no certificate, certificate request or public key",
				 what);
	return key;
}

EVP_PKEY *posture_read_public_key(const char *path, char **err)
{
	size_t len;
	unsigned char *data = posture_slurp(path, &len, err);
	EVP_PKEY *key;

	if (data == NULL)
		return NULL;
	key = posture_parse_public_key(data, len, path, err);
	free(data);
	return key;
}

/* SHA-256 of the DER SubjectPublicKeyInfo of key. */
static void posture_spki_sha256(EVP_PKEY *key, unsigned char md[32])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);

	if (len <= 0)
		fatalx("cannot encode a public key");
	if (EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) != 1)
		fatalx("SHA-256 failed");
	OPENSSL_free(der);
}

void posture_spki_sha256_hex(EVP_PKEY *key, char out[65])
{
	unsigned char md[32];

	posture_spki_sha256(key, md);
	hex_encode(md, sizeof(md), out);
}

void posture_spki_sha256_b64(EVP_PKEY *key, char out[45])
{
	unsigned char md[32];

	posture_spki_sha256(key, md);
	EVP_EncodeBlock((unsigned char *)out, md, sizeof(md));
}

void posture_cert_sha256_colons(X509 *cert, char out[97])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != sizeof(md))
		fatalx("SHA-256 failed");
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(out + 3 * i, 4, i + 1 < sizeof(md) ? "%02X:" : "%02X", md[i]);
}

bool posture_is_ca(X509 *cert)
{
	char *host;

	if (X509_check_ca(cert) == 0)
		return false;
	/* `openssl req -x509` marks a self-signed server certificate CA:TRUE too */
	host = posture_cert_host(cert);
	free(host);
	return host == NULL;
}

char *posture_cert_host(X509 *cert)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	char *host = NULL, cn[256];

	for (int i = 0; sans != NULL && host == NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

		if (g->type == GEN_DNS)
			host = xstrndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
					(size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(sans);
	if (host == NULL && X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
						      NID_commonName, cn, sizeof(cn)) > 0)
		host = xstrdup(cn);
	if (host != NULL && !hostname_valid(host[0] == '*' && host[1] == '.' ? host + 2
						  : host)) {
		free(host);
		host = NULL;
	}
	return host;
}

/*
 * Can v stand inside a CAA property value and its quotes? The issue value's grammar
 * (RFC 8659 4.2) separates parameters with ';' and the zone file ends the string at '"'.
 */
static bool posture_caa_text_ok(const char *v)
{
	if (*v == '\0' || strlen(v) > 255)
		return false;
	for (; *v; v++)
		if (*v <= ' ' || *v >= 0x7f || *v == '"' || *v == ';' || *v == '\\')
			return false;
	return true;
}

/* The issue value for one CA: "ca.example; accounturi=...; validationmethods=...". */
static char *posture_caa_issue_value(const struct posture_caa *c, const char *ca)
{
	char *v = xstrdup(ca), *t;

	if (c->account != NULL) {
		t = xasprintf("%s; accounturi=%s", v, c->account);
		free(v);
		v = t;
	}
	if (c->methods != NULL) {
		t = xasprintf("%s; validationmethods=%s", v, c->methods);
		free(v);
		v = t;
	}
	return v;
}

/* Check every value of c before anything is written; NULL when all are fine. */
static char *posture_caa_check(const struct posture_caa *c)
{
	if (!hostname_valid(c->domain))
		return xasprintf("\"%s\" is not a domain name", c->domain);
	if (c->ncas == 0)
		return xstrdup("name at least one CA (--ca DOMAIN, e.g. --ca letsencrypt.org)");
	for (size_t i = 0; i < c->ncas; i++)
		if (!hostname_valid(c->cas[i]))
			return xasprintf("CA \"%s\" is not a domain name (CAs are named by the "
					 "domain they publish for CAA, e.g. letsencrypt.org)", c->cas[i]);
	if (c->account != NULL && (!posture_caa_text_ok(c->account) ||
				   strncmp(c->account, "https://", 8) != 0))
		return xasprintf("account \"%s\" is not an https:// URI without spaces, quotes "
				 "or semicolons (RFC 8657)", c->account);
	if (c->methods != NULL && (!posture_caa_text_ok(c->methods) ||
				   strspn(c->methods, "abcdefghijklmnopqrstuvwxyz0123456789-,") !=
				   strlen(c->methods)))
		return xasprintf("validation methods \"%s\" are not a comma-separated list like "
				 "dns-01,http-01 (RFC 8657)", c->methods);
	if (c->iodef != NULL && (!posture_caa_text_ok(c->iodef) ||
				 (strncmp(c->iodef, "mailto:", 7) != 0 &&
				  strncmp(c->iodef, "https://", 8) != 0)))
		return xasprintf("iodef \"%s\" is not a mailto: or https:// URL", c->iodef);
	return NULL;
}

char *posture_caa_records(const struct posture_caa *c, char **err)
{
	char *out = xstrdup(""), *t;

	if ((*err = posture_caa_check(c)) != NULL) {
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < c->ncas; i++) {
		char *v = posture_caa_issue_value(c, c->cas[i]);

		t = xasprintf("%s%s. IN CAA 0 issue \"%s\"\n", out, c->domain, v);
		free(out);
		out = t;
		if (c->wildcard) {
			t = xasprintf("%s%s. IN CAA 0 issuewild \"%s\"\n", out, c->domain, v);
			free(out);
			out = t;
		}
		free(v);
	}
	if (!c->wildcard) {	/* without issuewild, issue would allow wildcards too */
		t = xasprintf("%s%s. IN CAA 0 issuewild \";\"\n", out, c->domain);
		free(out);
		out = t;
	}
	if (c->iodef != NULL) {
		t = xasprintf("%s%s. IN CAA 0 iodef \"%s\"\n", out, c->domain, c->iodef);
		free(out);
		out = t;
	}
	return out;
}
