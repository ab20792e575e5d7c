/*
 * ct_names.h - the parts of a certificate a CT monitor needs, read by a bounded DER reader
 * of its own: the names (subject CN, SAN dNSName and iPAddress), validity, serial, issuer,
 * SubjectPublicKeyInfo and the CT poison flag; and a finding identity shared by a
 * certificate and its precertificate.
 *
 * OpenSSL's d2i_X509 builds the whole certificate and is far too slow for every entry of
 * every log; this reader walks only the structure it needs and points into the caller's
 * buffer. Nesting is fixed by the structures it knows (no recursion over input), every
 * length is checked against its enclosing element, and at most CT_NAMES_MAX names are
 * taken: a certificate with more is refused rather than cut, so no name can hide beyond
 * the limit.
 */
#ifndef PW_CT_NAMES_H
#define PW_CT_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CT_NAMES_MAX    1000
#define CT_IDENTITY_LEN 32
#define CT_IP_TEXT_MAX  46	/* INET6_ADDRSTRLEN */

enum ct_name_kind { CT_NAME_CN, CT_NAME_DNS, CT_NAME_IP };

/* A name as it is in the certificate: bytes of the string, or 4 or 16 address bytes. */
struct ct_name {
	enum ct_name_kind kind;
	unsigned tag;		/* the DER string type of a CN (UTF8String, BMPString, ...) */
	const uint8_t *p;
	size_t len;
};

struct ct_cert {
	const uint8_t *tbs;		/* the whole TBSCertificate element */
	size_t tbs_len;
	const uint8_t *serial;		/* the INTEGER's content octets */
	size_t serial_len;
	const uint8_t *issuer;		/* the whole issuer Name element */
	size_t issuer_len;
	const uint8_t *spki;		/* the whole SubjectPublicKeyInfo element */
	size_t spki_len;
	time_t not_before, not_after;
	bool poison;			/* 1.3.6.1.4.1.11129.2.4.3 present */
	bool sct_list;			/* 1.3.6.1.4.1.11129.2.4.2 present */
	size_t n_names;
	struct ct_name names[CT_NAMES_MAX];
};

/* Read a Certificate or a bare TBSCertificate. 0, or -1 with *err set. */
int ct_cert_read(const uint8_t *der, size_t n, struct ct_cert *c, const char **err);

/* An iPAddress name as text ("192.0.2.1", "2001:db8::1"); buf of CT_IP_TEXT_MAX. */
int ct_name_ip_text(const struct ct_name *nm, char *buf, size_t size);

/*
 * SHA-256 over the TBSCertificate with the poison and SCT-list extensions removed (and the
 * extensions field left out when nothing else remains). For a precertificate pass the
 * TBSCertificate of the log entry, in which the log has already put the final issuer.
 */
int ct_cert_identity(const uint8_t *der, size_t n, uint8_t out[CT_IDENTITY_LEN],
		     const char **err);

#endif
