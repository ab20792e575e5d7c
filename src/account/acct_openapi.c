/*
 * acct_openapi.c - serves the built-in docs/openapi.json (see acct_openapi.h). It is parsed
 * once, at registration: a document that does not parse is a broken build (fatal).
 */
#include "acct_openapi.h"

#include <jansson.h>

#include "account/acct_http.h"
#include "log.h"

static void openapi_handle(struct acct_req *req, void *arg)
{
	acct_reply_json(req, 200, json_incref(arg));
}

void acct_openapi_register(struct acct_http *h)
{
	static json_t *doc;
	json_error_t je;

	if (doc == NULL &&
	    (doc = json_loadb((const char *)acct_openapi_doc, acct_openapi_doc_len, 0, &je)) == NULL)
		fatalx("the built-in openapi.json does not parse: %s (line %d)", je.text, je.line);
	acct_route(h, ACCT_GET, "/v1/openapi.json", ACCT_PUBLIC | ACCT_EXACT, openapi_handle, doc);
}
