/*
 * relay_mta_cache.c - the connection cache: why an outgoing connection was reused.
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
 * handshake and DANE again. TLS session resumption (relay_mta_sess.c) is also only an
 * optimisation of a new handshake that is still checked.
 */
#include "relay_mta_priv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "xmalloc.h"

#define MTA_IDLE_SECONDS	3	/* an unused cached connection is closed after this */
#define MTA_IDLE_PER_DEST	20	/* idle connections kept per destination: as many as
				   the scheduler runs at once (SCHED_DEST_MAX), so that
				   a burst of deliveries does not close and reopen them */
#define MTA_REUSE_MAX		100	/* transactions per connection */
#define MTA_REUSE_AGE		300	/* seconds a connection may be reused for */

/* A parked connection with what its session knew about it. */
struct mta_idle {
	struct mta_idle *next;
	struct mta_cache *cache;
	char *key;			/* the destination */
	char *host, *ip;
	struct bufferevent *bev;
	bool closing;			/* QUIT sent, waiting for the reply or the close */
	struct mta_conn conn;		/* uses counts the transactions done on it */
};

struct mta_cache *mta_cache_get(struct relay *relay)
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
void mta_cache_make_room(struct mta_cache *c)
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
	if (e->conn.uses >= MTA_REUSE_MAX || now - e->conn.born >= MTA_REUSE_AGE)
		return false;
	if (m->job->smtputf8 && !e->conn.ext_utf8)
		return false;
	if (m->guarantee && !(e->conn.guarantee && e->conn.tls && !e->conn.plain_only &&
			      (e->conn.dane != DANE_AUTH || e->conn.tinfo.dane == TLS_DANE_RESULT_PASS)))
		return false;
	return true;
}

/* Park m's connection after a clean transaction; false when it should be closed instead. */
bool mta_cache_put(struct mta *m)
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
	    m->conn.uses + 1 >= MTA_REUSE_MAX)
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
	e->bev = m->bev;
	e->conn = m->conn;
	e->conn.uses++;
	m->bev = NULL;
	m->conn.tls = false;
	bufferevent_setcb(e->bev, mta_idle_readcb, NULL, mta_idle_eventcb, e);
	bufferevent_set_timeouts(e->bev, &tv, NULL);
	bufferevent_enable(e->bev, EV_READ);
	e->next = c->idle;
	c->idle = e;
	c->nidle++;
	log_debug("event=mta_idle id=%s mx=%s addr=%s uses=%u idle=%zu", m->job->msg_id, e->host,
		  e->ip, e->conn.uses, c->nidle);
	return true;
}

/* Take a fitting idle connection for m's destination and make it m's: true when found. */
bool mta_cache_take(struct mta *m)
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
	m->hosts[0].dane = e->conn.dane;
	m->nhost = 1;
	m->hi = m->ai = 0;
	m->bev = e->bev;
	m->conn = e->conn;
	m->ext_starttls = false;
	m->reused = true;
	e->bev = NULL;
	mta_idle_free(e);
	mta_attach(m);
	log_debug("event=mta_reuse id=%s mx=%s addr=%s tls=%s uses=%u", m->job->msg_id,
		  m->hosts[0].name, m->hosts[0].addrs[0], m->conn.tls ? m->conn.tinfo.version : "none",
		  m->conn.uses);
	return true;
}

void mta_cache_free(struct relay *relay)
{
	struct mta_cache *c = relay->mta_cache;

	sts_cache_free(relay);
	if (c == NULL)
		return;
	while (c->idle != NULL)
		mta_idle_free(c->idle);
	mta_sess_clear(c);
	free(c);
	relay->mta_cache = NULL;
}

