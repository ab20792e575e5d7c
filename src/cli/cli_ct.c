/*
 * cli_ct.c - "postwarden ct": the certificates the CT monitor found for the watched names,
 * read from the database (any node, serve running or not), and the operator's ack.
 * "ct check" and "ct backfill" run verified rounds in the foreground; a backfill shows its
 * progress on standard error: a bar redrawn in place on a terminal, else a line with the
 * rate and the time left every 10 seconds.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "cli.h"
#include "ctmon/ct_follow.h"
#include "ctmon/ct_loglist.h"
#include "ctmon/ct_store.h"
#include "ctmon/ctmon.h"
#include "dns.h"
#include "http.h"
#include "node.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

static const char ct_usage[] =
	"ct check [--log ID]\n"
	"       postwarden ct backfill --log ID --from INDEX\n"
	"       postwarden ct list [--unexpected] [--json]\n"
	"       postwarden ct show ID [--json]\n"
	"       postwarden ct ack ID\n"
	"       postwarden ct watch --foreground";

#define CT_LIST_MAX 10000
#define CT_BAR_WIDTH 30
#define CT_BAR_EVERY 0.2	/* seconds between redraws of the bar */
#define CT_LINE_EVERY 10.0	/* seconds between progress lines without a terminal */

/* A finding ID from the command line; false (after the usage text) when it is not one. */
static bool ct_parse_id(const char *s, int64_t *id)
{
	uint64_t v;

	if (!parse_uint(s, 1, INT64_MAX, &v))
		return false;
	*id = (int64_t)v;
	return true;
}

static const char *ct_json_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void ct_date(json_t *o, const char *key, char *buf, size_t len)
{
	format_date(json_integer_value(json_object_get(o, key)), buf, len);
}

static void ct_print_list(json_t *arr)
{
	if (json_array_size(arr) == 0) {
		printf("no certificates found for the watched names\n");
		return;
	}
	printf("%-6s %-10s %-20s %-5s %s\n", "ID", "SEEN", "VERDICT", "ACKED", "NAMES");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *f = json_array_get(arr, i);
		char seen[32];

		ct_date(f, "first_seen", seen, sizeof(seen));
		printf("%-6" PRId64 " %-10s %-20s %-5s %s\n",
		       (int64_t)json_integer_value(json_object_get(f, "id")), seen,
		       ct_json_str(f, "verdict"),
		       json_is_true(json_object_get(f, "acked")) ? "yes" : "no",
		       ct_json_str(f, "names"));
	}
}

static void ct_print_finding(json_t *f)
{
	json_t *seen = json_object_get(f, "seen_in");
	char from[32], until[32], first[32];

	ct_date(f, "not_before", from, sizeof(from));
	ct_date(f, "not_after", until, sizeof(until));
	ct_date(f, "first_seen", first, sizeof(first));
	printf("finding %" PRId64 "\n  names:       %s\n  issuer:      %s\n"
	       "  issuer key:  %s\n  serial:      %s\n"
	       "  public key:  %s (SHA-256 of the SPKI)\n  valid:       %s to %s\n"
	       "  verdict:     %s\n  reason:      %s\n  CAA:         %s\n"
	       "  first seen:  %s\n  acked:       %s\n",
	       (int64_t)json_integer_value(json_object_get(f, "id")), ct_json_str(f, "names"),
	       ct_json_str(f, "issuer"), *ct_json_str(f, "issuer_key_sha256")
	       ? ct_json_str(f, "issuer_key_sha256") : "not known",
	       ct_json_str(f, "serial"), ct_json_str(f, "spki_sha256"),
	       from, until, ct_json_str(f, "verdict"), ct_json_str(f, "reason"),
	       *ct_json_str(f, "caa") ? ct_json_str(f, "caa") : "not checked",
	       first, json_is_true(json_object_get(f, "acked")) ? "yes" : "no");
	for (size_t i = 0; i < json_array_size(seen); i++) {
		json_t *s = json_array_get(seen, i);

		printf("  seen in:     %s entry %" PRId64 "%s\n", *ct_json_str(s, "log_url") ?
		       ct_json_str(s, "log_url") : ct_json_str(s, "log_id"),
		       (int64_t)json_integer_value(json_object_get(s, "index")),
		       json_is_true(json_object_get(s, "precert")) ? " (precertificate)" : "");
	}
}

static void ct_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2));
	putchar('\n');
}

static int ct_list(struct db *db, int argc, char **argv, bool json)
{
	bool unexpected = cli_take_flag(&argc, argv, "--unexpected");
	json_t *arr;

	if (argc != 1)
		return cli_usage(ct_usage);
	if ((arr = ct_store_findings_json(db, unexpected, CT_LIST_MAX)) == NULL)
		return 1;	/* cli_close_db says why */
	if (json)
		ct_print_json(arr);
	else
		ct_print_list(arr);
	json_decref(arr);
	return 0;
}

static int ct_show(struct db *db, int argc, char **argv, bool json)
{
	int64_t id;
	json_t *f;

	if (argc != 2 || !ct_parse_id(argv[1], &id))
		return cli_usage(ct_usage);
	if ((f = ct_store_finding_json(db, id)) == NULL) {
		if (db_error(db) == DB_OK)
			fprintf(pw_stderr, "postwarden: no finding %s\n", argv[1]);
		return 1;
	}
	if (json)
		ct_print_json(f);
	else
		ct_print_finding(f);
	json_decref(f);
	return 0;
}

static int ct_ack(struct db *db, int argc, char **argv)
{
	int64_t id;

	if (argc != 2 || !ct_parse_id(argv[1], &id))
		return cli_usage(ct_usage);
	db_clear_error(db);
	if (!ct_store_ack(db, id, (int64_t)time(NULL))) {
		if (db_error(db) == DB_OK)
			fprintf(pw_stderr, "postwarden: no finding %s\n", argv[1]);
		return 1;
	}
	printf("finding %s acknowledged\n", argv[1]);
	return 0;
}

/* ---- rounds over the logs ----------------------------------------------------------- */

/* One command's rounds: the logs of the list, one after another. */
struct ct_run {
	struct cli *cli;
	struct db *db;
	struct event_base *base;
	struct http_client *http;
	struct dns *dns;		/* for the CAA check; NULL: not checked */
	struct ct_loglist *list;
	struct ct_watch *watch;
	const char *only;		/* --log: one log ID (base64) */
	int64_t from;			/* --from, or -1 */
	size_t at;			/* next log of the list */
	int rc;
	/* a backfill's progress */
	bool tty;			/* standard error is a terminal: the bar */
	bool drawn;			/* the bar is on the screen (a newline ends it) */
	double started, shown;		/* monotonic seconds: the round's entries, last output */
};

static double ct_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds as "1:02:03" or "2:03" into buf. */
static void ct_duration(double secs, char *buf, size_t len)
{
	uint64_t s = secs > 0 && secs < 1e9 ? (uint64_t)(secs + 0.5) : 0;

	if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 ":%02u:%02u", s / 3600, (unsigned)(s / 60 % 60),
			 (unsigned)(s % 60));
	else
		snprintf(buf, len, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
}

/* ct_progress_cb of a backfill: the bar on a terminal, a line every 10 s otherwise. */
static void ct_progress(uint64_t done, uint64_t total, void *arg)
{
	struct ct_run *run = arg;
	double now = ct_now(), secs, rate;
	unsigned pct, fill;
	char bar[CT_BAR_WIDTH + 1], eta[32];

	if (done == 0 || run->started == 0) {
		run->started = run->shown = now;
		if (done == 0 && !run->tty)
			return;
	}
	if (now - run->shown < (run->tty ? CT_BAR_EVERY : CT_LINE_EVERY) && done < total &&
	    (done > 0 || !run->tty))
		return;
	run->shown = now;
	secs = now - run->started;
	rate = secs > 0 ? (double)done / secs : 0;
	pct = total ? (unsigned)(done * 100 / total) : 100;
	if (rate > 0)
		ct_duration((double)(total - done) / rate, eta, sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "?");
	if (!run->tty) {
		fprintf(pw_stderr, "backfill: %" PRIu64 "/%" PRIu64 " entries (%u%%), %.0f "
			"entries/s, ETA %s\n", done, total, pct, rate, eta);
		return;
	}
	fill = total ? (unsigned)(done * CT_BAR_WIDTH / total) : CT_BAR_WIDTH;
	memset(bar, '#', fill);
	memset(bar + fill, '.', CT_BAR_WIDTH - fill);
	bar[CT_BAR_WIDTH] = '\0';
	fprintf(pw_stderr, "\r[%s] %" PRIu64 "/%" PRIu64 " %3u%% %.0f entries/s ETA %s\033[K",
		bar, done, total, pct, rate, eta);
	/* all entries checked: the line ends before the round's own messages */
	run->drawn = done < total;
	if (!run->drawn)
		fputc('\n', pw_stderr);
	fflush(pw_stderr);
}

static void ct_run_next(struct ct_run *run);

static void ct_run_done(const struct ct_round_report *r, void *arg)
{
	struct ct_run *run = arg;
	char id[45];

	ct_log_id_text(&run->list->logs[run->at - 1], id);
	if (run->drawn)
		fputc('\n', pw_stderr);	/* the bar stays, its line ended */
	run->drawn = false;
	run->started = 0;
	if (r->result == CT_ROUND_OK)
		printf("%s: verified to %" PRIu64 " entries; %" PRIu64 " checked, %" PRIu64
		       " matching, %" PRIu64 " new findings\n", id, r->tree_size, r->entries,
		       r->findings, r->new_findings);
	else if (r->result == CT_ROUND_ALERT)
		fprintf(pw_stderr, "postwarden: log %s: ALERT %s: %s\n", id, r->alert, r->message);
	else
		fprintf(pw_stderr, "postwarden: log %s: %s\n", id, r->message);
	if (r->result != CT_ROUND_OK)
		run->rc = 1;
	ct_run_next(run);
}

/* Start the round of the next log of the list. */
static void ct_run_next(struct ct_run *run)
{
	const struct pw_config *cfg = &run->cli->cfg;

	while (run->at < run->list->nlogs) {
		const struct ct_log *log = &run->list->logs[run->at++];
		struct ct_follow_opts o = { .base = run->base, .db = run->db, .http = run->http,
			.log = log,
			.watch = run->watch, .expected_keys = cfg->ctmon.expected_keys,
			.allowed_issuers = cfg->ctmon.allowed_issuers,
			.issuer_caa = cfg->ctmon.issuer_caa, .dns = run->dns,
			.start_at_end = strcmp(cfg->ctmon.start, "end") == 0, .from = run->from,
			.parallel = (unsigned)cfg->ctmon.parallel,
			.per_second = (unsigned)cfg->ctmon.requests_per_second,
			.progress = run->from >= 0 ? ct_progress : NULL, .progress_arg = run };
		char id[45];

		ct_log_id_text(log, id);
		if (run->only && strcmp(run->only, id) != 0)
			continue;
		ct_follow_round(&o, ct_run_done, run);
		return;
	}
	event_base_loopbreak(run->base);
}

/* "ct check" and "ct backfill": one verified round over the logs, in the foreground. */
static int ct_rounds(struct cli *cli, struct db *db, int argc, char **argv)
{
	struct ct_run run = { .cli = cli, .db = db, .from = -1 };
	struct http_client_opts ho = { .allow_private = cli->cfg.ctmon.allow_private,
		.ca_file = *cli->cfg.ctmon.ca_file ? cli->cfg.ctmon.ca_file : NULL,
		.user_agent = "postwarden-ctmon" };
	bool backfill = strcmp(argv[0], "backfill") == 0;
	uint64_t from;
	char *err = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			run.only = argv[++i];
		else if (backfill && strcmp(argv[i], "--from") == 0 && i + 1 < argc &&
			 parse_uint(argv[i + 1], 0, INT64_MAX, &from))
			run.from = (int64_t)from, i++;
		else
			return cli_usage(ct_usage);
	}
	if (backfill && (run.only == NULL || run.from < 0))
		return cli_usage(ct_usage);
	if (*cli->cfg.ctmon.log_list == '\0') {
		fprintf(pw_stderr, "postwarden: no [ctmon] log_list in %s\n", cli->cfg.path);
		return 1;
	}
	if ((run.list = ctmon_read_log_list(&cli->cfg, &err)) == NULL) {
		fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
		return 1;
	}
	run.watch = ctmon_watch_from_config(&cli->cfg);
	run.tty = isatty(fileno(pw_stderr)) == 1;
	if ((run.base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	run.http = http_client_new(run.base, &ho);
	if ((run.dns = dns_new(run.base, cli->cfg.dns.unbound_config, &err)) == NULL) {
		fprintf(pw_stderr, "postwarden: [dns]: %s; CAA is not checked\n", err);
		free(err);
	}
	ct_run_next(&run);
	if (run.at > 0 || run.list->nlogs > 0)
		event_base_dispatch(run.base);
	http_client_free(run.http);
	if (run.dns != NULL)
		dns_free(run.dns);
	event_base_free(run.base);
	ct_watch_free(run.watch);
	ct_loglist_free(run.list);
	return run.rc;
}

/* ---- ct watch ----------------------------------------------------------------------- */

static void ct_watch_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

/*
 * "ct watch --foreground": the monitor alone, as serve runs it (rounds under the logs'
 * leases, webhook and hook deliveries, health alerts), each new finding and alert as one
 * JSON line on standard output, until SIGINT or SIGTERM. It is a node of its own,
 * "NODE-ct-watch", so that it shares the logs' leases fairly with serve on the same host.
 * Mail is not sent here: its rows wait in the database for serve.
 */
static int ct_watch(struct cli *cli, struct db *db, int argc, char **argv)
{
	struct pw_config *cfg = &cli->cfg;
	struct event_base *base;
	struct event *sigint, *sigterm;
	struct node *node;
	struct ctmon *m;
	char *name;

	if (argc != 2 || strcmp(argv[1], "--foreground") != 0)
		return cli_usage(ct_usage);
	if (*cfg->ctmon.log_list == '\0') {
		fprintf(pw_stderr, "postwarden: no [ctmon] log_list in %s\n", cfg->path);
		return 1;
	}
	name = xasprintf("%s-ct-watch", cfg->server.node);
	free(cfg->server.node);
	cfg->server.node = name;
	signal(SIGPIPE, SIG_IGN);	/* a webhook or hook that hangs up is its own error */
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create an event loop");
	node = node_start(base, db, cfg);
	if ((m = ctmon_start_watch(base, cfg, db, node, stdout)) == NULL) {
		fprintf(pw_stderr, "postwarden: the CT monitor could not start (see above)\n");
		node_stop(node);
		event_base_free(base);
		return 1;
	}
	sigint = evsignal_new(base, SIGINT, ct_watch_signal, base);
	sigterm = evsignal_new(base, SIGTERM, ct_watch_signal, base);
	if (sigint == NULL || sigterm == NULL)
		fatalx("cannot watch signals");
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	event_base_dispatch(base);
	ctmon_stop(m);
	node_stop(node);
	event_free(sigint);
	event_free(sigterm);
	event_base_free(base);
	return 0;
}

int cli_ct(struct cli *cli, int argc, char **argv)
{
	bool json = cli_take_flag(&argc, argv, "--json");
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", ct_usage);
		return 0;
	}
	if (argc < 2 || (strcmp(argv[1], "list") != 0 && strcmp(argv[1], "show") != 0 &&
			 strcmp(argv[1], "ack") != 0 && strcmp(argv[1], "check") != 0 &&
			 strcmp(argv[1], "backfill") != 0 && strcmp(argv[1], "watch") != 0))
		return cli_usage(ct_usage);
	if ((db = cli_open_db(cli)) == NULL)
		return 1;
	db_clear_error(db);
	if (strcmp(argv[1], "list") == 0)
		rc = ct_list(db, argc - 1, argv + 1, json);
	else if (strcmp(argv[1], "show") == 0)
		rc = ct_show(db, argc - 1, argv + 1, json);
	else if (strcmp(argv[1], "check") == 0 || strcmp(argv[1], "backfill") == 0)
		rc = ct_rounds(cli, db, argc - 1, argv + 1);
	else if (strcmp(argv[1], "watch") == 0)
		rc = ct_watch(cli, db, argc - 1, argv + 1);
	else
		rc = ct_ack(db, argc - 1, argv + 1);
	return cli_close_db(db, rc);
}
