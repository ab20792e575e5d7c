/*
 * mig_mail_map.c - presets, special-use folders by attribute and by name, folder name
 * mapping, INTERNALDATE parsing (see mig_mail_map.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_utf7.h"
#include "mig_mail_map.h"
#include "xmalloc.h"

static const struct mig_preset presets[] = {
	{ "gmail", "imap.gmail.com", "993", IMAP_TLS_IMPLICIT, true,
	  "Gmail needs an app password (Google account > Security > App passwords) "
	  "or an OAuth token (--token-fd)" },
	{ "outlook", "outlook.office365.com", "993", IMAP_TLS_IMPLICIT, false,
	  "Outlook.com and Microsoft 365 need an OAuth token (--token-fd) for IMAP" },
	{ "icloud", "imap.mail.me.com", "993", IMAP_TLS_IMPLICIT, false,
	  "iCloud needs an app-specific password (appleid.apple.com > Sign-In and Security)" },
	{ "yahoo", "imap.mail.yahoo.com", "993", IMAP_TLS_IMPLICIT, false,
	  "Yahoo needs an app password (Account Security > Generate app password)" },
	{ "aol", "imap.aol.com", "993", IMAP_TLS_IMPLICIT, false,
	  "AOL needs an app password (Account Security > Generate app password)" },
	{ "gmx", "imap.gmx.net", "993", IMAP_TLS_IMPLICIT, false,
	  "GMX: switch on POP3/IMAP access in the web mail settings first" },
	{ "webde", "imap.web.de", "993", IMAP_TLS_IMPLICIT, false,
	  "WEB.DE: switch on POP3/IMAP access in the web mail settings first" },
};

const struct mig_preset *mig_preset_find(const char *name)
{
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
		if (strcasecmp(presets[i].name, name) == 0)
			return &presets[i];
	return NULL;
}

const char *mig_preset_names(void)
{
	return "gmail, outlook, icloud, yahoo, aol, gmx, webde";
}

static const struct { const char *attr; enum mig_special su; } attrs[] = {
	{ "\\Sent", MIG_SU_SENT }, { "\\Drafts", MIG_SU_DRAFTS }, { "\\Trash", MIG_SU_TRASH },
	{ "\\Junk", MIG_SU_JUNK }, { "\\Archive", MIG_SU_ARCHIVE }, { "\\All", MIG_SU_ALL },
	{ "\\Flagged", MIG_SU_FLAGGED }, { "\\Important", MIG_SU_IMPORTANT },
};

enum mig_special mig_special_from_attr(const char *attr, size_t len)
{
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (strlen(attrs[i].attr) == len && strncasecmp(attrs[i].attr, attr, len) == 0)
			return attrs[i].su;
	return MIG_SU_NONE;
}

const char *mig_special_attr(enum mig_special su)
{
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (attrs[i].su == su)
			return attrs[i].attr;
	return NULL;
}

/* Well-known names of special folders, in the languages providers use. */
static const struct { const char *name; enum mig_special su; } names[] = {
	{ "Sent", MIG_SU_SENT }, { "Sent Items", MIG_SU_SENT }, { "Sent Messages", MIG_SU_SENT },
	{ "Sent Mail", MIG_SU_SENT }, { "Gesendet", MIG_SU_SENT },
	{ "Gesendete Objekte", MIG_SU_SENT }, { "Gesendete Elemente", MIG_SU_SENT },
	{ "Envoy\xc3\xa9s", MIG_SU_SENT }, { "\xc3\x89l\xc3\xa9ments envoy\xc3\xa9s", MIG_SU_SENT },
	{ "Enviados", MIG_SU_SENT }, { "Inviata", MIG_SU_SENT }, { "Posta inviata", MIG_SU_SENT },
	{ "Verzonden", MIG_SU_SENT }, { "Verzonden items", MIG_SU_SENT },
	{ "Drafts", MIG_SU_DRAFTS }, { "Draft", MIG_SU_DRAFTS }, { "Entw\xc3\xbcrfe", MIG_SU_DRAFTS },
	{ "Brouillons", MIG_SU_DRAFTS }, { "Borradores", MIG_SU_DRAFTS }, { "Bozze", MIG_SU_DRAFTS },
	{ "Concepten", MIG_SU_DRAFTS },
	{ "Trash", MIG_SU_TRASH }, { "Deleted Items", MIG_SU_TRASH },
	{ "Deleted Messages", MIG_SU_TRASH }, { "Bin", MIG_SU_TRASH },
	{ "Papierkorb", MIG_SU_TRASH }, { "Gel\xc3\xb6schte Elemente", MIG_SU_TRASH },
	{ "Gel\xc3\xb6schte Objekte", MIG_SU_TRASH }, { "Corbeille", MIG_SU_TRASH },
	{ "Papelera", MIG_SU_TRASH }, { "Cestino", MIG_SU_TRASH }, { "Prullenbak", MIG_SU_TRASH },
	{ "Junk", MIG_SU_JUNK }, { "Spam", MIG_SU_JUNK }, { "Junk E-mail", MIG_SU_JUNK },
	{ "Junk Email", MIG_SU_JUNK }, { "Bulk Mail", MIG_SU_JUNK }, { "Junk-E-Mail", MIG_SU_JUNK },
	{ "Ind\xc3\xa9sirables", MIG_SU_JUNK }, { "Courrier ind\xc3\xa9sirable", MIG_SU_JUNK },
	{ "Correo no deseado", MIG_SU_JUNK }, { "Posta indesiderata", MIG_SU_JUNK },
	{ "Archive", MIG_SU_ARCHIVE }, { "Archives", MIG_SU_ARCHIVE }, { "Archiv", MIG_SU_ARCHIVE },
	{ "Archivo", MIG_SU_ARCHIVE }, { "Archivio", MIG_SU_ARCHIVE }, { "Archief", MIG_SU_ARCHIVE },
	{ "All Mail", MIG_SU_ALL }, { "Alle Nachrichten", MIG_SU_ALL },
	{ "Starred", MIG_SU_FLAGGED }, { "Important", MIG_SU_IMPORTANT },
};

enum mig_special mig_special_from_name(const char *leaf)
{
	if (strcasecmp(leaf, "INBOX") == 0)
		return MIG_SU_INBOX;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(names[i].name, leaf) == 0)
			return names[i].su;
	return MIG_SU_NONE;
}

const char *mig_special_default_name(enum mig_special su)
{
	switch (su) {
	case MIG_SU_INBOX: return "INBOX";
	case MIG_SU_SENT: return "Sent";
	case MIG_SU_DRAFTS: return "Drafts";
	case MIG_SU_TRASH: return "Trash";
	case MIG_SU_JUNK: return "Junk";
	case MIG_SU_ARCHIVE: return "Archive";
	default: return NULL;
	}
}

bool mig_gmail_skip(enum mig_special su)
{
	/* Starred is the \Flagged flag, Important a label: their messages are elsewhere. All
	 * Mail is not skipped: what is in no other folder (archived mail) goes to Archive */
	return su == MIG_SU_FLAGGED || su == MIG_SU_IMPORTANT;
}

char *mig_map_name(const char *src, char ssep, char dsep)
{
	char *utf8 = imap_utf7_decode(src, strlen(src)), *out;

	if (utf8 == NULL)
		return NULL;
	if (ssep != '\0' && ssep != dsep)
		for (char *p = utf8; *p; p++) {
			if (*p == dsep)
				*p = '_';
			else if (*p == ssep)
				*p = dsep;
		}
	out = imap_utf7_encode(utf8, strlen(utf8));
	free(utf8);
	return out;
}

static int month_of(const char *m)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	for (int i = 0; i < 12; i++)
		if (strncasecmp(m, mon[i], 3) == 0)
			return i;
	return -1;
}

long long mig_parse_internaldate(const char *s, size_t len)
{
	char t[40];
	int d, y, hh, mm, ss, mon, zone;
	char ms[4], sign;
	struct tm tm = { 0 };

	if (len >= sizeof(t))
		return -1;
	memcpy(t, s, len);
	t[len] = '\0';
	if (sscanf(t, " %2d-%3c-%4d %2d:%2d:%2d %c%4d", &d, ms, &y, &hh, &mm, &ss, &sign, &zone) != 8)
		return -1;
	ms[3] = '\0';
	mon = month_of(ms);
	if (mon < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || y < 1900 ||
	    (sign != '+' && sign != '-') || zone < 0 || zone > 2359)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	long long off = (zone / 100) * 3600 + (zone % 100) * 60;

	return (long long)timegm(&tm) - (sign == '+' ? off : -off);
}

bool mig_server_parse(const char *url, enum imap_tls dflt, char **host, char **port,
		      enum imap_tls *tls_out)
{
	const char *p = url, *colon;
	enum imap_tls tls = dflt;

	if (strncasecmp(p, "imaps://", 8) == 0) {
		tls = IMAP_TLS_IMPLICIT;
		p += 8;
	} else if (strncasecmp(p, "imap://", 7) == 0) {
		tls = IMAP_TLS_STARTTLS;
		p += 7;
	}
	if (*p == '\0' || strchr(p, '/') != NULL || strchr(p, '@') != NULL)
		return false;
	if (*p == '[') {
		const char *close = strchr(p, ']');

		if (close == NULL)
			return false;
		free(*host);
		*host = xstrndup(p + 1, (size_t)(close - p - 1));
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] != '\0' && colon == NULL)
			return false;
	} else {
		colon = strrchr(p, ':');
		free(*host);
		*host = colon ? xstrndup(p, (size_t)(colon - p)) : xstrdup(p);
	}
	free(*port);
	*port = NULL;	/* a malformed port leaves nothing to free twice */
	if (colon != NULL) {
		char *end;
		long v = strtol(colon + 1, &end, 10);

		if (*end != '\0' || v < 1 || v > 65535)
			return false;
		*port = xstrdup(colon + 1);
	} else {
		*port = xstrdup(tls == IMAP_TLS_IMPLICIT ? "993" : "143");
	}
	*tls_out = tls;
	return (*host)[0] != '\0';
}
