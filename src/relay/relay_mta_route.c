/*
 * relay_mta_route.c - where a delivery connects: the MX look-up (or the notification relay),
 * then per MX host its A and AAAA records and, where DANE applies, its TLSA records, all
 * DNSSEC-validated on the event loop. What each answer means under the guarantee (bogus,
 * insecure, no records, null MX) is decided by relay_policy.c; this file collects the answers
 * into the session's host list and hands over to relay_mta.c to connect (mta_connect) or to
 * give up on a host (mta_host_failed, mta_next_host).
 */
#include "relay_mta_priv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "xmalloc.h"

#define MTA_MAX_HOSTS	10		/* MX hosts tried per delivery */
#define MTA_MAX_ADDRS	8		/* addresses tried per host and family */

/* A look-up for the current host failed for now: note why (text is taken) and try the next. */
static void mta_host_dns_temp(struct mta *m, char *text)
{
	mta_host(m)->temp = true;
	free(m->last_text);
	m->last_text = text;
	m->temp_reason = REASON_DNS_TEMP;
	mta_next_host(m);
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
		bool bogus = a->security == DNS_BOGUS;
		char *t = bogus ? xasprintf("DNSSEC validation failed for %s: the answer may be "
					    "forged", a->qname) :
				  xasprintf("TLSA lookup for %s failed", a->qname);

		dns_answer_free(a);
		if (bogus) {
			mta_host_failed(m, REASON_DNSSEC_BOGUS, t);
			free(t);
		} else {
			mta_host_dns_temp(m, t);
		}
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
			free(t);
		} else {
			mta_host_dns_temp(m, xasprintf("no address found for %s", h->name));
		}
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
		mta_host_dns_temp(m, xasprintf("TLSA lookup for %s could not start", name));
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
void mta_resolve_host(struct mta *m)
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

/* The MX lookup, once the destination's MTA-STS policy is known. */
void mta_route_mx(struct mta *m)
{
	m->state = ST_MX;
	m->dns_handle[0] = dns_resolve(m->relay->dns, m->job->domain, DNS_RR_MX, mta_mx_answer, m);
	if (m->dns_handle[0] < 0) {
		struct dns_answer none = { .status = DNS_SERVFAIL, .security = DNS_INSECURE };

		m->dns_handle[0] = 0;
		mta_mx_failed(m, POLICY_DEFER, REASON_DNS_TEMP, &none);
	}
}

/* The notification relay, or the MTA-STS policy and the MX lookup. */
void mta_route(struct mta *m)
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
	if (!mta_sts_begin(m))	/* else its answer calls mta_route_mx */
		mta_route_mx(m);
}

