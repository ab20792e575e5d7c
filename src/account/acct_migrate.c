/*
 * acct_migrate.c - the user's own migration jobs (see acct_migrate.h) over the admin API's
 * job code: mig_api_user_* does what POST, GET and DELETE of /v1/migrations do there, for
 * one destination user, and answers as JSON.
 *
 * The request body carries the old provider's password: once parsed, its bytes are wiped
 * where the listener keeps them.
 */
#include "acct_migrate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "account/acct_http.h"
#include "migrate/mig_api.h"

int64_t acct_migrate_id(const char *rest)
{
	char *end;
	long long v;

	if (rest[0] != '/' || rest[1] < '1' || rest[1] > '9' || strlen(rest) > 20)
		return 0;
	errno = 0;
	v = strtoll(rest + 1, &end, 10);
	return errno == 0 && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

static void migrate_post(struct mig_api *api, struct acct_req *req, const char *user)
{
	size_t len;
	const char *body = acct_req_body(req, &len);
	json_t *out = NULL;
	bool retry = false;
	int st = mig_api_user_start(api, user, body ? body : "", body ? len : 0, &out, &retry);

	if (body != NULL && len > 0)
		OPENSSL_cleanse((char *)body, len);	/* the listener's copy of the passwords */
	if (retry)
		acct_req_add_header(req, "Retry-After", "30");
	acct_reply_json(req, st, out);
}

static void migrate_handle(struct acct_req *req, void *arg)
{
	struct mig_api *api = arg;
	const char *rest = acct_req_rest(req), *user = acct_req_who(req)->address;
	enum acct_method m = acct_req_method(req);
	json_t *out = NULL;
	int64_t id;
	int st;

	if (*rest == '\0') {
		if (m == ACCT_POST) {
			migrate_post(api, req, user);
			return;
		}
		if (m != ACCT_GET && m != ACCT_HEAD) {
			acct_reply_error(req, 405, "list jobs with GET, start one with POST");
			return;
		}
		st = mig_api_user_list(api, user, &out);
	} else if ((id = acct_migrate_id(rest)) == 0) {
		acct_reply_error(req, 404, "no such job");
		return;
	} else if (m == ACCT_GET || m == ACCT_HEAD) {
		st = mig_api_user_get(api, user, id, &out);
	} else if (m == ACCT_DELETE) {
		st = mig_api_user_cancel(api, user, id, &out);
	} else {
		acct_reply_error(req, 405, "read a job with GET, cancel it with DELETE");
		return;
	}
	acct_reply_json(req, st, out);
}

void acct_migrate_register(struct acct_http *h, struct mig_api *api)
{
	acct_route(h, ACCT_GET | ACCT_POST | ACCT_DELETE, "/v1/migrations", 0, migrate_handle, api);
}
