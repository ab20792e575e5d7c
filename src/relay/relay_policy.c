/*
 * relay_policy.c - the delivery decisions of the relay; see relay_policy.h.
 *
 * Two kinds of sender meet here. Without the guarantee, TLS is opportunistic: STARTTLS
 * whenever offered, plaintext when the receiver offers no usable TLS, except where DANE
 * (a DNSSEC-secure TLSA record) says TLS is required. With the guarantee, plaintext is never
 * an option and every security failure is final for that recipient: no other route is
 * looked for once every MX has refused, and the sender is told.
 */
#include "relay_policy.h"

/* TLS is required on this host: by the guarantee or by DANE (RFC 7672 2.2). */
static bool policy_tls_required(bool guarantee, enum policy_dane dane)
{
	return guarantee || dane == DANE_AUTH || dane == DANE_TLS_ONLY;
}

bool policy_reason_is_security(enum policy_reason r)
{
	return r >= REASON_NO_STARTTLS;
}

bool policy_reason_is_sts(enum policy_reason r)
{
	return r == REASON_STS_MX_MISMATCH || r == REASON_STS_CERT || r == REASON_STS_NO_TLS;
}

const char *policy_reason_name(enum policy_reason r)
{
	static const char *const names[] = {
		"none", "connect", "smtp_temp", "smtp_perm", "dns_temp", "nxdomain", "null_mx",
		"expired", "no_starttls", "starttls_refused", "tls_protocol", "tls_cipher",
		"tls_handshake", "dane_mismatch", "injection", "dnssec_bogus",
		"sts_mx_mismatch", "sts_certificate", "sts_no_tls",
	};

	if ((unsigned)r < sizeof(names) / sizeof(names[0]))
		return names[r];
	return "unknown";
}

const char *policy_action_name(enum policy_action a)
{
	static const char *const names[] = {
		"proceed", "plaintext", "reconnect_plain", "next_mx", "defer", "hold", "bounce",
	};

	if ((unsigned)a < sizeof(names) / sizeof(names[0]))
		return names[a];
	return "unknown";
}

enum policy_action policy_mx_lookup(bool guarantee, enum dns_status st, enum dns_security sec,
				    bool null_mx, int nmx, bool *implicit, enum policy_reason *reason)
{
	*implicit = false;
	*reason = REASON_NONE;
	/* BOGUS first: a forged NXDOMAIN or null MX must not bounce mail either. */
	if (sec == DNS_BOGUS) {
		*reason = REASON_DNSSEC_BOGUS;
		return guarantee ? POLICY_HOLD : POLICY_DEFER;
	}
	switch (st) {
	case DNS_SERVFAIL:
		*reason = REASON_DNS_TEMP;
		return POLICY_DEFER;
	case DNS_NXDOMAIN:
		*reason = REASON_NXDOMAIN;
		return POLICY_BOUNCE;
	case DNS_NODATA:
		*implicit = true;	/* RFC 5321 5.1: the domain itself is the host */
		return POLICY_PROCEED;
	case DNS_OK:
		break;
	}
	if (null_mx) {
		*reason = REASON_NULL_MX;
		return POLICY_BOUNCE;
	}
	if (nmx <= 0) {
		*reason = REASON_DNS_TEMP;	/* malformed MX records */
		return POLICY_DEFER;
	}
	return POLICY_PROCEED;
}

bool policy_dane_applies(enum dns_security mx_sec, enum dns_security addr_sec)
{
	return mx_sec == DNS_SECURE && addr_sec == DNS_SECURE;
}

enum policy_action policy_addr_lookup(enum dns_security sec, int naddrs, enum policy_reason *reason)
{
	*reason = REASON_NONE;
	if (sec == DNS_BOGUS) {
		*reason = REASON_DNSSEC_BOGUS;
		return POLICY_NEXT_MX;
	}
	if (naddrs <= 0) {
		*reason = REASON_DNS_TEMP;
		return POLICY_NEXT_MX;
	}
	return POLICY_PROCEED;
}

enum policy_dane policy_tlsa(enum dns_status st, enum dns_security sec, int nrecords, bool usable)
{
	if (sec == DNS_BOGUS || st == DNS_SERVFAIL)
		return DANE_SKIP;	/* RFC 7672 2.2: must not use that server */
	if (sec != DNS_SECURE || st != DNS_OK || nrecords <= 0)
		return DANE_NONE;
	return usable ? DANE_AUTH : DANE_TLS_ONLY;
}

enum policy_action policy_starttls_missing(bool guarantee, enum policy_dane dane)
{
	return policy_tls_required(guarantee, dane) ? POLICY_NEXT_MX : POLICY_PLAINTEXT;
}

enum policy_action policy_starttls_reply(bool guarantee, enum policy_dane dane, int code)
{
	if (code == 220)
		return POLICY_PROCEED;
	return policy_tls_required(guarantee, dane) ? POLICY_NEXT_MX : POLICY_PLAINTEXT;
}

enum policy_action policy_handshake_failed(bool guarantee, enum policy_dane dane, enum tls_failure f)
{
	/* A failed DANE check is never followed by plaintext, whoever the sender is. */
	if (f == TLS_FAIL_DANE || policy_tls_required(guarantee, dane))
		return POLICY_NEXT_MX;
	return POLICY_RECONNECT_PLAIN;
}

enum policy_reason policy_tls_reason(enum tls_failure f)
{
	switch (f) {
	case TLS_FAIL_PROTOCOL:
		return REASON_TLS_PROTOCOL;
	case TLS_FAIL_CIPHER:
		return REASON_TLS_CIPHER;
	case TLS_FAIL_DANE:
		return REASON_DANE_MISMATCH;
	case TLS_FAIL_NONE:
	case TLS_FAIL_HANDSHAKE:
		break;
	}
	return REASON_TLS_HANDSHAKE;
}

enum policy_action policy_exhausted(bool guarantee, bool any_temp, enum policy_reason security,
				    int64_t first_tls_failure, int64_t retry_for, int64_t now)
{
	/* A host we could not reach might have offered TLS: that is an outage, not a verdict. */
	if (!guarantee || any_temp || !policy_reason_is_security(security))
		return POLICY_DEFER;
	/* the receiver's MTA-STS policy defers for every sender alike (RFC 8461 5) */
	if (policy_reason_is_sts(security))
		return POLICY_DEFER;
	if (retry_for > 0 && (first_tls_failure == 0 || now - first_tls_failure < retry_for))
		return POLICY_DEFER;
	return POLICY_HOLD;
}

enum policy_action policy_reply(int code)
{
	if (code >= 200 && code < 400)
		return POLICY_PROCEED;
	if (code >= 500)
		return POLICY_BOUNCE;
	return POLICY_DEFER;
}

int64_t policy_retry_delay(int attempts, int64_t retry_min, int64_t retry_max)
{
	int64_t d = retry_min > 0 ? retry_min : 1;

	for (int i = 1; i < attempts && d < retry_max; i++)
		d *= 2;
	return d > retry_max ? retry_max : d;
}

bool policy_expired(int64_t received, int64_t lifetime, int64_t now)
{
	return now - received >= lifetime;
}

const char *policy_status(enum policy_reason r, bool permanent)
{
	if (policy_reason_is_security(r))
		return permanent ? "5.7.10" : "4.7.5";
	switch (r) {
	case REASON_CONNECT:
		return "4.4.1";
	case REASON_DNS_TEMP:
		return "4.4.3";
	case REASON_NXDOMAIN:
		return "5.1.2";
	case REASON_NULL_MX:
		return "5.1.10";
	case REASON_EXPIRED:
		return "4.4.7";
	case REASON_SMTP_PERM:
		return "5.0.0";
	default:
		break;
	}
	return permanent ? "5.0.0" : "4.0.0";
}
