/*
 * ct_notify.h - the CT monitor's alerts on channels other than mail: the one JSON document
 * that describes a finding or an alert (POSTed to [ctmon] webhook, given to [ctmon] hook on
 * standard input, printed by `ct watch --foreground`), the environment variables of a hook
 * (certspotter's names where the meaning is the same, so its hook scripts adapt easily),
 * the webhook's POST, and hook commands run beside the event loop.
 *
 * The document (docs/ctmon.md "Alerts" has the reference):
 *   finding: {"kind":"finding", "id", "names":[...], "issuer", "serial", "spki_sha256",
 *             "tbs_sha256", "not_before", "not_after" (seconds), "not_before_rfc3339",
 *             "not_after_rfc3339", "verdict", "reason", "first_seen", "acked",
 *             "seen_in":[{"log_id", "log_url", "index", "precert", "seen"}]}
 *   alert:   {"kind":"alert", "id", "alert" (its kind), "class" ("log" or "health"),
 *             "log_id" (or null), "log_url", "message", "evidence", "created"}
 */
#ifndef PW_CT_NOTIFY_H
#define PW_CT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "http.h"

struct event_base;

/* Longest document sent (an alert's evidence is cut to fit). */
#define CT_NOTIFY_DOC_MAX	(256 * 1024)
/* The webhook's answer is read up to this many bytes (only its status counts). */
#define CT_WEBHOOK_RESPONSE_MAX	(16 * 1024)
#define CT_WEBHOOK_TIMEOUT_MS	10000
/* A hook still running after this long is killed and tried again later. */
#define CT_HOOK_TIMEOUT_SECONDS	30

/* The health alerts' kinds (the rest are a log's misbehaviour). */
#define CT_HEALTH_LOG_STALE	"log_stale"
#define CT_HEALTH_LIST_STALE	"log_list_stale"
#define CT_HEALTH_BACKLOG	"backlog_growing"
bool ct_notify_is_health(const char *kind);

/* The document of item ("finding" or "alert") id; NULL when it is gone (or on an error). */
json_t *ct_notify_document(struct db *db, const char *item, int64_t id);
/* The document as one line of compact JSON (caller frees). */
char *ct_notify_text(const json_t *doc);
/* A one-line summary, as certspotter's SUMMARY (caller frees). */
char *ct_notify_summary(const json_t *doc);

/*
 * The variables a hook gets for doc: a NULL-terminated array of "NAME=value" strings
 * (free with ct_notify_env_free). Findings: EVENT=discovered_cert, SUMMARY, LOG_URI,
 * ENTRY_INDEX, TBS_SHA256, PUBKEY_SHA256, ISSUER_DN, SERIAL, NOT_BEFORE[_UNIXTIME|_RFC3339],
 * NOT_AFTER[...], and postwarden's own DNS_NAMES, VERDICT, REASON, FINDING_ID. Alerts:
 * EVENT=error, SUMMARY, LOG_URI, and ALERT_KIND, ALERT_CLASS, ALERT_ID, LOG_ID, MESSAGE.
 * Both: POSTWARDEN_KIND (finding or alert).
 */
char **ct_notify_env(const json_t *doc);
void ct_notify_env_free(char **env);

/* How a delivery ended: ok, or why not (error, one sentence). */
typedef void (*ct_notify_cb)(bool ok, const char *error, void *arg);

/* One webhook POST: the caller's storage, alive until cb ran or the request is cancelled. */
struct ct_webhook {
	ct_notify_cb cb;
	void *arg;
};

/*
 * POST text (the document) to url as application/json; a 2xx answer is success (w->cb).
 * Returns the request's handle (for http_cancel, after which w->cb is not called), or -1
 * when it could not start (w->cb not called).
 */
int ct_notify_webhook(struct http_client *http, const char *url, const char *text,
		      struct ct_webhook *w);

/* Hook commands in flight on one loop (their exits are reaped through a SIGCHLD event). */
struct ct_hooks;
struct ct_hooks *ct_hooks_new(struct event_base *base);
/* Kill and forget the commands still running; their callbacks are not called. */
void ct_hooks_free(struct ct_hooks *h);
/*
 * Run command with /bin/sh -c, env added to the environment, text on its standard input
 * and its standard output discarded; cb when it exits (ok: status 0) or was killed after
 * CT_HOOK_TIMEOUT_SECONDS. false when it could not start (cb not called).
 */
bool ct_hooks_run(struct ct_hooks *h, const char *command, char **env, const char *text,
		  ct_notify_cb cb, void *arg);
/* How many commands are running. */
size_t ct_hooks_running(const struct ct_hooks *h);

/*
 * The backlog rule, per log (a pure function, tested alone): after each round, the entries
 * the log has that are not yet checked (tree size minus next index). Growing in
 * CT_BACKLOG_ROUNDS rounds in a row to more than CT_BACKLOG_MIN entries opens an alert;
 * falling to CT_BACKLOG_MIN or below closes it.
 */
#define CT_BACKLOG_ROUNDS	5
#define CT_BACKLOG_MIN		1000
struct ct_backlog {
	int64_t last;		/* -1 before the first round */
	unsigned grew;		/* rounds in a row it grew */
	bool open;		/* an alert is open */
};
enum ct_backlog_action { CT_BACKLOG_NONE, CT_BACKLOG_OPEN, CT_BACKLOG_CLOSE };
enum ct_backlog_action ct_backlog_judge(struct ct_backlog *b, int64_t backlog);

#endif
