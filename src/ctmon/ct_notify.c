/*
 * ct_notify.c - the alert document, the webhook's POST and hook commands; see ct_notify.h.
 *
 * A hook runs as a child process beside the loop: everything it needs (argv, environment,
 * descriptors) is made before fork, because serve has threads and the child may only
 * call async-signal-safe functions before execve. Its standard input is fed from the loop
 * through a non-blocking socket (a document may be larger than its buffer), its exit
 * is reaped when the loop sees SIGCHLD, and a timer kills its process group if it runs
 * too long.
 */

#include "ct_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ctmon/ct_store.h"
#include "log.h"
#include "xmalloc.h"

extern char **environ;

bool ct_notify_is_health(const char *kind)
{
	return strcmp(kind, CT_HEALTH_LOG_STALE) == 0 || strcmp(kind, CT_HEALTH_LIST_STALE) == 0 ||
	       strcmp(kind, CT_HEALTH_BACKLOG) == 0;
}

/* ---- the document ------------------------------------------------------------------- */

/* t as RFC 3339 ("2024-01-26T03:47:26Z") or certspotter's human form. */
static void ct_time_text(int64_t t, bool rfc3339, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "%" PRId64, t);
		return;
	}
	strftime(buf, len, rfc3339 ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
}

/* "a, b,c" as ["a", "b", "c"]. */
static json_t *ct_names_array(const char *names)
{
	json_t *arr = json_array();
	char *copy = xstrdup(names), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		for (char *e = t + strlen(t); e > t && e[-1] == ' '; )
			*--e = '\0';
		if (*t)
			json_array_append_new(arr, json_string(t));
	}
	free(copy);
	return arr;
}

static json_t *ct_finding_document(struct db *db, int64_t id)
{
	json_t *f = ct_store_finding_json(db, id);
	char tbs[65], when[40];

	if (f == NULL)
		return NULL;
	json_object_set_new(f, "kind", json_string("finding"));
	json_object_set_new(f, "names", ct_names_array(json_string_value(
		json_object_get(f, "names"))));
	if (ct_store_finding_identity(db, id, tbs))
		json_object_set_new(f, "tbs_sha256", json_string(tbs));
	ct_time_text(json_integer_value(json_object_get(f, "not_before")), true, when,
		     sizeof(when));
	json_object_set_new(f, "not_before_rfc3339", json_string(when));
	ct_time_text(json_integer_value(json_object_get(f, "not_after")), true, when,
		     sizeof(when));
	json_object_set_new(f, "not_after_rfc3339", json_string(when));
	json_object_del(f, "acked_at");
	return f;
}

static json_t *ct_alert_document(struct db *db, int64_t id)
{
	json_t *a = ct_store_alert_json(db, id);
	const char *kind, *ev;

	if (a == NULL)
		return NULL;
	kind = json_string_value(json_object_get(a, "kind"));
	/* kind is borrowed from a: it is read before "kind" is replaced */
	json_object_set_new(a, "alert", json_string(kind));
	json_object_set_new(a, "class", json_string(ct_notify_is_health(kind) ? "health" : "log"));
	json_object_set_new(a, "kind", json_string("alert"));
	if (!json_object_get(a, "log_id"))
		json_object_set_new(a, "log_id", json_null());
	ev = json_string_value(json_object_get(a, "evidence"));
	if (ev != NULL && strlen(ev) > CT_NOTIFY_DOC_MAX / 2) {
		/* the whole evidence stays in the database (ct_alerts.evidence) */
		char *cut = xstrndup(ev, CT_NOTIFY_DOC_MAX / 2);

		json_object_set_new(a, "evidence", json_string(cut));
		json_object_set_new(a, "evidence_truncated", json_true());
		free(cut);
	}
	return a;
}

json_t *ct_notify_document(struct db *db, const char *item, int64_t id)
{
	return strcmp(item, "finding") == 0 ? ct_finding_document(db, id)
					    : ct_alert_document(db, id);
}

char *ct_notify_text(const json_t *doc)
{
	char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

	if (s == NULL)
		fatalx("cannot encode an alert document");
	return s;
}

static const char *ct_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static bool ct_is_finding(const json_t *doc)
{
	return strcmp(ct_str(doc, "kind"), "finding") == 0;
}

/* The names of a finding's document, comma-separated (caller frees). */
static char *ct_names_text(const json_t *doc)
{
	json_t *names = json_object_get(doc, "names");
	size_t cap = 1;
	char *out;

	for (size_t i = 0; i < json_array_size(names); i++)
		cap += strlen(json_string_value(json_array_get(names, i))) + 1;
	out = xcalloc(1, cap);
	for (size_t i = 0; i < json_array_size(names); i++) {
		if (i > 0)
			strcat(out, ",");
		strcat(out, json_string_value(json_array_get(names, i)));
	}
	return out;
}

char *ct_notify_summary(const json_t *doc)
{
	char *names, *s;

	if (!ct_is_finding(doc))
		return xasprintf("%s alert %s: %s", ct_str(doc, "class"), ct_str(doc, "alert"),
				 ct_str(doc, "message"));
	names = ct_names_text(doc);
	s = xasprintf("unexpected certificate discovered for %s (%s)", names,
		      ct_str(doc, "verdict"));
	free(names);
	return s;
}

/* ---- the hook's environment --------------------------------------------------------- */

struct ct_env {
	char **v;
	size_t n;
};

static void ct_env_add(struct ct_env *e, const char *name, const char *value)
{
	e->v = xreallocarray(e->v, e->n + 2, sizeof(*e->v));
	e->v[e->n++] = xasprintf("%s=%s", name, value);
	e->v[e->n] = NULL;
}

static void ct_env_time(struct ct_env *e, const char *name, int64_t t)
{
	char buf[48], *n;

	ct_time_text(t, false, buf, sizeof(buf));
	ct_env_add(e, name, buf);
	snprintf(buf, sizeof(buf), "%" PRId64, t);
	n = xasprintf("%s_UNIXTIME", name);
	ct_env_add(e, n, buf);
	free(n);
	ct_time_text(t, true, buf, sizeof(buf));
	n = xasprintf("%s_RFC3339", name);
	ct_env_add(e, n, buf);
	free(n);
}

static void ct_env_finding(struct ct_env *e, const json_t *doc)
{
	json_t *first = json_array_get(json_object_get(doc, "seen_in"), 0);
	char num[24], *names = ct_names_text(doc);

	ct_env_add(e, "EVENT", "discovered_cert");
	snprintf(num, sizeof(num), "%" PRId64, (int64_t)json_integer_value(json_object_get(doc,
		 "id")));
	ct_env_add(e, "FINDING_ID", num);
	if (first != NULL) {
		/* certspotter names one log entry: the first one this finding was seen in */
		ct_env_add(e, "LOG_URI", ct_str(first, "log_url"));
		snprintf(num, sizeof(num), "%" PRId64,
			 (int64_t)json_integer_value(json_object_get(first, "index")));
		ct_env_add(e, "ENTRY_INDEX", num);
	}
	ct_env_add(e, "TBS_SHA256", ct_str(doc, "tbs_sha256"));
	ct_env_add(e, "PUBKEY_SHA256", ct_str(doc, "spki_sha256"));
	ct_env_add(e, "ISSUER_DN", ct_str(doc, "issuer"));
	ct_env_add(e, "SERIAL", ct_str(doc, "serial"));
	ct_env_time(e, "NOT_BEFORE", json_integer_value(json_object_get(doc, "not_before")));
	ct_env_time(e, "NOT_AFTER", json_integer_value(json_object_get(doc, "not_after")));
	ct_env_add(e, "DNS_NAMES", names);
	ct_env_add(e, "VERDICT", ct_str(doc, "verdict"));
	ct_env_add(e, "REASON", ct_str(doc, "reason"));
	free(names);
}

static void ct_env_alert(struct ct_env *e, const json_t *doc)
{
	char num[24];

	ct_env_add(e, "EVENT", "error");
	snprintf(num, sizeof(num), "%" PRId64, (int64_t)json_integer_value(json_object_get(doc,
		 "id")));
	ct_env_add(e, "ALERT_ID", num);
	ct_env_add(e, "ALERT_KIND", ct_str(doc, "alert"));
	ct_env_add(e, "ALERT_CLASS", ct_str(doc, "class"));
	ct_env_add(e, "LOG_ID", ct_str(doc, "log_id"));
	ct_env_add(e, "LOG_URI", ct_str(doc, "log_url"));
	ct_env_add(e, "MESSAGE", ct_str(doc, "message"));
}

char **ct_notify_env(const json_t *doc)
{
	struct ct_env e = { 0 };
	char *summary = ct_notify_summary(doc);

	ct_env_add(&e, "POSTWARDEN_KIND", ct_is_finding(doc) ? "finding" : "alert");
	ct_env_add(&e, "SUMMARY", summary);
	if (ct_is_finding(doc))
		ct_env_finding(&e, doc);
	else
		ct_env_alert(&e, doc);
	free(summary);
	return e.v;
}

void ct_notify_env_free(char **env)
{
	if (env == NULL)
		return;
	for (char **p = env; *p; p++)
		free(*p);
	free(env);
}

/* ---- the webhook -------------------------------------------------------------------- */

static void ct_webhook_done(struct http_response *resp, void *arg)
{
	struct ct_webhook *w = arg;
	char *error = NULL;
	bool ok = resp->result == HTTP_OK && resp->status >= 200 && resp->status <= 299;

	if (resp->result != HTTP_OK)
		error = xasprintf("webhook: %s", resp->error ? resp->error : "no answer");
	else if (!ok)
		error = xasprintf("webhook answered HTTP %ld", resp->status);
	http_response_free(resp);
	w->cb(ok, error, w->arg);	/* may free w */
	free(error);
}

int ct_notify_webhook(struct http_client *http, const char *url, const char *text,
		      struct ct_webhook *w)
{
	struct http_request_opts ro = { .timeout_ms = CT_WEBHOOK_TIMEOUT_MS,
		.max_body = CT_WEBHOOK_RESPONSE_MAX };

	return http_post(http, url, "application/json", text, strlen(text), &ro, ct_webhook_done,
			 w);
}

/* ---- hook commands ------------------------------------------------------------------ */

struct ct_hook_proc {
	struct ct_hooks *hooks;
	struct ct_hook_proc *next;
	pid_t pid;
	int in_fd;			/* the write end of its standard input, or -1 */
	struct event *wev, *timer;
	char *text;
	size_t len, off;
	bool killed;
	int status;			/* from waitpid, once it exited */
	ct_notify_cb cb;
	void *arg;
};

struct ct_hooks {
	struct event_base *base;
	struct event *sigchld;
	struct ct_hook_proc *procs;
};

static void ct_hook_close_input(struct ct_hook_proc *p)
{
	if (p->wev != NULL) {
		event_free(p->wev);
		p->wev = NULL;
	}
	if (p->in_fd >= 0) {
		close(p->in_fd);
		p->in_fd = -1;
	}
}

static void ct_hook_proc_free(struct ct_hook_proc *p)
{
	ct_hook_close_input(p);
	if (p->timer != NULL)
		event_free(p->timer);
	free(p->text);
	free(p);
}

/* The document goes to the command's standard input as fast as it reads it. */
static void ct_hook_write(evutil_socket_t fd, short what, void *arg)
{
	struct ct_hook_proc *p = arg;
	ssize_t n;

	(void)what;
	n = send(fd, p->text + p->off, p->len - p->off, MSG_NOSIGNAL);
	if (n > 0)
		p->off += (size_t)n;
	else if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0 || p->off == p->len)
		ct_hook_close_input(p);	/* all of it, or the command closed its input */
}

static void ct_hook_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ct_hook_proc *p = arg;

	(void)fd;
	(void)what;
	log_warn("event=ct_hook_timeout pid=%ld seconds=%d", (long)p->pid,
		 CT_HOOK_TIMEOUT_SECONDS);
	p->killed = true;
	kill(-p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
}

/* One command ended with status: its callback, after it left the list. */
static void ct_hook_ended(struct ct_hook_proc *p, int status)
{
	char *error = NULL;
	bool ok = !p->killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (p->killed)
		error = xasprintf("hook killed after %d s", CT_HOOK_TIMEOUT_SECONDS);
	else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		error = xasprintf("hook exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		error = xasprintf("hook killed by signal %d", WTERMSIG(status));
	p->cb(ok, error, p->arg);
	free(error);
	ct_hook_proc_free(p);
}

static void ct_hooks_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct ct_hooks *h = arg;
	struct ct_hook_proc **pp = &h->procs, *done = NULL;

	(void)fd;
	(void)what;
	/* collect first: a callback may start another command */
	while (*pp != NULL) {
		struct ct_hook_proc *p = *pp;
		int status = 0;

		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			*pp = p->next;
			p->next = done;
			p->status = status;
			done = p;
		} else {
			pp = &p->next;
		}
	}
	while (done != NULL) {
		struct ct_hook_proc *p = done;

		done = p->next;
		ct_hook_ended(p, p->status);
	}
}

struct ct_hooks *ct_hooks_new(struct event_base *base)
{
	struct ct_hooks *h = xcalloc(1, sizeof(*h));

	h->base = base;
	h->sigchld = evsignal_new(base, SIGCHLD, ct_hooks_sigchld, h);
	if (h->sigchld == NULL || event_add(h->sigchld, NULL) < 0)
		fatalx("cannot watch SIGCHLD for the CT monitor's hook");
	return h;
}

void ct_hooks_free(struct ct_hooks *h)
{
	if (h == NULL)
		return;
	while (h->procs != NULL) {
		struct ct_hook_proc *p = h->procs;

		h->procs = p->next;
		kill(-p->pid, SIGKILL);
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
		ct_hook_proc_free(p);
	}
	event_free(h->sigchld);
	free(h);
}

size_t ct_hooks_running(const struct ct_hooks *h)
{
	size_t n = 0;

	for (const struct ct_hook_proc *p = h ? h->procs : NULL; p; p = p->next)
		n++;
	return n;
}

/* environ with env's names replaced or added: a new array of borrowed strings. */
static char **ct_hook_envp(char **env)
{
	size_t n = 0, m = 0, k = 0;
	char **out;

	while (environ[n])
		n++;
	while (env[m])
		m++;
	out = xcalloc(n + m + 1, sizeof(*out));
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
		bool replaced = false;

		for (size_t j = 0; j < m && !replaced; j++)
			replaced = strncmp(env[j], environ[i], len) == 0;
		if (!replaced)
			out[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		out[k++] = env[j];
	out[k] = NULL;
	return out;
}

/* In the child: only async-signal-safe calls, then the command (or exit 127). */
static void ct_hook_child(int in, int out, char *const argv[], char **envp)
{
	sigset_t none;

	setpgid(0, 0);		/* its own group: a timeout kills what it started too */
	signal(SIGPIPE, SIG_DFL);	/* serve ignores it; a shell script expects the default */
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0)
		_exit(127);
	execve("/bin/sh", argv, envp);
	_exit(127);
}

bool ct_hooks_run(struct ct_hooks *h, const char *command, char **env, const char *text,
		  ct_notify_cb cb, void *arg)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	struct timeval tv = { CT_HOOK_TIMEOUT_SECONDS, 0 };
	struct ct_hook_proc *p;
	char **envp;
	int fds[2], devnull;
	pid_t pid;

	/* a socket, not a pipe: MSG_NOSIGNAL, so a command that does not read its input is
	 * no SIGPIPE for the caller, whatever its signal disposition */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return false;
	if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
		close(fds[0]);
		close(fds[1]);
		return false;
	}
	envp = ct_hook_envp(env);
	pid = fork();
	if (pid == 0)
		ct_hook_child(fds[0], devnull, argv, envp);
	free(envp);
	close(fds[0]);
	close(devnull);
	if (pid < 0) {
		close(fds[1]);
		return false;
	}
	setpgid(pid, pid);	/* as the child does: whichever runs first */
	fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
	p = xcalloc(1, sizeof(*p));
	p->hooks = h;
	p->pid = pid;
	p->in_fd = fds[1];
	p->text = xstrdup(text);
	p->len = strlen(text);
	p->cb = cb;
	p->arg = arg;
	p->wev = event_new(h->base, p->in_fd, EV_WRITE | EV_PERSIST, ct_hook_write, p);
	p->timer = evtimer_new(h->base, ct_hook_timeout, p);
	if (p->wev == NULL || p->timer == NULL)
		fatalx("cannot create the events of a hook command");
	event_add(p->wev, NULL);
	evtimer_add(p->timer, &tv);
	p->next = h->procs;
	h->procs = p;
	log_info("event=ct_hook_start pid=%ld", (long)pid);
	return true;
}

/* ---- the backlog rule --------------------------------------------------------------- */

enum ct_backlog_action ct_backlog_judge(struct ct_backlog *b, int64_t backlog)
{
	enum ct_backlog_action act = CT_BACKLOG_NONE;

	if (b->last >= 0 && backlog > b->last)
		b->grew++;
	else
		b->grew = 0;
	b->last = backlog;
	if (!b->open && b->grew >= CT_BACKLOG_ROUNDS && backlog > CT_BACKLOG_MIN) {
		b->open = true;
		act = CT_BACKLOG_OPEN;
	} else if (b->open && backlog <= CT_BACKLOG_MIN) {
		b->open = false;
		act = CT_BACKLOG_CLOSE;
	}
	return act;
}
