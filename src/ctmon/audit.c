/*
 * audit.c - "postwarden audit DOMAIN": the checks a careful outsider makes on the
 * provider's domain; see audit.h.
 *
 * Which hosts are probed: port 25 on every MX host (it must answer); ports 465, 587 and
 * 993 on the targets of the RFC 6186 SRV records _submissions._tcp, _submission._tcp and
 * _imaps._tcp when they exist (on the port they name), else on the MX hosts; port 443 on
 * the domain and on mta-sts.DOMAIN. Every address of a host (A and AAAA, a few at most) is
 * probed, since a sender may reach any of them. A port other than 25 of an MX that does
 * not answer is "not answering", not a failure.
 *
 * DANE is OpenSSL's: the TLSA records go through tls_client_new as for a delivery, and the
 * verification callback lets the handshake finish whatever the outcome, so that one
 * handshake shows both the certificate and whether the records match it.
 */
#include "ctmon/audit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "ctmon/ct_caa.h"
#include "ctmon/ct_store.h"
#include "log.h"
#include "relay/relay_reply.h"
#include "relay/relay_sts.h"
#include "relay/relay_tlsrpt.h"
#include "strutil.h"
#include "tls.h"
#include "xmalloc.h"

#define DNS_RR_SOA	6
#define DNS_RR_SRV	33

/* -- the report ------------------------------------------------------------------------ */

const char *audit_status_name(enum audit_status s)
{
	return s == AUDIT_PASS ? "pass" : s == AUDIT_WARN ? "warn" : "fail";
}

void audit_report_init(struct audit_report *r, const char *domain)
{
	memset(r, 0, sizeof(*r));
	r->domain = xstrdup(domain);
}

void audit_report_free(struct audit_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->lines[i].check);
		free(r->lines[i].subject);
		free(r->lines[i].found);
		free(r->lines[i].todo);
	}
	free(r->lines);
	free(r->domain);
	memset(r, 0, sizeof(*r));
}

void audit_add(struct audit_report *r, const char *check, const char *subject,
	       enum audit_status status, const char *found, const char *todo)
{
	struct audit_line *l;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->lines = xreallocarray(r->lines, r->cap, sizeof(*r->lines));
	}
	l = &r->lines[r->n++];
	l->check = xstrdup(check);
	l->subject = xstrdup(subject);
	l->status = status;
	l->found = xstrdup(found);
	l->todo = xstrdup(todo);
}

bool audit_failed(const struct audit_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->lines[i].status == AUDIT_FAIL)
			return true;
	return false;
}

json_t *audit_report_json(const struct audit_report *r)
{
	json_t *lines = json_array(), *o;
	size_t count[3] = { 0, 0, 0 };

	for (size_t i = 0; i < r->n; i++) {
		const struct audit_line *l = &r->lines[i];

		count[l->status]++;
		json_array_append_new(lines, json_pack("{s:s, s:s, s:s, s:s, s:s}",
			"check", l->check, "subject", l->subject,
			"status", audit_status_name(l->status), "found", l->found, "todo", l->todo));
	}
	o = json_pack("{s:s, s:s, s:{s:I, s:I, s:I}, s:o}", "domain", r->domain,
		      "result", count[AUDIT_FAIL] ? "fail" : count[AUDIT_WARN] ? "warn" : "pass",
		      "counts", "pass", (json_int_t)count[AUDIT_PASS],
		      "warn", (json_int_t)count[AUDIT_WARN], "fail", (json_int_t)count[AUDIT_FAIL],
		      "lines", lines);
	if (o == NULL)
		fatalx("cannot encode the audit report");
	return o;
}

/* -- parsers of outside input ---------------------------------------------------------- */

static bool audit_wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool audit_srv_parse(const uint8_t *rdata, size_t len, struct audit_srv *out)
{
	size_t used = 0;
	char *target;

	if (len < 7)
		return false;
	target = dns_name_from_wire(rdata + 6, len - 6, &used);
	if (target == NULL)
		return false;
	if (used != len - 6) {
		free(target);
		return false;
	}
	out->prio = (uint16_t)(rdata[0] << 8 | rdata[1]);
	out->weight = (uint16_t)(rdata[2] << 8 | rdata[3]);
	out->port = (uint16_t)(rdata[4] << 8 | rdata[5]);
	out->target = target;
	return true;
}

/* The next line of data[*pos..lim): [start, *pos) without its line end; false when none. */
static bool audit_line_next(const char *data, size_t lim, size_t *pos, size_t *start,
			    size_t *len)
{
	const char *nl = *pos < lim ? memchr(data + *pos, '\n', lim - *pos) : NULL;

	if (nl == NULL)
		return false;
	*start = *pos;
	*len = (size_t)(nl - (data + *pos));
	if (*len > 0 && data[*start + *len - 1] == '\r')
		(*len)--;
	*pos = (size_t)(nl - data) + 1;
	return true;
}

/* "HTTP/1.x DDD ..." */
static bool audit_http_status(const char *l, size_t n, int *status)
{
	if (n < 12 || strncmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ')
		return false;
	for (int i = 9; i < 12; i++)
		if (l[i] < '0' || l[i] > '9')
			return false;
	if (n > 12 && l[12] != ' ')
		return false;
	*status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	return true;
}

/*
 * A Content-Type value with the white space around it cut, as the relay's HTTP client
 * hands it on, and cut short at 63 bytes (enough to judge it and to show it).
 */
static void audit_http_ctype(const char *v, size_t n, char ctype[64])
{
	while (n > 0 && audit_wsp(*v)) {
		v++;
		n--;
	}
	while (n > 0 && audit_wsp(v[n - 1]))
		n--;
	if (n > 63)
		n = 63;
	memcpy(ctype, v, n);
	ctype[n] = '\0';
}

bool audit_http_response(const char *data, size_t len, int *status, char ctype[64],
			 size_t *body_off)
{
	size_t lim = len < AUDIT_HTTP_HEAD_MAX ? len : AUDIT_HTTP_HEAD_MAX, pos = 0, st, n;
	bool first = true;

	ctype[0] = '\0';
	if (memchr(data, '\0', lim) != NULL)
		return false;
	while (audit_line_next(data, lim, &pos, &st, &n)) {
		const char *l = data + st, *colon;

		if (first) {
			if (!audit_http_status(l, n, status))
				return false;
			first = false;
			continue;
		}
		if (n == 0) {
			*body_off = pos;
			return true;
		}
		colon = memchr(l, ':', n);
		if (colon == NULL || colon == l)
			return false;
		if ((size_t)(colon - l) == 12 && strncasecmp(l, "content-type", 12) == 0)
			audit_http_ctype(colon + 1, n - 13, ctype);
	}
	return false;
}

/* The reply as a short printable line for the report. */
static void audit_smtp_keep(struct audit_smtp *s, const struct reply *r)
{
	char *t = reply_text(r);

	snprintf(s->last, sizeof(s->last), "%s", t);
	free(t);
}

/* Move the state on one complete reply; what to send next in *send. */
static void audit_smtp_step(struct audit_smtp *s, const struct reply *r, const char **send)
{
	switch (s->state) {
	case AUDIT_SMTP_GREETING:
		s->state = r->code == 220 ? AUDIT_SMTP_EHLO : AUDIT_SMTP_REFUSED;
		if (s->state == AUDIT_SMTP_EHLO)
			*send = "EHLO audit.postwarden.invalid\r\n";
		break;
	case AUDIT_SMTP_EHLO:
		if (r->code != 250)
			s->state = AUDIT_SMTP_REFUSED;
		else if (!reply_has_keyword(r, "STARTTLS"))
			s->state = AUDIT_SMTP_NO_TLS;
		else {
			s->state = AUDIT_SMTP_STARTTLS;
			*send = "STARTTLS\r\n";
		}
		break;
	case AUDIT_SMTP_STARTTLS:
		s->state = r->code == 220 ? AUDIT_SMTP_TLS : AUDIT_SMTP_NO_TLS;
		break;
	default:
		break;
	}
}

static bool audit_smtp_final(enum audit_smtp_state st)
{
	return st != AUDIT_SMTP_GREETING && st != AUDIT_SMTP_EHLO && st != AUDIT_SMTP_STARTTLS;
}

bool audit_smtp_feed(struct audit_smtp *s, const char *data, size_t len, size_t *used,
		     const char **send)
{
	*used = 0;
	*send = NULL;
	while (!audit_smtp_final(s->state)) {
		struct reply r;
		size_t u = 0;
		enum reply_result rr = reply_parse(data + *used, len - *used, &r, &u);

		if (rr == REPLY_NEED_MORE)
			return true;
		if (rr == REPLY_BAD) {
			s->state = AUDIT_SMTP_BAD;
			snprintf(s->last, sizeof(s->last), "a malformed or oversized reply");
			return false;
		}
		*used += u;
		audit_smtp_keep(s, &r);
		audit_smtp_step(s, &r, send);
		reply_free(&r);
		if (*send != NULL)
			return true;
	}
	/*
	 * Bytes after the 220 to STARTTLS would be read as if they came inside TLS: the
	 * command injection flaw of 2011 (CVE-2011-0411 and kin). A correct server sends none.
	 */
	if (s->state == AUDIT_SMTP_TLS && *used < len) {
		s->state = AUDIT_SMTP_BAD;
		snprintf(s->last, sizeof(s->last), "data sent after the 220 to STARTTLS");
	}
	return false;
}

/* -- probes: TCP, SMTP and TLS with deadlines ---------------------------------------------- */

struct audit_ep {
	/* what to probe (borrowed) */
	const char *host;
	const char *ip;
	uint16_t port;
	bool starttls;
	const struct dns_tlsa *tlsa;
	size_t ntlsa;
	/* what was found */
	bool answered;
	int conn_errno;			/* why the connection failed, 0 when it did not */
	char why[160];			/* why not answering, or why the handshake failed */
	struct audit_smtp smtp;
	bool tls_ok;
	char version[16];
	X509 *cert;			/* the served certificate, or NULL */
	bool chain_ok;			/* the system's CAs vouch for the certificate */
	char chain_why[96];		/* why not */
	bool dane_used;			/* usable TLSA records were given to OpenSSL */
	bool dane_ok;
	char dane_match[32];
	char old_version[16];		/* "TLSv1" or "TLSv1.1" when accepted, else "" */
};

static int64_t audit_left(int64_t deadline, int64_t step)
{
	int64_t left = deadline - monotonic_ms();

	return left < step ? (left > 0 ? left : 0) : step;
}

static bool audit_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do {
		rc = poll(&p, 1, (int)audit_left(deadline, AUDIT_STEP_MS));
	} while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* A non-blocking TCP connection to ip:port, or -1 with why (and its errno in *eno). */
static int audit_connect(const char *ip, uint16_t port, int64_t deadline, char *why,
			 size_t whylen, int *eno)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl, el = sizeof(int);
	int fd, e = 0;

	*eno = 0;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		snprintf(why, whylen, "not an address");
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*eno = errno;
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		e = errno;
	else if (!audit_wait(fd, POLLOUT, deadline))
		e = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	*eno = e;
	if (e != 0) {
		snprintf(why, whylen, "%s", e == ETIMEDOUT ? "no answer within the timeout" :
			 strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

static bool audit_send_all(int fd, const char *s, int64_t deadline)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR) && audit_wait(fd, POLLOUT, deadline))
			continue;
		return false;
	}
	return true;
}

/* Greeting, EHLO, STARTTLS; true when the handshake may start. */
static bool audit_smtp_talk(int fd, int64_t deadline, struct audit_smtp *s, char *why,
			    size_t whylen)
{
	char buf[REPLY_MAX_LINE * 4];
	size_t have = 0;

	memset(s, 0, sizeof(*s));
	for (;;) {
		size_t used;
		const char *send;
		bool more = audit_smtp_feed(s, buf, have, &used, &send);
		ssize_t n;

		memmove(buf, buf + used, have - used);
		have -= used;
		if (send != NULL && !audit_send_all(fd, send, deadline)) {
			snprintf(why, whylen, "the connection broke while sending");
			return false;
		}
		if (!more)
			return s->state == AUDIT_SMTP_TLS;
		if (send != NULL)
			continue;
		if (have == sizeof(buf)) {
			s->state = AUDIT_SMTP_BAD;
			snprintf(s->last, sizeof(s->last), "an oversized reply");
			return false;
		}
		if (!audit_wait(fd, POLLIN, deadline)) {
			snprintf(why, whylen, "no SMTP reply within the timeout");
			return false;
		}
		n = recv(fd, buf + have, sizeof(buf) - have, 0);
		if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
			snprintf(why, whylen, "the server closed the connection");
			return false;
		}
		if (n > 0)
			have += (size_t)n;
	}
}

static bool audit_handshake(SSL *ssl, int fd, int64_t deadline)
{
	if (SSL_set_fd(ssl, fd) != 1)
		return false;
	for (;;) {
		int rc = SSL_connect(ssl);

		if (rc == 1)
			return true;
		switch (SSL_get_error(ssl, rc)) {
		case SSL_ERROR_WANT_READ:
			if (!audit_wait(fd, POLLIN, deadline))
				return false;
			break;
		case SSL_ERROR_WANT_WRITE:
			if (!audit_wait(fd, POLLOUT, deadline))
				return false;
			break;
		default:
			return false;
		}
	}
}

/* Let the handshake finish whatever DANE decides: the verdict is read afterwards. */
static int audit_verify_continue(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 1;
}

/* Connect and, for STARTTLS, talk SMTP up to the handshake; -1 when that failed. */
static int audit_open(struct audit_ep *ep, int64_t deadline)
{
	int fd = audit_connect(ep->ip, ep->port, deadline, ep->why, sizeof(ep->why),
			       &ep->conn_errno);

	if (fd < 0)
		return -1;
	ep->answered = true;
	if (ep->starttls && !audit_smtp_talk(fd, deadline, &ep->smtp, ep->why, sizeof(ep->why))) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Does the chain the server sent lead to one of the system's CAs (or SSL_CERT_FILE's)?
 * Checked apart from the handshake, whose verification DANE may have taken over; dates
 * and names are the certificate line's own questions, so only trust is asked here.
 */
static void audit_chain_check(SSL_CTX *ctx, SSL *ssl, struct audit_ep *ep)
{
	X509_STORE_CTX *sc = X509_STORE_CTX_new();

	if (sc == NULL || X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx), ep->cert,
					      SSL_get_peer_cert_chain(ssl)) != 1)
		fatalx("cannot set up a certificate verification");
	X509_STORE_CTX_set_flags(sc, X509_V_FLAG_NO_CHECK_TIME);
	X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_SERVER);
	ep->chain_ok = X509_verify_cert(sc) == 1;
	if (!ep->chain_ok)
		snprintf(ep->chain_why, sizeof(ep->chain_why), "%s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
	X509_STORE_CTX_free(sc);
	ERR_clear_error();
}

/* The handshake at the project's floor (TLS 1.2), with the TLSA records given to OpenSSL. */
static void audit_probe_main(SSL_CTX *ctx, struct audit_ep *ep, int64_t deadline)
{
	enum tls_dane_mode mode;
	char *err = NULL;
	int fd = audit_open(ep, deadline);
	SSL *ssl;

	if (fd < 0)
		return;
	ssl = tls_client_new(ctx, ep->host, ep->tlsa, ep->ntlsa, &mode, &err);
	if (ssl == NULL) {
		snprintf(ep->why, sizeof(ep->why), "%s", err);
		free(err);
		close(fd);
		return;
	}
	ep->dane_used = mode == TLS_DANE_REQUIRED;
	if (ep->dane_used)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, audit_verify_continue);
	ep->tls_ok = audit_handshake(ssl, fd, deadline);
	if (ep->tls_ok) {
		uint8_t u, s, m;

		snprintf(ep->version, sizeof(ep->version), "%s", SSL_get_version(ssl));
		ep->cert = SSL_get1_peer_certificate(ssl);
		if (ep->cert != NULL)
			audit_chain_check(ctx, ssl, ep);
		ep->dane_ok = ep->dane_used && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0;
		if (ep->dane_ok && SSL_get0_dane_tlsa(ssl, &u, &s, &m, NULL, NULL) >= 0)
			snprintf(ep->dane_match, sizeof(ep->dane_match), "%u %u %u", u, s, m);
		(void)SSL_shutdown(ssl);
	} else {
		tls_errors_drain(ep->why, sizeof(ep->why));
		if (ep->why[0] == '\0')
			snprintf(ep->why, sizeof(ep->why), "the handshake did not complete");
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
}

/* Does the server still accept TLS 1.0 or 1.1? A second connection that offers only those. */
static void audit_probe_old(SSL_CTX *old, struct audit_ep *ep, int64_t deadline)
{
	struct audit_ep tmp = *ep;
	int fd;
	SSL *ssl;

	tmp.cert = NULL;
	fd = audit_open(&tmp, deadline);
	if (fd < 0)
		return;
	ssl = SSL_new(old);
	if (ssl == NULL)
		fatalx("cannot create a TLS connection");
	SSL_set_tlsext_host_name(ssl, ep->host);
	if (audit_handshake(ssl, fd, deadline)) {
		snprintf(ep->old_version, sizeof(ep->old_version), "%s", SSL_get_version(ssl));
		(void)SSL_shutdown(ssl);
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
}

/* -- DNS helpers ---------------------------------------------------------------------------- */

static struct dns_answer *audit_lookup(struct audit_ctx *a, const char *name, int qtype)
{
	char *err = NULL;
	struct dns_answer *ans = dns_resolve_sync(a->dns, name, qtype, &err);

	if (ans == NULL) {
		log_warn("event=audit_dns name=%s type=%d error=\"%s\"", name, qtype, err);
		free(err);
	}
	return ans;
}

/* "secure", "insecure" or "bogus (why)" of an answer, for the report. */
static void audit_sec_text(const struct dns_answer *ans, char *buf, size_t len)
{
	if (ans == NULL)
		snprintf(buf, len, "the resolver failed");
	else if (ans->security == DNS_BOGUS)
		snprintf(buf, len, "DNSSEC validation fails%s%s", ans->why_bogus ? ": " : "",
			 ans->why_bogus ? ans->why_bogus : "");
	else
		snprintf(buf, len, "%s", ans->status == DNS_SERVFAIL ? "the look-up failed" :
			 dns_security_name(ans->security));
}

/* A look-up that says nothing reliable: SERVFAIL, BOGUS or no answer at all. */
static bool audit_dns_broken(const struct dns_answer *ans)
{
	return ans == NULL || ans->security == DNS_BOGUS || ans->status == DNS_SERVFAIL;
}

/*
 * The addresses of host (A, then AAAA), at most AUDIT_MAX_ADDRS, each once (one address
 * is probed once).
 */
static size_t audit_addrs(struct audit_ctx *a, const char *host, char **out)
{
	static const int types[] = { DNS_RR_A, DNS_RR_AAAA };
	size_t n = 0;

	for (size_t t = 0; t < 2; t++) {
		struct dns_answer *ans = audit_lookup(a, host, types[t]);
		char **v = NULL;
		size_t k = ans && !audit_dns_broken(ans) ? dns_answer_addrs(ans, &v) : 0;

		for (size_t i = 0; i < k; i++) {
			if (n < AUDIT_MAX_ADDRS) {
				out[n++] = v[i];
				v[i] = NULL;
			}
		}
		dns_strv_free(v, k);
		dns_answer_free(ans);
	}
	return n;
}

static void audit_addrs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

/* The TXT records at name as joined strings; -1 when the look-up is broken. */
static int audit_txts(struct audit_ctx *a, const char *name, char ***out, char *sec,
		      size_t seclen)
{
	struct dns_answer *ans = audit_lookup(a, name, DNS_RR_TXT);
	char buf[AUDIT_TXT_MAX + 1];
	int n = 0;

	*out = NULL;
	audit_sec_text(ans, sec, seclen);
	if (audit_dns_broken(ans)) {
		dns_answer_free(ans);
		return -1;
	}
	if (ans->status == DNS_OK && ans->nrr > 0)
		*out = xcalloc(ans->nrr, sizeof(char *));
	for (size_t i = 0; ans->status == DNS_OK && i < ans->nrr; i++)
		(*out)[n++] = xstrdup(dns_txt_join(ans->rrs[i].data, ans->rrs[i].len, buf,
						   sizeof(buf)) < 0 ? "" : buf);
	dns_answer_free(ans);
	return n;
}

static void audit_strs_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* -- checks on the domain --------------------------------------------------------------- */

static void audit_check_dnssec(struct audit_ctx *a, const char *domain, struct audit_report *r)
{
	struct dns_answer *ans = audit_lookup(a, domain, DNS_RR_SOA);
	char sec[300], found[400];

	audit_sec_text(ans, sec, sizeof(sec));
	snprintf(found, sizeof(found), "answers for %s are %s", domain, sec);
	if (ans != NULL && ans->security == DNS_SECURE && ans->status != DNS_NXDOMAIN)
		audit_add(r, "dnssec", domain, AUDIT_PASS, found, "Nothing to do.");
	else if (ans != NULL && ans->status == DNS_NXDOMAIN)
		audit_add(r, "dnssec", domain, AUDIT_FAIL, "the domain does not exist",
			  "Check the domain name, or publish the zone.");
	else if (ans != NULL && ans->security == DNS_INSECURE && ans->status != DNS_SERVFAIL)
		audit_add(r, "dnssec", domain, AUDIT_FAIL, found,
			  "Sign the zone and publish its DS record at the parent: without DNSSEC "
			  "no sender can trust TLSA, CAA or MX answers.");
	else
		audit_add(r, "dnssec", domain, AUDIT_FAIL, found,
			  "Fix the zone's signatures or the DS record at the parent: validating "
			  "resolvers cannot use the domain at all.");
	dns_answer_free(ans);
}

/* The MX hosts (sorted); 0 with a failing line when there are none to probe. */
static size_t audit_check_mx(struct audit_ctx *a, const char *domain, struct audit_report *r,
			     struct dns_mx **mx)
{
	struct dns_answer *ans = audit_lookup(a, domain, DNS_RR_MX);
	bool null_mx = false;
	int n = 0;
	char sec[300], *found;
	struct buf b;

	*mx = NULL;
	audit_sec_text(ans, sec, sizeof(sec));
	if (audit_dns_broken(ans)) {
		found = xasprintf("the MX look-up failed (%s)", sec);
		audit_add(r, "mx", domain, AUDIT_FAIL, found,
			  "Make the MX records resolvable with valid DNSSEC.");
		free(found);
		dns_answer_free(ans);
		return 0;
	}
	if (ans->status == DNS_OK)
		n = dns_answer_mx(ans, mx, &null_mx);
	dns_answer_free(ans);
	if (n <= 0 || null_mx) {
		audit_add(r, "mx", domain, null_mx ? AUDIT_WARN : AUDIT_FAIL,
			  null_mx ? "a null MX: the domain accepts no mail" :
			  n < 0 ? "malformed MX records" : "no MX records",
			  null_mx ? "Nothing to do if the domain is not meant to receive mail; "
			  "else publish its MX records." : "Publish MX records for the mail hosts.");
		dns_mx_free(*mx, n > 0 ? (size_t)n : 0);
		*mx = NULL;
		return 0;
	}
	buf_init(&b, 4096);
	for (int i = 0; i < n; i++)
		buf_addf(&b, "%s%u %s", i ? ", " : "", (*mx)[i].pref, (*mx)[i].host);
	buf_addf(&b, " (DNSSEC %s)", sec);
	found = buf_release(&b, NULL);
	audit_add(r, "mx", domain, AUDIT_PASS, found, "Nothing to do.");
	free(found);
	return (size_t)n;
}

/* One TXT record at the MTA-STS or TLS-RPT name, as the relay's parsers read it. */
enum audit_txt_result {
	AUDIT_TXT_OTHER,	/* not a record of this kind (another TXT at the name) */
	AUDIT_TXT_OK,
	AUDIT_TXT_BAD,		/* of this kind (version tag matches) but malformed */
};

static enum audit_txt_result audit_sts_txt(const char *txt)
{
	char id[STS_ID_MAX + 1];
	enum sts_txt_result res = sts_txt_parse(txt, id);

	if (res == STS_TXT_NONE)
		return AUDIT_TXT_OTHER;
	/* the relay skips a record it cannot read whole: for senders it is not there */
	return res == STS_TXT_OK && strlen(txt) < STS_TXT_MAX ? AUDIT_TXT_OK : AUDIT_TXT_BAD;
}

/*
 * tlsrpt_rua_parse says only valid or not; a record is of this kind when it starts with the
 * version tag (RFC 8460 3), which tells a malformed record from another one at the name.
 */
static enum audit_txt_result audit_tlsrpt_txt(const char *txt)
{
	struct tlsrpt_rua rua;

	if (strncmp(txt, "v=TLSRPTv1", 10) != 0 ||
	    (txt[10] != '\0' && txt[10] != ';' && !audit_wsp(txt[10])))
		return AUDIT_TXT_OTHER;
	return tlsrpt_rua_parse(txt, strlen(txt), &rua) == 0 ? AUDIT_TXT_OK : AUDIT_TXT_BAD;
}

/*
 * The MTA-STS (sts) or TLS-RPT record at name: exactly one well-formed record of the kind
 * passes; none is a warning; several, or a malformed one, fail. true when it passed.
 */
static bool audit_check_txt_record(struct audit_ctx *a, struct audit_report *r,
				   const char *check, const char *name, bool sts,
				   const char *todo_missing)
{
	bool ok = false;

	char **txt = NULL, sec[300], *found = NULL;
	int n = audit_txts(a, name, &txt, sec, sizeof(sec)), kind = 0, bad = 0;
	const char *first = NULL;

	for (int i = 0; i < n; i++) {
		enum audit_txt_result res = sts ? audit_sts_txt(txt[i]) : audit_tlsrpt_txt(txt[i]);

		if (res == AUDIT_TXT_OTHER)
			continue;
		kind++;
		bad += res == AUDIT_TXT_BAD;
		if (first == NULL)
			first = txt[i];
	}
	if (n < 0) {
		found = xasprintf("the TXT look-up at %s failed (%s)", name, sec);
		audit_add(r, check, name, AUDIT_FAIL, found,
			  "Make the record resolvable with valid DNSSEC.");
	} else if (kind == 0) {
		found = xasprintf("no %s record at %s", sts ? "v=STSv1" : "v=TLSRPTv1", name);
		audit_add(r, check, name, AUDIT_WARN, found, todo_missing);
	} else if (kind > 1) {
		/* RFC 8461 3.1 and RFC 8460 3: several records count as none */
		found = xasprintf("%d records of this kind at %s: senders ignore them all", kind,
				  name);
		audit_add(r, check, name, AUDIT_FAIL, found, "Keep exactly one record.");
	} else if (bad) {
		found = xasprintf("malformed record \"%.200s\"", first);
		audit_add(r, check, name, AUDIT_FAIL, found, sts ?
			  "Publish \"v=STSv1; id=ID\" with an ID of 1 to 32 letters and digits." :
			  "Publish \"v=TLSRPTv1; rua=mailto:ADDRESS\" (or an https: URL).");
	} else {
		found = xasprintf("\"%.200s\" (DNSSEC %s)", first, sec);
		audit_add(r, check, name, AUDIT_PASS, found, "Nothing to do.");
		ok = true;
	}
	free(found);
	audit_strs_free(txt, n);
	return ok;
}

/* -- endpoints: one address and port of a host ------------------------------------------ */

/* The TLSA look-up for host:port, shared by the host's addresses. */
struct audit_tlsa {
	struct dns_answer *ans;
	struct dns_tlsa *recs;
	size_t n;
	char sec[300];
};

static void audit_tlsa_lookup(struct audit_ctx *a, const char *host, uint16_t port,
			      struct audit_tlsa *t)
{
	char name[300];

	memset(t, 0, sizeof(*t));
	snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	t->ans = audit_lookup(a, name, DNS_RR_TLSA);
	audit_sec_text(t->ans, t->sec, sizeof(t->sec));
	if (!audit_dns_broken(t->ans) && t->ans->status == DNS_OK &&
	    t->ans->security == DNS_SECURE)
		t->n = dns_answer_tlsa(t->ans, &t->recs);
}

static void audit_tlsa_clear(struct audit_tlsa *t)
{
	dns_tlsa_free(t->recs, t->n);
	dns_answer_free(t->ans);
}

static bool audit_tlsa_published(const struct audit_tlsa *t)
{
	return t->ans != NULL && t->ans->status == DNS_OK && t->ans->nrr > 0;
}

static void audit_line_smtp(const struct audit_ep *ep, const char *subj, struct audit_report *r)
{
	char *found;

	if (ep->smtp.state == AUDIT_SMTP_TLS) {
		audit_add(r, "starttls", subj, AUDIT_PASS, "STARTTLS offered and accepted",
			  "Nothing to do.");
		return;
	}
	found = xasprintf("%s%s%s", ep->smtp.state == AUDIT_SMTP_NO_TLS ?
			  "STARTTLS not offered or refused" : ep->smtp.state == AUDIT_SMTP_BAD ?
			  "not a well-behaved SMTP server" : ep->why[0] ? ep->why :
			  "the server refused the session", ep->smtp.last[0] ? ": " : "",
			  ep->smtp.last);
	audit_add(r, "starttls", subj, AUDIT_FAIL, found,
		  ep->smtp.state == AUDIT_SMTP_NO_TLS ?
		  "Enable STARTTLS with a certificate for the host name." :
		  "Make the server greet with 220 and answer EHLO with 250 and STARTTLS.");
	free(found);
}

static void audit_line_tls(const struct audit_ep *ep, const char *subj, struct audit_report *r)
{
	char *found;

	if (ep->tls_ok && ep->old_version[0] == '\0') {
		found = xasprintf("%s negotiated; TLS 1.0 and 1.1 refused", ep->version);
		audit_add(r, "tls", subj, AUDIT_PASS, found, "Nothing to do.");
	} else if (ep->tls_ok) {
		found = xasprintf("%s negotiated, but %s is accepted too", ep->version,
				  ep->old_version);
		audit_add(r, "tls", subj, AUDIT_WARN, found,
			  "Turn off TLS 1.0 and 1.1 (allow TLS 1.2 and 1.3 only).");
	} else if (ep->old_version[0] != '\0') {
		found = xasprintf("only %s is offered", ep->old_version);
		audit_add(r, "tls", subj, AUDIT_FAIL, found, "Enable TLS 1.2 and 1.3.");
	} else {
		found = xasprintf("no TLS handshake: %s", ep->why);
		audit_add(r, "tls", subj, AUDIT_FAIL, found,
			  "Configure TLS 1.2 or 1.3 with a certificate and key that match.");
	}
	free(found);
}

static int64_t audit_cert_not_after(X509 *cert)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/*
 * Trust: port 25 senders mostly use DANE or nothing, but MTA-STS senders need a publicly
 * trusted certificate (a warning); mail and web clients on the other ports refuse one
 * they cannot trust (a failure).
 */
static enum audit_status audit_cert_trust(const struct audit_ep *ep, const char **todo)
{
	if (ep->chain_ok)
		return AUDIT_PASS;
	*todo = ep->port == 25 ?
		"Serve a certificate from a public CA with its chain, as MTA-STS senders require "
		"(DANE senders do not)." :
		"Serve a certificate from a public CA with its chain: clients refuse this one.";
	return ep->port == 25 ? AUDIT_WARN : AUDIT_FAIL;
}

static void audit_line_cert(struct audit_ctx *a, const struct audit_ep *ep, const char *subj,
			    struct audit_report *r)
{
	int64_t end = audit_cert_not_after(ep->cert), days = (end - a->now) / 86400;
	bool covers = X509_check_host(ep->cert, ep->host, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
				      NULL) == 1;
	char date[32], *found;
	const char *todo = "Nothing to do.";
	enum audit_status st = audit_cert_trust(ep, &todo);

	format_date(end, date, sizeof(date));
	found = xasprintf("expires %s (%s%lld days), names %s %s, %s%s", date,
			  end < a->now ? "-" : "", (long long)(end < a->now ? -days : days),
			  covers ? "cover" : "do not cover", ep->host,
			  ep->chain_ok ? "chain trusted" : "chain not trusted: ", ep->chain_why);
	if (!covers) {
		st = AUDIT_FAIL;
		todo = "Serve a certificate whose names include the host name.";
	} else if (end <= a->now) {
		st = AUDIT_FAIL;
		todo = "The certificate has expired: renew it now.";
	} else if (end - a->now < (int64_t)AUDIT_WARN_DAYS * 86400 && st != AUDIT_FAIL) {
		st = AUDIT_WARN;
		todo = "Renew the certificate (fewer than 21 days left) and check that renewal "
		       "runs by itself.";
	}
	audit_add(r, "certificate", subj, st, found, todo);
	free(found);
}

static void audit_line_tlsa(const struct audit_ep *ep, const struct audit_tlsa *t,
			    const char *subj, struct audit_report *r)
{
	char *found = NULL;

	if (audit_dns_broken(t->ans)) {
		found = xasprintf("the TLSA look-up failed (%s)", t->sec);
		audit_add(r, "tlsa", subj, AUDIT_FAIL, found,
			  "Fix DNSSEC for the TLSA records: senders that use DANE defer mail.");
	} else if (!audit_tlsa_published(t)) {
		audit_add(r, "tlsa", subj, AUDIT_WARN, "no TLSA records",
			  "Publish TLSA records for the served key (postwarden cert tlsa) in the "
			  "signed zone.");
	} else if (t->ans->security != DNS_SECURE) {
		audit_add(r, "tlsa", subj, AUDIT_FAIL, "TLSA records in a zone without DNSSEC",
			  "Sign the zone: senders ignore TLSA records that are not DNSSEC-secure.");
	} else if (!ep->dane_used) {
		audit_add(r, "tlsa", subj, AUDIT_WARN,
			  "TLSA records, but none usable (RFC 7672 uses only usages 2 and 3)",
			  "Publish 3 1 1 records (postwarden cert tlsa).");
	} else if (!ep->tls_ok) {
		audit_add(r, "tlsa", subj, AUDIT_FAIL,
			  "TLSA records published, but no handshake to compare them with",
			  "Fix TLS on this port, or remove its TLSA records.");
	} else if (ep->dane_ok) {
		found = xasprintf("the served certificate matches TLSA %s (%zu record%s)",
				  ep->dane_match, t->n, t->n == 1 ? "" : "s");
		audit_add(r, "tlsa", subj, AUDIT_PASS, found, "Nothing to do.");
	} else {
		found = xasprintf("the served certificate matches none of the %zu TLSA records",
				  t->n);
		audit_add(r, "tlsa", subj, AUDIT_FAIL, found,
			  "Publish the record of the served key (postwarden cert tlsa), or serve "
			  "the key the records name: DANE senders will not deliver.");
	}
	free(found);
}

/* The auditing host has no route to the address: it says nothing about the server. */
static bool audit_no_route(int e)
{
	return e == ENETUNREACH || e == EAFNOSUPPORT || e == EADDRNOTAVAIL;
}

/* Probe one address and write its lines. must_answer: port 25 of an MX host. */
static void audit_endpoint(struct audit_ctx *a, SSL_CTX *old, struct audit_ep *ep,
			   const struct audit_tlsa *t, bool must_answer, struct audit_report *r)
{
	int64_t deadline = monotonic_ms() + AUDIT_ENDPOINT_MS;
	char *subj = xasprintf("%s[%s]:%u", ep->host, ep->ip, ep->port), *found;

	ep->tlsa = t->recs;
	ep->ntlsa = t->n;
	audit_probe_main(a->ctx, ep, deadline);
	if (!ep->answered && audit_no_route(ep->conn_errno)) {
		/* this machine cannot reach the address at all (often: no IPv6 here) */
		found = xasprintf("cannot be reached from here (%s)", ep->why);
		audit_add(r, "connect", subj, AUDIT_WARN, found,
			  "Run the audit from a host that has a route to this address.");
		free(found);
		free(subj);
		return;
	}
	if (!ep->answered) {
		found = xasprintf("not answering (%s)", ep->why);
		audit_add(r, "connect", subj, must_answer || audit_tlsa_published(t) ?
			  (must_answer ? AUDIT_FAIL : AUDIT_WARN) : AUDIT_PASS, found,
			  must_answer ? "Make the MX host accept connections on port 25." :
			  audit_tlsa_published(t) ? "Remove the TLSA records of a service that "
			  "is not offered, or start the service." : "Nothing to do if the service "
			  "is not offered here.");
		free(found);
		free(subj);
		return;
	}
	if (ep->starttls)
		audit_line_smtp(ep, subj, r);
	if (!ep->starttls || ep->smtp.state == AUDIT_SMTP_TLS) {
		audit_probe_old(old, ep, deadline);
		audit_line_tls(ep, subj, r);
		if (ep->cert != NULL)
			audit_line_cert(a, ep, subj, r);
		audit_line_tlsa(ep, t, subj, r);
	}
	X509_free(ep->cert);
	ep->cert = NULL;
	free(subj);
}

/*
 * Every address of host:port. A host without an address is a line of its own, except for
 * 443 (web_only: the domain itself need not have a web server).
 */
static void audit_service(struct audit_ctx *a, SSL_CTX *old, const char *host, uint16_t port,
			  bool starttls, bool must_answer, struct audit_report *r)
{
	bool web_only = port == 443 && !must_answer;

	char *addrs[AUDIT_MAX_ADDRS], *subj;
	size_t n = audit_addrs(a, host, addrs);
	struct audit_tlsa t;

	if (n == 0 && web_only)
		return;
	if (n == 0) {
		subj = xasprintf("%s:%u", host, port);
		audit_add(r, "connect", subj, must_answer ? AUDIT_FAIL : AUDIT_WARN,
			  "the host has no address (A or AAAA)",
			  "Publish the host's addresses, or stop naming it.");
		free(subj);
		return;
	}
	audit_tlsa_lookup(a, host, port, &t);
	for (size_t i = 0; i < n; i++) {
		struct audit_ep ep = { .host = host, .ip = addrs[i], .port = port,
				       .starttls = starttls };

		audit_endpoint(a, old, &ep, &t, must_answer, r);
	}
	audit_tlsa_clear(&t);
	audit_addrs_free(addrs, n);
}

/* The client context that offers only TLS 1.0 and 1.1: is the old protocol still accepted? */
static SSL_CTX *audit_old_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		fatalx("cannot create a TLS context");
	/* OpenSSL 3 refuses TLS 1.0/1.1 below security level 0 (SHA-1 signatures). */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_1_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1)
		fatalx("cannot configure the TLS 1.0/1.1 probe");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* Is target:port among the first n already (several records may name one host)? */
static bool audit_srv_seen(const struct audit_srv *v, size_t n, const struct audit_srv *t)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].port == t->port && strcmp(v[i].target, t->target) == 0)
			return true;
	return false;
}

/* The targets of an RFC 6186 SRV record set; -1 when there is none, 0 for "not offered". */
static int audit_srv(struct audit_ctx *a, const char *name, struct audit_srv *out, size_t max)
{
	struct dns_answer *ans = audit_lookup(a, name, DNS_RR_SRV);
	int n = 0;

	if (audit_dns_broken(ans) || ans->status != DNS_OK) {
		dns_answer_free(ans);
		return -1;
	}
	for (size_t i = 0; i < ans->nrr && (size_t)n < max; i++) {
		if (!audit_srv_parse(ans->rrs[i].data, ans->rrs[i].len, &out[n]))
			continue;
		if (strcmp(out[n].target, ".") == 0 || out[n].port == 0 ||
		    audit_srv_seen(out, (size_t)n, &out[n])) {
			free(out[n].target);	/* RFC 2782: "." = not offered */
			continue;
		}
		n++;
	}
	dns_answer_free(ans);
	return n;
}

/* A service of RFC 6186 on the SRV targets, else on the MX hosts at its usual port. */
static void audit_mail_service(struct audit_ctx *a, SSL_CTX *old, const char *domain,
			       const char *srv, uint16_t port, bool starttls,
			       const struct dns_mx *mx, size_t nmx, struct audit_report *r)
{
	struct audit_srv t[AUDIT_MAX_HOSTS];
	char *name = xasprintf("%s.%s", srv, domain);
	int n = audit_srv(a, name, t, AUDIT_MAX_HOSTS);

	if (n == 0)
		audit_add(r, "srv", name, AUDIT_PASS, "the SRV record says the service is not "
			  "offered", "Nothing to do.");
	for (int i = 0; i < n; i++) {
		audit_service(a, old, t[i].target, t[i].port, starttls, false, r);
		free(t[i].target);
	}
	for (size_t i = 0; n < 0 && i < nmx; i++)
		if (strcmp(mx[i].host, ".") != 0)
			audit_service(a, old, mx[i].host, port, starttls, false, r);
	free(name);
}

/* -- CAA -------------------------------------------------------------------------------- */

static void audit_check_caa(struct audit_ctx *a, const char *domain, const struct ct_caa *caa,
			    const char *err, struct audit_report *r)
{
	char *found;

	if (caa == NULL) {
		found = xasprintf("the CAA look-up failed: %s", err ? err : "unknown error");
		audit_add(r, "caa", domain, AUDIT_FAIL, found,
			  "Make CAA resolvable with valid DNSSEC: a CA must not issue while the "
			  "look-up fails.");
	} else if (caa->n == 0) {
		found = xstrdup("no CAA records: any CA may issue");
		audit_add(r, "caa", domain, AUDIT_WARN, found,
			  "Publish CAA records naming the CAs you use (postwarden cert caa).");
	} else {
		found = xasprintf("%zu CAA records at %s (DNSSEC %s)", caa->n, caa->owner,
				  dns_security_name(caa->security));
		audit_add(r, "caa", domain, caa->security == DNS_SECURE ? AUDIT_PASS : AUDIT_WARN,
			  found, caa->security == DNS_SECURE ? "Nothing to do." :
			  "Sign the zone, so that CAs can trust the CAA records.");
	}
	free(found);
}

/* Is name (a certificate's name, perhaps "*.x") the domain or below it? */
static bool audit_name_under(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (strncmp(name, "*.", 2) == 0) {
		name += 2;
		n -= 2;
	}
	return (n == d && strcasecmp(name, domain) == 0) ||
	       (n > d && name[n - d - 1] == '.' && strcasecmp(name + n - d, domain) == 0);
}

/* The relevant CAA sets of the names seen, each looked up once. */
struct audit_caa_cache {
	char *name[AUDIT_CAA_NAMES];
	struct ct_caa *caa[AUDIT_CAA_NAMES];	/* NULL: the look-up failed */
	size_t n;
};

/* The CAA set of name; *known false when the look-up failed or the cache is full. */
static const struct ct_caa *audit_caa_of(struct audit_ctx *a, struct audit_caa_cache *c,
					 const char *name, bool *known)
{
	char *err = NULL;

	*known = false;
	if (strncmp(name, "*.", 2) == 0)
		name += 2;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->name[i], name) == 0) {
			*known = c->caa[i] != NULL;
			return c->caa[i];
		}
	if (c->n == AUDIT_CAA_NAMES)
		return NULL;
	c->name[c->n] = xstrdup(name);
	c->caa[c->n] = ct_caa_lookup_sync(a->dns, name, &err);
	free(err);
	*known = c->caa[c->n] != NULL;
	return c->caa[c->n++];
}

static void audit_caa_cache_free(struct audit_caa_cache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->name[i]);
		ct_caa_free(c->caa[i]);
	}
}

/* What the comparison of findings with CAA found; the first of each kind is kept. */
struct audit_caa_ct {
	size_t certs, refused, unknown, unchecked;
	char refused_text[300], unknown_text[300];
};

/* One name of one finding against the CAA set that governs it. */
static void audit_caa_name(struct audit_ctx *a, struct audit_caa_cache *cache, json_t *f,
			   const char *name, struct audit_caa_ct *out)
{
	const char *issuer = json_string_value(json_object_get(f, "issuer"));
	const char *key = json_string_value(json_object_get(f, "issuer_key_sha256"));
	/* the issuer's key hash is known for findings the monitor stored since schema 5 */
	char *ids = ct_caa_identities(issuer, key && *key ? key : NULL, a->issuer_caa);
	bool known;
	const struct ct_caa *caa = audit_caa_of(a, cache, name, &known);
	json_int_t id = json_integer_value(json_object_get(f, "id"));

	if (!known) {
		out->unchecked++;
	} else if (ids == NULL) {
		if (out->unknown++ == 0)
			snprintf(out->unknown_text, sizeof(out->unknown_text),
				 "finding %lld for %s from \"%.120s\"", (long long)id, name, issuer);
	} else if (!ct_caa_allows(caa, ids, strncmp(name, "*.", 2) == 0)) {
		if (out->refused++ == 0)
			snprintf(out->refused_text, sizeof(out->refused_text),
				 "finding %lld for %s from %s (%.120s)", (long long)id, name, ids,
				 issuer);
	}
	free(ids);
}

/* Every name of a finding that is the domain or below it. */
static void audit_caa_finding(struct audit_ctx *a, struct audit_caa_cache *cache, json_t *f,
			      const char *domain, struct audit_caa_ct *out)
{
	char *names = xstrdup(json_string_value(json_object_get(f, "names")) ?
			      json_string_value(json_object_get(f, "names")) : "");
	bool counted = false;

	for (char *save = NULL, *t = strtok_r(names, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		t = str_trim(t);
		if (!audit_name_under(t, domain))
			continue;
		if (!counted)
			out->certs++;
		counted = true;
		audit_caa_name(a, cache, f, str_lower(t), out);
	}
	free(names);
}

static void audit_caa_ct_line(const struct audit_caa_ct *c, const char *domain,
			      struct audit_report *r)
{
	char *found;

	if (c->refused > 0) {
		found = xasprintf("%zu of %zu valid certificates in the CT findings are from a CA "
				  "that CAA does not allow, e.g. %s", c->refused, c->certs,
				  c->refused_text);
		audit_add(r, "caa-ct", domain, AUDIT_FAIL, found,
			  "Find out who obtained the certificate (postwarden ct show ID) and have "
			  "it revoked, or add the CA to CAA if it is yours.");
	} else if (c->unknown > 0 || c->unchecked > 0) {
		found = xasprintf("%zu of %zu certificates could not be compared: %s%s",
				  c->unknown + c->unchecked, c->certs, c->unknown ?
				  "no CAA identity is known for the issuer of " : "CAA look-ups failed",
				  c->unknown ? c->unknown_text : "");
		audit_add(r, "caa-ct", domain, AUDIT_WARN, found,
			  "Name the issuer's CAA identity in [ctmon] issuer_caa, or fix the CAA "
			  "look-ups.");
	} else if (c->certs == 0) {
		found = xstrdup("no valid certificates for the domain in the CT findings");
		audit_add(r, "caa-ct", domain, AUDIT_PASS, found, "Nothing to do.");
	} else {
		found = xasprintf("%zu valid certificates in the CT findings, all from CAs that "
				  "CAA allows", c->certs);
		audit_add(r, "caa-ct", domain, AUDIT_PASS, found, "Nothing to do.");
	}
	free(found);
}

/*
 * The certificates the CT monitor found that are still valid, compared with the CAA set
 * governing each of their names (an expired certificate may predate today's records).
 */
static void audit_check_caa_ct(struct audit_ctx *a, const char *domain, struct audit_report *r)
{
	struct audit_caa_cache cache = { .n = 0 };
	struct audit_caa_ct c;
	json_t *all = a->db ? ct_store_findings_json(a->db, false, AUDIT_FINDINGS_MAX) : NULL;

	memset(&c, 0, sizeof(c));
	if (all == NULL) {
		audit_add(r, "caa-ct", domain, AUDIT_WARN, "the CT monitor's findings could not be "
			  "read", "Check [database] and run postwarden db migrate.");
		return;
	}
	for (size_t i = 0; i < json_array_size(all); i++) {
		json_t *f = json_array_get(all, i);

		if (json_integer_value(json_object_get(f, "not_after")) <= a->now)
			continue;
		audit_caa_finding(a, &cache, f, domain, &c);
	}
	audit_caa_ct_line(&c, domain, r);
	audit_caa_cache_free(&cache);
	json_decref(all);
}

/* -- the MTA-STS policy ------------------------------------------------------------------ */

/* Wait for what an SSL call on a non-blocking socket asks for; false on error or timeout. */
static bool audit_ssl_wait(SSL *ssl, int fd, int rc, int64_t deadline)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return audit_wait(fd, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return audit_wait(fd, POLLOUT, deadline);
	default:
		return false;
	}
}

/* Send req, then read to the end of the response into out (bounded by its maximum). */
static bool audit_ssl_exchange(SSL *ssl, int fd, const char *req, int64_t deadline,
			       struct buf *out, bool *too_big)
{
	char chunk[4096];
	size_t len = strlen(req), off = 0;

	while (off < len) {
		int rc = SSL_write(ssl, req + off, (int)(len - off));

		if (rc > 0)
			off += (size_t)rc;
		else if (!audit_ssl_wait(ssl, fd, rc, deadline))
			return false;
	}
	for (;;) {
		int rc = SSL_read(ssl, chunk, sizeof(chunk));

		if (rc > 0) {
			if (buf_add(out, chunk, (size_t)rc) < 0) {
				*too_big = true;
				return false;
			}
			continue;
		}
		if (SSL_get_error(ssl, rc) == SSL_ERROR_ZERO_RETURN ||
		    SSL_get_error(ssl, rc) == SSL_ERROR_SYSCALL)
			return true;	/* closed: HTTP/1.0 ends the body so */
		if (!audit_ssl_wait(ssl, fd, rc, deadline))
			return false;
	}
}

/* GET path over TLS on ep (certificate and chain checked as for any endpoint). */
static bool audit_https_get(struct audit_ctx *a, struct audit_ep *ep, const char *path,
			    struct buf *out, bool *too_big)
{
	int64_t deadline = monotonic_ms() + AUDIT_ENDPOINT_MS;
	enum tls_dane_mode mode;
	char *err = NULL, *req;
	int fd = audit_open(ep, deadline);
	bool ok = false;
	SSL *ssl;

	if (fd < 0)
		return false;
	ssl = tls_client_new(a->ctx, ep->host, NULL, 0, &mode, &err);
	if (ssl == NULL) {
		snprintf(ep->why, sizeof(ep->why), "%s", err);
		free(err);
		close(fd);
		return false;
	}
	ep->tls_ok = audit_handshake(ssl, fd, deadline);
	if (ep->tls_ok && (ep->cert = SSL_get1_peer_certificate(ssl)) != NULL)
		audit_chain_check(a->ctx, ssl, ep);
	if (ep->tls_ok) {
		req = xasprintf("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: postwarden-audit\r\n"
				"Connection: close\r\n\r\n", path, ep->host);
		ok = audit_ssl_exchange(ssl, fd, req, deadline, out, too_big);
		free(req);
	} else {
		tls_errors_drain(ep->why, sizeof(ep->why));
	}
	ERR_clear_error();
	SSL_free(ssl);
	close(fd);
	return ok;
}

/* The first MX host no pattern of the policy covers, or NULL. */
static const char *audit_sts_uncovered(const struct sts_policy *p, const struct dns_mx *mx,
				       size_t nmx)
{
	for (size_t i = 0; i < nmx; i++)
		if (strcmp(mx[i].host, ".") != 0 && !sts_policy_match(p, mx[i].host))
			return mx[i].host;
	return NULL;
}

/* Judge a fetched policy: the HTTP answer, its syntax, its mode and its mx patterns. */
static void audit_sts_judge(const struct buf *resp, const struct dns_mx *mx, size_t nmx,
			    const char *url, struct audit_report *r)
{
	struct sts_policy p;
	char ctype[64], *found = NULL, err[80];
	size_t off = 0;
	int status = 0;
	const char *miss;

	if (resp->len == 0 || !audit_http_response(resp->data, resp->len, &status, ctype, &off) ||
	    status != 200) {
		found = status ? xasprintf("HTTP status %d", status) : xstrdup("not an HTTP answer");
		audit_add(r, "mta-sts-policy", url, AUDIT_FAIL, found,
			  "Serve the policy at this URL with status 200 (no redirect).");
	} else if (!sts_content_type_ok(ctype[0] ? ctype : NULL)) {
		found = xasprintf("served as \"%s\"", ctype);
		audit_add(r, "mta-sts-policy", url, AUDIT_FAIL, found,
			  "Serve the policy as text/plain (RFC 8461 3.3).");
	} else if (!sts_policy_parse(resp->data + off, resp->len - off, &p, err, sizeof(err))) {
		audit_add(r, "mta-sts-policy", url, AUDIT_FAIL, "a malformed policy",
			  "Serve \"version: STSv1\", \"mode:\", one \"mx:\" line per MX host and "
			  "\"max_age:\", one per line.");
	} else {
		miss = audit_sts_uncovered(&p, mx, nmx);
		found = xasprintf("mode %s, %zu mx patterns, max_age %lld%s%s%s",
				  sts_mode_name(p.mode), p.nmx, (long long)p.max_age,
				  miss ? "; MX host " : "", miss ? miss : "",
				  miss ? " is not covered" : "");
		if (miss != NULL && p.mode != STS_MODE_NONE)
			audit_add(r, "mta-sts-policy", url, p.mode == STS_MODE_ENFORCE ?
				  AUDIT_FAIL : AUDIT_WARN, found, "Add an mx line for every MX host: "
				  "senders refuse hosts the policy does not name.");
		else if (p.mode != STS_MODE_ENFORCE)
			audit_add(r, "mta-sts-policy", url, AUDIT_WARN, found,
				  "Switch to mode: enforce once TLS-RPT reports show no failures.");
		else
			audit_add(r, "mta-sts-policy", url, AUDIT_PASS, found, "Nothing to do.");
		sts_policy_clear(&p);
	}
	free(found);
}

/* What a failed fetch of the policy says, or NULL when the answer is to be judged. */
static char *audit_sts_fetch_problem(const struct audit_ep *ep, bool fetched, bool too_big)
{
	if (!ep->answered)
		return xasprintf("not answering (%s)", ep->why);
	if (!ep->tls_ok)
		return xasprintf("no TLS handshake: %s", ep->why);
	if (ep->cert == NULL || !ep->chain_ok)
		return xasprintf("the certificate is not trusted%s%s", ep->chain_why[0] ? ": " : "",
				 ep->chain_why);
	if (X509_check_host(ep->cert, ep->host, 0, 0, NULL) != 1)
		return xasprintf("the certificate's names do not cover %s", ep->host);
	if (too_big)
		return xstrdup("the answer is larger than 64 KiB");
	if (!fetched)
		return xstrdup("the answer did not arrive in time");
	return NULL;
}

/*
 * The policy MTA-STS senders fetch (RFC 8461 3.3) from the first address of
 * mta-sts.DOMAIN, over TLS with a publicly trusted certificate for that name.
 */
static void audit_check_sts_policy(struct audit_ctx *a, const char *domain,
				   const struct dns_mx *mx, size_t nmx, struct audit_report *r)
{
	char *host = xasprintf("mta-sts.%s", domain), *addrs[AUDIT_MAX_ADDRS], *problem;
	char *url = xasprintf("https://%s/.well-known/mta-sts.txt", host);
	size_t n = audit_addrs(a, host, addrs);
	struct audit_ep ep = { .host = host, .port = 443 };
	struct buf resp;
	bool too_big = false, fetched;

	buf_init(&resp, AUDIT_HTTP_HEAD_MAX + STS_POLICY_MAX);
	if (n == 0) {
		audit_add(r, "mta-sts-policy", url, AUDIT_FAIL, "the policy host has no address",
			  "Publish mta-sts.DOMAIN and serve the policy there, or remove the "
			  "_mta-sts record.");
		goto out;
	}
	ep.ip = addrs[0];
	fetched = audit_https_get(a, &ep, "/.well-known/mta-sts.txt", &resp, &too_big);
	problem = audit_sts_fetch_problem(&ep, fetched, too_big);
	if (problem != NULL)
		audit_add(r, "mta-sts-policy", url, AUDIT_FAIL, problem,
			  "Serve the policy over HTTPS with a publicly trusted certificate for "
			  "mta-sts.DOMAIN: senders ignore it otherwise.");
	else
		audit_sts_judge(&resp, mx, nmx, url, r);
	free(problem);
	X509_free(ep.cert);
out:
	buf_free(&resp);
	audit_addrs_free(addrs, n);
	free(url);
	free(host);
}

/* -- all of it ---------------------------------------------------------------------------- */

void audit_run(struct audit_ctx *a, const char *domain, struct audit_report *r)
{
	SSL_CTX *old = audit_old_ctx();
	struct dns_mx *mx = NULL;
	size_t nmx, nprobe;
	struct ct_caa *caa;
	char *err = NULL;
	char *sts_host = xasprintf("mta-sts.%s", domain), *name;

	audit_check_dnssec(a, domain, r);
	nmx = audit_check_mx(a, domain, r, &mx);
	nprobe = nmx > AUDIT_MAX_HOSTS ? AUDIT_MAX_HOSTS : nmx;
	for (size_t i = 0; i < nprobe; i++)
		if (strcmp(mx[i].host, ".") != 0)
			audit_service(a, old, mx[i].host, 25, true, true, r);
	audit_mail_service(a, old, domain, "_submissions._tcp", 465, false, mx, nprobe, r);
	audit_mail_service(a, old, domain, "_submission._tcp", 587, true, mx, nprobe, r);
	audit_mail_service(a, old, domain, "_imaps._tcp", 993, false, mx, nprobe, r);
	audit_service(a, old, domain, 443, false, false, r);
	audit_service(a, old, sts_host, 443, false, false, r);
	caa = ct_caa_lookup_sync(a->dns, domain, &err);
	audit_check_caa(a, domain, caa, err, r);
	ct_caa_free(caa);
	free(err);
	audit_check_caa_ct(a, domain, r);
	name = xasprintf("_mta-sts.%s", domain);
	if (audit_check_txt_record(a, r, "mta-sts", name, true,
				   "Publish MTA-STS: a \"v=STSv1; id=...\" TXT record here and the "
				   "policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt."))
		audit_check_sts_policy(a, domain, mx, nmx, r);
	free(name);
	name = xasprintf("_smtp._tls.%s", domain);
	audit_check_txt_record(a, r, "tls-rpt", name, false,
			       "Publish TLS-RPT: \"v=TLSRPTv1; rua=mailto:ADDRESS\", to learn "
			       "when senders fail to reach you over TLS.");
	free(name);
	free(sts_host);
	dns_mx_free(mx, nmx);
	SSL_CTX_free(old);
}
