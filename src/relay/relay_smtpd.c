/*
 * relay_smtpd.c - SMTP in: the listener that accepts mail from the provider's MTA.
 *
 * Only clients in [relay] trusted_networks may talk to us; everyone else gets 554 at
 * connect. A message's 250 is sent from the queue's commit callback, i.e. only when data
 * and envelope are on stable storage.
 *
 * Limits and the replies they give:
 *   command line over 512 octets (MAIL/RCPT with parameters: 4096)   500 5.5.2 line too long
 *   message line over 998 octets + CRLF                  500 5.5.2 after the final dot; the
 *       message is read to its end and discarded (RFC 5321 4.5.3.1.6 and 4.5.3.1.10)
 *   SIZE parameter over max_message_size                552 5.3.4 at MAIL
 *   data over max_message_size                          552 5.3.4 after the final dot
 *   more than max_recipients                            452 4.5.3
 *   more than max_connections                           421 4.7.0 at connect, then close
 *   storage short on state_dir (relay_storage.h)          452 4.3.1 at MAIL and at DATA
 *   idle for command_timeout                            421 4.4.2, then close
 *   10 bad commands                                      421 4.7.0, then close
 * Input and output buffers are bounded by bufferevent watermarks: reading stops while a
 * client's unanswered pipelined commands or unread replies pile up.
 *
 * Message data: a line ends at CRLF, bare LF or bare CR (relay_data.c); dot-unstuffed;
 * every line end becomes CRLF. Only CRLF "." CRLF ends the data: a "." line next to a bare
 * line end is content, so a client cannot end a message at a point where a CRLF-strict MTA
 * in front of us saw none (SMTP smuggling). With [relay] bare_newline = reject, data holding
 * a bare CR or LF is read to its end and refused:    550 5.5.2 after the final dot
 */
#include "relay.h"

#include <errno.h>
#include <netinet/in.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "log.h"
#include "netaddr.h"
#include "relay_data.h"
#include "relay_storage.h"
#include "stats.h"
#include "relay_smtp_cmd.h"
#include "xmalloc.h"

#define SMTPD_DATA_LINE_MAX	998
#define SMTPD_INPUT_MAX		(64 * 1024)
#define SMTPD_OUTPUT_MAX	(64 * 1024)
#define SMTPD_MAX_ERRORS	10

enum smtpd_state {
	SMTPD_INIT,		/* before HELO/EHLO */
	SMTPD_READY,		/* no transaction */
	SMTPD_MAIL,		/* MAIL accepted, no recipient yet */
	SMTPD_RCPT,		/* at least one recipient */
	SMTPD_DATA,		/* reading message data */
	SMTPD_COMMIT,		/* waiting for the queue to make the message durable */
	SMTPD_CLOSING,		/* flushing the last reply */
};

struct smtpd_session {
	TAILQ_ENTRY(smtpd_session) entry;
	struct smtpd *smtpd;
	struct bufferevent *bev;	/* the socket, or the TLS filter over it */
	struct bufferevent *raw;	/* the socket below a TLS filter, else NULL */
	char addr[64];
	char *helo;
	bool esmtp;
	bool tls;
	char tls_version[16];
	char tls_cipher[64];
	enum smtpd_state state;
	int errors;
	bool long_line;			/* discarding the rest of an overlong line */
	bool write_blocked;		/* too many replies unread: stop processing input */
	bool committing;		/* a commit callback will arrive */
	bool dead;			/* connection gone, free at the commit callback */
	struct event *flush_timer;
	/* the transaction */
	struct queue_envelope *env;
	struct queue_writer *writer;
	uint64_t declared_size;		/* SIZE= at MAIL, 0 if none */
	uint64_t data_size;
	bool data_too_big;
	bool data_line_too_long;
	bool data_bare;			/* a bare CR or LF, refused (bare_newline = reject) */
	struct data_in din;
};

struct smtpd {
	struct relay *relay;
	struct evconnlistener *listener;
	TAILQ_HEAD(, smtpd_session) sessions;
	size_t nsessions;
	bool stopping;
};

static void smtpd_process(struct smtpd_session *s);
static void smtpd_close(struct smtpd_session *s);
static void smtpd_flush_check(struct smtpd_session *s);
static void smtpd_read_cb(struct bufferevent *bev, void *arg);
static void smtpd_write_cb(struct bufferevent *bev, void *arg);
static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg);

/* Callbacks, input limit and timeouts of a session's (new) bufferevent. */
static void smtpd_setup_bev(struct smtpd_session *s)
{
	struct timeval tv = { (time_t)s->smtpd->relay->cfg->relay.command_timeout, 0 };

	bufferevent_setcb(s->bev, smtpd_read_cb, smtpd_write_cb, smtpd_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_MAX);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static const struct relay_conf *smtpd_conf(const struct smtpd_session *s)
{
	return &s->smtpd->relay->cfg->relay;
}

static const char *smtpd_hostname(const struct smtpd_session *s)
{
	return s->smtpd->relay->cfg->server.hostname;
}

/* Queue one reply line (CRLF added). */
__attribute__((format(printf, 2, 3)))
static void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* ---- the transaction ----------------------------------------------------------------- */

static void smtpd_reset(struct smtpd_session *s)
{
	queue_envelope_free(s->env);
	s->env = NULL;
	queue_writer_abort(s->writer);
	s->writer = NULL;
	if (s->state != SMTPD_CLOSING)
		s->state = s->helo ? SMTPD_READY : SMTPD_INIT;
}

/* Count a rejected command; true when the client has used up its errors (421 sent). */
static bool smtpd_error(struct smtpd_session *s)
{
	if (++s->errors < SMTPD_MAX_ERRORS)
		return false;
	log_warn("event=smtpd_too_many_errors client=%s", s->addr);
	smtpd_reply(s, "421 4.7.0 %s Error: too many errors", smtpd_hostname(s));
	smtpd_close(s);
	return true;
}

static void smtpd_ehlo(struct smtpd_session *s, struct smtp_cmd *cmd)
{
	const char *host = smtpd_hostname(s);

	smtpd_reset(s);
	free(s->helo);
	s->helo = cmd->arg;
	cmd->arg = NULL;
	s->esmtp = cmd->verb == SMTP_EHLO;
	s->state = SMTPD_READY;
	if (!s->esmtp) {
		smtpd_reply(s, "250 %s", host);
		return;
	}
	smtpd_reply(s, "250-%s", host);
	smtpd_reply(s, "250-PIPELINING");
	smtpd_reply(s, "250-SIZE %llu", (unsigned long long)smtpd_conf(s)->max_message_size);
	if (s->smtpd->relay->server_ctx && !s->tls)
		smtpd_reply(s, "250-STARTTLS");
	smtpd_reply(s, "250-ENHANCEDSTATUSCODES");
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-DSN");
	/* RFC 8689 4.1: offered only over TLS, so that a client never sends it in the clear */
	if (s->tls)
		smtpd_reply(s, "250-REQUIRETLS");
	smtpd_reply(s, "250 SMTPUTF8");
}

/*
 * Is there room for the message? Asked at MAIL and again at DATA, so that a message is
 * refused with 452 before its data rather than lost or refused after it (RFC 5321 4.5.3.1.9).
 */
static bool smtpd_storage_ok(struct smtpd_session *s)
{
	if (storage_accepts(queue_storage(s->smtpd->relay->queue), s->declared_size))
		return true;
	if (storage_db_away(queue_storage(s->smtpd->relay->queue))) {
		log_debug("event=smtpd_refused client=%s reason=database", s->addr);
		smtpd_reply(s, "451 4.3.0 Account database unavailable, try again later");
		return false;
	}
	log_debug("event=smtpd_refused client=%s reason=storage", s->addr);
	smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	return false;
}

static void smtpd_mail(struct smtpd_session *s, struct smtp_cmd *cmd)
{
	struct queue_envelope *env;

	if (s->state == SMTPD_INIT) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		smtpd_error(s);
		return;
	}
	if (s->state != SMTPD_READY) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		smtpd_error(s);
		return;
	}
	if (cmd->has_size && cmd->size > smtpd_conf(s)->max_message_size) {
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (cmd->requiretls && !s->tls) {
		smtpd_reply(s, "530 5.7.10 REQUIRETLS needs a TLS connection: STARTTLS first");
		return;
	}
	s->declared_size = cmd->has_size ? cmd->size : 0;
	if (!smtpd_storage_ok(s))
		return;
	env = s->env = xcalloc(1, sizeof(*env));
	env->sender = cmd->path;
	cmd->path = NULL;
	env->envid = cmd->envid;
	cmd->envid = NULL;
	if (cmd->ret != SMTP_RET_NONE)
		env->ret = xstrdup(cmd->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (cmd->body != SMTP_BODY_NONE)
		env->body = xstrdup(cmd->body == SMTP_BODY_7BIT ? "7BIT" : "8BITMIME");
	env->smtputf8 = cmd->smtputf8;
	env->requiretls = cmd->requiretls;
	s->state = SMTPD_MAIL;
	smtpd_reply(s, "250 2.1.0 Ok");
}

static void smtpd_rcpt(struct smtpd_session *s, struct smtp_cmd *cmd)
{
	struct queue_envelope *env = s->env;
	struct queue_rcpt *r;

	if (s->state != SMTPD_MAIL && s->state != SMTPD_RCPT) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		smtpd_error(s);
		return;
	}
	if (env->nrcpt >= smtpd_conf(s)->max_recipients) {
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	env->rcpts = xreallocarray(env->rcpts, env->nrcpt + 1, sizeof(*env->rcpts));
	r = &env->rcpts[env->nrcpt++];
	r->addr = cmd->path;
	cmd->path = NULL;
	r->orcpt = cmd->orcpt;
	cmd->orcpt = NULL;
	r->notify = smtp_notify_string(cmd->notify);
	s->state = SMTPD_RCPT;
	smtpd_reply(s, "250 2.1.5 Ok");
}

/* The Received: header field we put in front of the message (RFC 5321 4.4). */
static void smtpd_received(struct smtpd_session *s, const char *id)
{
	char date[64], *hdr, *tls = NULL;
	const char *with = s->esmtp ? (s->tls ? "ESMTPS" : "ESMTP") : "SMTP";
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (s->tls)
		tls = xasprintf("\r\n\t(using %s with cipher %s)", s->tls_version, s->tls_cipher);
	hdr = xasprintf("Received: from %s ([%s])%s\r\n\tby %s (postwarden) with %s id %s%s%s%s;\r\n"
			"\t%s\r\n",
			s->helo, s->addr, tls ? tls : "", smtpd_hostname(s), with, id,
			s->env->nrcpt == 1 ? "\r\n\tfor <" : "",
			s->env->nrcpt == 1 ? s->env->rcpts[0].addr : "",
			s->env->nrcpt == 1 ? ">" : "", date);
	queue_writer_add(s->writer, hdr, strlen(hdr));
	free(hdr);
	free(tls);
}

static void smtpd_data(struct smtpd_session *s)
{
	if (s->state == SMTPD_MAIL) {
		smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
		smtpd_error(s);
		return;
	}
	if (s->state != SMTPD_RCPT) {
		smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
		smtpd_error(s);
		return;
	}
	if (!smtpd_storage_ok(s)) {
		smtpd_reset(s);
		return;
	}
	s->writer = queue_writer_new(s->smtpd->relay->queue);
	smtpd_received(s, queue_writer_id(s->writer));
	s->data_size = 0;
	s->data_too_big = false;
	s->data_line_too_long = false;
	s->data_bare = false;
	data_in_init(&s->din);
	s->state = SMTPD_DATA;
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void smtpd_committed(const char *id, bool ok, const char *why, void *arg)
{
	struct smtpd_session *s = arg;

	s->committing = false;
	if (s->dead) {
		if (ok)
			log_warn("event=smtpd_lost_reply id=%s client=%s", id, s->addr);
		free(s);
		return;
	}
	if (s->state != SMTPD_COMMIT)
		return;		/* closing after a timeout: the 421 was the last word */
	if (ok) {
		log_info("event=smtpd_received id=%s client=%s helo=%s tls=%s", id, s->addr, s->helo,
			 s->tls ? s->tls_version : "none");
		stats_accepted();
		smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
	} else {
		smtpd_reply(s, "451 4.3.0 %s", why ? why : "Error: queue file write error");
	}
	smtpd_reset(s);
	if (s->smtpd->stopping)
		return;
	smtpd_process(s);
	if (s->state == SMTPD_CLOSING)
		smtpd_flush_check(s);
}

/* The final dot: reply now for a refused message, or hand the message to the queue. */
static void smtpd_data_end(struct smtpd_session *s)
{
	struct queue_writer *w = s->writer;

	s->writer = NULL;
	if (s->data_line_too_long || s->data_too_big || s->data_bare) {
		const char *reason = s->data_bare ? "bare_newline" :
				     s->data_too_big ? "size" : "line_length";

		queue_writer_abort(w);
		if (s->data_bare)
			smtpd_reply(s, "550 5.5.2 Error: bare <CR> or <LF> received");
		else if (s->data_line_too_long)
			smtpd_reply(s, "500 5.5.2 Error: message line too long (limit %d characters)",
				    SMTPD_DATA_LINE_MAX);
		else
			smtpd_reply(s, "552 5.3.4 Error: message too big (limit %llu bytes)",
				    (unsigned long long)smtpd_conf(s)->max_message_size);
		log_info("event=smtpd_refused client=%s reason=%s", s->addr, reason);
		smtpd_reset(s);
		return;
	}
	if (s->din.bare)
		log_debug("event=smtpd_bare_newline client=%s lines=%u action=normalized", s->addr,
			  s->din.bare);
	s->state = SMTPD_COMMIT;
	s->committing = true;
	queue_writer_commit(w, s->env, smtpd_committed, s);
}

/* ---- reading lines --------------------------------------------------------------------- */

/*
 * Take one command line of at most max octets (without line end) from the input into buf
 * (max + 3 bytes). Returns 1 with *len, *crlf and *too_long set, or 0 when no complete line
 * is there yet. An overlong line is discarded as it arrives and reported when its end comes.
 */
static int smtpd_getline(struct smtpd_session *s, char *buf, size_t max, size_t *len, bool *crlf,
			 bool *too_long)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	size_t n;

	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > max + 1) {
			evbuffer_drain(in, evbuffer_get_length(in));
			s->long_line = true;
		}
		return 0;
	}
	n = (size_t)eol.pos;
	*too_long = s->long_line || n > max + 1;
	s->long_line = false;
	if (*too_long) {
		evbuffer_drain(in, n + 1);
		*len = 0;
		*crlf = true;
		return 1;
	}
	evbuffer_remove(in, buf, n + 1);
	*crlf = n > 0 && buf[n - 1] == '\r';
	*len = *crlf ? n - 1 : n;
	if (*len > max) {
		*too_long = true;
		*len = 0;
	}
	buf[*len] = '\0';
	return 1;
}

/* One line of message data (len octets, then its line end eol at line[len]). */
static void smtpd_data_line(struct smtpd_session *s, const char *line, size_t len,
			    enum data_eol eol)
{
	const struct relay_conf *rc = smtpd_conf(s);

	if (data_in_line(&s->din, &line, &len, eol)) {
		smtpd_data_end(s);
		return;
	}
	if (eol != DATA_EOL_CRLF && strcmp(rc->bare_newline, "reject") == 0)
		s->data_bare = true;
	s->data_size += len + 2;
	if (s->data_size > rc->max_message_size)
		s->data_too_big = true;
	if (s->data_too_big || s->data_line_too_long || s->data_bare)
		return;
	/* a failure shows at commit */
	if (eol == DATA_EOL_CRLF) {
		queue_writer_add(s->writer, line, len + 2);
	} else {
		queue_writer_add(s->writer, line, len);
		queue_writer_add(s->writer, "\r\n", 2);
	}
}

/*
 * Handle the complete lines of message data in the input: a line ends at CRLF, bare LF or
 * bare CR (data_split). CRLF lines go to the spool straight from the input buffer, the
 * others with a CRLF put in place of their line end. Returns at the end of the data or when
 * no complete line is left.
 */
static void smtpd_data_lines(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (s->state == SMTPD_DATA) {
		size_t avail = evbuffer_get_length(in), want = SMTPD_DATA_LINE_MAX + 2;
		size_t len = 0, consumed = 0;
		enum data_eol eol = DATA_EOL_CRLF;
		/* the first CR or LF; only up to it (and the octet after) is made contiguous, so
		 * a line costs a copy only when it spans two of the buffer's chains */
		struct evbuffer_ptr end = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_ANY);
		const char *p;
		enum data_split_rc rc;

		if (end.pos < 0 && avail <= SMTPD_DATA_LINE_MAX + 1)
			return;		/* no line end yet, and not too long yet */
		if (end.pos >= 0 && (size_t)end.pos + 2 < want)
			want = (size_t)end.pos + 2;
		if (want > avail)
			want = avail;
		p = (const char *)evbuffer_pullup(in, (ev_ssize_t)want);
		rc = data_split(p, want, SMTPD_DATA_LINE_MAX, &len, &consumed, &eol);
		if (rc == DATA_SPLIT_MORE)
			return;
		if (rc == DATA_SPLIT_LONG) {
			s->long_line = true;	/* discarded as it arrives, reported at its end */
		} else if (s->long_line) {
			s->long_line = false;
			s->data_line_too_long = true;
			s->din.prev_crlf = eol == DATA_EOL_CRLF;
		} else {
			smtpd_data_line(s, p, len, eol);
		}
		evbuffer_drain(in, consumed);
	}
}

static void smtpd_starttls(struct smtpd_session *s)
{
	struct relay *relay = s->smtpd->relay;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tls;
	SSL *ssl;

	if (relay->server_ctx == NULL || s->tls) {
		smtpd_reply(s, s->tls ? "554 5.5.1 Error: TLS already active"
				      : "502 5.5.1 Error: command not implemented");
		smtpd_error(s);
		return;
	}
	if (s->state == SMTPD_MAIL || s->state == SMTPD_RCPT) {
		smtpd_reply(s, "503 5.5.1 Error: STARTTLS inside a mail transaction");
		smtpd_error(s);
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	/* Whatever the client sent after STARTTLS in plaintext must not count (CVE-2011-0411). */
	evbuffer_drain(in, evbuffer_get_length(in));
	smtpd_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->state = SMTPD_INIT;
	s->long_line = false;
	s->tls = true;
	ssl = SSL_new(relay->server_ctx);
	if (ssl == NULL) {
		log_error("event=smtpd_tls_error client=%s error=SSL_new", s->addr);
		smtpd_close(s);
		return;
	}
	tls = bufferevent_openssl_filter_new(relay->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (tls == NULL) {
		log_error("event=smtpd_tls_error client=%s error=filter", s->addr);
		SSL_free(ssl);
		smtpd_close(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tls, 1);
	s->raw = s->bev;
	s->bev = tls;
	smtpd_setup_bev(s);
}

/* One command line. */
static void smtpd_command(struct smtpd_session *s, const char *line, size_t len, bool too_long)
{
	struct smtp_cmd cmd;
	int rc;

	if (too_long) {
		smtpd_reply(s, "500 5.5.2 Error: line too long");
		smtpd_error(s);
		return;
	}
	rc = smtp_cmd_parse(line, len, s->env && s->env->smtputf8, &cmd);
	if (rc) {
		log_debug("event=smtpd_bad_command client=%s reply=\"%s\"", s->addr, cmd.error);
		smtpd_reply(s, "%s", cmd.error);
		smtpd_error(s);
		return;
	}
	switch (cmd.verb) {
	case SMTP_HELO:
	case SMTP_EHLO:
		smtpd_ehlo(s, &cmd);
		break;
	case SMTP_MAIL:
		smtpd_mail(s, &cmd);
		break;
	case SMTP_RCPT:
		smtpd_rcpt(s, &cmd);
		break;
	case SMTP_DATA:
		smtpd_data(s);
		break;
	case SMTP_RSET:
		smtpd_reset(s);
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_NOOP:
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_QUIT:
		smtpd_reply(s, "221 2.0.0 Bye");
		smtpd_close(s);
		break;
	case SMTP_VRFY:
		smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
		break;
	case SMTP_HELP:
		smtpd_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s",
			    s->smtpd->relay->server_ctx ? " STARTTLS" : "");
		break;
	case SMTP_STARTTLS:
		smtpd_starttls(s);
		break;
	}
	smtp_cmd_free(&cmd);
}

/* Handle every complete line in the input, as far as the state allows. */
static void smtpd_process(struct smtpd_session *s)
{
	char line[SMTP_CMD_MAX_PARAMS + 3];
	size_t len;
	bool crlf, too_long;

	while (s->state != SMTPD_COMMIT && s->state != SMTPD_CLOSING) {
		bool tls = s->tls;

		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTPD_OUTPUT_MAX) {
			s->write_blocked = true;
			return;
		}
		if (s->state == SMTPD_DATA) {
			smtpd_data_lines(s);
			if (s->state == SMTPD_DATA)
				return;		/* no complete line left */
			continue;
		}
		if (!smtpd_getline(s, line, SMTP_CMD_MAX_PARAMS, &len, &crlf, &too_long))
			return;
		smtpd_command(s, line, len, too_long);
		if (s->tls != tls)
			return;		/* STARTTLS: the input is now the TLS filter's */
	}
}

/* ---- the connection -------------------------------------------------------------------- */

/* Release everything but the struct itself when a commit callback is still to come. */
static void smtpd_session_free(struct smtpd_session *s)
{
	TAILQ_REMOVE(&s->smtpd->sessions, s, entry);
	s->smtpd->nsessions--;
	log_debug("event=smtpd_disconnect client=%s", s->addr);
	if (s->flush_timer)
		event_free(s->flush_timer);
	bufferevent_free(s->bev);	/* frees the socket below a TLS filter too */
	queue_writer_abort(s->writer);
	queue_envelope_free(s->env);
	free(s->helo);
	if (s->committing) {
		s->dead = true;
		s->env = NULL;
		s->writer = NULL;
		s->helo = NULL;
		return;
	}
	free(s);
}

/* Free the session once its last reply has left (both layers under TLS). */
static void smtpd_flush_check(struct smtpd_session *s)
{
	struct timeval tv = { 0, 20000 };

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return;		/* the write callback comes back */
	if (s->raw && evbuffer_get_length(bufferevent_get_output(s->raw)) > 0) {
		evtimer_add(s->flush_timer, &tv);
		return;
	}
	smtpd_session_free(s);
}

static void smtpd_flush_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	smtpd_flush_check(arg);
}

/* Stop reading and close once the queued replies are sent. */
static void smtpd_close(struct smtpd_session *s)
{
	if (s->state == SMTPD_CLOSING)
		return;
	s->state = SMTPD_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	s->flush_timer = evtimer_new(s->smtpd->relay->base, smtpd_flush_timer_cb, s);
}

static void smtpd_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	smtpd_process(s);
	if (s->state == SMTPD_CLOSING)
		smtpd_flush_check(s);
}

static void smtpd_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	if (s->state == SMTPD_CLOSING) {
		smtpd_flush_check(s);
		return;
	}
	if (s->write_blocked) {
		s->write_blocked = false;
		smtpd_process(s);
		if (s->state == SMTPD_CLOSING)
			smtpd_flush_check(s);
	}
}

static void smtpd_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		if (ssl) {
			snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(ssl));
			snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", SSL_get_cipher_name(ssl));
			log_debug("event=smtpd_tls client=%s version=%s cipher=%s", s->addr,
				  s->tls_version, s->tls_cipher);
		}
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->state != SMTPD_CLOSING) {
		log_info("event=smtpd_timeout client=%s", s->addr);
		smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", smtpd_hostname(s));
		smtpd_close(s);
		smtpd_flush_check(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(bev);
		if (e) {
			char buf[256];
			ERR_error_string_n(e, buf, sizeof(buf));
			log_info("event=smtpd_tls_error client=%s error=\"%s\"", s->addr, buf);
		} else if (errno) {
			log_debug("event=smtpd_error client=%s error=\"%s\"", s->addr, strerror(errno));
		}
	}
	if (s->state == SMTPD_DATA)
		log_info("event=smtpd_lost_connection client=%s state=data", s->addr);
	smtpd_session_free(s);
}

/* Refuse a connection with one reply line, without a session. */
static void smtpd_refuse(evutil_socket_t fd, const char *reply)
{
	ssize_t n = send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)n;
	evutil_closesocket(fd);
}

static void smtpd_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			    int socklen, void *arg)
{
	struct smtpd *d = arg;
	struct relay *relay = d->relay;
	const struct relay_conf *rc = &relay->cfg->relay;
	struct smtpd_session *s;
	char addr[64], *reply;

	sockaddr_ntop(sa, addr, sizeof(addr));
	if (!cidr_list_match(rc->trusted_networks.v, rc->trusted_networks.n, sa)) {
		log_warn("event=smtpd_reject client=%s reason=untrusted", addr);
		reply = xasprintf("554 5.7.1 %s relay access denied\r\n", relay->cfg->server.hostname);
		smtpd_refuse(fd, reply);
		free(reply);
		return;
	}
	if (d->nsessions >= rc->max_connections) {
		log_warn("event=smtpd_reject client=%s reason=too_many_connections", addr);
		reply = xasprintf("421 4.7.0 %s too many connections\r\n", relay->cfg->server.hostname);
		smtpd_refuse(fd, reply);
		free(reply);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->smtpd = d;
	memcpy(s->addr, addr, sizeof(s->addr));
	s->bev = bufferevent_socket_new(relay->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		evutil_closesocket(fd);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&d->sessions, s, entry);
	d->nsessions++;
	log_debug("event=smtpd_connect client=%s", addr);
	smtpd_setup_bev(s);
	smtpd_reply(s, "220 %s ESMTP postwarden", relay->cfg->server.hostname);
}

static void smtpd_listen_error_cb(struct evconnlistener *l, void *arg)
{
	log_error("event=smtpd_accept_error error=\"%s\"", strerror(errno));
}

struct smtpd *smtpd_start(struct relay *relay, char **err)
{
	const struct conf_hostport *hp = &relay->cfg->relay.listen;
	struct addrinfo hints = { 0 }, *res = NULL;
	struct smtpd *d;
	char port[8];
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", hp->port);
	rc = getaddrinfo(hp->host, port, &hints, &res);
	if (rc != 0) {
		*err = xasprintf("cannot resolve listen address %s: %s", hp->host, gai_strerror(rc));
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->relay = relay;
	TAILQ_INIT(&d->sessions);
	d->listener = evconnlistener_new_bind(relay->base, smtpd_accept_cb, d,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
					      LEV_OPT_CLOSE_ON_EXEC, -1, res->ai_addr,
					      (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (d->listener == NULL) {
		*err = xasprintf("cannot listen on %s:%u: %s", hp->host, hp->port, strerror(errno));
		free(d);
		return NULL;
	}
	evconnlistener_set_error_cb(d->listener, smtpd_listen_error_cb);
	return d;
}

void smtpd_stop(struct smtpd *d)
{
	if (d == NULL)
		return;
	d->stopping = true;
	evconnlistener_free(d->listener);
	/* Messages already committing get their 250 into the output before we close. */
	queue_drain(d->relay->queue);
	while (!TAILQ_EMPTY(&d->sessions)) {
		struct smtpd_session *s = TAILQ_FIRST(&d->sessions);
		if (s->raw == NULL)	/* best effort: hand the last replies to the kernel */
			evbuffer_write(bufferevent_get_output(s->bev), bufferevent_getfd(s->bev));
		smtpd_session_free(s);
	}
	free(d);
}
