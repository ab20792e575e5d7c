/*
 * relay_requiretls.c - REQUIRETLS (RFC 8689) on the way out: which MX hosts may receive a
 * message that asked for it.
 *
 * RFC 8689 4.2.1: the next hop must be authenticated by DNSSEC-validated TLSA records (DANE)
 * or by an MTA-STS policy in enforce mode whose checks pass, the connection must use TLS, and
 * the host must offer REQUIRETLS in its EHLO answer (then MAIL carries REQUIRETLS on). A host
 * that fails is given up and the next MX host tried; when the last one fails too, the
 * recipients bounce with 5.7.30 "REQUIRETLS support required" (RFC 8689 5) and the
 * notification says which condition was missing. A temporary failure (a host that could not
 * be reached) still defers as usual.
 */
#include "relay_requiretls.h"

#include "relay_mta_priv.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "xmalloc.h"

const char *requiretls_missing(bool tls, bool dane, bool mta_sts, bool offered)
{
	if (!tls)
		return "does not use TLS";
	if (!dane && !mta_sts)
		return "is authenticated neither by DNSSEC-signed TLSA records (DANE) nor by an "
		       "MTA-STS policy in enforce mode";
	if (!offered)
		return "does not support REQUIRETLS";
	return NULL;
}

bool mta_requiretls_check(struct mta *m)
{
	const char *missing;
	struct mta_host *h;
	const char *name;
	char *t;

	if (!m->job->requiretls || m->probe)
		return true;
	missing = requiretls_missing(m->conn.tls, m->conn.dane == DANE_AUTH &&
				     m->conn.tinfo.dane == TLS_DANE_RESULT_PASS,
				     m->conn.tls && mta_sts_enforced(m), m->conn.ext_requiretls);
	if (missing == NULL)
		return true;
	h = mta_host(m);
	name = h ? h->name : m->job->domain;
	t = xasprintf("the message asked for REQUIRETLS (RFC 8689) and the mail server %s of "
		      "%s %s", name, m->job->domain, missing);
	log_info("event=requiretls_refused id=%s mx=%s reason=\"%s\"", m->job->msg_id, name,
		 missing);
	/* a reused connection is dropped and the route looked up afresh; else the next MX */
	if (m->reused || (h != NULL && m->hi + 1 < m->nhost)) {
		mta_host_failed(m, REASON_TLS_HANDSHAKE, t);
		free(t);
		return false;
	}
	for (size_t i = 0; i < m->job->nrcpt; i++)
		if (m->job->rcpts[i].outcome == MTA_PENDING)
			mta_settle(m, &m->job->rcpts[i], MTA_BOUNCED, REASON_NONE, "5.7.30", t);
	free(t);
	mta_finish(m);
	return false;
}
