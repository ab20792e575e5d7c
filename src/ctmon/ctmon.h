/*
 * ctmon.h - the CT monitor inside serve: every [ctmon] interval, one verified round over
 * each log of the log list (RFC 6962 or static CT API) whose lease this node holds (a node that dies leaves
 * its logs to another within the lease's time); the health of the logs and of a log list
 * fetched from a URL; and the delivery of each unexpected finding and each alert once on
 * every configured channel (mail to [ctmon] alert_to, webhook, hook), whichever node sends
 * it, retried with backoff per channel (docs/ctmon.md, "Alerts").
 */
#ifndef PW_CTMON_H
#define PW_CTMON_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "db.h"
#include "node.h"

struct event_base;
struct ctmon;

/*
 * Queue a mail to the comma-separated addresses in to; data is the whole message (header
 * and body, CRLF line ends). Returns false when it could not be queued (tried again later).
 */
typedef bool (*ctmon_mail_fn)(void *arg, const char *to, const char *data, size_t len);

/*
 * Start the monitor; NULL (and nothing started) when [ctmon] log_list is empty. An
 * unreadable log list is logged and the monitor stays idle.
 */
struct ctmon *ctmon_start(struct event_base *base, const struct pw_config *cfg, struct db *db,
			  struct node *node, ctmon_mail_fn mail, void *mail_arg);
/*
 * The monitor alone (`ct watch --foreground`): no mail is sent (its rows wait in the
 * database for serve), and each finding and alert that appears in the database from now
 * on is printed to json_out as one line of JSON, flushed.
 */
struct ctmon *ctmon_start_watch(struct event_base *base, const struct pw_config *cfg,
				struct db *db, struct node *node, FILE *json_out);
void ctmon_stop(struct ctmon *m);

struct ct_loglist;
struct ct_watch;
/*
 * The log list of [ctmon] log_list (a file, bounded; for a URL the last good copy fetched
 * into state_dir); NULL with *err (caller frees).
 */
struct ct_loglist *ctmon_read_log_list(const struct pw_config *cfg, char **err);
/* The watch list of [ctmon] watch (A-labels, checked when the configuration was loaded). */
struct ct_watch *ctmon_watch_from_config(const struct pw_config *cfg);

#endif
