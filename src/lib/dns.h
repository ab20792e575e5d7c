/*
 * dns.h - DNSSEC-validating DNS lookups with libunbound, driven by the libevent loop.
 *
 * Every answer carries its DNSSEC status (SECURE, INSECURE or BOGUS) so that policy code
 * can decide what an answer is worth: RFC 7672 treats the three very differently.
 * Lookups are asynchronous (the callback runs on the event loop); dns_resolve_sync is
 * for command-line tools only.
 */
#ifndef PW_DNS_H
#define PW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns;

enum dns_security {
	DNS_INSECURE,	/* no DNSSEC chain covers the answer */
	DNS_SECURE,	/* validated */
	DNS_BOGUS,	/* validation failed: never trust, never use for a delivery decision */
};

enum dns_status {
	DNS_OK,		/* rcode NOERROR with data */
	DNS_NODATA,	/* NOERROR, no records of that type */
	DNS_NXDOMAIN,
	DNS_SERVFAIL,	/* the lookup failed (timeout, server failure, BOGUS): temporary */
};

#define DNS_RR_A	1
#define DNS_RR_MX	15
#define DNS_RR_TXT	16
#define DNS_RR_AAAA	28
#define DNS_RR_TLSA	52
#define DNS_RR_SMIMEA	53
#define DNS_RR_OPENPGPKEY 61
#define DNS_RR_CAA	257

struct dns_rr {
	uint8_t *data;		/* RDATA in wire format */
	size_t len;
};

struct dns_answer {
	char *qname;
	int qtype;
	enum dns_status status;
	enum dns_security security;
	char *why_bogus;	/* validator's explanation, or NULL */
	uint32_t ttl;
	struct dns_rr *rrs;
	size_t nrr;
};

/* An MX target after parsing; pref 0 and host "." (RFC 7505 null MX) is reported separately. */
struct dns_mx {
	uint16_t pref;
	char *host;		/* lowercase, no trailing dot */
};

struct dns_tlsa {
	uint8_t usage, selector, mtype;
	uint8_t *data;
	size_t len;
};

typedef void (*dns_cb)(struct dns_answer *answer, void *arg);

/*
 * Create a resolver on base. unbound_config is an unbound.conf (stub zones, trust anchors,
 * forwarders) or NULL/"" for validating recursion from the root with Debian's trust anchor.
 * Returns NULL and sets *err (caller frees) when the configuration is unusable.
 */
struct dns *dns_new(struct event_base *base, const char *unbound_config, char **err);
void dns_free(struct dns *dns);

/*
 * Start a lookup; cb runs later on the event loop with an answer the callee owns (call
 * dns_answer_free). Returns a handle for dns_cancel, or -1 when it could not start (the
 * callback is then never called).
 */
int dns_resolve(struct dns *dns, const char *name, int qtype, dns_cb cb, void *arg);
void dns_cancel(struct dns *dns, int handle);
/* Blocking lookup for command-line tools; NULL with *err set when unbound failed outright. */
struct dns_answer *dns_resolve_sync(struct dns *dns, const char *name, int qtype, char **err);
void dns_answer_free(struct dns_answer *answer);

const char *dns_security_name(enum dns_security sec);	/* "secure", "insecure", "bogus" */
const char *dns_status_name(enum dns_status st);

/*
 * Parse an MX answer: sorted by preference, shuffled among equal preferences. *null_mx is
 * set for a single "0 ." record (RFC 7505). Returns the count (0 when none); -1 when an
 * RDATA is malformed. A root target in any other MX set stays in the list as host ".".
 */
int dns_answer_mx(const struct dns_answer *answer, struct dns_mx **mx, bool *null_mx);
void dns_mx_free(struct dns_mx *mx, size_t n);
/* Parse TLSA records; malformed ones are skipped. Returns the count. */
size_t dns_answer_tlsa(const struct dns_answer *answer, struct dns_tlsa **tlsa);
void dns_tlsa_free(struct dns_tlsa *tlsa, size_t n);
/* Addresses of an A or AAAA answer as text ("192.0.2.1", "2001:db8::1"). Returns the count. */
size_t dns_answer_addrs(const struct dns_answer *answer, char ***addrs);
void dns_strv_free(char **v, size_t n);
/*
 * Turn libunbound's result (or its error code err, result then NULL) into an answer; the
 * mapping of secure/bogus/rcode/havedata to security and status lives here. Copies what it
 * keeps: the caller still frees result.
 */
struct ub_result;
struct dns_answer *dns_answer_from_ub(const char *name, int qtype, int err,
				      const struct ub_result *result);
/*
 * Decode an uncompressed wire-format domain name at data[0..len) into lowercase text without
 * trailing dot (the root name is "."), escaping '.', backslash and unprintable bytes as in zone
 * files; *used (may be NULL) gets its wire length. NULL if malformed.
 */
char *dns_name_from_wire(const uint8_t *data, size_t len, size_t *used);

/*
 * The character-strings of one TXT RDATA joined (RFC 8461 3.1, RFC 8460 3: a record split
 * into strings is read as their concatenation), NUL-terminated in out. Its length, or -1 when
 * the RDATA is malformed, holds a NUL byte, or does not fit in outlen.
 */
int dns_txt_join(const uint8_t *rdata, size_t len, char *out, size_t outlen);

#endif
