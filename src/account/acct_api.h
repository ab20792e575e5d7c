/*
 * acct_api.h - the account side of serve in one piece: the listener (acct_http) with
 * every module's routes registered on it (sessions, sign-in, the user's data, keys,
 * migrations, compose help, certificates). serve starts and stops only this.
 */
#ifndef PW_ACCT_API_H
#define PW_ACCT_API_H

struct event_base;
struct db;
struct pw_config;
struct acct_api;

/* NULL with *err NULL when [account] listen is empty; NULL with *err when it cannot start. */
struct acct_api *acct_api_start(struct event_base *base, const struct pw_config *cfg,
				struct db *db, char **err);
void acct_api_stop(struct acct_api *api);
/* The listener, for the routes serve registers with more of its parts (acct_extra.h). */
struct acct_http;
struct acct_http *acct_api_http(const struct acct_api *api);

#endif
