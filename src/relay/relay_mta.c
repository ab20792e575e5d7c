/*
 * relay_mta.c - SMTP client: one session delivers one job (a message to one domain).
 *
 * Steps: route (relay_mta_route.c: MX lookup -> for each MX: A/AAAA lookup -> TLSA lookup
 * when DANE applies) -> for each address: connect, greeting, EHLO, STARTTLS, TLS handshake,
 * EHLO, MAIL, RCPT..., DATA, body, QUIT. What each DNS answer and each TLS outcome means is
 * decided by relay_policy.c; this file only carries the decisions out. Replies are parsed by
 * relay_reply.c.
 *
 * All callbacks run on the event loop; bufferevents use deferred callbacks so that no
 * callback runs inside a libevent call made by this file (the session may free itself).
 * In probe mode (tls-check) the session stops each host after the TLS handshake and the
 * second EHLO, and tries every MX host instead of stopping at the first that works.
 *
 * The transaction is pipelined (RFC 2920) when the server offers PIPELINING: MAIL, every
 * RCPT and DATA go out in one write and the replies are matched in order. A connection
 * whose transaction ended cleanly is kept idle for a few seconds in the connection cache
 * (relay_mta_cache.c) so that the next job for the same destination reuses it; TLS sessions
 * are kept per MX address (relay_mta_sess.c) so that a new connection can resume one.
 */
#include "relay_mta_priv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "buf.h"
#include "log.h"
#include "relay_data.h"
#include "relay_dsn.h"
#include "relay_reply.h"
#include "relay_smtp_cmd.h"
#include "relay_tlsrpt.h"
#include "stats.h"
#include "xmalloc.h"

#define MTA_INPUT_MAX	(REPLY_MAX_LINE * REPLY_MAX_LINES)
#define MTA_CHUNK	(64 * 1024)	/* spool bytes read per step */

static void mta_next_address(struct mta *m);
static void mta_eventcb(struct bufferevent *bev, short what, void *arg);

const char *mta_outcome_name(enum mta_outcome o)
{
	static const char *const names[] = { "pending", "delivered", "deferred", "held", "bounced" };

	return (unsigned)o < 5 ? names[o] : "unknown";
}

static size_t mta_pending(const struct mta *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->job->nrcpt; i++)
		if (m->job->rcpts[i].outcome == MTA_PENDING)
			n++;
	return n;
}

/* Text for a log field: no quotes, backslashes or control characters. */
static void mta_clean(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || *s == 0x7f)
			*s = '?';
}

/* Give recipient r its outcome, with the host, address and TLS state it was decided on. */
void mta_settle(struct mta *m, struct mta_rcpt *r, enum mta_outcome o, enum policy_reason rc,
		const char *status, const char *reason)
{
	struct mta_host *h = mta_host(m);

	r->outcome = o;
	r->reason_code = rc;
	snprintf(r->status, sizeof(r->status), "%s", status);
	free(r->reason);
	r->reason = xstrdup(reason ? reason : "");
	mta_clean(r->reason);
	free(r->mx);
	r->mx = NULL;
	if (h != NULL)
		r->mx = xstrdup(h->name);
	else if (m->sec_host != NULL)
		r->mx = xstrdup(m->sec_host);
	if (h == NULL || m->bev == NULL) {
		if (h == NULL)
			r->ip[0] = '\0';
	} else if (m->ai < h->naddr) {
		snprintf(r->ip, sizeof(r->ip), "%s", h->addrs[m->ai]);
	}
	snprintf(r->tls_version, sizeof(r->tls_version), "%s", m->conn.tls ? m->conn.tinfo.version : "");
	snprintf(r->tls_cipher, sizeof(r->tls_cipher), "%s", m->conn.tls ? m->conn.tinfo.cipher : "");
	r->dane = m->conn.tls ? m->conn.tinfo.dane : TLS_DANE_RESULT_NONE;
}

/* Settle every pending recipient alike. */
static void mta_settle_pending(struct mta *m, enum mta_outcome o, enum policy_reason rc,
			       const char *status, const char *reason)
{
	for (size_t i = 0; i < m->job->nrcpt; i++)
		if (m->job->rcpts[i].outcome == MTA_PENDING)
			mta_settle(m, &m->job->rcpts[i], o, rc, status, reason);
}

static const char *mta_dane_name(enum tls_dane_result d)
{
	return d == TLS_DANE_RESULT_PASS ? "pass" : d == TLS_DANE_RESULT_FAIL ? "fail" : "none";
}

/* The delivery log: one line per recipient and attempt. */
static void mta_log(struct mta *m)
{
	for (size_t i = 0; i < m->job->nrcpt; i++) {
		struct mta_rcpt *r = &m->job->rcpts[i];

		log_info("event=delivery id=%s rcpt=%s mx=%s addr=%s tls=%s cipher=%s dane=%s "
			 "outcome=%s status=%s guarantee=%s reason=\"%s\"", m->job->msg_id, r->addr,
			 r->mx ? r->mx : "none", r->ip[0] ? r->ip : "none",
			 r->tls_version[0] ? r->tls_version : "none",
			 r->tls_cipher[0] ? r->tls_cipher : "none", mta_dane_name(r->dane),
			 mta_outcome_name(r->outcome), r->status, m->guarantee ? "on" : "off",
			 r->reason ? r->reason : "");
		stats_delivery(mta_outcome_name(r->outcome), policy_reason_name(r->reason_code),
			       r->tls_version, mta_dane_name(r->dane));
	}
}

static void mta_close(struct mta *m)
{
	if (m->bev != NULL) {
		bufferevent_free(m->bev);	/* frees the SSL and the socket too */
		m->bev = NULL;
	}
	if (m->data_fd >= 0) {
		close(m->data_fd);
		m->data_fd = -1;
	}
	m->conn.tls = false;
}

static void mta_free(struct mta *m)
{
	if (m->in_read) {
		mta_close(m);
		m->dead = true;	/* mta_readcb frees it when it returns */
		return;
	}
	mta_close(m);
	mta_sts_free(m);
	for (int i = 0; i < 2; i++)
		if (m->dns_handle[i] > 0)
			dns_cancel(m->relay->dns, m->dns_handle[i]);
	if (m->start_ev)
		event_free(m->start_ev);
	for (size_t i = 0; i < m->nhost; i++) {
		free(m->hosts[i].name);
		dns_strv_free(m->hosts[i].addrs, m->hosts[i].naddr);
		dns_tlsa_free(m->hosts[i].tlsa, m->hosts[i].ntlsa);
	}
	free(m->hosts);
	free(m->sec_host);
	free(m->sec_text);
	free(m->last_text);
	free(m->sent);
	if (m->counted && m->relay->mta_cache != NULL)
		m->relay->mta_cache->nactive--;
	free(m);
}

/* Every recipient has an outcome (or the probe is complete): report and go. */
void mta_finish(struct mta *m)
{
	mta_done_cb cb = m->cb;
	struct mta_job *job = m->job;
	void *arg = m->arg;

	mta_close(m);
	m->state = ST_DONE;
	if (!m->probe)
		mta_log(m);
	mta_free(m);
	cb(job, arg);
}

void mta_cancel(struct mta *m)
{
	if (m != NULL)
		mta_free(m);
}

/* ---- failure bookkeeping ------------------------------------------------------------ */

/*
 * The connection failed after the final dot went out and before its reply: the server may
 * have taken the message. Trying another host could deliver it twice, so every recipient
 * of the transaction is deferred (4.4.2) and tried again later, as Postfix does.
 */
static void mta_dot_lost(struct mta *m, const char *text)
{
	char *t = xasprintf("%s after the message was sent; it may have been delivered, so "
			    "it is tried again later rather than through another host", text);

	mta_settle_pending(m, MTA_DEFERRED, REASON_CONNECT, "4.4.2", t);
	free(t);
	mta_finish(m);
}

/* A cached connection turned out to be dead before MAIL: forget it, start afresh. */
static void mta_reuse_failed(struct mta *m, const char *text)
{
	log_debug("event=mta_reuse_failed id=%s reason=\"%s\"", m->job->msg_id, text);
	mta_close(m);
	for (size_t i = 0; i < m->nhost; i++) {
		free(m->hosts[i].name);
		dns_strv_free(m->hosts[i].addrs, m->hosts[i].naddr);
	}
	free(m->hosts);
	m->hosts = NULL;
	m->nhost = m->hi = m->ai = 0;
	m->reused = false;
	m->conn.plain_only = false;
	mta_route(m);
}

/* Remember a failure of the current host and move on: next address, or next host. */
void mta_host_failed(struct mta *m, enum policy_reason r, const char *text)
{
	struct mta_host *h = mta_host(m);
	struct mta_probe_host *ph = mta_probe_host(m);
	bool security = policy_reason_is_security(r);

	if (m->state == ST_DOT && !m->probe) {
		mta_dot_lost(m, text);
		return;
	}
	if (m->reused && m->state == ST_RSET) {
		mta_reuse_failed(m, text);
		return;
	}
	tlsrpt_note_failure(m, r);	/* while the connection still tells its local address */
	mta_close(m);
	log_debug("event=mta_host_failed id=%s mx=%s reason=%s text=\"%s\"", m->job->msg_id,
		  h ? h->name : "-", policy_reason_name(r), text);
	free(m->last_text);
	m->last_text = xstrdup(text);
	mta_clean(m->last_text);
	if (ph != NULL && ph->reason == REASON_NONE) {
		ph->reason = r;
		ph->detail = xstrdup(m->last_text);
	}
	if (security) {
		if (h != NULL && h->sec == REASON_NONE)
			h->sec = r;
		if (m->sec_reason == REASON_NONE) {
			m->sec_reason = r;
			m->sec_host = xstrdup(h ? h->name : m->job->domain);
			m->sec_text = xstrdup(m->last_text);
		}
		mta_next_host(m);	/* RFC 7672: another address of the same host won't do better */
		return;
	}
	if (h != NULL)
		h->temp = true;
	m->temp_reason = r;
	mta_next_address(m);
}

/* Every host is done: settle what is pending, or give the probe its verdict. */
static void mta_exhausted(struct mta *m)
{
	int64_t now = time(NULL);
	const char *text = m->last_text ? m->last_text : "no MX host could be used";

	m->hi = m->nhost;
	if (m->probe) {
		struct mta_probe *p = m->job->probe;

		p->verdict = POLICY_DEFER;
		for (size_t i = 0; i < p->nhost; i++)
			if (p->hosts[i].ok)
				p->verdict = POLICY_PROCEED;
		if (p->verdict != POLICY_PROCEED) {
			p->verdict = policy_exhausted(true, m->any_temp, m->sec_reason, 0, 0, now);
			p->reason = m->sec_reason != REASON_NONE && !m->any_temp ? m->sec_reason :
				    m->temp_reason;
			p->reason_host = m->sec_host ? xstrdup(m->sec_host) : NULL;
		}
		mta_finish(m);
		return;
	}
	for (size_t i = 0; i < m->job->nrcpt; i++) {
		struct mta_rcpt *r = &m->job->rcpts[i];
		enum policy_action a;
		bool sec = !m->any_temp && m->sec_reason != REASON_NONE;

		if (r->outcome != MTA_PENDING)
			continue;
		a = policy_exhausted(m->guarantee, m->any_temp, m->sec_reason, r->first_tls_failure,
				     m->relay->cfg->guarantee.retry_for, now);
		if (a == POLICY_HOLD)
			mta_settle(m, r, MTA_HELD, m->sec_reason, policy_status(m->sec_reason, true),
				   m->sec_text);
		else if (sec)
			mta_settle(m, r, MTA_DEFERRED, m->sec_reason,
				   policy_status(m->sec_reason, false), m->sec_text);
		else
			mta_settle(m, r, MTA_DEFERRED, m->temp_reason,
				   policy_status(m->temp_reason, false), text);
	}
	mta_finish(m);
}

/* ---- the SMTP conversation ------------------------------------------------------------ */

static void mta_send(struct mta *m, enum mta_state next, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void mta_send(struct mta *m, enum mta_state next, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(m->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(m->bev), "\r\n", 2);
	m->state = next;
}

static void mta_quit(struct mta *m)
{
	mta_send(m, ST_QUIT, "QUIT");
}

/* "host said: 550 5.1.1 ..." */
static char *mta_said(struct mta *m, const struct reply *r)
{
	char *t = reply_text(r);
	char *s = xasprintf("%s said: %s", mta_host(m)->name, t);

	free(t);
	return s;
}

/* Status for a recipient from a remote reply: its enhanced code, or a generic one. */
static const char *mta_reply_status(const struct reply *r)
{
	if (r->enhanced[0] != '\0')
		return r->enhanced;
	return r->code >= 500 ? "5.0.0" : "4.0.0";
}

/* Apply a reply to every pending recipient that matters (all, or accepted only). */
static void mta_reply_to_rcpts(struct mta *m, const struct reply *r, bool accepted_only)
{
	enum policy_action a = policy_reply(r->code);
	char *said = mta_said(m, r);

	for (size_t i = 0; i < m->job->nrcpt; i++) {
		struct mta_rcpt *rc = &m->job->rcpts[i];

		if (rc->outcome != MTA_PENDING || (accepted_only && !rc->accepted))
			continue;
		if (a == POLICY_PROCEED)
			mta_settle(m, rc, MTA_DELIVERED, REASON_NONE, mta_reply_status(r), said);
		else if (a == POLICY_BOUNCE)
			mta_settle(m, rc, MTA_BOUNCED, REASON_SMTP_PERM, mta_reply_status(r), said);
		else
			mta_settle(m, rc, MTA_DEFERRED, REASON_SMTP_TEMP, mta_reply_status(r), said);
	}
	free(said);
}

static void mta_start_body(struct mta *m);

/*
 * The transaction is over and every recipient has its outcome: keep the connection for the
 * next job to this destination, or say goodbye.
 *
 * The results are recorded before the connection carries another transaction: mta_finish
 * hands them to the scheduler, which writes them in the same call, and a parked connection
 * is only taken by a session starting from a later turn of the loop (mta_begin). So a crash
 * can catch at most one delivered-but-unrecorded transaction per connection, never a chain.
 */
static void mta_end_transaction(struct mta *m)
{
	if (!m->probe && mta_pending(m) == 0 && mta_cache_put(m)) {
		mta_finish(m);
		return;
	}
	mta_quit(m);
}

/* The SIZE value of an EHLO reply (RFC 1870): 0 when absent or not a number. */
static uint64_t mta_ehlo_size(const struct reply *r)
{
	for (size_t i = 1; i < r->nlines; i++) {
		const char *l = r->lines[i];
		char *end;
		unsigned long long v;

		if (strncasecmp(l, "SIZE", 4) != 0 || l[4] != ' ')
			continue;
		v = strtoull(l + 5, &end, 10);
		return (end != l + 5 && (*end == '\0' || *end == ' ')) ? (uint64_t)v : 0;
	}
	return 0;
}

/* ORCPT for the next hop: "type;" then the address xtext-encoded again (RFC 3461 4.2). */
static char *mta_orcpt(const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *x, *out;

	if (semi == NULL)
		return smtp_xtext_encode(orcpt);
	x = smtp_xtext_encode(semi + 1);
	out = xasprintf("%.*s;%s", (int)(semi - orcpt), orcpt, x);
	free(x);
	return out;
}

/* Queue the RCPT command for recipient i and note it as sent. */
static void mta_send_rcpt_cmd(struct mta *m, size_t i)
{
	struct mta_rcpt *r = &m->job->rcpts[i];
	struct buf b;

	buf_init(&b, 0);
	buf_addf(&b, "RCPT TO:<%s>", r->addr);
	if (m->conn.ext_dsn && r->notify != NULL)
		buf_addf(&b, " NOTIFY=%s", r->notify);
	if (m->conn.ext_dsn && r->orcpt != NULL) {
		char *o = mta_orcpt(r->orcpt);

		buf_addf(&b, " ORCPT=%s", o);
		free(o);
	}
	mta_send(m, ST_RCPT, "%s", b.data);
	buf_free(&b);
	m->sent[m->nsent++] = i;
}

/* Start the transaction: MAIL, and with PIPELINING every RCPT and DATA in the same write. */
static void mta_send_mail(struct mta *m)
{
	struct mta_job *j = m->job;
	struct buf b;

	/* a host refused here counts for the reports through mta_host_failed, not as a session */
	if (!mta_downgrade_check(m) || !mta_requiretls_check(m))
		return;
	tlsrpt_note_session(m);
	if (j->smtputf8 && !m->conn.ext_utf8) {
		char *t = xasprintf("%s does not support SMTPUTF8, which the message needs",
				    mta_host(m)->name);

		mta_settle_pending(m, MTA_BOUNCED, REASON_SMTP_PERM, "5.6.7", t);
		free(t);
		mta_end_transaction(m);
		return;
	}
	if (m->conn.ext_size && m->conn.size_limit > 0 && j->size > m->conn.size_limit) {
		char *t = xasprintf("message of %llu bytes exceeds the size limit of %s (%llu bytes)",
				    (unsigned long long)j->size, mta_host(m)->name,
				    (unsigned long long)m->conn.size_limit);

		mta_settle_pending(m, MTA_BOUNCED, REASON_SMTP_PERM, "5.3.4", t);
		free(t);
		mta_end_transaction(m);
		return;
	}
	for (size_t i = 0; i < j->nrcpt; i++)
		j->rcpts[i].accepted = false;
	m->nsent = m->si = m->ri = 0;
	m->mail_ok = false;
	m->pipelined = m->conn.ext_pipelining;
	buf_init(&b, 0);
	buf_addf(&b, "MAIL FROM:<%s>", j->sender);
	if (m->conn.ext_size)
		buf_addf(&b, " SIZE=%llu", (unsigned long long)j->size);
	if (j->body != NULL && m->conn.ext_8bit)
		buf_addf(&b, " BODY=%s", j->body);
	if (j->smtputf8)
		buf_adds(&b, " SMTPUTF8");
	if (j->requiretls)
		buf_adds(&b, " REQUIRETLS");
	if (m->conn.ext_dsn && j->ret != NULL)
		buf_addf(&b, " RET=%s", j->ret);
	if (m->conn.ext_dsn && j->envid != NULL) {
		char *x = smtp_xtext_encode(j->envid);

		buf_addf(&b, " ENVID=%s", x);
		free(x);
	}
	mta_send(m, ST_MAIL, "%s", b.data);
	buf_free(&b);
	if (!m->pipelined)
		return;
	for (size_t i = 0; i < j->nrcpt; i++)
		if (j->rcpts[i].outcome == MTA_PENDING)
			mta_send_rcpt_cmd(m, i);
	mta_send(m, ST_MAIL, "DATA");
}

/* Is any recipient accepted in this transaction and still waiting for its outcome? */
static bool mta_any_accepted(const struct mta *m)
{
	for (size_t i = 0; i < m->job->nrcpt; i++)
		if (m->job->rcpts[i].accepted && m->job->rcpts[i].outcome == MTA_PENDING)
			return true;
	return false;
}

/* Without pipelining: RCPT for the next pending recipient, then DATA, or the end. */
static void mta_send_rcpt(struct mta *m)
{
	struct mta_job *j = m->job;

	for (; m->ri < j->nrcpt; m->ri++) {
		if (j->rcpts[m->ri].outcome != MTA_PENDING)
			continue;
		mta_send_rcpt_cmd(m, m->ri++);
		return;
	}
	if (mta_any_accepted(m)) {
		mta_send(m, ST_DATA, "DATA");
		return;
	}
	mta_end_transaction(m);
}

/* A reply to RCPT: for the recipient sent at position si. */
static void mta_on_rcpt_reply(struct mta *m, const struct reply *r)
{
	enum policy_action a = policy_reply(r->code);

	if (m->si < m->nsent) {
		struct mta_rcpt *rc = &m->job->rcpts[m->sent[m->si++]];

		if (!m->mail_ok || rc->outcome != MTA_PENDING) {
			/* MAIL was refused: the pipelined RCPTs' replies mean nothing */
		} else if (a == POLICY_PROCEED) {
			rc->accepted = true;
		} else {
			char *said = mta_said(m, r);

			mta_settle(m, rc, a == POLICY_BOUNCE ? MTA_BOUNCED : MTA_DEFERRED,
				   a == POLICY_BOUNCE ? REASON_SMTP_PERM : REASON_SMTP_TEMP,
				   mta_reply_status(r), said);
			free(said);
		}
	}
	if (!m->pipelined) {
		mta_send_rcpt(m);
		return;
	}
	if (m->si >= m->nsent)
		m->state = ST_DATA;
}

/*
 * The reply to DATA. With pipelining it may come although no RCPT was accepted (RFC 2920
 * 3.1): a 503/554 then only ends the transaction, and a 354 gets a lone dot.
 */
static void mta_on_data_reply(struct mta *m, const struct reply *r)
{
	bool any = m->mail_ok && mta_any_accepted(m);

	if (r->code == 354) {
		if (any) {
			mta_start_body(m);
			return;
		}
		evbuffer_add(bufferevent_get_output(m->bev), ".\r\n", 3);
		m->state = ST_DOT_VOID;
		return;
	}
	if (any)
		mta_reply_to_rcpts(m, r, true);
	mta_end_transaction(m);
}

/* Keep the output buffer filled from the spool file; the final dot at the end. */
static void mta_pump_body(struct mta *m)
{
	struct evbuffer *out = bufferevent_get_output(m->bev);
	char chunk[MTA_CHUNK / 4];

	while (m->state == ST_BODY && evbuffer_get_length(out) < MTA_CHUNK) {
		size_t want = m->data_left < sizeof(chunk) ? m->data_left : sizeof(chunk);
		ssize_t n = want ? read(m->data_fd, chunk, want) : 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && m->data_left > 0)) {
			char *t = xasprintf("cannot read the queued message: %s",
					    n < 0 ? strerror(errno) : "file too short");

			log_error("event=spool_read id=%s error=\"%s\"", m->job->msg_id, t);
			/* Close without the dot: the server must not take a truncated message. */
			mta_close(m);
			mta_settle_pending(m, MTA_DEFERRED, REASON_SMTP_TEMP, "4.3.0", t);
			free(t);
			mta_finish(m);
			return;
		}
		if (n == 0) {
			data_out_end(&m->dout, out);
			close(m->data_fd);
			m->data_fd = -1;
			m->state = ST_DOT;
			return;
		}
		/* dots doubled, every line end CRLF: a bare CR or LF in a spool file (written by
		 * an older version, or injected) never reaches the wire */
		data_out_stuff(&m->dout, out, chunk, (size_t)n);
		m->data_left -= (size_t)n;
	}
}

static void mta_start_body(struct mta *m)
{
	size_t size = 0;

	m->data_fd = queue_open_data(m->relay->queue, m->job->msg_id, &size);
	if (m->data_fd < 0) {
		mta_close(m);
		mta_settle_pending(m, MTA_DEFERRED, REASON_SMTP_TEMP, "4.3.0",
				   "the queued message cannot be read");
		mta_finish(m);
		return;
	}
	m->data_left = size;
	data_out_init(&m->dout);
	m->state = ST_BODY;
	mta_pump_body(m);
}

static void mta_starttls(struct mta *m);

/* EHLO (or HELO) answered: decide on TLS, or go on to MAIL. */
static void mta_after_ehlo(struct mta *m)
{
	struct mta_probe_host *ph = mta_probe_host(m);
	enum policy_action a;

	if (m->conn.tls) {
		if (m->probe) {
			ph->ok = true;
			mta_quit(m);
			return;
		}
		mta_send_mail(m);
		return;
	}
	if (ph != NULL)
		ph->starttls_offered = m->ext_starttls;
	if (m->ext_starttls && !m->conn.plain_only) {
		mta_send(m, ST_STARTTLS, "STARTTLS");
		return;
	}
	a = m->conn.plain_only ? POLICY_PLAINTEXT : policy_starttls_missing(m->guarantee, m->conn.dane);
	if (a != POLICY_PLAINTEXT) {
		char *t = xasprintf("%s does not offer STARTTLS", mta_host(m)->name);

		mta_host_failed(m, REASON_NO_STARTTLS, t);
		free(t);
		return;
	}
	if (!mta_sts_plain_ok(m, "STARTTLS not offered"))
		return;
	if (m->probe) {
		mta_quit(m);	/* a sender without the guarantee would send in plaintext here */
		return;
	}
	mta_send_mail(m);
}

static void mta_ehlo_keywords(struct mta *m, const struct reply *r)
{
	m->ext_starttls = reply_has_keyword(r, "STARTTLS");
	m->conn.ext_dsn = reply_has_keyword(r, "DSN");
	m->conn.ext_8bit = reply_has_keyword(r, "8BITMIME");
	m->conn.ext_utf8 = reply_has_keyword(r, "SMTPUTF8");
	m->conn.ext_pipelining = reply_has_keyword(r, "PIPELINING");
	m->conn.ext_requiretls = reply_has_keyword(r, "REQUIRETLS");
	m->conn.ext_size = reply_has_keyword(r, "SIZE") || mta_ehlo_size(r) > 0;
	m->conn.size_limit = mta_ehlo_size(r);
}

static void mta_on_starttls_reply(struct mta *m, const struct reply *r)
{
	struct mta_probe_host *ph = mta_probe_host(m);
	enum policy_action a;

	if (ph != NULL)
		ph->starttls_code = r->code;
	/* Bytes after the 220 were sent before the handshake: an injection attack. */
	if (r->code == 220 && evbuffer_get_length(bufferevent_get_input(m->bev)) > 0) {
		char *t = xasprintf("data injected after STARTTLS by %s", mta_host(m)->name);

		mta_host_failed(m, REASON_INJECTION, t);
		free(t);
		return;
	}
	a = policy_starttls_reply(m->guarantee, m->conn.dane, r->code);
	if (a == POLICY_PROCEED) {
		mta_starttls(m);
		return;
	}
	if (a == POLICY_PLAINTEXT) {
		if (!mta_sts_plain_ok(m, "STARTTLS refused"))
			return;
		if (m->probe)
			mta_quit(m);
		else
			mta_send_mail(m);
		return;
	}
	{
		char *said = mta_said(m, r);
		char *t = xasprintf("STARTTLS refused: %s", said);

		mta_host_failed(m, REASON_STARTTLS_REFUSED, t);
		free(said);
		free(t);
	}
}

/* One complete reply arrived in state m->state. */
static void mta_on_reply(struct mta *m, const struct reply *r)
{
	char *said;

	m->last_code = r->code;
	switch (m->state) {
	case ST_GREETING:
		if (r->code / 100 != 2)
			break;
		mta_send(m, ST_EHLO, "EHLO %s", m->relay->cfg->server.hostname);
		return;
	case ST_EHLO:
		if (r->code / 100 != 2) {
			mta_send(m, ST_HELO, "HELO %s", m->relay->cfg->server.hostname);
			return;
		}
		mta_ehlo_keywords(m, r);
		if (m->conn.tls)
			mta_sess_save(m);	/* session tickets have arrived by now */
		mta_after_ehlo(m);
		return;
	case ST_HELO:
		if (r->code / 100 != 2)
			break;
		m->ext_starttls = m->conn.ext_dsn = m->conn.ext_8bit = m->conn.ext_utf8 = false;
		m->conn.ext_pipelining = m->conn.ext_size = m->conn.ext_requiretls = false;
		m->conn.size_limit = 0;
		mta_after_ehlo(m);
		return;
	case ST_STARTTLS:
		mta_on_starttls_reply(m, r);
		return;
	case ST_RSET:
		if (r->code / 100 == 2) {
			mta_send_mail(m);
			return;
		}
		said = mta_said(m, r);
		mta_reuse_failed(m, said);
		free(said);
		return;
	case ST_MAIL:
		if (policy_reply(r->code) == POLICY_PROCEED) {
			m->mail_ok = true;
			if (!m->pipelined)
				mta_send_rcpt(m);
			else
				m->state = m->nsent > 0 ? ST_RCPT : ST_DATA;
			return;
		}
		if (policy_reply(r->code) == POLICY_BOUNCE) {
			mta_reply_to_rcpts(m, r, false);
			if (!m->pipelined)
				mta_end_transaction(m);
			else	/* the RCPT and DATA replies follow */
				m->state = m->nsent > 0 ? ST_RCPT : ST_DATA;
			return;
		}
		break;
	case ST_RCPT:
		mta_on_rcpt_reply(m, r);
		return;
	case ST_DATA:
		mta_on_data_reply(m, r);
		return;
	case ST_DOT:
		mta_reply_to_rcpts(m, r, true);
		mta_end_transaction(m);
		return;
	case ST_DOT_VOID:
		mta_end_transaction(m);
		return;
	case ST_QUIT:
		mta_close(m);
		if (m->probe)
			mta_next_host(m);
		else if (mta_pending(m) > 0)
			mta_next_address(m);
		else
			mta_finish(m);
		return;
	default:
		return;		/* a reply nobody asked for: ignored */
	}
	/* greeting, HELO or MAIL refused: this host cannot take the message now */
	said = mta_said(m, r);
	mta_host_failed(m, r->code >= 500 ? REASON_SMTP_PERM : REASON_SMTP_TEMP, said);
	free(said);
}

/*
 * Acknowledge the server's data at once. Servers answer a pipelined group or the end of
 * data in more than one write; when the server delays its second write for our ACK
 * (Nagle) and we delay the ACK, every transaction waits about 40 ms, which limits a reused
 * connection to some 20 messages a second. Linux resets the flag, so it is set per read.
 */
static void mta_quickack(struct bufferevent *bev)
{
#ifdef TCP_QUICKACK
	int one = 1;

	(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)bev;
#endif
}

static void mta_readcb(struct bufferevent *bev, void *arg)
{
	struct mta *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	mta_quickack(bev);

	/* A reply may end the session: the loop must notice, and m is freed only at the end. */
	m->in_read = true;
	while (!m->dead && m->bev == bev && evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_length(in), used;
		const char *data;
		struct reply r;
		enum reply_result rr;

		if (m->state == ST_BODY || m->state == ST_HANDSHAKE || m->state == ST_CONNECT)
			break;		/* not expecting a reply now: leave it (bounded) */
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		rr = reply_parse(data, len, &r, &used);
		if (rr == REPLY_NEED_MORE)
			break;
		if (rr == REPLY_BAD) {
			char *t = xasprintf("%s sent a malformed reply", mta_host(m)->name);

			mta_host_failed(m, REASON_SMTP_TEMP, t);
			free(t);
			break;
		}
		evbuffer_drain(in, used);
		mta_on_reply(m, &r);
		reply_free(&r);
	}
	m->in_read = false;
	if (m->dead)
		mta_free(m);
}

static void mta_writecb(struct bufferevent *bev, void *arg)
{
	struct mta *m = arg;

	if (m->bev == bev && m->state == ST_BODY)
		mta_pump_body(m);
}

static void mta_set_timeouts(struct mta *m, int64_t secs)
{
	struct timeval tv = { .tv_sec = (time_t)secs, .tv_usec = 0 };

	bufferevent_set_timeouts(m->bev, &tv, &tv);
}

void mta_attach(struct mta *m)
{
	bufferevent_setcb(m->bev, mta_readcb, mta_writecb, mta_eventcb, m);
	mta_set_timeouts(m, m->relay->cfg->relay.command_timeout);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
}

/* The TLS handshake finished. */
static void mta_tls_ready(struct mta *m)
{
	SSL *ssl = bufferevent_openssl_get_ssl(m->bev);
	struct mta_probe_host *ph = mta_probe_host(m);

	tls_info_get(ssl, true, &m->conn.tinfo);
	m->conn.tls = true;
	if (ph != NULL) {
		ph->handshake_ok = true;
		ph->tls = m->conn.tinfo;
	}
	if (!mta_sts_tls_ok(m))
		return;
	log_debug("event=mta_tls id=%s mx=%s version=%s cipher=%s dane=%s resumed=%s",
		  m->job->msg_id, mta_host(m)->name, m->conn.tinfo.version, m->conn.tinfo.cipher,
		  mta_dane_name(m->conn.tinfo.dane), SSL_session_reused(ssl) ? "yes" : "no");
	mta_send(m, ST_EHLO, "EHLO %s", m->relay->cfg->server.hostname);
}

/* The TLS handshake failed: classify it and let the policy choose. */
static void mta_tls_failed(struct mta *m)
{
	SSL *ssl = bufferevent_openssl_get_ssl(m->bev);
	unsigned long e = bufferevent_get_openssl_error(m->bev);
	struct mta_probe_host *ph = mta_probe_host(m);
	char detail[256];
	enum tls_failure f = tls_failure_classify(ssl, e, detail, sizeof(detail));
	enum policy_reason reason = policy_tls_reason(f);
	enum policy_action a = policy_handshake_failed(m->guarantee, m->conn.dane, f);
	char *t;

	while (bufferevent_get_openssl_error(m->bev) != 0)
		;
	ERR_clear_error();
	if (ph != NULL)
		tls_info_get(ssl, false, &ph->tls);
	if (reason == REASON_DANE_MISMATCH)
		t = xasprintf("certificate of %s does not match its TLSA records: %s",
			      mta_host(m)->name, detail);
	else
		t = xasprintf("TLS handshake with %s failed (%s): %s", mta_host(m)->name,
			      tls_failure_name(f), detail);
	if (a == POLICY_RECONNECT_PLAIN && !m->probe && !mta_sts_requires_tls(m)) {
		tlsrpt_note_failure(m, reason);
		log_info("event=mta_tls_fallback id=%s mx=%s reason=\"%s\"", m->job->msg_id,
			 mta_host(m)->name, t);
		mta_close(m);
		m->conn.plain_only = true;
		mta_connect(m);
	} else {
		mta_host_failed(m, reason, t);
	}
	free(t);
}

static void mta_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct mta *m = arg;
	struct mta_host *h = mta_host(m);
	char *t;

	if (m->bev != bev)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (m->state == ST_CONNECT) {
			mta_set_timeouts(m, m->relay->cfg->relay.command_timeout);
			m->state = ST_GREETING;
			if (mta_probe_host(m) != NULL)
				mta_probe_host(m)->connected = true;
		} else if (m->state == ST_HANDSHAKE) {
			mta_tls_ready(m);
		}
		return;
	}
	if (m->state == ST_HANDSHAKE) {
		mta_tls_failed(m);
		return;
	}
	if (m->state == ST_QUIT) {	/* the server closed first: fine */
		struct reply none = { .code = 221 };

		mta_on_reply(m, &none);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		t = xasprintf("timeout talking to %s [%s]", h->name, h->addrs[m->ai]);
	else if (what & BEV_EVENT_EOF)
		t = xasprintf("%s [%s] closed the connection", h->name, h->addrs[m->ai]);
	else
		t = xasprintf("connection to %s [%s] failed: %s", h->name, h->addrs[m->ai],
			      errno ? strerror(errno) : "error");
	mta_host_failed(m, REASON_CONNECT, t);
	free(t);
}

/* STARTTLS accepted: put TLS (with DANE where the policy says) over the connection. */
static void mta_starttls(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	enum tls_dane_mode mode;
	struct bufferevent *tlsbev;
	char *err = NULL;
	SSL *ssl;

	ssl = tls_client_new(m->relay->client_ctx, h->name, h->dane == DANE_AUTH ? h->tlsa : NULL,
			     h->dane == DANE_AUTH ? h->ntlsa : 0, &mode, &err);
	if (ssl == NULL) {
		log_error("event=tls_setup mx=%s error=\"%s\"", h->name, err);
		mta_host_failed(m, REASON_TLS_HANDSHAKE, err);
		free(err);
		return;
	}
	if (h->dane == DANE_AUTH && mode != TLS_DANE_REQUIRED)
		m->conn.dane = DANE_TLS_ONLY;	/* no record OpenSSL could use: TLS still required */
	/* Resumption only where no DANE authentication is needed (see the cache notes). */
	if (!m->probe && h->dane != DANE_AUTH && mode != TLS_DANE_REQUIRED) {
		SSL_SESSION *sess = mta_sess_find(m);

		if (sess != NULL && !SSL_set_session(ssl, sess))
			ERR_clear_error();
		log_debug("event=mta_tls_resume id=%s mx=%s offered=%s", m->job->msg_id, h->name,
			  sess ? "yes" : "no");
	}
	/* DANE-TA may also name the next-hop domain when its MX answer was secure. */
	if (mode == TLS_DANE_REQUIRED && !m->implicit && m->mx_sec == DNS_SECURE)
		tls_dane_add_name(ssl, m->job->domain);
	tlsbev = bufferevent_openssl_filter_new(m->relay->base, m->bev, ssl,
						BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tlsbev == NULL) {
		SSL_free(ssl);
		mta_host_failed(m, REASON_TLS_HANDSHAKE, "cannot start TLS");
		return;
	}
	m->bev = tlsbev;
	m->state = ST_HANDSHAKE;
	bufferevent_priority_set(tlsbev, RELAY_PRI_FIRST);
	bufferevent_openssl_set_allow_dirty_shutdown(tlsbev, 1);
	bufferevent_setcb(tlsbev, mta_readcb, mta_writecb, mta_eventcb, m);
	bufferevent_setwatermark(tlsbev, EV_READ, 0, MTA_INPUT_MAX);
	bufferevent_setwatermark(tlsbev, EV_WRITE, MTA_CHUNK / 2, 0);
	mta_set_timeouts(m, m->relay->cfg->relay.command_timeout);
	bufferevent_enable(tlsbev, EV_READ | EV_WRITE);
}

bool mta_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
		return true;
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
		return true;
	}
	return false;
}

/* Connect to address m->ai of host m->hi. */
void mta_connect(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	struct mta_probe_host *ph = mta_probe_host(m);
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	char *t;

	m->conn.rpt_noted = false;
	if (!mta_sts_host_ok(m))
		return;
	/* A new connection knows nothing yet; plain_only survives a reconnect after a failed
	 * opportunistic handshake, rpt_noted a testing policy's MX mismatch just counted. */
	m->conn = (struct mta_conn){ .plain_only = m->conn.plain_only, .dane = h->dane,
				     .guarantee = m->guarantee, .born = time(NULL),
				     .rpt_noted = m->conn.rpt_noted };
	m->ext_starttls = false;
	m->reused = false;
	if (m->relay->mta_cache != NULL && !m->probe)
		mta_cache_make_room(m->relay->mta_cache);
	for (size_t i = 0; i < m->job->nrcpt; i++)
		m->job->rcpts[i].accepted = false;
	if (ph != NULL)
		snprintf(ph->ip, sizeof(ph->ip), "%s", h->addrs[m->ai]);
	if (!mta_sockaddr(h->addrs[m->ai], m->port, &ss, &len)) {
		t = xasprintf("bad address %s for %s", h->addrs[m->ai], h->name);
		mta_host_failed(m, REASON_CONNECT, t);
		free(t);
		return;
	}
	m->bev = bufferevent_socket_new(m->relay->base, -1,
					BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	bufferevent_priority_set(m->bev, RELAY_PRI_FIRST);
	bufferevent_setcb(m->bev, mta_readcb, mta_writecb, mta_eventcb, m);
	bufferevent_setwatermark(m->bev, EV_READ, 0, MTA_INPUT_MAX);
	bufferevent_setwatermark(m->bev, EV_WRITE, MTA_CHUNK / 2, 0);
	mta_set_timeouts(m, m->relay->cfg->relay.connect_timeout);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
	m->state = ST_CONNECT;
	log_debug("event=mta_connect id=%s mx=%s addr=%s port=%u plain_only=%d", m->job->msg_id,
		  h->name, h->addrs[m->ai], m->port, m->conn.plain_only);
	if (bufferevent_socket_connect(m->bev, (struct sockaddr *)&ss, (int)len) < 0) {
		t = xasprintf("connection to %s [%s] failed: %s", h->name, h->addrs[m->ai],
			      strerror(errno));
		mta_host_failed(m, REASON_CONNECT, t);
		free(t);
		return;
	}
	/*
	 * Commands, pipelined groups and the body go out in several writes (TLS records);
	 * with Nagle's algorithm the later ones wait for the server's delayed ACK.
	 */
	if (setsockopt(bufferevent_getfd(m->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		log_debug("event=mta_nodelay error=\"%s\"", strerror(errno));
}

static void mta_next_address(struct mta *m)
{
	struct mta_host *h = mta_host(m);

	m->conn.plain_only = false;
	if (h != NULL && m->ai + 1 < h->naddr) {
		m->ai++;
		mta_connect(m);
		return;
	}
	mta_next_host(m);
}

/* The current host is finished with (successfully or not): count it and go on. */
void mta_next_host(struct mta *m)
{
	struct mta_host *h = mta_host(m);

	mta_close(m);
	m->conn.plain_only = false;
	if (h != NULL && h->sec == REASON_NONE && h->temp)
		m->any_temp = true;
	if (!m->probe && mta_pending(m) == 0) {
		mta_finish(m);
		return;
	}
	m->hi++;
	m->ai = 0;
	if (m->hi >= m->nhost) {
		mta_exhausted(m);
		return;
	}
	mta_resolve_host(m);
}

/* First step, from the loop: an idle connection to the destination, or a new route. */
static void mta_begin(evutil_socket_t fd, short what, void *arg)
{
	struct mta *m = arg;

	if (mta_cache_take(m)) {
		mta_send(m, ST_RSET, "RSET");
		return;
	}
	mta_route(m);
}

struct mta *mta_start(struct relay *relay, struct mta_job *job, mta_done_cb cb, void *arg)
{
	struct mta *m = xcalloc(1, sizeof(*m));
	struct timeval zero = { 0, 0 };

	m->relay = relay;
	m->job = job;
	m->cb = cb;
	m->arg = arg;
	m->data_fd = -1;
	m->probe = job->probe != NULL;
	m->guarantee = job->guarantee || m->probe;
	m->port = (uint16_t)relay->cfg->relay.remote_port;
	m->state = ST_START;
	m->sent = xcalloc(job->nrcpt ? job->nrcpt : 1, sizeof(*m->sent));
	if (!m->probe) {
		mta_cache_get(relay)->nactive++;
		m->counted = true;
	}
	m->start_ev = evtimer_new(relay->base, mta_begin, m);
	evtimer_add(m->start_ev, &zero);
	return m;
}

void mta_job_free(struct mta_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->nrcpt; i++) {
		free(job->rcpts[i].addr);
		free(job->rcpts[i].orcpt);
		free(job->rcpts[i].notify);
		free(job->rcpts[i].reason);
		free(job->rcpts[i].mx);
	}
	free(job->rcpts);
	free(job->msg_id);
	free(job->sender);
	free(job->domain);
	free(job->envid);
	free(job->ret);
	free(job->body);
	free(job);
}

void mta_probe_free(struct mta_probe *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nhost; i++) {
		struct mta_probe_host *h = &p->hosts[i];

		free(h->name);
		dns_strv_free(h->addrs, h->naddr);
		dns_strv_free(h->tlsa, h->ntlsa);
		free(h->detail);
	}
	free(p->hosts);
	free(p->reason_host);
	sts_policy_clear(&p->sts);
	free(p->sts_error);
	free(p);
}

char *mta_probe_reason(const struct mta_probe *p, const char *domain)
{
	if (p->verdict == POLICY_PROCEED)
		return NULL;
	if (p->reason == REASON_DNS_TEMP || p->reason == REASON_CONNECT ||
	    p->reason == REASON_SMTP_TEMP || p->reason == REASON_NONE)
		return xstrdup("no MX host could be reached now: the relay would retry later");
	return dsn_explain(p->reason, p->reason_host ? p->reason_host : domain, NULL, false);
}
