/*
 * cli_serve.c - "postwarden serve": the relay in the foreground.
 *
 * Start-up order matters: the queue recovers (spool files without rows get their rows)
 * before the listener accepts anything, and the scheduler starts last. Shutdown goes the
 * other way: the listener stops and messages being committed get their 250 first.
 */
#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "account/acct_api.h"
#include "account/acct_extra.h"
#include "ctmon/ctmon.h"
#include "keydir/keydir.h"
#include "keysearch/keysearch.h"
#include "log.h"
#include "metrics_http.h"
#include "migrate/mig_api.h"
#include "node.h"
#include "relay/relay.h"
#include "relay/relay_tlsrpt.h"
#include "schema.h"
#include "sdnotify.h"
#include "stats.h"
#include "strutil.h"
#include "tls.h"
#include "xmalloc.h"

static const char serve_usage[] = "[-c FILE] serve";

/* Log to [server] log_file or standard error; returns the file to close, or NULL. */
static FILE *serve_log_open(const struct pw_config *cfg, bool *ok)
{
	enum log_level level = LOG_LEVEL_INFO;
	FILE *f = NULL;

	*ok = true;
	log_level_parse(cfg->server.log_level, &level);
	if (*cfg->server.log_file) {
		f = fopen(cfg->server.log_file, "ae");
		if (f == NULL) {
			fprintf(pw_stderr, "postwarden: cannot open log_file %s: %s\n",
				cfg->server.log_file, strerror(errno));
			*ok = false;
			return NULL;
		}
		setvbuf(f, NULL, _IOLBF, 0);
	}
	log_init("postwarden", level, f ? f : pw_stderr);
	return f;
}

/* Tell systemd (Type=notify) how serve is doing; a failure is logged, serve goes on. */
static void serve_notify(const char *state)
{
	if (sdnotify(state) < 0)
		log_warn("event=sd_notify state=%s error=\"%s\"", state, strerror(errno));
}

static void serve_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	log_info("event=stop signal=%s", sig == SIGTERM ? "TERM" : "INT");
	serve_notify("STOPPING=1");
	event_base_loopbreak(base);
}

/*
 * serve's own connection writes the scheduler's delivery states: a state lost by a crash
 * of the database server only means one more attempt, so its commits need not wait for
 * the server's disk. The queue's index rows (the worker's connection) and everything the
 * command-line tools write keep full durability.
 */
static int serve_relax_durability(struct db *db, char **err)
{
	if (db_relax_durability(db) == DB_OK)
		return 0;
	*err = xasprintf("database %s: %s", db_url_display(db), db_errmsg(db));
	return -1;
}

/* Everything serve starts, in the order it starts; stopped in reverse. */
static void serve_teardown(struct relay *r)
{
	smtpd_stop(r->smtpd);
	r->smtpd = NULL;
	if (r->sched)
		sched_stop(r->sched);
	r->sched = NULL;
	tlsrpt_stop(r);		/* the counts of the last seconds */
	queue_close(r->queue);
	r->queue = NULL;
	if (r->dns)
		dns_free(r->dns);
	SSL_CTX_free(r->client_ctx);
	SSL_CTX_free(r->server_ctx);
	if (r->db) {
		struct db_stats st;

		db_get_stats(r->db, &st);
		log_info("event=db_stats connection=serve statements=%llu usec=%llu",
			 (unsigned long long)st.statements, (unsigned long long)st.usec);
	}
	db_close(r->db);
}

/* The address the listener actually got, for the start-up line. */
static void serve_log_start(struct relay *r)
{
	log_info("event=start listen=%s:%u hostname=%s state_dir=%s starttls=%s",
		 r->cfg->relay.listen.host, r->cfg->relay.listen.port, r->cfg->server.hostname,
		 r->cfg->server.state_dir, r->server_ctx ? "yes" : "no");
}

/* [metrics] listen: GET /metrics on the loop, with the queue's gauges read when scraped. */
/* ctmon's mail: one message from the null sender to each address of to, through the queue. */
static bool serve_ct_mail(void *arg, const char *to, const char *data, size_t len)
{
	struct relay *r = arg;
	char *id = queue_inject_to(r->queue, to, data, len);
	bool ok = id != NULL;

	free(id);
	return ok;
}

static int serve_metrics_start(struct relay *r, struct metrics_http **out, char **err)
{
	const struct conf_hostport *l = &r->cfg->metrics.listen;

	*out = NULL;
	if (l->host == NULL || *l->host == '\0')
		return 0;
	metrics_on_render(stats_registry(), relay_stats_collect, r);
	*out = metrics_http_start(r->base, stats_registry(), l->host, l->port, err);
	return *out ? 0 : -1;
}

/* The API's /v1/migrations routes (ks_api_route's signature). */
static int serve_migrations(void *arg, struct evhttp_request *req, const char *path,
			    const char *query)
{
	return mig_api_handle(arg, req, path, query);
}

static uid_t serve_uid;
static gid_t serve_gid;

/* nftw callback: give one file of state_dir to the serve user. */
static int serve_chown_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (lchown(path, serve_uid, serve_gid) < 0)
		log_warn("event=chown path=%s error=\"%s\"", path, strerror(errno));
	return 0;
}

/*
 * Started as root with [server] user set: hand state_dir to that user (files the
 * command-line tools created as root included), then give up root for good. Called once
 * every port is bound and every file serve needs at start is open.
 */
static int serve_drop_privileges(const struct pw_config *cfg, char **err)
{
	const char *user = cfg->server.user;
	struct passwd *pw;

	if (*user == '\0') {
		if (geteuid() == 0)
			log_warn("event=running_as_root msg=\"set [server] user to run serve unprivileged\"");
		return 0;
	}
	if (geteuid() != 0) {
		log_info("event=privileges msg=\"not root: [server] user %s is not needed\"", user);
		return 0;
	}
	if ((pw = getpwnam(user)) == NULL) {
		*err = xasprintf("[server] user: no such user %s", user);
		return -1;
	}
	serve_uid = pw->pw_uid;
	serve_gid = pw->pw_gid;
	if (nftw(cfg->server.state_dir, serve_chown_cb, 16, FTW_PHYS) < 0) {
		*err = xasprintf("cannot give %s to %s: %s", cfg->server.state_dir, user,
				 strerror(errno));
		return -1;
	}
	/* glibc applies these to every thread of the process (resolver and queue workers too). */
	if (initgroups(user, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		*err = xasprintf("cannot switch to user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0)
		fatalx("root privileges could be regained after switching to %s", user);
	log_info("event=privileges user=%s uid=%u gid=%u", user, (unsigned)pw->pw_uid,
		 (unsigned)pw->pw_gid);
	return 0;
}

int cli_serve(struct cli *cli, int argc, char **argv)
{
	struct relay r = { 0 };
	struct event *sigterm = NULL, *sigint = NULL;
	struct keydir_timer *keydir_timer = NULL;
	struct tlsrpt_sched *tlsrpt_sched = NULL;
	struct ctmon *ctmon = NULL;
	struct node *node = NULL;
	struct keysearch *keysearch = NULL;
	struct ks_api *api = NULL;
	struct mig_api *migrations = NULL;
	struct metrics_http *metrics = NULL;
	struct acct_api *account = NULL;
	struct acct_extra *account_extra = NULL;
	FILE *logf;
	char *err = NULL;
	bool ok;
	int rc = 1;

	if (cli_wants_help(argc, argv) || argc != 1) {
		if (argc != 1 && !cli_wants_help(argc, argv))
			return cli_usage(serve_usage);
		printf("usage: postwarden %s\n\nRun the relay in the foreground until SIGTERM or SIGINT.\n",
		       serve_usage);
		return 0;
	}
	logf = serve_log_open(&cli->cfg, &ok);
	if (!ok)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	r.cfg = &cli->cfg;
	/* The node's own files (spool, WKD tree) live in state_dir whatever the engine;
	 * schema_open creates it only for SQLite's file, as commands run elsewhere with
	 * PostgreSQL need none. */
	if (mkdir(cli->cfg.server.state_dir, 0750) < 0 && errno != EEXIST) {
		err = xasprintf("cannot create state_dir %s: %s", cli->cfg.server.state_dir,
				strerror(errno));
		goto fail;
	}
	if ((r.db = schema_open(&cli->cfg, schema_serve_mode(&cli->cfg), &err)) == NULL ||
	    serve_relax_durability(r.db, &err) < 0)
		goto fail;
	if ((r.base = event_base_new()) == NULL) {
		err = xstrdup("cannot create the event loop");
		goto fail;
	}
	event_base_priority_init(r.base, RELAY_PRIORITIES);
	if ((r.dns = dns_new(r.base, cli->cfg.dns.unbound_config, &err)) == NULL)
		goto fail;
	if ((r.client_ctx = tls_client_ctx_new(cli->cfg.relay.ca_file, &err)) == NULL)
		goto fail;
	if (*cli->cfg.relay.tls_cert &&
	    (r.server_ctx = tls_server_ctx_new(cli->cfg.relay.tls_cert, cli->cfg.relay.tls_key,
					       &err)) == NULL)
		goto fail;
	if ((r.queue = queue_open(&r, &err)) == NULL)
		goto fail;
	if ((r.smtpd = smtpd_start(&r, &err)) == NULL)
		goto fail;
	tlsrpt_start(&r);
	r.sched = sched_start(&r);
	/* heartbeat and leases; the key directory's timer acts only under its lease */
	node = node_start(r.base, r.db, &cli->cfg);
	keydir_timer = keydir_timer_start(r.base, &cli->cfg, node_lease(node, "keydir"));
	/* yesterday's TLS reports, once a day in the whole installation */
	if (cli->cfg.tlsrpt.enabled)
		tlsrpt_sched = tlsrpt_sched_start(&r, node_lease(node, "tlsrpt"));
	/* the CT monitor: each log under a lease of its own; alerts mailed through the queue */
	ctmon = ctmon_start(r.base, &cli->cfg, r.db, node, serve_ct_mail, &r);
	/* The key search API ([api] listen); a port that cannot be bound stops serve. */
	if ((keysearch = keysearch_new(r.base, &cli->cfg, r.dns, r.db, &err)) == NULL)
		goto fail;
	if ((api = ks_api_start(r.base, &cli->cfg, keysearch, &err)) == NULL && err)
		goto fail;
	/* migration jobs on the same listener, behind the same tokens (and the users' own on
	 * the account listener) */
	if (api != NULL || (cli->cfg.account.listen.host && *cli->cfg.account.listen.host))
		migrations = mig_api_new(&cli->cfg, r.db);
	if (api != NULL)
		ks_api_route(api, "/v1/migrations", serve_migrations, migrations);
	if (serve_metrics_start(&r, &metrics, &err) < 0)
		goto fail;
	/* the users' settings page and account API ([account] listen) */
	if ((account = acct_api_start(r.base, &cli->cfg, r.db, &err)) == NULL && err)
		goto fail;
	if (account != NULL)
		account_extra = acct_extra_register(acct_api_http(account), &r, keysearch,
						    migrations);
	if (serve_drop_privileges(&cli->cfg, &err) < 0)
		goto fail;
	sigterm = evsignal_new(r.base, SIGTERM, serve_signal_cb, r.base);
	sigint = evsignal_new(r.base, SIGINT, serve_signal_cb, r.base);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	serve_log_start(&r);
	/* Every listener is bound and accepting (the kernel queues connections until the loop
	 * runs): units ordered after postwarden.service may start now. */
	serve_notify("READY=1");
	event_base_dispatch(r.base);
	rc = 0;
fail:
	if (err) {
		log_error("event=start_failed error=\"%s\"", err);
		if (logf)
			fprintf(pw_stderr, "postwarden: %s\n", err);
		free(err);
	}
	metrics_http_stop(metrics);
	acct_api_stop(account);
	acct_extra_free(account_extra);
	ks_api_stop(api);
	mig_api_free(migrations);
	keysearch_free(keysearch);
	keydir_timer_stop(keydir_timer);
	tlsrpt_sched_stop(tlsrpt_sched);
	ctmon_stop(ctmon);
	node_stop(node);
	serve_teardown(&r);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (r.base)
		event_base_free(r.base);
	if (logf) {
		log_init("postwarden", LOG_LEVEL_INFO, pw_stderr);
		fclose(logf);
	}
	return rc;
}
