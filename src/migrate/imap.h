/*
 * imap.h - an IMAP4rev1 client connection for the migration engine.
 *
 * One connection is driven by one worker thread with blocking I/O and timeouts (the
 * migration runs off the event loop, see mig_mail.h): implicit TLS or STARTTLS with the
 * certificate verified against the system store or a CA file and the host name checked;
 * CAPABILITY; LOGIN, AUTHENTICATE PLAIN, XOAUTH2 and OAUTHBEARER; COMPRESS=DEFLATE.
 * Commands are written into an output buffer and flushed when a response is awaited,
 * so several commands can be pipelined. Every response is bounded (imap_parse.h); a large
 * message body can instead be read in pieces as it arrives (imap_body_begin).
 */
#ifndef PW_IMAP_H
#define PW_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <zlib.h>

#include "buf.h"
#include "imap_parse.h"
#include "mig_cred.h"

/* IMAP_TLS_NONE: plaintext, refused unless the server is on a loopback address. */
enum imap_tls { IMAP_TLS_IMPLICIT, IMAP_TLS_STARTTLS, IMAP_TLS_NONE };

enum imap_auth { IMAP_AUTH_PASSWORD, IMAP_AUTH_XOAUTH2, IMAP_AUTH_OAUTHBEARER };

/* Why the last operation failed, for the advice a user gets. */
enum imap_fail {
	IMAP_F_NONE,
	IMAP_F_CONNECT,		/* no TCP connection: host, port, firewall */
	IMAP_F_TLS,		/* handshake or certificate */
	IMAP_F_AUTH,		/* credentials refused */
	IMAP_F_NO,		/* a command answered NO (code in last_code) */
	IMAP_F_PROTO,		/* BAD, a malformed or oversized response */
	IMAP_F_CLOSED,		/* connection lost, BYE, timeout */
};

struct imap_opts {
	const char *host;	/* name: SNI and certificate check */
	const char *addr;	/* address to connect to instead of resolving host, or NULL */
	const char *port;
	enum imap_tls tls;
	SSL_CTX *ssl_ctx;	/* borrowed: verifying context (imap_ssl_ctx_new) */
	int timeout;		/* seconds for connect and each read or write */
	size_t max_literal;	/* largest literal (message) accepted */
	bool refuse_private;	/* never connect to a non-public address (a user's source) */
};

struct imap {
	int fd;
	SSL *ssl;
	bool compress;
	z_stream zin, zout;
	char *zraw;		/* compressed input not yet inflated (zin.next_in points here) */
	bool zmore;		/* inflate may hold output with no input left */
	struct buf in;		/* decompressed input; responses point into it */
	size_t in_off;		/* start of the input not yet consumed */
	size_t in_used;		/* length of the last response (0: read it again) */
	struct buf out;		/* commands not yet sent */
	size_t max_line, max_literal;
	uint64_t lit_left;	/* bytes of a streamed body literal not yet read */
	unsigned tagn;
	char caps[2048];	/* the capability words, space-separated, upper case */
	char sep;		/* hierarchy separator from LIST, '/' until known */
	enum imap_fail fail;
	char last_code[128];	/* the response code of the last NO/BAD: "OVERQUOTA" */
	char err[512];		/* a description of the last failure (server text included) */
};

/* A verifying client context; ca_file NULL for the system store. NULL + *err. */
SSL_CTX *imap_ssl_ctx_new(const char *ca_file, char **err);

bool imap_connect(struct imap *im, const struct imap_opts *o);
bool imap_login(struct imap *im, enum imap_auth how, const char *user,
		const struct mig_cred *secret);
/* COMPRESS=DEFLATE when offered; true when on or not offered, false on failure. */
bool imap_try_compress(struct imap *im);
void imap_close(struct imap *im);	/* LOGOUT (best effort) and free */

bool imap_has_cap(const struct imap *im, const char *cap);
/* Whether the server is on a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
bool imap_peer_loopback(const struct imap *im);

/* Queue a command line "TAG fmt\r\n"; the tag goes to tag (>= 16 bytes). */
void imap_cmd(struct imap *im, char *tag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Queue raw bytes (a literal's contents). */
void imap_put(struct imap *im, const void *data, size_t len);
/* Queue a string as a quoted string or, when it needs it, a literal (LITERAL+ required). */
void imap_put_astring(struct imap *im, const char *s);
bool imap_flush(struct imap *im);
/*
 * Read the next response into r (valid until the next call); flushes queued output first.
 * false on failure (im->fail set).
 */
bool imap_read(struct imap *im, struct imap_resp *r);

/* Callback for untagged responses of a command. */
typedef void (*imap_untagged_fn)(struct imap *im, const struct imap_resp *r, void *arg);
/*
 * Read responses until the tagged answer to tag, passing untagged ones to fn (may be NULL).
 * True for OK; false for NO/BAD (fail, last_code and err set) or a failure.
 */
bool imap_wait(struct imap *im, const char *tag, imap_untagged_fn fn, void *arg);
/* imap_cmd + imap_wait. */
bool imap_simple(struct imap *im, imap_untagged_fn fn, void *arg, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * A message body streamed in pieces, never held whole. After "UID FETCH n (UID BODY.PEEK[])"
 * was queued with tag, imap_body_begin reads up to the line that announces the BODY[]
 * literal and gives its size in *size (responses before it are handled as imap_wait does).
 * True with *size UINT64_MAX when the command was answered OK without a body (the message
 * is gone); false on NO (fail IMAP_F_NO) or a failure.
 */
bool imap_body_begin(struct imap *im, const char *tag, uint64_t *size);
/* The next piece of the literal, at most max bytes, at *p (valid until the next call on
 * im); 0 when all of it was read; -1 on a failure. */
long imap_body_read(struct imap *im, const char **p, size_t max);
/* After the whole literal: the rest of the FETCH response, then the tagged answer. */
bool imap_body_end(struct imap *im, const char *tag);
/*
 * Give up a connection in the middle of a command: queued output is dropped and nothing
 * more is sent on it (not even LOGOUT), so an APPEND whose literal was not finished stays
 * unfinished and the server stores nothing of it.
 */
void imap_abandon(struct imap *im);

/* Quote s for a command (into out): "..." with \ and " escaped. */
void imap_quote(struct buf *out, const char *s);

#endif
