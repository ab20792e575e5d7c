/*
 * relay_sts.h - MTA-STS (RFC 8461) as a sender: the pure parts. The "_mta-sts" TXT record,
 * the policy text served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and matching an
 * MX host name against the policy's mx patterns. No I/O here; relay_sts_cache.c looks the
 * record up, fetches and keeps the policy, and the SMTP client asks it per destination.
 */
#ifndef PW_RELAY_STS_H
#define PW_RELAY_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STS_POLICY_MAX		(64 * 1024)	/* RFC 8461 3.2: senders may stop at 64 KiB */
#define STS_ID_MAX		32		/* 1*32(ALPHA / DIGIT) */
#define STS_MX_MAX		32		/* mx lines kept; more make the policy invalid */
#define STS_MX_LEN		253
#define STS_MAX_AGE_MAX		31557600	/* about a year */
#define STS_TXT_MAX		1024		/* one TXT record's text */

enum sts_mode {
	STS_MODE_NONE,		/* no policy, or "mode: none": deliver as without MTA-STS */
	STS_MODE_TESTING,	/* deliver as before, note the failures (TLS reports) */
	STS_MODE_ENFORCE,	/* only matching MX hosts with a valid certificate */
};

struct sts_policy {
	enum sts_mode mode;
	char id[STS_ID_MAX + 1];	/* of the TXT record it was fetched under ("" unknown) */
	int64_t max_age;		/* seconds */
	char **mx;			/* patterns, lowercase, no trailing dot */
	size_t nmx;
	char *text;			/* the policy as served (for reports) */
};

/* Outcome of reading the "_mta-sts" TXT RRset. */
enum sts_txt_result {
	STS_TXT_OK,		/* exactly one "v=STSv1" record with a valid id */
	STS_TXT_NONE,		/* no record starting with "v=STSv1" */
	STS_TXT_INVALID,	/* such a record without a valid id, or more than one */
};

/* One TXT record's text: STS_TXT_OK with id filled, STS_TXT_NONE or STS_TXT_INVALID. */
enum sts_txt_result sts_txt_parse(const char *txt, char id[STS_ID_MAX + 1]);
/* An RRset: n records' texts. Exactly one STSv1 record must be there (RFC 8461 3.1). */
enum sts_txt_result sts_txt_set(const char *const *txts, size_t n, char id[STS_ID_MAX + 1]);

/*
 * Parse a policy body (len bytes, at most STS_POLICY_MAX, any line ends CRLF or LF). On
 * success *p holds the policy (id left ""; free with sts_policy_clear) and true is returned;
 * on failure false with a short reason in err.
 */
bool sts_policy_parse(const char *body, size_t len, struct sts_policy *p, char *err,
		      size_t errlen);
void sts_policy_clear(struct sts_policy *p);
void sts_policy_copy(struct sts_policy *dst, const struct sts_policy *src);
/* Is a Content-Type value (as served, NULL when absent) text/plain (RFC 8461 3.3)? */
bool sts_content_type_ok(const char *ct);

/*
 * Does MX host name host match pattern? Case-insensitive, trailing dots ignored; "*.x.y"
 * matches exactly one left-most label in front of "x.y" (RFC 8461 4.1).
 */
bool sts_mx_match(const char *pattern, const char *host);
/* Does host match any of the policy's patterns? */
bool sts_policy_match(const struct sts_policy *p, const char *host);

/*
 * Failure texts under an enforce policy start with STS_REASON_PREFIX, so that a recipient
 * row whose queue lifetime ends between attempts is still bounced as a security failure.
 */
#define STS_REASON_PREFIX	"MTA-STS policy"
bool sts_reason_text(const char *reason);

const char *sts_mode_name(enum sts_mode m);	/* "none", "testing", "enforce" */
/* "enforce" / "testing" / "none" back to the mode; false for anything else. */
bool sts_mode_parse(const char *s, enum sts_mode *m);

/* ---- relay_sts_cache.c: the policy for a destination domain ------------------------- */

struct relay;
struct sts_lookup;

/* What is known about a domain's policy when the lookup ends. */
struct sts_answer {
	const char *domain;
	bool have_policy;		/* policy is valid (mode may still be none) */
	struct sts_policy policy;	/* borrowed for the callback's duration */
	bool from_cache;		/* from the database, not fetched just now */
	const char *error;		/* the fetch (or TXT) problem, or NULL (borrowed) */
	int64_t expires;		/* when the cached policy expires (0 unknown) */
};

typedef void (*sts_cb)(const struct sts_answer *a, void *arg);

/*
 * Look up the policy of domain on the loop: the "_mta-sts" TXT record through the
 * validating resolver, the cache in the database, and where needed the HTTPS fetch
 * (coalesced per domain). cb runs later, exactly once unless cancelled. NULL when the
 * lookup could not start (then cb is never called: go on without a policy).
 */
struct sts_lookup *sts_lookup_start(struct relay *relay, const char *domain, sts_cb cb,
				    void *arg);
void sts_lookup_cancel(struct sts_lookup *l);
/* Drop the relay's fetches and HTTP client (shutdown). */
void sts_cache_free(struct relay *relay);

#endif
