/*
 * stats.c - postwarden's metric families; see stats.h. Names follow Prometheus' rules:
 * counters end in _total, times are in seconds.
 */
#include "stats.h"

#include <pthread.h>
#include <string.h>

#include "log.h"

static struct metrics *stats_m;
static pthread_once_t stats_once = PTHREAD_ONCE_INIT;

static struct {
	struct metrics_family *accepted, *delivered, *deferred, *held, *bounced;
	struct metrics_family *tls, *dane;
	struct metrics_family *queue, *queue_age;
	struct metrics_family *kd_pending, *kd_errors;
	struct metrics_family *ks_requests, *ks_hits, *ks_errors, *ks_seconds;
	struct metrics_family *db_statements, *db_seconds;
	struct metrics_family *tls_downgrades;
	struct metrics_family *sts_fetches, *sts_failures, *tlsrpt_reports;
} stats_f;

/* Key search sources take from a millisecond (directory) up to their timeout (seconds). */
static const double stats_ks_buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
					   5, 10 };

static struct metrics_family *stats_counter(const char *name, const char *help,
					    const char *label)
{
	return metrics_register(stats_m, METRICS_COUNTER, name, help, label, NULL, 0);
}

static void stats_init(void)
{
	stats_m = metrics_new();
	stats_f.accepted = stats_counter("postwarden_messages_accepted_total",
		"Messages the relay accepted from its clients (250 after DATA).", NULL);
	stats_f.delivered = stats_counter("postwarden_recipients_delivered_total",
		"Recipients delivered to their MX.", NULL);
	stats_f.deferred = stats_counter("postwarden_recipients_deferred_total",
		"Delivery attempts of a recipient that ended in a temporary failure, by reason.",
		"reason");
	stats_f.held = stats_counter("postwarden_recipients_held_total",
		"Recipients held by the TLS-sending guarantee, by reason.", "reason");
	stats_f.bounced = stats_counter("postwarden_recipients_bounced_total",
		"Recipients bounced (permanent failure or queue lifetime over), by reason.",
		"reason");
	stats_f.tls = stats_counter("postwarden_deliveries_tls_total",
		"Recipients delivered, by TLS version of the connection (none: plaintext).",
		"version");
	stats_f.dane = stats_counter("postwarden_deliveries_dane_total",
		"Recipients delivered, by DANE outcome of the connection (pass, fail, none).",
		"outcome");
	stats_f.queue = metrics_register(stats_m, METRICS_GAUGE, "postwarden_queue_recipients",
		"Recipients in the queue, by state (queued, deferred, held).", "state", NULL, 0);
	stats_f.queue_age = metrics_register(stats_m, METRICS_GAUGE,
		"postwarden_queue_oldest_age_seconds",
		"Age of the oldest message with a recipient in this state (0: none).", "state",
		NULL, 0);
	stats_f.kd_pending = metrics_register(stats_m, METRICS_GAUGE,
		"postwarden_keydir_pending_names",
		"Key directory names whose DNS update failed in the last pass and waits for a retry.",
		NULL, NULL, 0);
	stats_f.kd_errors = stats_counter("postwarden_keydir_update_errors_total",
		"Key directory DNS updates of one name that failed.", NULL);
	stats_f.ks_requests = stats_counter("postwarden_keysearch_source_requests_total",
		"Key search look-ups answered by each source (cache hits not counted).", "source");
	stats_f.ks_hits = stats_counter("postwarden_keysearch_source_hits_total",
		"Key search look-ups in which the source found a key.", "source");
	stats_f.ks_errors = stats_counter("postwarden_keysearch_source_errors_total",
		"Key search look-ups that failed (timeout, error, blocked, bogus), by source.",
		"source");
	stats_f.ks_seconds = metrics_register(stats_m, METRICS_HISTOGRAM,
		"postwarden_keysearch_source_duration_seconds",
		"Time each key search source took to answer.", "source", stats_ks_buckets,
		sizeof(stats_ks_buckets) / sizeof(stats_ks_buckets[0]));
	stats_f.db_statements = stats_counter("postwarden_db_statements_total",
		"Database statements run by serve, by connection (their rate over the rate of "
		"seconds is the mean latency).", "connection");
	stats_f.db_seconds = stats_counter("postwarden_db_statement_seconds_total",
		"Time spent in database statements by serve, by connection.", "connection");
	stats_f.tls_downgrades = stats_counter("postwarden_tls_downgrades_total",
		"Destinations that offered valid TLS and then none or an invalid certificate "
		"(once per downgrade; mail to them is deferred for [downgrade] defer_for).", NULL);
	stats_f.sts_fetches = stats_counter("postwarden_mta_sts_policy_fetches_total",
		"MTA-STS policy fetches, by result (ok: a valid policy; failed).", "result");
	stats_f.sts_failures = stats_counter("postwarden_mta_sts_failures_total",
		"MX hosts that failed a destination's MTA-STS policy, by the policy's mode "
		"(enforce: the mail was deferred; testing: only reported).", "mode");
	stats_f.tlsrpt_reports = stats_counter("postwarden_tlsrpt_reports_total",
		"Daily TLS reports sent to one address, by result (mailed: queued to a mailto: "
		"address; posted: an https: address answered 2xx; failed).", "result");
}

struct metrics *stats_registry(void)
{
	pthread_once(&stats_once, stats_init);
	return stats_m;
}

void stats_accepted(void)
{
	stats_registry();
	metrics_add(stats_f.accepted, NULL, 1);
}

void stats_delivery(const char *outcome, const char *reason, const char *tls_version,
		    const char *dane)
{
	stats_registry();
	if (strcmp(outcome, "delivered") == 0) {
		metrics_add(stats_f.delivered, NULL, 1);
		metrics_add(stats_f.tls, *tls_version ? tls_version : "none", 1);
		metrics_add(stats_f.dane, dane, 1);
	} else if (strcmp(outcome, "deferred") == 0) {
		metrics_add(stats_f.deferred, reason, 1);
	} else if (strcmp(outcome, "held") == 0) {
		metrics_add(stats_f.held, reason, 1);
	} else if (strcmp(outcome, "bounced") == 0) {
		metrics_add(stats_f.bounced, reason, 1);
	}
}

void stats_tls_downgrade(void)
{
	stats_registry();
	metrics_add(stats_f.tls_downgrades, NULL, 1);
}

void stats_mta_sts_fetch(bool ok)
{
	stats_registry();
	metrics_add(stats_f.sts_fetches, ok ? "ok" : "failed", 1);
}

void stats_mta_sts_failure(const char *mode)
{
	stats_registry();
	metrics_add(stats_f.sts_failures, mode, 1);
}

void stats_tlsrpt_report(const char *result)
{
	stats_registry();
	metrics_add(stats_f.tlsrpt_reports, result, 1);
}

void stats_queue(const char *state, size_t n, double oldest_age)
{
	stats_registry();
	metrics_set(stats_f.queue, state, (double)n);
	metrics_set(stats_f.queue_age, state, oldest_age);
}

void stats_keydir_pending(size_t n)
{
	stats_registry();
	metrics_set(stats_f.kd_pending, NULL, (double)n);
}

void stats_keydir_error(void)
{
	stats_registry();
	metrics_add(stats_f.kd_errors, NULL, 1);
}

void stats_keysearch_source(const char *source, const char *status, long long elapsed_ms)
{
	stats_registry();
	metrics_add(stats_f.ks_requests, source, 1);
	if (strcmp(status, "found") == 0)
		metrics_add(stats_f.ks_hits, source, 1);
	else if (strcmp(status, "none") != 0 && strcmp(status, "pending") != 0)
		metrics_add(stats_f.ks_errors, source, 1);
	metrics_observe(stats_f.ks_seconds, source, (double)elapsed_ms / 1000.0);
}

void stats_db_connection(const char *connection, uint64_t statements, uint64_t usec)
{
	/* counters only grow: add what the connection's totals grew since the last scrape */
	static struct { const char *name; uint64_t statements, usec; } seen[4];
	size_t i;

	stats_registry();
	for (i = 0; i < 4 && seen[i].name != NULL && strcmp(seen[i].name, connection) != 0; i++)
		;
	if (i == 4)
		fatalx("stats: more than 4 database connections");
	if (seen[i].name == NULL)
		seen[i].name = connection;	/* a string literal of the caller */
	metrics_add(stats_f.db_statements, connection, (double)(statements - seen[i].statements));
	metrics_add(stats_f.db_seconds, connection, (double)(usec - seen[i].usec) / 1e6);
	seen[i].statements = statements;
	seen[i].usec = usec;
}
