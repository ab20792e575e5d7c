/*
 * posture.h - the provider's certificate posture: what to publish so that others can check
 * the provider's certificates. TLSA records for DANE (RFC 6698, RFC 7671) for the current
 * key and the next one, CAA records that name the CAs allowed to issue (RFC 8659, RFC 8657),
 * and the fingerprints users compare. Pure functions over OpenSSL objects and strings; the
 * command line (cli_cert.c) formats them.
 */
#ifndef PW_POSTURE_H
#define PW_POSTURE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define POSTURE_FILE_MAX	(1024 * 1024)	/* a certificate file, chain included */
#define POSTURE_CHAIN_MAX	16		/* certificates read from one file */

/* The certificates of a PEM file (a chain: leaf first) or of one DER certificate. */
struct posture_chain {
	X509 *certs[POSTURE_CHAIN_MAX];
	size_t n;
};

/* Read the certificates of path; false with *err (caller frees) when there are none. */
bool posture_read_chain(const char *path, struct posture_chain *chain, char **err);
/* The same from data (at most POSTURE_FILE_MAX bytes); what names it in *err. */
bool posture_parse_chain(const unsigned char *data, size_t len, const char *what,
			 struct posture_chain *chain, char **err);
void posture_chain_free(struct posture_chain *chain);

/*
 * The public key in path: a certificate (the first of a chain), a certificate request or a
 * PUBLIC KEY. A private key is refused: a key that is not in use yet is best given as its
 * request or public half, and postwarden never reads secret keys it does not need.
 */
EVP_PKEY *posture_read_public_key(const char *path, char **err);
/* The same from data (at most POSTURE_FILE_MAX bytes); what names it in *err. */
EVP_PKEY *posture_parse_public_key(const unsigned char *data, size_t len, const char *what,
				   char **err);

/* SHA-256 of the DER SubjectPublicKeyInfo of key, as lower-case hex (65 bytes with NUL). */
void posture_spki_sha256_hex(EVP_PKEY *key, char out[65]);
/* SHA-256 of the DER SubjectPublicKeyInfo of key, in base64 (the form of key pins). */
void posture_spki_sha256_b64(EVP_PKEY *key, char out[45]);
/* SHA-256 of the DER certificate as upper-case hex pairs joined by colons (97 bytes). */
void posture_cert_sha256_colons(X509 *cert, char out[97]);

/*
 * Is cert a CA's certificate (basicConstraints CA:TRUE and no host name)? Its key gets
 * TLSA 2 1 1, not 3 1 1. A self-signed server certificate often says CA:TRUE as well; its
 * host name tells it apart.
 */
bool posture_is_ca(X509 *cert);

/* The first dNSName of cert's subjectAltName, else its subject CN; NULL if neither. */
char *posture_cert_host(X509 *cert);

/* What to put in CAA records for a domain. */
struct posture_caa {
	const char *domain;
	const char *const *cas;		/* issuer domain names, e.g. "letsencrypt.org" */
	size_t ncas;
	const char *account;		/* RFC 8657 accounturi, or NULL */
	const char *methods;		/* RFC 8657 validationmethods, e.g. "dns-01", or NULL */
	const char *iodef;		/* mailto: or https: URL, or NULL */
	bool wildcard;			/* allow the CAs to issue wildcard certificates too */
};

/*
 * The CAA records for c in zone-file syntax, one per line (caller frees); NULL with *err
 * when a value cannot be written safely (a CA that is not a domain name, a URI with a
 * space, quote or semicolon, an iodef that is neither mailto: nor https:).
 */
char *posture_caa_records(const struct posture_caa *c, char **err);

#endif
