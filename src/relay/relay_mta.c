/*
 * relay_mta.c - SMTP client: one session delivers one job (a message to one domain).
 *
 * Steps: MX lookup -> for each MX: A/AAAA lookup -> TLSA lookup when DANE applies -> for each
 * address: connect, greeting, EHLO, STARTTLS, TLS handshake, EHLO, MAIL, RCPT..., DATA, body,
 * QUIT. What each DNS answer and each TLS outcome means is decided by relay_policy.c; this
 * file only carries the decisions out. Replies are parsed by relay_reply.c.
 *
 * All callbacks run on the event loop; bufferevents use deferred callbacks so that no
 * callback runs inside a libevent call made by this file (the session may free itself).
 * In probe mode (tls-check) the session stops each host after the TLS handshake and the
 * second EHLO, and tries every MX host instead of stopping at the first that works.
 *
 * The transaction is pipelined (RFC 2920) when the server offers PIPELINING: MAIL, every
 * RCPT and DATA go out in one write and the replies are matched in order. A connection
 * whose transaction ended cleanly is kept idle for a few seconds in the connection cache
 * (see "connection cache" below) so that the next job for the same destination reuses it;
 * TLS sessions are kept per MX address so that a new connection can resume one.
 */
#include "relay_delivery.h"

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
#include "relay_reply.h"
#include "relay_smtp_cmd.h"
#include "xmalloc.h"

#define MTA_MAX_HOSTS	10		/* MX hosts tried per delivery */
#define MTA_MAX_ADDRS	8		/* addresses tried per host and family */
#define MTA_INPUT_MAX	(REPLY_MAX_LINE * REPLY_MAX_LINES)
#define MTA_CHUNK	(64 * 1024)	/* spool bytes read per step */
#define MTA_IDLE_SECONDS	3	/* an unused cached connection is closed after this */
#define MTA_IDLE_PER_DEST	10	/* idle connections kept per destination */
#define MTA_REUSE_MAX		100	/* transactions per connection */
#define MTA_REUSE_AGE		300	/* seconds a connection may be reused for */
#define MTA_SESS_SECONDS	300	/* TLS sessions kept for resumption */
#define MTA_SESS_MAX		256	/* TLS sessions kept at most */

enum mta_state {
	ST_START,
	ST_MX,
	ST_ADDR,
	ST_TLSA,
	ST_CONNECT,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_RSET,			/* a reused connection: RSET before MAIL */
	ST_MAIL,
	ST_RCPT,
	ST_DATA,
	ST_BODY,
	ST_DOT,
	ST_DOT_VOID,			/* DATA took 354 with no recipient: a lone dot sent */
	ST_QUIT,
	ST_DONE,
};

struct mta_host {
	char *name;
	uint16_t pref;
	char **addrs;
	size_t naddr;
	enum dns_security addr_sec;
	bool addr_bogus;
	bool addr_secure_seen;
	struct dns_tlsa *tlsa;
	size_t ntlsa;
	enum policy_dane dane;
	bool temp;			/* an address failed before a verdict */
	enum policy_reason sec;		/* a security failure on this host */
};

struct mta {
	struct relay *relay;
	struct mta_job *job;
	mta_done_cb cb;
	void *arg;
	enum mta_state state;
	bool guarantee;			/* decisions as for a sender with the guarantee */
	bool probe;
	uint16_t port;
	struct event *start_ev;
	int dns_handle[2];
	int dns_pending;
	enum dns_security mx_sec;
	bool implicit;
	struct mta_host *hosts;
	size_t nhost, hi, ai;
	/* the current connection */
	struct bufferevent *bev;
	bool tls;
	bool plain_only;		/* reconnected after a failed opportunistic handshake */
	enum policy_dane dane;		/* in force on this connection */
	struct tls_info tinfo;
	bool ext_starttls, ext_dsn, ext_8bit, ext_utf8, ext_pipelining, ext_size;
	uint64_t size_limit;		/* SIZE announced by the server, 0: none */
	bool reused;			/* taken from the connection cache */
	bool conn_guarantee;		/* set up by a session under the guarantee */
	unsigned conn_uses;		/* transactions on this connection before this one */
	int64_t conn_born;
	int last_code;			/* the last reply's code */
	bool counted;			/* counted in the cache's active sessions */
	/* the current transaction */
	bool pipelined;
	bool mail_ok;			/* MAIL accepted */
	size_t *sent;			/* indexes of the recipients sent RCPT, in order */
	size_t nsent, si;		/* si: next RCPT reply belongs to sent[si] */
	size_t ri;
	int data_fd;
	size_t data_left;
	struct data_out dout;		/* line state of the data sent so far */
	/* what happened so far, over all hosts */
	bool any_temp;
	enum policy_reason temp_reason;
	enum policy_reason sec_reason;
	char *sec_host;
	char *sec_text;
	char *last_text;
	bool in_read;			/* inside mta_readcb: freeing waits for its end */
	bool dead;			/* finished while in_read */
};

/* The connection cache (see "connection cache" below). */
struct mta_idle {
	struct mta_idle *next;
	struct mta_cache *cache;
	char *key;			/* the destination */
	char *host, *ip;
	uint16_t port;
	struct bufferevent *bev;
	bool closing;			/* QUIT sent, waiting for the reply or the close */
	bool tls, plain_only, guarantee;
	enum policy_dane dane;
	struct tls_info tinfo;
	bool ext_dsn, ext_8bit, ext_utf8, ext_pipelining, ext_size;
	uint64_t size_limit;
	unsigned uses;
	int64_t born;
};

struct mta_sess {
	struct mta_sess *next;
	char *key;			/* "host|ip|port" */
	SSL_SESSION *sess;
	int64_t expires;
};

struct mta_cache {
	struct relay *relay;
	struct mta_idle *idle;		/* newest first */
	size_t nidle;			/* closing ones included */
	size_t nactive;			/* delivery sessions running */
	struct mta_sess *sess;		/* newest first */
	size_t nsess;
};

static void mta_next_address(struct mta *m);
static void mta_next_host(struct mta *m);
static void mta_connect(struct mta *m);
static void mta_route(struct mta *m);

const char *mta_outcome_name(enum mta_outcome o)
{
	static const char *const names[] = { "pending", "delivered", "deferred", "held", "bounced" };

	return (unsigned)o < 5 ? names[o] : "unknown";
}

static struct mta_host *mta_host(struct mta *m)
{
	return m->hi < m->nhost ? &m->hosts[m->hi] : NULL;
}

static struct mta_probe_host *mta_probe_host(struct mta *m)
{
	return m->probe && m->hi < m->job->probe->nhost ? &m->job->probe->hosts[m->hi] : NULL;
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
static void mta_settle(struct mta *m, struct mta_rcpt *r, enum mta_outcome o, enum policy_reason rc,
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
	snprintf(r->tls_version, sizeof(r->tls_version), "%s", m->tls ? m->tinfo.version : "");
	snprintf(r->tls_cipher, sizeof(r->tls_cipher), "%s", m->tls ? m->tinfo.cipher : "");
	r->dane = m->tls ? m->tinfo.dane : TLS_DANE_RESULT_NONE;
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
	m->tls = false;
}

static void mta_free(struct mta *m)
{
	if (m->in_read) {
		mta_close(m);
		m->dead = true;	/* mta_readcb frees it when it returns */
		return;
	}
	mta_close(m);
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
static void mta_finish(struct mta *m)
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

/* ---- connection cache ------------------------------------------------------------------
 *
 * Like Postfix's connection cache: when a transaction ends cleanly the connection is parked
 * here instead of being closed, keyed by destination (the recipients' domain, or the
 * notification relay). A job for the same destination that starts within MTA_IDLE_SECONDS
 * takes it, sends RSET and goes on with MAIL, saving a TCP connection, the EHLO rounds and a
 * TLS handshake. At most MTA_IDLE_PER_DEST connections per destination are kept, and idle
 * ones are closed before the sessions plus idle connections could exceed max_deliveries.
 *
 * Security. The guarantee's rule is that "the check runs for every delivery; nothing
 * remembers a host as secure to skip it". A reused connection does not skip the check: it
 * is the very channel the check was made on, still open, with the same TLS keys, the same
 * authenticated peer (DANE) and the same negotiated protocol and cipher; the delivery on it
 * is as protected as the one before. So a job under the guarantee may reuse a connection
 * only if that connection itself passed: set up by a session under the guarantee, TLS up,
 * never a plaintext fallback, and DANE passed where TLSA applied. What must never happen is
 * that an earlier success lets a NEW connection skip its checks: nothing here is consulted
 * when a connection is made, and every new connection goes through DNS, STARTTLS, the
 * handshake and DANE again. TLS session resumption (below) is also only an optimisation of
 * a new handshake that is still checked: the resumed session has the protocol and cipher
 * of a full handshake that met the policy, and the result goes through the same checks.
 * For hosts with usable TLSA records resumption is not used at all, so DANE is always
 * checked on a full handshake.
 */

static void mta_readcb(struct bufferevent *bev, void *arg);
static void mta_writecb(struct bufferevent *bev, void *arg);
static void mta_eventcb(struct bufferevent *bev, short what, void *arg);
static void mta_set_timeouts(struct mta *m, int64_t secs);

static struct mta_cache *mta_cache_get(struct relay *relay)
{
	if (relay->mta_cache == NULL) {
		relay->mta_cache = xcalloc(1, sizeof(*relay->mta_cache));
		relay->mta_cache->relay = relay;
	}
	return relay->mta_cache;
}

/* The destination a job's connections belong to. */
static char *mta_dest_key(const struct mta *m)
{
	const struct conf_hostport *nr = &m->relay->cfg->relay.notify_relay;

	if (m->job->notification && nr->host != NULL && nr->host[0] != '\0')
		return xasprintf("[%s]:%u", nr->host, nr->port);
	return xasprintf("%s:%u", m->job->domain, m->port);
}

/* Unlink e from the cache and close it. */
static void mta_idle_free(struct mta_idle *e)
{
	struct mta_cache *c = e->cache;

	for (struct mta_idle **p = &c->idle; *p != NULL; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			c->nidle--;
			break;
		}
	}
	if (e->bev != NULL)
		bufferevent_free(e->bev);
	free(e->key);
	free(e->host);
	free(e->ip);
	free(e);
}

/* Anything from an idle server (a 421, the QUIT reply) ends the connection. */
static void mta_idle_readcb(struct bufferevent *bev, void *arg)
{
	struct mta_idle *e = arg;

	log_debug("event=mta_idle_close mx=%s addr=%s reason=%s", e->host, e->ip,
		  e->closing ? "quit" : "server_spoke");
	mta_idle_free(e);
}

static void mta_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct mta_idle *e = arg;
	struct timeval tv = { 2, 0 };

	if ((what & BEV_EVENT_TIMEOUT) && !e->closing) {
		/* unused for MTA_IDLE_SECONDS: say goodbye, wait briefly for the reply */
		e->closing = true;
		evbuffer_add(bufferevent_get_output(bev), "QUIT\r\n", 6);
		bufferevent_set_timeouts(bev, &tv, &tv);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	log_debug("event=mta_idle_close mx=%s addr=%s reason=%s", e->host, e->ip,
		  what & BEV_EVENT_TIMEOUT ? "timeout" : "closed");
	mta_idle_free(e);
}

/* Close idle connections (oldest first) until sessions plus idle ones fit max_deliveries. */
static void mta_cache_make_room(struct mta_cache *c)
{
	uint64_t max = c->relay->cfg->relay.max_deliveries;

	while (c->idle != NULL && c->nactive + c->nidle > max) {
		struct mta_idle *e = c->idle;

		while (e->next != NULL)
			e = e->next;
		log_debug("event=mta_idle_close mx=%s addr=%s reason=room", e->host, e->ip);
		mta_idle_free(e);
	}
}

/* Does the idle connection e meet what session m needs (see the security note above)? */
static bool mta_idle_fits(const struct mta_idle *e, const struct mta *m, const char *key,
			  int64_t now)
{
	if (e->closing || strcmp(e->key, key) != 0)	/* the key holds the port */
		return false;
	if (e->uses >= MTA_REUSE_MAX || now - e->born >= MTA_REUSE_AGE)
		return false;
	if (m->job->smtputf8 && !e->ext_utf8)
		return false;
	if (m->guarantee && !(e->guarantee && e->tls && !e->plain_only &&
			      (e->dane != DANE_AUTH || e->tinfo.dane == TLS_DANE_RESULT_PASS)))
		return false;
	return true;
}

/* Park m's connection after a clean transaction; false when it should be closed instead. */
static bool mta_cache_put(struct mta *m)
{
	struct mta_cache *c = m->relay->mta_cache;
	struct mta_host *h = mta_host(m);
	struct timeval tv = { MTA_IDLE_SECONDS, 0 };
	struct mta_idle *e;
	char *key;
	size_t same = 0;

	if (c == NULL || m->probe || m->bev == NULL || h == NULL || m->ai >= h->naddr ||
	    m->last_code == 421 || m->data_fd >= 0 ||
	    evbuffer_get_length(bufferevent_get_input(m->bev)) > 0 ||
	    m->conn_uses + 1 >= MTA_REUSE_MAX)
		return false;
	key = mta_dest_key(m);
	for (e = c->idle; e != NULL; e = e->next)
		if (!e->closing && strcmp(e->key, key) == 0)
			same++;
	if (same >= MTA_IDLE_PER_DEST) {
		free(key);
		return false;
	}
	e = xcalloc(1, sizeof(*e));
	e->cache = c;
	e->key = key;
	e->host = xstrdup(h->name);
	e->ip = xstrdup(h->addrs[m->ai]);
	e->port = m->port;
	e->bev = m->bev;
	e->tls = m->tls;
	e->plain_only = m->plain_only;
	e->guarantee = m->conn_guarantee;
	e->dane = m->dane;
	e->tinfo = m->tinfo;
	e->ext_dsn = m->ext_dsn;
	e->ext_8bit = m->ext_8bit;
	e->ext_utf8 = m->ext_utf8;
	e->ext_pipelining = m->ext_pipelining;
	e->ext_size = m->ext_size;
	e->size_limit = m->size_limit;
	e->uses = m->conn_uses + 1;
	e->born = m->conn_born;
	m->bev = NULL;
	m->tls = false;
	bufferevent_setcb(e->bev, mta_idle_readcb, NULL, mta_idle_eventcb, e);
	bufferevent_set_timeouts(e->bev, &tv, NULL);
	bufferevent_enable(e->bev, EV_READ);
	e->next = c->idle;
	c->idle = e;
	c->nidle++;
	log_debug("event=mta_idle id=%s mx=%s addr=%s uses=%u idle=%zu", m->job->msg_id, e->host,
		  e->ip, e->uses, c->nidle);
	return true;
}

/* Take a fitting idle connection for m's destination and make it m's: true when found. */
static bool mta_cache_take(struct mta *m)
{
	struct mta_cache *c = m->relay->mta_cache;
	int64_t now = time(NULL);
	struct mta_idle *e;
	char *key;

	if (c == NULL || m->probe)
		return false;
	key = mta_dest_key(m);
	for (e = c->idle; e != NULL; e = e->next)
		if (mta_idle_fits(e, m, key, now))
			break;
	free(key);
	if (e == NULL)
		return false;
	m->hosts = xcalloc(1, sizeof(*m->hosts));
	m->hosts[0].name = xstrdup(e->host);
	m->hosts[0].addrs = xcalloc(1, sizeof(char *));
	m->hosts[0].addrs[0] = xstrdup(e->ip);
	m->hosts[0].naddr = 1;
	m->hosts[0].dane = e->dane;
	m->nhost = 1;
	m->hi = m->ai = 0;
	m->bev = e->bev;
	m->tls = e->tls;
	m->plain_only = e->plain_only;
	m->conn_guarantee = e->guarantee;
	m->dane = e->dane;
	m->tinfo = e->tinfo;
	m->ext_starttls = false;
	m->ext_dsn = e->ext_dsn;
	m->ext_8bit = e->ext_8bit;
	m->ext_utf8 = e->ext_utf8;
	m->ext_pipelining = e->ext_pipelining;
	m->ext_size = e->ext_size;
	m->size_limit = e->size_limit;
	m->conn_uses = e->uses;
	m->conn_born = e->born;
	m->reused = true;
	e->bev = NULL;
	mta_idle_free(e);
	bufferevent_setcb(m->bev, mta_readcb, mta_writecb, mta_eventcb, m);
	mta_set_timeouts(m, m->relay->cfg->relay.command_timeout);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
	log_debug("event=mta_reuse id=%s mx=%s addr=%s tls=%s uses=%u", m->job->msg_id,
		  m->hosts[0].name, m->hosts[0].addrs[0], m->tls ? m->tinfo.version : "none",
		  m->conn_uses);
	return true;
}

static void mta_sess_free(struct mta_sess *s)
{
	SSL_SESSION_free(s->sess);
	free(s->key);
	free(s);
}

/* The TLS session key of the current address: "host|ip|port". */
static char *mta_sess_key(struct mta *m)
{
	struct mta_host *h = mta_host(m);

	return xasprintf("%s|%s|%u", h->name, h->addrs[m->ai], m->port);
}

/* A kept TLS session for the current address (borrowed), or NULL; drops expired ones. */
static SSL_SESSION *mta_sess_find(struct mta *m)
{
	struct mta_cache *c = m->relay->mta_cache;
	int64_t now = time(NULL);
	SSL_SESSION *found = NULL;
	char *key;

	if (c == NULL)
		return NULL;
	key = mta_sess_key(m);
	for (struct mta_sess **p = &c->sess; *p != NULL;) {
		struct mta_sess *s = *p;

		if (s->expires <= now) {
			*p = s->next;
			c->nsess--;
			mta_sess_free(s);
			continue;
		}
		if (strcmp(s->key, key) == 0)
			found = s->sess;
		p = &s->next;
	}
	free(key);
	return found;
}

/* Keep the session of m's TLS connection for resumption (never for DANE hosts). */
static void mta_sess_save(struct mta *m)
{
	struct mta_cache *c = m->relay->mta_cache;
	SSL *ssl = m->bev ? bufferevent_openssl_get_ssl(m->bev) : NULL;
	SSL_SESSION *sess;
	struct mta_sess *s, **p;
	char *key;

	if (c == NULL || ssl == NULL || m->probe || m->dane == DANE_AUTH ||
	    mta_host(m)->dane == DANE_AUTH)
		return;
	/*
	 * A copy: OpenSSL marks the connection's own session not resumable when the connection
	 * is closed without a TLS shutdown, which would spoil the kept one too.
	 */
	sess = SSL_get0_session(ssl) ? SSL_SESSION_dup(SSL_get0_session(ssl)) : NULL;
	if (sess == NULL)
		return;
	if (!SSL_SESSION_is_resumable(sess)) {
		log_debug("event=mta_tls_session id=%s mx=%s kept=no", m->job->msg_id,
			  mta_host(m)->name);
		SSL_SESSION_free(sess);
		return;
	}
	key = mta_sess_key(m);
	for (p = &c->sess; *p != NULL; p = &(*p)->next) {
		if (strcmp((*p)->key, key) == 0) {
			s = *p;
			*p = s->next;
			c->nsess--;
			mta_sess_free(s);
			break;
		}
	}
	s = xcalloc(1, sizeof(*s));
	s->key = key;
	s->sess = sess;
	s->expires = time(NULL) + MTA_SESS_SECONDS;
	log_debug("event=mta_tls_session id=%s key=%s kept=yes", m->job->msg_id, key);
	s->next = c->sess;
	c->sess = s;
	if (++c->nsess > MTA_SESS_MAX) {
		for (p = &c->sess; (*p)->next != NULL; p = &(*p)->next)
			;
		mta_sess_free(*p);
		*p = NULL;
		c->nsess--;
	}
}

void mta_cache_free(struct relay *relay)
{
	struct mta_cache *c = relay->mta_cache;

	if (c == NULL)
		return;
	while (c->idle != NULL)
		mta_idle_free(c->idle);
	while (c->sess != NULL) {
		struct mta_sess *s = c->sess;

		c->sess = s->next;
		mta_sess_free(s);
	}
	free(c);
	relay->mta_cache = NULL;
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
	m->plain_only = false;
	mta_route(m);
}

/* Remember a failure of the current host and move on: next address, or next host. */
static void mta_host_failed(struct mta *m, enum policy_reason r, const char *text)
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
	if (m->ext_dsn && r->notify != NULL)
		buf_addf(&b, " NOTIFY=%s", r->notify);
	if (m->ext_dsn && r->orcpt != NULL) {
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

	if (j->smtputf8 && !m->ext_utf8) {
		char *t = xasprintf("%s does not support SMTPUTF8, which the message needs",
				    mta_host(m)->name);

		mta_settle_pending(m, MTA_BOUNCED, REASON_SMTP_PERM, "5.6.7", t);
		free(t);
		mta_end_transaction(m);
		return;
	}
	if (m->ext_size && m->size_limit > 0 && j->size > m->size_limit) {
		char *t = xasprintf("message of %llu bytes exceeds the size limit of %s (%llu bytes)",
				    (unsigned long long)j->size, mta_host(m)->name,
				    (unsigned long long)m->size_limit);

		mta_settle_pending(m, MTA_BOUNCED, REASON_SMTP_PERM, "5.3.4", t);
		free(t);
		mta_end_transaction(m);
		return;
	}
	for (size_t i = 0; i < j->nrcpt; i++)
		j->rcpts[i].accepted = false;
	m->nsent = m->si = m->ri = 0;
	m->mail_ok = false;
	m->pipelined = m->ext_pipelining;
	buf_init(&b, 0);
	buf_addf(&b, "MAIL FROM:<%s>", j->sender);
	if (m->ext_size)
		buf_addf(&b, " SIZE=%llu", (unsigned long long)j->size);
	if (j->body != NULL && m->ext_8bit)
		buf_addf(&b, " BODY=%s", j->body);
	if (j->smtputf8)
		buf_adds(&b, " SMTPUTF8");
	if (m->ext_dsn && j->ret != NULL)
		buf_addf(&b, " RET=%s", j->ret);
	if (m->ext_dsn && j->envid != NULL) {
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

/*
 * Add data to out, doubling dots at line starts (RFC 5321 4.5.2) and sending every line end
 * as CRLF: a bare CR or LF in a spool file (written by an older version, or injected) must
 * never reach the wire, where a receiver could read a line end, and a "." line, into it.
 */
static void mta_stuff(struct evbuffer *out, const char *p, size_t n, struct data_out *dout)
{
	data_out_stuff(dout, out, p, n);
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
		mta_stuff(out, chunk, (size_t)n, &m->dout);
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

	if (m->tls) {
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
	if (m->ext_starttls && !m->plain_only) {
		mta_send(m, ST_STARTTLS, "STARTTLS");
		return;
	}
	a = m->plain_only ? POLICY_PLAINTEXT : policy_starttls_missing(m->guarantee, m->dane);
	if (a != POLICY_PLAINTEXT) {
		char *t = xasprintf("%s does not offer STARTTLS", mta_host(m)->name);

		mta_host_failed(m, REASON_NO_STARTTLS, t);
		free(t);
		return;
	}
	if (m->probe) {
		mta_quit(m);	/* a sender without the guarantee would send in plaintext here */
		return;
	}
	mta_send_mail(m);
}

static void mta_ehlo_keywords(struct mta *m, const struct reply *r)
{
	m->ext_starttls = reply_has_keyword(r, "STARTTLS");
	m->ext_dsn = reply_has_keyword(r, "DSN");
	m->ext_8bit = reply_has_keyword(r, "8BITMIME");
	m->ext_utf8 = reply_has_keyword(r, "SMTPUTF8");
	m->ext_pipelining = reply_has_keyword(r, "PIPELINING");
	m->ext_size = reply_has_keyword(r, "SIZE") || mta_ehlo_size(r) > 0;
	m->size_limit = mta_ehlo_size(r);
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
	a = policy_starttls_reply(m->guarantee, m->dane, r->code);
	if (a == POLICY_PROCEED) {
		mta_starttls(m);
		return;
	}
	if (a == POLICY_PLAINTEXT) {
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
		if (m->tls)
			mta_sess_save(m);	/* session tickets have arrived by now */
		mta_after_ehlo(m);
		return;
	case ST_HELO:
		if (r->code / 100 != 2)
			break;
		m->ext_starttls = m->ext_dsn = m->ext_8bit = m->ext_utf8 = false;
		m->ext_pipelining = m->ext_size = false;
		m->size_limit = 0;
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

/* The TLS handshake finished. */
static void mta_tls_ready(struct mta *m)
{
	SSL *ssl = bufferevent_openssl_get_ssl(m->bev);
	struct mta_probe_host *ph = mta_probe_host(m);

	tls_info_get(ssl, true, &m->tinfo);
	m->tls = true;
	if (ph != NULL) {
		ph->handshake_ok = true;
		ph->tls = m->tinfo;
	}
	log_debug("event=mta_tls id=%s mx=%s version=%s cipher=%s dane=%s resumed=%s",
		  m->job->msg_id, mta_host(m)->name, m->tinfo.version, m->tinfo.cipher,
		  mta_dane_name(m->tinfo.dane), SSL_session_reused(ssl) ? "yes" : "no");
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
	enum policy_action a = policy_handshake_failed(m->guarantee, m->dane, f);
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
	if (a == POLICY_RECONNECT_PLAIN && !m->probe) {
		log_info("event=mta_tls_fallback id=%s mx=%s reason=\"%s\"", m->job->msg_id,
			 mta_host(m)->name, t);
		mta_close(m);
		m->plain_only = true;
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
		m->dane = DANE_TLS_ONLY;	/* no record OpenSSL could use: TLS still required */
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
	bufferevent_openssl_set_allow_dirty_shutdown(tlsbev, 1);
	bufferevent_setcb(tlsbev, mta_readcb, mta_writecb, mta_eventcb, m);
	bufferevent_setwatermark(tlsbev, EV_READ, 0, MTA_INPUT_MAX);
	bufferevent_setwatermark(tlsbev, EV_WRITE, MTA_CHUNK / 2, 0);
	mta_set_timeouts(m, m->relay->cfg->relay.command_timeout);
	bufferevent_enable(tlsbev, EV_READ | EV_WRITE);
}

static bool mta_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
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
static void mta_connect(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	struct mta_probe_host *ph = mta_probe_host(m);
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	char *t;

	m->tls = false;
	m->dane = h->dane;
	memset(&m->tinfo, 0, sizeof(m->tinfo));
	m->ext_starttls = m->ext_dsn = m->ext_8bit = m->ext_utf8 = false;
	m->ext_pipelining = m->ext_size = false;
	m->size_limit = 0;
	m->reused = false;
	m->conn_guarantee = m->guarantee;
	m->conn_uses = 0;
	m->conn_born = time(NULL);
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
	bufferevent_setcb(m->bev, mta_readcb, mta_writecb, mta_eventcb, m);
	bufferevent_setwatermark(m->bev, EV_READ, 0, MTA_INPUT_MAX);
	bufferevent_setwatermark(m->bev, EV_WRITE, MTA_CHUNK / 2, 0);
	mta_set_timeouts(m, m->relay->cfg->relay.connect_timeout);
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
	m->state = ST_CONNECT;
	log_debug("event=mta_connect id=%s mx=%s addr=%s port=%u plain_only=%d", m->job->msg_id,
		  h->name, h->addrs[m->ai], m->port, m->plain_only);
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

	m->plain_only = false;
	if (h != NULL && m->ai + 1 < h->naddr) {
		m->ai++;
		mta_connect(m);
		return;
	}
	mta_next_host(m);
}

/* ---- DNS ------------------------------------------------------------------------------ */

static void mta_resolve_host(struct mta *m);

/* The current host is finished with (successfully or not): count it and go on. */
static void mta_next_host(struct mta *m)
{
	struct mta_host *h = mta_host(m);

	mta_close(m);
	m->plain_only = false;
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

static void mta_tlsa_answer(struct dns_answer *a, void *arg)
{
	struct mta *m = arg;
	struct mta_host *h = mta_host(m);
	struct mta_probe_host *ph = mta_probe_host(m);
	size_t n;

	m->dns_handle[0] = 0;
	n = dns_answer_tlsa(a, &h->tlsa);
	h->ntlsa = n;
	h->dane = policy_tlsa(a->status, a->security, (int)n, tls_tlsa_usable(h->tlsa, n));
	if (ph != NULL) {
		ph->tlsa_looked_up = true;
		ph->tlsa_status = a->status;
		ph->tlsa_sec = a->security;
		ph->dane = h->dane;
		ph->tlsa = xcalloc(n ? n : 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			struct buf b;

			buf_init(&b, 0);
			buf_addf(&b, "%u %u %u ", h->tlsa[i].usage, h->tlsa[i].selector,
				 h->tlsa[i].mtype);
			for (size_t k = 0; k < h->tlsa[i].len && k < 64; k++)
				buf_addf(&b, "%02x", h->tlsa[i].data[k]);
			if (h->tlsa[i].len > 64)
				buf_adds(&b, "...");
			ph->tlsa[ph->ntlsa++] = buf_release(&b, NULL);
		}
	}
	log_debug("event=mta_tlsa id=%s mx=%s status=%s security=%s records=%zu dane=%d",
		  m->job->msg_id, h->name, dns_status_name(a->status),
		  dns_security_name(a->security), n, h->dane);
	if (h->dane == DANE_SKIP) {
		char *t = a->security == DNS_BOGUS ?
			  xasprintf("DNSSEC validation failed for %s: the answer may be forged",
				    a->qname) :
			  xasprintf("TLSA lookup for %s failed", a->qname);

		dns_answer_free(a);
		if (strncmp(t, "DNSSEC", 6) == 0) {
			mta_host_failed(m, REASON_DNSSEC_BOGUS, t);
		} else {
			h->temp = true;
			free(m->last_text);
			m->last_text = xstrdup(t);
			m->temp_reason = REASON_DNS_TEMP;
			mta_next_host(m);
		}
		free(t);
		return;
	}
	dns_answer_free(a);
	mta_connect(m);
}

/* Addresses known: look up TLSA when DANE applies, else connect. */
static void mta_addrs_done(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	struct mta_probe_host *ph = mta_probe_host(m);
	enum policy_reason reason;
	enum dns_security sec = h->addr_bogus ? DNS_BOGUS :
				h->addr_sec == DNS_SECURE && h->addr_secure_seen ? DNS_SECURE :
				DNS_INSECURE;
	char *t, *name;

	h->addr_sec = sec;
	if (ph != NULL) {
		ph->addr_sec = sec;
		ph->addrs = xcalloc(h->naddr ? h->naddr : 1, sizeof(char *));
		for (size_t i = 0; i < h->naddr; i++)
			ph->addrs[i] = xstrdup(h->addrs[i]);
		ph->naddr = h->naddr;
	}
	if (policy_addr_lookup(sec, (int)h->naddr, &reason) != POLICY_PROCEED) {
		if (reason == REASON_DNSSEC_BOGUS) {
			t = xasprintf("DNSSEC validation failed for %s: the answer may be forged",
				      h->name);
			mta_host_failed(m, reason, t);
		} else {
			t = xasprintf("no address found for %s", h->name);
			h->temp = true;
			free(m->last_text);
			m->last_text = xstrdup(t);
			m->temp_reason = REASON_DNS_TEMP;
			mta_next_host(m);
		}
		free(t);
		return;
	}
	if (!policy_dane_applies(m->mx_sec, sec)) {
		h->dane = DANE_NONE;
		mta_connect(m);
		return;
	}
	name = xasprintf("_%u._tcp.%s", m->port, h->name);
	m->state = ST_TLSA;
	m->dns_handle[0] = dns_resolve(m->relay->dns, name, DNS_RR_TLSA, mta_tlsa_answer, m);
	if (m->dns_handle[0] < 0) {
		m->dns_handle[0] = 0;
		t = xasprintf("TLSA lookup for %s could not start", name);
		h->temp = true;
		free(m->last_text);
		m->last_text = t;
		m->temp_reason = REASON_DNS_TEMP;
		mta_next_host(m);
	}
	free(name);
}

static void mta_addr_answer(struct dns_answer *a, void *arg)
{
	struct mta *m = arg;
	struct mta_host *h = mta_host(m);
	char **v = NULL;
	size_t n;

	m->dns_handle[a->qtype == DNS_RR_AAAA ? 1 : 0] = 0;
	if (a->security == DNS_BOGUS)
		h->addr_bogus = true;
	if (a->status == DNS_OK || a->status == DNS_NODATA) {
		if (a->security != DNS_SECURE)
			h->addr_sec = DNS_INSECURE;
		else
			h->addr_secure_seen = true;
	}
	n = dns_answer_addrs(a, &v);
	for (size_t i = 0; i < n; i++) {
		if (i < MTA_MAX_ADDRS) {
			h->addrs = xreallocarray(h->addrs, h->naddr + 1, sizeof(char *));
			h->addrs[h->naddr++] = v[i];
		} else {
			free(v[i]);
		}
	}
	free(v);
	dns_answer_free(a);
	if (--m->dns_pending == 0)
		mta_addrs_done(m);
}

/* Host m->hi: an IP literal needs no lookup; otherwise A and AAAA in parallel. */
static void mta_resolve_host(struct mta *m)
{
	struct mta_host *h = mta_host(m);
	struct sockaddr_storage ss;
	socklen_t len;

	h->addr_sec = DNS_SECURE;	/* lowered by any answer that is not */
	if (mta_sockaddr(h->name, m->port, &ss, &len)) {
		h->addrs = xcalloc(1, sizeof(char *));
		h->addrs[h->naddr++] = xstrdup(h->name);
		h->addr_sec = DNS_INSECURE;
		mta_addrs_done(m);
		return;
	}
	m->state = ST_ADDR;
	m->dns_pending = 2;
	/* A first: with deferred answers the order of callbacks is that of the answers. */
	m->dns_handle[0] = dns_resolve(m->relay->dns, h->name, DNS_RR_A, mta_addr_answer, m);
	if (m->dns_handle[0] < 0) {
		m->dns_handle[0] = 0;
		m->dns_pending--;
	}
	m->dns_handle[1] = dns_resolve(m->relay->dns, h->name, DNS_RR_AAAA, mta_addr_answer, m);
	if (m->dns_handle[1] < 0) {
		m->dns_handle[1] = 0;
		m->dns_pending--;
	}
	if (m->dns_pending == 0)
		mta_addrs_done(m);
}

/* Set the host list: the MX targets, or one implicit host. */
static void mta_set_hosts(struct mta *m, struct dns_mx *mx, size_t n, const char *implicit)
{
	struct mta_probe *p = m->job->probe;

	if (implicit != NULL) {
		m->hosts = xcalloc(1, sizeof(*m->hosts));
		m->hosts[0].name = xstrdup(implicit);
		m->nhost = 1;
	} else {
		if (n > MTA_MAX_HOSTS)
			n = MTA_MAX_HOSTS;
		m->hosts = xcalloc(n, sizeof(*m->hosts));
		for (size_t i = 0; i < n; i++) {
			m->hosts[i].name = xstrdup(mx[i].host);
			m->hosts[i].pref = mx[i].pref;
		}
		m->nhost = n;
	}
	if (p != NULL) {
		p->hosts = xcalloc(m->nhost ? m->nhost : 1, sizeof(*p->hosts));
		p->nhost = m->nhost;
		for (size_t i = 0; i < m->nhost; i++) {
			p->hosts[i].name = xstrdup(m->hosts[i].name);
			p->hosts[i].pref = m->hosts[i].pref;
		}
	}
}

/* The MX lookup failed for good or for now: every recipient gets that outcome. */
static void mta_mx_failed(struct mta *m, enum policy_action a, enum policy_reason reason,
			  const struct dns_answer *ans)
{
	int64_t now = time(NULL);
	char *t;

	if (reason == REASON_DNSSEC_BOGUS)
		t = xasprintf("DNSSEC validation failed for %s: the answer may be forged",
			      m->job->domain);
	else if (reason == REASON_NULL_MX)
		t = xasprintf("%s does not accept mail (null MX)", m->job->domain);
	else if (reason == REASON_NXDOMAIN)
		t = xasprintf("the domain %s does not exist", m->job->domain);
	else
		t = xasprintf("MX lookup for %s failed (%s)", m->job->domain,
			      dns_status_name(ans->status));
	if (m->probe) {
		m->job->probe->verdict = a;
		m->job->probe->reason = reason;
		mta_finish(m);
		free(t);
		return;
	}
	for (size_t i = 0; i < m->job->nrcpt; i++) {
		struct mta_rcpt *r = &m->job->rcpts[i];
		enum policy_action ra = a;

		if (a == POLICY_HOLD)
			ra = policy_exhausted(true, false, reason, r->first_tls_failure,
					      m->relay->cfg->guarantee.retry_for, now);
		if (ra == POLICY_BOUNCE)
			mta_settle(m, r, MTA_BOUNCED, reason, policy_status(reason, true), t);
		else if (ra == POLICY_HOLD)
			mta_settle(m, r, MTA_HELD, reason, policy_status(reason, true), t);
		else
			mta_settle(m, r, MTA_DEFERRED, reason, policy_status(reason, false), t);
	}
	free(t);
	mta_finish(m);
}

static void mta_mx_answer(struct dns_answer *a, void *arg)
{
	struct mta *m = arg;
	struct dns_mx *mx = NULL;
	bool null_mx = false, implicit;
	enum policy_reason reason;
	enum policy_action act;
	int n = 0;

	m->dns_handle[0] = 0;
	if (a->status == DNS_OK)
		n = dns_answer_mx(a, &mx, &null_mx);
	act = policy_mx_lookup(m->guarantee, a->status, a->security, null_mx, n, &implicit, &reason);
	m->mx_sec = a->security;
	log_debug("event=mta_mx id=%s domain=%s status=%s security=%s count=%d action=%s",
		  m->job->msg_id, m->job->domain, dns_status_name(a->status),
		  dns_security_name(a->security), n, policy_action_name(act));
	if (m->probe) {
		m->job->probe->mx_status = a->status;
		m->job->probe->mx_sec = a->security;
		m->job->probe->null_mx = null_mx;
		m->job->probe->implicit = implicit;
	}
	if (act != POLICY_PROCEED) {
		mta_mx_failed(m, act, reason, a);
	} else {
		m->implicit = implicit;
		mta_set_hosts(m, mx, n > 0 ? (size_t)n : 0, implicit ? m->job->domain : NULL);
		m->hi = 0;
		m->ai = 0;
		mta_resolve_host(m);
	}
	if (mx != NULL)
		dns_mx_free(mx, (size_t)n);
	dns_answer_free(a);
}

/* The notification relay, or the MX lookup. */
static void mta_route(struct mta *m)
{
	const struct conf_hostport *nr = &m->relay->cfg->relay.notify_relay;

	if (m->job->notification && nr->host != NULL && nr->host[0] != '\0' && !m->probe) {
		m->port = nr->port;
		m->mx_sec = DNS_INSECURE;
		m->hosts = xcalloc(1, sizeof(*m->hosts));
		m->hosts[0].name = xstrdup(nr->host);
		m->nhost = 1;
		mta_resolve_host(m);
		return;
	}
	m->state = ST_MX;
	m->dns_handle[0] = dns_resolve(m->relay->dns, m->job->domain, DNS_RR_MX, mta_mx_answer, m);
	if (m->dns_handle[0] < 0) {
		struct dns_answer none = { .status = DNS_SERVFAIL, .security = DNS_INSECURE };

		m->dns_handle[0] = 0;
		mta_mx_failed(m, POLICY_DEFER, REASON_DNS_TEMP, &none);
	}
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
	free(p);
}
