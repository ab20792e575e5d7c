/*
 * tls.h - OpenSSL contexts with postwarden's TLS policy, and DANE (RFC 7672) set-up.
 *
 * The policy, for every connection postwarden makes or accepts: TLS 1.2 or newer; no RC4,
 * 3DES, NULL, EXPORT, anonymous or MD5 suites. DANE uses OpenSSL's own implementation
 * (SSL_dane_enable / SSL_dane_tlsa_add), never a hand-written matcher.
 */
#ifndef PW_TLS_H
#define PW_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "dns.h"

/*
 * Client context: policy above, DANE enabled, the system CA store loaded plus ca_file (PEM;
 * NULL or "" for none) for WebPKI checks of a peer's name. NULL + *err on failure.
 */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char **err);
/* Server context for STARTTLS on the listener, from PEM files. NULL + *err on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err);

enum tls_dane_mode {
	TLS_DANE_NONE,		/* no usable TLSA: opportunistic, certificate not checked */
	TLS_DANE_REQUIRED,	/* usable TLSA (usage 2 or 3): authentication required */
};

/*
 * Prepare a client SSL for one MX: SNI = mx_host; with usable TLSA records (usages 2 and 3;
 * others are ignored), DANE is enabled with base domain mx_host, DANE-EE name checks off,
 * and *mode says authentication is required. Returns NULL + *err on failure.
 */
SSL *tls_client_new(SSL_CTX *ctx, const char *mx_host, const struct dns_tlsa *tlsa, size_t ntlsa,
		    enum tls_dane_mode *mode, char **err);

/*
 * Add a name that a DANE-TA (usage 2) peer certificate may match besides mx_host, e.g. the
 * next-hop domain when its MX lookup was secure (RFC 7672 3.2.2). Call after tls_client_new.
 */
bool tls_dane_add_name(SSL *ssl, const char *name);

/* True when at least one TLSA record has usage 2 or 3 and a known selector and matching type. */
bool tls_tlsa_usable(const struct dns_tlsa *tlsa, size_t ntlsa);

enum tls_dane_result {
	TLS_DANE_RESULT_NONE,	/* DANE not used */
	TLS_DANE_RESULT_PASS,	/* peer authenticated by a TLSA record */
	TLS_DANE_RESULT_FAIL,	/* TLSA published but the peer did not match */
};

/* What a finished (or failed) handshake achieved, for logs, policy and tls-check. */
struct tls_info {
	char version[16];	/* "TLSv1.3", or "" when no handshake completed */
	char cipher[64];
	char peer_subject[256];	/* certificate subject, "" when none */
	char peer_issuer[256];
	char peer_not_after[32];	/* "2027-01-01T00:00:00Z" */
	enum tls_dane_result dane;
	char dane_match[64];	/* the TLSA record that matched, e.g. "3 1 1", or "" */
	/*
	 * Without DANE: did the certificate chain to a trusted CA and match the name given to
	 * tls_client_new (WebPKI, as MTA-STS requires)? The handshake goes on either way; the
	 * caller decides. webpki_error is OpenSSL's verify error ("" when valid).
	 */
	bool webpki_valid;
	char webpki_error[96];
};

/* Fill *info from an SSL after SSL_connect returned (successfully or not). */
void tls_info_get(SSL *ssl, bool handshake_ok, struct tls_info *info);

/* Classes of handshake failure, so the guarantee can explain them to a non-expert. */
enum tls_failure {
	TLS_FAIL_NONE,
	TLS_FAIL_PROTOCOL,	/* peer offers only SSLv3 / TLS 1.0 / TLS 1.1 */
	TLS_FAIL_CIPHER,	/* no acceptable cipher suite in common */
	TLS_FAIL_DANE,		/* certificate does not match the TLSA records */
	TLS_FAIL_HANDSHAKE,	/* anything else: malformed data, reset during handshake */
};

/*
 * Classify a failed handshake from the SSL (its verify result) and err, the first OpenSSL
 * error code of the failure (from ERR_get_error or bufferevent_get_openssl_error; 0 when
 * unknown), and write a technical one-line description (OpenSSL's reason string) to buf.
 */
enum tls_failure tls_failure_classify(SSL *ssl, unsigned long err, char *buf, size_t buflen);
const char *tls_failure_name(enum tls_failure f);	/* "protocol", "cipher", "dane", "handshake" */

/* Log (once) and clear the OpenSSL error queue; returns the first reason string in buf. */
void tls_errors_drain(char *buf, size_t buflen);

#endif
