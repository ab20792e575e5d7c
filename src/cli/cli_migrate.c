/*
 * cli_migrate.c - "postwarden migrate": the dispatcher, and "migrate mail", which copies a
 * user's mailbox from the old provider's IMAP server to the destination in the foreground,
 * with a progress bar on a terminal or JSON progress lines otherwise.
 *
 * Credentials come from a terminal prompt without echo or from descriptors the caller
 * opened (--password-fd, --to-password-fd, --token-fd), never from argv or the environment;
 * they live in wiped memory (mig_cred) until the job ends. The job record keeps neither the
 * source server nor the source user name: resuming names the job (--job ID).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "migrate/mig_cred.h"
#include "migrate/mig_job.h"
#include "migrate/mig_mail.h"
#include "migrate/mig_mail_map.h"
#include "xmalloc.h"

static const char mail_usage[] =
	"migrate mail --from imaps://HOST[:PORT] | imap://HOST[:PORT] | PRESET "
	"[--from-host HOST[:PORT]] --from-user NAME [--to imaps://HOST[:PORT]] --to-user NAME "
	"[--master-user NAME] [--password-fd N] [--to-password-fd N] [--token-fd N] "
	"[--oauth xoauth2|oauthbearer] [--job ID] [--connections N] [--no-compress | --compress] "
	"[--delete-source] [--json]";

/* Split imaps://host[:port] / imap://host[:port] / host[:port] into e. */
static bool parse_server(const char *url, struct mig_endpoint *e, enum imap_tls dflt)
{
	return mig_server_parse(url, dflt, &e->host, &e->port, &e->tls);
}

static struct mig_cred *get_cred(int fd, const char *prompt)
{
	const char *err = NULL;
	struct mig_cred *c = fd >= 0 ? mig_cred_from_fd(fd, &err) : mig_cred_from_tty(prompt, &err);

	if (c == NULL)
		fprintf(pw_stderr, "postwarden migrate mail: %s\n", err);
	if (fd > 2)
		close(fd);
	return c;
}

struct view {
	bool json, tty;
	time_t start;
	double last;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void show_progress(struct view *v, const struct mig_progress *p, double t0, bool final)
{
	double el = now_s() - t0;
	double rate = el > 0 ? p->msgs_done / el : 0, brate = el > 0 ? p->bytes_done / el : 0;
	double eta = brate > 0 && p->bytes_total > p->bytes_done ?
		     (p->bytes_total - p->bytes_done) / brate : 0;

	if (v->json) {
		printf("{\"event\":\"progress\",\"folders_done\":%d,\"folders_total\":%d,"
		       "\"messages_done\":%llu,\"messages_total\":%llu,\"bytes_done\":%llu,"
		       "\"bytes_total\":%llu,\"failed\":%llu,\"messages_per_second\":%.1f,"
		       "\"bytes_per_second\":%.0f,\"eta_seconds\":%.0f}\n",
		       p->folders_done, p->folders_total, (unsigned long long)p->msgs_done,
		       (unsigned long long)p->msgs_total, (unsigned long long)p->bytes_done,
		       (unsigned long long)p->bytes_total, (unsigned long long)p->failed, rate, brate, eta);
		fflush(stdout);
		return;
	}
	if (!v->tty)
		return;
	int width = 24, fill = p->bytes_total ? (int)(width * (double)p->bytes_done / p->bytes_total) : 0;
	char bar[32];

	if (fill > width)
		fill = width;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(width - fill));
	bar[width] = '\0';
	fprintf(pw_stderr, "\r[%s] folders %d/%d  messages %llu/%llu  %.1f/%.1f MB  %.0f msg/s  "
		"ETA %d:%02d ", bar, p->folders_done, p->folders_total,
		(unsigned long long)p->msgs_done, (unsigned long long)p->msgs_total,
		p->bytes_done / 1e6, p->bytes_total / 1e6, rate, (int)eta / 60, (int)eta % 60);
	if (final)
		fprintf(pw_stderr, "\n");
	fflush(pw_stderr);
}

/* The end: one JSON document or a text summary, listing what was not copied and why. */
static void summary(struct view *v, struct mig_mail *m, int64_t job, const char *state,
		    double secs)
{
	struct mig_progress p;
	json_t *doc, *folders;

	mig_mail_progress(m, &p);
	if (v->json) {
		doc = json_object();
		folders = json_array();
		json_object_set_new(doc, "event", json_string("done"));
		json_object_set_new(doc, "job", json_integer(job));
		json_object_set_new(doc, "state", json_string(state));
		json_object_set_new(doc, "messages_copied", json_integer((json_int_t)p.msgs_done));
		json_object_set_new(doc, "bytes_copied", json_integer((json_int_t)p.bytes_done));
		json_object_set_new(doc, "failed", json_integer((json_int_t)p.failed));
		json_object_set_new(doc, "seconds", json_real(secs));
		if (m->fatal)
			json_object_set_new(doc, "error", json_string(m->fatal));
		for (size_t i = 0; i < m->nfolders; i++) {
			struct mig_folder *f = &m->folders[i];
			json_t *o = json_object();

			json_object_set_new(o, "folder", json_string(f->display ? f->display : f->src));
			json_object_set_new(o, "destination", json_string(f->dst ? f->dst : ""));
			json_object_set_new(o, "copied", json_integer((json_int_t)f->copied));
			json_object_set_new(o, "already_there", json_integer((json_int_t)f->present));
			json_object_set_new(o, "failed", json_integer((json_int_t)f->failed));
			json_object_set_new(o, "skipped", json_boolean(f->skip || f->noselect));
			if (f->error)
				json_object_set_new(o, "error", json_string(f->error));
			if (f->failures)
				json_object_set_new(o, "not_copied", json_string(f->failures));
			json_array_append_new(folders, o);
		}
		json_object_set_new(doc, "folders", folders);
		char *s = json_dumps(doc, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
		json_decref(doc);
		return;
	}
	printf("job %lld: %s: %llu messages (%.1f MB) copied in %.1f s, %llu not copied\n",
	       (long long)job, state, (unsigned long long)p.msgs_done, p.bytes_done / 1e6, secs,
	       (unsigned long long)p.failed);
	if (m->fatal)
		printf("error: %s\n", m->fatal);
	for (size_t i = 0; i < m->nfolders; i++) {
		struct mig_folder *f = &m->folders[i];

		if (f->skip || f->noselect)
			continue;
		printf("  %-30s -> %-20s %6llu copied %6llu already there%s%s\n",
		       f->display ? f->display : f->src, f->dst, (unsigned long long)f->copied,
		       (unsigned long long)f->present, f->error ? "  ERROR: " : "",
		       f->error ? f->error : "");
		if (f->failures)
			printf("%s", f->failures);
	}
	if (strcmp(state, "done") != 0)
		printf("Run the same command with --job %lld to continue; nothing is copied twice.\n",
		       (long long)job);
}

struct mail_args {
	const char *from, *from_host, *from_user, *to, *to_user, *master, *oauth;
	int pw_fd, to_pw_fd, token_fd, connections;
	int64_t job;
	bool json, no_compress, compress_local, delete_source;
};

static int parse_mail_args(int argc, char **argv, struct mail_args *a)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' }, { "from-host", required_argument, NULL, 'H' },
		{ "from-user", required_argument, NULL, 'u' }, { "to", required_argument, NULL, 't' },
		{ "to-user", required_argument, NULL, 'U' }, { "master-user", required_argument, NULL, 'M' },
		{ "password-fd", required_argument, NULL, 'p' },
		{ "to-password-fd", required_argument, NULL, 'P' },
		{ "token-fd", required_argument, NULL, 'k' }, { "oauth", required_argument, NULL, 'o' },
		{ "job", required_argument, NULL, 'j' }, { "connections", required_argument, NULL, 'c' },
		{ "no-compress", no_argument, NULL, 'z' }, { "compress", no_argument, NULL, 'Z' },
		{ "delete-source", no_argument, NULL, 'D' }, { "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	const char *err;
	int opt;

	memset(a, 0, sizeof(*a));
	a->pw_fd = a->to_pw_fd = a->token_fd = -1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'f': a->from = optarg; break;
		case 'H': a->from_host = optarg; break;
		case 'u': a->from_user = optarg; break;
		case 't': a->to = optarg; break;
		case 'U': a->to_user = optarg; break;
		case 'M': a->master = optarg; break;
		case 'o': a->oauth = optarg; break;
		case 'z': a->no_compress = true; break;
		case 'Z': a->compress_local = true; break;
		case 'D': a->delete_source = true; break;
		case 'J': a->json = true; break;
		case 'j': a->job = strtoll(optarg, NULL, 10); if (a->job <= 0) return -1; break;
		case 'c': a->connections = atoi(optarg); if (a->connections < 1 || a->connections > 16) return -1; break;
		case 'p': case 'P': case 'k': {
			int fd = mig_cred_parse_fd(optarg, &err);

			if (fd < 0) {
				fprintf(pw_stderr, "postwarden migrate mail: --%s %s: %s\n",
					opt == 'p' ? "password-fd" : opt == 'P' ? "to-password-fd" : "token-fd",
					optarg, err);
				return -1;
			}
			*(opt == 'p' ? &a->pw_fd : opt == 'P' ? &a->to_pw_fd : &a->token_fd) = fd;
			break;
		}
		default:
			return -1;
		}
	}
	if (optind != argc || a->from == NULL || a->from_user == NULL || a->to_user == NULL ||
	    (a->oauth && strcmp(a->oauth, "xoauth2") != 0 && strcmp(a->oauth, "oauthbearer") != 0))
		return -1;
	return 0;
}

/* Fill the endpoints from the arguments and [migrate]; false after saying why. */
static bool endpoints(struct cli *cli, const struct mail_args *a, struct mig_mail_opts *o)
{
	const struct mig_preset *pre = mig_preset_find(a->from);
	const char *to = a->to ? a->to : cli->cfg.migrate.destination;

	if (pre != NULL) {
		o->src.host = xstrdup(pre->host);
		o->src.port = xstrdup(pre->port);
		o->src.tls = pre->tls;
		o->src.gmail = pre->gmail;
		o->src.hint = pre->hint;
		if (a->from_host && !parse_server(a->from_host, &o->src, pre->tls)) {
			fprintf(pw_stderr, "postwarden migrate mail: --from-host: not HOST[:PORT]\n");
			return false;
		}
	} else if (!parse_server(a->from, &o->src, IMAP_TLS_IMPLICIT)) {
		fprintf(pw_stderr, "postwarden migrate mail: --from: not imaps://HOST[:PORT], "
			"imap://HOST[:PORT] or a preset (%s)\n", mig_preset_names());
		return false;
	}
	if (to == NULL || *to == '\0') {
		fprintf(pw_stderr, "postwarden migrate mail: no destination: give --to or set "
			"[migrate] destination\n");
		return false;
	}
	if (!parse_server(to, &o->dst, IMAP_TLS_IMPLICIT)) {
		fprintf(pw_stderr, "postwarden migrate mail: --to: not imaps://HOST[:PORT]\n");
		return false;
	}
	o->src.user = xstrdup(a->from_user);
	o->src.auth = IMAP_AUTH_PASSWORD;
	if (a->token_fd >= 0)
		o->src.auth = (a->oauth ? strcmp(a->oauth, "xoauth2") == 0 : (pre && pre->gmail)) ?
			      IMAP_AUTH_XOAUTH2 : IMAP_AUTH_OAUTHBEARER;
	/* Dovecot's master user login: "user*master" with the master's password */
	o->dst.user = a->master ? xasprintf("%s*%s", a->to_user, a->master) : xstrdup(a->to_user);
	o->dst.auth = IMAP_AUTH_PASSWORD;
	return true;
}

static void endpoint_free(struct mig_endpoint *e)
{
	free(e->host);
	free(e->port);
	free(e->user);
}

/* Run the workers to the end, drawing progress and saving folder state as they go. */
static void run_job(struct mig_mail *m, struct db *db, int64_t job, struct view *v, double t0)
{
	pthread_t th[16];
	int n, running;
	struct mig_progress p;

	mig_mail_start(m, th, &n);
	running = n;
	while (running > 0) {
		running = mig_mail_wait(th, n, 250 * 1000 * 1000);
		(void)mig_job_save(db, job, m);
		mig_mail_progress(m, &p);
		if (now_s() - v->last >= (v->json ? 1.0 : 0.25) || running == 0) {
			show_progress(v, &p, t0, running == 0);
			v->last = now_s();
		}
	}
}

static int cli_migrate_mail(struct cli *cli, int argc, char **argv)
{
	struct mail_args a;
	struct mig_mail_opts o = { 0 };
	struct mig_cred *src_cred = NULL, *dst_cred = NULL;
	struct mig_mail m;
	struct view v = { 0 };
	struct db *db = NULL;
	int64_t job = 0;
	int rc = 1;
	const char *state;
	double t0 = now_s();
	bool prepared;

	if (cli_wants_help(argc, argv)) {
		printf("usage: postwarden %s\n", mail_usage);
		return 0;
	}
	if (parse_mail_args(argc, argv, &a) < 0)
		return cli_usage(mail_usage);
	if (!endpoints(cli, &a, &o))
		goto out;
	/* the passwords are in memory: no core file, no ptrace by other processes of the user */
	{
		struct rlimit no_core = { 0, 0 };

		(void)setrlimit(RLIMIT_CORE, &no_core);
		(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	}
	/* a server that drops the connection must fail a write, not end the process */
	signal(SIGPIPE, SIG_IGN);
	v.json = a.json || !isatty(STDOUT_FILENO);
	v.tty = isatty(STDERR_FILENO);
	src_cred = a.token_fd >= 0 ? get_cred(a.token_fd, "")
				   : get_cred(a.pw_fd, "Password at the old provider: ");
	if (src_cred == NULL)
		goto out;
	dst_cred = get_cred(a.to_pw_fd, a.master ? "Master user's password: "
						 : "Password at the destination: ");
	if (dst_cred == NULL)
		goto out;
	o.src.cred = src_cred;
	o.dst.cred = dst_cred;
	o.ca_file = cli->cfg.migrate.ca_file[0] ? cli->cfg.migrate.ca_file : NULL;
	o.connections = a.connections ? a.connections : (int)cli->cfg.migrate.connections;
	o.timeout = (int)cli->cfg.migrate.timeout;
	o.max_message = cli->cfg.migrate.max_message_size;
	o.no_compress = a.no_compress;
	o.compress_local = a.compress_local;
	o.delete_source = a.delete_source;
	o.hosts = cli->cfg.migrate.hosts;
	o.allow_private = cli->cfg.migrate.allow_private;
	if ((db = cli_open_db(cli)) == NULL)
		goto out;
	if (a.job > 0) {
		int found = mig_job_check(db, a.job, a.to_user);

		if (found <= 0) {
			fprintf(pw_stderr, "postwarden migrate mail: %s\n", found < 0 ?
				"the database cannot be read" : "no such job for this destination user");
			goto out;
		}
		job = a.job;
	} else if ((job = mig_job_create(db, "mail", a.to_user)) < 0) {
		fprintf(pw_stderr, "postwarden migrate mail: cannot record the job in the database\n");
		goto out;
	}
	prepared = mig_mail_prepare(&m, &o);
	if (prepared && mig_job_load(db, job, &m) == 0)
		run_job(&m, db, job, &v, t0);
	(void)mig_job_save(db, job, &m);
	struct mig_progress p;

	mig_mail_progress(&m, &p);
	state = m.fatal ? "failed" : p.failed > 0 || p.folders_done < p.folders_total ? "partial" : "done";
	for (size_t i = 0; i < m.nfolders && strcmp(state, "done") == 0; i++)
		if (m.folders[i].error)
			state = "partial";
	(void)mig_job_finish(db, job, state, &p, m.fatal);
	summary(&v, &m, job, state, now_s() - t0);
	if (m.fatal && !v.json)
		fprintf(pw_stderr, "postwarden migrate mail: %s\n", m.fatal);
	rc = strcmp(state, "done") == 0 ? 0 : 1;
	mig_mail_free(&m);
out:
	mig_cred_free(src_cred);
	mig_cred_free(dst_cred);
	endpoint_free(&o.src);
	endpoint_free(&o.dst);
	return cli_close_db(db, rc);
}

int cli_migrate(struct cli *cli, int argc, char **argv)
{
	static const char usage[] = "migrate mail ... (see 'postwarden migrate mail --help')\n"
		"       postwarden migrate contacts ... (see 'postwarden migrate contacts --help')";

	if (argc < 2)
		return cli_usage(usage);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("usage: postwarden %s\n", mail_usage);
		return 0;
	}
	if (strcmp(argv[1], "mail") == 0)
		return cli_migrate_mail(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "contacts") == 0) {
		if (cli->cfg.path)
			cli_migrate_contacts_use_config(&cli->cfg);
		return cli_migrate_contacts(argc - 1, argv + 1);
	}
	return cli_usage(usage);
}
