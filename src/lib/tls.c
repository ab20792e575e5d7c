/*
 * tls.c - OpenSSL contexts with postwarden's TLS policy, DANE set-up and handshake results;
 * see tls.h.
 *
 * The policy lives in two places only: the protocol floor (TLS 1.2) and the TLS 1.2 cipher
 * string below. TLS 1.3 suites are OpenSSL's defaults, all of which are acceptable.
 * DANE matching is OpenSSL's; this file only feeds it the usable TLSA records (RFC 7672:
 * usages 2 and 3) and turns its verdict into words.
 */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "xmalloc.h"

/* Forward secrecy and AEAD first; nothing weak even as a last resort. */
#define TLS_CIPHERS \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:DHE+AES:AESGCM:AES:" \
	"!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!MD5:!PSK:!SRP:!DSS:!CAMELLIA:!ARIA:!SEED:!IDEA"

/* Describe the first error on OpenSSL's queue, prefixed with what failed; clears the queue. */
static char *tls_error(const char *what)
{
	char reason[256];

	tls_errors_drain(reason, sizeof(reason));
	return xasprintf("%s: %s", what, reason);
}

/* The settings both directions share: protocol floor, cipher list, no compression. */
static bool tls_ctx_policy(SSL_CTX *ctx, char **err)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		*err = tls_error("setting the minimum protocol version");
		return false;
	}
	if (SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS) != 1) {
		*err = tls_error("setting the cipher list");
		return false;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return true;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	*err = NULL;
	if (ctx == NULL) {
		*err = tls_error("creating the client TLS context");
		return NULL;
	}
	if (!tls_ctx_policy(ctx, err))
		goto fail;
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		*err = tls_error("enabling DANE");
		goto fail;
	}
	/*
	 * CA store: for WebPKI checks (MTA-STS, the downgrade memory, tls-check); the handshake
	 * never fails on it (SSL_VERIFY_NONE), the caller reads the result from tls_info.
	 */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ERR_clear_error();
	if (ca_file != NULL && *ca_file != '\0' &&
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		*err = tls_error("loading the CA file");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	*err = NULL;
	if (ctx == NULL) {
		*err = tls_error("creating the server TLS context");
		return NULL;
	}
	if (!tls_ctx_policy(ctx, err))
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		char *what = xasprintf("loading certificate %s", cert_file);

		*err = tls_error(what);
		free(what);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		char *what = xasprintf("loading private key %s", key_file);

		*err = tls_error(what);
		free(what);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err = tls_error("the private key does not match the certificate");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Usage 2 or 3, selector 0 or 1, matching type 0, 1 (32 bytes) or 2 (64 bytes). */
static bool tls_tlsa_record_usable(const struct dns_tlsa *t)
{
	if (t->usage != 2 && t->usage != 3)
		return false;
	if (t->selector > 1 || t->data == NULL || t->len == 0)
		return false;
	switch (t->mtype) {
	case 0:
		return true;
	case 1:
		return t->len == 32;
	case 2:
		return t->len == 64;
	}
	return false;
}

bool tls_tlsa_usable(const struct dns_tlsa *tlsa, size_t ntlsa)
{
	for (size_t i = 0; i < ntlsa; i++)
		if (tls_tlsa_record_usable(&tlsa[i]))
			return true;
	return false;
}

/* Hand the usable records to OpenSSL; returns how many it accepted, -1 on internal error. */
static int tls_dane_add(SSL *ssl, const struct dns_tlsa *tlsa, size_t ntlsa)
{
	int added = 0;

	for (size_t i = 0; i < ntlsa; i++) {
		const struct dns_tlsa *t = &tlsa[i];
		int rc;

		if (!tls_tlsa_record_usable(t))
			continue;
		rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			/* e.g. a "2 0 0" whose certificate does not parse: unusable, skip */
			char reason[256];

			tls_errors_drain(reason, sizeof(reason));
			log_debug("event=tlsa_unusable usage=%u selector=%u mtype=%u reason=\"%s\"",
				  t->usage, t->selector, t->mtype, reason);
			continue;
		}
		added++;
	}
	return added;
}

/* Name the peer's certificate must match for tls_info's webpki_valid (RFC 6125 rules). */
static bool tls_webpki_name(SSL *ssl, const char *host, char **err)
{
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, host) != 1) {
		*err = tls_error("setting the name to check");
		return false;
	}
	return true;
}

SSL *tls_client_new(SSL_CTX *ctx, const char *mx_host, const struct dns_tlsa *tlsa, size_t ntlsa,
		    enum tls_dane_mode *mode, char **err)
{
	SSL *ssl = SSL_new(ctx);
	int added;

	*err = NULL;
	*mode = TLS_DANE_NONE;
	if (ssl == NULL) {
		*err = tls_error("creating a TLS connection");
		return NULL;
	}
	if (SSL_set_tlsext_host_name(ssl, mx_host) != 1) {
		*err = tls_error("setting SNI");
		goto fail;
	}
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	if (!tls_tlsa_usable(tlsa, ntlsa))
		return tls_webpki_name(ssl, mx_host, err) ? ssl : (SSL_free(ssl), NULL);
	if (SSL_dane_enable(ssl, mx_host) <= 0) {
		*err = tls_error("enabling DANE");
		goto fail;
	}
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	/* DANE-TA name checks as RFC 7672 3.2.3: a wildcard only as a whole left-most label */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	added = tls_dane_add(ssl, tlsa, ntlsa);
	if (added < 0) {
		*err = tls_error("adding TLSA records");
		goto fail;
	}
	if (added == 0)
		return ssl;	/* every record was unusable: opportunistic, RFC 7672 2.2 */
	/* tls_info_get and tls_failure_classify rely on PEER meaning "DANE required". */
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	*mode = TLS_DANE_REQUIRED;
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

bool tls_dane_add_name(SSL *ssl, const char *name)
{
	return SSL_add1_host(ssl, name) == 1;
}

static bool tls_dane_required(SSL *ssl)
{
	return (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0 && !SSL_is_server(ssl);
}

/* The peer's certificate; after a failed verification only the chain is kept. */
static X509 *tls_peer_cert(SSL *ssl)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	STACK_OF(X509) *chain;

	if (cert != NULL)
		return cert;
	chain = SSL_get_peer_cert_chain(ssl);
	if (chain == NULL || sk_X509_num(chain) == 0)
		return NULL;
	cert = sk_X509_value(chain, 0);
	X509_up_ref(cert);
	return cert;
}

static void tls_name_text(const X509_NAME *name, char *buf, size_t buflen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	long n;
	char *p;

	buf[0] = '\0';
	if (bio == NULL)
		return;
	/* RFC 2253 order, UTF-8 kept readable, control characters escaped. */
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(bio, &p);
		if (n > 0)
			snprintf(buf, buflen, "%.*s", (int)n, p);
	}
	BIO_free(bio);
}

static void tls_time_text(const ASN1_TIME *t, char *buf, size_t buflen)
{
	struct tm tm;

	buf[0] = '\0';
	if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
		strftime(buf, buflen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void tls_info_dane(SSL *ssl, bool handshake_ok, struct tls_info *info)
{
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;

	if (!tls_dane_required(ssl))
		return;
	if (handshake_ok && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0) {
		info->dane = TLS_DANE_RESULT_PASS;
		if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen) >= 0)
			snprintf(info->dane_match, sizeof(info->dane_match), "%u %u %u",
				 usage, selector, mtype);
	} else if (handshake_ok || SSL_get_verify_result(ssl) != X509_V_OK) {
		info->dane = TLS_DANE_RESULT_FAIL;
	}
}

/* The WebPKI verdict of a handshake made without DANE. */
static void tls_info_webpki(SSL *ssl, bool handshake_ok, struct tls_info *info)
{
	long v;

	if (!handshake_ok || (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER))
		return;
	v = SSL_get_verify_result(ssl);
	info->webpki_valid = v == X509_V_OK && info->peer_subject[0] != '\0';
	if (!info->webpki_valid)
		snprintf(info->webpki_error, sizeof(info->webpki_error), "%s",
			 v == X509_V_OK ? "no certificate" : X509_verify_cert_error_string(v));
}

void tls_info_get(SSL *ssl, bool handshake_ok, struct tls_info *info)
{
	X509 *cert;

	memset(info, 0, sizeof(*info));
	info->dane = TLS_DANE_RESULT_NONE;
	if (handshake_ok) {
		snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(ssl));
		snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(ssl));
	}
	cert = tls_peer_cert(ssl);
	if (cert != NULL) {
		tls_name_text(X509_get_subject_name(cert), info->peer_subject,
			      sizeof(info->peer_subject));
		tls_name_text(X509_get_issuer_name(cert), info->peer_issuer,
			      sizeof(info->peer_issuer));
		tls_time_text(X509_get0_notAfter(cert), info->peer_not_after,
			      sizeof(info->peer_not_after));
		X509_free(cert);
	}
	tls_info_dane(ssl, handshake_ok, info);
	tls_info_webpki(ssl, handshake_ok, info);
}

/*
 * A handshake_failure alert in answer to our ClientHello means the server found nothing it
 * accepts in it; with our protocol floor that is nearly always the cipher list.
 */
static bool tls_rejected_client_hello(SSL *ssl)
{
	return SSL_get_state(ssl) == TLS_ST_CW_CLNT_HELLO;
}

static enum tls_failure tls_classify_reason(SSL *ssl, int reason)
{
	switch (reason) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
		return TLS_FAIL_PROTOCOL;
	case SSL_R_WRONG_VERSION_NUMBER:
		/* An SSLv3/TLS record header with an older version; garbage is a handshake error. */
		return SSL_version(ssl) >= SSL3_VERSION && SSL_version(ssl) < TLS1_2_VERSION ?
		       TLS_FAIL_PROTOCOL : TLS_FAIL_HANDSHAKE;
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_CIPHERS_AVAILABLE:
	case SSL_R_WRONG_CIPHER_RETURNED:
	case SSL_R_TLSV1_ALERT_INSUFFICIENT_SECURITY:
		return TLS_FAIL_CIPHER;
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		return tls_rejected_client_hello(ssl) ? TLS_FAIL_CIPHER : TLS_FAIL_HANDSHAKE;
	}
	return TLS_FAIL_HANDSHAKE;
}

enum tls_failure tls_failure_classify(SSL *ssl, unsigned long err, char *buf, size_t buflen)
{
	long vr = SSL_get_verify_result(ssl);
	const char *reason = err ? ERR_reason_error_string(err) : NULL;

	if (buflen > 0)
		buf[0] = '\0';
	if (vr == X509_V_ERR_DANE_NO_MATCH || (tls_dane_required(ssl) && vr != X509_V_OK)) {
		snprintf(buf, buflen, "%s", X509_verify_cert_error_string(vr));
		return TLS_FAIL_DANE;
	}
	snprintf(buf, buflen, "%s", reason ? reason : "connection failed during the TLS handshake");
	if (err == 0 || ERR_GET_LIB(err) != ERR_LIB_SSL)
		return TLS_FAIL_HANDSHAKE;
	return tls_classify_reason(ssl, ERR_GET_REASON(err));
}

const char *tls_failure_name(enum tls_failure f)
{
	switch (f) {
	case TLS_FAIL_NONE:
		return "none";
	case TLS_FAIL_PROTOCOL:
		return "protocol";
	case TLS_FAIL_CIPHER:
		return "cipher";
	case TLS_FAIL_DANE:
		return "dane";
	case TLS_FAIL_HANDSHAKE:
		break;
	}
	return "handshake";
}

void tls_errors_drain(char *buf, size_t buflen)
{
	char line[512] = "";
	size_t used = 0;
	unsigned long e;
	bool first = true;

	if (buflen > 0)
		buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		if (first) {
			const char *r = ERR_reason_error_string(e);

			snprintf(buf, buflen, "%s", r ? r : one);
			first = false;
		}
		if (used < sizeof(line) - 1) {
			int n = snprintf(line + used, sizeof(line) - used, "%s%s",
					 used ? "; " : "", one);

			if (n > 0)
				used += (size_t)n;
		}
	}
	if (!first)
		log_debug("event=tls_errors errors=\"%s\"", line);
	else if (buflen > 0)
		snprintf(buf, buflen, "%s", "unknown TLS error");
}
