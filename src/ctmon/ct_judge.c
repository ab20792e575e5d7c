/*
 * ct_judge.c - the verdict on a certificate for a watched name, and the CAA answers of a
 * round; see ct_judge.h.
 *
 * When a certificate breaks more than one expectation, the verdict is the first of
 * caa_not_allowed (a CA ignored what the domain publishes: the evidence to take to the
 * CA), unknown_key, issuer_not_allowed; the reason names every one broken.
 */
#include "ctmon/ct_judge.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ctmon/ct_caa.h"
#include "log.h"
#include "strutil.h"
#include "xmalloc.h"

/* ---- texts of a certificate ------------------------------------------------------------ */


char *ct_judge_issuer_text(const struct ct_cert *c)
{
	const unsigned char *p = c->issuer;
	X509_NAME *name = d2i_X509_NAME(NULL, &p, (long)c->issuer_len);
	char buf[512] = "";

	if (name != NULL)
		X509_NAME_oneline(name, buf, sizeof(buf));
	X509_NAME_free(name);
	return xstrdup(buf);
}

char *ct_judge_names_text(const struct ct_cert *c)
{
	char *out = xstrdup(""), *t, ip[CT_IP_TEXT_MAX];

	for (size_t i = 0; i < c->n_names; i++) {
		const struct ct_name *nm = &c->names[i];
		char *one = nm->kind == CT_NAME_IP
			    ? (ct_name_ip_text(nm, ip, sizeof(ip)) == 0 ? xstrdup(ip) : NULL)
			    : xstrndup((const char *)nm->p, nm->len);

		if (one == NULL || str_list_has(out, one)) {	/* CN repeats a SAN: once */
			free(one);
			continue;
		}
		t = *out ? xasprintf("%s, %s", out, one) : xstrdup(one);
		free(out);
		free(one);
		out = t;
	}
	return out;
}

int ct_judge_cert_key(const uint8_t *der, size_t len, char out[65])
{
	struct ct_cert *c = xmalloc(sizeof(*c));	/* large: CT_NAMES_MAX names */
	unsigned char md[32];
	const char *err;
	int rc = -1;

	if (ct_cert_read(der, len, c, &err) == 0 && c->spki_len > 0 &&
	    EVP_Digest(c->spki, c->spki_len, md, NULL, EVP_sha256(), NULL) == 1) {
		hex_encode(md, sizeof(md), out);
		rc = 0;
	}
	free(c);
	return rc;
}

static size_t ct_judge_u24(const uint8_t *p)
{
	return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
}

int ct_judge_chain_issuer_key(const uint8_t *extra, size_t len, char out[65])
{
	size_t chain, first;

	if (extra == NULL || len < 3 || (chain = ct_judge_u24(extra)) > len - 3 || chain < 3)
		return -1;
	if ((first = ct_judge_u24(extra + 3)) > chain - 3 || first == 0)
		return -1;
	return ct_judge_cert_key(extra + 6, first, out);
}

static bool ct_judge_strv_has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Add the watched names of c of one kind to *out. */
static void ct_judge_add_names(const struct ct_watch *w, const struct ct_cert *c,
			       enum ct_name_kind kind, char ***out, size_t *n)
{
	for (size_t i = 0; i < c->n_names; i++) {
		const struct ct_name *nm = &c->names[i];
		char *s;

		if (nm->kind != kind || !ct_watch_match(w, (const char *)nm->p, nm->len))
			continue;
		s = str_lower(xstrndup((const char *)nm->p, nm->len));
		if (ct_judge_strv_has(*out, *n, s)) {
			free(s);
			continue;
		}
		*out = xreallocarray(*out, *n + 1, sizeof(**out));
		(*out)[(*n)++] = s;
	}
}

size_t ct_judge_caa_names(const struct ct_watch *w, const struct ct_cert *c, char ***out)
{
	size_t n = 0;

	*out = NULL;
	ct_judge_add_names(w, c, CT_NAME_DNS, out, &n);
	if (n == 0)	/* a certificate without SAN names: its CN is the name */
		ct_judge_add_names(w, c, CT_NAME_CN, out, &n);
	return n;
}

void ct_judge_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- the CAA answers of a round -------------------------------------------------------- */

struct ct_judge_name {
	struct ct_judge_caa *jc;
	char *name;			/* as looked up: no "*.", lower case */
	bool started, answered;
	struct ct_caa_query *q;		/* in flight */
	struct ct_caa *caa;		/* the relevant set, or NULL with err */
	char *err;
};

struct ct_judge_caa {
	struct dns *dns;		/* borrowed; NULL: no look-ups */
	struct event_base *base;	/* borrowed; NULL: no time limit */
	struct event *timer;
	struct ct_judge_name **names;
	size_t n, inflight;
	void (*done)(void *arg);
	void *arg;
};

static const char *ct_judge_lookup_name(const char *name)
{
	return strncmp(name, "*.", 2) == 0 ? name + 2 : name;
}

struct ct_judge_caa *ct_judge_caa_new(struct event_base *base, struct dns *dns)
{
	struct ct_judge_caa *jc = xcalloc(1, sizeof(*jc));

	jc->dns = dns;
	jc->base = base;
	return jc;
}

static struct ct_judge_name *ct_judge_caa_find(const struct ct_judge_caa *jc, const char *name)
{
	const char *l = ct_judge_lookup_name(name);

	for (size_t i = 0; i < jc->n; i++)
		if (strcasecmp(jc->names[i]->name, l) == 0)
			return jc->names[i];
	return NULL;
}

void ct_judge_caa_want(struct ct_judge_caa *jc, const char *name)
{
	struct ct_judge_name *jn;

	if (ct_judge_caa_find(jc, name) != NULL)
		return;
	jn = xcalloc(1, sizeof(*jn));
	jn->jc = jc;
	jn->name = str_lower(xstrdup(ct_judge_lookup_name(name)));
	jc->names = xreallocarray(jc->names, jc->n + 1, sizeof(*jc->names));
	jc->names[jc->n++] = jn;
}

static void ct_judge_caa_answer(struct ct_judge_name *jn, struct ct_caa *caa, const char *err)
{
	jn->answered = true;
	jn->caa = caa;
	jn->err = caa == NULL ? xstrdup(err ? err : "no answer") : NULL;
	if (caa == NULL)
		log_info("event=ct_caa_fail name=%s error=\"%s\"", jn->name, jn->err);
}

static bool ct_judge_caa_start_more(struct ct_judge_caa *jc);

static void ct_judge_caa_cb(struct ct_caa *caa, const char *err, void *arg)
{
	struct ct_judge_name *jn = arg;
	struct ct_judge_caa *jc = jn->jc;

	jn->q = NULL;
	jc->inflight--;
	ct_judge_caa_answer(jn, caa, err);
	if (ct_judge_caa_start_more(jc))
		jc->done(jc->arg);	/* may free jc: nothing after it */
}

/* Start look-ups up to the limit; true when every name is answered. */
static bool ct_judge_caa_start_more(struct ct_judge_caa *jc)
{
	for (size_t i = 0; i < jc->n && jc->inflight < CT_JUDGE_CAA_PARALLEL; i++) {
		struct ct_judge_name *jn = jc->names[i];

		if (jn->started)
			continue;
		jn->started = true;
		if (jc->dns == NULL)
			ct_judge_caa_answer(jn, NULL, "no resolver");
		else if ((jn->q = ct_caa_start(jc->dns, jn->name, ct_judge_caa_cb, jn)) == NULL)
			ct_judge_caa_answer(jn, NULL, "not a name CAA can be looked up for");
		else
			jc->inflight++;
	}
	for (size_t i = 0; i < jc->n; i++)
		if (!jc->names[i]->answered)
			return false;
	return true;
}

/* The run took too long: what is still unanswered is "not checked". */
static void ct_judge_caa_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ct_judge_caa *jc = arg;

	for (size_t i = 0; i < jc->n; i++) {
		struct ct_judge_name *jn = jc->names[i];

		if (jn->answered)
			continue;
		ct_caa_cancel(jn->q);
		jn->q = NULL;
		jn->started = true;
		ct_judge_caa_answer(jn, NULL, "no answer in time");
	}
	jc->inflight = 0;
	jc->done(jc->arg);	/* may free jc */
}

void ct_judge_caa_run(struct ct_judge_caa *jc, void (*done)(void *arg), void *arg)
{
	struct timeval tv = { CT_JUDGE_CAA_TIMEOUT_S, 0 };

	jc->done = done;
	jc->arg = arg;
	if (ct_judge_caa_start_more(jc)) {
		done(arg);
		return;
	}
	if (jc->base == NULL)
		return;
	if ((jc->timer = evtimer_new(jc->base, ct_judge_caa_timeout, jc)) == NULL)
		fatalx("cannot create a timer");
	evtimer_add(jc->timer, &tv);
}

void ct_judge_caa_free(struct ct_judge_caa *jc)
{
	if (jc == NULL)
		return;
	if (jc->timer != NULL)
		event_free(jc->timer);
	for (size_t i = 0; i < jc->n; i++) {
		ct_caa_cancel(jc->names[i]->q);
		ct_caa_free(jc->names[i]->caa);
		free(jc->names[i]->err);
		free(jc->names[i]->name);
		free(jc->names[i]);
	}
	free(jc->names);
	free(jc);
}

/* ---- the verdict ----------------------------------------------------------------------- */

/* The property values that rule for a name in caa, comma-separated (caller frees). */
static char *ct_judge_caa_values(const struct ct_caa *caa, bool wildcard)
{
	const char *tag = "issue";
	char *out = NULL, *t;

	for (size_t i = 0; wildcard && i < caa->n; i++)
		if (strcmp(caa->rrs[i].tag, "issuewild") == 0)
			tag = "issuewild";
	for (size_t i = 0; i < caa->n; i++) {
		if (strcmp(caa->rrs[i].tag, tag) != 0)
			continue;
		t = out ? xasprintf("%s, \"%s\"", out, caa->rrs[i].value)
			: xasprintf("\"%s\"", caa->rrs[i].value);
		free(out);
		out = t;
	}
	return out ? out : xstrdup("nothing");
}

/* The CAA part: status into out->caa, and one sentence (caller frees). */
static char *ct_judge_caa_part(const struct ct_judge_opts *o, const struct ct_judge_cert *c,
			       const struct ct_judge_caa *jc, struct ct_verdict *out)
{
	char *ids = ct_caa_identities(c->issuer, c->issuer_key, o->issuer_caa);
	char *said = NULL, *unchecked = NULL, *allowed_at = NULL;

	out->caa = c->ncaa_names ? "no_caa" : "not_checked";
	if (c->ncaa_names == 0)
		unchecked = xstrdup("CAA not checked: no watched DNS name in the certificate");
	for (size_t i = 0; i < c->ncaa_names && said == NULL; i++) {
		const char *name = c->caa_names[i];
		bool wild = strncmp(name, "*.", 2) == 0;
		struct ct_judge_name *jn = jc ? ct_judge_caa_find(jc, name) : NULL;

		if (jn == NULL || !jn->answered || jn->caa == NULL) {
			if (unchecked == NULL)
				unchecked = xasprintf("CAA not checked for %s: %s", name,
						      jn && jn->err ? jn->err : "not looked up");
			continue;
		}
		if (jn->caa->n == 0)
			continue;
		if (ct_caa_allows(jn->caa, ids, wild)) {
			if (allowed_at == NULL)
				allowed_at = xasprintf("CAA at %s allows %s", jn->caa->owner,
						       ids ? ids : "any CA");
			continue;
		}
		char *vals = ct_judge_caa_values(jn->caa, wild);

		if (ids == NULL) {
			out->caa = "issuer_unknown";
			said = xasprintf("CAA at %s allows only %s to issue for %s, and the CAA "
					 "identity of %s is not known (add it to [ctmon] "
					 "issuer_caa)", jn->caa->owner, vals, name, c->issuer);
		} else {
			out->caa = "not_allowed";
			said = xasprintf("CAA at %s does not let %s (CAA identity %s) issue for %s: "
					 "it allows %s", jn->caa->owner, c->issuer, ids, name,
					 vals);
		}
		free(vals);
	}
	if (said == NULL && unchecked != NULL) {
		out->caa = "not_checked";
		said = unchecked;
		unchecked = NULL;
	} else if (said == NULL && allowed_at != NULL) {
		out->caa = "allowed";
		said = allowed_at;
		allowed_at = NULL;
	} else if (said == NULL) {
		said = xstrdup("no CAA record for its names");
	}
	free(unchecked);
	free(allowed_at);
	free(ids);
	return said;
}

/* Is the issuer one of allowed_issuers: by the hash of its key, or any O or CN value? */
static bool ct_judge_issuer_ok(const char *allowed, const struct ct_judge_cert *c)
{
	if (!*allowed || str_list_has(allowed, c->issuer))
		return true;
	if (c->issuer_key != NULL && str_list_has(allowed, c->issuer_key))
		return true;
	for (const char *p = c->issuer; p && *p; p = strchr(p + 1, '/')) {
		const char *v = strchr(p, '=');	/* "/O=Let's Encrypt/CN=R3": each value */
		bool ok = false;

		if (v != NULL) {
			char *val = xstrndup(v + 1, strcspn(v + 1, "/"));

			ok = str_list_has(allowed, val);
			free(val);
		}
		if (ok)
			return true;
	}
	return false;
}

static void ct_judge_add(char **reason, char *part)
{
	char *t = *reason ? xasprintf("%s; %s", *reason, part) : xstrdup(part);

	free(*reason);
	free(part);
	*reason = t;
}

void ct_judge(const struct ct_judge_opts *o, const struct ct_judge_cert *c,
	      const struct ct_judge_caa *caa, struct ct_verdict *out)
{
	bool key_ok = str_list_has(o->expected_keys ? o->expected_keys : "", c->spki);
	bool issuer_ok = ct_judge_issuer_ok(o->allowed_issuers ? o->allowed_issuers : "", c);
	char *caa_said = ct_judge_caa_part(o, c, caa, out);
	bool caa_ok = strcmp(out->caa, "not_allowed") != 0 &&
		      strcmp(out->caa, "issuer_unknown") != 0;

	out->reason = NULL;
	out->verdict = !caa_ok ? "caa_not_allowed" : !key_ok ? "unknown_key"
		       : !issuer_ok ? "issuer_not_allowed" : "expected";
	if (!caa_ok)
		ct_judge_add(&out->reason, caa_said);
	if (!key_ok)
		ct_judge_add(&out->reason, xstrdup("the certificate's key is none of [ctmon] "
						   "expected_keys"));
	if (!issuer_ok)
		ct_judge_add(&out->reason, c->issuer_key
			? xasprintf("issued by %s (key SHA-256 %s), which is not in [ctmon] "
				    "allowed_issuers", c->issuer, c->issuer_key)
			: xasprintf("issued by %s, which is not in [ctmon] allowed_issuers",
				    c->issuer));
	if (key_ok && issuer_ok && caa_ok)
		ct_judge_add(&out->reason, xstrdup("an expected key, from an allowed issuer"));
	if (caa_ok)
		ct_judge_add(&out->reason, caa_said);
}
