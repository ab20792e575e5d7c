/*
 * relay_policy.h - every delivery decision of the relay as pure functions.
 *
 * The SMTP client (relay_mta.c) asks these functions what to do after each DNS answer and
 * each step of a session; nothing here does I/O, so each decision can be tested as a table.
 * The rules come from RFC 7672 (SMTP DANE), RFC 7505 (null MX), RFC 5321 and the
 * TLS-sending guarantee: a recipient under the guarantee gets a message only over a TLS
 * handshake that meets the policy; otherwise delivery to that recipient stops ('held').
 */
#ifndef PW_RELAY_POLICY_H
#define PW_RELAY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "dns.h"
#include "tls.h"

enum policy_action {
	POLICY_PROCEED,		/* go on with the next step */
	POLICY_PLAINTEXT,	/* go on without TLS on this connection (opportunistic) */
	POLICY_RECONNECT_PLAIN,	/* connect to the same address again, without STARTTLS */
	POLICY_NEXT_MX,		/* give up this host: next address / next MX */
	POLICY_DEFER,		/* temporary failure: retry later */
	POLICY_HOLD,		/* the guarantee stops delivery: hold and notify */
	POLICY_BOUNCE,		/* permanent failure: bounce */
};

/* Why a host or a delivery failed; the security reasons stop the guarantee. */
enum policy_reason {
	REASON_NONE,
	REASON_CONNECT,		/* connection refused, timeout, reset before TLS */
	REASON_SMTP_TEMP,	/* 4xx reply */
	REASON_SMTP_PERM,	/* 5xx reply */
	REASON_DNS_TEMP,	/* SERVFAIL, timeout */
	REASON_NXDOMAIN,	/* the domain does not exist */
	REASON_NULL_MX,		/* RFC 7505: the domain accepts no mail */
	REASON_EXPIRED,		/* queue lifetime (or hold time) over */
	/* security failures: */
	REASON_NO_STARTTLS,	/* STARTTLS not offered */
	REASON_STARTTLS_REFUSED,	/* STARTTLS answered with 4xx/5xx */
	REASON_TLS_PROTOCOL,	/* only SSLv3 / TLS 1.0 / TLS 1.1 */
	REASON_TLS_CIPHER,	/* only weak cipher suites */
	REASON_TLS_HANDSHAKE,	/* handshake failed otherwise */
	REASON_DANE_MISMATCH,	/* certificate does not match the TLSA records */
	REASON_INJECTION,	/* data injected after STARTTLS */
	REASON_DNSSEC_BOGUS,	/* MX, address or TLSA answer failed validation */
	/* the receiver's MTA-STS enforce policy (RFC 8461) was not met: defer, never hold */
	REASON_STS_MX_MISMATCH,	/* the MX host does not match the policy's mx patterns */
	REASON_STS_CERT,	/* certificate not valid for the MX name (WebPKI), or TLS < 1.2 */
	REASON_STS_NO_TLS,	/* no STARTTLS, or it was refused */
};

/* Is r one of the MTA-STS reasons (the receiver's policy, not the sender's guarantee)? */
bool policy_reason_is_sts(enum policy_reason r);

/* Is this a failure the guarantee must not let pass (as opposed to an ordinary outage)? */
bool policy_reason_is_security(enum policy_reason r);
const char *policy_reason_name(enum policy_reason r);	/* "no_starttls", ... */
const char *policy_action_name(enum policy_action a);	/* "proceed", "hold", ... */

/* What DANE means for one MX host after its TLSA lookup (RFC 7672 2.2). */
enum policy_dane {
	DANE_NONE,		/* not applicable: opportunistic TLS */
	DANE_AUTH,		/* usable TLSA: authenticated TLS required */
	DANE_TLS_ONLY,		/* TLSA published but none usable: TLS required, unauthenticated */
	DANE_SKIP,		/* TLSA lookup BOGUS or failed: do not use this host */
};

/*
 * The MX lookup for a domain. PROCEED (with *implicit set when there is no MX and the domain
 * itself is the host), DEFER (SERVFAIL, or BOGUS without the guarantee), HOLD (BOGUS under the
 * guarantee) or BOUNCE (NXDOMAIN, null MX). *reason says why.
 */
enum policy_action policy_mx_lookup(bool guarantee, enum dns_status st, enum dns_security sec,
				    bool null_mx, int nmx, bool *implicit, enum policy_reason *reason);

/* Look up TLSA only when the MX answer and the host's address answers were both SECURE. */
bool policy_dane_applies(enum dns_security mx_sec, enum dns_security addr_sec);

/*
 * An MX host's address lookup: PROCEED, or NEXT_MX when it is BOGUS (reason DNSSEC_BOGUS) or
 * gave no address (DNS_TEMP).
 */
enum policy_action policy_addr_lookup(enum dns_security sec, int naddrs, enum policy_reason *reason);

/* The TLSA answer for _port._tcp.host, with usable = tls_tlsa_usable() of its records. */
enum policy_dane policy_tlsa(enum dns_status st, enum dns_security sec, int nrecords, bool usable);

/* After EHLO: STARTTLS not offered. PROCEED is never returned: PLAINTEXT or NEXT_MX. */
enum policy_action policy_starttls_missing(bool guarantee, enum policy_dane dane);
/* STARTTLS answered with code (220 PROCEED; otherwise PLAINTEXT or NEXT_MX). */
enum policy_action policy_starttls_reply(bool guarantee, enum policy_dane dane, int code);
/* The TLS handshake failed with class f: RECONNECT_PLAIN (opportunistic) or NEXT_MX. */
enum policy_action policy_handshake_failed(bool guarantee, enum policy_dane dane, enum tls_failure f);
/* Map a handshake failure class to the reason reported to the sender. */
enum policy_reason policy_tls_reason(enum tls_failure f);

/*
 * Every MX has been tried without a final answer for the recipient. any_temp: some host
 * failed before TLS was reached (or with a 4xx); security: the security failure seen, or
 * REASON_NONE. Under the guarantee a security failure holds the recipient, unless retry_for
 * > 0 and the first TLS failure (first_tls_failure, 0 = none yet) is less than retry_for ago.
 * Returns DEFER or HOLD.
 */
enum policy_action policy_exhausted(bool guarantee, bool any_temp, enum policy_reason security,
				    int64_t first_tls_failure, int64_t retry_for, int64_t now);

/* An SMTP reply to MAIL, RCPT, DATA or the final dot: PROCEED, DEFER or BOUNCE. */
enum policy_action policy_reply(int code);

/* The delay before attempt number attempts+1: retry_min doubling up to retry_max. */
int64_t policy_retry_delay(int attempts, int64_t retry_min, int64_t retry_max);
/* Has a message received at received outlived the queue lifetime at now? */
bool policy_expired(int64_t received, int64_t lifetime, int64_t now);

/* Enhanced status code for a failure with reason r ("5.7.10", "4.4.1", ...). */
const char *policy_status(enum policy_reason r, bool permanent);

#endif
