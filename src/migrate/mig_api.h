/*
 * mig_api.h - migration jobs under serve, through the [api] listener:
 *   POST   /v1/migrations          start a job (or restart one: "job": ID); 202 with its id
 *   GET    /v1/migrations/ID       progress, per-folder counts and errors, the summary
 *   DELETE /v1/migrations/ID       cancel: the job stops cleanly, a later POST resumes it
 *   GET    /v1/migrations?user=U   the jobs of destination user U
 *
 * Credentials travel only in the request body (bounded, MIG_API_MAX_BODY), are moved into
 * mig_cred's wiped buffers and wiped everywhere else they passed (the request buffer,
 * jansson's strings); they never reach a log, the database or an answer. Jobs run in a
 * thread of their own with the mail engine's workers (address book jobs: mig_contacts_job)
 * and their own database connection;
 * progress is read from the job record, so GET answers on every node sharing the database.
 */
#ifndef PW_MIG_API_H
#define PW_MIG_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "mig_cred.h"

struct evhttp_request;
struct db;
struct pw_config;

/* Largest request body: two credentials of MIG_CRED_MAX, escaped, and the rest. */
#define MIG_API_MAX_BODY (4 * MIG_CRED_MAX + 4096)
/* Longest user name or source accepted in a body. */
#define MIG_API_MAX_NAME 320
/* Longest source_url (a contacts job's CardDAV or Graph endpoint). */
#define MIG_API_MAX_URL 2048

/* A parsed POST body. */
struct mig_api_body {
	char *kind;		/* "mail" or "contacts" */
	/* mail: a preset or imaps://HOST[:PORT] / imap://HOST[:PORT]; contacts: a preset
	 * (carddav, gmail, icloud, yahoo, aol, gmx, webde, outlook) or an http(s) URL */
	char *source;
	char *source_host;	/* mail: HOST[:PORT] overriding a preset's server, or NULL */
	char *source_url;	/* contacts: the URL overriding a preset's endpoint, or NULL */
	char *source_user;
	char *destination_user;
	char *oauth;		/* "xoauth2", "oauthbearer" or NULL */
	struct mig_cred *source_cred;	/* password, or token when token is true */
	struct mig_cred *destination_cred;
	bool token;
	int64_t job;		/* > 0: restart this job */
};

/*
 * Parse a POST body (JSON object, at most MIG_API_MAX_BODY bytes). 0, or -1 with *err
 * (static text, never a value from the body). The secrets are wiped from jansson's copies.
 */
int mig_api_body_parse(const char *data, size_t len, struct mig_api_body *b, const char **err);
void mig_api_body_free(struct mig_api_body *b);

struct mig_api;

/* The jobs of this node; db is serve's connection (the loop's), borrowed. */
struct mig_api *mig_api_new(const struct pw_config *cfg, struct db *db);
/*
 * Answer a request whose path starts with /v1/migrations (the caller has checked the
 * bearer token). Returns the HTTP status sent.
 */
int mig_api_handle(struct mig_api *api, struct evhttp_request *req, const char *path,
		   const char *query);
/*
 * The same jobs for the account API, for one destination user (the signed-in user): each
 * returns the HTTP status and sets *out to the JSON answer ({"error": ...} when refused).
 * start: the body as for POST, its destination_user absent or equal to user (400 when it
 * names another); get and cancel: 404 for a job of another user, as for no job at all.
 * *retry_after: a 429 that should carry Retry-After.
 */
int mig_api_user_start(struct mig_api *api, const char *user, const char *body, size_t len,
		       json_t **out, bool *retry_after);
int mig_api_user_get(struct mig_api *api, const char *user, int64_t id, json_t **out);
int mig_api_user_list(struct mig_api *api, const char *user, json_t **out);
int mig_api_user_cancel(struct mig_api *api, const char *user, int64_t id, json_t **out);
/* Stop the running jobs (they record themselves as interrupted) and wait for them. */
void mig_api_free(struct mig_api *api);

#endif
