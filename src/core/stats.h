/*
 * stats.h - postwarden's metrics: one registry per process and the families in it, updated
 * by one-line calls where the relay, the key directory and key search log the same event.
 *
 * The registry is made on first use (any thread), so the calls work in every command;
 * only serve shows it, at GET /metrics on [metrics] listen (stats_http.c).
 */
#ifndef PW_STATS_H
#define PW_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct metrics *stats_registry(void);

/* A message the relay took from a client (the 250 after DATA). */
void stats_accepted(void);
/*
 * One recipient's delivery attempt ended: outcome "delivered", "deferred", "held" or
 * "bounced", reason a policy_reason_name (bounded); tls_version "" or OpenSSL's name, dane
 * "pass", "fail" or "none" (counted for delivered recipients).
 */
void stats_delivery(const char *outcome, const char *reason, const char *tls_version,
		    const char *dane);
/* Recipients waiting in state (queued, deferred, held) and the age of the oldest message. */
void stats_queue(const char *state, size_t n, double oldest_age);
/* The relay deferred mail to a domain whose TLS was downgraded (counted once per downgrade). */
void stats_tls_downgrade(void);
/* An MTA-STS policy fetch ended: ok (a valid policy) or not. */
void stats_mta_sts_fetch(bool ok);
/* An MX host failed a destination's MTA-STS policy; mode "enforce" or "testing". */
void stats_mta_sts_failure(const char *mode);
/* A TLS report went to one address: result "mailed", "posted" or "failed". */
void stats_tlsrpt_report(const char *result);
/* The key directory: names still waiting for DNS after a pass; one name's update failed. */
void stats_keydir_pending(size_t n);
void stats_keydir_error(void);
/* One key search source answered: status a ks_status_name, after elapsed_ms. */
void stats_keysearch_source(const char *source, const char *status, long long elapsed_ms);
/* The running totals of one of serve's database connections (set at each scrape). */
void stats_db_connection(const char *connection, uint64_t statements, uint64_t usec);

#endif
