/*
 * opmail.c - the header of the operator's alert mails; see opmail.h.
 */
#include "opmail.h"

#include <time.h>

#include "strutil.h"

void opmail_header(struct buf *b, const char *hostname, const char *who, const char *to,
		   const char *subject, const char *tag)
{
	char date[64], id[17];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	random_id(id);
	buf_addf(b, "From: postwarden %s <postmaster@%s>\r\nTo: %s\r\n"
		 "Subject: [postwarden] %s\r\nDate: %s\r\nMessage-ID: <%s.%s@%s>\r\n"
		 "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
		 "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
		 who, hostname, to, subject, date, id, tag, hostname);
}
