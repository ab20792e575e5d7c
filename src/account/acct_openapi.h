/*
 * acct_openapi.h - GET /v1/openapi.json on the account listener: the OpenAPI 3 description
 * of the account API and of the admin token API (docs/openapi.json, built into the binary
 * as acct_openapi_doc.c by scripts/embed.sh).
 */
#ifndef PW_ACCT_OPENAPI_H
#define PW_ACCT_OPENAPI_H

#include <stddef.h>

struct acct_http;

extern const unsigned char acct_openapi_doc[];
extern const size_t acct_openapi_doc_len;

/* Register the route (public: no sign-in). */
void acct_openapi_register(struct acct_http *h);

#endif
