/*
 * mig_mail_map.h - what the mail copy decides without a network: provider presets, which
 * source folders are special (by RFC 6154 attribute, then by well-known names in several
 * languages), which are skipped (Gmail's duplicates), and the destination name of a folder.
 * Pure functions, table-tested.
 */
#ifndef PW_MIG_MAIL_MAP_H
#define PW_MIG_MAIL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "imap.h"

struct mig_preset {
	const char *name;	/* "gmail" */
	const char *host;
	const char *port;
	enum imap_tls tls;
	bool gmail;		/* labels as folders; All Mail, Important, Starred duplicate them */
	const char *hint;	/* what a user must usually do first (app password, enable IMAP) */
};

/* The preset called name, or NULL. */
const struct mig_preset *mig_preset_find(const char *name);
/* For the usage text: the names, comma-separated. */
const char *mig_preset_names(void);

enum mig_special { MIG_SU_NONE, MIG_SU_INBOX, MIG_SU_SENT, MIG_SU_DRAFTS, MIG_SU_TRASH,
		   MIG_SU_JUNK, MIG_SU_ARCHIVE, MIG_SU_ALL, MIG_SU_FLAGGED, MIG_SU_IMPORTANT };

/* "\\Sent" etc. to the kind; MIG_SU_NONE when not a special-use attribute. */
enum mig_special mig_special_from_attr(const char *attr, size_t len);
/* By the last component of a UTF-8 folder name (case-insensitive): "Gesendet" is Sent. */
enum mig_special mig_special_from_name(const char *utf8_leaf);
/* The attribute to ask for when creating one: "\\Sent"; NULL for none. */
const char *mig_special_attr(enum mig_special su);
/* The name to create at the destination when it has none: "Sent". */
const char *mig_special_default_name(enum mig_special su);

/* Does the Gmail preset skip this folder (its messages are all in other folders)? */
bool mig_gmail_skip(enum mig_special su);

/*
 * The destination name (modified UTF-7) of the source folder src (modified UTF-7, with
 * separator ssep), for a destination with separator dsep. A component that holds dsep has it
 * replaced by '_'. NULL when the name is not valid modified UTF-7.
 */
char *mig_map_name(const char *src, char ssep, char dsep);

/*
 * imaps://HOST[:PORT] (TLS from the start), imap://HOST[:PORT] (STARTTLS) or HOST[:PORT]
 * (dflt): *host and *port replaced (freed first), *tls set. false when malformed.
 */
bool mig_server_parse(const char *url, enum imap_tls dflt, char **host, char **port,
		      enum imap_tls *tls);

/* INTERNALDATE "01-Jan-2001 10:00:00 +0100" to seconds since the epoch; -1 when malformed. */
long long mig_parse_internaldate(const char *s, size_t len);

#endif
