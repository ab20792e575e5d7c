/*
 * acct_certs.h - GET /v1/certificates (no sign-in): the fingerprints of the provider's
 * current certificates, for users to compare with what their mail program shows.
 */
#ifndef PW_ACCT_CERTS_H
#define PW_ACCT_CERTS_H

#include <stddef.h>

#include <jansson.h>

struct acct_http;

/*
 * {"certificates":[{"name","used_for","sha256","spki_sha256","not_after"}]} for the first
 * certificate of each file (files[i] used for uses[i]: "smtp", "https"); a file that
 * cannot be read is left out (and logged), the same file named twice is listed once.
 */
json_t *acct_certs_json(const char *const *files, const char *const *uses, size_t n);

/* Register the route on the account listener: [relay] tls_cert and [account] tls_cert. */
void acct_certs_register(struct acct_http *h);

#endif
