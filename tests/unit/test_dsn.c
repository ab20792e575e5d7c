/*
 * test_dsn.c - notifications: the message is parsed back (header, boundary, the three
 * RFC 3464 parts, quoted-printable text), every stopped recipient must be named with its MX
 * host and reason, status 5.7.10, the release command; the German variant; and who gets no
 * notification at all (null sender, notifications, NOTIFY=NEVER).
 */
#include <stdlib.h>
#include <string.h>

#include "relay/relay_dsn.h"
#include "xmalloc.h"
#include "unit.h"

#define HEADERS "From: anna@sender.test\r\nTo: bob@example.test\r\nSubject: secret plans\r\n" \
		"Message-ID: <1@sender.test>\r\n"

static const struct dsn_rcpt held_rcpts[] = {
	{ "bob@example.test", "rfc822;bob@example.test", "mx.example.test", "5.7.10",
	  "mx.example.test does not offer STARTTLS", REASON_NO_STARTTLS },
	{ "carl@other.test", NULL, "mx.other.test", "5.7.10",
	  "certificate of mx.other.test does not match its TLSA records", REASON_DANE_MISMATCH },
	{ "dora@old.test", NULL, "mail.old.test", "5.7.10",
	  "TLS handshake with mail.old.test failed (protocol)", REASON_TLS_PROTOCOL },
	{ "eve@bogus.test", NULL, NULL, "5.7.10",
	  "DNSSEC validation failed for bogus.test", REASON_DNSSEC_BOGUS },
};

struct parsed {
	char *header;
	char *parts[8];		/* each with its own header */
	size_t nparts;
};

static void parsed_free(struct parsed *p)
{
	free(p->header);
	for (size_t i = 0; i < p->nparts; i++)
		free(p->parts[i]);
}

/* Split a multipart message at its boundary; false when it is not shaped right. */
static bool parse_mime(const char *msg, struct parsed *p)
{
	const char *end = strstr(msg, "\r\n\r\n"), *b, *q, *cur;
	char delim[128];

	memset(p, 0, sizeof(*p));
	if (end == NULL)
		return false;
	p->header = xstrndup(msg, (size_t)(end - msg));
	b = strstr(p->header, "boundary=\"");
	if (b == NULL)
		return false;
	b += 10;
	q = strchr(b, '"');
	snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)(q - b), b);
	cur = strstr(end, delim);
	while (cur != NULL && p->nparts < 8) {
		const char *start = cur + strlen(delim);
		const char *next;

		if (strncmp(start, "--", 2) == 0)
			return p->nparts > 0 && strcmp(start, "--\r\n") == 0;
		start += 2;	/* CRLF */
		next = strstr(start, delim);
		if (next == NULL)
			return false;
		p->parts[p->nparts++] = xstrndup(start, (size_t)(next - start));
		cur = next;
	}
	return false;
}

/* Decode quoted-printable (soft line breaks and =XX). */
static char *qp_decode(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;

	while (*s) {
		if (s[0] == '=' && s[1] == '\r' && s[2] == '\n') {
			s += 3;
		} else if (s[0] == '=' && s[1] && s[2]) {
			char hex[3] = { s[1], s[2], 0 };

			*o++ = (char)strtol(hex, NULL, 16);
			s += 3;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* Every line of s is at most 998 octets and ends in CRLF; no 8-bit octets. */
static bool lines_ok(const char *s)
{
	size_t col = 0;

	for (; *s; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
		if (*s == '\n') {
			if (s[-1] != '\r')
				return false;
			col = 0;
		} else if (++col > 998) {
			return false;
		}
	}
	return true;
}

static char *build(enum dsn_kind kind, const char *lang, const struct dsn_rcpt *r, size_t n)
{
	struct dsn_input in = {
		.kind = kind, .language = lang, .hostname = "relay.sender.test",
		.msg_id = "0123456789ABCDEF", .envid = "ENV42", .sender = "anna@sender.test",
		.arrival = 1700000000, .now = 1700000100, .hold_days = 7,
		.rcpts = r, .nrcpt = n, .headers = HEADERS, .headers_len = strlen(HEADERS),
	};
	size_t len;
	char *m = dsn_build(&in, &len);

	CHECK(strlen(m) == len);
	return m;
}

static void test_held_english(void)
{
	char *m = build(DSN_HELD, "en", held_rcpts, 4);
	struct parsed p;
	char *text;

	CHECK(lines_ok(m));
	CHECK(parse_mime(m, &p));
	CHECK(strstr(p.header, "From: Mail Delivery System <MAILER-DAEMON@relay.sender.test>") != NULL);
	CHECK(strstr(p.header, "To: <anna@sender.test>") != NULL);
	CHECK(strstr(p.header, "Content-Type: multipart/report; report-type=delivery-status;") != NULL);
	CHECK(strstr(p.header, "Auto-Submitted: auto-replied") != NULL);
	CHECK(strstr(p.header, "MIME-Version: 1.0") != NULL);
	CHECK(p.nparts == 3);
	if (p.nparts != 3) {
		parsed_free(&p);
		free(m);
		return;
	}
	CHECK(strncmp(p.parts[0], "Content-Type: text/plain; charset=utf-8", 39) == 0);
	CHECK(strncmp(p.parts[1], "Content-Type: message/delivery-status", 37) == 0);
	CHECK(strncmp(p.parts[2], "Content-Type: text/rfc822-headers", 33) == 0);

	text = qp_decode(strstr(p.parts[0], "\r\n\r\n") + 4);
	for (size_t i = 0; i < 4; i++)
		CHECK(strstr(text, held_rcpts[i].addr) != NULL);
	CHECK(strstr(text, "mx.example.test does not offer encryption (no STARTTLS)") != NULL);
	CHECK(strstr(text, "Technical detail: mx.example.test does not offer STARTTLS") != NULL);
	CHECK(strstr(text, "the certificate of mx.other.test does not match its DANE record: the "
			   "connection may be intercepted") != NULL);
	CHECK(strstr(text, "mail.old.test only offers an outdated encryption protocol") != NULL);
	CHECK(strstr(text, "the DNS answers for bogus.test failed DNSSEC validation: they may be "
			   "forged") != NULL);
	CHECK(strstr(text, "postwarden queue release 0123456789ABCDEF\r\n") != NULL);
	CHECK(strstr(text, "postwarden queue release 0123456789ABCDEF --rcpt bob@example.test") != NULL);
	CHECK(strstr(text, "held for 7 days") != NULL);
	CHECK(strstr(text, "Check that the recipient address") != NULL);
	CHECK(strstr(text, "enable encryption") != NULL);
	free(text);

	CHECK(strstr(p.parts[1], "Reporting-MTA: dns; relay.sender.test\r\n") != NULL);
	CHECK(strstr(p.parts[1], "Original-Envelope-Id: ENV42\r\n") != NULL);
	CHECK(strstr(p.parts[1], "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n") != NULL);
	CHECK(strstr(p.parts[1], "Final-Recipient: rfc822; bob@example.test\r\n"
				 "Original-Recipient: rfc822; bob@example.test\r\n"
				 "Action: failed\r\nStatus: 5.7.10\r\n"
				 "Remote-MTA: dns; mx.example.test\r\n"
				 "Diagnostic-Code: X-Postwarden; mx.example.test does not offer "
				 "STARTTLS\r\n") != NULL);
	CHECK(strstr(p.parts[1], "Final-Recipient: rfc822; eve@bogus.test\r\n"
				 "Action: failed\r\nStatus: 5.7.10\r\n") != NULL);
	{
		size_t count = 0;

		for (const char *s = p.parts[1]; (s = strstr(s, "Status: 5.7.10")) != NULL; s++)
			count++;
		CHECK(count == 4);
	}
	CHECK(strstr(p.parts[2], "Subject: secret plans\r\n") != NULL);
	parsed_free(&p);
	free(m);
}

static void test_held_german(void)
{
	char *m = build(DSN_HELD, "de", held_rcpts, 4);
	struct parsed p;
	char *text;

	CHECK(lines_ok(m));
	CHECK(parse_mime(m, &p));
	CHECK(p.nparts == 3);
	/* RFC 2047 subject: not plain text */
	CHECK(strstr(p.header, "Subject: =?utf-8?B?") != NULL);
	if (p.nparts == 3) {
		text = qp_decode(strstr(p.parts[0], "\r\n\r\n") + 4);
		CHECK(strstr(text, "mx.example.test bietet keine Verschlüsselung an") != NULL);
		CHECK(strstr(text, "Zertifikat von mx.other.test passt nicht") != NULL);
		CHECK(strstr(text, "postwarden queue release 0123456789ABCDEF --rcpt bob@example.test") != NULL);
		CHECK(strstr(text, "7 Tage") != NULL);
		CHECK(strstr(text, "does not offer encryption") == NULL);
		free(text);
		CHECK(strstr(p.parts[1], "Status: 5.7.10") != NULL);
	}
	parsed_free(&p);
	free(m);
}

static void test_failed(void)
{
	static const struct dsn_rcpt r[] = {
		{ "x@example.test", NULL, "mx.example.test", "5.1.1",
		  "mx.example.test said: 550 5.1.1 no such user", REASON_SMTP_PERM },
		{ "y@null.test", NULL, NULL, "5.1.10", "null.test does not accept mail (null MX)",
		  REASON_NULL_MX },
	};
	char *m = build(DSN_FAILED, "en", r, 2);
	struct parsed p;
	char *text;

	CHECK(parse_mime(m, &p));
	CHECK(p.nparts == 3);
	if (p.nparts == 3) {
		text = qp_decode(strstr(p.parts[0], "\r\n\r\n") + 4);
		CHECK(strstr(text, "the server mx.example.test rejected the message") != NULL);
		CHECK(strstr(text, "the domain null.test does not accept email") != NULL);
		CHECK(strstr(text, "queue release") == NULL);
		free(text);
		CHECK(strstr(p.parts[1], "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.test\r\n"
					 "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != NULL);
		CHECK(strstr(p.parts[1], "Status: 5.1.10\r\n") != NULL);
	}
	parsed_free(&p);
	free(m);
}

static void test_who_gets_one(void)
{
	CHECK(dsn_allowed("anna@sender.test", false));
	CHECK(!dsn_allowed("", false));		/* null sender */
	CHECK(!dsn_allowed(NULL, false));
	CHECK(!dsn_allowed("anna@sender.test", true));	/* about a notification: no loops */
	CHECK(dsn_rcpt_wants(NULL));
	CHECK(dsn_rcpt_wants("FAILURE"));
	CHECK(dsn_rcpt_wants("SUCCESS,FAILURE"));
	CHECK(dsn_rcpt_wants("delay,failure"));
	CHECK(!dsn_rcpt_wants("NEVER"));
	CHECK(!dsn_rcpt_wants("SUCCESS"));
	CHECK(!dsn_rcpt_wants("SUCCESS,DELAY"));
}

TEST_MAIN(test_held_english, test_held_german, test_failed, test_who_gets_one)
