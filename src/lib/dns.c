/*
 * dns.c - DNSSEC-validating lookups with libunbound on the libevent loop; see dns.h.
 *
 * libunbound resolves in a background thread (ub_ctx_async(ctx, 1)) and hands answers back
 * through a pipe whose read end (ub_fd) is watched by a persistent EV_READ event; the event
 * calls ub_process, which runs our callbacks on the loop thread. Every lookup has a small
 * record in a list so that dns_cancel and dns_free can release it: a cancelled lookup's
 * callback never runs.
 *
 * The RDATA parsers at the end take outside input: they are bounded and fuzzed.
 */
#include "dns.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "log.h"
#include "xmalloc.h"

#define DNS_ROOT_ANCHOR		"/usr/share/dns/root.key"
#define DNS_MAX_RRS		64	/* records kept per answer; the rest is dropped */
#define DNS_MAX_RDLEN		65535
#define DNS_MAX_NAME_TEXT	253	/* longest name a lookup may ask for */
#define DNS_MAX_WIRE_NAME	255	/* RFC 1035 3.1 */

struct dns_query {
	struct dns *dns;
	struct dns_query *next;
	int handle;		/* ours, never reused while the process runs */
	int ub_id;		/* libunbound's async_id */
	dns_cb cb;
	void *arg;
	char *name;
	int qtype;
};

struct dns {
	struct ub_ctx *ctx;
	struct event *ev;
	struct dns_query *queries;	/* lookups in flight */
	int next_handle;
};

static char *dns_ub_error(const char *what, int rc)
{
	return xasprintf("%s: %s", what, ub_strerror(rc));
}

/* Read what the resolver thread finished and run the callbacks. */
static void dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *dns = arg;
	int rc = ub_process(dns->ctx);

	if (rc != 0)
		log_warn("event=dns_process error=\"%s\"", ub_strerror(rc));
}

struct dns *dns_new(struct event_base *base, const char *unbound_config, char **err)
{
	struct dns *dns = xcalloc(1, sizeof(*dns));
	int rc;

	*err = NULL;
	dns->next_handle = 1;
	dns->ctx = ub_ctx_create();
	if (dns->ctx == NULL) {
		*err = xstrdup("cannot create the libunbound context");
		goto fail;
	}
	/* A thread, not a forked worker: it shares the cache and works well with sanitizers. */
	if ((rc = ub_ctx_async(dns->ctx, 1)) != 0) {
		*err = dns_ub_error("libunbound threads", rc);
		goto fail;
	}
	if (unbound_config != NULL && unbound_config[0] != '\0') {
		if ((rc = ub_ctx_config(dns->ctx, unbound_config)) != 0) {
			*err = xasprintf("unbound config %s: %s", unbound_config,
					 ub_strerror(rc));
			goto fail;
		}
	} else if ((rc = ub_ctx_add_ta_file(dns->ctx, DNS_ROOT_ANCHOR)) != 0) {
		*err = xasprintf("trust anchor %s: %s", DNS_ROOT_ANCHOR, ub_strerror(rc));
		goto fail;
	}
	dns->ev = event_new(base, ub_fd(dns->ctx), EV_READ | EV_PERSIST, dns_readable, dns);
	if (dns->ev == NULL || event_add(dns->ev, NULL) != 0) {
		*err = xstrdup("cannot watch the libunbound descriptor");
		goto fail;
	}
	return dns;
fail:
	dns_free(dns);
	return NULL;
}

static void dns_query_free(struct dns_query *q)
{
	free(q->name);
	free(q);
}

/* Take q out of the list of lookups in flight. */
static void dns_query_unlink(struct dns *dns, struct dns_query *q)
{
	for (struct dns_query **p = &dns->queries; *p != NULL; p = &(*p)->next) {
		if (*p == q) {
			*p = q->next;
			return;
		}
	}
}

void dns_free(struct dns *dns)
{
	struct dns_query *q, *next;

	if (dns == NULL)
		return;
	if (dns->ev != NULL)
		event_free(dns->ev);
	/* Deleting the context drops unfinished lookups without calling back. */
	if (dns->ctx != NULL)
		ub_ctx_delete(dns->ctx);
	for (q = dns->queries; q != NULL; q = next) {
		next = q->next;
		dns_query_free(q);
	}
	free(dns);
}

struct dns_answer *dns_answer_from_ub(const char *name, int qtype, int err,
				      const struct ub_result *r)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));
	size_t n = 0;

	a->qname = xstrdup(name);
	a->qtype = qtype;
	a->security = DNS_INSECURE;
	a->status = DNS_SERVFAIL;
	if (err != 0 || r == NULL) {
		log_info("event=dns_fail name=%s type=%d error=\"%s\"", name, qtype,
			 ub_strerror(err));
		return a;
	}
	a->ttl = r->ttl < 0 ? 0 : (uint32_t)r->ttl;
	if (r->bogus) {
		a->security = DNS_BOGUS;
		a->why_bogus = xstrdup(r->why_bogus ? r->why_bogus : "validation failed");
		return a;
	}
	if (r->secure)
		a->security = DNS_SECURE;
	if (r->rcode == 3) {
		a->status = DNS_NXDOMAIN;
		return a;
	}
	if (r->rcode != 0)
		return a;
	if (!r->havedata || r->data == NULL) {
		a->status = DNS_NODATA;
		return a;
	}
	while (r->data[n] != NULL && n < DNS_MAX_RRS)
		n++;
	a->rrs = xcalloc(n ? n : 1, sizeof(*a->rrs));
	for (size_t i = 0; i < n; i++) {
		if (r->len[i] < 0 || r->len[i] > DNS_MAX_RDLEN)
			continue;
		a->rrs[a->nrr].len = (size_t)r->len[i];
		a->rrs[a->nrr].data = xcalloc(1, a->rrs[a->nrr].len + 1);
		memcpy(a->rrs[a->nrr].data, r->data[i], a->rrs[a->nrr].len);
		a->nrr++;
	}
	a->status = a->nrr ? DNS_OK : DNS_NODATA;
	return a;
}

/* libunbound's callback, run by ub_process on the loop. */
static void dns_done(void *arg, int err, struct ub_result *result)
{
	struct dns_query *q = arg;
	struct dns_answer *a = dns_answer_from_ub(q->name, q->qtype, err, result);

	ub_resolve_free(result);
	dns_query_unlink(q->dns, q);
	if (a->security == DNS_BOGUS)
		log_info("event=dns_bogus name=%s type=%d why=\"%s\"", a->qname, a->qtype,
			 a->why_bogus);
	q->cb(a, q->arg);
	dns_query_free(q);
}

static bool dns_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= DNS_MAX_NAME_TEXT + 1;
}

int dns_resolve(struct dns *dns, const char *name, int qtype, dns_cb cb, void *arg)
{
	struct dns_query *q;
	int rc;

	if (!dns_name_ok(name) || qtype <= 0 || qtype > 65535) {
		log_info("event=dns_fail name=\"%.64s\" type=%d error=\"bad query\"", name, qtype);
		return -1;
	}
	q = xcalloc(1, sizeof(*q));
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->name = xstrdup(name);
	q->qtype = qtype;
	rc = ub_resolve_async(dns->ctx, name, qtype, 1, q, dns_done, &q->ub_id);
	if (rc != 0) {
		log_warn("event=dns_fail name=%s type=%d error=\"%s\"", name, qtype,
			 ub_strerror(rc));
		dns_query_free(q);
		return -1;
	}
	q->handle = dns->next_handle;
	dns->next_handle = dns->next_handle == 0x7fffffff ? 1 : dns->next_handle + 1;
	q->next = dns->queries;
	dns->queries = q;
	return q->handle;
}

void dns_cancel(struct dns *dns, int handle)
{
	struct dns_query *q;

	for (q = dns->queries; q != NULL; q = q->next)
		if (q->handle == handle)
			break;
	if (q == NULL)
		return;		/* finished already: its callback has run */
	/* After ub_cancel, libunbound never calls back with q: it can go now. */
	(void)ub_cancel(dns->ctx, q->ub_id);
	dns_query_unlink(dns, q);
	dns_query_free(q);
}

struct dns_answer *dns_resolve_sync(struct dns *dns, const char *name, int qtype, char **err)
{
	struct ub_result *r = NULL;
	struct dns_answer *a;
	int rc;

	*err = NULL;
	if (!dns_name_ok(name) || qtype <= 0 || qtype > 65535) {
		*err = xstrdup("bad query");
		return NULL;
	}
	rc = ub_resolve(dns->ctx, name, qtype, 1, &r);
	if (rc != 0) {
		*err = dns_ub_error(name, rc);
		ub_resolve_free(r);
		return NULL;
	}
	a = dns_answer_from_ub(name, qtype, 0, r);
	ub_resolve_free(r);
	return a;
}

void dns_answer_free(struct dns_answer *answer)
{
	if (answer == NULL)
		return;
	for (size_t i = 0; i < answer->nrr; i++)
		free(answer->rrs[i].data);
	free(answer->rrs);
	free(answer->qname);
	free(answer->why_bogus);
	free(answer);
}

const char *dns_security_name(enum dns_security sec)
{
	switch (sec) {
	case DNS_SECURE:
		return "secure";
	case DNS_BOGUS:
		return "bogus";
	case DNS_INSECURE:
		break;
	}
	return "insecure";
}

const char *dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_SERVFAIL:
		break;
	}
	return "servfail";
}

/*
 * Append one label byte in presentation format: letters lowercased, '.' and '\' escaped,
 * anything not printable as \DDD, so that a hostile label can never smuggle a separator.
 */
static size_t dns_label_byte(char *out, size_t o, uint8_t c)
{
	if (c >= 'A' && c <= 'Z') {
		out[o++] = (char)(c - 'A' + 'a');
	} else if (c == '.' || c == '\\') {
		out[o++] = '\\';
		out[o++] = (char)c;
	} else if (c <= 0x20 || c >= 0x7f) {
		out[o++] = '\\';
		out[o++] = (char)('0' + c / 100);
		out[o++] = (char)('0' + c / 10 % 10);
		out[o++] = (char)('0' + c % 10);
	} else {
		out[o++] = (char)c;
	}
	return o;
}

/*
 * Names in RDATA from libunbound are uncompressed (RFC 3597 types and the well-known ones are
 * decompressed), so a compression pointer is malformed here. The root name is returned as ".".
 */
int dns_txt_join(const uint8_t *rdata, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	if (outlen == 0)
		return -1;
	while (i < len) {
		size_t n = rdata[i++];

		if (n > len - i || o + n >= outlen || memchr(rdata + i, '\0', n) != NULL)
			return -1;
		memcpy(out + o, rdata + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	return (int)o;
}

char *dns_name_from_wire(const uint8_t *data, size_t len, size_t *used)
{
	/* Worst case every byte becomes \DDD: 4 * 255 plus the terminator is enough. */
	char out[4 * DNS_MAX_WIRE_NAME + 1];
	size_t i = 0, o = 0;

	for (;;) {
		uint8_t l;

		if (i >= len || i >= DNS_MAX_WIRE_NAME)
			return NULL;
		l = data[i++];
		if (l == 0)
			break;
		if (l > 63 || l > len - i || i + l >= DNS_MAX_WIRE_NAME)
			return NULL;	/* compression pointer, bad label type or overrun */
		if (o > 0)
			out[o++] = '.';
		for (uint8_t k = 0; k < l; k++)
			o = dns_label_byte(out, o, data[i + k]);
		i += l;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	if (used != NULL)
		*used = i;
	return xstrdup(out);
}

static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return (int)x->pref - (int)y->pref;
}

/* Shuffle each run of equal preferences (RFC 5321 5.1: spread load among equals). */
static void dns_mx_shuffle(struct dns_mx *mx, size_t n)
{
	size_t start = 0;

	while (start < n) {
		size_t end = start + 1;

		while (end < n && mx[end].pref == mx[start].pref)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + arc4random_uniform((uint32_t)(i - start + 1));
			struct dns_mx t = mx[i];

			mx[i] = mx[j];
			mx[j] = t;
		}
		start = end;
	}
}

/* One MX RDATA: preference and exactly one uncompressed name filling the rest. */
static bool dns_mx_parse(const struct dns_rr *rr, struct dns_mx *out)
{
	size_t used;

	if (rr->len < 3)
		return false;
	out->host = dns_name_from_wire(rr->data + 2, rr->len - 2, &used);
	if (out->host == NULL)
		return false;
	if (used != rr->len - 2) {
		free(out->host);
		out->host = NULL;
		return false;
	}
	out->pref = (uint16_t)(rr->data[0] << 8 | rr->data[1]);
	return true;
}

int dns_answer_mx(const struct dns_answer *answer, struct dns_mx **mx, bool *null_mx)
{
	struct dns_mx *v;
	size_t n = answer->nrr;

	*mx = NULL;
	*null_mx = false;
	if (answer->status != DNS_OK || n == 0)
		return 0;
	if (n > DNS_MAX_RRS)
		n = DNS_MAX_RRS;
	v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		if (!dns_mx_parse(&answer->rrs[i], &v[i])) {
			log_info("event=dns_malformed name=%s type=MX", answer->qname);
			dns_mx_free(v, n);
			return -1;
		}
	}
	/* RFC 7505: a single "0 ." says the domain accepts no mail. */
	if (n == 1 && v[0].pref == 0 && strcmp(v[0].host, ".") == 0) {
		*null_mx = true;
		dns_mx_free(v, n);
		return 0;
	}
	qsort(v, n, sizeof(*v), dns_mx_cmp);
	dns_mx_shuffle(v, n);
	*mx = v;
	return (int)n;
}

void dns_mx_free(struct dns_mx *mx, size_t n)
{
	if (mx == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(mx[i].host);
	free(mx);
}

size_t dns_answer_tlsa(const struct dns_answer *answer, struct dns_tlsa **tlsa)
{
	struct dns_tlsa *v;
	size_t n = 0;

	*tlsa = NULL;
	if (answer->status != DNS_OK || answer->nrr == 0)
		return 0;
	v = xcalloc(answer->nrr, sizeof(*v));
	for (size_t i = 0; i < answer->nrr && i < DNS_MAX_RRS; i++) {
		const struct dns_rr *rr = &answer->rrs[i];

		/* usage, selector, matching type and at least one byte of data */
		if (rr->len < 4 || rr->len > DNS_MAX_RDLEN) {
			log_info("event=dns_malformed name=%s type=TLSA", answer->qname);
			continue;
		}
		v[n].usage = rr->data[0];
		v[n].selector = rr->data[1];
		v[n].mtype = rr->data[2];
		v[n].len = rr->len - 3;
		v[n].data = xmemdup(rr->data + 3, v[n].len);
		n++;
	}
	if (n == 0) {
		free(v);
		return 0;
	}
	*tlsa = v;
	return n;
}

void dns_tlsa_free(struct dns_tlsa *tlsa, size_t n)
{
	if (tlsa == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(tlsa[i].data);
	free(tlsa);
}

static bool dns_strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

size_t dns_answer_addrs(const struct dns_answer *answer, char ***addrs)
{
	char **v;
	size_t n = 0;
	int af;
	size_t want;

	*addrs = NULL;
	if (answer->qtype == DNS_RR_A) {
		af = AF_INET;
		want = 4;
	} else if (answer->qtype == DNS_RR_AAAA) {
		af = AF_INET6;
		want = 16;
	} else {
		return 0;
	}
	if (answer->status != DNS_OK || answer->nrr == 0)
		return 0;
	v = xcalloc(answer->nrr, sizeof(*v));
	for (size_t i = 0; i < answer->nrr && i < DNS_MAX_RRS; i++) {
		char buf[INET6_ADDRSTRLEN];

		if (answer->rrs[i].len != want ||
		    inet_ntop(af, answer->rrs[i].data, buf, sizeof(buf)) == NULL) {
			log_info("event=dns_malformed name=%s type=%d", answer->qname,
				 answer->qtype);
			continue;
		}
		if (!dns_strv_has(v, n, buf))	/* a set can hold a record twice: once here */
			v[n++] = xstrdup(buf);
	}
	if (n == 0) {
		free(v);
		return 0;
	}
	*addrs = v;
	return n;
}

void dns_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}
