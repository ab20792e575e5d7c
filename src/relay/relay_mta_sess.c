/*
 * relay_mta_sess.c - the TLS session cache: sessions kept per MX address ("host|ip|port")
 * for MTA_SESS_SECONDS, so that a new connection to the same address can resume one and
 * save the full handshake.
 *
 * Resumption is only an optimisation of a new handshake that is still checked: the resumed
 * session has the protocol and cipher of a full handshake that met the policy, and the result
 * goes through the same checks (see relay_mta_cache.c on the guarantee). For hosts with
 * usable TLSA records resumption is not used at all, so DANE is always checked on a full
 * handshake: no session of such a host is saved, and relay_mta.c offers none to it.
 */
#include "relay_mta_priv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include "log.h"
#include "xmalloc.h"

#define MTA_SESS_SECONDS	300	/* TLS sessions kept for resumption */
#define MTA_SESS_MAX		256	/* TLS sessions kept at most */

struct mta_sess {
	struct mta_sess *next;
	char *key;			/* "host|ip|port" */
	SSL_SESSION *sess;
	int64_t expires;
};

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
SSL_SESSION *mta_sess_find(struct mta *m)
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
void mta_sess_save(struct mta *m)
{
	struct mta_cache *c = m->relay->mta_cache;
	SSL *ssl = m->bev ? bufferevent_openssl_get_ssl(m->bev) : NULL;
	SSL_SESSION *sess;
	struct mta_sess *s, **p;
	char *key;

	if (c == NULL || ssl == NULL || m->probe || m->conn.dane == DANE_AUTH ||
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

void mta_sess_clear(struct mta_cache *c)
{
	while (c->sess != NULL) {
		struct mta_sess *s = c->sess;

		c->sess = s->next;
		mta_sess_free(s);
	}
	c->nsess = 0;
}
