/*
 * cli_tlsrpt.c - "postwarden tlsrpt": the TLS outcome counts of a day (show) and the TLS
 * reports (RFC 8460) for a day sent now (send; serve sends yesterday's by itself after
 * [tlsrpt] send_at). A report by mail is handed to the relay's own listener over SMTP, so
 * it goes through the queue like every message; a day already reported (by serve, another
 * node or an earlier send) is not reported again.
 */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "dns.h"
#include "log.h"
#include "relay/relay_tlsrpt.h"
#include "strutil.h"
#include "xmalloc.h"

static const char tlsrpt_usage[] =
	"tlsrpt show [--day YYYY-MM-DD] [--json]\n"
	"       postwarden tlsrpt send [--day YYYY-MM-DD] [--dry-run]";

/* --day D (validated), default yesterday (UTC). */
static bool tlsrpt_cli_day(int *argc, char **argv, char day[11])
{
	for (int i = 1; i < *argc; i++) {
		int y, m, d;
		char extra;

		if (strcmp(argv[i], "--day") != 0)
			continue;
		if (i + 1 >= *argc || strlen(argv[i + 1]) != 10 ||
		    sscanf(argv[i + 1], "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 ||
		    m < 1 || m > 12 || d < 1 || d > 31)
			return false;
		memcpy(day, argv[i + 1], 11);
		memmove(argv + i, argv + i + 2, (size_t)(*argc - i - 2) * sizeof(char *));
		*argc -= 2;
		return true;
	}
	tlsrpt_day((int64_t)time(NULL) - 86400, day);
	return true;
}

static int tlsrpt_show(struct cli *cli, const char *day, bool json)
{
	struct db *db = cli_open_db(cli);
	struct db_stmt *st;
	json_t *arr = json_array();

	if (db == NULL)
		return 1;
	st = db_prepare(db,
		"SELECT policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip, "
		"count, policy_string FROM tlsrpt_counts WHERE day = ? "
		"ORDER BY policy_domain, policy_type, mx_host, result_type, receiving_ip");
	db_bind_text(st, 1, day);
	if (!json)
		printf("%-28s %-16s %-28s %-24s %-16s %s\n", "DOMAIN", "POLICY", "MX",
		       "RESULT", "RECEIVING-IP", "COUNT");
	while (st != NULL && db_step_row(db, st)) {
		const char *res = *db_col_text(st, 3) ? db_col_text(st, 3) : "success";

		if (json)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}",
				"day", day, "policy-domain", db_col_text(st, 0),
				"policy-type", db_col_text(st, 1), "mx-host", db_col_text(st, 2),
				"result-type", res, "sending-ip", db_col_text(st, 4),
				"receiving-ip", db_col_text(st, 5), "count",
				(json_int_t)db_col_int(st, 6), "policy-string", db_col_text(st, 7)));
		else
			printf("%-28s %-16s %-28s %-24s %-16s %lld\n", db_col_text(st, 0),
			       db_col_text(st, 1), *db_col_text(st, 2) ? db_col_text(st, 2) : "-",
			       res, *db_col_text(st, 5) ? db_col_text(st, 5) : "-",
			       (long long)db_col_int(st, 6));
	}
	db_finalize(st);
	if (json) {
		char *s = json_dumps(arr, JSON_INDENT(2));

		printf("%s\n", s ? s : "[]");
		free(s);
	}
	json_decref(arr);
	return cli_close_db(db, 0);
}

/* ---- a report by mail: SMTP to the relay's own listener ------------------------------------ */

static bool smtp_line(FILE *f, int *code)
{
	char line[1024];

	/* multi-line replies: read to the line with a space after the code */
	for (;;) {
		if (fgets(line, sizeof(line), f) == NULL || strlen(line) < 4)
			return false;
		*code = atoi(line);
		if (line[3] == ' ')
			return true;
	}
}

/* Send a command (fmt NULL: none, the greeting) on w and read its reply on r. */
static bool smtp_cmd(FILE *r, FILE *w, int want, const char *fmt, const char *arg)
{
	int code;

	if (fmt != NULL) {
		fprintf(w, fmt, arg);
		fflush(w);
	}
	return smtp_line(r, &code) && code == want;
}

static int smtp_connect(const struct conf_hostport *l)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	const char *host = l->host;
	char port[8];
	int fd = -1;
	struct timeval tv = { 60, 0 };

	/* a wildcard listener is reached on loopback */
	if (host == NULL || *host == '\0' || strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	snprintf(port, sizeof(port), "%u", l->port);
	if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
			connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static bool tlsrpt_cli_mail(void *arg, const char *from, const char *to, const char *data,
			    size_t len)
{
	struct cli *cli = arg;
	int fd = smtp_connect(&cli->cfg.relay.listen);
	FILE *r, *w;
	bool ok, bol = true;

	if (fd < 0) {
		fprintf(pw_stderr, "postwarden tlsrpt: cannot connect to the relay at %s:%u: %s\n",
			cli->cfg.relay.listen.host, cli->cfg.relay.listen.port, strerror(errno));
		return false;
	}
	/* one stream per direction: a stdio stream may not switch from reading to writing */
	if ((r = fdopen(fd, "r")) == NULL || (w = fdopen(dup(fd), "w")) == NULL)
		fatalx("fdopen failed");
	ok = smtp_cmd(r, w, 220, NULL, NULL) &&
	     smtp_cmd(r, w, 250, "EHLO %s\r\n", cli->cfg.server.hostname) &&
	     smtp_cmd(r, w, 250, "MAIL FROM:<%s>\r\n", from) &&
	     smtp_cmd(r, w, 250, "RCPT TO:<%s>\r\n", to) &&
	     smtp_cmd(r, w, 354, "DATA\r\n", NULL);
	if (ok) {
		for (size_t i = 0; i < len; i++) {
			if (bol && data[i] == '.')
				fputc('.', w);	/* dot-stuffing */
			fputc(data[i], w);
			bol = data[i] == '\n';
		}
		ok = smtp_cmd(r, w, 250, "%s.\r\n", bol ? "" : "\r\n");
	}
	fprintf(w, "QUIT\r\n");
	fclose(w);
	fclose(r);
	if (!ok)
		fprintf(pw_stderr, "postwarden tlsrpt: the relay did not take the report to %s\n", to);
	return ok;
}

struct tlsrpt_cli_wait {
	struct event_base *base;
	struct tlsrpt_run_result res;
};

static void tlsrpt_cli_done(void *arg, const struct tlsrpt_run_result *res)
{
	struct tlsrpt_cli_wait *w = arg;

	w->res = *res;
	event_base_loopbreak(w->base);
}

static int tlsrpt_send(struct cli *cli, const char *day, bool dry_run)
{
	struct tlsrpt_cli_wait w = { 0 };
	struct tlsrpt_run *run;
	struct dns *dns = NULL;
	char *err = NULL;
	struct db *db = cli_open_db(cli);

	if (db == NULL)
		return 1;
	if ((w.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	if ((dns = dns_new(w.base, cli->cfg.dns.unbound_config, &err)) == NULL) {
		fprintf(pw_stderr, "postwarden tlsrpt: %s\n", err);
		free(err);
		event_base_free(w.base);
		return cli_close_db(db, 1);
	}
	run = tlsrpt_run_start(&(struct tlsrpt_run_opts){
		.cfg = &cli->cfg, .base = w.base, .db = db, .dns = dns, .day = day,
		.dry_run = dry_run, .out = stdout, .mail = tlsrpt_cli_mail, .mail_arg = cli,
		.done = tlsrpt_cli_done, .done_arg = &w });
	event_base_dispatch(w.base);
	tlsrpt_run_free(run);
	dns_free(dns);
	event_base_free(w.base);
	if (!dry_run)
		printf("%s: %u report(s) sent, %u domain(s) without a TLS-RPT record, %u delivery "
		       "failure(s), %u left for later\n", day, w.res.reports, w.res.no_rua,
		       w.res.failed, w.res.skipped);
	return cli_close_db(db, w.res.failed > 0 ? 1 : 0);
}

int cli_tlsrpt(struct cli *cli, int argc, char **argv)
{
	char day[11];
	bool json, dry_run;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n\n"
		       "show: the TLS outcome counts of a day (default yesterday, UTC).\n"
		       "send: send that day's TLS reports (RFC 8460) now to every domain that asks\n"
		       "      for them and was not sent one yet; --dry-run prints them as JSON.\n",
		       tlsrpt_usage);
		return 0;
	}
	json = cli_take_flag(&argc, argv, "--json");
	dry_run = cli_take_flag(&argc, argv, "--dry-run");
	if (argc < 2 || !tlsrpt_cli_day(&argc, argv, day) || argc != 2)
		return cli_usage(tlsrpt_usage);
	if (strcmp(argv[1], "show") == 0 && !dry_run)
		return tlsrpt_show(cli, day, json);
	if (strcmp(argv[1], "send") == 0 && !json)
		return tlsrpt_send(cli, day, dry_run);
	return cli_usage(tlsrpt_usage);
}
