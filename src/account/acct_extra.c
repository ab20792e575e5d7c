/*
 * acct_extra.c - registers the keys, migrations, compose help and certificates routes
 * (acct_extra.h), and the OpenAPI description, and frees what they keep.
 */
#include "acct_extra.h"

#include <stdlib.h>

#include "account/acct_certs.h"
#include "account/acct_compose.h"
#include "account/acct_http.h"
#include "account/acct_keys.h"
#include "account/acct_migrate.h"
#include "account/acct_openapi.h"
#include "relay/relay.h"
#include "xmalloc.h"

struct acct_extra {
	struct acct_keys *keys;
	struct acct_compose *compose;
};

struct acct_extra *acct_extra_register(struct acct_http *h, struct relay *relay,
				       struct keysearch *ks, struct mig_api *mig)
{
	struct acct_extra *x = xcalloc(1, sizeof(*x));

	x->keys = acct_keys_register(h, relay->dns);
	x->compose = acct_compose_register(h, relay, ks);
	if (mig != NULL)
		acct_migrate_register(h, mig);
	acct_certs_register(h);
	acct_openapi_register(h);
	return x;
}

void acct_extra_free(struct acct_extra *x)
{
	if (x == NULL)
		return;
	acct_keys_free(x->keys);
	acct_compose_free(x->compose);
	free(x);
}
