/*
 * ct_caa.c - CAA look-ups with RFC 8659 tree climbing, the issue/issuewild decision, and the
 * CAA identities of issuers; see ct_caa.h.
 *
 * The RDATA parser and the property value reader take outside input (DNS answers): they are
 * bounded (CT_CAA_TAG_MAX, CT_CAA_VALUE_MAX, DNS answers hold at most 64 records) and fuzzed
 * (tests/fuzz/fuzz_ct_caa.c). Climbing is one small state machine shared by the event-loop
 * and the blocking forms, so both decide alike.
 */
#include "ct_caa.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

#define CT_CAA_NAME_MAX		253	/* longest name looked up */
#define CT_CAA_CONF_ITEM_MAX	512	/* longest "ISSUER=identity" item of issuer_caa */

/* ---- RDATA ---------------------------------------------------------------------------- */

static bool ct_caa_tag_ok(const uint8_t *p, size_t n)
{
	if (n < 1 || n > CT_CAA_TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum(p[i]))
			return false;
	return true;
}

int ct_caa_rr_parse(const uint8_t *rdata, size_t len, struct ct_caa_rr *out)
{
	size_t taglen, vlen;

	if (len < 2)
		return -1;
	taglen = rdata[1];
	if (taglen > len - 2 || !ct_caa_tag_ok(rdata + 2, taglen))
		return -1;
	vlen = len - 2 - taglen;
	/* A value is text in practice; a NUL could hide the rest from every reader of it. */
	if (vlen > CT_CAA_VALUE_MAX || memchr(rdata + 2 + taglen, '\0', vlen) != NULL)
		return -1;
	out->flags = rdata[0];
	out->tag = str_lower(xstrndup((const char *)rdata + 2, taglen));
	out->value = xstrndup((const char *)rdata + 2 + taglen, vlen);
	return 0;
}

void ct_caa_rr_clear(struct ct_caa_rr *rr)
{
	free(rr->tag);
	free(rr->value);
	rr->tag = rr->value = NULL;
}

void ct_caa_free(struct ct_caa *caa)
{
	if (caa == NULL)
		return;
	for (size_t i = 0; i < caa->n; i++)
		ct_caa_rr_clear(&caa->rrs[i]);
	free(caa->rrs);
	free(caa->owner);
	free(caa);
}

/*
 * The set of an answer with records. A malformed record is kept as a property with an empty
 * tag and its flags byte: unknown, so it matters only when marked critical, which is what a
 * CA that cannot read it would do as well.
 */
static struct ct_caa *ct_caa_from_answer(const struct dns_answer *a, const char *owner)
{
	struct ct_caa *caa = xcalloc(1, sizeof(*caa));

	caa->owner = xstrdup(owner);
	caa->security = a->security;
	caa->rrs = xcalloc(a->nrr ? a->nrr : 1, sizeof(*caa->rrs));
	for (size_t i = 0; i < a->nrr; i++) {
		struct ct_caa_rr *rr = &caa->rrs[caa->n++];

		if (ct_caa_rr_parse(a->rrs[i].data, a->rrs[i].len, rr) < 0) {
			rr->flags = a->rrs[i].len ? a->rrs[i].data[0] : 0;
			rr->tag = xstrdup("");
			rr->value = xstrdup("");
		}
	}
	return caa;
}

/* ---- tree climbing -------------------------------------------------------------------- */

/* The name to start from: lower case, no trailing dot, no wildcard label; NULL if unusable. */
static char *ct_caa_start_name(const char *name)
{
	char *n;
	size_t len;

	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > CT_CAA_NAME_MAX)
		return NULL;
	n = str_lower(xstrndup(name, len));
	/* Labels of 1..63 visible bytes: anything else is no name a CA would look up. */
	for (const char *p = n;; p += strcspn(p, ".") + 1) {
		size_t l = strcspn(p, ".");

		if (l == 0 || l > 63)
			goto bad;
		for (size_t i = 0; i < l; i++)
			if (!isgraph((unsigned char)p[i]) || p[i] == '\\')
				goto bad;
		if (p[l] == '\0')
			break;
	}
	return n;
bad:
	free(n);
	return NULL;
}

/* A BOGUS or SERVFAIL answer is not "no CAA": it would let any CA slip through. */
enum ct_caa_step ct_caa_step(const struct dns_answer *a, const char *qname,
				    struct ct_caa **out, char **err)
{
	if (a->security == DNS_BOGUS) {
		*err = xasprintf("the CAA answer for %s failed DNSSEC validation (%s)", qname,
				 a->why_bogus ? a->why_bogus : "bogus");
		return CT_CAA_FAIL;
	}
	if (a->status == DNS_SERVFAIL) {
		*err = xasprintf("the CAA look-up of %s failed (SERVFAIL or no answer)", qname);
		return CT_CAA_FAIL;
	}
	if (a->status == DNS_OK && a->nrr > 0) {
		*out = ct_caa_from_answer(a, qname);
		return CT_CAA_DONE;
	}
	if (strchr(qname, '.') == NULL) {	/* the root is not asked (RFC 8659 3) */
		*out = xcalloc(1, sizeof(**out));
		(*out)->owner = xstrdup("");
		(*out)->security = a->security;
		return CT_CAA_DONE;
	}
	return CT_CAA_CLIMB;
}

struct ct_caa_query {
	struct dns *dns;		/* borrowed */
	char *name;			/* the one asked now */
	size_t at;			/* its offset in name: the parent is name + next dot + 1 */
	int handle;			/* of the dns_resolve in flight */
	ct_caa_cb cb;
	void *arg;
};

static void ct_caa_query_free(struct ct_caa_query *q)
{
	free(q->name);
	free(q);
}

static void ct_caa_on_answer(struct dns_answer *a, void *arg);

static int ct_caa_ask(struct ct_caa_query *q)
{
	q->handle = dns_resolve(q->dns, q->name + q->at, DNS_RR_CAA, ct_caa_on_answer, q);
	return q->handle < 0 ? -1 : 0;
}

static void ct_caa_on_answer(struct dns_answer *a, void *arg)
{
	struct ct_caa_query *q = arg;
	struct ct_caa *caa = NULL;
	char *err = NULL;
	enum ct_caa_step st = ct_caa_step(a, q->name + q->at, &caa, &err);

	dns_answer_free(a);
	if (st == CT_CAA_CLIMB) {
		q->at += strcspn(q->name + q->at, ".") + 1;
		if (ct_caa_ask(q) == 0)
			return;
		err = xasprintf("cannot look up the CAA of %s", q->name + q->at);
	}
	q->cb(caa, err, q->arg);
	free(err);
	ct_caa_query_free(q);
}

struct ct_caa_query *ct_caa_start(struct dns *dns, const char *name, ct_caa_cb cb, void *arg)
{
	struct ct_caa_query *q;
	char *n = ct_caa_start_name(name);

	if (n == NULL)
		return NULL;
	q = xcalloc(1, sizeof(*q));
	q->dns = dns;
	q->name = n;
	q->cb = cb;
	q->arg = arg;
	if (ct_caa_ask(q) < 0) {
		ct_caa_query_free(q);
		return NULL;
	}
	return q;
}

int ct_caa_lookup(struct dns *dns, const char *name, ct_caa_cb cb, void *arg)
{
	return ct_caa_start(dns, name, cb, arg) == NULL ? -1 : 0;
}

void ct_caa_cancel(struct ct_caa_query *q)
{
	if (q == NULL)
		return;
	dns_cancel(q->dns, q->handle);
	ct_caa_query_free(q);
}

struct ct_caa *ct_caa_lookup_sync(struct dns *dns, const char *name, char **err)
{
	char *n = ct_caa_start_name(name);
	struct ct_caa *caa = NULL;

	*err = NULL;
	if (n == NULL) {
		*err = xasprintf("\"%.64s\" is not a name CAA can be looked up for", name);
		return NULL;
	}
	for (const char *q = n;; q += strcspn(q, ".") + 1) {
		char *derr = NULL;
		struct dns_answer *a = dns_resolve_sync(dns, q, DNS_RR_CAA, &derr);
		enum ct_caa_step st;

		if (a == NULL) {
			*err = xasprintf("the CAA look-up of %s failed: %s", q, derr);
			free(derr);
			break;
		}
		st = ct_caa_step(a, q, &caa, err);
		dns_answer_free(a);
		if (st != CT_CAA_CLIMB)
			break;
	}
	free(n);
	return caa;
}

/* ---- the decision --------------------------------------------------------------------- */

/*
 * The issuer-domain-name of an issue or issuewild value (RFC 8659 4.2: the name, then
 * optionally ";" and parameters) into out, lower case; "" when the value names no CA (";"
 * alone) or does not follow the grammar, which RFC 8659 treats the same: nobody may issue.
 */
static void ct_caa_issuer_domain(const char *value, char *out, size_t size)
{
	const char *p = value, *end;
	size_t len;

	out[0] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strcspn(p, "; \t");
	len = (size_t)(end - p);
	for (const char *t = end; *t && *t != ';'; t++)	/* only blanks before ';' */
		if (*t != ' ' && *t != '\t')
			return;
	if (len == 0 || len >= size)
		return;
	memcpy(out, p, len);
	out[len] = '\0';
	str_lower(out);
	if (!hostname_valid(out))
		out[0] = '\0';
}

/* Property tags that do not stop a CA that knows them (RFC 8659, RFC 9495, CA/B Forum). */
static bool ct_caa_tag_known(const char *tag)
{
	static const char *const known[] = { "issue", "issuewild", "iodef", "contactemail",
					     "contactphone", "issuemail", "issuevmc", NULL };

	for (size_t i = 0; known[i]; i++)
		if (strcmp(tag, known[i]) == 0)
			return true;
	return false;
}

bool ct_caa_allows(const struct ct_caa *caa, const char *identity, bool wildcard)
{
	const char *tag = "issue";
	bool any = false;
	char domain[CT_CAA_NAME_MAX + 2];

	if (caa == NULL)
		return false;
	for (size_t i = 0; i < caa->n; i++) {
		if ((caa->rrs[i].flags & 0x80) && !ct_caa_tag_known(caa->rrs[i].tag))
			return false;
		if (wildcard && strcmp(caa->rrs[i].tag, "issuewild") == 0)
			tag = "issuewild";
	}
	for (size_t i = 0; i < caa->n; i++) {
		if (strcmp(caa->rrs[i].tag, tag) != 0)
			continue;
		any = true;
		ct_caa_issuer_domain(caa->rrs[i].value, domain, sizeof(domain));
		if (identity != NULL && str_list_has(identity, domain))
			return true;
	}
	return !any;	/* no issue property (of the kind that rules): any CA may issue */
}

/* ---- issuers and their identities ----------------------------------------------------- */

/*
 * Well-known public CAs, by the O (or CN) of their issuing certificates, and the CAA
 * identities they document. Deliberately short: [ctmon] issuer_caa extends it (and is
 * consulted first), so a CA missing here is one configuration line away.
 */
static const struct {
	const char *issuer;
	const char *identities;
} ct_caa_builtin[] = {
	{ "Let's Encrypt", "letsencrypt.org" },
	{ "DigiCert Inc", "digicert.com" },
	{ "Sectigo Limited", "sectigo.com" },
	{ "ZeroSSL", "sectigo.com" },
	{ "GlobalSign nv-sa", "globalsign.com" },
	{ "Google Trust Services", "pki.goog" },
	{ "Google Trust Services LLC", "pki.goog" },
	{ "Amazon", "amazon.com,amazontrust.com,awstrust.com,amazonaws.com" },
	{ "Buypass AS-983163327", "buypass.com" },
	{ "Entrust, Inc.", "entrust.net" },
	{ "SSL Corporation", "ssl.com" },
	{ "Microsoft Corporation", "microsoft.com" },
};

/* Does the one-line issuer ("/C=US/O=Let's Encrypt/CN=R3") have an O or CN equal to name? */
static bool ct_caa_issuer_is(const char *issuer_text, const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || issuer_text == NULL)
		return false;
	for (const char *p = strchr(issuer_text, '/'); p != NULL; p = strchr(p + 1, '/')) {
		const char *v;
		size_t len;

		if (strncmp(p, "/O=", 3) == 0)
			v = p + 3;
		else if (strncmp(p, "/CN=", 4) == 0)
			v = p + 4;
		else
			continue;
		len = strcspn(v, "/");
		if (len == n && strncasecmp(v, name, n) == 0)
			return true;
	}
	return false;
}

/* Append identity to the comma-separated *out unless it is there already. */
static void ct_caa_add(char **out, const char *identity, size_t len)
{
	char *one, *t;

	while (len && (*identity == ' ' || *identity == '\t')) {
		identity++;
		len--;
	}
	while (len && (identity[len - 1] == ' ' || identity[len - 1] == '\t'))
		len--;
	one = str_lower(xstrndup(identity, len));
	if (*one == '\0' || (*out != NULL && str_list_has(*out, one))) {
		free(one);
		return;
	}
	t = *out ? xasprintf("%s,%s", *out, one) : xstrdup(one);
	free(*out);
	free(one);
	*out = t;
}

/* The issuer_caa items for this issuer, appended to *out. */
static void ct_caa_conf_identities(const char *conf, const char *issuer_text,
				   const char *key_hash, char **out)
{
	for (const char *p = conf; p && *p;) {
		size_t len = strcspn(p, ",");
		char item[CT_CAA_CONF_ITEM_MAX], *eq, *who;

		if (len > 0 && len < sizeof(item)) {
			memcpy(item, p, len);
			item[len] = '\0';
			if ((eq = strrchr(item, '=')) != NULL) {
				*eq = '\0';
				who = str_trim(item);
				if (ct_caa_issuer_is(issuer_text, who) ||
				    (key_hash != NULL && *key_hash && strcasecmp(who, key_hash) == 0))
					ct_caa_add(out, eq + 1, strlen(eq + 1));
			}
		}
		p = p[len] ? p + len + 1 : NULL;
	}
}

char *ct_caa_identities(const char *issuer_text, const char *issuer_key_sha256,
			const char *issuer_caa_conf)
{
	char *out = NULL;

	ct_caa_conf_identities(issuer_caa_conf, issuer_text, issuer_key_sha256, &out);
	if (out != NULL)
		return out;
	for (size_t i = 0; i < sizeof(ct_caa_builtin) / sizeof(ct_caa_builtin[0]); i++) {
		if (!ct_caa_issuer_is(issuer_text, ct_caa_builtin[i].issuer))
			continue;
		for (const char *s = ct_caa_builtin[i].identities; s != NULL;) {
			size_t len = strcspn(s, ",");

			ct_caa_add(&out, s, len);
			s = s[len] ? s + len + 1 : NULL;
		}
	}
	return out;
}
