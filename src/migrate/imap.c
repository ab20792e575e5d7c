/*
 * imap.c - one IMAP client connection: TCP with timeouts, TLS (implicit or STARTTLS) with
 * the server's certificate and name verified, optional DEFLATE, login, and the command and
 * response loop with bounded responses (see imap.h).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "imap.h"
#include "log.h"
#include "netaddr.h"
#include "tls.h"
#include "xmalloc.h"

#define IMAP_MAX_LINE 65536
#define IMAP_READ_CHUNK 65536

static bool failf(struct imap *im, enum imap_fail f, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static bool failf(struct imap *im, enum imap_fail f, const char *fmt, ...)
{
	va_list ap;

	im->fail = f;
	va_start(ap, fmt);
	vsnprintf(im->err, sizeof(im->err), fmt, ap);
	va_end(ap);
	return false;
}

SSL_CTX *imap_ssl_ctx_new(const char *ca_file, char **err)
{
	SSL_CTX *ctx = tls_client_ctx_new(NULL, err);

	if (ctx == NULL)
		return NULL;
	if (ca_file != NULL && ca_file[0] != '\0' &&
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		*err = xasprintf("cannot load the CA file %s", ca_file);
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return NULL;
	}
	/* unlike MX delivery, a mailbox server must show a certificate valid for its name */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static bool tcp_connect(struct imap *im, const struct imap_opts *o)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { .tv_sec = o->timeout };
	int rc = getaddrinfo(o->addr ? o->addr : o->host, o->port, &hints, &res);
	bool refused = false;

	if (rc != 0)
		return failf(im, IMAP_F_CONNECT, "cannot resolve %s: %s", o->host, gai_strerror(rc));

	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd;

		if (o->refuse_private && sockaddr_is_private(ai->ai_addr)) {
			refused = true;
			continue;
		}
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
			continue;
		/* SO_SNDTIMEO bounds connect() too on Linux */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			im->fd = fd;
			freeaddrinfo(res);
			return true;
		}
		rc = errno;
		close(fd);
	}
	freeaddrinfo(res);
	if (refused && rc == 0)
		return failf(im, IMAP_F_CONNECT, "%s is on a private or local address, which a "
			     "migration does not connect to", o->host);
	return failf(im, IMAP_F_CONNECT, "cannot connect to %s port %s: %s", o->host, o->port,
		     strerror(rc ? rc : ECONNREFUSED));
}

static bool tls_start(struct imap *im, const struct imap_opts *o)
{
	char why[256] = "";

	im->ssl = SSL_new(o->ssl_ctx);
	if (im->ssl == NULL)
		fatalx("out of memory for a TLS session");
	SSL_set_tlsext_host_name(im->ssl, o->host);
	SSL_set1_host(im->ssl, o->host);
	SSL_set_fd(im->ssl, im->fd);
	if (SSL_connect(im->ssl) != 1) {
		long v = SSL_get_verify_result(im->ssl);

		tls_errors_drain(why, sizeof(why));
		if (v != X509_V_OK)
			return failf(im, IMAP_F_TLS, "the certificate of %s is not valid: %s", o->host,
				     X509_verify_cert_error_string(v));
		return failf(im, IMAP_F_TLS, "TLS handshake with %s failed: %s", o->host, why);
	}
	return true;
}

/* ---- raw I/O: TLS, then DEFLATE on top ---- */

static bool raw_write(struct imap *im, const char *p, size_t n)
{
	while (n > 0) {
		size_t chunk = n > INT32_MAX ? INT32_MAX : n;
		/* no TLS only on loopback (IMAP_TLS_NONE) */
		int w = im->ssl ? SSL_write(im->ssl, p, (int)chunk)
				: (int)send(im->fd, p, chunk, MSG_NOSIGNAL);

		if (w <= 0) {
			ERR_clear_error();
			return failf(im, IMAP_F_CLOSED, "connection lost while sending");
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

bool imap_flush(struct imap *im)
{
	bool ok = true;

	if (im->out.len == 0)
		return true;
	if (!im->compress) {
		ok = raw_write(im, im->out.data, im->out.len);
	} else {
		char z[IMAP_READ_CHUNK];

		im->zout.next_in = (Bytef *)im->out.data;
		im->zout.avail_in = (uInt)im->out.len;
		do {
			im->zout.next_out = (Bytef *)z;
			im->zout.avail_out = sizeof(z);
			if (deflate(&im->zout, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
				fatalx("deflate state broken");
			ok = raw_write(im, z, sizeof(z) - im->zout.avail_out);
		} while (ok && (im->zout.avail_out == 0 || im->zout.avail_in > 0));
	}
	buf_reset(&im->out);
	return ok;
}

/*
 * Read what the server sent into im->in. Compressed input is inflated by at most about
 * IMAP_READ_CHUNK bytes a call, the rest of it kept for the next: a few kilobytes of
 * DEFLATE can stand for megabytes (a message of one repeated line), and a streamed body
 * must not be inflated whole into memory.
 */
static bool read_more(struct imap *im)
{
	size_t added = 0;

	if (!im->compress || (im->zin.avail_in == 0 && !im->zmore)) {
		char tmp[IMAP_READ_CHUNK];
		char *dst = im->compress ? im->zraw : tmp;
		int n = im->ssl ? SSL_read(im->ssl, dst, IMAP_READ_CHUNK)
				: (int)recv(im->fd, dst, IMAP_READ_CHUNK, 0);

		if (n <= 0) {
			ERR_clear_error();
			return failf(im, IMAP_F_CLOSED, "connection lost or timed out while waiting for the server");
		}
		if (!im->compress) {
			if (buf_add(&im->in, tmp, (size_t)n) < 0)
				return failf(im, IMAP_F_PROTO, "a response is larger than the limit");
			return true;
		}
		im->zin.next_in = (Bytef *)im->zraw;
		im->zin.avail_in = (uInt)n;
	}
	while ((im->zin.avail_in > 0 || im->zmore) && added < IMAP_READ_CHUNK) {
		char z[IMAP_READ_CHUNK];
		size_t got;
		int rc;

		im->zin.next_out = (Bytef *)z;
		im->zin.avail_out = sizeof(z);
		rc = inflate(&im->zin, Z_SYNC_FLUSH);
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return failf(im, IMAP_F_PROTO, "the compressed stream is broken");
		got = sizeof(z) - im->zin.avail_out;
		/* a full output buffer may leave output inside zlib with no input left */
		im->zmore = im->zin.avail_out == 0;
		if (buf_add(&im->in, z, got) < 0)
			return failf(im, IMAP_F_PROTO, "a response is larger than the limit");
		added += got;
		if (rc == Z_BUF_ERROR)
			break;
	}
	return true;
}

bool imap_read(struct imap *im, struct imap_resp *r)
{
	const char *err;

	if (!imap_flush(im))
		return false;
	/* consumed input is dropped lazily: moving the rest after every small response
	 * would copy a full read chunk for each of its responses */
	im->in_off += im->in_used;
	im->in_used = 0;
	if (im->in_off == im->in.len) {
		buf_reset(&im->in);
		im->in_off = 0;
	}
	for (;;) {
		const char *p = im->in.data + im->in_off;
		size_t avail = im->in.len - im->in_off;
		long long n = imap_resp_need(p, avail, im->max_line, im->max_literal);

		if (n < 0)
			return failf(im, IMAP_F_PROTO, "the server sent a line or message over the limit");
		if (n > 0) {
			if (!imap_resp_parse(p, (size_t)n, r, &err))
				return failf(im, IMAP_F_PROTO, "malformed response from the server: %s", err);
			im->in_used = (size_t)n;
			return true;
		}
		if (im->in_off > 0) {
			buf_consume(&im->in, im->in_off);
			im->in_off = 0;
		}
		if (!read_more(im))
			return false;
	}
}

/* ---- commands ---- */

void imap_cmd(struct imap *im, char *tag, const char *fmt, ...)
{
	va_list ap;

	snprintf(tag, 16, "A%u", ++im->tagn);
	buf_addf(&im->out, "%s ", tag);
	va_start(ap, fmt);
	buf_vaddf(&im->out, fmt, ap);
	va_end(ap);
	buf_add(&im->out, "\r\n", 2);
}

void imap_put(struct imap *im, const void *data, size_t len)
{
	buf_add(&im->out, data, len);
	if (im->out.len > 4 * IMAP_READ_CHUNK)
		(void)imap_flush(im);	/* a failure shows at the next read */
}

void imap_quote(struct buf *out, const char *s)
{
	buf_add(out, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_add(out, "\\", 1);
		buf_add(out, s, 1);
	}
	buf_add(out, "\"", 1);
}

void imap_put_astring(struct imap *im, const char *s)
{
	bool plain = true;

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80 || *p == '\r' || *p == '\n')
			plain = false;
	if (plain)
		imap_quote(&im->out, s);
	else
		buf_addf(&im->out, "{%zu+}\r\n%s", strlen(s), s);
}

static void keep_caps(struct imap *im, const char *p, size_t n)
{
	size_t i;

	if (n >= sizeof(im->caps))
		n = sizeof(im->caps) - 1;
	for (i = 0; i < n; i++)
		im->caps[i] = (char)toupper((unsigned char)p[i]);
	im->caps[i] = '\0';
}

static void caps_from_args(struct imap *im, const struct imap_resp *r)
{
	struct buf b;

	buf_init(&b, sizeof(im->caps) - 1);
	for (const struct imap_node *n = r->args.child; n != NULL; n = n->next) {
		if (n->type != IMAP_ATOM)
			continue;
		if (b.len > 0 && buf_add(&b, " ", 1) < 0)
			break;
		if (buf_add(&b, n->p, n->len) < 0)
			break;
	}
	keep_caps(im, b.data ? b.data : "", b.len);
	buf_free(&b);
}

/* Untagged responses every command may see. */
static void common_untagged(struct imap *im, const struct imap_resp *r)
{
	if (strcmp(r->name, "CAPABILITY") == 0)
		caps_from_args(im, r);
	else if (r->status != IMAP_ST_NONE && strcmp(r->code, "CAPABILITY") == 0)
		keep_caps(im, r->code_arg, r->code_arg_len);
}

/* One response while waiting for tag (frees it): 0 go on, 1 tagged OK, -1 failed. */
static int wait_one(struct imap *im, struct imap_resp *r, const char *tag, imap_untagged_fn fn,
		    void *arg)
{
	if (r->kind == IMAP_RESP_UNTAGGED) {
		common_untagged(im, r);
		if (r->status == IMAP_ST_BYE) {
			failf(im, IMAP_F_CLOSED, "the server closed the connection: %.*s",
			      (int)r->text_len, r->text);
			imap_resp_free(r);
			return -1;
		}
		if (fn != NULL)
			fn(im, r, arg);
		imap_resp_free(r);
		return 0;
	}
	if (r->kind == IMAP_RESP_CONT || strcmp(r->tag, tag) != 0) {
		imap_resp_free(r);
		failf(im, IMAP_F_PROTO, "unexpected response while waiting for %s", tag);
		return -1;
	}
	common_untagged(im, r);
	snprintf(im->last_code, sizeof(im->last_code), "%s", r->code);
	if (r->status == IMAP_ST_OK) {
		imap_resp_free(r);
		return 1;
	}
	failf(im, r->status == IMAP_ST_NO ? IMAP_F_NO : IMAP_F_PROTO, "%s%s%s%.*s",
	      r->code[0] ? "[" : "", r->code, r->code[0] ? "] " : "", (int)r->text_len, r->text);
	imap_resp_free(r);
	return -1;
}

bool imap_wait(struct imap *im, const char *tag, imap_untagged_fn fn, void *arg)
{
	struct imap_resp r;
	int rc;

	do {
		if (!imap_read(im, &r))
			return false;
	} while ((rc = wait_one(im, &r, tag, fn, arg)) == 0);
	return rc > 0;
}

/* ---- a message body streamed from a FETCH literal ---- */

/* Drop the input consumed so far (the last response read, and anything before in_off). */
static void in_compact(struct imap *im)
{
	im->in_off += im->in_used;
	im->in_used = 0;
	if (im->in_off == im->in.len) {
		buf_reset(&im->in);
		im->in_off = 0;
	}
}

bool imap_body_begin(struct imap *im, const char *tag, uint64_t *size)
{
	*size = UINT64_MAX;
	im->lit_left = 0;
	if (!imap_flush(im))
		return false;
	for (;;) {
		long long h;
		uint64_t lit;

		in_compact(im);
		h = imap_stream_head(im->in.data + im->in_off, im->in.len - im->in_off, im->max_line,
				     &lit);
		if (h == -1)
			return failf(im, IMAP_F_PROTO, "the server sent a line over the limit");
		if (h > 0) {
			if (lit > im->max_literal)
				return failf(im, IMAP_F_PROTO, "the server sent a message over the limit");
			im->in_off += (size_t)h;
			im->lit_left = lit;
			*size = lit;
			return true;
		}
		if (h == -2) {
			/* another response first: read it whole (bounded as always) */
			struct imap_resp r;
			int rc;

			if (!imap_read(im, &r))
				return false;
			if ((rc = wait_one(im, &r, tag, NULL, NULL)) != 0)
				return rc > 0;	/* answered without the body: *size stays MAX */
			continue;
		}
		if (im->in_off > 0) {
			buf_consume(&im->in, im->in_off);
			im->in_off = 0;
		}
		if (!read_more(im))
			return false;
	}
}

long imap_body_read(struct imap *im, const char **p, size_t max)
{
	while (im->lit_left > 0) {
		size_t avail = im->in.len - im->in_off;

		if (avail > 0) {
			size_t n = avail < max ? avail : max;

			if (n > im->lit_left)
				n = (size_t)im->lit_left;
			if (n > LONG_MAX)
				n = LONG_MAX;
			*p = im->in.data + im->in_off;
			im->in_off += n;
			im->lit_left -= n;
			return (long)n;
		}
		/* all input is literal bytes handed out: start the buffer afresh */
		buf_reset(&im->in);
		im->in_off = 0;
		if (!read_more(im))
			return -1;
	}
	return 0;
}

bool imap_body_end(struct imap *im, const char *tag)
{
	const char *line, *nl;

	/* the rest of the FETCH response after the literal: ")" or more items, one line */
	for (;;) {
		line = im->in.data + im->in_off;
		nl = memchr(line, '\n', im->in.len - im->in_off);
		if (nl != NULL)
			break;
		if (im->in.len - im->in_off > im->max_line)
			return failf(im, IMAP_F_PROTO, "the server sent a line over the limit");
		if (!read_more(im))
			return false;
	}
	/* a line announcing another literal is not complete by itself (or is over 0 bytes) */
	if (imap_resp_need(line, (size_t)(nl - line) + 1, im->max_line, 0) <= 0)
		return failf(im, IMAP_F_PROTO, "the server sent more literals after a message");
	im->in_off += (size_t)(nl - line) + 1;
	return imap_wait(im, tag, NULL, NULL);
}

void imap_abandon(struct imap *im)
{
	if (im->fail != IMAP_F_CLOSED)
		failf(im, IMAP_F_CLOSED, "the connection was given up in the middle of a command");
	buf_reset(&im->out);
}

bool imap_simple(struct imap *im, imap_untagged_fn fn, void *arg, const char *fmt, ...)
{
	char tag[16];
	va_list ap;

	snprintf(tag, sizeof(tag), "A%u", ++im->tagn);
	buf_addf(&im->out, "%s ", tag);
	va_start(ap, fmt);
	buf_vaddf(&im->out, fmt, ap);
	va_end(ap);
	buf_add(&im->out, "\r\n", 2);
	return imap_wait(im, tag, fn, arg);
}

bool imap_peer_loopback(const struct imap *im)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername(im->fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

bool imap_has_cap(const struct imap *im, const char *cap)
{
	return imap_words_has(im->caps, strlen(im->caps), cap);
}

/* ---- connection set-up ---- */

static bool greeting(struct imap *im)
{
	struct imap_resp r;

	if (!imap_read(im, &r))
		return false;
	common_untagged(im, &r);
	if (r.kind != IMAP_RESP_UNTAGGED || (r.status != IMAP_ST_OK && r.status != IMAP_ST_PREAUTH)) {
		failf(im, IMAP_F_CONNECT, "the server refused the connection: %.*s",
		      (int)r.text_len, r.text);
		imap_resp_free(&r);
		return false;
	}
	imap_resp_free(&r);
	return true;
}

bool imap_connect(struct imap *im, const struct imap_opts *o)
{
	memset(im, 0, sizeof(*im));
	im->fd = -1;
	im->sep = '/';
	im->max_line = IMAP_MAX_LINE;
	im->max_literal = o->max_literal;
	buf_init(&im->in, o->max_literal + 2 * IMAP_MAX_LINE + IMAP_READ_CHUNK);
	buf_init(&im->out, 0);
	if (!tcp_connect(im, o))
		return false;
	if (o->tls == IMAP_TLS_NONE) {
		/* plaintext only to a server on this machine: nothing crosses a network */
		if (!imap_peer_loopback(im))
			return failf(im, IMAP_F_TLS, "%s: IMAP without TLS only on loopback", o->host);
		if (!greeting(im))
			return false;
	} else if (o->tls == IMAP_TLS_IMPLICIT) {
		if (!tls_start(im, o) || !greeting(im))
			return false;
	} else {
		/* STARTTLS: the plaintext greeting is read straight from the socket */
		char line[1024];
		ssize_t n = recv(im->fd, line, sizeof(line) - 1, 0);
		const char *cmd = "S0 STARTTLS\r\n";

		if (n <= 0 || strncmp(line, "* OK", 4) != 0)
			return failf(im, IMAP_F_CONNECT, "%s did not greet as an IMAP server", o->host);
		if (send(im->fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd))
			return failf(im, IMAP_F_CLOSED, "connection lost before STARTTLS");
		n = recv(im->fd, line, sizeof(line) - 1, 0);
		if (n <= 0 || strncmp(line, "S0 OK", 5) != 0)
			return failf(im, IMAP_F_TLS, "%s does not offer STARTTLS", o->host);
		if (!tls_start(im, o))
			return false;
	}
	if (im->caps[0] == '\0' && !imap_simple(im, NULL, NULL, "CAPABILITY"))
		return false;
	return true;
}

/* base64 of data into a new string (wiped by the caller). */
static char *b64(const unsigned char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/*
 * AUTHENTICATE mech with its initial response (SASL-IR where offered, RFC 4959). A token
 * the server refuses is answered, before the tagged NO, with one challenge that carries a
 * JSON error (RFC 7628 3.2.2; Google's XOAUTH2 and Dovecot's oauth2 passdb do it for both
 * mechanisms): the client must answer it, or the server waits until the connection times
 * out. OAUTHBEARER requires the dummy response %x01 ("AQ==" in base64); XOAUTH2's
 * documented answer is an empty response. A second challenge is not part of either
 * exchange: the command is cancelled ("*", RFC 3501 6.2.2) and the login fails.
 */
static bool auth_sasl(struct imap *im, const char *mech, const char *initial)
{
	const char *reply = strcmp(mech, "OAUTHBEARER") == 0 ? "AQ==\r\n" : "\r\n";
	int challenges = 0;
	char tag[16];
	struct imap_resp r;

	if (imap_has_cap(im, "SASL-IR")) {
		imap_cmd(im, tag, "AUTHENTICATE %s %s", mech, initial);
	} else {
		imap_cmd(im, tag, "AUTHENTICATE %s", mech);
		if (!imap_read(im, &r))
			return false;
		if (r.kind != IMAP_RESP_CONT) {
			imap_resp_free(&r);
			return failf(im, IMAP_F_AUTH, "the server does not accept AUTHENTICATE %s", mech);
		}
		imap_resp_free(&r);
		buf_addf(&im->out, "%s\r\n", initial);
	}
	/* the command lines held the secret: wipe them once sent */
	if (!imap_flush(im))
		return false;
	for (;;) {
		if (!imap_read(im, &r))
			return false;
		if (r.kind == IMAP_RESP_CONT) {
			/* the error challenge of a refused token: answer it, then NO follows */
			imap_resp_free(&r);
			if (challenges++ > 1)
				return failf(im, IMAP_F_PROTO, "the server keeps asking during "
					     "AUTHENTICATE %s", mech);
			buf_adds(&im->out, challenges == 1 ? reply : "*\r\n");
			continue;
		}
		/* not a challenge: push it back, imap_wait reads it again */
		imap_resp_free(&r);
		im->in_used = 0;
		break;
	}
	return imap_wait(im, tag, NULL, NULL);
}

bool imap_login(struct imap *im, enum imap_auth how, const char *user,
		const struct mig_cred *secret)
{
	struct buf b;
	char *enc;
	bool ok;

	buf_init(&b, 0);
	if (how == IMAP_AUTH_PASSWORD && imap_has_cap(im, "AUTH=PLAIN")) {
		buf_add(&b, "", 1);
		buf_adds(&b, user);
		buf_add(&b, "", 1);
		buf_add(&b, secret->secret, secret->len);
		enc = b64((unsigned char *)b.data, b.len);
		ok = auth_sasl(im, "PLAIN", enc);
	} else if (how == IMAP_AUTH_PASSWORD) {
		if (imap_has_cap(im, "LOGINDISABLED")) {
			buf_free(&b);
			return failf(im, IMAP_F_AUTH, "the server refuses LOGIN on this connection");
		}
		char tag[16];

		imap_cmd(im, tag, "LOGIN ");
		im->out.len -= 2;	/* drop the CRLF: the arguments follow */
		imap_quote(&im->out, user);
		buf_add(&im->out, " ", 1);
		imap_quote(&im->out, secret->secret);
		buf_add(&im->out, "\r\n", 2);
		enc = NULL;
		ok = imap_flush(im) && imap_wait(im, tag, NULL, NULL);
	} else {
		const char *mech = how == IMAP_AUTH_XOAUTH2 ? "XOAUTH2" : "OAUTHBEARER";

		if (how == IMAP_AUTH_XOAUTH2)
			buf_addf(&b, "user=%s\001auth=Bearer %s\001\001", user, secret->secret);
		else
			buf_addf(&b, "n,a=%s,\001auth=Bearer %s\001\001", user, secret->secret);
		enc = b64((unsigned char *)b.data, b.len);
		ok = auth_sasl(im, mech, enc);
	}
	if (b.data != NULL)
		OPENSSL_cleanse(b.data, b.len);
	if (enc != NULL) {
		OPENSSL_cleanse(enc, strlen(enc));
		free(enc);
	}
	buf_free(&b);
	/* the command buffer carried the secret: wipe all of it before it can grow and move */
	if (im->out.data != NULL)
		OPENSSL_cleanse(im->out.data, im->out.cap);
	if (!ok && im->fail == IMAP_F_NO) {
		im->fail = IMAP_F_AUTH;
		/* say what was refused: the advice for a token is not the one for a password */
		if (how != IMAP_AUTH_PASSWORD) {
			char why[sizeof(im->err)];

			snprintf(why, sizeof(why), "%s", im->err);
			failf(im, IMAP_F_AUTH, "the server refused the OAuth access token (%s)", why);
		}
	}
	/* servers may send new capabilities after login */
	if (ok && !imap_simple(im, NULL, NULL, "CAPABILITY"))
		return false;
	return ok;
}

bool imap_try_compress(struct imap *im)
{
	if (!imap_has_cap(im, "COMPRESS=DEFLATE"))
		return true;
	if (!imap_simple(im, NULL, NULL, "COMPRESS DEFLATE"))
		return im->fail == IMAP_F_NO;	/* refused: carry on without */
	im->zraw = xmalloc(IMAP_READ_CHUNK);
	if (inflateInit2(&im->zin, -15) != Z_OK ||
	    deflateInit2(&im->zout, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		fatalx("out of memory for zlib");
	im->compress = true;
	/* input already read past the OK would be compressed; Dovecot sends nothing more */
	return true;
}

void imap_close(struct imap *im)
{
	if (im->ssl != NULL && im->fail != IMAP_F_CLOSED && im->fail != IMAP_F_CONNECT) {
		char tag[16];

		imap_cmd(im, tag, "LOGOUT");
		(void)imap_flush(im);
	}
	if (im->ssl != NULL) {
		SSL_shutdown(im->ssl);
		SSL_free(im->ssl);
	}
	if (im->fd >= 0)
		close(im->fd);
	if (im->compress) {
		inflateEnd(&im->zin);
		deflateEnd(&im->zout);
		free(im->zraw);
		im->zraw = NULL;
		im->compress = false;
	}
	if (im->out.data != NULL)
		OPENSSL_cleanse(im->out.data, im->out.cap);
	buf_free(&im->in);
	buf_free(&im->out);
	im->ssl = NULL;
	im->fd = -1;
}
