/*
 * acct_migrate.h - the signed-in user's migration jobs on the account API:
 *   GET    /v1/migrations        the user's jobs ({"jobs":[...]})
 *   POST   /v1/migrations        start one (the admin API's body, docs/migrate.md; the
 *                                destination user is the signed-in address)
 *   GET    /v1/migrations/ID     progress
 *   DELETE /v1/migrations/ID     cancel
 * The jobs are the admin API's (src/migrate/mig_api.c); another user's job is 404.
 */
#ifndef PW_ACCT_MIGRATE_H
#define PW_ACCT_MIGRATE_H

#include <stdint.h>

struct acct_http;
struct mig_api;

/* Register the routes over api (serve's jobs, borrowed). */
void acct_migrate_register(struct acct_http *h, struct mig_api *api);

/* "/123" -> 123; 0 when rest is not a job path. */
int64_t acct_migrate_id(const char *rest);

#endif
