/*
 * relay_mta_priv.h - what the parts of the SMTP client share, private to them: the session
 * (struct mta) with its states and hosts, and the calls between the parts:
 *
 *   relay_mta.c        the SMTP conversation, failure bookkeeping, the session's life
 *   relay_mta_route.c  where to connect: MX, address and TLSA look-ups (DNSSEC, DANE)
 *   relay_mta_cache.c  idle connections kept for the next job to the same destination
 *   relay_mta_sess.c   TLS sessions kept per MX address for resumption
 *
 * Everyone else uses relay_delivery.h.
 */
#ifndef PW_RELAY_MTA_PRIV_H
#define PW_RELAY_MTA_PRIV_H

#include <sys/socket.h>

#include "relay_data.h"
#include "relay_delivery.h"

struct bufferevent;
struct event;
struct mta_idle;
struct mta_sess;

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

/*
 * What is known about an open connection: kept with the session while it talks, and moved
 * whole into the connection cache when it is parked (relay_mta_cache.c) and back when taken.
 */
struct mta_conn {
	bool tls;
	bool sts_ok;			/* met the destination's MTA-STS enforce policy */
	bool rpt_noted;			/* a testing policy's failure is counted for the reports */
	bool plain_only;		/* reconnected after a failed opportunistic handshake */
	enum policy_dane dane;		/* in force on this connection */
	struct tls_info tinfo;
	bool ext_dsn, ext_8bit, ext_utf8, ext_pipelining, ext_size;
	bool ext_requiretls;		/* REQUIRETLS in the EHLO answer (RFC 8689) */
	uint64_t size_limit;		/* SIZE announced by the server, 0: none */
	bool guarantee;			/* set up by a session under the guarantee */
	unsigned uses;			/* transactions on this connection before this one */
	int64_t born;
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
	struct mta_conn conn;
	bool ext_starttls;
	bool reused;			/* taken from the connection cache */
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
	/*
	 * MTA-STS (relay_sts_cache.c): the destination's policy, for the TLS reports too.
	 * sts_mode is STS_MODE_NONE without one; sts.text/sts.id are the policy as served and
	 * its TXT id; sts_error the fetch problem (sts-policy-fetch-error), or NULL;
	 * sts_failures counts hosts that did not meet the policy (under testing as well).
	 */
	struct sts_lookup *sts_req;
	enum sts_mode sts_mode;
	struct sts_policy sts;
	char *sts_error;
	unsigned sts_failures;
};

/* Both caches live here, one per relay (relay->mta_cache), created by the first session. */
struct mta_cache {
	struct relay *relay;
	struct mta_idle *idle;		/* newest first */
	size_t nidle;			/* closing ones included */
	size_t nactive;			/* delivery sessions running */
	struct mta_sess *sess;		/* newest first */
	size_t nsess;
};

static inline struct mta_host *mta_host(struct mta *m)
{
	return m->hi < m->nhost ? &m->hosts[m->hi] : NULL;
}

static inline struct mta_probe_host *mta_probe_host(struct mta *m)
{
	return m->probe && m->hi < m->job->probe->nhost ? &m->job->probe->hosts[m->hi] : NULL;
}

/* ---- relay_mta.c ---------------------------------------------------------------------- */

void mta_settle(struct mta *m, struct mta_rcpt *r, enum mta_outcome o, enum policy_reason rc,
		const char *status, const char *reason);
void mta_finish(struct mta *m);
void mta_host_failed(struct mta *m, enum policy_reason r, const char *text);
/* Connect to address m->ai of host m->hi. */
void mta_connect(struct mta *m);
/* The current host is finished with (successfully or not): go on to the next one. */
void mta_next_host(struct mta *m);
/* Make m's connection (m->bev) the session's: its callbacks, timeouts, reading and writing. */
void mta_attach(struct mta *m);
/* An IP literal as a socket address; false when ip is not one. */
bool mta_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/* ---- relay_mta_route.c ------------------------------------------------------------------ */

/* The notification relay, or the MX lookup; then the first host's addresses. */
void mta_route(struct mta *m);
/* Host m->hi: its addresses, then TLSA where DANE applies, then connect. */
void mta_resolve_host(struct mta *m);

/* The MX lookup (after the MTA-STS policy is known). */
void mta_route_mx(struct mta *m);

/* ---- relay_sts_cache.c: MTA-STS for the session's destination ------------------------ */

/* Start the policy lookup; its end calls mta_route_mx. False: none needed, go on at once. */
bool mta_sts_begin(struct mta *m);
/* Before connecting to the current host: false when the policy rules it out (host failed). */
bool mta_sts_host_ok(struct mta *m);
/* Must the current host use TLS because of the policy (enforce, and not a DANE host)? */
bool mta_sts_requires_tls(const struct mta *m);
/* The handshake finished: false when the policy's checks failed (host failed). */
bool mta_sts_tls_ok(struct mta *m);
/* About to send in plaintext (what: why): false when the policy forbids it (host failed). */
bool mta_sts_plain_ok(struct mta *m, const char *what);
/*
 * True when the destination's policy is enforce and the current host matched it and its TLS
 * checks passed (for REQUIRETLS). DANE hosts are not STS-checked: this is false for them.
 */
bool mta_sts_enforced(const struct mta *m);
/* Free the session's MTA-STS state (cancels a lookup in flight). */
void mta_sts_free(struct mta *m);

/* ---- relay_mta_cache.c ------------------------------------------------------------------ */

struct mta_cache *mta_cache_get(struct relay *relay);
/* Close idle connections until sessions plus idle ones fit max_deliveries. */
void mta_cache_make_room(struct mta_cache *c);
/* Park m's connection after a clean transaction; false when it should be closed instead. */
bool mta_cache_put(struct mta *m);
/* Take a fitting idle connection for m's destination and make it m's: true when found. */
bool mta_cache_take(struct mta *m);

/* ---- relay_mta_sess.c ------------------------------------------------------------------- */

/* A kept TLS session for the current address (borrowed), or NULL. */
SSL_SESSION *mta_sess_find(struct mta *m);
/* Keep the session of m's TLS connection for resumption (never for DANE hosts). */
void mta_sess_save(struct mta *m);
/* Forget every kept session (shutdown). */
void mta_sess_clear(struct mta_cache *c);

/* ---- relay_downgrade.c ------------------------------------------------------------------ */

/*
 * Before MAIL on a new connection: record what the destination shows, and defer when it is a
 * downgrade (the host is given up with mta_host_failed). false: do not send MAIL.
 */
bool mta_downgrade_check(struct mta *m);

/* ---- relay_requiretls.c ----------------------------------------------------------------- */

/*
 * Before MAIL: may this connection carry the job's REQUIRETLS message? false: the host was
 * given up (mta_host_failed), or, at the last MX host, the recipients bounced with 5.7.30
 * and the session finished; do not send MAIL.
 */
bool mta_requiretls_check(struct mta *m);

#endif
