/*
 * acct_api.c - starts the account listener and registers each module's routes on it.
 * A module adds itself here with one registration call (and its teardown in stop).
 */
#include "acct_api.h"

#include <stdlib.h>

#include "acct_http.h"
#include "acct_login.h"
#include "acct_session.h"
#include "acct_user.h"
#include "xmalloc.h"

struct acct_api {
	struct acct_http *http;
	struct acct_login *login;
};

struct acct_api *acct_api_start(struct event_base *base, const struct pw_config *cfg,
				struct db *db, char **err)
{
	struct acct_http *h = acct_http_start(base, cfg, db, err);
	struct acct_api *api;

	if (h == NULL)
		return NULL;
	api = xcalloc(1, sizeof(*api));
	api->http = h;
	acct_session_register(h);
	if ((api->login = acct_login_register(h, err)) == NULL) {
		acct_api_stop(api);
		return NULL;
	}
	acct_user_register(h);
	return api;
}

void acct_api_stop(struct acct_api *api)
{
	if (api == NULL)
		return;
	/* the listener first: its pending sign-ins are aborted before their jobs are freed */
	acct_http_stop(api->http);
	acct_login_free(api->login);
	free(api);
}

struct acct_http *acct_api_http(const struct acct_api *api)
{
	return api->http;
}
