/*
 * relay_dsn.c - building delivery status notifications (RFC 3464, RFC 3462 multipart/report);
 * see relay_dsn.h.
 *
 * The human-readable part is quoted-printable UTF-8 and the subject RFC 2047-encoded, so the
 * notification is 7-bit clean whatever the language. The original headers are attached as
 * text/rfc822-headers, never the body: the body might be exactly what should not travel
 * unencrypted.
 */
#include "relay_dsn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "buf.h"
#include "strutil.h"
#include "xmalloc.h"

#define DSN_MAX_HEADERS	(64 * 1024)

bool dsn_allowed(const char *sender, bool notification)
{
	return sender != NULL && sender[0] != '\0' && !notification;
}

bool dsn_rcpt_wants(const char *notify)
{
	const char *p;

	if (notify == NULL || notify[0] == '\0')
		return true;	/* RFC 3461 4.1: the default is FAILURE (and DELAY) */
	for (p = notify; *p != '\0';) {
		size_t n = strcspn(p, ",");

		if (n == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* RFC 5322 date in UTC. */
static void dsn_date(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

char *dsn_explain(enum policy_reason r, const char *host, const char *diagnostic, bool german)
{
	const char *h = host ? host : "?";
	const char *d = diagnostic ? diagnostic : "";

	switch (r) {
	case REASON_NO_STARTTLS:
		return german ? xasprintf("%s bietet keine Verschlüsselung an (kein STARTTLS)", h) :
		       xasprintf("%s does not offer encryption (no STARTTLS)", h);
	case REASON_STARTTLS_REFUSED:
		return german ? xasprintf("%s hat den Aufbau der Verschlüsselung abgelehnt", h) :
		       xasprintf("%s refused to start encryption", h);
	case REASON_TLS_PROTOCOL:
		return german ? xasprintf("%s bietet nur ein veraltetes Verschlüsselungsprotokoll an "
					  "(älter als TLS 1.2, z. B. TLS 1.0)", h) :
		       xasprintf("%s only offers an outdated encryption protocol (older than TLS 1.2, "
				 "e.g. TLS 1.0)", h);
	case REASON_TLS_CIPHER:
		return german ? xasprintf("%s bietet nur schwache Verschlüsselungsverfahren an", h) :
		       xasprintf("%s only offers weak encryption methods", h);
	case REASON_TLS_HANDSHAKE:
		return german ? xasprintf("die verschlüsselte Verbindung zu %s kam nicht zustande", h) :
		       xasprintf("the encrypted connection to %s could not be established", h);
	case REASON_DANE_MISMATCH:
		return german ? xasprintf("das Zertifikat von %s passt nicht zu seinem DANE-Eintrag: "
					  "die Verbindung wird möglicherweise abgehört", h) :
		       xasprintf("the certificate of %s does not match its DANE record: the "
				 "connection may be intercepted", h);
	case REASON_INJECTION:
		return german ? xasprintf("in die Verbindung zu %s wurden Daten eingeschleust: sie "
					  "wird möglicherweise angegriffen", h) :
		       xasprintf("data was injected into the connection to %s: it may be under "
				 "attack", h);
	case REASON_DNSSEC_BOGUS:
		return german ? xasprintf("die DNS-Antworten für %s haben die DNSSEC-Prüfung nicht "
					  "bestanden: sie könnten gefälscht sein", h) :
		       xasprintf("the DNS answers for %s failed DNSSEC validation: they may be "
				 "forged", h);
	case REASON_STS_MX_MISMATCH:
		return german ? xasprintf("%s ist laut der MTA-STS-Richtlinie des Empfängers kein "
					  "zulässiger Mailserver: %s", h, d) :
		       xasprintf("%s is not a mail server the receiver's MTA-STS policy allows: %s",
				 h, d);
	case REASON_STS_CERT:
		return german ? xasprintf("das Zertifikat von %s ist nicht gültig, obwohl die "
					  "MTA-STS-Richtlinie des Empfängers es verlangt: %s", h, d) :
		       xasprintf("the certificate of %s is not valid, which the receiver's MTA-STS "
				 "policy requires: %s", h, d);
	case REASON_STS_NO_TLS:
		return german ? xasprintf("%s bietet keine Verschlüsselung an, obwohl die "
					  "MTA-STS-Richtlinie des Empfängers sie verlangt", h) :
		       xasprintf("%s does not offer encryption, which the receiver's MTA-STS policy "
				 "requires", h);
	case REASON_NULL_MX:
		return german ? xasprintf("die Domain %s nimmt keine E-Mails an", h) :
		       xasprintf("the domain %s does not accept email", h);
	case REASON_NXDOMAIN:
		return german ? xasprintf("die Domain %s existiert nicht", h) :
		       xasprintf("the domain %s does not exist", h);
	case REASON_EXPIRED:
		return german ? xasprintf("die Nachricht konnte zu lange nicht zugestellt werden; "
					  "zuletzt: %s", d) :
		       xasprintf("the message could not be delivered for too long; the last "
				 "problem was: %s", d);
	case REASON_SMTP_PERM:
		return german ? xasprintf("der Server %s hat die Nachricht abgelehnt: %s", h, d) :
		       xasprintf("the server %s rejected the message: %s", h, d);
	default:
		break;
	}
	return xstrdup(d[0] ? d : (german ? "unbekannter Fehler" : "unknown error"));
}

/* Append UTF-8 text as quoted-printable (RFC 2045 6.7); text uses \n line ends. */
static void dsn_qp(struct buf *b, const char *text)
{
	size_t col = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
		if (*p == '\n') {
			buf_adds(b, "\r\n");
			col = 0;
			continue;
		}
		if (col >= 72) {
			buf_adds(b, "=\r\n");
			col = 0;
		}
		if ((*p >= 33 && *p <= 126 && *p != '=') || (*p == ' ' && p[1] != '\n' && p[1])) {
			buf_add(b, p, 1);
			col++;
		} else {
			buf_addf(b, "=%02X", *p);
			col += 3;
		}
	}
}

/* RFC 2047 B-encoding of a header value when it is not plain ASCII. */
static void dsn_header_word(struct buf *b, const char *text)
{
	size_t n = strlen(text);
	bool ascii = true;
	unsigned char *out;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] >= 0x80)
			ascii = false;
	if (ascii) {
		buf_adds(b, text);
		return;
	}
	out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock(out, (const unsigned char *)text, (int)n);
	buf_addf(b, "=?utf-8?B?%s?=", out);
	free(out);
}

/* A field value from outside input: printable ASCII only, bounded. */
static void dsn_field(struct buf *b, const char *v)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)v; *p != '\0' && n < 900; p++, n++)
		buf_add(b, *p < 0x20 || *p >= 0x7f ? "?" : (const char *)p, 1);
}

/* "rfc822;a@b" -> "rfc822; a@b" as RFC 3464 writes it. */
static void dsn_typed_addr(struct buf *b, const char *name, const char *v)
{
	const char *semi = strchr(v, ';');

	buf_addf(b, "%s: ", name);
	if (semi != NULL) {
		buf_add(b, v, (size_t)(semi - v));
		buf_adds(b, "; ");
		dsn_field(b, semi + 1 + strspn(semi + 1, " "));
	} else {
		buf_adds(b, "rfc822; ");
		dsn_field(b, v);
	}
	buf_adds(b, "\r\n");
}

/* The domain a reason is about when no host was reached (DNS failures). */
static const char *dsn_subject_host(const struct dsn_rcpt *r)
{
	const char *d;

	if (r->mx != NULL && r->mx[0] != '\0')
		return r->mx;
	d = addr_domain(r->addr);
	return d ? d : r->addr;
}

static void dsn_text_held(struct buf *t, const struct dsn_input *in, bool de)
{
	char until[64];

	dsn_date(in->now + (int64_t)in->hold_days * 86400, until, sizeof(until));
	if (de) {
		buf_addf(t, "Dies ist eine Nachricht des Mailservers %s.\n\n"
			 "Ihre Nachricht (Queue-ID %s) wurde an die folgenden Empfänger NICHT "
			 "zugestellt, weil die verschlüsselte Zustellung nicht gewährleistet werden "
			 "konnte. Für Ihr Konto gilt die TLS-Versandgarantie: Nachrichten werden nur "
			 "über eine sicher verschlüsselte Verbindung zugestellt.\n\n",
			 in->hostname, in->msg_id);
	} else {
		buf_addf(t, "This is the mail system at %s.\n\n"
			 "Your message (queue ID %s) was NOT delivered to the recipients below, "
			 "because it could not be sent over a secure, encrypted connection. Your "
			 "account has the TLS-sending guarantee: messages are delivered only over "
			 "properly encrypted connections.\n\n", in->hostname, in->msg_id);
	}
	for (size_t i = 0; i < in->nrcpt; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];
		char *why = dsn_explain(r->reason, dsn_subject_host(r), r->diagnostic, de);

		buf_addf(t, "  %s\n    %s: %s\n    %s: %s\n", r->addr,
			 de ? "Mailserver" : "Mail server", r->mx ? r->mx : "-",
			 de ? "Grund" : "Reason", why);
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0')
			buf_addf(t, "    %s: %s\n", de ? "Technisch" : "Technical detail",
				 r->diagnostic);
		buf_adds(t, "\n");
		free(why);
	}
	if (de) {
		buf_addf(t, "Was Sie tun können:\n"
			 "- Prüfen Sie, ob die Empfängeradresse stimmt.\n"
			 "- Bitten Sie die Administratoren der Empfänger, Verschlüsselung (TLS 1.2 "
			 "oder neuer) für ihre Mailserver einzuschalten.\n"
			 "- Wenn die Nachricht auch ohne garantierte Verschlüsselung zugestellt "
			 "werden darf, kann Ihr Mail-Provider sie einmalig ohne die Garantie "
			 "freigeben:\n"
			 "    postwarden queue release %s\n"
			 "  oder nur für einen Empfänger:\n"
			 "    postwarden queue release %s --rcpt %s\n\n"
			 "Die Nachricht wird %d Tage lang aufbewahrt (bis %s) und danach gelöscht.\n",
			 in->msg_id, in->msg_id, in->rcpts[0].addr, in->hold_days, until);
	} else {
		buf_addf(t, "What you can do:\n"
			 "- Check that the recipient address is correct.\n"
			 "- Ask the recipients' administrators to enable encryption (TLS 1.2 or "
			 "newer) on their mail servers.\n"
			 "- If the message may travel without guaranteed encryption, your mail "
			 "provider can release it once without the guarantee:\n"
			 "    postwarden queue release %s\n"
			 "  or for one recipient only:\n"
			 "    postwarden queue release %s --rcpt %s\n\n"
			 "The message is held for %d days (until %s), then deleted.\n",
			 in->msg_id, in->msg_id, in->rcpts[0].addr, in->hold_days, until);
	}
}

static void dsn_text_failed(struct buf *t, const struct dsn_input *in, bool de)
{
	if (de)
		buf_addf(t, "Dies ist eine Nachricht des Mailservers %s.\n\n"
			 "Ihre Nachricht (Queue-ID %s) konnte an die folgenden Empfänger nicht "
			 "zugestellt werden:\n\n", in->hostname, in->msg_id);
	else
		buf_addf(t, "This is the mail system at %s.\n\n"
			 "Your message (queue ID %s) could not be delivered to the recipients "
			 "below:\n\n", in->hostname, in->msg_id);
	for (size_t i = 0; i < in->nrcpt; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];
		char *why = dsn_explain(r->reason, dsn_subject_host(r), r->diagnostic, de);

		buf_addf(t, "  %s\n    %s: %s\n\n", r->addr, de ? "Grund" : "Reason", why);
		free(why);
	}
	buf_adds(t, de ? "Bitte prüfen Sie die Adressen. Der Anhang enthält den technischen "
			 "Bericht und die Kopfzeilen Ihrer Nachricht.\n" :
		     "Please check the addresses. The attachments hold the technical report "
		     "and the headers of your message.\n");
}

static void dsn_status_part(struct buf *b, const struct dsn_input *in)
{
	char date[64];

	dsn_date(in->arrival, date, sizeof(date));
	buf_addf(b, "Content-Type: message/delivery-status\r\n"
		 "Content-Description: Delivery report\r\n\r\n"
		 "Reporting-MTA: dns; %s\r\n"
		 "X-Postwarden-Queue-ID: %s\r\n", in->hostname, in->msg_id);
	if (in->envid != NULL && in->envid[0] != '\0') {
		buf_adds(b, "Original-Envelope-Id: ");
		dsn_field(b, in->envid);
		buf_adds(b, "\r\n");
	}
	buf_addf(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < in->nrcpt; i++) {
		const struct dsn_rcpt *r = &in->rcpts[i];

		buf_adds(b, "\r\n");
		dsn_typed_addr(b, "Final-Recipient", r->addr);
		if (r->orcpt != NULL && r->orcpt[0] != '\0')
			dsn_typed_addr(b, "Original-Recipient", r->orcpt);
		buf_addf(b, "Action: failed\r\nStatus: %s\r\n", r->status);
		if (r->mx != NULL && r->mx[0] != '\0') {
			buf_adds(b, "Remote-MTA: dns; ");
			dsn_field(b, r->mx);
			buf_adds(b, "\r\n");
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			const char *said = strstr(r->diagnostic, " said: ");

			/* A remote reply is "smtp; CODE text"; our own findings are X-Postwarden. */
			bool smtp = said != NULL && !policy_reason_is_security(r->reason);

			buf_adds(b, smtp ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-Postwarden; ");
			dsn_field(b, smtp ? said + 7 : r->diagnostic);
			buf_adds(b, "\r\n");
		}
	}
}

/* The original header block with CRLF line ends, bounded. */
static void dsn_headers_part(struct buf *b, const struct dsn_input *in)
{
	size_t n = in->headers_len < DSN_MAX_HEADERS ? in->headers_len : DSN_MAX_HEADERS;
	bool cr = false;

	buf_adds(b, "Content-Type: text/rfc822-headers\r\n"
		 "Content-Description: Headers of the original message\r\n\r\n");
	for (size_t i = 0; i < n; i++) {
		char c = in->headers[i];

		if (c == '\n' && !cr)
			buf_adds(b, "\r");
		buf_add(b, &c, 1);
		cr = c == '\r';
	}
	if (n > 0 && in->headers[n - 1] != '\n')
		buf_adds(b, "\r\n");
}

char *dsn_build(const struct dsn_input *in, size_t *len)
{
	bool de = in->language != NULL && strcmp(in->language, "de") == 0;
	struct buf b, text;
	char date[64], boundary[64], rnd[17];

	random_id(rnd);
	snprintf(boundary, sizeof(boundary), "=_postwarden_%s", rnd);
	dsn_date(in->now, date, sizeof(date));
	buf_init(&b, 0);
	buf_init(&text, 0);
	if (in->kind == DSN_HELD)
		dsn_text_held(&text, in, de);
	else
		dsn_text_failed(&text, in, de);

	buf_addf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\nTo: <", in->hostname);
	dsn_field(&b, in->sender);
	buf_adds(&b, ">\r\nSubject: ");
	if (in->kind == DSN_HELD)
		dsn_header_word(&b, de ? "Nachricht angehalten: sichere Verschlüsselung nicht möglich" :
				"Message held: secure encryption was not possible");
	else
		dsn_header_word(&b, de ? "Unzustellbare Nachricht" : "Undelivered Mail Returned to Sender");
	buf_addf(&b, "\r\nDate: %s\r\nMessage-ID: <%lld.%s@%s>\r\nAuto-Submitted: auto-replied\r\n"
		 "MIME-Version: 1.0\r\n"
		 "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		 "\tboundary=\"%s\"\r\n\r\n"
		 "This is a MIME-encapsulated message.\r\n\r\n--%s\r\n"
		 "Content-Type: text/plain; charset=utf-8\r\n"
		 "Content-Transfer-Encoding: quoted-printable\r\n"
		 "Content-Description: Notification\r\n\r\n",
		 date, (long long)in->now, rnd, in->hostname, boundary, boundary);
	dsn_qp(&b, text.data);
	buf_addf(&b, "\r\n--%s\r\n", boundary);
	dsn_status_part(&b, in);
	buf_addf(&b, "\r\n--%s\r\n", boundary);
	dsn_headers_part(&b, in);
	buf_addf(&b, "\r\n--%s--\r\n", boundary);
	buf_free(&text);
	return buf_release(&b, len);
}
