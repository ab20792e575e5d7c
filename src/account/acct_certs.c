/*
 * acct_certs.c - GET /v1/certificates: the provider's current certificates as users
 * compare them (certificate SHA-256 in the colon form mail programs show, public key
 * SHA-256 as in TLSA 3 1 1 records), from the same posture code as "postwarden cert
 * fingerprints". Public: people check a certificate before they sign in.
 *
 * The files are read at each request: they are small, local, and replaced in place when a
 * certificate is renewed, so the answer is current without a reload.
 */
#include "acct_certs.h"

#include <string.h>
#include <time.h>

#include <openssl/asn1.h>

#include "account/acct_http.h"
#include "config.h"
#include "ctmon/posture.h"
#include "log.h"
#include "xmalloc.h"

/* notAfter as RFC 3339 UTC ("2027-03-01T12:00:00Z"). */
static void certs_not_after(X509 *x, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		snprintf(buf, len, "unknown");
}

static json_t *certs_one(X509 *x, const char *use)
{
	char fp[97], hex[65] = "", date[32], *host = posture_cert_host(x);
	EVP_PKEY *key = X509_get0_pubkey(x);
	json_t *o;

	posture_cert_sha256_colons(x, fp);
	if (key != NULL)
		posture_spki_sha256_hex(key, hex);
	certs_not_after(x, date, sizeof(date));
	o = json_pack("{s:s?, s:s, s:s, s:s, s:s}", "name", host, "used_for", use, "sha256", fp,
		      "spki_sha256", hex, "not_after", date);
	free(host);
	if (o == NULL)
		fatalx("cannot encode a certificate's fingerprints");
	return o;
}

json_t *acct_certs_json(const char *const *files, const char *const *uses, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		struct posture_chain chain;
		char *err = NULL;
		bool seen = false;

		if (files[i] == NULL || *files[i] == '\0')
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = files[j] && strcmp(files[j], files[i]) == 0;
		if (seen)
			continue;
		if (!posture_read_chain(files[i], &chain, &err)) {
			log_warn("event=account_certificate path=%s error=\"%s\"", files[i], err);
			free(err);
			continue;
		}
		json_array_append_new(a, certs_one(chain.certs[0], uses[i]));
		posture_chain_free(&chain);
	}
	return json_pack("{s:o}", "certificates", a);
}

static void certs_handle(struct acct_req *req, void *arg)
{
	const struct pw_config *cfg = acct_http_cfg(acct_req_server(req));
	const char *files[] = { cfg->relay.tls_cert, cfg->account.tls_cert };
	const char *uses[] = { "smtp", "https" };

	acct_reply_json(req, 200, acct_certs_json(files, uses, 2));
}

void acct_certs_register(struct acct_http *h)
{
	acct_route(h, ACCT_GET, "/v1/certificates", ACCT_PUBLIC | ACCT_EXACT, certs_handle, NULL);
}
