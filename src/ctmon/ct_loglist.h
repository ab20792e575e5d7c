/*
 * ct_loglist.h - the Certificate Transparency log list (v3 JSON, the format of the
 * public CT log lists) read into logs whose keys are loaded and checked.
 *
 * Each operator has "logs" (RFC 6962 API: one url) and "tiled_logs" (Static CT API:
 * a submission_url and a monitoring_url). A log is kept only when its key is ECDSA P-256
 * or RSA of at least 2048 bits and hashes to its log_id; retired and rejected logs and
 * malformed entries are skipped, each with a reason the caller can show. The whole list
 * is an error only when it cannot be read at all (not JSON, no operators, too big).
 */
#ifndef PW_CT_LOGLIST_H
#define PW_CT_LOGLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define CT_LOGLIST_MAX_BYTES (16u * 1024 * 1024)
#define CT_LOGLIST_MAX_LOGS 10000
#define CT_LOG_ID_LEN 32

enum ct_log_state {
	CT_STATE_NONE,	/* the list gives no state */
	CT_STATE_USABLE,
	CT_STATE_QUALIFIED,
	CT_STATE_READONLY,
	CT_STATE_PENDING,
	CT_STATE_RETIRED,
	CT_STATE_REJECTED,
};

enum ct_log_api {
	CT_API_RFC6962,	/* from "logs" */
	CT_API_STATIC,	/* from "tiled_logs" */
};

enum ct_key_type {
	CT_KEY_ECDSA_P256,
	CT_KEY_RSA,
};

struct ct_log {
	char *description;
	char *operator_name;		/* NULL when the operator has no name */
	uint8_t log_id[CT_LOG_ID_LEN];
	EVP_PKEY *key;
	enum ct_key_type key_type;
	enum ct_log_api api;
	char *url;			/* RFC 6962 logs; NULL for tiled logs */
	char *submission_url;		/* tiled logs; NULL for RFC 6962 logs */
	char *monitoring_url;		/* tiled logs; NULL for RFC 6962 logs */
	int64_t mmd;			/* maximum merge delay, seconds */
	enum ct_log_state state;
	bool has_interval;		/* temporal_interval present */
	int64_t interval_start;		/* unix seconds, inclusive */
	int64_t interval_end;		/* unix seconds, exclusive */
};

/* A log that is not kept, and why. */
struct ct_log_skip {
	char *what;			/* the log's description, or its place in the list */
	char *reason;			/* one sentence */
	enum ct_log_state state;	/* RETIRED or REJECTED when that is the reason */
};

struct ct_loglist {
	struct ct_log *logs;
	size_t nlogs;
	struct ct_log_skip *skipped;
	size_t nskipped;
	size_t nretired;		/* among the skipped */
	size_t nrejected;		/* among the skipped */
};

struct ct_loglist_opts {
	bool allow_http;	/* accept http:// URLs: only for tests on loopback */
};

/*
 * Read a log list of len bytes. 0 and *out (free with ct_loglist_free) on success, even
 * when every log was skipped; -1 and *err (one sentence, caller frees) when the list as a
 * whole cannot be used.
 */
int ct_loglist_parse(const char *data, size_t len, const struct ct_loglist_opts *opts,
		     struct ct_loglist **out, char **err);
void ct_loglist_free(struct ct_loglist *list);

const char *ct_log_state_name(enum ct_log_state state);

/*
 * Strict standard base64 (RFC 4648 section 4): padding required, no white space, unused
 * bits zero. Decodes into a new buffer (caller frees; never NULL on success, even for
 * empty input) of at most max bytes; false on anything else.
 */
bool ct_b64_decode(const char *s, size_t len, size_t max, uint8_t **out, size_t *outlen);

#endif
